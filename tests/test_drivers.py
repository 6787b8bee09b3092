"""One learner, two drivers: the drivers agree with each other and with references.

* the gymnasium driver's compiled step and the JAX driver's learner step give bit-identical
  agent states from the same state, transitions and key (to rounding when vmapped);
* both drivers store the true final observation and set ``terminated`` only on termination;
* both drivers evaluate at the same environment steps;
* observation normalisation is used when acting, evaluating and loading a policy;
* options no other test turns on: ``max_grad_norm`` over several steps, ``updates_per_env_step``
  above 1, the ``axis_name`` all-reduce;
* each driver traces each of its compiled functions once over a run.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

import ddpg_jax
from ddpg_jax import DDPGConfig, Transition
from ddpg_jax.agent.learner import make_learner
from ddpg_jax.drivers.host import HostCarry, make_host_fns, zero_sums
from ddpg_jax.drivers.schedule import make_schedule
from ddpg_jax.envs import Box, Environment

SMALL = dict(hidden_sizes=(16, 16), batch_size=16, buffer_size=512, warmup_steps=40,
             eval_every=0, eval_episodes=2)
LOW, HIGH = np.array([-2.0], np.float32), np.array([2.0], np.float32)


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def random_transitions(key, n, obs_dim=3):
    k = jax.random.split(key, 5)
    return Transition(jax.random.normal(k[0], (n, obs_dim)),
                      jax.random.uniform(k[1], (n, 1), minval=-2.0, maxval=2.0),
                      jax.random.normal(k[2], (n,)),
                      (jax.random.uniform(k[3], (n,)) < 0.2).astype(jnp.float32),
                      jax.random.normal(k[4], (n, obs_dim)))


# --------------------------------------------------------------------------- equivalence
PARALLEL = dict(n_step=3, noise_scale_max=0.3, updates_per_env_step=3 / 2)


@pytest.mark.parametrize("preset", ["default", "td3", "parallel", "episode"])
def test_host_step_equals_the_learner_step_of_the_jax_driver(preset):
    """The gymnasium driver's compiled step against the JAX driver's learner step.

    Unbatched (``jax.jit(make_train(...))`` of one seed) the JAX driver runs the same
    program as the host step, bit for bit. Vmapped over seeds (``run_seeds``, the chunked
    driver) XLA batches the matmuls, which changes rounding in the last bit; TD3's delayed
    actor step is a ``lax.cond`` on the host and, in the JAX driver, a cond on "any vmapped
    run acts now" with a select inside (a different program, so compared with a tolerance). ``parallel``
    adds n-step returns, per-env noise scales and gradient steps per vector step;
    ``episode`` runs TD3 with the gradient steps owed since the start (the warm-up's
    included) at the first episode end, in a ``while_loop``.
    """
    extra = {"parallel": PARALLEL, "episode": dict(update_schedule="episode")}.get(preset, {})
    config = ddpg_jax.preset({"parallel": "default", "episode": "td3"}.get(preset, preset),
                             hidden_sizes=(16, 16), batch_size=16, buffer_size=256,
                             warmup_steps=64, num_envs=2, obs_norm=True, **extra)
    host_learner = make_learner(config, 3, LOW, HIGH, batched=False)
    jax_learner = make_learner(config, 3, LOW, HIGH, batched=True)
    agent = host_learner.init(jax.random.PRNGKey(0))
    warm_done = jax.random.uniform(jax.random.PRNGKey(7), (64,)) < 0.1
    agent = host_learner.observe(agent, random_transitions(jax.random.PRNGKey(1), 64), warm_done)
    fns = make_host_fns(host_learner, config.num_envs)
    carry = HostCarry(jax.tree.map(jnp.copy, agent), jax.random.PRNGKey(2), zero_sums(),
                      jnp.asarray(64, jnp.int32))
    jax_step = jax.jit(jax_learner.learn)
    vmapped_step = jax.jit(jax.vmap(jax_learner.learn, in_axes=(0, 0, 0, 0, None)))
    for i in range(4):  # four vector steps: with td3 the actor moves on every second update
        transition = random_transitions(jax.random.PRNGKey(10 + i), config.num_envs)
        done = jnp.array([i == 1, False])
        update_key = jax.random.split(carry.key)[1]  # the key the host step takes
        env_steps = carry.env_steps + config.num_envs
        batched = jax.tree.map(lambda x: x[None], (agent, transition, done, update_key))
        agent_vmapped = jax.tree.map(lambda x: x[0], vmapped_step(*batched, env_steps)[0])
        agent_jax, _ = jax_step(agent, transition, done, update_key, env_steps)
        carry, _ = fns.step(carry, transition, done, jnp.zeros((2, 3)))
        agent_host = carry.agent._replace(noise_state=agent_jax.noise_state)
        if preset not in ("td3", "episode"):
            assert leaves_equal(agent_host, agent_jax)
        else:
            chex.assert_trees_all_close(agent_host, agent_jax, rtol=1e-5, atol=1e-6)
        assert int(agent_host.train_state.actor_step) == int(agent_jax.train_state.actor_step)
        chex.assert_trees_all_close(agent_vmapped, agent_jax, rtol=1e-5, atol=1e-6)
        agent = agent_jax
    if preset == "episode":  # 64 warm-up rows and two vector steps of two envs, then the end
        assert int(agent.train_state.step) == 64 + 2 * config.num_envs
        assert int(agent.train_state.actor_step) == (64 + 2 * config.num_envs) // 2
        assert int(agent.owed) == 2 * config.num_envs  # the two vector steps after it
        return
    assert int(agent.train_state.step) == 4 * config.updates_per_vector
    assert int(agent.train_state.actor_step) == (2 if preset == "td3" else 4) * (
        config.updates_per_vector)


# --------------------------------------------------------------------------- episode ends
@struct.dataclass
class CounterState:
    t: jax.Array
    episode: jax.Array  # a random id, so a reset observation differs from the final one
    time: jax.Array


@struct.dataclass
class CounterParams:
    max_steps_in_episode: int = 3


class CounterEnv(Environment):
    """obs = [t, episode id]; terminates at t == 3 or (terminate=False) truncates there."""

    def __init__(self, terminate: bool):
        self.terminate = terminate

    @property
    def default_params(self):
        return CounterParams(max_steps_in_episode=100 if self.terminate else 3)

    def observation_space(self, params=None):
        return Box.from_bounds(-jnp.inf, jnp.inf, (2,))

    def action_space(self, params=None):
        return Box.from_bounds(-1.0, 1.0, (1,))

    def reset_env(self, key, params):
        state = CounterState(jnp.zeros((), jnp.float32),
                             jax.random.uniform(key, (), jnp.float32, 0.0, 1e6),
                             jnp.zeros((), jnp.int32))
        return jnp.stack([state.t, state.episode]), state

    def step_env(self, key, state, action, params):
        t = state.t + 1.0
        state = state.replace(t=t)
        terminated = jnp.logical_and(self.terminate, t == 3.0)
        return jnp.stack([t, state.episode]), state, jnp.ones(()), terminated, jnp.zeros((), bool)


def check_episode_ends(obs, next_obs, term, terminate):
    # Every transition continues its own episode, also at episode ends.
    np.testing.assert_array_equal(next_obs[:, 0], obs[:, 0] + 1)
    np.testing.assert_array_equal(next_obs[:, 1], obs[:, 1])
    last = next_obs[:, 0] == 3
    assert last.sum() >= 10
    # Termination cuts the bootstrap; truncation by the time limit does not.
    np.testing.assert_array_equal(term[last], 1.0 if terminate else 0.0)
    np.testing.assert_array_equal(term[~last], 0.0)


@pytest.mark.parametrize("terminate", [False, True])
def test_jax_driver_stores_the_true_final_observation_and_only_terminations(terminate):
    config = DDPGConfig(total_steps=120, num_envs=3, **SMALL)
    train = ddpg_jax.make_train(config, CounterEnv(terminate), return_buffer=True)
    out = jax.jit(train)(jax.random.PRNGKey(0))
    n = int(out.buffer.size)
    assert n == 120
    data = jax.tree.map(np.asarray, out.buffer.data)
    check_episode_ends(data.obs[:n], data.next_obs[:n], data.terminated[:n], terminate)


# --------------------------------------------------------------------------- schedule
@pytest.mark.parametrize("total, warmup, every, n", [
    (600, 200, 200, 1),   # the warm-up ends on an evaluation point: none inside it
    (700, 100, 250, 2),   # num_envs does not divide eval_every
    (640, 300, 100, 4),   # points inside the warm-up are skipped
    (500, 100, 0, 2),     # only at the end
])
def test_both_drivers_evaluate_at_the_same_steps(total, warmup, every, n):
    config = DDPGConfig(total_steps=total, warmup_steps=warmup, eval_every=every, num_envs=n,
                        hidden_sizes=(8,), batch_size=16, buffer_size=1000, eval_episodes=1)
    gym_steps = [r["env_steps"] for r in ddpg_jax.train(config, "Pendulum-v1", log=None).evaluations]
    env = ddpg_jax.envs.make("Pendulum-v1")
    chunked = [r["env_steps"] for r in ddpg_jax.train(config, env, log=None).evaluations]
    compiled = ddpg_jax.make_train(config, *env).schedule.eval_steps
    assert gym_steps == chunked == compiled == make_schedule(config).eval_steps
    assert gym_steps[-1] == config.vector_steps * n
    assert all(s > config.warmup_vector_steps * n for s in gym_steps)


# --------------------------------------------------------------------------- obs_norm
def test_observation_normalisation_is_used_in_acting_evaluating_and_loading(tmp_path):
    config = DDPGConfig(total_steps=300, obs_norm=True, **{**SMALL, "eval_every": 300})
    result = ddpg_jax.train(config, "Pendulum-v1", run_dir=tmp_path, log=None)
    ts = result.train_state
    assert float(ts.obs_stats.count) == 300
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32) * [1, 1, 8]
    z = ddpg_jax.agent.normalization.normalize(ts.obs_stats, obs)
    with_norm = np.asarray(result.networks.actor_apply(ts.actor_params, z))
    without = np.asarray(result.networks.actor_apply(ts.actor_params, obs))
    assert not np.allclose(with_norm, without, atol=1e-3)
    policy = ddpg_jax.load_policy(tmp_path)
    np.testing.assert_allclose(policy.act_fn()(obs), with_norm, rtol=1e-5, atol=1e-6)
    # Evaluating the checkpoint reproduces the logged evaluation (same seeds, same policy).
    from ddpg_jax.policy.evaluate import evaluate_checkpoint

    returns = evaluate_checkpoint(policy)
    assert float(np.mean(returns[0])) == pytest.approx(result.evaluations[-1]["eval_return_mean"],
                                                       rel=1e-6)


def test_jax_driver_evaluates_with_normalised_observations():
    config = DDPGConfig(total_steps=400, obs_norm=True, **{**SMALL, "eval_every": 400})
    env, params = ddpg_jax.envs.make("Pendulum-v1")
    train = ddpg_jax.make_train(config, env, params)
    key = jax.random.PRNGKey(3)
    out = jax.jit(train)(key)
    learner = train.loop.learner
    eval_key = jax.random.split(key, 4)[1]  # init, eval, env, loop
    ts = out.train_state
    assert float(ts.obs_stats.count) == 400
    normalised = learner.evaluate(ts, eval_key, env, params, config.eval_episodes)
    np.testing.assert_allclose(out.metrics["eval_returns"][-1], normalised, rtol=1e-5)
    raw = ddpg_jax.agent.learner.evaluate_episodes(
        lambda o: learner.networks.actor_apply(ts.actor_params, o), eval_key, env, params,
        config.eval_episodes)
    assert not np.allclose(raw, normalised, rtol=1e-3)


# --------------------------------------------------------------------------- options
def _steps(config, n_steps, batch_key=0):
    nets = ddpg_jax.make_networks(config, 3, LOW, HIGH)
    step = ddpg_jax.make_gradient_step(nets, config)
    state = step.init(jax.random.PRNGKey(0))
    batches = [random_transitions(jax.random.PRNGKey(batch_key + i), 32) for i in range(n_steps)]
    for b in batches:
        state, _ = jax.jit(step.update)(state, b)
    return nets, state, batches


def test_max_grad_norm_clips_over_several_steps():
    """Against optax's own chain: clip_by_global_norm then Adam, over three critic steps."""
    config = DDPGConfig(hidden_sizes=(16,), max_grad_norm=0.05, critic_lr=1e-2)
    nets, state, batches = _steps(config, 3)
    _, unclipped, _ = _steps(config.replace(max_grad_norm=0.0), 3)
    ref = nets.critic_init(jax.random.split(jax.random.PRNGKey(0), 3)[1])
    target_c, target_a = ref, nets.actor_init(jax.random.split(jax.random.PRNGKey(0), 3)[0])
    tx = optax.chain(optax.clip_by_global_norm(0.05), optax.adam(1e-2))
    opt = tx.init(ref)
    actor = target_a
    actor_tx = optax.chain(optax.clip_by_global_norm(0.05), optax.adam(1e-3))
    actor_opt = actor_tx.init(actor)
    for b in batches:
        y = ddpg_jax.td_target(target_a, target_c, b, 0.99, nets.actor_apply, nets.critic_apply)
        g = jax.grad(lambda p: ddpg_jax.critic_loss(p, b, y, nets.critic_apply)[0])(ref)
        assert float(optax.tree.norm(g)) > 0.05  # clipping is active
        u, opt = tx.update(g, opt, ref)
        ref = optax.apply_updates(ref, u)
        ga = jax.grad(lambda p: ddpg_jax.actor_loss(p, ref, b.obs, nets.actor_apply,
                                                     nets.critic_apply)[0])(actor)
        u, actor_opt = actor_tx.update(ga, actor_opt, actor)
        actor = optax.apply_updates(actor, u)
        target_c = optax.incremental_update(ref, target_c, 0.005)
        target_a = optax.incremental_update(actor, target_a, 0.005)
    chex.assert_trees_all_close(state.critic_params, ref, rtol=1e-5, atol=1e-6)
    assert not leaves_equal(state.critic_params, unclipped.critic_params)


def test_updates_per_env_step_runs_that_many_updates_per_env_step():
    config = DDPGConfig(total_steps=100, num_envs=2, updates_per_env_step=3,
                        **{**SMALL, "warmup_steps": 40})
    result = ddpg_jax.train(config, "Pendulum-v1", log=None)
    assert int(result.train_state.step) == (100 - 40) * 3
    out = jax.jit(ddpg_jax.make_train(config, *ddpg_jax.envs.make("Pendulum-v1")))(
        jax.random.PRNGKey(0))
    assert int(out.train_state.step) == (100 - 40) * 3


def test_axis_name_averages_gradients_over_the_named_axis():
    """Two replicas with batches B1, B2 and pmean step like one update on B1 + B2."""
    config = DDPGConfig(hidden_sizes=(16,))
    nets = ddpg_jax.make_networks(config, 3, LOW, HIGH)
    state = ddpg_jax.init_train_state(jax.random.PRNGKey(0), nets, config)
    b1 = random_transitions(jax.random.PRNGKey(1), 16)
    b2 = random_transitions(jax.random.PRNGKey(2), 16)
    both = jax.tree.map(lambda x, y: jnp.concatenate([x, y]), b1, b2)
    update = ddpg_jax.make_update(nets, config, axis_name="replicas")
    states = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    batches = jax.tree.map(lambda x, y: jnp.stack([x, y]), b1, b2)
    out, metrics = jax.jit(jax.vmap(update, axis_name="replicas"))(states, batches)
    single, single_metrics = jax.jit(ddpg_jax.make_update(nets, config))(state, both)
    for i in range(2):
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], out.critic_params),
                                    single.critic_params, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], out.actor_params),
                                    single.actor_params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["critic_loss"][0], single_metrics["critic_loss"],
                               rtol=1e-5)
    # Without the all-reduce the replicas would have moved apart.
    plain = jax.jit(jax.vmap(ddpg_jax.make_update(nets, config)))(states, batches)[0]
    assert not leaves_equal(jax.tree.map(lambda x: x[0], plain.critic_params),
                            jax.tree.map(lambda x: x[1], plain.critic_params))


# --------------------------------------------------------------------------- tracing
def test_jax_driver_traces_each_compiled_function_once(monkeypatch):
    real_jit = jax.jit
    jitted: list = []

    def jit(fn, *args, **kwargs):
        if getattr(fn, "__module__", "").startswith("ddpg_jax"):
            jitted.append(getattr(fn, "__name__", "?"))
            fn = chex.assert_max_traces(fn, n=1)
        return real_jit(fn, *args, **kwargs)

    monkeypatch.setattr(jax, "jit", jit)
    config = DDPGConfig(total_steps=500, num_envs=2, **{**SMALL, "eval_every": 100})
    result = ddpg_jax.train(config, ddpg_jax.envs.make("Pendulum-v1"), num_seeds=2, log=None,
                            options=ddpg_jax.RunOptions(checkpoint_every=150))
    assert len(result.evaluations) == 5
    assert sorted(jitted) == ["evaluate", "init", "learn", "warmup"]  # learn: every chunk

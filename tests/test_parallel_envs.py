"""Parallel-env settings of the one learner, against hand-computed values and references.

* n-step returns (``n_step``): hand-computed sums at termination, truncation and the write
  position; every row of a wrapped ring buffer against a plain-Python reference that walks
  each env's own sequence of steps; the critic target with the n-step discount;
* per-env exploration scales (``noise_scale_max``): drawn in range, redrawn exactly at each
  env's episode end, and used as each env's noise standard deviation;
* a few gradient steps per vector step (``updates_per_env_step = k / num_envs``);
* all of it through both drivers and under ``vmap`` over seeds, and the refusals of values
  that cannot work.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpg_jax
from ddpg_jax import DDPGConfig, Transition
from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent import losses, nstep
from ddpg_jax.agent.learner import make_learner
from ddpg_jax.config import ConfigError

LOW, HIGH = np.array([-2.0], np.float32), np.array([2.0], np.float32)


def rows_buffer(capacity, steps):
    """A buffer of n-step rows; ``steps`` is a list of vector steps, each a list over envs
    of ``(reward, terminated, truncated)``. Observations encode (vector step, env)."""
    example = nstep.make_row(Transition(jnp.zeros(2), jnp.zeros(1), jnp.zeros(()), jnp.zeros(()),
                                        jnp.zeros(2)), jnp.zeros((), bool))
    buf = rb.init(example, capacity)
    for t, envs in enumerate(steps):
        e = len(envs)
        reward = jnp.asarray([r for r, _, _ in envs], jnp.float32)
        term = jnp.asarray([float(a) for _, a, _ in envs], jnp.float32)
        done = jnp.asarray([a or b for _, a, b in envs])
        obs = jnp.asarray([[t, i] for i in range(e)], jnp.float32)
        next_obs = obs + jnp.asarray([0.5, 0.0])  # (t + 0.5, env): the obs this step reached
        tr = Transition(obs, jnp.zeros((e, 1)), reward, term, next_obs)
        buf = rb.add(buf, nstep.make_row(tr, done))
    return buf


def sample_at(buf, start, n, stride, gamma):
    return jax.tree.map(np.asarray, nstep.returns_from(buf, jnp.asarray(start, jnp.int32), n,
                                                       stride, jnp.float32(gamma)))


# --------------------------------------------------------------------------- n-step returns
def test_nstep_hand_computed_full_window_termination_and_truncation():
    # One env, gamma 0.5, n 3. Episode A: rewards 1, 2, 4, 8 (step 3 terminates);
    # episode B: rewards 16, 32 (step 5 is truncated by the time limit); then 64.
    steps = [[(1.0, False, False)], [(2.0, False, False)], [(4.0, False, False)],
             [(8.0, True, False)], [(16.0, False, False)], [(32.0, False, True)],
             [(64.0, False, False)]]
    buf = rows_buffer(16, steps)
    s = sample_at(buf, [0, 1, 2, 3, 4, 5, 6], n=3, stride=1, gamma=0.5)
    # row 0: 1 + 0.5*2 + 0.25*4 = 3, bootstrap from step 2's next obs with gamma^3
    np.testing.assert_allclose(s.reward, [3.0, 2 + 2 + 2, 4 + 4, 8, 16 + 16, 32, 64])
    np.testing.assert_array_equal(s.terminated, [0, 1, 1, 1, 0, 0, 0])
    # the last step taken: 2, 3 (terminal), 3, 3, 5 (truncated: its true final obs), 5, 6
    np.testing.assert_array_equal(s.next_obs[:, 0], [2.5, 3.5, 3.5, 3.5, 5.5, 5.5, 6.5])
    np.testing.assert_allclose(s.discount, [0.25, 0.25, 0.5, 1.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(s.obs[:, 0], np.arange(7))  # obs and action of the start


def test_nstep_target_bootstraps_with_gamma_to_the_steps_taken():
    gamma = 0.9
    batch = nstep.NStepTransition(obs=jnp.zeros((3, 1)), action=jnp.zeros((3, 1)),
                       reward=jnp.array([1.0, 2.0, 3.0]), terminated=jnp.array([0.0, 0.0, 1.0]),
                       next_obs=jnp.array([[10.0], [20.0], [30.0]]),
                       discount=jnp.array([gamma ** 2, 1.0, gamma]))
    y = losses.td_target(None, None, batch, jnp.float32(gamma), lambda p, o: o,
                         lambda p, o, a: (o[:, 0] + a[:, 0])[None])  # Q'(s', mu'(s')) = 2 s'
    np.testing.assert_allclose(y, [1.0 + gamma ** 3 * 20.0, 2.0 + gamma * 40.0, 3.0], rtol=1e-6)


def reference_nstep(steps, written, n, gamma):
    """Each env's n-step samples from its own list of steps, keyed by (vector step, env)."""
    out = {}
    for e in range(len(steps[0])):
        for t in range(written):
            total, k = 0.0, 0
            while True:
                r, term, trunc = steps[t + k][e]
                total += gamma ** k * r
                if term or trunc or k == n - 1 or t + k + 1 == written:
                    break
                k += 1
            out[(t, e)] = (total, float(term), t + k + 0.5, gamma ** k)
    return out


@pytest.mark.parametrize("n, num_envs, capacity, vector_steps", [
    (3, 2, 8, 7),    # wrapped: the oldest windows cross the ring's end
    (4, 3, 12, 9),   # wrapped, windows cut by the write position
    (5, 2, 40, 11),  # not full
    (2, 1, 4, 6),    # one env, tiny ring
])
def test_nstep_every_row_matches_a_reference_over_each_envs_own_steps(n, num_envs, capacity,
                                                                       vector_steps):
    rng = np.random.default_rng(n * 100 + num_envs)
    steps = [[(float(rng.normal()), bool(rng.random() < 0.15), bool(rng.random() < 0.15))
              for _ in range(num_envs)] for _ in range(vector_steps)]
    buf = rows_buffer(capacity, steps)
    size = int(buf.size)
    s = sample_at(buf, np.arange(size), n=n, stride=num_envs, gamma=0.8)
    ref = reference_nstep(steps, vector_steps, n, 0.8)
    for row in range(size):
        t, e = int(s.obs[row, 0]), int(s.obs[row, 1])
        reward, term, last_obs, discount = ref[(t, e)]
        assert s.reward[row] == pytest.approx(reward, rel=1e-5, abs=1e-6), (row, t, e)
        assert s.terminated[row] == term, (row, t, e)
        assert s.next_obs[row, 0] == last_obs and s.next_obs[row, 1] == e, (row, t, e)
        assert s.discount[row] == pytest.approx(discount, rel=1e-6), (row, t, e)
    # the rows held are exactly the newest vector steps
    held = sorted((int(a), int(b)) for a, b in s.obs)
    first = vector_steps - size // num_envs
    assert held == [(t, e) for t in range(first, vector_steps) for e in range(num_envs)]


def test_nstep_sampled_batches_come_from_returns_from():
    steps = [[(float(t + e), t % 4 == 3, False) for e in range(2)] for t in range(10)]
    buf = rows_buffer(16, steps)
    key = jax.random.PRNGKey(3)
    batches = nstep.sample_batches(buf, key, 5, 3, 3, 2, jnp.float32(0.9))
    start = jax.random.randint(key, (15,), 0, 16)
    direct = nstep.returns_from(buf, start, 3, 2, jnp.float32(0.9))
    for a, b in zip(jax.tree.leaves(batches), jax.tree.leaves(direct)):
        np.testing.assert_array_equal(np.asarray(a).reshape(np.asarray(b).shape), b)


# --------------------------------------------------------------------------- per-env noise
def test_per_env_noise_scales_are_drawn_in_range_and_redrawn_at_episode_ends():
    config = DDPGConfig(hidden_sizes=(8,), batch_size=8, buffer_size=64, warmup_steps=8,
                        num_envs=4, noise_scale=0.1, noise_scale_max=0.5)
    learner = make_learner(config, 3, LOW, HIGH, batched=False)
    agent = learner.init(jax.random.PRNGKey(0))
    scales = np.asarray(agent.noise_state.scale)
    assert scales.shape == (4,) and np.all((scales >= 0.1) & (scales <= 0.5))
    assert len(set(scales.tolist())) == 4
    tr = Transition(jnp.ones((8, 3)), jnp.zeros((8, 1)), jnp.zeros(8), jnp.zeros(8), jnp.ones((8, 3)))
    agent = learner.observe(agent, tr)
    step = jax.tree.map(lambda x: x[:4], tr)
    done = jnp.array([True, False, False, True])
    new, _ = jax.jit(learner.learn)(agent, step, done, jax.random.PRNGKey(1), jnp.int32(12))
    new_scales = np.asarray(new.noise_state.scale)
    np.testing.assert_array_equal(new_scales[1:3], scales[1:3])
    assert np.all(new_scales[[0, 3]] != scales[[0, 3]])
    assert np.all((new_scales >= 0.1) & (new_scales <= 0.5))


def test_each_env_explores_with_its_own_scale():
    config = DDPGConfig(hidden_sizes=(8,), batch_size=8, buffer_size=64, warmup_steps=8,
                        num_envs=3, noise_scale=0.0, noise_scale_max=0.4)
    learner = make_learner(config, 3, np.full(1, -10.0, np.float32), np.full(1, 10.0, np.float32))
    agent = learner.init(jax.random.PRNGKey(0))
    agent = agent._replace(noise_state=agent.noise_state._replace(scale=jnp.array([0.0, 0.1, 0.3])))
    obs = jnp.zeros((3, 3))
    keys = jax.random.split(jax.random.PRNGKey(5), 4000)
    actions = jax.vmap(lambda k: learner.explore(agent, k, obs)[1])(keys)[..., 0]  # [4000, 3]
    mean = learner.policy(agent.train_state, obs)[:, 0]
    np.testing.assert_array_equal(actions[:, 0], np.broadcast_to(mean[0], (4000,)))
    half_range = 10.0
    std = np.std(np.asarray(actions), axis=0)
    np.testing.assert_allclose(std[1:], [0.1 * half_range, 0.3 * half_range], rtol=0.05)


# --------------------------------------------------------------------------- updates per vector step
@pytest.mark.parametrize("num_envs", [1, 8])
def test_a_fraction_of_an_update_per_env_step_runs_whole_updates_per_vector_step(num_envs):
    config = DDPGConfig(hidden_sizes=(8,), batch_size=8, buffer_size=64, warmup_steps=8,
                        num_envs=num_envs, updates_per_env_step=3 / num_envs)
    assert config.updates_per_vector == 3
    learner = make_learner(config, 3, LOW, HIGH, batched=False)
    agent = learner.init(jax.random.PRNGKey(0))
    tr = Transition(jnp.ones((8, 3)), jnp.zeros((8, 1)), jnp.zeros(8), jnp.zeros(8), jnp.ones((8, 3)))
    agent = learner.observe(agent, tr)
    step = jax.tree.map(lambda x: x[:num_envs], tr)
    agent, sums = learner.learn(agent, step, jnp.zeros(num_envs, bool), jax.random.PRNGKey(1),
                                jnp.int32(8 + num_envs))
    assert int(agent.train_state.step) == 3 and float(sums["updates"]) == 3.0
    assert DDPGConfig(num_envs=num_envs, updates_per_env_step=2).updates_per_vector == 2 * num_envs


# --------------------------------------------------------------------------- both drivers, vmap
PARALLEL = dict(num_envs=4, n_step=3, noise_scale_max=0.3, updates_per_env_step=2 / 4,
                batch_size=32, buffer_size=400, warmup_steps=64, hidden_sizes=(16, 16),
                eval_every=0, eval_episodes=2, total_steps=200)


def test_parallel_settings_train_vmapped_seeds_through_the_jax_driver():
    config = DDPGConfig(**PARALLEL)
    result = ddpg_jax.train(config, "Pendulum-v1", backend="jax", num_seeds=2, log=None)
    learning_steps = config.vector_steps - config.warmup_vector_steps
    assert result.summary["updates"] == 2 * learning_steps
    ts = result.train_state
    assert np.asarray(ts.step).tolist() == [2 * learning_steps] * 2
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(ts))
    a, b = (jax.tree.map(lambda x: np.asarray(x)[i], ts.actor_params) for i in range(2))
    assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_parallel_settings_train_through_the_gymnasium_driver():
    config = DDPGConfig(**PARALLEL)
    result = ddpg_jax.train(config, "Pendulum-v1", log=None)
    learning_steps = config.vector_steps - config.warmup_vector_steps
    assert int(result.train_state.step) == 2 * learning_steps
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(result.train_state))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("changes, words", [
    (dict(n_step=3, num_envs=3, buffer_size=1000), "multiple of num_envs"),
    (dict(n_step=100, num_envs=20, buffer_size=1000, batch_size=100, warmup_steps=100),
     "n_step * num_envs <= buffer_size"),
    (dict(num_envs=2000, buffer_size=1000, batch_size=100, total_steps=100_000),
     "num_envs <= buffer_size"),
    (dict(updates_per_vector_step=2, updates_per_step=2), "updates_per_env_step alone"),
    (dict(num_envs=8, updates_per_env_step=0.1), "0.8 gradient steps per vector step; accepted: a whole number k >= 1 of them, that is updates_per_env_step = k/8"),
    (dict(num_envs=8, updates_per_env_step=3 / 16), "1.5 gradient steps per vector step"),
    (dict(noise_scale=0.3, noise_scale_max=0.2), "noise_scale_max >= noise_scale"),
])
def test_values_that_cannot_work_are_refused_before_any_work(changes, words):
    with pytest.raises(ConfigError, match=words.replace("*", r"\*")):
        DDPGConfig(**changes).validate()


def test_observe_needs_done_for_nstep_rows():
    config = DDPGConfig(hidden_sizes=(8,), batch_size=8, buffer_size=64, warmup_steps=8, n_step=2)
    learner = make_learner(config, 3, LOW, HIGH)
    agent = learner.init(jax.random.PRNGKey(0))
    tr = Transition(jnp.ones((1, 3)), jnp.zeros((1, 1)), jnp.zeros(1), jnp.zeros(1), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="needs `done`"):
        learner.observe(agent, tr)

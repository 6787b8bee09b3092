"""TD3 options on the shared update step, presets, and observation statistics."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ddpg_jax import (
    DDPGConfig,
    PresetChangedWarning,
    init_train_state,
    losses,
    make_networks,
    make_update,
    normalization,
    preset,
)
from ddpg_jax.agent.state import Transition

LOW = np.array([-1.0, 0.0], np.float32)
HIGH = np.array([1.0, 4.0], np.float32)
B = 8


def make_batch(key, obs_dim=3):
    k = jax.random.split(key, 4)
    return Transition(
        obs=jax.random.normal(k[0], (B, obs_dim)),
        action=jax.random.uniform(k[1], (B, 2), minval=LOW, maxval=HIGH),
        reward=jax.random.normal(k[2], (B,)),
        terminated=(jnp.arange(B) % 3 == 0).astype(jnp.float32),
        next_obs=jax.random.normal(k[3], (B, obs_dim)),
    )


def test_target_is_minimum_over_critics():
    config = DDPGConfig(hidden_sizes=(8,), num_critics=2)
    nets = make_networks(config, 3, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(0), nets, config)
    # Hand-made pair: critic 1 is critic 0 with its output layer negated (and
    # zero bias), so Q1 = -Q0 and the minimum is -|Q0|, taken from both critics.
    p = jax.tree.map(np.array, state.target_critic_params)
    mlp = p["VmapCritic_0"]["MLP_0"]
    mlp["Dense_1"]["bias"][:] = 0.0
    mlp["Dense_1"]["kernel"][1] = -mlp["Dense_1"]["kernel"][0]
    for name in ("Dense_0",):
        for leaf in ("kernel", "bias"):
            mlp[name][leaf][1] = mlp[name][leaf][0]
    state = state.replace(target_critic_params=jax.tree.map(jnp.asarray, p))
    batch = make_batch(jax.random.PRNGKey(1))
    next_a = nets.actor_apply(state.target_actor_params, batch.next_obs)
    q = np.asarray(nets.critic_apply(state.target_critic_params, batch.next_obs, next_a))
    assert q.shape == (2, B)
    np.testing.assert_allclose(q[1], -q[0], rtol=1e-6)
    assert np.any(q[0] < q[1]) and np.any(q[1] < q[0])  # the min picks from both critics
    y = losses.td_target(state.target_actor_params, state.target_critic_params, batch,
                         0.9, nets.actor_apply, nets.critic_apply)
    expected = (np.asarray(batch.reward)
                + 0.9 * (1 - np.asarray(batch.terminated)) * np.minimum(q[0], q[1]))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-6, atol=1e-6)


def test_smoothing_noise_is_clipped_in_half_ranges():
    half_range = (HIGH - LOW) / 2
    noise = np.asarray(losses.smoothing_noise(jax.random.PRNGKey(0), (20000, 2), 5.0, 0.5,
                                              jnp.asarray(half_range)))
    bound = 0.5 * half_range
    assert np.all(np.abs(noise) <= bound + 1e-6)
    # With a scale far above the clip, most draws sit on the clip on both sides.
    assert np.mean(np.isclose(np.abs(noise), bound)) > 0.9
    assert noise.min(axis=0) == pytest.approx(-bound) and noise.max(axis=0) == pytest.approx(bound)
    small = np.asarray(losses.smoothing_noise(jax.random.PRNGKey(1), (20000, 2), 0.2, 0.5,
                                              jnp.asarray(half_range)))
    np.testing.assert_allclose(small.std(axis=0), 0.2 * half_range, rtol=0.05)


def test_smoothed_target_action_stays_inside_bounds():
    config = DDPGConfig(hidden_sizes=(8,))
    nets = make_networks(config, 3, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(0), nets, config)
    batch = make_batch(jax.random.PRNGKey(1))
    seen = {}

    def spy_critic(params, obs, action):
        seen["action"] = action
        return jnp.zeros((1,) + action.shape[:-1])

    noise = jnp.tile(jnp.asarray([[5.0, -9.0]]), (B, 1))  # far outside on both sides
    losses.td_target(state.target_actor_params, state.target_critic_params, batch, 0.9,
                     nets.actor_apply, spy_critic, noise, jnp.asarray(LOW), jnp.asarray(HIGH))
    np.testing.assert_array_equal(np.asarray(seen["action"])[:, 0], HIGH[0])
    np.testing.assert_array_equal(np.asarray(seen["action"])[:, 1], LOW[1])


def test_policy_delay_updates_actor_and_targets_every_d_steps():
    config = DDPGConfig(hidden_sizes=(8,), num_critics=2, policy_delay=3, target_noise=0.2)
    nets = make_networks(config, 3, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(0), nets, config)
    update = jax.jit(make_update(nets, config))
    batch = make_batch(jax.random.PRNGKey(1))

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    for step in range(1, 7):
        new, _ = update(state, batch)
        assert not same(new.critic_params, state.critic_params)
        moved = step % 3 == 0
        assert same(new.actor_params, state.actor_params) != moved
        assert same(new.target_actor_params, state.target_actor_params) != moved
        assert same(new.target_critic_params, state.target_critic_params) != moved
        assert same(new.actor_opt_state, state.actor_opt_state) != moved
        assert int(new.actor_step) == step // 3 and int(new.step) == step
        state = new


def test_td3_options_off_is_exactly_the_ddpg_update():
    """num_critics=1, policy_delay=1, no smoothing: the step a plain DDPG would take."""
    config = preset("td3", hidden_sizes=(8, 8), num_critics=1, policy_delay=1,
                    target_noise=0.0)
    nets = make_networks(config, 3, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(0), nets, config)
    batch = make_batch(jax.random.PRNGKey(1))
    new, _ = jax.jit(make_update(nets, config))(state, batch)

    # Plain DDPG written out independently with optax.adam.
    gamma, tau, lr = config.gamma, config.tau, config.actor_lr
    q_next = nets.critic_apply(state.target_critic_params, batch.next_obs,
                               nets.actor_apply(state.target_actor_params, batch.next_obs))[0]
    y = batch.reward + gamma * (1 - batch.terminated) * q_next

    def closs(p):
        return jnp.mean((nets.critic_apply(p, batch.obs, batch.action)[0] - y) ** 2)

    adam = optax.adam(config.critic_lr)
    upd, _ = adam.update(jax.grad(closs)(state.critic_params), adam.init(state.critic_params))
    critic = optax.apply_updates(state.critic_params, upd)

    def aloss(p):
        return -jnp.mean(nets.critic_apply(critic, batch.obs, nets.actor_apply(p, batch.obs))[0])

    adam_a = optax.adam(lr)
    upd, _ = adam_a.update(jax.grad(aloss)(state.actor_params), adam_a.init(state.actor_params))
    actor = optax.apply_updates(state.actor_params, upd)
    chex.assert_trees_all_close(new.critic_params, critic, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(new.actor_params, actor, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(
        new.target_actor_params,
        jax.tree.map(lambda n, o: tau * n + (1 - tau) * o, actor, state.target_actor_params),
        rtol=1e-6, atol=1e-7)


def test_reward_scale_enters_the_target():
    config = DDPGConfig(hidden_sizes=(8,), reward_scale=3.0, gamma=0.0)
    nets = make_networks(config, 3, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(0), nets, config)
    batch = make_batch(jax.random.PRNGKey(1))
    _, metrics = make_update(nets, config)(state, batch)
    np.testing.assert_allclose(float(metrics["target_mean"]), 3.0 * float(jnp.mean(batch.reward)),
                               rtol=1e-5)


@pytest.mark.parametrize("name", ["td3-2018", "ourddpg"])
def test_presets_follow_the_td3_paper(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = preset(name).validate()
    # ourddpg's values changed on 2026-12-05 (the 2018 loop): it says so.
    assert [w.category for w in caught] == ([] if name == "td3-2018" else [PresetChangedWarning])
    assert (c.hidden_sizes, c.actor_lr, c.critic_lr, c.batch_size, c.tau, c.gamma) == (
        (400, 300), 1e-3, 1e-3, 100, 0.005, 0.99)
    assert (c.noise, c.noise_scale, c.critic_weight_decay) == ("gaussian", 0.1, 0.0)
    # The authors' code: PyTorch's nn.Linear init, action concatenated at the critic's input.
    assert (c.weight_init, c.final_layer_init, c.critic_action_layer) == ("fan_in_uniform", 0.0, 0)
    # The 2018 loop: bursts of gradient steps at episode ends (update_schedule="episode").
    assert (c.update_schedule, c.warmup_steps) == ("episode", 1000)
    if name == "td3-2018":
        assert (c.num_critics, c.policy_delay, c.target_noise, c.target_noise_clip) == (
            2, 2, 0.2, 0.5)
    else:
        assert (c.num_critics, c.policy_delay, c.target_noise) == (1, 1, 0.0)


def test_running_stats_match_numpy_on_a_stream():
    rng = np.random.default_rng(0)
    stream = rng.normal([3.0, -2.0, 100.0], [0.5, 4.0, 20.0], size=(1000, 3)).astype(np.float32)
    stats = normalization.init(3)
    update = jax.jit(normalization.update)
    i = 0
    for size in [1, 7, 100, 3, 256, 633]:  # uneven batch sizes, including single rows
        stats = update(stats, stream[i:i + size])
        i += size
    assert i == 1000 and float(stats.count) == 1000
    np.testing.assert_allclose(stats.mean, stream.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.var, stream.var(0), rtol=1e-4)
    z = np.asarray(normalization.normalize(stats, stream))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-3)
    # Before any data, observations pass through unchanged.
    raw = np.asarray(normalization.normalize(normalization.init(3), stream[:5]))
    np.testing.assert_array_equal(raw, stream[:5])


def test_update_uses_normalized_observations_and_leaves_stats_alone():
    config = DDPGConfig(hidden_sizes=(8,), obs_norm=True)
    nets = make_networks(config, 3, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(0), nets, config)
    batch = make_batch(jax.random.PRNGKey(1))
    big = batch._replace(obs=batch.obs * 50 + 7, next_obs=batch.next_obs * 50 + 7)
    stats = normalization.update(state.obs_stats, big.obs)
    state = state.replace(obs_stats=stats)
    new, m_big = make_update(nets, config)(state, big)
    chex.assert_trees_all_equal(new.obs_stats, stats)
    # The same step on pre-normalised observations without obs_norm is identical.
    plain = config.replace(obs_norm=False)
    pre = big._replace(obs=normalization.normalize(stats, big.obs),
                       next_obs=normalization.normalize(stats, big.next_obs))
    new_plain, m_plain = make_update(nets, plain)(state, pre)
    chex.assert_trees_all_close(new.critic_params, new_plain.critic_params, rtol=1e-6)
    np.testing.assert_allclose(m_big["critic_loss"], m_plain["critic_loss"], rtol=1e-6)


def _primitives(jaxpr) -> set[str]:
    """Names of every primitive in a jaxpr, sub-jaxprs (loops, branches) included."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            names |= _primitives(sub)
    return names


def test_vmapped_delay_branches_and_keeps_each_members_own_choice():
    """Under vmap the delayed actor half sits in a cond on "any member acts now".

    Members at different steps (one acts, one does not) must each step exactly
    as the update does for it alone; a cond on a batched predicate would
    disappear into a select (no ``cond`` left in the vmapped program).
    """
    config = DDPGConfig(hidden_sizes=(8,), num_critics=2, policy_delay=2, target_noise=0.2)
    nets = make_networks(config, 3, LOW, HIGH)
    update = make_update(nets, config)
    s0 = init_train_state(jax.random.PRNGKey(0), nets, config)  # step 0: acts at step 2
    s1 = init_train_state(jax.random.PRNGKey(3), nets, config).replace(
        step=jnp.ones((), jnp.int32))  # step 1: its next update is an actor step
    b0, b1 = make_batch(jax.random.PRNGKey(1)), make_batch(jax.random.PRNGKey(2))
    stack = lambda *xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)
    states, batches = stack(s0, s1), stack(b0, b1)

    assert "cond" in _primitives(jax.make_jaxpr(jax.vmap(update))(states, batches).jaxpr)

    out, metrics = jax.jit(jax.vmap(update))(states, batches)
    for i, (s, b) in enumerate(((s0, b0), (s1, b1))):
        alone, alone_metrics = jax.jit(update)(s, b)
        mine = jax.tree.map(lambda x: x[i], out)
        # Two compiled programs (vmapped, alone): float32 rounding may differ by a few ulps.
        chex.assert_trees_all_close(mine.actor_params, alone.actor_params, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(mine.target_critic_params, alone.target_critic_params,
                                    rtol=1e-5, atol=1e-6)
        assert int(mine.actor_step) == int(alone.actor_step) == i
        assert float(metrics["actor_updated"][i]) == i
        np.testing.assert_allclose(metrics["actor_loss"][i], alone_metrics["actor_loss"],
                                   rtol=1e-5)
    # The member that did not act kept its actor, bit for bit (a select of the old values).
    for x, y in zip(jax.tree.leaves(jax.tree.map(lambda x: x[0], out.actor_params)),
                    jax.tree.leaves(s0.actor_params)):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(jax.tree.leaves(out.actor_params)[0][1],
                           jax.tree.leaves(s1.actor_params)[0])

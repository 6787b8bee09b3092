"""The update step against a float64 numpy reference and finite differences."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpg_jax import (
    DDPGConfig,
    actor_loss,
    critic_loss,
    init_train_state,
    make_networks,
    make_update,
    td_target,
)
from ddpg_jax.agent.state import Transition

LOW = np.array([-2.0, 0.5])
HIGH = np.array([2.0, 3.0])
OBS_DIM = 3
BATCH = 6


# ----------------------------------------------------------------- reference
def np_mlp(p, x):
    """Dense layers with ReLU between them, in float64."""
    names = sorted(p, key=lambda n: int(n.split("_")[1]))
    h = x
    for i, name in enumerate(names):
        h = h @ np.asarray(p[name]["kernel"], np.float64) + np.asarray(p[name]["bias"], np.float64)
        if i < len(names) - 1:
            h = np.maximum(h, 0.0)
    return h


def np_actor(params, obs):
    raw = np_mlp(params["MLP_0"], obs)
    return LOW + (np.tanh(raw) + 1.0) / 2.0 * (HIGH - LOW)


def np_critic(params, obs, action, k):
    p = jax.tree.map(lambda x: np.asarray(x, np.float64)[k], params["VmapCritic_0"]["MLP_0"])
    return np_mlp(p, np.concatenate([obs, action], -1))[..., 0]


def flat(tree):
    leaves, treedef = jax.tree.flatten(tree)
    shapes = [np.shape(x) for x in leaves]
    vec = np.concatenate([np.asarray(x, np.float64).ravel() for x in leaves])

    def unflat(v):
        out, i = [], 0
        for s in shapes:
            n = int(np.prod(s))
            out.append(v[i:i + n].reshape(s))
            i += n
        return jax.tree.unflatten(treedef, out)

    return vec, unflat


def finite_difference(fn, tree, eps=1e-6):
    vec, unflat = flat(tree)
    grad = np.zeros_like(vec)
    for i in range(vec.size):
        d = np.zeros_like(vec)
        d[i] = eps
        grad[i] = (fn(unflat(vec + d)) - fn(unflat(vec - d))) / (2 * eps)
    return unflat(grad)


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def setup():
    config = DDPGConfig(hidden_sizes=(5, 4), num_critics=2, gamma=0.9, tau=0.05,
                        actor_lr=1e-2, critic_lr=3e-3, batch_size=BATCH, buffer_size=100,
                        warmup_steps=10, total_steps=100)
    nets = make_networks(config, OBS_DIM, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(1), nets, config)
    # Nonzero biases keep every ReLU away from its kink at exactly 0 (where
    # finite differences and autodiff legitimately disagree), and targets that
    # differ from the online networks make a mix-up show.
    k0, k1, k2, k3 = jax.random.split(jax.random.PRNGKey(2), 4)
    state = state.replace(
        actor_params=jax.tree.map(lambda x: x + 0.1 * jax.random.normal(k0, x.shape),
                                  state.actor_params),
        critic_params=jax.tree.map(lambda x: x + 0.1 * jax.random.normal(k0, x.shape),
                                   state.critic_params),
    )
    state = state.replace(
        target_actor_params=jax.tree.map(
            lambda x: x + 0.3 * jax.random.normal(k1, x.shape), state.actor_params),
        target_critic_params=jax.tree.map(
            lambda x: x + 0.3 * jax.random.normal(k2, x.shape), state.critic_params),
    )
    ks = jax.random.split(k3, 4)
    batch = Transition(
        obs=jax.random.normal(ks[0], (BATCH, OBS_DIM)),
        action=jax.random.uniform(ks[1], (BATCH, 2), minval=LOW, maxval=HIGH),
        reward=jax.random.normal(ks[2], (BATCH,)),
        terminated=jnp.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
        next_obs=jax.random.normal(ks[3], (BATCH, OBS_DIM)),
    )
    return config, nets, state, batch


def np_target(state, batch, gamma):
    b = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)
    next_a = np_actor(state.target_actor_params, b.next_obs)
    q = np.minimum(np_critic(state.target_critic_params, b.next_obs, next_a, 0),
                   np_critic(state.target_critic_params, b.next_obs, next_a, 1))
    return b.reward + gamma * (1.0 - b.terminated) * q


# ----------------------------------------------------------------- tests
def test_target_matches_hand_computation(setup):
    config, nets, state, batch = setup
    y = td_target(state.target_actor_params, state.target_critic_params, batch,
                  jnp.float32(config.gamma), nets.actor_apply, nets.critic_apply)
    expected = np_target(state, batch, config.gamma)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)
    # Terminated rows do not bootstrap at all.
    np.testing.assert_allclose(np.asarray(y)[[1, 4]], np.asarray(batch.reward)[[1, 4]], rtol=1e-6)


def test_critic_gradient_matches_finite_differences(setup):
    config, nets, state, batch = setup
    y = np_target(state, batch, config.gamma)
    b = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)

    def np_loss(params):
        return sum(np.mean((np_critic(params, b.obs, b.action, k) - y) ** 2) for k in range(2))

    (loss, _), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, batch, jnp.asarray(y, jnp.float32), nets.critic_apply)
    np.testing.assert_allclose(float(loss), np_loss(state.critic_params), rtol=1e-5)
    fd = finite_difference(np_loss, state.critic_params)
    chex.assert_trees_all_close(jax.tree.map(np.asarray, grads), fd, rtol=2e-3, atol=2e-5)


def test_actor_gradient_is_dq_da_chained_through_mu(setup):
    config, nets, state, batch = setup
    obs = np.asarray(batch.obs, np.float64)

    def np_objective(actor_params):
        return -np.mean(np_critic(state.critic_params, obs, np_actor(actor_params, obs), 0))

    grads = jax.grad(lambda p: actor_loss(p, state.critic_params, batch.obs, nets.actor_apply,
                                          nets.critic_apply)[0])(state.actor_params)
    fd = finite_difference(np_objective, state.actor_params)
    chex.assert_trees_all_close(jax.tree.map(np.asarray, grads), fd, rtol=2e-3, atol=2e-5)

    # The same gradient written as the chain rule of Lillicrap et al. Eq. 6:
    # -1/N sum_i dQ/da(s_i, mu(s_i)) dmu/dtheta(s_i).
    mu = nets.actor_apply(state.actor_params, batch.obs)
    dq_da = jax.grad(lambda a: jnp.sum(nets.critic_apply(state.critic_params, batch.obs, a)[0]))(mu)
    _, vjp = jax.vjp(lambda p: nets.actor_apply(p, batch.obs), state.actor_params)
    (chained,) = vjp(-dq_da / BATCH)
    chex.assert_trees_all_close(grads, chained, rtol=1e-5, atol=1e-7)


def test_full_update_step(setup):
    config, nets, state, batch = setup
    new_state, metrics = jax.jit(make_update(nets, config))(state, batch)
    y = np_target(state, batch, config.gamma)
    b = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)

    # Critic: the first Adam step moves each weight by lr * g / (|g| + eps).
    def np_closs(params):
        return sum(np.mean((np_critic(params, b.obs, b.action, k) - y) ** 2) for k in range(2))

    g = finite_difference(np_closs, state.critic_params)
    expected = jax.tree.map(lambda p, gi: np.asarray(p, np.float64)
                            - config.critic_lr * gi / (np.abs(gi) + 1e-8),
                            state.critic_params, g)
    mask = jax.tree.map(lambda gi: np.abs(gi) > 1e-4, g)
    for new, exp, m in zip(jax.tree.leaves(new_state.critic_params), jax.tree.leaves(expected),
                           jax.tree.leaves(mask)):
        np.testing.assert_allclose(np.asarray(new)[m], exp[m], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(metrics["critic_loss"]), np_closs(state.critic_params),
                               rtol=1e-5)

    # Actor: its loss is evaluated with the *updated* critic.
    actor_obj = -np.mean(np_critic(new_state.critic_params, b.obs,
                                   np_actor(state.actor_params, b.obs), 0))
    np.testing.assert_allclose(float(metrics["actor_loss"]), actor_obj, rtol=1e-4)
    stale = -np.mean(np_critic(state.critic_params, b.obs, np_actor(state.actor_params, b.obs), 0))
    assert abs(stale - actor_obj) > 1e-4  # the check above can tell the two apart

    def np_aloss(params):
        return -np.mean(np_critic(new_state.critic_params, b.obs, np_actor(params, b.obs), 0))

    ga = finite_difference(np_aloss, state.actor_params)
    for new, old, gi in zip(jax.tree.leaves(new_state.actor_params),
                            jax.tree.leaves(state.actor_params), jax.tree.leaves(ga)):
        m = np.abs(gi) > 1e-4
        exp = np.asarray(old, np.float64) - config.actor_lr * gi / (np.abs(gi) + 1e-8)
        np.testing.assert_allclose(np.asarray(new)[m], exp[m], rtol=1e-4, atol=1e-6)

    assert int(new_state.step) == 1 and int(new_state.actor_step) == 1
    assert set(metrics) >= {"critic_loss", "actor_loss", "q_mean"}


def test_polyak_is_exactly_tau_new_plus_one_minus_tau_old(setup):
    config, nets, state, batch = setup
    new_state, _ = jax.jit(make_update(nets, config))(state, batch)
    tau = config.tau
    for new_t, old_t, online in [
        (new_state.target_actor_params, state.target_actor_params, new_state.actor_params),
        (new_state.target_critic_params, state.target_critic_params, new_state.critic_params),
    ]:
        expected = jax.tree.map(lambda n, o: tau * np.asarray(n, np.float64)
                                + (1 - tau) * np.asarray(o, np.float64), online, old_t)
        chex.assert_trees_all_close(jax.tree.map(np.asarray, new_t), expected, rtol=1e-6, atol=1e-7)


def test_tau_one_copies_online_networks(setup):
    config, nets, state, batch = setup
    state = state.replace(hparams=state.hparams._replace(tau=jnp.float32(1.0)))
    new_state, _ = make_update(nets, config)(state, batch)
    chex.assert_trees_all_close(new_state.target_actor_params, new_state.actor_params)
    chex.assert_trees_all_close(new_state.target_critic_params, new_state.critic_params)


def test_critic_weight_decay_adds_l2_gradient(setup):
    config, nets, state, batch = setup
    # With the TD error made zero the only critic gradient left is wd * theta,
    # so the first Adam step moves every weight by -lr * sign(theta).
    frozen = state.replace(hparams=state.hparams._replace(critic_weight_decay=jnp.float32(0.5),
                                                          gamma=jnp.float32(0.0)))
    q = nets.critic_apply(state.critic_params, batch.obs, batch.action)
    zero_td = batch._replace(reward=q[0], terminated=jnp.ones(BATCH))
    # Make both critics identical so one reward fits them both.
    same = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), state.critic_params)
    frozen = frozen.replace(critic_params=same)
    q = nets.critic_apply(same, batch.obs, batch.action)
    zero_td = zero_td._replace(reward=q[0])
    new_state, metrics = make_update(nets, config)(frozen, zero_td)
    assert float(metrics["critic_loss"]) < 1e-10
    for new, old in zip(jax.tree.leaves(new_state.critic_params), jax.tree.leaves(same)):
        old = np.asarray(old)
        m = np.abs(old) > 1e-3
        np.testing.assert_allclose(np.asarray(new)[m], (old - config.critic_lr * np.sign(old))[m],
                                   rtol=1e-4, atol=1e-6)


def test_vmap_over_states_with_different_hyperparameters(setup):
    config, nets, state, batch = setup
    update = make_update(nets, config)
    states = [
        init_train_state(jax.random.PRNGKey(i), nets, config.replace(
            actor_lr=lr, tau=tau, gamma=gamma))
        for i, (lr, tau, gamma) in enumerate([(1e-3, 0.01, 0.9), (1e-2, 0.5, 0.5),
                                              (3e-4, 1.0, 0.0)])
    ]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    batched, metrics = jax.jit(jax.vmap(update, in_axes=(0, None)))(stacked, batch)
    for i, s in enumerate(states):
        single, m = update(s, batch)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], batched), single,
                                    rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics["critic_loss"][i], m["critic_loss"], rtol=1e-5)
    # The three runs really differ.
    assert not np.allclose(metrics["critic_loss"][0], metrics["critic_loss"][1])


def test_update_composes_with_scan_and_traces_once(setup):
    config, nets, state, batch = setup
    update = chex.assert_max_traces(make_update(nets, config), n=1)

    @jax.jit
    def many(state):
        return jax.lax.scan(lambda s, _: update(s, batch), state, None, length=5)

    out, metrics = many(state)
    out, metrics = many(out)
    assert int(out.step) == 10
    assert metrics["critic_loss"].shape == (5,)
    assert np.all(np.isfinite(np.asarray(metrics["critic_loss"])))


# ----------------------------------------------------------------- network options
def test_critic_takes_the_action_at_its_second_layer_when_asked():
    """critic_action_layer=1 (Lillicrap et al.): Q = W2 relu(W1 [relu(W0 s + b0), a] + b1) + b2."""
    config = DDPGConfig(hidden_sizes=(5, 4), critic_action_layer=1, num_critics=2)
    nets = make_networks(config, OBS_DIM, LOW, HIGH)
    params = nets.critic_init(jax.random.PRNGKey(3))
    mlp = params["VmapCritic_0"]["MLP_0"]
    assert mlp["Dense_0"]["kernel"].shape == (2, OBS_DIM, 5)  # observation only
    assert mlp["Dense_1"]["kernel"].shape == (2, 5 + len(LOW), 4)  # hidden + action
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(BATCH, OBS_DIM))
    action = rng.uniform(LOW, HIGH, size=(BATCH, len(LOW)))
    q = np.asarray(nets.critic_apply(params, jnp.asarray(obs, jnp.float32),
                                     jnp.asarray(action, jnp.float32)))
    for k in range(2):
        p = jax.tree.map(lambda x: np.asarray(x, np.float64)[k], mlp)
        h = np.maximum(obs @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0.0)
        h = np.concatenate([h, action], -1)
        h = np.maximum(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], 0.0)
        expected = (h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"])[..., 0]
        np.testing.assert_allclose(q[k], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("final_layer_init", [0.0, 3e-3])
def test_fan_in_uniform_init_follows_the_fan_in(final_layer_init):
    """Weights and biases ~ U(-1/sqrt(f), 1/sqrt(f)); the paper's final layer overrides it."""
    config = DDPGConfig(hidden_sizes=(300, 200), weight_init="fan_in_uniform",
                        final_layer_init=final_layer_init, critic_action_layer=1)
    nets = make_networks(config, 17, -np.ones(6), np.ones(6))
    actor = nets.actor_init(jax.random.PRNGKey(0))["MLP_0"]
    critic = jax.tree.map(lambda x: x[0], nets.critic_init(jax.random.PRNGKey(1)))
    critic = critic["VmapCritic_0"]["MLP_0"]
    layers = [(actor["Dense_0"], 17), (actor["Dense_1"], 300), (critic["Dense_0"], 17),
              (critic["Dense_1"], 300 + 6)]
    finals = [(actor["Dense_2"], 200), (critic["Dense_2"], 200)]
    if final_layer_init == 0.0:
        layers += finals
    for layer, fan_in in layers:
        bound = 1.0 / np.sqrt(fan_in)
        for name in ("kernel", "bias"):
            x = np.asarray(layer[name], np.float64).ravel()
            assert np.all(np.abs(x) <= bound), name
            if x.size >= 1000:  # U(-b, b) has standard deviation b / sqrt(3)
                np.testing.assert_allclose(x.std(), bound / np.sqrt(3), rtol=0.05)
    if final_layer_init > 0:
        for layer, _ in finals:
            for name in ("kernel", "bias"):
                assert np.all(np.abs(np.asarray(layer[name])) <= final_layer_init)

"""Exploration noise against closed-form statistics, and the clipped exploration policy.

References used here:
  * Gaussian: i.i.d. N(0, scale^2), so sample mean 0, std scale, no
    correlation between steps.
  * OU (Euler-Maruyama, a = 1 - theta dt): x_{t+1} = a x_t + sigma sqrt(dt) eps_t
    (mu = 0). Hence E[x_t] = a^t x_0, Var[x_t] = sigma^2 dt (1 - a^{2t}) / (1 - a^2),
    stationary std sigma sqrt(dt / (1 - a^2)) and lag-1 autocorrelation a.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpg_jax import make_explore
from ddpg_jax.agent.networks import make_networks
from ddpg_jax.agent.noise import NoiseState, gaussian, make_noise, ornstein_uhlenbeck
from ddpg_jax.config import DDPGConfig

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@functools.cache
def _rollout_fn(kind: str, theta: float, dt: float, steps: int, keep_all: bool):
    """Jitted: runs ``steps`` samples from ``state``; returns all noises [steps, N, D] or the last two."""
    noise = make_noise(kind, theta=theta, dt=dt)

    @jax.jit
    def run(state, key, scale):
        def body(s, k):
            n, s = noise.sample(s, k, scale)
            return s, n

        final, ns = jax.lax.scan(body, state, jax.random.split(key, steps))
        return (ns if keep_all else ns[-2:]), final

    return run


# =========================================================================== Gaussian
def test_gaussian_moments_and_state_unchanged():
    noise = gaussian()
    scale = 0.3
    # A nonzero state must neither shift the noise nor be changed by sampling.
    state = NoiseState(jnp.full((2000, 100), 5.0, jnp.float32))
    n, new_state = noise.sample(state, jax.random.PRNGKey(0), scale)
    assert n.shape == (2000, 100) and n.dtype == jnp.float32
    n = np.asarray(n, np.float64)
    count = n.size  # 200k draws
    se_mean = scale / np.sqrt(count)
    se_std = scale / np.sqrt(2 * count)
    assert abs(n.mean()) < 5 * se_mean, n.mean()
    assert abs(n.std() - scale) < 5 * se_std, n.std()
    # Fourth moment of a normal: kurtosis 3 (catches e.g. uniform noise of the right std).
    kurt = ((n - n.mean()) ** 4).mean() / n.var() ** 2
    assert abs(kurt - 3.0) < 0.1, kurt
    np.testing.assert_array_equal(new_state.x, state.x)


def test_gaussian_is_independent_across_steps():
    run = _rollout_fn("gaussian", 0.15, 1.0, 100, True)
    state = NoiseState(jnp.zeros((2000, 1), jnp.float32))
    ns, final = run(state, jax.random.PRNGKey(1), jnp.float32(0.5))
    ns = np.asarray(ns)  # [100, 2000, 1]
    r = _corr(ns[:-1], ns[1:])
    assert abs(r) < 0.015, r  # SE ~ 1/sqrt(198k) = 0.0022
    # Also across environments (rows) within a step, and across action dims.
    assert abs(_corr(ns[:, :-1], ns[:, 1:])) < 0.015
    np.testing.assert_array_equal(final.x, state.x)


def test_gaussian_scale_is_linear_and_keys_matter():
    noise = gaussian()
    state = noise.init(8, 3)
    key = jax.random.PRNGKey(3)
    n1, _ = noise.sample(state, key, 1.0)
    n2, _ = noise.sample(state, key, 2.5)
    np.testing.assert_allclose(n2, 2.5 * np.asarray(n1), rtol=1e-6)
    n0, _ = noise.sample(state, key, 0.0)
    np.testing.assert_array_equal(n0, np.zeros((8, 3)))
    other, _ = noise.sample(state, jax.random.PRNGKey(4), 1.0)
    assert np.all(np.asarray(other) != np.asarray(n1))


# =========================================================================== OU
@SETTINGS
@given(
    theta=st.floats(0.01, 1.0),
    dt_frac=st.floats(0.05, 1.0),
    x0=st.lists(st.floats(-10, 10, allow_subnormal=False), min_size=12, max_size=12),
    steps=st.integers(1, 40),
)
def test_ou_without_noise_decays_exactly(theta, dt_frac, x0, steps):
    dt = dt_frac / theta * 0.999  # any dt with theta * dt in (0, 1)
    a = 1.0 - theta * dt
    noise = ornstein_uhlenbeck(theta=theta, dt=dt)
    x0 = np.asarray(x0, np.float32).reshape(4, 3)
    state = NoiseState(jnp.asarray(x0))
    key = jax.random.PRNGKey(0)
    for t in range(1, steps + 1):
        key, sub = jax.random.split(key)
        n, state = noise.sample(state, sub, 0.0)
        np.testing.assert_array_equal(n, state.x)  # the noise is the new process value
    want = x0.astype(np.float64) * a**steps
    np.testing.assert_allclose(np.asarray(state.x), want, rtol=1e-4, atol=1e-6)


def test_ou_without_noise_hand_computed():
    noise = make_noise("ou", theta=0.3, dt=0.5)  # a = 0.85; checks make_noise passes theta, dt on
    state = NoiseState(jnp.asarray([[2.0, -1.0]], jnp.float32))
    xs = []
    for k in jax.random.split(jax.random.PRNGKey(0), 3):
        n, state = noise.sample(state, k, 0.0)
        xs.append(np.asarray(n)[0])
    np.testing.assert_allclose(xs, [[1.7, -0.85], [1.445, -0.7225], [1.22825, -0.614125]],
                               rtol=1e-6)
    # theta * dt = 1: the process forgets its value in one step.
    noise = ornstein_uhlenbeck(theta=0.5, dt=2.0)
    n, _ = noise.sample(NoiseState(jnp.asarray([[3.0]])), jax.random.PRNGKey(0), 0.0)
    np.testing.assert_allclose(n, [[0.0]], atol=1e-7)


def test_ou_nonzero_mu_decays_towards_mu():
    noise = ornstein_uhlenbeck(theta=0.2, dt=1.0, mu=0.5)
    state = NoiseState(jnp.asarray([[3.0, -1.0]], jnp.float32))
    for k in jax.random.split(jax.random.PRNGKey(0), 10):
        _, state = noise.sample(state, k, 0.0)
    want = 0.5 + (np.array([3.0, -1.0]) - 0.5) * 0.8**10
    np.testing.assert_allclose(np.asarray(state.x)[0], want, rtol=1e-5)


def test_ou_mean_and_variance_over_many_envs():
    theta, dt, sigma, steps, n_envs = 0.15, 1.0, 0.3, 30, 20_000
    a = 1.0 - theta * dt
    x0 = np.array([-2.0, 0.5, 3.0], np.float32)
    run = _rollout_fn("ou", theta, dt, steps, True)
    state = NoiseState(jnp.tile(jnp.asarray(x0), (n_envs, 1)))
    ns, _ = run(state, jax.random.PRNGKey(7), jnp.float32(sigma))
    ns = np.asarray(ns, np.float64)  # [steps, n_envs, 3]
    t = np.arange(1, steps + 1)[:, None]
    var_t = sigma**2 * dt * (1 - a ** (2 * t)) / (1 - a**2)
    mean_want = x0[None, :] * a**t
    tol = 5 * np.sqrt(var_t / n_envs)
    assert np.all(np.abs(ns.mean(axis=1) - mean_want) < tol), (ns.mean(axis=1) - mean_want) / tol
    # The spread across envs grows as the closed-form transient variance.
    np.testing.assert_allclose(ns.var(axis=1), np.broadcast_to(var_t, (steps, 3)), rtol=0.06)


@pytest.mark.parametrize("theta,dt,sigma,burn_in", [(0.15, 1.0, 0.2, 160), (0.5, 0.1, 0.3, 420)])
def test_ou_stationary_std_and_autocorrelation(theta, dt, sigma, burn_in):
    a = 1.0 - theta * dt
    run = _rollout_fn("ou", theta, dt, burn_in, False)
    state = NoiseState(jnp.zeros((50_000, 2), jnp.float32))
    last2, final = run(state, jax.random.PRNGKey(11), jnp.float32(sigma))
    prev, cur = np.asarray(last2[0], np.float64), np.asarray(last2[1], np.float64)
    np.testing.assert_array_equal(cur, np.asarray(final.x))
    std_want = sigma * np.sqrt(dt / (1.0 - a**2))
    # 100k draws: SE of the std ~ 0.22%.
    assert abs(cur.std() / std_want - 1.0) < 0.02, (cur.std(), std_want)
    assert abs(cur.mean()) < 5 * std_want / np.sqrt(cur.size)
    r = _corr(prev, cur)
    assert abs(r - a) < 0.01, (r, a)


def test_ou_constructor_rejects_non_mean_reverting():
    for theta, dt in [(0.0, 1.0), (2.0, 1.0), (0.15, 10.0), (-0.1, 1.0), (0.15, 0.0)]:
        with pytest.raises(ValueError):
            ornstein_uhlenbeck(theta=theta, dt=dt)
    with pytest.raises(ValueError):
        make_noise("ou", theta=2.0, dt=1.0)


# =========================================================================== reset
@SETTINGS
@given(
    num_envs=st.integers(1, 16),
    action_dim=st.integers(1, 4),
    data=st.data(),
)
def test_reset_zeroes_exactly_the_done_rows(num_envs, action_dim, data):
    done = np.asarray(data.draw(st.lists(st.booleans(), min_size=num_envs, max_size=num_envs)))
    x = np.asarray(data.draw(st.lists(st.floats(-5, 5, allow_subnormal=False).filter(lambda v: v != 0),
                                      min_size=num_envs * action_dim,
                                      max_size=num_envs * action_dim)),
                   np.float32).reshape(num_envs, action_dim)
    for noise in (gaussian(), ornstein_uhlenbeck()):
        out = noise.reset(NoiseState(jnp.asarray(x)), jnp.asarray(done))
        got = np.asarray(out.x)
        assert got.shape == x.shape and got.dtype == np.float32
        want = np.where(done[:, None], 0.0, x)
        np.testing.assert_array_equal(got, want)


def test_init_shape_and_zero():
    for kind in ("gaussian", "ou"):
        s = make_noise(kind).init(5, 3)
        assert s.x.shape == (5, 3) and s.x.dtype == jnp.float32
        assert not np.any(np.asarray(s.x))


def test_make_noise_rejects_unknown_kinds():
    for bad in ("uniform", "Gaussian", "OU", "", "normal", None):
        with pytest.raises(ValueError, match="gaussian"):
            make_noise(bad)


# =========================================================================== jit / vmap
@pytest.mark.parametrize("kind", ["gaussian", "ou"])
def test_jit_and_vmap_with_traced_scale(kind):
    noise = make_noise(kind)
    state = NoiseState(jax.random.normal(jax.random.PRNGKey(0), (4, 2)))
    key = jax.random.PRNGKey(1)
    n_eager, s_eager = noise.sample(state, key, 0.3)
    n_jit, s_jit = jax.jit(noise.sample)(state, key, jnp.float32(0.3))
    np.testing.assert_allclose(n_jit, n_eager, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s_jit.x, s_eager.x, rtol=1e-6, atol=1e-7)

    # vmap over keys, scales (a traced array) and states together.
    scales = jnp.asarray([0.0, 0.1, 1.0, 2.0], jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    states = NoiseState(jax.random.normal(jax.random.PRNGKey(3), (4, 4, 2)))
    ns, new = jax.jit(jax.vmap(noise.sample))(states, keys, scales)
    for i in range(4):
        n_i, s_i = noise.sample(NoiseState(states.x[i]), keys[i], float(scales[i]))
        np.testing.assert_allclose(ns[i], n_i, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(new.x[i], s_i.x, rtol=1e-6, atol=1e-7)
    # Different keys give different noise (all scales > 0 rows differ elementwise).
    assert np.all(np.asarray(ns[2]) != np.asarray(ns[3]) * 0.5)  # scale 1 vs 2, different keys
    n_a, _ = noise.sample(state, jax.random.PRNGKey(10), 1.0)
    n_b, _ = noise.sample(state, jax.random.PRNGKey(11), 1.0)
    assert np.all(np.asarray(n_a) != np.asarray(n_b))

    # reset under jit and vmap.
    dones = jnp.asarray([[True, False, False, True]] * 4)
    reset = jax.jit(jax.vmap(noise.reset))(states, dones)
    np.testing.assert_array_equal(reset.x, np.where(np.asarray(dones)[..., None], 0.0, states.x))


# =========================================================================== exploration policy
LOW = np.array([0.0, -1.0], np.float32)
HIGH = np.array([3.0, 5.0], np.float32)


@functools.cache
def _actor():
    config = DDPGConfig(hidden_sizes=(32, 32))
    networks = make_networks(config, 3, LOW, HIGH)
    params = networks.actor_init(jax.random.PRNGKey(0))
    return networks, params


def _obs(n: int, seed: int = 5) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (n, 3))


@pytest.mark.parametrize("kind", ["gaussian", "ou"])
def test_explore_with_huge_noise_stays_in_asymmetric_bounds(kind):
    networks, params = _actor()
    noise = make_noise(kind)
    explore = jax.jit(make_explore(networks, noise))
    obs = _obs(2000)
    action, new_state = explore(params, noise.init(2000, 2), jax.random.PRNGKey(1), obs,
                                jnp.float32(1e3))
    action = np.asarray(action)
    assert action.shape == (2000, 2)
    assert np.all(action >= LOW) and np.all(action <= HIGH)
    for d in range(2):  # the env's own bounds, not [-1, 1], are hit on both sides
        assert np.any(action[:, d] == LOW[d]), d
        assert np.any(action[:, d] == HIGH[d]), d
    if kind == "ou":
        assert np.any(np.asarray(new_state.x) != 0)


@pytest.mark.parametrize("kind", ["gaussian", "ou"])
def test_explore_with_zero_scale_is_the_actor(kind):
    networks, params = _actor()
    noise = make_noise(kind)
    explore = make_explore(networks, noise)
    obs = _obs(256)
    action, _ = explore(params, noise.init(256, 2), jax.random.PRNGKey(1), obs, 0.0)
    np.testing.assert_array_equal(np.asarray(action), np.asarray(networks.actor_apply(params, obs)))


def test_explore_noise_is_in_units_of_the_half_range():
    networks, params = _actor()
    noise = gaussian()
    explore = jax.jit(make_explore(networks, noise))
    obs = _obs(8000, seed=9)
    scale = 0.01
    action, _ = explore(params, noise.init(8000, 2), jax.random.PRNGKey(2), obs, jnp.float32(scale))
    mu = np.asarray(networks.actor_apply(params, obs), np.float64)
    half_range = (HIGH - LOW) / 2.0  # [1.5, 3.0]
    inside = np.all((mu > LOW + 0.2) & (mu < HIGH - 0.2), axis=1)  # clipping cannot bite
    assert inside.sum() > 4000
    dev = (np.asarray(action, np.float64) - mu)[inside]
    np.testing.assert_allclose(dev.std(axis=0), half_range * scale, rtol=0.06)
    assert np.all(np.abs(dev.mean(axis=0)) < 5 * half_range * scale / np.sqrt(inside.sum()))


def test_actor_output_in_bounds_for_extreme_observations():
    networks, params = _actor()
    obs = _obs(512, seed=3)
    for factor in (1e6, -1e6):
        a = np.asarray(networks.actor_apply(params, obs * factor))
        assert np.all(np.isfinite(a))
        assert np.all(a >= LOW) and np.all(a <= HIGH), (a.min(axis=0), a.max(axis=0))
    a = np.asarray(networks.actor_apply(params, jnp.zeros(3)))
    assert a.shape == (2,) and np.all(a >= LOW) and np.all(a <= HIGH)

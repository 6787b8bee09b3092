"""Adapters: gymnasium functional envs and gymnax (optional); brax is in test_brax.py."""

from __future__ import annotations

import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpg_jax.envs import (
    AdapterState,
    PendulumState,
    from_brax,
    from_gymnasium_functional,
    from_gymnax,
    make,
)
from ddpg_jax.envs.adapters import BRAX_HINT, GYMNAX_HINT

phys2d = pytest.importorskip("gymnasium.envs.phys2d")


def _rollout(env, params, key, n_steps, policy=None):
    """Scan rollout; ``policy(obs) -> action`` or uniform random actions."""
    key_reset, key_loop = jax.random.split(key)
    obs, state = env.reset(key_reset, params)
    space = env.action_space(params)

    def body(carry, key):
        obs, state = carry
        key_act, key_step = jax.random.split(key)
        action = space.sample(key_act) if policy is None else policy(obs)
        next_obs, state, reward, term, trunc, info = env.step(key_step, state, action, params)
        out = {
            "obs": obs,
            "action": action,
            "next_obs": next_obs,
            "reward": reward,
            "terminated": term,
            "truncated": trunc,
            "final_obs": info["final_observation"],
        }
        return (next_obs, state), out

    _, traj = jax.lax.scan(body, (obs, state), jax.random.split(key_loop, n_steps))
    return traj


# ---------------------------------------------------------------------- #
# gymnasium functional envs
# ---------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def func_pendulum():
    func_env = phys2d.PendulumFunctional()
    env, params = from_gymnasium_functional(func_env, max_steps_in_episode=200)
    return func_env, env, params


def _random_pendulum_batch(n, seed):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-3 * np.pi, 3 * np.pi, n).astype(np.float32)
    theta_dot = rng.uniform(-8, 8, n).astype(np.float32)
    action = rng.uniform(-3, 3, (n, 1)).astype(np.float32)  # some out of bounds
    return theta, theta_dot, action


def test_functional_adapter_matches_gymnasium_functional(func_pendulum):
    func_env, env, params = func_pendulum
    theta, theta_dot, action = _random_pendulum_batch(256, 0)
    raw = jnp.stack([theta, theta_dot], axis=1)
    state = AdapterState(env_state=raw, time=jnp.zeros(256, jnp.int32))
    keys = jax.random.split(jax.random.key(0), 256)
    _, next_state, reward, term, trunc, info = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(
        keys, state, action, params
    )

    fp = func_env.default_params
    expected_next = jax.vmap(lambda s, a: func_env.transition(s, a, None, fp))(raw, action)
    expected_obs = jax.vmap(lambda s: func_env.observation(s, None, fp))(expected_next)
    expected_reward = jax.vmap(lambda s, a, n: func_env.reward(s, a, n, None, fp))(
        raw, action, expected_next
    )
    np.testing.assert_allclose(next_state.env_state, expected_next, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(info["final_observation"], expected_obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reward, expected_reward, rtol=1e-6, atol=1e-6)
    assert not term.any() and not trunc.any()


def test_functional_adapter_matches_builtin_pendulum(func_pendulum):
    _, env, params = func_pendulum
    ours, our_params = make("Pendulum-v1")
    theta, theta_dot, action = _random_pendulum_batch(256, 1)
    time = jnp.full(256, 5, jnp.int32)
    keys = jax.random.split(jax.random.key(1), 256)
    adapted = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(
        keys, AdapterState(jnp.stack([theta, theta_dot], axis=1), time), action, params
    )
    builtin = jax.jit(jax.vmap(ours.step, in_axes=(0, 0, 0, None)))(
        keys, PendulumState(theta, theta_dot, time), action, our_params
    )
    np.testing.assert_allclose(adapted[0], builtin[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(adapted[2], builtin[2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        adapted[5]["final_observation"], builtin[5]["final_observation"], rtol=1e-6, atol=1e-6
    )


def test_functional_adapter_accepts_functional_jax_env_and_matches_its_step():
    genv = phys2d.PendulumJaxEnv()
    env, params = from_gymnasium_functional(genv, max_steps_in_episode=200)
    step = jax.jit(env.step)
    genv.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(20):
        action = rng.uniform(-2, 2, 1).astype(np.float32)
        state = AdapterState(env_state=genv.state, time=jnp.int32(t))
        _, _, reward, term, trunc, info = step(jax.random.key(t), state, action, params)
        g_obs, g_reward, g_term, g_trunc, _ = genv.step(action)
        np.testing.assert_allclose(info["final_observation"], g_obs, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(reward, g_reward, rtol=1e-6)
        assert bool(term) == g_term and bool(trunc) == g_trunc


def test_functional_adapter_time_limit_and_autoreset(func_pendulum):
    _, env, params = func_pendulum
    assert env.obs_shape == (3,) and env.action_shape == (1,)
    np.testing.assert_array_equal(env.action_space(params).high, [2.0])
    traj = jax.device_get(jax.jit(lambda k: _rollout(env, params, k, 410))(jax.random.key(0)))
    assert np.flatnonzero(traj["truncated"]).tolist() == [199, 399]
    assert not traj["terminated"].any()
    same = (traj["next_obs"] == traj["final_obs"]).all(axis=1)
    np.testing.assert_array_equal(same, ~traj["truncated"])


def test_functional_adapter_rejects_discrete_actions():
    with pytest.raises(ValueError, match=r"action space Discrete\(2\).*Box"):
        from_gymnasium_functional(phys2d.CartPoleFunctional(), max_steps_in_episode=500)


def test_functional_adapter_rejects_bad_inputs():
    with pytest.raises(TypeError, match="not a gymnasium FuncEnv"):
        from_gymnasium_functional(object(), max_steps_in_episode=10)
    with pytest.raises(ValueError, match="max_steps_in_episode must be >= 1, got 0"):
        from_gymnasium_functional(phys2d.PendulumFunctional(), max_steps_in_episode=0)


# ---------------------------------------------------------------------- #
# missing optional extras
# ---------------------------------------------------------------------- #


def test_missing_gymnax_message(monkeypatch):
    # A None entry in sys.modules makes "import gymnax" fail like a missing package.
    monkeypatch.setitem(sys.modules, "gymnax", None)
    with pytest.raises(ImportError) as excinfo:
        from_gymnax("Pendulum-v1")
    assert str(excinfo.value) == 'gymnax is not installed: pip install "ddpg-jax[gymnax]"'
    assert str(excinfo.value) == GYMNAX_HINT


def test_missing_brax_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    with pytest.raises(ImportError) as excinfo:
        from_brax("halfcheetah")
    assert str(excinfo.value) == 'brax is not installed: pip install "ddpg-jax[brax]"'
    with pytest.raises(ImportError, match="ddpg-jax\\[brax\\]"):
        from_brax(object())
    assert BRAX_HINT in str(excinfo.value)


def test_extra_with_broken_dependency_names_the_cause(monkeypatch):
    real_import = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name == "gymnax":
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(ImportError, match="matplotlib") as excinfo:
        from_gymnax("Pendulum-v1")
    assert GYMNAX_HINT in str(excinfo.value)


# ---------------------------------------------------------------------- #
# gymnax (optional)
# ---------------------------------------------------------------------- #


def test_gymnax_pendulum_matches_gymnax_step():
    gymnax = pytest.importorskip("gymnax")
    env, params = from_gymnax("Pendulum-v1")
    genv, gparams = gymnax.make("Pendulum-v1")
    assert env.obs_shape == (3,) and env.action_shape == (1,)
    assert params.max_steps_in_episode == 200

    def gymnax_rollout(key, n_steps):
        key_reset, key_loop = jax.random.split(key)
        obs, state = genv.reset(key_reset, gparams)

        def body(carry, key):
            _, state = carry
            key_act, key_step = jax.random.split(key)
            action = env.action_space(params).sample(key_act)
            next_obs, state, reward, term, trunc, info = genv.step(key_step, state, action, gparams)
            out = {
                "next_obs": next_obs,
                "reward": reward,
                "terminated": term,
                "truncated": trunc,
                "final_obs": info["final_observation"],
            }
            return (next_obs, state), out

        return jax.lax.scan(body, (obs, state), jax.random.split(key_loop, n_steps))[1]

    key = jax.random.key(0)
    ours = jax.device_get(jax.jit(lambda k: _rollout(env, params, k, 410))(key))
    theirs = jax.device_get(jax.jit(lambda k: gymnax_rollout(k, 410))(key))
    # Same key splitting as gymnax's own step, so even the resets coincide.
    for name in ("next_obs", "reward", "final_obs"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-6)
    for name in ("terminated", "truncated"):
        np.testing.assert_array_equal(ours[name], np.asarray(theirs[name]).reshape(-1))
    assert np.flatnonzero(ours["truncated"]).tolist() == [199, 399]


def test_gymnax_pendulum_same_transition_as_builtin():
    pytest.importorskip("gymnax")
    from gymnax.environments.classic_control.pendulum import EnvState

    env, params = from_gymnax("Pendulum-v1")
    ours, our_params = make("Pendulum-v1")
    theta, theta_dot, action = _random_pendulum_batch(128, 2)
    time = jnp.full(128, 3, jnp.int32)
    keys = jax.random.split(jax.random.key(2), 128)
    gstate = EnvState(theta=theta, theta_dot=theta_dot, last_u=jnp.zeros(128), time=time)
    adapted = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(
        keys, AdapterState(gstate, time), action, params
    )
    builtin = jax.jit(jax.vmap(ours.step, in_axes=(0, 0, 0, None)))(
        keys, PendulumState(theta, theta_dot, time), action, our_params
    )
    np.testing.assert_allclose(adapted[0], builtin[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adapted[2], builtin[2], rtol=1e-5, atol=1e-5)


def test_gymnax_mountain_car_flags():
    pytest.importorskip("gymnax")
    env, params = from_gymnax("MountainCarContinuous-v0")
    pump = lambda obs: jnp.where(obs[1] >= 0, 1.0, -1.0)[None]
    traj = jax.device_get(jax.jit(lambda k: _rollout(env, params, k, 600, pump))(jax.random.key(0)))
    term, trunc = traj["terminated"], traj["truncated"]
    assert term.sum() >= 3 and not trunc.any()
    assert (traj["reward"][term] > 99).all()

    short = params.replace(max_steps_in_episode=30)
    traj = jax.device_get(jax.jit(lambda k: _rollout(env, short, k, 65))(jax.random.key(1)))
    assert np.flatnonzero(traj["truncated"]).tolist() == [29, 59]
    assert not traj["terminated"].any()


def test_gymnax_single_done_api_is_split_by_time():
    """Older gymnax: one ``done`` that also fires on the time limit."""
    pytest.importorskip("gymnax")
    from gymnax.environments.classic_control.continuous_mountain_car import (
        ContinuousMountainCar,
    )

    class SingleDone(ContinuousMountainCar):
        is_truncated = None  # not callable: the adapter takes the single-done path

        def step_env(self, key, state, action, params):
            obs, state, reward, done, info = super().step_env(key, state, action, params)
            return obs, state, reward, done | (state.time >= params.max_steps_in_episode), info

    env, params = from_gymnax(SingleDone())
    params = params.replace(max_steps_in_episode=40)
    pump = lambda obs: jnp.where(obs[1] >= 0, 1.0, -1.0)[None]
    traj = jax.device_get(jax.jit(lambda k: _rollout(env, params, k, 400, pump))(jax.random.key(0)))
    # With 40 steps the car never reaches the goal: all ends are truncations.
    assert np.flatnonzero(traj["truncated"]).tolist() == list(range(39, 400, 40))
    assert not traj["terminated"].any()
    long = params.replace(max_steps_in_episode=999)
    traj = jax.device_get(jax.jit(lambda k: _rollout(env, long, k, 400, pump))(jax.random.key(0)))
    assert traj["terminated"].any() and not traj["truncated"].any()


def test_gymnax_rejects_discrete_actions():
    pytest.importorskip("gymnax")
    with pytest.raises(ValueError, match="action space.*Box"):
        from_gymnax("CartPole-v1")

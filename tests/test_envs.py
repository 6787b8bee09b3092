"""Built-in JAX envs against gymnasium 1.4, plus the protocol's jit/vmap/scan behaviour.

The parity harness drives gymnasium with some policy, records gymnasium's
state before every step, then steps our env from exactly that state (one
batched, jitted call over all recorded steps) and compares what comes out.
Mutated copies of the dynamics at the end show the harness is sharp enough to
catch the classic porting mistakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpg_jax.envs import (
    Box,
    Environment,
    MountainCarContinuous,
    MountainCarContinuousState,
    Pendulum,
    PendulumState,
    make,
    registered_envs,
)
from ddpg_jax.envs.pendulum import angle_normalize

PENDULUM = "Pendulum-v1"
MCC = "MountainCarContinuous-v0"
ATOL = RTOL = 1e-5

Policy = Callable[[np.ndarray, np.random.Generator], Any]


# ---------------------------------------------------------------------- #
# harness
# ---------------------------------------------------------------------- #


class Record(NamedTuple):
    """A gymnasium trajectory, one row per step (float64 states as gymnasium keeps them)."""

    state: np.ndarray  # [n, 2] gymnasium's unwrapped state before the step
    time: np.ndarray  # [n] int: steps already taken in the episode
    action: np.ndarray  # [n, 1] float32
    next_state: np.ndarray  # [n, 2] state after the step (before any reset)
    next_obs: np.ndarray  # [n, obs_dim] float32 obs returned by gymnasium's step
    reward: np.ndarray  # [n] float64
    terminated: np.ndarray  # [n] bool
    truncated: np.ndarray  # [n] bool


def record_gymnasium(env_id: str, policy: Policy, n_steps: int, seed: int, **make_kwargs) -> Record:
    """Runs gymnasium (with its TimeLimit) for ``n_steps``, resetting as episodes end."""
    env = gym.make(env_id, **make_kwargs)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list] = {f: [] for f in Record._fields}
    t = 0
    for _ in range(n_steps):
        action = np.asarray(policy(obs, rng), np.float32).reshape(1)
        rows["state"].append(np.array(env.unwrapped.state, np.float64))
        rows["time"].append(t)
        rows["action"].append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rows["next_state"].append(np.array(env.unwrapped.state, np.float64))
        rows["next_obs"].append(obs)
        rows["reward"].append(reward)
        rows["terminated"].append(terminated)
        rows["truncated"].append(truncated)
        t += 1
        if terminated or truncated:
            obs, _ = env.reset()
            t = 0
    env.close()
    return Record(*(np.asarray(rows[f]) for f in Record._fields))


def build_state(env: Environment, state: np.ndarray, time: np.ndarray) -> Any:
    """Our state pytree (batched) from gymnasium's ``[n, 2]`` states."""
    s = jnp.asarray(state, jnp.float32)
    t = jnp.asarray(time, jnp.int32)
    if isinstance(env, Pendulum):
        return PendulumState(theta=s[:, 0], theta_dot=s[:, 1], time=t)
    if isinstance(env, MountainCarContinuous):
        return MountainCarContinuousState(position=s[:, 0], velocity=s[:, 1], time=t)
    raise TypeError(type(env))


def _cache_key(env: Environment) -> tuple:
    # make() builds a new instance each call; key the compiled functions on
    # what determines the dynamics so they are traced once per env kind.
    return (type(env), getattr(env, "mutation", None))


_COMPILED: dict[tuple, Callable] = {}


def batched_step_and_reset(env: Environment) -> Callable:
    """Jitted ``(keys, states, actions, params) -> (step outputs, reset obs of split(key)[1])``."""
    if _cache_key(env) not in _COMPILED:

        def run(keys, state, action, params):
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
            reset_keys = jax.vmap(lambda k: jax.random.split(k)[1])(keys)
            reset_obs, _ = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
            return out, reset_obs

        _COMPILED[_cache_key(env)] = jax.jit(run)
    return _COMPILED[_cache_key(env)]


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    # Fixed batch sizes let every parity check reuse one compiled function.
    return np.concatenate([x, np.repeat(x[:1], size - len(x), axis=0)])


def _first(mask: np.ndarray, k: int = 3) -> list[int]:
    return np.flatnonzero(mask)[:k].tolist()


def parity_errors(env: Environment, params: Any, rec: Record, seed: int = 0) -> list[str]:
    """Steps ``env`` from every recorded gymnasium state; returns what disagrees."""
    n = len(rec.action)
    size = -(-n // 1024) * 1024
    keys = jax.random.split(jax.random.key(seed), size)
    state = build_state(env, _pad(rec.state, size), _pad(rec.time, size))
    (obs, next_state, reward, terminated, truncated, info), reset_obs = jax.device_get(
        batched_step_and_reset(env)(keys, state, jnp.asarray(_pad(rec.action, size)), params)
    )
    obs, reward, terminated, truncated = obs[:n], reward[:n], terminated[:n], truncated[:n]
    final_obs, reset_obs, next_time = (
        info["final_observation"][:n],
        reset_obs[:n],
        next_state.time[:n],
    )
    errors = []

    bad = ~np.isclose(final_obs, rec.next_obs, rtol=RTOL, atol=ATOL).all(axis=1)
    if bad.any():
        i = _first(bad)
        errors.append(f"obs differ at {i}: ours {final_obs[i]} gymnasium {rec.next_obs[i]}")
    bad = ~np.isclose(reward, rec.reward, rtol=RTOL, atol=ATOL)
    if bad.any():
        i = _first(bad)
        errors.append(f"reward differs at {i}: ours {reward[i]} gymnasium {rec.reward[i]}")
    for name, ours, theirs in (
        ("terminated", terminated, rec.terminated),
        ("truncated", truncated, rec.truncated),
    ):
        if (ours != theirs).any():
            errors.append(f"{name} differs at {_first(ours != theirs)}")

    # Auto-reset: done steps return the reset of split(key)[1], others go on.
    done = terminated | truncated
    expected_obs = np.where(done[:, None], reset_obs, final_obs)
    if not np.array_equal(obs, expected_obs):
        errors.append(f"auto-reset obs wrong at {_first((obs != expected_obs).any(axis=1))}")
    expected_time = np.where(done, 0, rec.time + 1)
    if not np.array_equal(next_time, expected_time):
        errors.append(f"time counter wrong at {_first(next_time != expected_time)}")
    return errors


def assert_parity(env_id: str, policy: Policy, n_steps: int, seed: int, **kwargs) -> Record:
    rec = record_gymnasium(env_id, policy, n_steps, seed, **kwargs)
    env, params = make(env_id, **kwargs)
    errors = parity_errors(env, params, rec, seed)
    assert not errors, "\n".join(errors)
    return rec


# policies (all see gymnasium's observation)
def uniform(low: float, high: float) -> Policy:
    return lambda obs, rng: rng.uniform(low, high, size=1)


def pendulum_pump(obs, rng):
    # Full torque along the angular velocity: spins the pendulum up to max_speed.
    return 2.0 if obs[2] >= 0 else -2.0


def mcc_pump(obs, rng):
    # Push along the velocity: gains energy and reaches the goal in ~100 steps.
    return 1.0 if obs[1] >= 0 else -1.0


def mcc_pump_left(obs, rng):
    # Gains energy only towards the left, so the car keeps slamming the left wall.
    return -1.0 if obs[1] < 0 or obs[0] > -0.5 else 1.0


# ---------------------------------------------------------------------- #
# parity with gymnasium
# ---------------------------------------------------------------------- #


def test_pendulum_random_actions_three_episodes():
    rec = assert_parity(PENDULUM, uniform(-2.0, 2.0), 3 * 200 + 17, seed=1)
    assert np.flatnonzero(rec.truncated).tolist() == [199, 399, 599]
    assert not rec.terminated.any()


def test_pendulum_out_of_bounds_actions_are_clipped():
    rec = assert_parity(PENDULUM, uniform(-6.0, 6.0), 250, seed=2)
    assert (np.abs(rec.action) > 2.0).mean() > 0.5


def test_pendulum_energy_pumping_hits_speed_limit():
    rec = assert_parity(PENDULUM, pendulum_pump, 400, seed=3)
    assert (np.abs(rec.next_state[:, 1]) == 8.0).sum() > 10, "speed clip never exercised"
    # Many full turns: theta is not wrapped, in gymnasium or here.
    assert np.abs(rec.next_state[:, 0]).max() > 4 * np.pi


def test_pendulum_gravity_parameter():
    assert_parity(PENDULUM, uniform(-2.0, 2.0), 200, seed=4, g=9.81)


def test_mcc_random_actions_long():
    rec = assert_parity(MCC, uniform(-1.0, 1.0), 2000, seed=5)
    assert np.flatnonzero(rec.truncated).tolist() == [998, 1997]


def test_mcc_out_of_bounds_actions():
    # The force is clipped but gymnasium's action cost uses the raw action.
    rec = assert_parity(MCC, uniform(-3.0, 3.0), 600, seed=6)
    assert (np.abs(rec.action) > 1.0).mean() > 0.5


def test_mcc_left_wall():
    rec = assert_parity(MCC, mcc_pump_left, 999, seed=7)
    at_wall = rec.next_state[:, 0] == np.float32(-1.2)
    assert at_wall.sum() >= 5, "scripted policy never reached the left wall"
    # gymnasium stops the car there; arriving with negative velocity is what
    # triggers the rule.
    assert (rec.next_state[at_wall, 1] == 0).all()
    assert (rec.state[at_wall, 1] < 0).all()


def test_mcc_reaches_goal():
    rec = assert_parity(MCC, mcc_pump, 999, seed=8)
    assert rec.terminated.sum() >= 3
    assert (rec.reward[rec.terminated] > 99.0).all()
    assert not (rec.terminated & rec.truncated).any()


def test_mcc_goal_velocity_parameter():
    rec = assert_parity(MCC, mcc_pump, 600, seed=9, goal_velocity=0.02)
    assert rec.terminated.any()


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit:
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


def test_mcc_termination_on_last_step_sets_both_flags_like_gymnasium():
    genv = gym.make(MCC)
    genv.reset(seed=0)
    _time_limit(genv)._elapsed_steps = 998
    genv.unwrapped.state = np.array([0.44, 0.05], np.float32)
    action = np.array([1.0], np.float32)
    g_obs, g_reward, g_term, g_trunc, _ = genv.step(action)
    assert g_term and g_trunc

    env, params = make(MCC)
    state = MountainCarContinuousState(jnp.float32(0.44), jnp.float32(0.05), jnp.int32(998))
    _, _, reward, term, trunc, info = env.step(jax.random.key(0), state, action, params)
    assert bool(term) and bool(trunc)
    np.testing.assert_allclose(info["final_observation"], g_obs, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(reward, g_reward, rtol=RTOL)


def test_truncation_at_200_resets_and_keeps_final_observation():
    rec = record_gymnasium(PENDULUM, uniform(-2.0, 2.0), 200, seed=10)
    assert rec.truncated[199] and rec.time[199] == 199
    env, params = make(PENDULUM)
    state = build_state(env, rec.state[199:], rec.time[199:])
    state = jax.tree.map(lambda x: x[0], state)
    key = jax.random.key(11)
    obs, new_state, _, term, trunc, info = env.step(key, state, rec.action[199], params)
    assert bool(trunc) and not bool(term)
    np.testing.assert_allclose(info["final_observation"], rec.next_obs[199], rtol=RTOL, atol=ATOL)
    reset_obs, _ = env.reset(jax.random.split(key)[1], params)
    np.testing.assert_array_equal(obs, reset_obs)
    assert int(new_state.time) == 0
    assert not np.allclose(obs, info["final_observation"])


@pytest.mark.parametrize("env_id", [PENDULUM, MCC])
def test_spaces_match_gymnasium(env_id):
    genv = gym.make(env_id)
    env, params = make(env_id)
    for ours, theirs in (
        (env.observation_space(params), genv.observation_space),
        (env.action_space(params), genv.action_space),
    ):
        assert ours.shape == theirs.shape
        np.testing.assert_array_equal(ours.low, theirs.low)
        np.testing.assert_array_equal(ours.high, theirs.high)
    assert genv.spec.max_episode_steps == params.max_steps_in_episode
    assert env.obs_shape == genv.observation_space.shape
    assert env.action_shape == genv.action_space.shape


# ---------------------------------------------------------------------- #
# reset distribution
# ---------------------------------------------------------------------- #


def test_pendulum_reset_distribution():
    env, params = make(PENDULUM)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    obs, state = reset(jax.random.split(jax.random.key(0), 20000), params)
    theta, thdot = np.asarray(state.theta), np.asarray(state.theta_dot)
    assert theta.min() >= -np.pi and theta.max() <= np.pi
    assert theta.min() < -np.pi + 0.01 and theta.max() > np.pi - 0.01
    assert thdot.min() >= -1.0 and thdot.max() <= 1.0
    assert thdot.min() < -0.999 and thdot.max() > 0.999
    # Uniform, not e.g. normal: mean 0, std half-width / sqrt(3).
    assert abs(theta.mean()) < 0.05 and abs(theta.std() - np.pi / np.sqrt(3)) < 0.02
    assert abs(thdot.std() - 1 / np.sqrt(3)) < 0.01
    np.testing.assert_allclose(obs[:, 0], np.cos(theta), atol=1e-6)
    np.testing.assert_allclose(obs[:, 1], np.sin(theta), atol=1e-6)
    np.testing.assert_array_equal(obs[:, 2], thdot)
    assert (np.asarray(state.time) == 0).all()
    assert len(np.unique(theta)) > 19900


def test_mcc_reset_distribution():
    env, params = make(MCC)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    obs, state = reset(jax.random.split(jax.random.key(1), 20000), params)
    pos = np.asarray(state.position)
    assert pos.min() >= -0.6 and pos.max() <= -0.4
    assert pos.min() < -0.599 and pos.max() > -0.401
    assert abs(pos.mean() + 0.5) < 0.003
    assert (np.asarray(state.velocity) == 0).all()
    np.testing.assert_array_equal(obs, np.stack([pos, np.zeros_like(pos)], axis=1))


# ---------------------------------------------------------------------- #
# jit / vmap / scan
# ---------------------------------------------------------------------- #


def random_rollout(env: Environment, params: Any, key: jax.Array, n_steps: int):
    """Uniform random actions in a ``lax.scan``; returns per-step outputs."""
    key_reset, key_loop = jax.random.split(key)
    obs, state = env.reset(key_reset, params)
    space = env.action_space(params)

    def body(carry, key):
        obs, state = carry
        key_act, key_step = jax.random.split(key)
        action = space.sample(key_act)
        next_obs, state, reward, term, trunc, info = env.step(key_step, state, action, params)
        out = {
            "obs": obs,
            "next_obs": next_obs,
            "reward": reward,
            "terminated": term,
            "truncated": trunc,
            "final_obs": info["final_observation"],
            "time": state.time,
        }
        return (next_obs, state), out

    _, traj = jax.lax.scan(body, (obs, state), jax.random.split(key_loop, n_steps))
    return traj


def test_vmap_scan_rollout_differs_per_key_and_truncates_on_time():
    env, params = make(PENDULUM)
    keys = jax.random.split(jax.random.key(42), 4)
    traj = jax.device_get(jax.jit(jax.vmap(lambda k: random_rollout(env, params, k, 450)))(keys))
    assert traj["obs"].shape == (4, 450, 3) and traj["obs"].dtype == np.float32
    assert traj["reward"].dtype == np.float32 and traj["terminated"].dtype == np.bool_
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(traj["obs"][i], traj["obs"][j])
    for i in range(4):
        assert np.flatnonzero(traj["truncated"][i]).tolist() == [199, 399]
        assert not traj["terminated"][i].any()
        np.testing.assert_array_equal(traj["time"][i, :201], np.r_[np.arange(1, 200), 0, 1])
        done = traj["truncated"][i]
        # next_obs == final_obs exactly when the episode continues.
        same = (traj["next_obs"][i] == traj["final_obs"][i]).all(axis=1)
        np.testing.assert_array_equal(same, ~done)
        # The scan carries next_obs forward as the next obs.
        np.testing.assert_array_equal(traj["obs"][i, 1:], traj["next_obs"][i, :-1])


def test_scan_matches_stepwise_jit():
    env, params = make(MCC)
    key = jax.random.key(3)
    traj = jax.jit(lambda k: random_rollout(env, params, k, 60))(key)

    key_reset, key_loop = jax.random.split(key)
    obs, state = env.reset(key_reset, params)
    space = env.action_space(params)

    @jax.jit
    def act_and_step(k, state):
        key_act, key_step = jax.random.split(k)
        return env.step(key_step, state, space.sample(key_act), params)

    for t, k in enumerate(jax.random.split(key_loop, 60)):
        obs, state, reward, *_ = act_and_step(k, state)
        np.testing.assert_allclose(obs, traj["next_obs"][t], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(reward, traj["reward"][t], rtol=1e-6, atol=1e-7)


def test_mcc_scan_terminates_with_goal_reward_before_time_limit():
    env, params = make(MCC)
    _, state = env.reset(jax.random.key(0), params)

    def body(carry, key):
        obs, state = carry
        action = jnp.where(obs[1] >= 0, 1.0, -1.0)[None]
        next_obs, state, reward, term, trunc, info = env.step(key, state, action, params)
        return (next_obs, state), (reward, term, trunc, next_obs, info["final_observation"])

    obs0 = env.get_obs(state)
    _, (reward, term, trunc, next_obs, final_obs) = jax.device_get(
        jax.jit(lambda s: jax.lax.scan(body, (obs0, s), jax.random.split(jax.random.key(1), 600)))(
            state
        )
    )
    assert term.sum() >= 3 and not trunc.any()
    assert (reward[term] > 99.0).all() and (reward[~term] < 0.0).all()
    assert (final_obs[term, 0] >= 0.45).all()
    # After a termination the car is back in the reset range, at rest.
    assert ((next_obs[term, 0] >= -0.6) & (next_obs[term, 0] <= -0.4)).all()
    assert (next_obs[term, 1] == 0).all()


def test_step_traces_once():
    env, params = make(PENDULUM)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, action):
        return env.step(key, state, action, params)

    _, state = env.reset(jax.random.key(0), params)
    try:
        for i in range(5):
            _, state, *_ = step(jax.random.key(i), state, jnp.array([0.1 * i], jnp.float32))
    finally:
        chex.clear_trace_counter()


def test_vmap_over_params():
    env, params = make(PENDULUM)
    gs = jnp.array([5.0, 10.0, 15.0])
    batched = jax.tree.map(lambda x: jnp.full((3,), x), params).replace(g=gs)
    _, state = env.reset(jax.random.key(0), params)
    action = jnp.array([0.5], jnp.float32)
    step = jax.jit(env.step)
    out = jax.jit(jax.vmap(env.step, in_axes=(None, None, None, 0)))(
        jax.random.key(1), state, action, batched
    )
    for i, g in enumerate([5.0, 10.0, 15.0]):
        single = step(jax.random.key(1), state, action, params.replace(g=g))
        np.testing.assert_allclose(out[0][i], single[0], rtol=1e-6)
    assert len({float(v) for v in out[0][:, 2]}) == 3


def test_default_params_and_scalar_action():
    env = Pendulum()
    _, state = env.reset(jax.random.key(0))
    a = env.step(jax.random.key(1), state, jnp.array([1.5]))
    b = env.step(jax.random.key(1), state, jnp.float32(1.5))
    chex.assert_trees_all_close(a, b)
    chex.assert_shape(a[0], (3,))
    chex.assert_shape([a[2], a[3], a[4]], ())


# ---------------------------------------------------------------------- #
# registry and spaces
# ---------------------------------------------------------------------- #


def test_registry():
    assert set(registered_envs()) >= {PENDULUM, MCC}
    env, params = make(PENDULUM, g=9.81, max_steps_in_episode=50)
    assert env.name == PENDULUM and params.g == 9.81 and params.max_steps_in_episode == 50
    with pytest.raises(
        ValueError,
        match="Pendulum-v1.*MountainCarContinuous-v0|MountainCarContinuous-v0.*Pendulum-v1",
    ):
        make("CartPole-v1")
    with pytest.raises(ValueError, match="gravity_typo.*valid: max_speed"):
        make(PENDULUM, gravity_typo=1.0)
    with pytest.raises(ValueError, match="max_steps_in_episode must be >= 1, got 0"):
        make(MCC, max_steps_in_episode=0)


def test_custom_time_limit():
    env, params = make(MCC, max_steps_in_episode=7)
    traj = jax.device_get(jax.jit(lambda k: random_rollout(env, params, k, 15))(jax.random.key(0)))
    assert np.flatnonzero(traj["truncated"]).tolist() == [6, 13]


def test_box():
    box = Box.from_bounds(-2.0, np.array([1.0, 3.0]))
    assert box.shape == (2,) and box.low.dtype == jnp.float32
    unbounded = Box.from_bounds(-np.inf, np.inf, (2,))

    @jax.jit
    def check(keys):
        xs = jax.vmap(box.sample)(keys)
        return (
            xs,
            jax.vmap(box.contains)(xs),
            box.contains(jnp.array([0.0, 3.5])),
            jax.vmap(unbounded.sample)(keys),
        )

    xs, inside, outside, free = jax.device_get(check(jax.random.split(jax.random.key(0), 1000)))
    assert inside.all() and not outside
    assert xs[:, 1].max() > 2.9 and xs[:, 0].min() < -1.9 and xs[:, 1].min() < -1.9
    assert np.isfinite(free).all() and free.std() > 0.5
    assert not bool(box.contains(np.zeros(3)))  # wrong shape


# ---------------------------------------------------------------------- #
# the harness catches classic porting mistakes
# ---------------------------------------------------------------------- #


class _PendulumMutant(Pendulum):
    def __init__(self, mutation: str):
        self.mutation = mutation

    def step_env(self, key, state, action, params):
        th, thdot = state.theta, state.theta_dot
        u = jnp.clip(jnp.reshape(action, (-1,))[0], -params.max_torque, params.max_torque)
        accel = 3 * params.g / (2 * params.l) * jnp.sin(th) + 3.0 / (params.m * params.l**2) * u
        new_thdot = jnp.clip(thdot + accel * params.dt, -params.max_speed, params.max_speed)
        if self.mutation == "explicit_euler":  # old velocity moves the angle
            new_th = th + thdot * params.dt
        elif self.mutation == "clip_after_position":  # angle uses the unclipped velocity
            new_th = th + (thdot + accel * params.dt) * params.dt
        else:
            new_th = th + new_thdot * params.dt
        cost_th, cost_thdot = (
            (new_th, new_thdot) if self.mutation == "reward_after_step" else (th, thdot)
        )
        cost = angle_normalize(cost_th) ** 2 + 0.1 * cost_thdot**2 + 0.001 * u**2
        nxt = state.replace(theta=new_th, theta_dot=new_thdot)
        return self.get_obs(nxt), nxt, -cost, jnp.bool_(False), jnp.bool_(False)


class _MountainCarMutant(MountainCarContinuous):
    def __init__(self, mutation: str):
        self.mutation = mutation

    def step_env(self, key, state, action, params):
        raw = jnp.reshape(action, (-1,))[0]
        force = jnp.clip(raw, params.min_action, params.max_action)
        velocity = jnp.clip(
            state.velocity + force * params.power - params.gravity * jnp.cos(3 * state.position),
            -params.max_speed,
            params.max_speed,
        )
        moved_by = state.velocity if self.mutation == "old_velocity_moves" else velocity
        position = jnp.clip(state.position + moved_by, params.min_position, params.max_position)
        if self.mutation == "gymnax_wall_rule":  # the rule of one popular JAX port
            velocity = velocity * (1 - (position >= params.goal_position) * (velocity < 0))
        else:
            velocity = jnp.where((position == params.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= params.goal_position) & (velocity >= params.goal_velocity)
        cost_action = force if self.mutation == "cost_on_clipped_action" else raw
        reward = 100.0 * terminated - 0.1 * cost_action**2
        nxt = state.replace(position=position, velocity=velocity)
        return self.get_obs(nxt), nxt, reward, terminated, jnp.bool_(False)


@pytest.fixture(scope="module")
def recordings():
    return {
        "pendulum": record_gymnasium(PENDULUM, pendulum_pump, 300, seed=20),
        "pendulum_oob": record_gymnasium(PENDULUM, uniform(-4.0, 4.0), 200, seed=21),
        "mcc_wall": record_gymnasium(MCC, mcc_pump_left, 999, seed=22),
        "mcc_oob": record_gymnasium(MCC, uniform(-3.0, 3.0), 300, seed=23),
    }


@pytest.mark.parametrize(
    "mutant, recording",
    [
        (_PendulumMutant("none"), None),
        (_PendulumMutant("explicit_euler"), "pendulum"),
        (_PendulumMutant("clip_after_position"), "pendulum"),
        (_PendulumMutant("reward_after_step"), "pendulum_oob"),
        (_MountainCarMutant("none"), None),
        (_MountainCarMutant("gymnax_wall_rule"), "mcc_wall"),
        (_MountainCarMutant("old_velocity_moves"), "mcc_oob"),
        (_MountainCarMutant("cost_on_clipped_action"), "mcc_oob"),
    ],
    ids=lambda x: getattr(x, "mutation", x),
)
def test_harness_detects_mutations(recordings, mutant, recording):
    is_pendulum = isinstance(mutant, Pendulum)
    params = mutant.default_params
    if recording is None:
        # The unmutated copy passes on every recording of its env: the
        # mismatches below come from the mutations alone.
        names = ["pendulum", "pendulum_oob"] if is_pendulum else ["mcc_wall", "mcc_oob"]
        for name in names:
            assert parity_errors(mutant, params, recordings[name]) == []
    else:
        assert parity_errors(mutant, params, recordings[recording]) != []

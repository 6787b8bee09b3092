"""``Pendulum-v1`` in JAX, matching gymnasium 1.4's ``PendulumEnv`` step for step.

Reference: ``gymnasium/envs/classic_control/pendulum.py`` (registered with
``max_episode_steps=200``). The differences are numerical only: gymnasium keeps
its state in float64, this env in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from ddpg_jax.envs.core import Box, Environment

__all__ = ["Pendulum", "PendulumParams", "PendulumState", "angle_normalize"]


@struct.dataclass
class PendulumState:
    """Dynamic state of the pendulum."""

    theta: jax.Array  # float32 []: angle in rad, 0 = upright; not wrapped (as in gymnasium)
    theta_dot: jax.Array  # float32 []: angular velocity in rad/s
    time: jax.Array  # int32 []: steps taken in this episode


@struct.dataclass
class PendulumParams:
    """Constants of ``Pendulum-v1`` (gymnasium's defaults)."""

    max_speed: float = 8.0  # |theta_dot| is clipped to this
    max_torque: float = 2.0  # action bound
    dt: float = 0.05  # integration step in s
    g: float = 10.0  # gravity; gymnasium.make("Pendulum-v1", g=...) changes it too
    m: float = 1.0  # mass
    l: float = 1.0  # length
    init_theta_high: float = math.pi  # reset: theta ~ U[-high, high] (gymnasium's x_init)
    init_theta_dot_high: float = 1.0  # reset: theta_dot ~ U[-high, high] (y_init)
    max_steps_in_episode: int = 200  # TimeLimit of the registered id


def angle_normalize(x: jax.Array) -> jax.Array:
    """Wraps an angle into ``[-pi, pi)``."""
    return ((x + jnp.pi) % (2 * jnp.pi)) - jnp.pi


def _first_component(action: jax.Array) -> jax.Array:
    # gymnasium reads ``u[0]`` of the (1,)-shaped action; accepting a scalar
    # too costs nothing.
    return jnp.reshape(jnp.asarray(action, jnp.float32), (-1,))[0]


class Pendulum(Environment[PendulumState, PendulumParams]):
    """Torque-limited pendulum swing-up (``Pendulum-v1``).

    Observation ``[cos(theta), sin(theta), theta_dot]``, action: torque in
    ``[-max_torque, max_torque]`` (shape ``(1,)``, clipped like gymnasium),
    reward ``-(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)``
    evaluated on the state *before* the step. Never terminates; truncated
    after 200 steps.
    """

    @property
    def name(self) -> str:
        return "Pendulum-v1"

    @property
    def default_params(self) -> PendulumParams:
        return PendulumParams()

    def observation_space(self, params: PendulumParams | None = None) -> Box:
        params = self.default_params if params is None else params
        high = jnp.array([1.0, 1.0, params.max_speed], jnp.float32)
        return Box.from_bounds(-high, high, (3,))

    def action_space(self, params: PendulumParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box.from_bounds(-params.max_torque, params.max_torque, (1,))

    def reset_env(self, key: jax.Array, params: PendulumParams) -> tuple[jax.Array, PendulumState]:
        high = jnp.array([params.init_theta_high, params.init_theta_dot_high], jnp.float32)
        theta, theta_dot = jax.random.uniform(key, (2,), jnp.float32, -high, high)
        state = PendulumState(theta=theta, theta_dot=theta_dot, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def step_env(
        self,
        key: jax.Array,
        state: PendulumState,
        action: jax.Array,
        params: PendulumParams,
    ) -> tuple[jax.Array, PendulumState, jax.Array, jax.Array, jax.Array]:
        del key  # deterministic dynamics
        th, thdot = state.theta, state.theta_dot
        u = jnp.clip(_first_component(action), -params.max_torque, params.max_torque)

        # The cost uses the pre-step angle and velocity, as gymnasium does.
        cost = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * u**2

        # Semi-implicit Euler: velocity first (then clipped), and the *new*
        # velocity moves the angle.
        accel = 3.0 * params.g / (2.0 * params.l) * jnp.sin(th) + 3.0 / (params.m * params.l**2) * u
        new_thdot = jnp.clip(thdot + accel * params.dt, -params.max_speed, params.max_speed)
        new_th = th + new_thdot * params.dt

        next_state = state.replace(
            theta=new_th.astype(jnp.float32), theta_dot=new_thdot.astype(jnp.float32)
        )
        false = jnp.zeros((), jnp.bool_)
        return self.get_obs(next_state), next_state, -cost, false, false

    def get_obs(self, state: PendulumState) -> jax.Array:
        """``[cos(theta), sin(theta), theta_dot]`` as float32."""
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot]).astype(
            jnp.float32
        )

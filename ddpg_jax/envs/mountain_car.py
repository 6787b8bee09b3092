"""``MountainCarContinuous-v0`` in JAX, matching gymnasium 1.4 step for step.

Reference: ``gymnasium/envs/classic_control/continuous_mountain_car.py``
(registered with ``max_episode_steps=999``). gymnasium stores this state as
float32 after every step, so float32 here loses nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from ddpg_jax.envs.core import Box, Environment

__all__ = [
    "MountainCarContinuous",
    "MountainCarContinuousParams",
    "MountainCarContinuousState",
]


@struct.dataclass
class MountainCarContinuousState:
    """Dynamic state of the car."""

    position: jax.Array  # float32 []: x in [min_position, max_position]
    velocity: jax.Array  # float32 []: dx per step in [-max_speed, max_speed]
    time: jax.Array  # int32 []: steps taken in this episode


@struct.dataclass
class MountainCarContinuousParams:
    """Constants of ``MountainCarContinuous-v0`` (gymnasium's defaults)."""

    min_action: float = -1.0
    max_action: float = 1.0
    min_position: float = -1.2  # left wall
    max_position: float = 0.6
    max_speed: float = 0.07
    goal_position: float = 0.45
    goal_velocity: float = 0.0  # gymnasium.make(..., goal_velocity=...) changes it too
    power: float = 0.0015  # velocity gained per unit of force
    gravity: float = 0.0025  # the hard-coded 0.0025 * cos(3 x) term in gymnasium
    goal_reward: float = 100.0
    action_cost: float = 0.1  # reward -= action_cost * action**2
    init_position_low: float = -0.6  # reset: position ~ U[low, high], velocity 0
    init_position_high: float = -0.4
    max_steps_in_episode: int = 999  # TimeLimit of the registered id


class MountainCarContinuous(Environment[MountainCarContinuousState, MountainCarContinuousParams]):
    """Under-powered car that must swing to reach the right hilltop.

    Observation ``[position, velocity]``; action: force in ``[-1, 1]`` (shape
    ``(1,)``). Terminates when ``position >= goal_position`` and
    ``velocity >= goal_velocity`` with reward +100; every step costs
    ``0.1 * action^2``. Truncated after 999 steps.

    Two gymnasium details that are easy to get wrong, both reproduced here:

    * The left wall stops the car only when it hits it: velocity is set to 0
      exactly when, after clipping, ``position == min_position`` and
      ``velocity < 0``.
    * The force is clipped to the bounds, but the action cost uses the
      *unclipped* action.
    """

    @property
    def name(self) -> str:
        return "MountainCarContinuous-v0"

    @property
    def default_params(self) -> MountainCarContinuousParams:
        return MountainCarContinuousParams()

    def observation_space(self, params: MountainCarContinuousParams | None = None) -> Box:
        params = self.default_params if params is None else params
        low = jnp.array([params.min_position, -params.max_speed], jnp.float32)
        high = jnp.array([params.max_position, params.max_speed], jnp.float32)
        return Box.from_bounds(low, high, (2,))

    def action_space(self, params: MountainCarContinuousParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box.from_bounds(params.min_action, params.max_action, (1,))

    def reset_env(
        self, key: jax.Array, params: MountainCarContinuousParams
    ) -> tuple[jax.Array, MountainCarContinuousState]:
        position = jax.random.uniform(
            key, (), jnp.float32, params.init_position_low, params.init_position_high
        )
        state = MountainCarContinuousState(
            position=position,
            velocity=jnp.zeros((), jnp.float32),
            time=jnp.zeros((), jnp.int32),
        )
        return self.get_obs(state), state

    def step_env(
        self,
        key: jax.Array,
        state: MountainCarContinuousState,
        action: jax.Array,
        params: MountainCarContinuousParams,
    ) -> tuple[jax.Array, MountainCarContinuousState, jax.Array, jax.Array, jax.Array]:
        del key  # deterministic dynamics
        raw = jnp.reshape(jnp.asarray(action, jnp.float32), (-1,))[0]
        force = jnp.clip(raw, params.min_action, params.max_action)

        # Same grouping as gymnasium: v += (force * power - gravity * cos(3 x)).
        velocity = state.velocity + (
            force * params.power - params.gravity * jnp.cos(3.0 * state.position)
        )
        velocity = jnp.clip(velocity, -params.max_speed, params.max_speed)
        # The clipped new velocity moves the car.
        position = jnp.clip(state.position + velocity, params.min_position, params.max_position)
        hit_left_wall = (position == params.min_position) & (velocity < 0)
        velocity = jnp.where(hit_left_wall, 0.0, velocity)

        terminated = (position >= params.goal_position) & (velocity >= params.goal_velocity)
        reward = jnp.where(terminated, params.goal_reward, 0.0) - params.action_cost * raw**2

        next_state = state.replace(
            position=position.astype(jnp.float32), velocity=velocity.astype(jnp.float32)
        )
        return self.get_obs(next_state), next_state, reward, terminated, jnp.zeros((), jnp.bool_)

    def get_obs(self, state: MountainCarContinuousState) -> jax.Array:
        """``[position, velocity]`` as float32."""
        return jnp.stack([state.position, state.velocity]).astype(jnp.float32)

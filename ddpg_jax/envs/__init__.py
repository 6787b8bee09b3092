"""Functional JAX environments: the protocol, built-in envs, registry and adapters.

>>> import jax
>>> from ddpg_jax.envs import make
>>> env, params = make("Pendulum-v1")
>>> obs, state = env.reset(jax.random.key(0), params)
>>> action = env.action_space(params).sample(jax.random.key(1))
>>> obs, state, reward, terminated, truncated, info = env.step(
...     jax.random.key(2), state, action, params)

``Pendulum-v1`` and ``MountainCarContinuous-v0`` reproduce gymnasium 1.4
step for step (tested against it). gymnax and brax envs are reachable through
:func:`from_gymnax` / :func:`from_brax` (optional extras), gymnasium's own
functional envs through :func:`from_gymnasium_functional`.
"""

from ddpg_jax.envs.adapters import (
    AdapterState,
    BraxEnv,
    BraxParams,
    FuncEnvParams,
    GymnasiumFunctionalEnv,
    GymnaxEnv,
    from_brax,
    from_gymnasium_functional,
    from_gymnax,
)
from ddpg_jax.envs.core import Box, Environment, StepInfo
from ddpg_jax.envs.mountain_car import (
    MountainCarContinuous,
    MountainCarContinuousParams,
    MountainCarContinuousState,
)
from ddpg_jax.envs.pendulum import Pendulum, PendulumParams, PendulumState
from ddpg_jax.envs.registry import make, register, registered_envs

__all__ = [
    "AdapterState",
    "Box",
    "BraxEnv",
    "BraxParams",
    "Environment",
    "FuncEnvParams",
    "GymnasiumFunctionalEnv",
    "GymnaxEnv",
    "MountainCarContinuous",
    "MountainCarContinuousParams",
    "MountainCarContinuousState",
    "Pendulum",
    "PendulumParams",
    "PendulumState",
    "StepInfo",
    "from_brax",
    "from_gymnasium_functional",
    "from_gymnax",
    "make",
    "register",
    "registered_envs",
]

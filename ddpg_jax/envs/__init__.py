"""Functional JAX environments: the protocol, built-in envs, registry and adapters.

>>> import jax
>>> from ddpg_jax.envs import make
>>> env, params = make("Pendulum-v1")
>>> obs, state = env.reset(jax.random.key(0), params)
>>> action = env.action_space(params).sample(jax.random.key(1))
>>> obs, state, reward, terminated, truncated, info = env.step(
...     jax.random.key(2), state, action, params)

``Pendulum-v1`` and ``MountainCarContinuous-v0`` reproduce gymnasium 1.4
step for step (tested against it). MuJoCo Playground, gymnax and brax envs are
reachable through :func:`from_playground`, :func:`from_gymnax` and
:func:`from_brax` (optional extras), gymnasium's own functional envs through
:func:`from_gymnasium_functional`. :func:`from_spec` builds any of them (or a
user's ``module:function`` factory) from one string, as ``train`` and the
command line do:

>>> from ddpg_jax.envs import from_spec
>>> env, params, env_id = from_spec("Pendulum-v1")  # or "playground:CartpoleBalance", ...
"""

from ddpg_jax.envs.adapters import (
    AdapterState,
    BraxEnv,
    BraxParams,
    BraxProtocolEnv,
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
from ddpg_jax.envs.playground_adapter import PlaygroundEnv, from_playground
from ddpg_jax.envs.registry import make, register, registered_envs
from ddpg_jax.envs.specs import from_spec

__all__ = [
    "AdapterState",
    "Box",
    "BraxEnv",
    "BraxParams",
    "BraxProtocolEnv",
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
    "PlaygroundEnv",
    "StepInfo",
    "from_brax",
    "from_gymnasium_functional",
    "from_gymnax",
    "from_playground",
    "from_spec",
    "make",
    "register",
    "registered_envs",
]

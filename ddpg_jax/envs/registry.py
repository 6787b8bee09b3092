"""Creating built-in environments by id: :func:`make` and :func:`registered_envs`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ddpg_jax.envs.core import Environment
from ddpg_jax.envs.mountain_car import MountainCarContinuous
from ddpg_jax.envs.pendulum import Pendulum

__all__ = ["make", "register", "registered_envs"]

EnvFactory = Callable[[], Environment]

_REGISTRY: dict[str, EnvFactory] = {
    "Pendulum-v1": Pendulum,
    "MountainCarContinuous-v0": MountainCarContinuous,
}


def registered_envs() -> tuple[str, ...]:
    """The ids accepted by :func:`make`, sorted."""
    return tuple(sorted(_REGISTRY))


def register(env_id: str, factory: EnvFactory, *, overwrite: bool = False) -> None:
    """Adds an environment so that :func:`make` can build it.

    Args:
      env_id: the id, e.g. ``"MyEnv-v0"``.
      factory: a zero-argument callable returning an :class:`Environment`.
      overwrite: allow replacing an existing id.

    Raises:
      ValueError: if the id is taken and ``overwrite`` is False.
    """
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"environment id {env_id!r} is already registered; pass overwrite=True")
    _REGISTRY[env_id] = factory


def make(env_id: str, **param_overrides: Any) -> tuple[Environment, Any]:
    """Builds a registered environment and its params.

    Args:
      env_id: one of :func:`registered_envs`, e.g. ``"Pendulum-v1"``.
      **param_overrides: replacements for fields of the env's params, e.g.
        ``g=9.81`` or ``max_steps_in_episode=500``.

    Returns:
      ``(env, params)``.

    Raises:
      ValueError: for an unknown id (listing the known ones), an unknown
        param name (listing the valid ones) or a non-positive time limit.

    Example:
      >>> env, params = make("Pendulum-v1", g=9.81)
      >>> obs, state = env.reset(jax.random.key(0), params)
    """
    if env_id not in _REGISTRY:
        known = ", ".join(registered_envs())
        raise ValueError(f"unknown environment id {env_id!r}; known ids: {known}")
    env = _REGISTRY[env_id]()
    params = env.default_params
    if param_overrides:
        names = [f.name for f in dataclasses.fields(params)]
        unknown = sorted(set(param_overrides) - set(names))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for {env_id}; valid: {', '.join(names)}"
            )
        params = params.replace(**param_overrides)
    max_steps = getattr(params, "max_steps_in_episode", None)
    if isinstance(max_steps, int) and max_steps < 1:
        raise ValueError(f"max_steps_in_episode must be >= 1, got {max_steps}")
    return env, params

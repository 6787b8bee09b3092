"""Checks that a gymnasium environment is one DDPG can train on, before any work starts."""

from __future__ import annotations

import difflib
from typing import Any, Callable, NamedTuple

import gymnasium as gym
import numpy as np


class EnvSpecError(ValueError):
    """The environment id is unknown, or its spaces are not ones DDPG supports."""


class EnvSpec(NamedTuple):
    obs_dim: int
    action_low: np.ndarray  # [action_dim] float32
    action_high: np.ndarray  # [action_dim] float32


EnvFactory = Callable[[], gym.Env]


def env_factory(env_id: str, **kwargs: Any) -> EnvFactory:
    """Returns a factory for ``gym.make(env_id, **kwargs)`` after checking the id exists.

    Raises:
      EnvSpecError: for an unknown id, with the closest registered ids.
    """
    if not isinstance(env_id, str) or env_id not in gym.registry:
        close = difflib.get_close_matches(str(env_id), list(gym.registry), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise EnvSpecError(
            f"unknown environment id {env_id!r}.{hint} Accepted: any id registered with "
            "gymnasium whose action space is a bounded Box (e.g. Pendulum-v1, "
            "MountainCarContinuous-v0, HalfCheetah-v5 with gymnasium[mujoco]); "
            "see gymnasium.pprint_registry()."
        )
    return lambda: gym.make(env_id, **kwargs)


def make_checked(factory: EnvFactory, name: str = "environment") -> gym.Env:
    """Instantiates one env, turning missing optional dependencies into an EnvSpecError."""
    try:
        return factory()
    except gym.error.DependencyNotInstalled as e:
        raise EnvSpecError(f"{name} cannot be created: {e}") from None


def check_spaces(observation_space: gym.Space, action_space: gym.Space, name: str = "environment") -> EnvSpec:
    """Validates the spaces and returns the shapes and bounds DDPG needs.

    Accepted: a flat (1-D) ``Box`` observation space and a 1-D ``Box`` action
    space with finite bounds, ``high > low`` in every dimension.

    Raises:
      EnvSpecError: naming the space, what it is, and what is accepted.
    """
    if not isinstance(action_space, gym.spaces.Box):
        raise EnvSpecError(
            f"{name} has action space {action_space!r} ({type(action_space).__name__}); DDPG "
            "needs a continuous action space, accepted: a 1-D gymnasium.spaces.Box with finite "
            "bounds. Discrete or multi-discrete actions need a different algorithm (e.g. DQN)."
        )
    if len(action_space.shape) != 1:
        raise EnvSpecError(
            f"{name} has action space shape {action_space.shape}; accepted: a 1-D Box "
            "(shape (action_dim,))."
        )
    low = np.asarray(action_space.low, np.float64)
    high = np.asarray(action_space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise EnvSpecError(
            f"{name} has unbounded action space {action_space!r} (low={low}, high={high}); "
            "accepted: finite low and high in every dimension, since the actor's tanh output "
            "is rescaled to [low, high]. Wrap the env with gymnasium.wrappers.ClipAction or "
            "RescaleAction to give it bounds."
        )
    if not np.all(high > low):
        raise EnvSpecError(f"{name} has action bounds with high <= low (low={low}, high={high}); "
                           "accepted: high > low in every dimension.")
    if not isinstance(observation_space, gym.spaces.Box):
        raise EnvSpecError(
            f"{name} has observation space {type(observation_space).__name__} "
            f"({observation_space!r}); accepted: a flat gymnasium.spaces.Box. Flatten Dict/Tuple "
            "observations first, e.g. with gymnasium.wrappers.FlattenObservation."
        )
    if len(observation_space.shape) != 1:
        raise EnvSpecError(
            f"{name} has observation shape {observation_space.shape}; accepted: a flat Box of "
            "shape (obs_dim,). Image-shaped observations need a convolutional encoder, which the "
            "MLP networks here do not provide; flatten them (FlattenObservation) if that is meant."
        )
    return EnvSpec(int(observation_space.shape[0]), low.astype(np.float32), high.astype(np.float32))


def check_env(factory: EnvFactory, name: str = "environment") -> EnvSpec:
    """Creates one env from ``factory``, checks its spaces and closes it."""
    env = make_checked(factory, name)
    try:
        return check_spaces(env.observation_space, env.action_space, name)
    finally:
        env.close()

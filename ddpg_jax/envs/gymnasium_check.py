"""Checks that a gymnasium environment is one DDPG can train on, before any work starts."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ddpg_jax.envs.core import EnvSpecError

if TYPE_CHECKING:  # gymnasium is imported where it is used: `import ddpg_jax` stays without it
    import gymnasium as gym


class EnvSpec(NamedTuple):
    obs_dim: int
    action_low: np.ndarray  # [action_dim] float32
    action_high: np.ndarray  # [action_dim] float32


EnvFactory = Callable[[], "gym.Env"]


def _registered_by(module: str) -> list[str]:
    """The registered ids whose entry point lives in ``module`` (or a submodule)."""
    import gymnasium as gym

    ids = []
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point
        where = entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")
        if where == module or where.startswith(module + "."):
            ids.append(env_id)
    return sorted(ids)


_ACCEPTED = ("Accepted: an id registered with gymnasium whose action space is a bounded Box "
             "(e.g. Pendulum-v1, MountainCarContinuous-v0, HalfCheetah-v5 with "
             "gymnasium[mujoco]; see gymnasium.pprint_registry()), or 'module:EnvId' to import "
             "the module that registers EnvId first (as gymnasium.make does).")


def env_factory(env_id: str, **kwargs: Any) -> EnvFactory:
    """Returns a factory for ``gym.make(env_id, **kwargs)`` after checking the id exists.

    ``env_id`` is a registered id (``"Pendulum-v1"``) or, as ``gymnasium.make``
    accepts, ``"module:EnvId"``: the module is imported first (it registers
    ``EnvId`` with ``gymnasium.register``), then the id is checked.

    Raises:
      EnvSpecError: for an unknown id (with the closest registered ids), a
        module that cannot be imported, or a module that does not register the id.
    """
    import gymnasium as gym

    if not isinstance(env_id, str):
        raise EnvSpecError(f"environment id {env_id!r} is not a string. {_ACCEPTED}")
    module, sep, name = env_id.partition(":")
    if sep:
        from ddpg_jax.envs.specs import FAMILIES

        if module in FAMILIES:  # before importing anything: brax is an importable module
            raise EnvSpecError(
                f"environment id {env_id!r} names a JAX env ({module} family), which trains "
                "with the jax backend: backend='jax' in ddpg_jax.train, --backend jax on the "
                "command line. The gymnasium backend takes gymnasium ids.")
        if not module or not name or ":" in name:
            raise EnvSpecError(f"environment id {env_id!r} is not of the form 'module:EnvId' "
                               f"(one module name, one colon, one id). {_ACCEPTED}")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise EnvSpecError(
                f"environment id {env_id!r}: module {module!r} cannot be imported ({e}). "
                "With 'module:EnvId' the module must be importable (installed, or on "
                f"PYTHONPATH) and register {name!r} with gymnasium.register when imported. "
                f"{_ACCEPTED}") from None
        if name not in gym.registry:
            own = _registered_by(module)
            listed = (f"ids registered from {module!r}: {', '.join(own)}" if own
                      else f"no registered id has its entry point in {module!r}")
            raise EnvSpecError(
                f"environment id {env_id!r}: module {module!r} was imported but {name!r} is not "
                f"registered ({listed}). {_ACCEPTED}")
    elif env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise EnvSpecError(f"unknown environment id {env_id!r}.{hint} {_ACCEPTED}")
    return lambda: gym.make(env_id, **kwargs)


def make_checked(factory: EnvFactory, name: str = "environment") -> gym.Env:
    """Instantiates one env, turning missing optional dependencies into an EnvSpecError."""
    import gymnasium as gym

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
    import gymnasium as gym

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
            "is rescaled to [low, high]. Give the env the bounds its actions make sense in, "
            "e.g. gymnasium.wrappers.TransformAction(env, lambda a: np.clip(a, low, high), "
            "gymnasium.spaces.Box(low, high, shape, np.float32)) with finite low and high. "
            "(gymnasium's ClipAction does not help: since gymnasium 1.0 it declares an "
            "unbounded action space itself; RescaleAction refuses unbounded components.)"
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

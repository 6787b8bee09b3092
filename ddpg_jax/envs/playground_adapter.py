"""MuJoCo Playground tasks as :class:`~ddpg_jax.envs.Environment`: :func:`from_playground`.

MuJoCo Playground (``pip install "ddpg-jax[playground]"``, imported as
``mujoco_playground``) ships MJX tasks with brax's functional protocol, so the
adapter is :class:`~ddpg_jax.envs.adapters.BraxProtocolEnv` plus what is
particular to Playground: building a task by name with the pure-JAX physics,
reading the task's own ``episode_length`` and ``action_repeat``, and refusing
tasks whose model files would have to be downloaded first.

Only the DM Control Suite tasks are bundled with the package. The locomotion
and manipulation tasks load robot models from the ``mujoco_menagerie``
repository, which Playground clones from GitHub the first time such a task is
loaded; :func:`from_playground` refuses them by name before anything is
imported or fetched. A task built by the caller (who then controls the
download) can still be passed as an object.
"""

from __future__ import annotations

import difflib
from typing import Any

from ddpg_jax.envs.adapters import BraxParams, BraxProtocolEnv, _import_optional
from ddpg_jax.envs.core import EnvSpecError

__all__ = ["PLAYGROUND_HINT", "PlaygroundEnv", "bundled_tasks", "from_playground"]

PLAYGROUND_HINT = 'MuJoCo Playground is not installed: pip install "ddpg-jax[playground]"'

#: Playground's own default when a task object has no config (``wrap_for_brax_training``).
DEFAULT_EPISODE_LENGTH = 1000


class PlaygroundEnv(BraxProtocolEnv):
    """A MuJoCo Playground task seen through the :class:`~ddpg_jax.envs.Environment` protocol.

    The mapping is :class:`~ddpg_jax.envs.adapters.BraxProtocolEnv`'s: the
    task's ``done`` is a termination (for the DM Control Suite tasks: the
    physics went NaN), ``episode_length`` is the time limit and is reported
    as truncation, never termination, and with ``action_repeat`` > 1 each
    action is applied that many times with the rewards summed, exactly as
    Playground's training wrappers (brax's ``EpisodeWrapper``) do.

    Attributes:
      task: the wrapped Playground env (an ``MjxEnv``).
      episode_length: the time limit in the task's control steps.
      action_repeat: control steps per agent step.
      obs_key: the entry of dict observations used as the observation.
    """

    def __init__(
        self,
        task: Any,
        *,
        name: str | None = None,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        action_repeat: int = 1,
        obs_key: str | None = "state",
    ):
        """See :func:`from_playground`."""
        self.task = task
        super().__init__(
            task,
            name=name or type(getattr(task, "unwrapped", task)).__name__,
            episode_length=episode_length,
            action_repeat=action_repeat,
            obs_key=obs_key,
            family="MuJoCo Playground",
        )


def _playground() -> Any:
    return _import_optional("mujoco_playground", PLAYGROUND_HINT)


def bundled_tasks() -> tuple[str, ...]:
    """The Playground tasks that need no download: the DM Control Suite ones.

    Raises:
      ImportError: if MuJoCo Playground is not installed.
    """
    return tuple(_playground().dm_control_suite.ALL_ENVS)


def _check_task_name(pg: Any, name: str) -> None:
    """Refuses, before any task module is used, names that are unknown or need a download."""
    bundled = tuple(pg.dm_control_suite.ALL_ENVS)
    if name in bundled:
        return
    listing = f"Bundled tasks (DM Control Suite, no download): {', '.join(bundled)}."
    for suite in ("locomotion", "manipulation"):
        if name in tuple(getattr(pg, suite).ALL_ENVS):
            raise EnvSpecError(
                f"MuJoCo Playground task {name!r} is in the {suite} registry, whose tasks load "
                "robot models from the mujoco_menagerie repository that Playground clones from "
                "GitHub on first use; ddpg_jax does not start that download. "
                f"{listing} To use {name} anyway, build it yourself (e.g. "
                f"mujoco_playground.registry.load({name!r}, config_overrides={{'impl': "
                "'jax'}), which downloads the models) and pass the env object to "
                "from_playground."
            )
    every = list(bundled) + [n for s in ("locomotion", "manipulation")
                             for n in getattr(pg, s).ALL_ENVS]
    close = difflib.get_close_matches(name, every, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise EnvSpecError(f"unknown MuJoCo Playground task {name!r}.{hint} {listing}")


def _task_setting(task: Any, key: str, default: int) -> int:
    """A setting of the task's own config (Playground keeps it in ``_config``), or ``default``."""
    config = getattr(getattr(task, "unwrapped", task), "_config", None)
    try:
        value = config.get(key) if config is not None else None
    except (AttributeError, TypeError):
        value = None
    return default if value is None else value


def from_playground(
    task_or_env: Any,
    *,
    config_overrides: dict[str, Any] | None = None,
    obs_key: str | None = "state",
    episode_length: int | None = None,
    action_repeat: int | None = None,
) -> tuple[PlaygroundEnv, BraxParams]:
    """Wraps a MuJoCo Playground task as an :class:`~ddpg_jax.envs.Environment`.

    Requires the optional extra: ``pip install "ddpg-jax[playground]"``.

    The task's own settings apply unless given here: ``episode_length`` (the
    time limit, reported as truncation) and ``action_repeat`` from the task's
    config. ``episode_length`` is counted in the task's control steps, as by
    Playground's training wrappers (brax's ``EpisodeWrapper``, whose counter
    advances by ``action_repeat`` per agent step): an episode lasts
    ``ceil(episode_length / action_repeat)`` agent steps. Actions lie in
    ``[-1, 1]``. The observation before an automatic reset is kept in
    ``info["final_observation"]``.

    Args:
      task_or_env: a task name from the DM Control Suite registry (see
        :func:`bundled_tasks`, e.g. ``"CartpoleBalance"``, ``"CheetahRun"``)
        or a Playground env object (an ``MjxEnv``, e.g. from
        ``mujoco_playground.registry.load``), bare or in Playground's plain
        ``Wrapper``; not in the auto-resetting or vmapping training wrappers.
      config_overrides: settings of the task's config, when building from a
        name. They are applied over ``{"impl": "jax"}``: the pure-JAX MJX
        physics, since Playground's default (``"warp"``) needs NVIDIA Warp
        and a GPU.
      obs_key: for tasks with dict observations, the entry used as the
        observation (Playground's convention: ``"state"``). Flat array
        observations pass through whatever it is.
      episode_length: time limit in control steps; default: the task's.
      action_repeat: control steps per agent step; default: the task's.

    Returns:
      ``(env, params)``.

    Raises:
      ImportError: if MuJoCo Playground is not installed.
      EnvSpecError: for a name that is unknown (with close matches) or that
        needs a download (locomotion and manipulation tasks); both list the
        bundled tasks.
      ValueError: for ``config_overrides`` with an env object, a missing
        ``obs_key`` (listing the keys that exist), non-flat observations, or
        a non-positive ``episode_length`` / ``action_repeat``.
    """
    pg = _playground()
    if isinstance(task_or_env, str):
        name = task_or_env
        _check_task_name(pg, name)
        overrides = {"impl": "jax", **(config_overrides or {})}
        task = pg.registry.load(name, config_overrides=overrides)
    else:
        if config_overrides:
            raise ValueError("config_overrides apply when building a task from its name; for an "
                             "env object, pass them to mujoco_playground.registry.load instead")
        task, name = task_or_env, None
    if episode_length is None:
        episode_length = _task_setting(task, "episode_length", DEFAULT_EPISODE_LENGTH)
    if action_repeat is None:
        action_repeat = _task_setting(task, "action_repeat", 1)
    env = PlaygroundEnv(task, name=name, episode_length=episode_length,
                        action_repeat=action_repeat, obs_key=obs_key)
    return env, env.default_params

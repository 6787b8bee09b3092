"""MuJoCo Playground tasks as :class:`~ddpg_jax.envs.Environment`: :func:`from_playground`.

MuJoCo Playground (``pip install "ddpg-jax[playground]"``, imported as
``mujoco_playground``) ships MJX tasks with brax's functional protocol, so the
adapter is :class:`~ddpg_jax.envs.adapters.BraxProtocolEnv` plus what is
particular to Playground: building a task by name with the physics
implementation chosen for the machine (MuJoCo Warp on a GPU where ``warp``
imports, the pure-JAX MJX physics otherwise), reading the task's own
``episode_length`` and ``action_repeat``, an auto-reset that runs the task's
reset only on steps where an episode ended
(:mod:`ddpg_jax.envs.batched_reset`; some tasks' resets run hundreds of
physics steps), and refusing tasks whose model files would have to be
downloaded first.

Only the DM Control Suite tasks are bundled with the package. The locomotion
and manipulation tasks load robot models from the ``mujoco_menagerie``
repository, which Playground clones from GitHub the first time such a task is
loaded; :func:`from_playground` refuses them by name before anything is
imported or fetched. A task built by the caller (who then controls the
download) can still be passed as an object.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import jax

from ddpg_jax.envs.adapters import (
    AdapterState,
    BraxParams,
    BraxProtocolEnv,
    _import_optional,
)
from ddpg_jax.envs.batched_reset import batched_reset_step
from ddpg_jax.envs.core import EnvSpecError, StepInfo

__all__ = ["IMPLS", "PLAYGROUND_HINT", "PlaygroundEnv", "bundled_tasks", "default_impl",
           "from_playground"]

PLAYGROUND_HINT = 'MuJoCo Playground is not installed: pip install "ddpg-jax[playground]"'

#: The physics implementations a task can be built with: MJX in pure JAX, or MuJoCo Warp.
IMPLS = ("jax", "warp")

WARP_HINT = ("pip install warp-lang (the playground extra, pip install \"ddpg-jax[playground]\", "
             "pulls it through MuJoCo Playground's own requirements)")

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
        self._step = batched_reset_step(self)

    def step(
        self,
        key: jax.Array,
        state: AdapterState,
        action: jax.Array,
        params: BraxParams | None = None,
    ) -> tuple[jax.Array, AdapterState, jax.Array, jax.Array, jax.Array, StepInfo]:
        """:meth:`Environment.step <ddpg_jax.envs.core.Environment.step>`, resetting only when needed.

        Same inputs, outputs, keys and fresh episodes; the task's reset runs
        only on steps where an episode of the (vmapped) env batch ended
        (:func:`~ddpg_jax.envs.batched_reset.batched_reset_step`).
        """
        return self._step(key, state, action, self.default_params if params is None else params)


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


def _warp_imports() -> bool:
    """Whether NVIDIA Warp imports here (a broken install raises RuntimeError, not ImportError)."""
    try:
        importlib.import_module("warp")
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def default_impl() -> str:
    """The physics a task built by name gets by default on this machine.

    Playground's own default, ``"warp"`` (MuJoCo Warp's GPU kernels), where
    jax's default backend is a GPU and ``warp`` imports; ``"jax"`` (MJX in
    pure JAX) otherwise. Warp also runs on a CPU, but far slower than MJX
    there, so a CPU never gets it unless asked for.
    """
    if jax.default_backend() == "gpu" and _warp_imports():
        return "warp"
    return "jax"


def _choose_impl(impl: Any, overrides: dict[str, Any]) -> str:
    """The impl to build with, refusing bad names and an unusable Warp before any task is built."""
    if impl is not None and "impl" in overrides and overrides["impl"] != impl:
        raise ValueError(f"impl={impl!r} and config_overrides['impl']={overrides['impl']!r} "
                         "disagree; give the physics implementation once")
    chosen = overrides.get("impl", impl)
    if chosen is None:
        return default_impl()
    if not isinstance(chosen, str) or chosen not in IMPLS:
        raise ValueError(f"unknown MuJoCo Playground physics impl {chosen!r}; accepted: "
                         f"{', '.join(map(repr, IMPLS))}, or None for the machine's default "
                         "(warp on a GPU where it imports, jax otherwise)")
    if chosen == "warp" and not _warp_imports():
        raise ImportError("MuJoCo Playground impl 'warp' needs NVIDIA Warp, which does not "
                          f"import here: {WARP_HINT}; or choose impl 'jax'")
    return chosen


def parse_task_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"TASK"`` or ``"TASK:impl=warp"`` (the part of an env spec after ``playground:``).

    Returns:
      ``(task name, keyword arguments of from_playground)``.

    Raises:
      EnvSpecError: for an option other than ``impl=NAME``.
    """
    name, _, options = text.partition(":")
    kwargs: dict[str, Any] = {}
    for option in filter(None, options.split(",")):
        key, eq, value = option.partition("=")
        if key != "impl" or not eq:
            raise EnvSpecError(f"unknown option {option!r} after the MuJoCo Playground task "
                               f"{name!r}; accepted: impl=NAME with NAME one of "
                               f"{', '.join(IMPLS)} (e.g. playground:{name}:impl=jax)")
        kwargs["impl"] = value
    return name, kwargs


def from_playground(
    task_or_env: Any,
    *,
    config_overrides: dict[str, Any] | None = None,
    obs_key: str | None = "state",
    episode_length: int | None = None,
    action_repeat: int | None = None,
    impl: str | None = None,
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
        name (``"impl"`` among them, or given as ``impl``).
      obs_key: for tasks with dict observations, the entry used as the
        observation (Playground's convention: ``"state"``). Flat array
        observations pass through whatever it is.
      episode_length: time limit in control steps; default: the task's.
      action_repeat: control steps per agent step; default: the task's.
      impl: the physics, when building from a name: ``"jax"`` (MJX in pure
        JAX) or ``"warp"`` (MuJoCo Warp, Playground's own default; the
        ``warp-lang`` package, which the playground extra pulls); ``None``:
        :func:`default_impl`, i.e. ``"warp"`` where jax's backend is a GPU
        and ``warp`` imports, ``"jax"`` otherwise.

    Returns:
      ``(env, params)``.

    Raises:
      ImportError: if MuJoCo Playground is not installed, or ``"warp"`` is
        asked for where ``warp`` does not import (naming the pip line).
      EnvSpecError: for a name that is unknown (with close matches) or that
        needs a download (locomotion and manipulation tasks); both list the
        bundled tasks.
      ValueError: for an unknown ``impl`` (listing the accepted ones),
        ``impl`` or ``config_overrides`` with an env object, a missing
        ``obs_key`` (listing the keys that exist), non-flat observations, or
        a non-positive ``episode_length`` / ``action_repeat``.
    """
    pg = _playground()
    if isinstance(task_or_env, str):
        name = task_or_env
        _check_task_name(pg, name)
        overrides = dict(config_overrides or {})
        overrides["impl"] = _choose_impl(impl, overrides)
        task = pg.registry.load(name, config_overrides=overrides)
    else:
        if config_overrides or impl is not None:
            raise ValueError("config_overrides and impl apply when building a task from its "
                             "name; for an env object, pass them to "
                             "mujoco_playground.registry.load instead")
        task, name = task_or_env, None
    if episode_length is None:
        episode_length = _task_setting(task, "episode_length", DEFAULT_EPISODE_LENGTH)
    if action_repeat is None:
        action_repeat = _task_setting(task, "action_repeat", 1)
    env = PlaygroundEnv(task, name=name, episode_length=episode_length,
                        action_repeat=action_repeat, obs_key=obs_key)
    return env, env.default_params

"""Opening a checkpoint to continue a run: one set of checks for every caller.

Both training drivers, the ``evaluate`` command and the CLI go through
:func:`open_for_resume` (or :func:`checkpoint_config` when they only read), so
a checkpoint of another driver, env, seed count or config is refused the same
way everywhere, before any work starts.
"""

from __future__ import annotations

import os

from ddpg_jax.checkpoints.format import Checkpoint, CheckpointError, open_checkpoint
from ddpg_jax.config import ConfigError, DDPGConfig


def checkpoint_config(checkpoint: Checkpoint) -> DDPGConfig:
    """The config a checkpoint was written with.

    Raises:
      CheckpointError: when it is missing or unreadable.
    """
    try:
        return DDPGConfig.from_dict(checkpoint.meta["config"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"checkpoint {checkpoint.path} has an unreadable config "
                              f"({e}).") from None


def open_for_resume(
    source: str | os.PathLike | Checkpoint,
    *,
    backend: str,
    config: DDPGConfig,
    env_id: str | None = None,
    num_seeds: int | None = None,
) -> Checkpoint:
    """Verifies a checkpoint and checks that ``config`` may continue it.

    Args:
      source: a checkpoint directory or an opened :class:`Checkpoint`.
      backend: the driver that will continue it (``"gymnasium"`` or ``"jax"``).
      config: the config of the continued run.
      env_id: the env's id, when known (a user's factory has none).
      num_seeds: the runs trained at once (the JAX driver).

    Raises:
      CheckpointError: for a corrupted checkpoint, or one of another driver,
        env or number of seeds.
      ConfigError: for a config that differs from the saved one other than in
        a larger ``total_steps``.
    """
    checkpoint = source if isinstance(source, Checkpoint) else open_checkpoint(source)
    meta = checkpoint.meta
    if meta.get("backend") != backend:
        raise CheckpointError(f"checkpoint {checkpoint.path} was written by the "
                              f"{meta.get('backend')!r} backend, not {backend}.")
    if env_id and meta.get("env_id") != env_id:
        raise CheckpointError(f"checkpoint {checkpoint.path} is of env "
                              f"{meta.get('env_id')!r}, not {env_id!r}.")
    if num_seeds is not None and meta.get("num_seeds", 1) != num_seeds:
        raise CheckpointError(f"checkpoint {checkpoint.path} holds {meta.get('num_seeds', 1)} "
                              f"seed(s), not {num_seeds}.")
    check_resume_config(checkpoint_config(checkpoint), config, checkpoint.step)
    return checkpoint


def check_resume_config(saved: DDPGConfig, requested: DDPGConfig, done_steps: int) -> None:
    """Refuses a resume whose config differs from the saved one except in ``total_steps``.

    Raises:
      ConfigError: naming the differing fields, or a ``total_steps`` not above
        the steps already done.
    """
    a, b = saved.to_dict(), requested.to_dict()
    diff = [k for k in sorted(set(a) | set(b)) if k != "total_steps" and a.get(k) != b.get(k)]
    if diff:
        shown = ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in diff)
        raise ConfigError(
            f"the resumed run was trained with another config ({shown}); accepted: the saved "
            "config, where only total_steps may change (to extend the run).")
    if requested.total_steps <= done_steps:
        raise ConfigError(
            f"total_steps {requested.total_steps} <= the {done_steps} environment steps the "
            f"checkpoint has done; accepted: total_steps > {done_steps} to continue the run.")

"""Run management shared by both training backends.

Host-side pieces only, none of which enters a compiled function except the
non-finite guard:

* :class:`RunOptions`: checkpoint cadence and retention, replay buffer in
  checkpoints, TensorBoard, progress bar. These are not part of
  :class:`~ddpg_jax.config.DDPGConfig`: they change how a run is managed, never
  what it computes.
* :class:`StopSignals`: the first SIGINT/SIGTERM asks the training loop to
  checkpoint and stop at its next safe point; a second one exits at once.
* The non-finite guard: :func:`guard_nonfinite` records, inside the compiled
  step, the first step at which a loss, a Q value, a gradient norm or the
  parameters stopped being finite; :func:`raise_if_nonfinite` turns that
  record into a :class:`NonFiniteError` on the host.
* :func:`check_resume_config`: which config changes a resumed run accepts.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax.config import ConfigError, DDPGConfig


class RunOptionsError(ValueError):
    """A run-management option is out of range."""


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinity; the message names the step and the quantity."""

    def __init__(self, message: str, env_step: int | None = None, quantity: str | None = None):
        super().__init__(message)
        self.env_step = env_step
        self.quantity = quantity


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is checkpointed, logged and shown; none of it changes the results.

    Attributes:
      checkpoint_every: environment steps between checkpoints. ``None`` follows
        the config's ``eval_every`` (so each checkpoint carries an evaluation
        return and "best" is meaningful); 0 writes only the final checkpoint
        (and one on interruption).
      keep_checkpoints: how many of the most recent checkpoints to keep; the
        one with the best evaluation return is kept as well.
      buffer_in_checkpoint: include the replay buffer (needed for an exact
        resume; without it a resumed run refills the buffer with a new warm-up).
      tensorboard: also write TensorBoard event files (``pip install
        'ddpg-jax[tensorboard]'``).
      progress: show a progress bar when stdout is a terminal (``pip install
        'ddpg-jax[progress]'``).
    """

    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    buffer_in_checkpoint: bool = True
    tensorboard: bool = False
    progress: bool = True

    def validate(self) -> "RunOptions":
        """Returns ``self``; raises :class:`RunOptionsError` naming a bad value."""
        ce = self.checkpoint_every
        if ce is not None and (not isinstance(ce, int) or isinstance(ce, bool) or ce < 0):
            raise RunOptionsError(
                f"--checkpoint-every {ce!r} is not valid; accepted: an integer >= 0 (environment "
                "steps between checkpoints; 0: only at the end and on interruption).")
        k = self.keep_checkpoints
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise RunOptionsError(f"--keep-checkpoints {k!r} is not valid; accepted: an integer "
                                  ">= 1.")
        return self

    def checkpoint_interval(self, config: DDPGConfig) -> int:
        """Environment steps between periodic checkpoints (0: none)."""
        return config.eval_every if self.checkpoint_every is None else self.checkpoint_every

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunOptions":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def crossed(prev: int, now: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(prev, now]`` (False when ``every`` is 0)."""
    return every > 0 and now // every > prev // every


# --------------------------------------------------------------------------- signals
class StopSignals:
    """Turns SIGINT/SIGTERM into a stop request; a second signal exits immediately.

    Use as a context manager around training and pass the instance (it is
    callable) as the loop's ``should_stop``. The first signal only sets a
    flag: the loop finishes its current step, writes a checkpoint and returns.
    A second signal ends the process at once with ``os._exit``; a checkpoint
    being written then is left as a hidden temporary directory and the last
    complete checkpoint is untouched. Outside the main thread nothing is
    installed and the flag never rises.
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
                 notice: str = "stopping at the next safe point and saving a checkpoint; "
                               "send the signal again to exit at once"):
        self.signals = tuple(signals)
        self.notice = notice
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            os.write(2, f"\nddpg-jax: second {name}: exiting now; the last complete checkpoint "
                        "is kept.\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        os.write(2, f"\nddpg-jax: {name} received: {self.notice}.\n".encode())

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


# --------------------------------------------------------------------------- non-finite guard
#: Quantities the guard watches, in the order their codes (index + 1) are given.
GUARDED = ("critic_loss", "actor_loss", "q_mean", "target_mean", "critic_grad_norm",
           "actor_grad_norm", "critic parameters", "actor parameters")


def no_nonfinite() -> jax.Array:
    """An empty guard record: int32 ``[step, code]`` = ``[-1, 0]``."""
    return jnp.array([-1, 0], jnp.int32)


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def guard_nonfinite(record: jax.Array, step: jax.Array, metrics: Mapping[str, jax.Array],
                    train_state: Any) -> jax.Array:
    """Updates a guard record inside a compiled step (a select, no branch).

    Args:
      record: int32 ``[2]``, the first ``(step, code)`` seen so far, or ``[-1, 0]``.
      step: int32 scalar that names the current step in the error message.
      metrics: the update metrics of this step (any leading axes).
      train_state: the state after the update; its actor and critic parameters
        are checked.

    Returns:
      The record, set to ``(step, code)`` if it was empty and something is not
      finite now; ``code - 1`` indexes :data:`GUARDED`.
    """
    quantities = [metrics.get(name) for name in GUARDED[:6]]
    quantities += [train_state.critic_params, train_state.actor_params]
    ok = jnp.stack([_all_finite(q) if q is not None else jnp.asarray(True) for q in quantities])
    code = jnp.where(jnp.all(ok), 0, jnp.argmin(ok) + 1).astype(jnp.int32)
    fresh = (record[1] == 0) & (code > 0)
    return jnp.where(fresh, jnp.stack([jnp.asarray(step, jnp.int32), code]), record)


def raise_if_nonfinite(record: Any, describe_step: Callable[[int], str],
                       env_step_of: Callable[[int], int] | None = None,
                       last_checkpoint: str | None = None) -> None:
    """Raises :class:`NonFiniteError` if a guard record (or a batch of them) is set.

    Args:
      record: int32 ``[2]`` or ``[runs, 2]`` from :func:`guard_nonfinite`.
      describe_step: turns the recorded step into words, e.g. ``"env step 1200"``.
      env_step_of: turns the recorded step into an environment step (for the
        exception's attribute).
      last_checkpoint: path of the last good checkpoint, quoted in the message.
    """
    rec = np.asarray(record).reshape(-1, 2)
    bad = np.flatnonzero(rec[:, 1] > 0)
    if bad.size == 0:
        return
    i = int(bad[np.argmin(rec[bad, 0])])
    step, code = int(rec[i, 0]), int(rec[i, 1])
    quantity = GUARDED[code - 1]
    run = f" in run {i}" if rec.shape[0] > 1 else ""
    kept = (f" The last good checkpoint, {last_checkpoint}, is kept."
            if last_checkpoint else " No checkpoint was written after it.")
    raise NonFiniteError(
        f"non-finite {quantity} (NaN or infinity) at {describe_step(step)}{run}; training "
        f"stopped.{kept} Lower the learning rates, clip gradients (--max-grad-norm) or check "
        "the environment's rewards and observations.",
        env_step=env_step_of(step) if env_step_of else None, quantity=quantity)


def check_host_transition(reward: np.ndarray, next_obs: np.ndarray, env_step: int,
                          last_checkpoint: str | None = None) -> None:
    """Refuses a non-finite reward or observation coming from a gymnasium env."""
    for name, value in (("reward", reward), ("observation", next_obs)):
        if not np.all(np.isfinite(value)):
            kept = (f" The last good checkpoint, {last_checkpoint}, is kept."
                    if last_checkpoint else "")
            raise NonFiniteError(
                f"non-finite {name} (NaN or infinity) returned by the environment at env step "
                f"{env_step}; training stopped before it reached the replay buffer.{kept}",
                env_step=env_step, quantity=name)


# --------------------------------------------------------------------------- resuming
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

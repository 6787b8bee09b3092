"""How a run is managed: checkpoint cadence and retention, logs, progress, stop signals.

None of it changes what a run computes:

* :class:`RunOptions`: checkpoint cadence and retention, replay buffer in
  checkpoints, TensorBoard, progress bar (not part of
  :class:`~ddpg_jax.config.DDPGConfig`; written by
  :class:`~ddpg_jax.drivers.session.RunWriters` for every entry point);
* :class:`StopSignals`: the first SIGINT/SIGTERM asks the training driver to
  checkpoint and stop at its next safe point; a second one exits at once.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ddpg_jax.config import DDPGConfig


class RunOptionsError(ValueError):
    """A run-management option is out of range."""


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is checkpointed, logged and shown; none of it changes the results.

    Every field acts the same through ``ddpg_jax.train`` and ``ddpg-jax train``.

    Attributes:
      checkpoint_every: when periodic checkpoints are written. ``None`` (the
        default): at every evaluation point, that is every ``eval_every``
        environment steps after the warm-up and at the end (so each checkpoint
        carries an evaluation return and "best" is meaningful; with
        ``eval_every=0``, only at the end). An integer ``N > 0``: every ``N``
        environment steps after the warm-up, and at the end. ``0``: only the
        final checkpoint (and one on interruption). Checkpoints are written
        only with a ``run_dir``.
      keep_checkpoints: how many of the most recent checkpoints to keep; the
        one with the best evaluation return is kept as well.
      buffer_in_checkpoint: include the replay buffer (needed for an exact
        resume; without it a resumed run refills the buffer with a new warm-up).
      tensorboard: also write TensorBoard events under ``run_dir/tensorboard``
        (needs a ``run_dir`` and ``pip install 'ddpg-jax[tensorboard]'``).
      progress: draw a progress bar (rich) when stdout is a terminal. Off by
        default for ``ddpg_jax.train``; the command line turns it on unless
        ``--quiet``.
      compile_cache: where jax's persistent compilation cache keeps this run's
        compiled programs, so that launching the same program again skips
        compiling: ``None`` (the default) for the environment variable
        ``DDPG_JAX_CACHE_DIR`` or else the per-user folder
        (``$XDG_CACHE_HOME/ddpg_jax/jax``, ``~/.cache/ddpg_jax/jax``); a folder;
        or ``"off"``. See :mod:`ddpg_jax.drivers.compile_cache`.
    """

    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    buffer_in_checkpoint: bool = True
    tensorboard: bool = False
    progress: bool = False
    compile_cache: str | None = None

    def validate(self) -> RunOptions:
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
        cc = self.compile_cache
        if cc is not None and (not isinstance(cc, (str, os.PathLike)) or not str(cc).strip()):
            raise RunOptionsError(f"--compile-cache {cc!r} is not valid; accepted: a folder "
                                  "(created if missing) or 'off'.")
        return self

    def checkpoint_interval(self, config: DDPGConfig) -> int:
        """Environment steps between periodic checkpoints (0: only at the end).

        ``checkpoint_every=None`` gives ``config.eval_every``, whose points are exactly
        the evaluation points (:func:`~ddpg_jax.drivers.schedule.make_schedule` places both
        with one rule).
        """
        return config.eval_every if self.checkpoint_every is None else self.checkpoint_every

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

"""Host-side bookkeeping that both drivers share: records, logs, checkpoints, wall time.

A driver owns its loop and its device state; at each point of the schedule
it hands this :class:`Session` what it measured (metric sums, evaluation
returns) and the arrays to save, and the session turns them into records,
callbacks, log lines and checkpoints the same way for both drivers.
:class:`RunWriters` adds what :class:`~ddpg_jax.drivers.run_options.RunOptions`
asks for on top of the caller's callbacks: the run directory's metric files,
TensorBoard events and the progress bar.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ddpg_jax.agent.nonfinite import raise_if_nonfinite
from ddpg_jax.checkpoints.format import (
    Checkpoint,
    CheckpointError,
    CheckpointManager,
    checkpoint_dir,
    load_item,
    step_dir_name,
    trim_rows,
)
from ddpg_jax.checkpoints.policy_record import policy_record
from ddpg_jax.config import DDPGConfig
from ddpg_jax.drivers.run_options import RunOptions, RunOptionsError
from ddpg_jax.records.metrics import (
    MetricWindow,
    chunk_record,
    evaluation_record,
    log_line,
)
from ddpg_jax.records.writers import (
    TENSORBOARD_HINT,
    MissingExtraError,
    Progress,
    RunLog,
    tensorboard_available,
)


@dataclasses.dataclass(frozen=True)
class Callbacks:
    """What a caller of ``train`` hears from a run (every one optional).

    Attributes:
      log: receives one line per evaluation.
      on_evaluation: called with each evaluation record.
      on_chunk: called with a training-metrics record at each log point.
      on_progress: called with the environment steps done (per run).
      should_stop: polled at safe points; once True the run checkpoints and returns.
      on_start: called once when the session starts (after a resume is restored)
        with the environment steps done and whether the run resumed.
    """

    log: Callable[[str], None] | None = None
    on_evaluation: Callable[[dict[str, Any]], None] | None = None
    on_chunk: Callable[[dict[str, Any]], None] | None = None
    on_progress: Callable[[int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_start: Callable[[int, bool], None] | None = None


def _both(first: Callable[..., None] | None,
          then: Callable[..., None] | None) -> Callable[..., None] | None:
    """A callback calling ``first``, then ``then`` (either may be None)."""
    if first is None or then is None:
        return first or then

    def call(*args: Any) -> None:
        first(*args)
        then(*args)

    return call


class RunWriters:
    """The writers a run's :class:`RunOptions` ask for, whichever entry point trains.

    Made (and checked) before any work; opened when the session starts, so a resumed run's
    files drop the records after its checkpoint; closed by :meth:`close`, also when the run
    fails. With a ``run_dir``, process 0 writes ``evaluations.jsonl`` / ``.csv`` and
    ``train_metrics.jsonl`` / ``.csv`` there (:class:`~ddpg_jax.records.writers.RunLog`), and
    TensorBoard events under ``run_dir/tensorboard`` with ``options.tensorboard``; with
    ``options.progress`` it draws a progress bar when stdout is a terminal.

    Raises:
      RunOptionsError: ``tensorboard`` without a ``run_dir`` to write to.
      MissingExtraError: ``tensorboard`` without the package (the message names the pip line).
    """

    def __init__(self, options: RunOptions, run_dir: str | os.PathLike | None,
                 total_steps: int):
        if options.tensorboard and run_dir is None:
            raise RunOptionsError("RunOptions(tensorboard=True) writes TensorBoard events under "
                                  "RUN_DIR/tensorboard, and no run_dir was given; accepted: a "
                                  "run_dir, or tensorboard=False.")
        if options.tensorboard and not tensorboard_available():
            raise MissingExtraError("RunOptions(tensorboard=True) needs the tensorboard package, "
                                    f"which is not installed: {TENSORBOARD_HINT}.")
        self.options, self.run_dir, self.total_steps = options, run_dir, total_steps
        self.run_log: RunLog | None = None
        self.bar: Progress | None = None

    def start(self, env_steps: int, resumed: bool) -> None:
        """Opens the files (dropping records after ``env_steps`` when resumed) and the bar."""
        if jax.process_index() != 0:
            return
        if self.run_dir is not None:
            Path(self.run_dir).mkdir(parents=True, exist_ok=True)
            self.run_log = RunLog(self.run_dir, tensorboard=self.options.tensorboard,
                                  resume_step=env_steps if resumed else None)
        self.bar = Progress(self.total_steps, env_steps, enabled=self.options.progress)

    def _evaluation(self, record: dict[str, Any]) -> None:
        if self.run_log is not None:
            self.run_log.evaluation(record)
        if self.bar is not None:
            self.bar.set_eval(record["eval_return_mean"])

    def _chunk(self, record: dict[str, Any]) -> None:
        if self.run_log is not None:
            self.run_log.chunk(record)

    def _progress(self, env_steps: int) -> None:
        if self.bar is not None:
            self.bar.update(env_steps)

    def wrap(self, callbacks: Callbacks) -> Callbacks:
        """``callbacks`` with the writers called first."""
        return dataclasses.replace(
            callbacks, on_start=_both(self.start, callbacks.on_start),
            on_evaluation=_both(self._evaluation, callbacks.on_evaluation),
            on_chunk=_both(self._chunk, callbacks.on_chunk),
            on_progress=_both(self._progress, callbacks.on_progress))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.run_log is not None:
            self.run_log.close()
            self.run_log = None


def checkpoint_items(state: Any, buffer: Any, with_buffer: bool, seed_axis: bool
                     ) -> dict[str, Any]:
    """What a checkpoint of either driver holds: the loop's state, its buffer left out,
    under ``"state"``, and (``with_buffer``) the buffer's written rows under ``"buffer"``
    (rows past the fill level are zeros: not saved). ``seed_axis``: the rows are axis 1."""
    items: dict[str, Any] = {"state": state}
    if with_buffer:
        rows = int(np.max(buffer.size))
        items["buffer"] = buffer.replace(
            packed=trim_rows(buffer.packed, rows, axis=1 if seed_axis else 0))
    return items


def load_checkpoint_items(checkpoint: Checkpoint, state: Any, buffer: Any, seed_axis: bool
                          ) -> tuple[Any, Any | None]:
    """The ``"state"`` and ``"buffer"`` items of :func:`checkpoint_items`, read into the
    templates ``state`` and ``buffer``; the buffer is ``None`` when it was left out."""
    loaded = load_item(checkpoint, "state", state)
    if "buffer" not in checkpoint.meta["items"]:
        return loaded, None
    return loaded, load_item(checkpoint, "buffer", buffer, pad_axis=1 if seed_axis else 0)


class Session:
    """The host side of one run (or one batch of seeds) in one process.

    Args:
      backend: ``"gymnasium"`` or ``"jax"``, stored in checkpoints.
      env_id: the env's id, stored in checkpoints.
      config: the run's config.
      options: checkpoint cadence and retention.
      run_dir: where ``checkpoints/`` go; ``None`` writes none.
      callbacks: the caller's callbacks.
      num_seeds: runs trained at once.
      resumed: the checkpoint this session continues, if any.
      start_steps: environment steps done when the session starts.
      policy: the driver's description of the policy
        (:func:`ddpg_jax.checkpoints.policy_record.describe_policy`); each checkpoint's meta then
        holds a ``policy`` record, so the policy loads without the env.
      preset: the preset's name, recorded in that policy record.
    """

    def __init__(self, *, backend: str, env_id: str, config: DDPGConfig, options: RunOptions,
                 run_dir: str | os.PathLike | None, callbacks: Callbacks, num_seeds: int = 1,
                 resumed: Checkpoint | None = None, start_steps: int = 0,
                 policy: dict[str, Any] | None = None, preset: str | None = None):
        self.backend, self.env_id, self.config, self.preset = backend, env_id, config, preset
        self.run_dir, self.policy = run_dir, policy
        self.callbacks, self.num_seeds = callbacks, num_seeds
        self.evaluations: list[dict[str, Any]] = []
        self.eval_window = MetricWindow()
        self.wall_offset = 0.0
        self.t_start = time.perf_counter()
        self.manager = (CheckpointManager(checkpoint_dir(run_dir), options.keep_checkpoints)
                        if run_dir is not None else None)
        self.buffer_in_checkpoint = options.buffer_in_checkpoint
        self.last_checkpoint: Path | None = None
        if resumed is not None:
            self._restore(resumed)
        self.last_chunk = (start_steps, time.perf_counter())
        if callbacks.on_start is not None:
            callbacks.on_start(start_steps, resumed is not None)

    def _restore(self, checkpoint: Checkpoint) -> None:
        try:
            host = checkpoint.meta["host"]
            self.evaluations = list(host["evaluations"])
            self.eval_window = MetricWindow(host["eval_window"])
            self.wall_offset = float(host["wall_time_s"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {checkpoint.path} has unreadable loop state "
                                  f"({e}).") from None
        self.last_checkpoint = checkpoint.path
        if self.manager is not None:
            self.manager.supersede_after(checkpoint.step)

    # ------------------------------------------------------------------ time and safety
    def wall_time(self) -> float:
        """Seconds of the whole run, earlier sessions included."""
        return self.wall_offset + time.perf_counter() - self.t_start

    def check_finite(self, record: Any) -> None:
        """Raises :class:`~ddpg_jax.agent.nonfinite.NonFiniteError` if the guard record is set."""
        raise_if_nonfinite(record, lambda s: f"env step {s}", lambda s: s,
                           str(self.last_checkpoint) if self.last_checkpoint else None)

    def stop_requested(self) -> bool:
        return self.callbacks.should_stop is not None and bool(self.callbacks.should_stop())

    def progress(self, env_steps: int) -> None:
        if self.callbacks.on_progress is not None:
            self.callbacks.on_progress(env_steps)

    # ------------------------------------------------------------------ records
    def chunk(self, env_steps: int, updates: int, sums: dict[str, Any],
              train_return: Any) -> None:
        """Records the training metrics since the previous log point."""
        window = MetricWindow(sums)
        self.eval_window.add(window.sums)
        steps, t = self.last_chunk
        now = time.perf_counter()
        if env_steps <= steps:
            return
        rate = self.num_seeds * (env_steps - steps) / max(now - t, 1e-9)
        self.last_chunk = (env_steps, now)
        if self.callbacks.on_chunk is not None:
            self.callbacks.on_chunk(chunk_record(env_steps, updates, window, train_return, rate,
                                                 self.wall_time()))

    def evaluation(self, env_steps: int, updates: int, returns: Any,
                   train_return: Any) -> dict[str, Any]:
        """Records an evaluation (``returns``: ``[episodes]`` or ``[seeds, episodes]``)."""
        record = evaluation_record(env_steps, updates, returns, train_return, self.eval_window,
                                   self.wall_time())
        self.eval_window = MetricWindow()
        self.evaluations.append(record)
        if self.callbacks.on_evaluation is not None:
            self.callbacks.on_evaluation(record)
        if self.callbacks.log is not None:
            self.callbacks.log(log_line(record, self.num_seeds))
        return record

    def evaluated_at(self, env_steps: int) -> bool:
        return bool(self.evaluations) and self.evaluations[-1]["env_steps"] == env_steps

    # ------------------------------------------------------------------ checkpoints
    def saved_at(self, env_steps: int) -> bool:
        return (self.last_checkpoint is not None
                and self.last_checkpoint.name == step_dir_name(env_steps))

    def save(self, env_steps: int, items: dict[str, Any], meta: dict[str, Any],
             host: dict[str, Any] | None = None, obs_stats: Any = None) -> None:
        """Writes a checkpoint (on process 0 only) with the session's own state in its meta.

        ``obs_stats``: the train state's observation statistics, for the policy record.
        """
        if self.manager is None or jax.process_index() != 0:
            return
        evals = self.evaluations
        meta = {
            "backend": self.backend, "env_id": self.env_id, "config": self.config.to_dict(),
            "num_seeds": self.num_seeds, "env_steps": env_steps,
            "eval_return": evals[-1]["eval_return_mean"] if self.evaluated_at(env_steps) else None,
            **meta,
            **({"policy": policy_record(self.policy, self.config, obs_stats, self.preset)}
               if self.policy is not None else {}),
            "host": {"evaluations": evals, "eval_window": self.eval_window.to_json(),
                     "wall_time_s": self.wall_time(), **(host or {})},
        }
        self.last_checkpoint = self.manager.save(env_steps, items, meta)

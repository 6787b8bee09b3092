"""Metric files, TensorBoard events and the progress bar of a run directory.

A run directory receives, as training goes:

* ``evaluations.jsonl`` / ``evaluations.csv``: one record per evaluation
  (environment steps, evaluation return mean/std, the update metrics averaged
  since the previous evaluation, wall time);
* ``train_metrics.jsonl`` / ``train_metrics.csv``: one record per chunk of
  training between two log points (evaluations and checkpoints): losses, Q
  values, gradient norms, the recent training-episode return, steps per second;
* ``tensorboard/``: the same scalars as TensorBoard events, with
  ``RunOptions(tensorboard=True)`` or ``--tensorboard`` (``pip install
  'ddpg-jax[tensorboard]'``);
* ``wandb/``: the same scalars, the run's config and its summary as a
  Weights & Biases run (:class:`WandbLog`), with the command line's ``--wandb PROJECT``
  (``pip install 'ddpg-jax[wandb]'``; ``WANDB_MODE=offline`` logs locally, to sync later).

:class:`RunLog` writes the files and the TensorBoard events; the training session opens it
(:class:`ddpg_jax.drivers.session.RunWriters`), so ``ddpg_jax.train`` and ``ddpg-jax train``
write the same run directory.

The JSONL files are the record; the CSV files are derived from them (list
values become ``name_0, name_1, ...`` columns; per-episode returns are left
out). When a run resumes from a checkpoint, records written after that
checkpoint's step are dropped first, so the files never hold the same step
twice.
"""

from __future__ import annotations

import abc
import csv
import json
import math
import os
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

EVALUATIONS = "evaluations"
TRAIN_METRICS = "train_metrics"
#: Record keys that stay out of the CSV files (too long for a column each).
CSV_SKIP = ("eval_returns",)

TENSORBOARD_HINT = "pip install 'ddpg-jax[tensorboard]'"
WANDB_HINT = "pip install 'ddpg-jax[wandb]'"


class MissingExtraError(RuntimeError):
    """An optional dependency is needed; the message names the pip command."""


class LoggerError(RuntimeError):
    """An external logger (Weights & Biases) could not start; the message says what to do."""


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package can be imported (``pip install 'ddpg-jax[tensorboard]'``)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def wandb_available() -> bool:
    """Whether the ``wandb`` package can be imported (``pip install 'ddpg-jax[wandb]'``)."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        return False
    return True


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSONL file; a torn last line (from a kill) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key in CSV_SKIP:
            continue
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                row[f"{key}_{i}"] = v
        else:
            row[key] = value
    return row


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class _Stream:
    """One JSONL file and its CSV twin, appended record by record."""

    def __init__(self, run_dir: Path, name: str):
        self.jsonl_path = run_dir / f"{name}.jsonl"
        self.csv_path = run_dir / f"{name}.csv"
        self._columns: list[str] | None = None
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            self._columns = header or None

    def truncate_after(self, step: int) -> None:
        """Drops records with ``env_steps > step`` and rewrites the CSV from the rest."""
        records = [r for r in read_jsonl(self.jsonl_path) if r.get("env_steps", 0) <= step]
        tmp = self.jsonl_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, self.jsonl_path)
        self._columns = None
        if self.csv_path.exists():
            self.csv_path.unlink()
        for r in records:
            self._write_csv(r)

    def _write_csv(self, record: dict[str, Any]) -> None:
        row = _csv_row(record)
        new_file = self._columns is None
        if new_file:
            self._columns = list(row)
        with open(self.csv_path, "a" if not new_file else "w", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(self._columns)
            # Columns are fixed by the first record; later keys that were not
            # there are left out of the CSV (they stay in the JSONL record).
            writer.writerow([_csv_value(row.get(c)) for c in self._columns])

    def write(self, record: dict[str, Any]) -> None:
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self._write_csv(record)


def _numbers(record: dict[str, Any], prefix: str) -> dict[str, float]:
    out = {}
    for key, value in record.items():
        if key == "env_steps" or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[f"{prefix}/{key}"] = value
    return out


def _sweep_points(labels: Sequence[str], env_steps: Sequence[int],
                  eval_return_mean: Sequence[Sequence[float]]) -> list[tuple[int, dict[str, float]]]:
    """A sweep's curves as ``(step, {sweep/LABEL/eval_return_mean: value})``, step by step."""
    points = []
    for j, step in enumerate(env_steps):
        values = {f"sweep/{label}/eval_return_mean": float(curve[j])
                  for label, curve in zip(labels, eval_return_mean)
                  if curve[j] is not None and math.isfinite(curve[j])}
        points.append((int(step), values))
    return points


class _ScalarMirror(abc.ABC):
    """Evaluation, chunk and sweep records as scalars; a subclass says where they go."""

    @abc.abstractmethod
    def _scalars(self, step: int, values: dict[str, float]) -> None:
        """Writes ``values`` (name -> number) at environment step ``step``."""

    def evaluation(self, record: dict[str, Any]) -> None:
        self._scalars(record["env_steps"], _numbers(record, "eval"))

    def chunk(self, record: dict[str, Any]) -> None:
        self._scalars(record["env_steps"], _numbers(record, "train"))

    def sweep(self, labels: Sequence[str], env_steps: Sequence[int],
              eval_return_mean: Sequence[Sequence[float]]) -> None:
        """A sweep's curves (``eval_return_mean[setting][point]``, mean over seeds), one step
        at a time over all settings (wandb needs increasing steps), as
        ``sweep/LABEL/eval_return_mean``."""
        for step, values in _sweep_points(labels, env_steps, eval_return_mean):
            self._scalars(step, values)


class _TensorBoard(_ScalarMirror):
    """Scalars as TensorBoard event files, written with the ``tensorboard`` package alone."""

    def __init__(self, logdir: Path, resume_step: int | None):
        try:
            from tensorboard.compat.proto.event_pb2 import Event, SessionLog
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise MissingExtraError(
                f"--tensorboard needs the tensorboard package: {TENSORBOARD_HINT}") from None
        self._Event, self._Summary = Event, Summary
        logdir.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(logdir))
        if resume_step is not None:
            # Tells TensorBoard to drop events after the resumed step from earlier files.
            self._writer.add_event(Event(wall_time=time.time(), step=resume_step,
                                         session_log=SessionLog(status=SessionLog.START)))

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        summary = self._Summary(value=[self._Summary.Value(tag=k, simple_value=float(v))
                                       for k, v in values.items()])
        self._writer.add_event(self._Event(wall_time=time.time(), step=step, summary=summary))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class RunLog:
    """Writes a run's evaluation and training-chunk records (see the module docstring).

    Args:
      run_dir: the run directory (must exist).
      tensorboard: also write TensorBoard events under ``run_dir/tensorboard``.
      resume_step: when continuing a run, the checkpoint's environment steps;
        later records are dropped from the files first.

    Raises:
      MissingExtraError: ``tensorboard`` without the package.
    """

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = False,
                 resume_step: int | None = None):
        self.run_dir = Path(run_dir)
        self._evals = _Stream(self.run_dir, EVALUATIONS)
        self._chunks = _Stream(self.run_dir, TRAIN_METRICS)
        if resume_step is not None:
            self._evals.truncate_after(resume_step)
            self._chunks.truncate_after(resume_step)
        self._tb = (_TensorBoard(self.run_dir / "tensorboard", resume_step) if tensorboard
                    else None)

    def evaluation(self, record: dict[str, Any]) -> None:
        self._evals.write(record)
        if self._tb is not None:
            self._tb.evaluation(record)

    def chunk(self, record: dict[str, Any]) -> None:
        self._chunks.write(record)
        if self._tb is not None:
            self._tb.chunk(record)

    def sweep(self, labels: Sequence[str], env_steps: Sequence[int],
              eval_return_mean: Sequence[Sequence[float]]) -> None:
        """A sweep's evaluation curves, to TensorBoard only (``summary.json`` holds them)."""
        if self._tb is not None:
            self._tb.sweep(labels, env_steps, eval_return_mean)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class WandbLog(_ScalarMirror):
    """A Weights & Biases run mirroring the run directory's scalars, config and summary.

    The mode (online, offline, disabled) is wandb's own: ``WANDB_MODE`` and the
    user's wandb settings decide it; nothing here forces one.

    Args:
      project: the wandb project; the wandb run is named ``name``.
      run_dir: where wandb keeps its files (``run_dir/wandb``).
      config: the run's settings, given to ``wandb.init`` as its config.

    Raises:
      MissingExtraError: without the wandb package.
      LoggerError: when ``wandb.init`` fails.
    """

    def __init__(self, project: str, run_dir: str | os.PathLike, name: str,
                 config: Mapping[str, Any]):
        try:
            import wandb
        except ImportError:
            raise MissingExtraError(f"--wandb needs the wandb package: {WANDB_HINT}") from None
        try:
            self._run = wandb.init(project=project, name=name, dir=str(run_dir),
                                   config=dict(config))
        except Exception as e:  # wandb raises its own errors (not logged in, no network, ...)
            raise LoggerError(
                f"--wandb {project}: wandb.init failed ({type(e).__name__}: {e}). Log in with "
                "`wandb login`, or set WANDB_MODE=offline to log locally and upload later with "
                "`wandb sync`.") from None

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        if values:
            self._run.log(dict(values), step=int(step))

    def summary(self, values: Mapping[str, Any]) -> None:
        self._run.summary.update(dict(values))

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


class Progress:
    """A progress bar (``rich``) with steps/s, the latest evaluation return and the ETA.

    It is shown only when ``enabled`` and ``stream`` is a terminal; otherwise
    every method but :meth:`write` (a plain print) does nothing. Lines given
    to :meth:`write` are printed above the bar. Steps per second are measured
    over the last ~30 s of updates (at least the last two), so compile time
    before the first update does not count; the ETA follows from them.
    """

    #: Seconds of updates the speed is measured over.
    WINDOW_S = 30.0
    #: Least seconds between two recomputations of the speed and the ETA.
    MIN_INTERVAL_S = 0.1

    def __init__(self, total: int, initial: int = 0, *, enabled: bool = True,
                 stream: TextIO | None = None, desc: str = "train"):
        self._stream = stream or sys.stdout
        self._bar: Any = None
        self._task: Any = None
        self._total = total
        self._last = initial
        self._shown_at = 0.0
        self._samples: deque[tuple[float, int]] = deque()
        if not bar_shown(enabled, self._stream):
            return
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        console = Console(file=self._stream, force_terminal=True, force_jupyter=False,
                          highlight=False)
        # Stray prints and warnings go above the bar instead of through it, when the bar
        # is on the real stdout.
        redirect = self._stream is sys.stdout
        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(bar_width=None),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"), TextColumn("{task.fields[eval]}"),
            console=console, refresh_per_second=4, redirect_stdout=redirect,
            redirect_stderr=redirect, expand=True)
        self._task = self._bar.add_task(desc, total=total, completed=initial,
                                        rate="? step/s", eta="eta ?", eval="")
        self._bar.start()

    @property
    def active(self) -> bool:
        return self._bar is not None

    def _speed(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, s0), (t1, s1) = self._samples[0], self._samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None

    def update(self, env_steps: int) -> None:
        if self._bar is None or env_steps <= self._last:
            return
        self._last = env_steps
        now = time.perf_counter()
        if env_steps < self._total and now - self._shown_at < self.MIN_INTERVAL_S:
            # The count is always current (a stall after a burst of steps, such as the
            # first compile after the warm-up, must not hide them); speed and ETA are
            # recomputed at most every MIN_INTERVAL_S.
            self._bar.update(self._task, completed=env_steps)
            return
        self._sample(now)

    def _sample(self, now: float) -> None:
        self._samples.append((now, self._last))
        while len(self._samples) > 2 and self._samples[1][0] < now - self.WINDOW_S:
            self._samples.popleft()
        self._show(now)

    def _show(self, now: float) -> None:
        speed = self._speed()
        fields: dict[str, str] = {}
        if speed is not None and speed > 0:
            fields["rate"] = f"{speed:,.0f} step/s" if speed >= 10 else f"{speed:.1f} step/s"
            eta = max(self._total - self._last, 0) / speed
            fields["eta"] = f"eta {_duration(eta)}"
        self._bar.update(self._task, completed=self._last, **fields)
        self._shown_at = now

    def set_eval(self, value: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, eval=f"eval return {value:.1f}")

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            if not self._samples or self._samples[-1][1] != self._last:
                self._sample(time.perf_counter())
            self._bar.stop()
            self._bar = None


def bar_shown(enabled: bool, stream: Any = None) -> bool:
    """Whether a :class:`Progress` made with ``enabled`` on ``stream`` (default stdout) draws."""
    return enabled and _isatty(sys.stdout if stream is None else stream)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


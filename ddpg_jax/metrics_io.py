"""Metric files, TensorBoard events and the progress bar of a run directory.

A run directory receives, as training goes:

* ``evaluations.jsonl`` / ``evaluations.csv``: one record per evaluation
  (environment steps, evaluation return mean/std, the update metrics averaged
  since the previous evaluation, wall time);
* ``train_metrics.jsonl`` / ``train_metrics.csv``: one record per chunk of
  training between two log points (evaluations and checkpoints): losses, Q
  values, gradient norms, the recent training-episode return, steps per second;
* ``tensorboard/``: the same scalars as TensorBoard events, with
  ``--tensorboard`` (``pip install 'ddpg-jax[tensorboard]'``).

The JSONL files are the record; the CSV files are derived from them (list
values become ``name_0, name_1, ...`` columns; per-episode returns are left
out). When a run resumes from a checkpoint, records written after that
checkpoint's step are dropped first, so the files never hold the same step
twice.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

EVALUATIONS = "evaluations"
TRAIN_METRICS = "train_metrics"
#: Record keys that stay out of the CSV files (too long for a column each).
CSV_SKIP = ("eval_returns",)

PROGRESS_HINT = "pip install 'ddpg-jax[progress]'"
TENSORBOARD_HINT = "pip install 'ddpg-jax[tensorboard]'"


class MissingExtraError(RuntimeError):
    """An optional dependency is needed; the message names the pip command."""


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


class _TensorBoard:
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

    def scalars(self, step: int, values: dict[str, float]) -> None:
        summary = self._Summary(value=[self._Summary.Value(tag=k, simple_value=float(v))
                                       for k, v in values.items()])
        self._writer.add_event(self._Event(wall_time=time.time(), step=step, summary=summary))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _numbers(record: dict[str, Any], prefix: str) -> dict[str, float]:
    out = {}
    for key, value in record.items():
        if key == "env_steps" or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[f"{prefix}/{key}"] = value
    return out


class RunLog:
    """Writes a run's evaluation and training-chunk records (see the module docstring).

    Args:
      run_dir: the run directory (must exist).
      tensorboard: also write TensorBoard events under ``run_dir/tensorboard``.
      resume_step: when continuing a run, the checkpoint's environment steps;
        later records are dropped from the files first.

    Raises:
      MissingExtraError: ``tensorboard`` without the tensorboard package.
    """

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = False,
                 resume_step: int | None = None):
        self.run_dir = Path(run_dir)
        self._evals = _Stream(self.run_dir, EVALUATIONS)
        self._chunks = _Stream(self.run_dir, TRAIN_METRICS)
        if resume_step is not None:
            self._evals.truncate_after(resume_step)
            self._chunks.truncate_after(resume_step)
        self._tb = _TensorBoard(self.run_dir / "tensorboard", resume_step) if tensorboard else None

    def evaluation(self, record: dict[str, Any]) -> None:
        self._evals.write(record)
        if self._tb is not None:
            self._tb.scalars(record["env_steps"], _numbers(record, "eval"))

    def chunk(self, record: dict[str, Any]) -> None:
        self._chunks.write(record)
        if self._tb is not None:
            self._tb.scalars(record["env_steps"], _numbers(record, "train"))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class Progress:
    """A tqdm progress bar with steps/s, the latest evaluation return and the ETA.

    It is shown only when ``enabled`` and stdout is a terminal; otherwise every
    method but :meth:`write` (a plain print) does nothing. Without tqdm it
    prints a one-line hint instead.
    """

    def __init__(self, total: int, initial: int = 0, *, enabled: bool = True,
                 stream: TextIO | None = None, desc: str = "train"):
        self._stream = stream or sys.stdout
        self._bar = None
        self._last = initial
        if not enabled or not _isatty(self._stream):
            return
        try:
            from tqdm import tqdm
        except ImportError:
            print(f"(no progress bar: it needs tqdm, {PROGRESS_HINT})", file=self._stream)
            return
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            columns = 0
        # A terminal that reports no size (some ptys) would get a zero-width bar.
        width = {"dynamic_ncols": True} if columns > 0 else {"ncols": 100, "nrows": 40}
        self._bar = tqdm(total=total, initial=initial, unit="step", desc=desc,
                         file=self._stream, mininterval=0.25, **width)

    @property
    def active(self) -> bool:
        return self._bar is not None

    def update(self, env_steps: int) -> None:
        if self._bar is not None and env_steps > self._last:
            self._bar.update(env_steps - self._last)
            self._last = env_steps

    def set_eval(self, value: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"eval return {value:.1f}", refresh=False)

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self._stream)
        else:
            print(line, file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


"""Run directories of ``ddpg-jax train``: a new run's directory, a resumed run's saved
settings, and JSON files written so that a crash never leaves half of one behind."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shlex
from pathlib import Path
from typing import Any

from ddpg_jax.checkpoints.format import CHECKPOINTS
from ddpg_jax.cli.usage import UsageError
from ddpg_jax.config import DDPGConfig


def prepare_out_dir(out: str | None, env_id: str, config: DDPGConfig, preset_name: str) -> Path:
    """``--out``, or ``runs/ENV_ID-PRESET-seedSEED-TIMESTAMP``; refused if it holds anything."""
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        safe_env = env_id.replace("/", "_").replace(":", "_")
        out = os.path.join("runs", f"{safe_env}-{preset_name}-seed{config.seed}-{stamp}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out!r} exists and is not a directory; accepted: a new or "
                         "empty directory.")
    if path.is_dir() and any(path.iterdir()):
        raise UsageError(f"--out {out!r} already holds files (an earlier run?); refusing to "
                         "overwrite them. Accepted: a new or empty directory; to continue a run, "
                         f"use --resume {out}.")
    return path


def write_json(path: Path, payload: dict[str, Any]) -> None:
    # Write then rename, so a crash never leaves a half-written file behind.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def locate_resume(resume: str) -> tuple[Path, Path | None]:
    """``(run directory, checkpoint or None for its latest)`` of ``--resume DIR``."""
    path = Path(resume)
    if (path / "config.json").is_file():
        return path, None
    if path.parent.name == CHECKPOINTS and (path.parent.parent / "config.json").is_file():
        return path.parent.parent, path
    raise UsageError(f"--resume {resume!r} is neither a run directory (with config.json) "
                     "nor a checkpoint inside one; accepted: a directory written by "
                     "`ddpg-jax train`, or one of its checkpoints/step_* directories.")


@dataclasses.dataclass
class SavedRun:
    """The settings a run directory's config.json holds."""

    env_id: str
    config: DDPGConfig
    backend: str
    preset: str
    num_seeds: int
    run_options: dict[str, Any] | None


def read_saved_run(run_dir: Path) -> SavedRun:
    """The run's config.json; refused if unreadable, or if the run is a sweep."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        if isinstance(saved, dict) and saved.get("sweep") is not None:
            raise UsageError(
                f"{run_dir} holds a sweep; sweeps are not resumable (one compiled program, no "
                f"checkpoints). Re-run it with: ddpg-jax train --config "
                f"{shlex.quote(str(run_dir / 'config.json'))} --out NEW_DIR")
        return SavedRun(env_id=saved["env_id"], config=DDPGConfig.from_dict(saved["config"]),
                        backend=saved.get("backend", "gymnasium"),
                        preset=saved.get("preset", "default"),
                        num_seeds=int(saved.get("num_seeds", 1)),
                        run_options=saved.get("run_options"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{run_dir / 'config.json'} cannot be read ({e}); it is not a run "
                         "directory that can be resumed.") from None

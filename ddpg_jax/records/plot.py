"""Learning curves of run directories: evaluation return against environment steps.

Runs that share the env and the config (apart from ``seed`` and
``total_steps``) form one group, drawn as the mean over its seeds with a band
from the lowest to the highest seed and each seed as a thin line. A JAX-backend
multi-seed run directory contributes one curve per seed. Needs matplotlib
(``pip install 'ddpg-jax[plot]'``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_jax.records.writers import MissingExtraError, read_jsonl

PLOT_HINT = "pip install 'ddpg-jax[plot]'"


class RunDirError(ValueError):
    """A directory is not a run directory with evaluations."""


@dataclasses.dataclass
class Curve:
    """Evaluation returns of one seed of one run."""

    run_dir: Path
    env_id: str
    group: str  # runs with the same key are drawn together
    config: dict[str, Any]
    seed_label: str
    steps: np.ndarray  # [points] int
    returns: np.ndarray  # [points] float


def load_curves(run_dir: str | os.PathLike) -> list[Curve]:
    """The curves of one run directory (one per seed).

    Raises:
      RunDirError: without ``config.json`` or evaluation records.
    """
    run_dir = Path(run_dir)
    try:
        info = json.loads((run_dir / "config.json").read_text())
        config = dict(info["config"])
        env_id = info["env_id"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RunDirError(f"{run_dir} is not a ddpg-jax run directory (no readable "
                          "config.json).") from None
    records = [r for r in read_jsonl(run_dir / "evaluations.jsonl")
               if r.get("eval_return_mean") is not None]
    if not records:
        raise RunDirError(f"{run_dir} has no evaluation records in evaluations.jsonl yet.")
    records = list({r["env_steps"]: r for r in records}.values())  # last record per step
    records.sort(key=lambda r: r["env_steps"])
    steps = np.array([r["env_steps"] for r in records])
    key_config = {k: v for k, v in config.items() if k not in ("seed", "total_steps")}
    group = json.dumps({"env_id": env_id, **key_config}, sort_keys=True)
    seed = config.get("seed", 0)
    if "eval_return_mean_per_seed" in records[0]:
        per_seed = np.array([r["eval_return_mean_per_seed"] for r in records], float)
        return [Curve(run_dir, env_id, group, config, f"seed {seed} run {i}", steps,
                      per_seed[:, i]) for i in range(per_seed.shape[1])]
    returns = np.array([r["eval_return_mean"] for r in records], float)
    return [Curve(run_dir, env_id, group, config, f"seed {seed}", steps, returns)]


def _group_label(curves: list[Curve], all_groups: list[list[Curve]]) -> str:
    env_id = curves[0].env_id
    if len(all_groups) == 1:
        return env_id
    # Name the config fields that set this group apart from the others.
    mine = curves[0].config
    differing = sorted({k for g in all_groups for k, v in g[0].config.items()
                        if k not in ("seed", "total_steps") and mine.get(k) != v})
    shown = ", ".join(f"{k}={mine.get(k)}" for k in differing[:3])
    return f"{env_id} ({shown})" if shown else env_id


def plot_runs(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike,
              title: str | None = None) -> Path:
    """Draws the learning curves of ``run_dirs`` into the image file ``out``.

    Returns:
      The path written.

    Raises:
      MissingExtraError: without matplotlib.
      RunDirError: for a directory that is not a run with evaluations.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError(f"plotting needs matplotlib: {PLOT_HINT}") from None
    groups: dict[str, list[Curve]] = {}
    for d in run_dirs:
        for c in load_curves(d):
            groups.setdefault(c.group, []).append(c)
    all_groups = list(groups.values())
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, curves in enumerate(all_groups):
        color = f"C{i % 10}"
        steps = np.array(sorted({int(s) for c in curves for s in c.steps}))
        table = np.full((len(curves), len(steps)), np.nan)
        for j, c in enumerate(curves):
            table[j, np.searchsorted(steps, c.steps)] = c.returns
            ax.plot(c.steps, c.returns, color=color, alpha=0.25, linewidth=0.8)
        count = np.sum(np.isfinite(table), axis=0)
        mean = np.nanmean(table, axis=0)
        label = f"{_group_label(curves, all_groups)}, {len(curves)} seed(s)"
        ax.plot(steps, mean, color=color, linewidth=2.0, label=label)
        spread = count > 1
        if np.any(spread):
            lo, hi = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
            ax.fill_between(steps[spread], lo[spread], hi[spread], color=color, alpha=0.2,
                            linewidth=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title or "evaluation return: mean over seeds, band from min to max")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

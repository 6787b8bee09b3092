"""The records a run writes, built the same way by both drivers.

* evaluation records (:func:`evaluation_record`): environment steps, updates,
  evaluation returns (per seed when several), the training-episode return and
  the update metrics averaged since the previous evaluation;
* chunk records (:func:`chunk_record`): the update metrics of a chunk of
  training between two log points, with its speed;
* the log line of an evaluation (:func:`log_line`);
* :class:`MetricWindow`: sums of the learner's metrics between two points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ddpg_jax.agent.state import METRIC_NAMES

#: Metrics averaged over the steps where the actor moved (TD3 delays it).
ACTOR_METRICS = ("actor_loss", "actor_grad_norm")


class MetricWindow:
    """Host-side sums of the learner's metric sums (and counts) since the last reset.

    Sums may carry a leading seed axis; means are taken over seeds too.
    """

    def __init__(self, sums: dict[str, Any] | None = None):
        self.sums: dict[str, np.ndarray] = {k: np.asarray(v, np.float64)
                                            for k, v in (sums or {}).items()}

    def add(self, sums: dict[str, Any]) -> None:
        for name, value in sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + np.asarray(value, np.float64)

    def means(self) -> dict[str, float | None]:
        """Each metric's mean over the updates in the window (``None`` without any)."""
        out: dict[str, float | None] = {}
        for name in METRIC_NAMES:
            count = self.sums.get("actor_updates" if name in ACTOR_METRICS else "updates")
            total = self.sums.get(name)
            if count is None or total is None or float(np.sum(count)) == 0.0:
                out[name] = None
            else:
                out[name] = float(np.sum(total) / np.sum(count))
        return out

    @property
    def updates(self) -> int:
        return int(np.sum(self.sums.get("updates", 0.0)))

    def to_json(self) -> dict[str, Any]:
        return {k: np.asarray(v).tolist() for k, v in self.sums.items()}


def train_return(last_returns: Any) -> float | None:
    """The records' ``train_episode_return_mean``, the same for both drivers.

    Args:
      last_returns: each env's return of its most recently finished training
        episode (warm-up included), NaN for an env without one yet:
        ``[num_envs]``, or ``[seeds, num_envs]`` with the JAX driver.

    Returns:
      The mean over the finished entries (envs and seeds together), or
      ``None`` before any episode has ended.
    """
    if last_returns is None:
        return None
    x = np.asarray(last_returns, np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    return float(np.mean(x)) if x.size else None


def evaluation_record(env_steps: int, updates: int, returns: Any, train_episode_return: Any,
                      window: MetricWindow, wall_time_s: float) -> dict[str, Any]:
    """One evaluation: ``returns`` is ``[episodes]`` or ``[seeds, episodes]``."""
    r = np.asarray(returns, np.float64)
    record: dict[str, Any] = {
        "env_steps": int(env_steps),
        "updates": int(updates),
        "eval_return_mean": float(np.mean(r)),
        "eval_return_std": float(np.std(r)),
        "eval_returns": r.tolist(),
    }
    if r.ndim == 2:
        record["eval_return_mean_per_seed"] = [float(x) for x in np.mean(r, axis=1)]
    record["train_episode_return_mean"] = train_return(train_episode_return)
    record.update(window.means())
    record["wall_time_s"] = float(wall_time_s)
    return record


def chunk_record(env_steps: int, updates: int, window: MetricWindow, train_episode_return: Any,
                 steps_per_second: float, wall_time_s: float) -> dict[str, Any]:
    """The training metrics of one chunk between two log points."""
    return {"env_steps": int(env_steps), "updates": int(updates), **window.means(),
            "train_episode_return_mean": train_return(train_episode_return),
            "steps_per_second": float(steps_per_second), "wall_time_s": float(wall_time_s)}


def log_line(record: dict[str, Any], num_seeds: int = 1) -> str:
    """The one-line summary of an evaluation record."""
    q = record.get("q_mean")
    q_text = f"{q:.1f}" if q is not None else "-"
    seeds = f" ({num_seeds} seeds)" if num_seeds > 1 else ""
    rate = num_seeds * record["env_steps"] / max(record["wall_time_s"], 1e-9)
    return (f"step {record['env_steps']:>8d}  eval return {record['eval_return_mean']:9.2f} "
            f"+- {record['eval_return_std']:7.2f}{seeds}  q_mean {q_text}  {rate:7.0f} steps/s")

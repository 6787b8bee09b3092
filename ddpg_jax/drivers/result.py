"""What a training run returns, the same for both drivers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent.networks import Networks
from ddpg_jax.agent.state import TrainState


@dataclasses.dataclass
class TrainResult:
    """The outcome of :func:`ddpg_jax.train` (either driver).

    Attributes:
      train_state: the final parameters and optimizer states; with the JAX
        driver every leaf has a leading axis over seeds.
      buffer: the final replay buffer (leading seed axis with the JAX driver).
      evaluations: one record per evaluation point of the whole run (earlier
        sessions of a resumed run included): ``env_steps``, ``updates``,
        ``eval_return_mean`` / ``_std``, ``eval_returns`` (``[episodes]``, or
        ``[seeds][episodes]`` with ``eval_return_mean_per_seed``), the
        training-episode return and the update metrics averaged since the
        previous evaluation, ``wall_time_s``.
      summary: the headline figures (see :func:`summarize`).
      networks: the pure network functions, for acting with ``train_state``.
      interrupted: True when ``should_stop`` ended the run early (a checkpoint
        was written first if there is a run directory).
      checkpoint: the last checkpoint written (or resumed from), if any.
      final_state: the driver's final state: the JAX driver's whole loop
        state (env states, keys, ...) on the host; the gymnasium driver's
        :class:`~ddpg_jax.drivers.host.HostCarry` (learner state with the
        noise state, key, metric sums), as device arrays.
    """

    train_state: TrainState
    buffer: rb.BufferState
    evaluations: list[dict[str, Any]]
    summary: dict[str, Any]
    networks: Networks
    interrupted: bool = False
    checkpoint: Path | None = None
    final_state: Any = None

    @property
    def env_steps(self) -> int:
        """Environment steps done per run."""
        return int(self.summary["total_steps"])


def summarize(session: Any, env_steps: int, updates: int, *, compile_time_s: float,
              run_time_s: float, steps_done: int) -> dict[str, Any]:
    """The run's headline figures.

    Keys: ``env_id, backend, seed, num_seeds, total_steps`` (env steps per
    run), ``updates``, ``final_eval_return_mean``, ``final_eval_return_std``,
    ``final_eval_return_per_seed``, ``final_eval_return_std_across_seeds``,
    ``eval_episodes``, ``wall_time_s``, ``compile_time_s``, ``run_time_s``,
    ``steps_per_second`` (all seeds, whole run) and
    ``steps_per_second_excluding_compile`` (this session).
    """
    evals = session.evaluations
    final = (np.asarray(evals[-1]["eval_returns"], np.float64).reshape(session.num_seeds, -1)
             if evals else None)
    per_seed = np.mean(final, axis=1) if final is not None else None
    wall = session.wall_time()
    return {
        "env_id": session.env_id, "backend": session.backend, "seed": session.config.seed,
        "num_seeds": session.num_seeds, "total_steps": env_steps, "updates": updates,
        "final_eval_return_mean": float(np.mean(final)) if final is not None else None,
        "final_eval_return_std": float(np.std(final)) if final is not None else None,
        "final_eval_return_per_seed": per_seed.tolist() if per_seed is not None else None,
        "final_eval_return_std_across_seeds": (float(np.std(per_seed)) if per_seed is not None
                                               else None),
        "eval_episodes": session.config.eval_episodes,
        "wall_time_s": wall, "compile_time_s": compile_time_s, "run_time_s": run_time_s,
        "steps_per_second": session.num_seeds * env_steps / max(wall, 1e-9),
        "steps_per_second_excluding_compile":
            session.num_seeds * steps_done / max(run_time_s, 1e-9),
    }

"""When things happen in a run: evaluation, checkpoint and chunk points, for both drivers.

Counted in vector steps (each advances ``num_envs`` envs). A periodic event
with period ``every`` environment steps falls on the first vector step that
reaches or passes a multiple of ``every``, so ``num_envs`` need not divide it.
Nothing happens inside the warm-up: the first evaluation and checkpoint
points come after it, and the last vector step of the run is always both.
"""

from __future__ import annotations

import bisect
import dataclasses

import numpy as np

from ddpg_jax.config import DDPGConfig


def crossed(prev: int, now: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(prev, now]`` (False when ``every`` is 0)."""
    return every > 0 and now // every > prev // every


def _points(every: int, num_envs: int, after: int, total: int) -> tuple[int, ...]:
    """Vector steps in ``(after, total]`` that reach a multiple of ``every`` env steps, and ``total``."""
    points = set()
    if every > 0:
        for m in range(after * num_envs // every + 1, total * num_envs // every + 1):
            v = -(-m * every // num_envs)
            if after < v <= total:
                points.add(v)
    points.add(total)
    return tuple(sorted(points))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Static points of a run, in vector steps.

    Attributes:
      num_envs: envs per vector step.
      warmup: vector steps of random actions before learning.
      total: vector steps of the whole run.
      eval_points: where evaluations happen (sorted; the last is ``total``).
      checkpoint_points: where periodic checkpoints happen (sorted; the last
        is ``total``).
    """

    num_envs: int
    warmup: int
    total: int
    eval_points: tuple[int, ...]
    checkpoint_points: tuple[int, ...]

    @property
    def eval_steps(self) -> list[int]:
        """Environment steps at which evaluations happen."""
        return [v * self.num_envs for v in self.eval_points]

    @property
    def chunk_lengths(self) -> np.ndarray:
        """Learning vector steps between consecutive evaluation points (int32 ``[E]``)."""
        return np.diff(np.asarray((self.warmup,) + self.eval_points, np.int32)).astype(np.int32)

    def evaluates_at(self, v: int) -> bool:
        i = bisect.bisect_left(self.eval_points, v)
        return i < len(self.eval_points) and self.eval_points[i] == v

    def checkpoints_at(self, v: int) -> bool:
        i = bisect.bisect_left(self.checkpoint_points, v)
        return i < len(self.checkpoint_points) and self.checkpoint_points[i] == v

    def next_stop(self, v: int) -> int:
        """The first evaluation or checkpoint point after vector step ``v``."""
        ends = [self.total]
        for points in (self.eval_points, self.checkpoint_points):
            i = bisect.bisect_right(points, v)
            if i < len(points):
                ends.append(points[i])
        return min(ends)


def make_schedule(config: DDPGConfig, checkpoint_every: int = 0) -> Schedule:
    """The schedule of ``config`` with checkpoints every ``checkpoint_every`` env steps (0: at the end)."""
    config.validate()
    n, total, warmup = config.num_envs, config.vector_steps, config.warmup_vector_steps
    return Schedule(n, warmup, total, _points(config.eval_every, n, warmup, total),
                    _points(checkpoint_every, n, warmup, total))

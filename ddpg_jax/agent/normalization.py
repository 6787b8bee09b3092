"""Running observation statistics as pure functions over a small pytree.

The statistics live in ``TrainState.obs_stats``, so they are vmapped,
checkpointed and restored with everything else. They change only through
:func:`update` (called by the training loops on collected observations);
evaluation and the gradient step read them without changing them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from ddpg_jax.agent.state import Array


class RunningStats(NamedTuple):
    count: Array  # float32 []: observations seen
    mean: Array  # float32 [obs_dim]
    var: Array  # float32 [obs_dim]: population variance of what was seen


def init(obs_dim: int) -> RunningStats:
    return RunningStats(jnp.zeros((), jnp.float32), jnp.zeros(obs_dim, jnp.float32),
                        jnp.ones(obs_dim, jnp.float32))


def update(stats: RunningStats, obs: Array) -> RunningStats:
    """Merges a batch ``obs[..., obs_dim]`` into the statistics.

    Uses the pairwise merge of Chan et al. (1979), exact for any split of the
    stream into batches, rather than a per-sample loop.
    """
    x = jnp.reshape(obs, (-1, stats.mean.shape[-1])).astype(jnp.float32)
    n_b = jnp.asarray(x.shape[0], jnp.float32)
    mean_b = jnp.mean(x, axis=0)
    var_b = jnp.var(x, axis=0)
    n = stats.count + n_b
    delta = mean_b - stats.mean
    mean = stats.mean + delta * (n_b / n)
    # On the first batch count is 0 and the prior var (ones) gets weight 0.
    m2 = stats.var * stats.count + var_b * n_b + jnp.square(delta) * stats.count * n_b / n
    return RunningStats(n, mean, m2 / n)


def normalize(stats: RunningStats, obs: Array, clip: float = 10.0, eps: float = 1e-8) -> Array:
    """``(obs - mean) / sqrt(var + eps)``, clipped to ``[-clip, clip]``.

    Before any observation was seen (count 0) observations pass through unchanged.
    """
    z = (obs - stats.mean) / jnp.sqrt(stats.var + eps)
    z = jnp.clip(z, -clip, clip)
    return jnp.where(stats.count > 0, z, obs)

"""n-step returns, computed when a batch is sampled from the replay ring buffer.

With ``num_envs`` parallel envs, every vector step writes one row per env, in
env order, so env ``e``'s consecutive steps lie ``num_envs`` rows apart. (The
config requires ``buffer_size`` to be a multiple of ``num_envs`` for ``n_step
> 1``, which keeps that stride exact across the ring's wrap.) Each stored row
is a :class:`Row`: the transition plus whether its step ended the episode.

A sample starting at row ``i`` takes up to ``n`` of its env's steps
``i, i + E, ..., i + (n-1) E`` (modulo the capacity) and stops early at the
first step that ended the episode (terminated or truncated: the step itself is
kept, what follows belongs to the next episode) and at the newest row written
(steps not yet taken cannot be used; nor can rows past the write position,
which hold the oldest data). With ``m`` steps taken::

    reward     = r_0 + gamma r_1 + ... + gamma^(m-1) r_(m-1)
    next_obs   = next_obs_(m-1)      (the true final observation at a truncation)
    terminated = terminated_(m-1)
    discount   = gamma^(m-1)

so that the target ``reward + gamma * discount * (1 - terminated) * Q'(next_obs)``
is the m-step return (:func:`ddpg_jax.agent.losses.td_target`). A shortened window
is still an unbiased bootstrap target, only with less lookahead.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent.state import Array, PRNGKey, Transition


class NStepTransition(NamedTuple):
    """A sampled n-step batch: a :class:`~ddpg_jax.agent.state.Transition`'s fields plus ``discount``."""

    obs: Array  # [..., obs_dim]: the first step's observation
    action: Array  # [..., action_dim]: the first step's action
    reward: Array  # [...]: r_0 + gamma r_1 + ... + gamma^(m-1) r_(m-1)
    terminated: Array  # [...]: whether the last step taken terminated
    next_obs: Array  # [..., obs_dim]: the last step's next observation
    discount: Array  # [...]: gamma^(m-1); the target bootstraps with gamma * discount


class Row(NamedTuple):
    """A stored row when ``n_step > 1``."""

    transition: Transition
    ended: Array  # [...] float32 in {0, 1}: this step ended the episode (terminated or truncated)


def make_row(transition: Transition, done: Array) -> Row:
    """The row to store for ``transition`` whose step ended its episode where ``done``."""
    return Row(transition, jnp.asarray(done, jnp.float32))


def sample_batches(buffer: rb.BufferState, key: PRNGKey, batch_size: int, num_batches: int,
                   n: int, stride: int, gamma: Array) -> NStepTransition:
    """``num_batches`` batches of n-step samples, each leaf ``[num_batches, batch_size, ...]``.

    Args:
      buffer: a buffer of :class:`Row`.
      key: draws the starting rows (uniform over the rows written, as
        :func:`ddpg_jax.agent.buffer.sample`).
      n: the most steps a sample sums.
      stride: rows between one env's consecutive steps (``num_envs``).
      gamma: the discount (may be traced).

    Returns:
      n-step samples (see the module docstring).
    """
    start = rb.sample_rows(buffer, key, batch_size, num_batches).reshape(-1)
    sample = returns_from(buffer, start, n, stride, gamma)
    return jax.tree.map(lambda x: x.reshape((num_batches, batch_size) + x.shape[1:]), sample)


def returns_from(buffer: rb.BufferState, start: Array, n: int, stride: int,
                 gamma: Array) -> NStepTransition:
    """The n-step samples that start at rows ``start`` (``[k]`` ints), leaves ``[k, ...]``."""
    capacity = buffer.capacity
    newest = (buffer.insert_pos - 1) % capacity
    written_after = (newest - start) % capacity  # rows written after the start row
    offsets = jnp.arange(n, dtype=jnp.int32)[:, None] * stride  # [n, 1]
    window: Row = rb.gather(buffer, (start[None] + offsets) % capacity)  # leaves [n, k, ...]
    ended = window.ended
    ended_before = jnp.cumsum(ended, axis=0) - ended
    taken = (offsets <= written_after[None]) & (ended_before == 0)  # [n, k], prefix-closed
    powers = jnp.power(gamma, jnp.arange(n, dtype=jnp.float32))[:, None]
    last = jnp.sum(taken, axis=0) - 1  # >= 0: the start row is always taken
    pick = jnp.arange(start.shape[0])
    return NStepTransition(
        obs=window.transition.obs[0],
        action=window.transition.action[0],
        reward=jnp.sum(jnp.where(taken, powers * window.transition.reward, 0.0), axis=0),
        terminated=window.transition.terminated[last, pick],
        next_obs=window.transition.next_obs[last, pick],
        discount=jnp.power(gamma, last.astype(jnp.float32)),
    )

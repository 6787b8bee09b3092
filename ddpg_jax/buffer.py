"""A replay ring buffer as pure functions over preallocated device arrays.

The state is a small pytree (:class:`BufferState`); :func:`add` and
:func:`sample` return new values rather than mutating. Inside a jitted
function whose buffer argument is donated, XLA turns the ``.at[].set`` writes
into in-place updates, so an add costs the size of the added rows, not of the
buffer. Sampling draws indices uniformly from the rows written so far and
gathers them: its cost depends on the batch size only.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ddpg_jax.types import Array, PRNGKey


class BufferState(NamedTuple):
    data: Any  # pytree like the example transition, each leaf [capacity, ...]
    insert_pos: Array  # int32 []: row the next add writes first
    size: Array  # int32 []: rows written so far, at most capacity

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def init(example: Any, capacity: int) -> BufferState:
    """Allocates an empty buffer.

    Args:
      example: one item (e.g. a :class:`~ddpg_jax.types.Transition` without a
        batch axis); only its shapes and dtypes are used.
      capacity: number of rows.
    """
    try:
        capacity = operator.index(capacity)  # ints and numpy integers, not floats
    except TypeError:
        raise ValueError(f"capacity must be an integer > 0, got {capacity!r}") from None
    if capacity <= 0:
        raise ValueError(f"capacity must be an integer > 0, got {capacity!r}")
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example
    )
    return BufferState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _leading_rows(state: BufferState, items: Any) -> int | None:
    """Number of rows in ``items``, or None when it is a single item."""
    leaves, treedef = jax.tree.flatten(items)
    stored, stored_def = jax.tree.flatten(state.data)
    if treedef != stored_def:
        raise ValueError(f"item structure {treedef} does not match buffer structure {stored_def}")
    ranks = {jnp.ndim(x) - (jnp.ndim(s) - 1) for x, s in zip(leaves, stored)}
    if ranks not in ({0}, {1}):
        raise ValueError("each leaf must have the stored item's shape, or one extra leading axis")
    extra = ranks.pop()
    for x, s in zip(leaves, stored):
        # Check the item shape exactly: a same-rank mismatch would otherwise be
        # broadcast silently into the stored rows.
        if tuple(jnp.shape(x)[extra:]) != tuple(s.shape[1:]):
            raise ValueError(f"leaf of shape {jnp.shape(x)} does not match the stored item shape "
                             f"{tuple(s.shape[1:])} (with an optional leading batch axis)")
    if extra == 0:
        return None
    rows = {jnp.shape(x)[0] for x in leaves}
    if len(rows) != 1:
        raise ValueError(f"batched leaves disagree on the number of rows: {sorted(rows)}")
    return rows.pop()


def add(state: BufferState, items: Any) -> BufferState:
    """Writes one item, or a batch with a leading axis, after the newest row.

    Oldest rows are overwritten once the buffer is full. A batch larger than
    the capacity keeps only its last ``capacity`` rows.
    """
    rows = _leading_rows(state, items)
    if rows is None:
        items = jax.tree.map(lambda x: jnp.asarray(x)[None], items)
        rows = 1
    capacity = state.capacity
    start = state.insert_pos
    if rows > capacity:
        # Duplicate scatter indices have no defined order, so drop the rows that
        # would be overwritten within this same add.
        items = jax.tree.map(lambda x: x[rows - capacity:], items)
        start = (start + (rows - capacity)) % capacity
        rows = capacity
    idx = (start + jnp.arange(rows, dtype=jnp.int32)) % capacity
    data = jax.tree.map(
        lambda buf, x: buf.at[idx].set(jnp.asarray(x, buf.dtype), unique_indices=True),
        state.data,
        items,
    )
    return BufferState(
        data,
        ((start + rows) % capacity).astype(jnp.int32),
        jnp.minimum(state.size + rows, capacity).astype(jnp.int32),
    )


def sample(state: BufferState, key: PRNGKey, batch_size: int) -> Any:
    """Draws ``batch_size`` rows uniformly, with replacement, from the written rows.

    The caller must ensure :func:`can_sample` (on an empty buffer the result
    is rows of zeros).
    """
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda buf: buf[idx], state.data)


def can_sample(state: BufferState, batch_size: int) -> Array:
    """True once at least ``batch_size`` rows have been written."""
    return state.size >= batch_size


def nbytes(state: BufferState) -> int:
    """Bytes held by the stored arrays."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))

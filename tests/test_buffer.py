"""Property tests of the replay ring buffer against a plain-Python reference model.

The reference is the list of every item id added so far: the live items are
its last ``capacity`` entries, the item added as the ``g``-th (0-based) lives in
row ``g % capacity``, ``size = min(len, capacity)`` and
``insert_pos = len % capacity``. Items encode their id in their values (ids
start at 1, so a never-written row, which holds zeros, is told apart from
every item).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent.state import Transition

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Every new (capacity, rows) pair costs XLA compilations (a fraction of a second
# each on a small CPU), so capacities come from a fixed spread over 1..64 (small,
# prime, power of two, the maximum) and add sizes from a set defined relative to
# the capacity; hypothesis varies which, how many and in what order.
CAPACITIES = (1, 2, 3, 5, 8, 13, 64)


# --------------------------------------------------------------------------- reference
class RefBuffer:
    """The plain-Python model: a list of the ids added, in order."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.added: list[int] = []

    def add(self, ids: list[int]) -> None:
        self.added.extend(ids)

    @property
    def size(self) -> int:
        return min(len(self.added), self.capacity)

    @property
    def insert_pos(self) -> int:
        return len(self.added) % self.capacity

    @property
    def live(self) -> list[int]:
        return self.added[-self.capacity:] if self.added else []

    def rows(self) -> list[int]:
        """Id held by each row; 0 for rows never written."""
        rows = [0] * self.capacity
        first = len(self.added) - self.size
        for g in range(first, len(self.added)):
            rows[g % self.capacity] = self.added[g]
        return rows


# Shape-generic compiled functions, reused across examples (one compile per shape).
_sample_jit = jax.jit(rb.sample, static_argnums=2)


def _add_sizes(capacity: int) -> st.SearchStrategy:
    """None: one item without a batch axis; int: a batch with that many rows.

    The batch sizes include 0, sizes that do not divide the capacity, exact
    capacity multiples (wrap-arounds landing on row 0) and sizes above it.
    """
    return st.one_of(
        st.none(),
        st.sampled_from(sorted({0, 1, 2, 3, max(capacity - 1, 1), capacity, capacity + 1,
                                2 * capacity, 2 * capacity + 3})),
    )


@st.composite
def scenarios(draw, capacities=CAPACITIES):
    capacity = draw(st.sampled_from(capacities))
    sizes = draw(st.lists(_add_sizes(capacity), min_size=1, max_size=8))
    return capacity, sizes


def _items_scalar(ids: list[int], single: bool):
    arr = np.asarray(ids, np.int32)
    return jnp.asarray(arr[0]) if single else jnp.asarray(arr)


def _check_against_ref(state: rb.BufferState, ref: RefBuffer) -> None:
    assert int(state.size) == ref.size
    assert int(state.insert_pos) == ref.insert_pos
    assert state.size.dtype == jnp.int32 and state.insert_pos.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(state.data), np.asarray(ref.rows(), np.int32))


def _check_samples(state: rb.BufferState, ref: RefBuffer, key: jax.Array, n_keys: int = 4,
                   batch: int = 64) -> None:
    live = set(ref.live)
    for k in jax.random.split(key, n_keys):
        got = np.asarray(rb.sample(state, k, batch))
        assert got.shape == (batch,)
        assert set(got.tolist()) <= live, (sorted(set(got.tolist()) - live), sorted(live))


# --------------------------------------------------------------------------- core model test
@SETTINGS
@given(scenarios(), st.integers(0, 2**31 - 1))
def test_add_matches_reference_model(scenario, seed):
    capacity, sizes = scenario
    state = rb.init(jnp.zeros((), jnp.int32), capacity)
    assert state.capacity == capacity
    ref = RefBuffer(capacity)
    _check_against_ref(state, ref)
    next_id = 1
    key = jax.random.PRNGKey(seed)
    for n in sizes:
        count = 1 if n is None else n
        ids = list(range(next_id, next_id + count))
        next_id += count
        state = rb.add(state, _items_scalar(ids, single=n is None))
        ref.add(ids)
        _check_against_ref(state, ref)
        if ref.size > 0:
            key, sub = jax.random.split(key)
            _check_samples(state, ref, sub)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CAPACITIES), st.integers(1, 67), st.integers(0, 2**31 - 1))
def test_sample_after_partial_fill_only_returns_written_rows(capacity, n_singles, seed):
    """Single-item adds one at a time; sampling after every add only sees written ids."""
    n_singles = min(n_singles, capacity + 3)
    state = rb.init(jnp.zeros((), jnp.int32), capacity)
    ref = RefBuffer(capacity)
    key = jax.random.PRNGKey(seed)
    for i in range(1, n_singles + 1):
        state = rb.add(state, jnp.int32(i))
        ref.add([i])
        key, sub = jax.random.split(key)
        _check_samples(state, ref, sub, n_keys=2, batch=32)
    _check_against_ref(state, ref)


@pytest.mark.parametrize("capacity", [1, 3, 8])
def test_exact_wraparounds(capacity):
    """Batches of exactly capacity rows, and k*capacity rows, land with insert_pos 0."""
    state = rb.init(jnp.zeros((), jnp.int32), capacity)
    ref = RefBuffer(capacity)
    next_id = 1
    for count in [capacity, 2 * capacity, 1, capacity, 3 * capacity, capacity - 1 if capacity > 1 else 1]:
        ids = list(range(next_id, next_id + count))
        next_id += count
        state = rb.add(state, _items_scalar(ids, single=False))
        ref.add(ids)
        _check_against_ref(state, ref)


def test_hand_computed_wrap():
    """Capacity 5: add 3, then 4 (wraps by 2), then 12 (> capacity)."""
    state = rb.init(jnp.zeros((), jnp.int32), 5)
    state = rb.add(state, jnp.arange(1, 4, dtype=jnp.int32))
    np.testing.assert_array_equal(state.data, [1, 2, 3, 0, 0])
    assert (int(state.size), int(state.insert_pos)) == (3, 3)
    state = rb.add(state, jnp.arange(4, 8, dtype=jnp.int32))
    np.testing.assert_array_equal(state.data, [6, 7, 3, 4, 5])
    assert (int(state.size), int(state.insert_pos)) == (5, 2)
    state = rb.add(state, jnp.arange(8, 20, dtype=jnp.int32))
    # ids 15..19 are the last 5; id g (0-based index g-1) sits in row (g-1) % 5.
    np.testing.assert_array_equal(state.data, [16, 17, 18, 19, 15])
    assert (int(state.size), int(state.insert_pos)) == (5, 4)


def test_empty_batch_is_a_no_op():
    state = rb.init(jnp.zeros((), jnp.int32), 4)
    state = rb.add(state, jnp.arange(1, 3, dtype=jnp.int32))
    after = rb.add(state, jnp.zeros((0,), jnp.int32))
    np.testing.assert_array_equal(after.data, state.data)
    assert int(after.size) == 2 and int(after.insert_pos) == 2


# --------------------------------------------------------------------------- can_sample
@SETTINGS
@given(st.sampled_from(CAPACITIES), st.lists(st.sampled_from([None, 1, 2, 5]), max_size=30),
       st.integers(1, 80))
def test_can_sample(capacity, sizes, batch_size):
    state = rb.init(jnp.zeros((), jnp.int32), capacity)
    n_added = 0
    assert bool(rb.can_sample(state, batch_size)) is False
    for n in sizes:
        state = rb.add(state, jnp.int32(7) if n is None else jnp.full((n,), 7, jnp.int32))
        n_added += 1 if n is None else n
        assert bool(rb.can_sample(state, batch_size)) is (min(n_added, capacity) >= batch_size)
    assert bool(rb.can_sample(state, min(n_added, capacity) or 1)) is (n_added > 0)


# --------------------------------------------------------------------------- multi-leaf pytree
def _transitions(ids: np.ndarray) -> Transition:
    ids = np.asarray(ids, np.float32)
    obs = np.stack([ids, ids + 0.25, ids + 0.5], axis=-1)
    return Transition(
        obs=obs,
        action=np.stack([-ids, 2 * ids], axis=-1),
        reward=ids * 10.0,
        terminated=(ids % 2).astype(np.float32),
        next_obs=obs + 1000.0,
    )


def _example_transition() -> Transition:
    return Transition(obs=jnp.zeros(3), action=jnp.zeros(2), reward=jnp.zeros(()),
                      terminated=jnp.zeros(()), next_obs=jnp.zeros(3))


def _check_transition_rows(tr: Transition, ids: np.ndarray) -> None:
    """Every leaf of row i encodes the same id ids[i]."""
    expected = _transitions(ids)
    for got, want in zip(tr, expected):
        np.testing.assert_array_equal(np.asarray(got), want)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(capacities=(1, 3, 8)), st.integers(0, 2**31 - 1))
def test_transition_pytree(scenario, seed):
    capacity, sizes = scenario
    state = rb.init(_example_transition(), capacity)
    ref = RefBuffer(capacity)
    next_id = 1
    key = jax.random.PRNGKey(seed)
    for n in sizes:
        count = 1 if n is None else n
        ids = np.arange(next_id, next_id + count)
        next_id += count
        items = _transitions(ids)
        if n is None:
            items = jax.tree.map(lambda x: x[0], items)
        state = rb.add(state, items)
        ref.add(ids.tolist())
        assert int(state.size) == ref.size and int(state.insert_pos) == ref.insert_pos
        rows = np.asarray(ref.rows())
        written = rows != 0
        stored = jax.tree.map(np.asarray, state.data)
        _check_transition_rows(jax.tree.map(lambda x: x[written], stored), rows[written])
        for leaf in stored:  # unwritten rows stay zero
            assert not np.any(leaf[~written])
    if ref.size:
        batch = rb.sample(state, key, 50)
        assert isinstance(batch, Transition)
        assert batch.obs.shape == (50, 3) and batch.reward.shape == (50,)
        assert all(x.dtype == jnp.float32 for x in batch)
        sampled_ids = np.asarray(batch.reward) / 10.0
        assert set(sampled_ids.astype(int).tolist()) <= set(ref.live)
        # Leaves of one sampled row come from the same stored row.
        _check_transition_rows(batch, sampled_ids)


# --------------------------------------------------------------------------- jit / donation
_add_jit = jax.jit(rb.add)
_add_donate = jax.jit(rb.add, donate_argnums=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([None, 3, 7, 23]), min_size=1, max_size=6),
       st.integers(0, 2**31 - 1))
def test_jit_and_donated_add_and_sample_match_eager(sizes, seed):
    capacity = 10  # fixed, so the jitted functions compile once per add size
    eager = rb.init(_example_transition(), capacity)
    jitted = rb.init(_example_transition(), capacity)
    donated = rb.init(_example_transition(), capacity)
    next_id = 1
    for n in sizes:
        count = 1 if n is None else n
        items = _transitions(np.arange(next_id, next_id + count))
        next_id += count
        if n is None:
            items = jax.tree.map(lambda x: x[0], items)
        eager = rb.add(eager, items)
        jitted = _add_jit(jitted, items)
        donated = _add_donate(donated, items)
        for other in (jitted, donated):
            chex_equal = jax.tree.map(np.array_equal, eager, other)
            assert all(jax.tree.leaves(chex_equal)), chex_equal
    key = jax.random.PRNGKey(seed)
    want = rb.sample(eager, key, 32)
    for other in (jitted, donated):
        got = _sample_jit(other, key, 32)
        jax.tree.map(np.testing.assert_array_equal, got, want)


def test_donated_add_inside_jitted_loop():
    """A lax.fori_loop of adds with a traced insert position equals the reference."""
    capacity = 7

    @functools.partial(jax.jit, donate_argnums=0)
    def fill(state, start):
        def body(i, s):
            ids = start + 3 * i + jnp.arange(3, dtype=jnp.int32)
            return rb.add(s, ids)
        return jax.lax.fori_loop(0, 5, body, state)

    state = fill(rb.init(jnp.zeros((), jnp.int32), capacity), jnp.int32(1))
    ref = RefBuffer(capacity)
    ref.add(list(range(1, 16)))
    _check_against_ref(state, ref)


# --------------------------------------------------------------------------- vmap
_vadd = jax.jit(jax.vmap(rb.add))
_vsample = jax.jit(jax.vmap(rb.sample, in_axes=(0, 0, None)), static_argnums=2)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([0, 1, 4, 9, 13, 22]), min_size=4, max_size=4),
       st.sampled_from([None, 2, 5, 13]),
       st.integers(0, 2**31 - 1))
def test_vmap_over_buffers_matches_per_buffer(prefix_sizes, n, seed):
    """Buffers with different histories, added different rows and sampled with different keys."""
    capacity = 9
    states, refs = [], []
    next_id = 1
    for p in prefix_sizes:
        s = rb.init(jnp.zeros((), jnp.int32), capacity)
        ref = RefBuffer(capacity)
        if p:
            ids = list(range(next_id, next_id + p))
            next_id += p
            s = rb.add(s, jnp.asarray(ids, jnp.int32))
            ref.add(ids)
        states.append(s)
        refs.append(ref)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    count = 1 if n is None else n
    all_ids = []
    for _ in states:
        all_ids.append(list(range(next_id, next_id + count)))
        next_id += count
    items = jnp.asarray(all_ids, jnp.int32)  # [B, count]
    if n is None:
        items = items[:, 0]  # [B]: one item per buffer, no batch axis
    out = _vadd(stacked, items)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(states))
    samples = np.asarray(_vsample(out, keys, 16))
    for b, (s, ref) in enumerate(zip(states, refs)):
        single = rb.add(s, items[b])
        ref.add(all_ids[b])
        mine = jax.tree.map(lambda x: x[b], out)
        _check_against_ref(mine, ref)
        jax.tree.map(np.testing.assert_array_equal, mine, single)
        np.testing.assert_array_equal(samples[b], np.asarray(rb.sample(single, keys[b], 16)))
        assert set(samples[b].tolist()) <= set(ref.live)


# --------------------------------------------------------------------------- uniformity
@pytest.mark.parametrize("capacity,n_added", [(10, 7), (10, 23), (16, 16), (5, 1)])
def test_sampling_is_uniform_over_written_rows(capacity, n_added):
    state = rb.init(jnp.zeros((), jnp.int32), capacity)
    state = rb.add(state, jnp.arange(1, n_added + 1, dtype=jnp.int32))
    ref = RefBuffer(capacity)
    ref.add(list(range(1, n_added + 1)))
    draws = 80_000
    got = np.asarray(_sample_jit(state, jax.random.PRNGKey(capacity * 1000 + n_added), draws))
    live = ref.live
    counts = np.array([(got == i).sum() for i in live])
    assert counts.sum() == draws  # nothing outside the live ids
    k = len(live)
    if k == 1:
        return
    expected = draws / k
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    threshold = scipy.stats.chi2.isf(1e-6, df=k - 1)  # generous: false alarm 1 in a million
    assert chi2 < threshold, (chi2, threshold, counts)
    # And no live row is badly under-represented (e.g. never drawn).
    assert counts.min() > 0.8 * expected


# --------------------------------------------------------------------------- errors
def test_init_rejects_bad_capacity():
    for bad in (0, -1, 2.5, "8"):
        with pytest.raises(ValueError):
            rb.init(jnp.zeros(()), bad)


def test_add_rejects_mismatched_structure():
    state = rb.init(_example_transition(), 4)
    good = jax.tree.map(lambda x: x[0], _transitions(np.arange(1, 2)))
    with pytest.raises(ValueError, match="structure"):
        rb.add(state, tuple(good))  # plain tuple, not a Transition
    with pytest.raises(ValueError, match="structure"):
        rb.add(state, {"obs": good.obs})
    dict_state = rb.init({"a": jnp.zeros(()), "b": jnp.zeros(2)}, 4)
    with pytest.raises(ValueError, match="structure"):
        rb.add(dict_state, {"a": jnp.zeros(()), "c": jnp.zeros(2)})
    with pytest.raises(ValueError, match="structure"):
        rb.add(dict_state, {"a": jnp.zeros(())})


def test_add_rejects_wrong_ranks():
    state = rb.init(_example_transition(), 4)
    one = jax.tree.map(lambda x: x[0], _transitions(np.arange(1, 2)))
    batch = _transitions(np.arange(1, 4))
    # Two extra leading axes.
    with pytest.raises(ValueError):
        rb.add(state, jax.tree.map(lambda x: np.asarray(x)[None, None], one))
    # Leaves disagree on whether there is a batch axis.
    with pytest.raises(ValueError):
        rb.add(state, one._replace(reward=np.zeros(3, np.float32)))
    # One leaf has fewer axes than a stored item (obs as a scalar).
    with pytest.raises(ValueError):
        rb.add(state, one._replace(obs=np.float32(1.0)))
    # Batched leaves disagree on the number of rows.
    with pytest.raises(ValueError, match="rows"):
        rb.add(state, batch._replace(reward=np.zeros(5, np.float32)))


def test_add_rejects_wrong_trailing_shape_of_same_rank():
    """A leaf of the right rank but the wrong item shape must be refused, not broadcast.

    The stored obs rows have shape (3,). An obs of shape (1,) (or a batch of
    shape (n, 1)) has the right rank, and ``.at[idx].set`` silently broadcasts
    it to (3,), writing a wrong transition into the buffer.
    """
    state = rb.init(jnp.zeros(3, jnp.float32), 4)
    with pytest.raises((ValueError, TypeError)):
        rb.add(state, jnp.ones(1, jnp.float32))
    with pytest.raises((ValueError, TypeError)):
        rb.add(state, jnp.ones((5, 1), jnp.float32))
    with pytest.raises((ValueError, TypeError)):
        rb.add(state, jnp.ones((2, 4), jnp.float32))


# --------------------------------------------------------------------------- nbytes
@pytest.mark.parametrize("capacity", [1, 17, 1000])
def test_nbytes(capacity):
    example = {"obs": jnp.zeros(5, jnp.float32), "act": jnp.zeros((2, 3), jnp.float16),
               "id": jnp.zeros((), jnp.int32), "flag": jnp.zeros((), jnp.bool_)}
    state = rb.init(example, capacity)
    raw = sum(np.asarray(x).nbytes for x in jax.tree.leaves(state.data))
    assert raw == capacity * (5 * 4 + 6 * 2 + 4 + 1)
    assert rb.nbytes(state) == raw + 2 * 4
    state = rb.add(state, jax.tree.map(lambda x: jnp.ones_like(x), example))
    assert rb.nbytes(state) == raw + 2 * 4  # preallocated: adding does not grow it

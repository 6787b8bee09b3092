"""Placing a batch of runs on a device mesh and bringing results back to the host.

The run axis (seeds, or settings x seeds) is the leading axis of every input
and output. It is sharded over a 1-D mesh of all devices (``jax.devices()``:
every device of every process once ``jax.distributed.initialize`` has been
called), so the same code runs on one CPU, one GPU, several local devices or
several hosts. Each process holds the full host array and places only its own
shards, which is what multi-host ``jit`` needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

RUN_AXIS = "runs"


def to_host(tree: Any) -> Any:
    """Brings a (possibly multi-host) sharded pytree to numpy on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def pad_runs(x: np.ndarray, n: int) -> np.ndarray:
    """Pads the run axis to ``n`` by repeating the last run (computed, then dropped)."""
    if x.shape[0] == n:
        return x
    return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], axis=0)])


@dataclasses.dataclass(frozen=True)
class RunPlacement:
    """How ``num_runs`` runs lie on a mesh: padded to a multiple of the device count.

    Attributes:
      num_runs: the runs asked for.
      padded: ``num_runs`` rounded up to a multiple of the device count.
      sharding: the run axis split over the mesh.
      replicated: the same value on every device (for unbatched arguments).
    """

    num_runs: int
    padded: int
    sharding: NamedSharding
    replicated: NamedSharding

    def place(self, tree: Any) -> Any:
        """Host arrays with a run axis of ``num_runs`` (or ``padded``) -> global sharded arrays."""
        return jax.tree.map(lambda x: _global(pad_runs(np.asarray(x), self.padded),
                                              self.sharding), tree)

    def place_replicated(self, x: Any) -> jax.Array:
        return _global(np.asarray(x), self.replicated)

    def fetch(self, tree: Any) -> Any:
        """Global arrays -> host numpy arrays of the first ``num_runs`` runs."""
        return jax.tree.map(lambda x: x[:self.num_runs], to_host(tree))


def place_runs(num_runs: int, devices: Sequence[jax.Device] | None = None) -> RunPlacement:
    """The placement of ``num_runs`` runs over ``devices`` (default: all devices)."""
    mesh = Mesh(np.array(list(jax.devices() if devices is None else devices)), (RUN_AXIS,))
    n_dev = mesh.devices.size
    padded = -(-num_runs // n_dev) * n_dev
    return RunPlacement(num_runs, padded, NamedSharding(mesh, PartitionSpec(RUN_AXIS)),
                        NamedSharding(mesh, PartitionSpec()))


def _global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

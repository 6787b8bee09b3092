"""Helpers shared by several test modules: reading a run's checkpoint arrays and comparing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddpg_jax.checkpoints import format as ckpt


def final_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """Every array of the run's latest checkpoint (train state and buffer), by path."""
    c = ckpt.open_checkpoint(ckpt.latest(ckpt.checkpoint_dir(run_dir)))
    arrays = {f"state/{k}": v for k, v in ckpt.load_flat(c, "state").items()}
    arrays.update({f"buffer/{k}": v for k, v in ckpt.load_flat(c, "buffer").items()})
    return arrays


def assert_identical_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """The same arrays under the same names, of the same dtype and equal element for element
    (NaN, as in a return not yet known, equals NaN)."""
    assert a.keys() == b.keys()
    assert any("actor_params" in k for k in a)
    for k in a:
        nan = a[k].dtype.kind in "fc"
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=nan), k

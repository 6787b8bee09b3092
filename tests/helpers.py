"""Helpers that several test modules share: a CLI runner, a fake terminal, checkpoint arrays."""

from __future__ import annotations

import io
import os

import numpy as np

from ddpg_jax.checkpoints import format as ckpt
from ddpg_jax.cli.main import main


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Runs the command line in-process: (exit code, stdout, stderr)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


class Terminal(io.StringIO):
    """A text stream that says it is a terminal (progress bars draw only on one)."""

    def isatty(self) -> bool:
        return True


def final_arrays(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the run's latest checkpoint (state and buffer), keyed by path."""
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

"""The notebooks run top to bottom with the small CI budget (``DDPG_NOTEBOOK_BUDGET=ci``).

Each notebook is executed in a fresh kernel of *this* interpreter, so the test
uses the environment pytest runs in, whatever kernels are installed elsewhere.
The notebooks check what they show with ``assert`` statements in their cells
(learning against reference values, checkpoint round trips, equivalences), so
a run without errors is a run whose claims held. The saved notebooks (with
their full-budget outputs) are not modified.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: Seconds allowed per notebook, and per cell. On a shared 2-core CPU they take 15-20 s
#: (quickstart), 30-55 s (composition) and 50-85 s (multi_seed_and_sweep), mostly compilation.
TIMEOUT_S = {"quickstart": 180, "composition": 180, "multi_seed_and_sweep": 180}
#: Fewest ``assert`` statements a notebook's code cells must hold.
MIN_ASSERTS = 5


@pytest.mark.parametrize("name", sorted(TIMEOUT_S))
def test_notebook_checks_what_it_shows(name: str) -> None:
    """Each notebook asserts its claims, and its saved outputs hold no error."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    asserts = sum(line.lstrip().startswith(("assert ", "np.testing.assert_"))
                  for c in code for line in c.source.splitlines())
    assert asserts >= MIN_ASSERTS, f"{name} has {asserts} assert statements"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name} was saved with an error output"


@pytest.fixture(scope="module")
def kernel_spec_dir(tmp_path_factory) -> Path:
    """A kernelspec that starts an ipykernel with the interpreter running the tests."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "ddpg-jax-test"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ddpg_jax tests", "language": "python"}))
    return root


@pytest.mark.parametrize("name", sorted(TIMEOUT_S))
def test_notebook_runs_with_ci_budget(name: str, kernel_spec_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("DDPG_NOTEBOOK_BUDGET", "ci")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # Keep the kernel's JAX on the CPU and single-device, as in the other tests.
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)])
    km = KernelManager(kernel_name="ddpg-jax-test", kernel_spec_manager=ksm)
    client = nbclient.NotebookClient(
        nb, km=km, timeout=TIMEOUT_S[name], kernel_name="ddpg-jax-test",
        resources={"metadata": {"path": str(tmp_path)}},  # files the notebook writes go here
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    assert elapsed < TIMEOUT_S[name], f"{name} took {elapsed:.0f} s with the CI budget"

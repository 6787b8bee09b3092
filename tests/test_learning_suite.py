"""The learning suite's MuJoCo variants take the 2018 protocol's warm-up only where it belongs."""

import importlib.util
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _learning():
    # benchmarks/ is a folder of scripts beside the package; learning.py imports its siblings.
    sys.path.insert(0, str(_ROOT))
    try:
        spec = importlib.util.spec_from_file_location("benchmarks.learning",
                                                      _ROOT / "benchmarks" / "learning.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(_ROOT))


def test_halfcheetah_10000_random_steps_for_the_2018_presets_not_for_td3():
    L = _learning()
    variants = dict(L.suite_variants(L.SUITES["mujoco"], "HalfCheetah-v5"))
    for name in ("paper", "ourddpg", "td3-2018"):  # the TD3 paper's run_experiments.sh
        assert variants[name] == {"warmup_steps": 10_000}
    assert variants["td3"] == {}  # the authors' current code: its own 25000 on every task
    assert dict(L.suite_variants(L.SUITES["mujoco"], "Hopper-v5"))["td3-2018"] == {}
    varied = L.suite_variants(L.SUITES["mujoco"], "Ant-v5", [{"critic": "c51"}])
    assert ("td3", {"critic": "c51"}) in varied
    assert ("td3-2018", {"warmup_steps": 10_000, "critic": "c51"}) in varied

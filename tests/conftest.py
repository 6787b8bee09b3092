"""Fixtures shared by several test modules, and the suite's compilation cache."""

import os
import shutil
import tempfile

import jax
import pytest

# ddpg_jax.train turns jax's persistent compilation cache on, in a per-user folder, unless
# DDPG_JAX_CACHE_DIR says otherwise. The suite points it at a folder of its own, made when
# the run starts and removed when it ends: the runs of every test, in every worker process
# and every CLI subprocess, share the programs compiled in this run (many tests train the
# same small configurations), and the per-user folder is neither read nor filled.
# tests/test_compile_cache.py sets the cache up explicitly. DDPG_JAX_CACHE_DIR=off runs the
# suite without it.
_OWN_CACHE = "DDPG_JAX_TEST_OWN_CACHE"

# The suite's programs are compiled at XLA's backend optimisation level 0 (no LLVM
# optimisation of the generated CPU code), unless XLA_FLAGS already names a level. The tests
# check results, not speed, and most of their time is compilation: this cut the CPU time of
# tests/test_presets.py, test_jax_train.py and test_td3_reference.py from 259 s to 197 s.
# Comparisons within one run stay within one compiled program; comparisons with references
# carry tolerances that do not depend on the code generator's optimisations. Set XLA_FLAGS
# (for example to --xla_backend_optimization_level=2) to test the optimised programs.
_OPT_LEVEL = "--xla_backend_optimization_level"
if _OPT_LEVEL not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_OPT_LEVEL}=0".strip()


def pytest_configure(config):
    if hasattr(config, "workerinput") or "DDPG_JAX_CACHE_DIR" in os.environ:
        return  # a worker inherits the controller's folder; a folder given is kept
    os.environ["DDPG_JAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="ddpg_jax-test-cache-")
    os.environ[_OWN_CACHE] = os.environ["DDPG_JAX_CACHE_DIR"]


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput") and os.environ.get(_OWN_CACHE):
        shutil.rmtree(os.environ.pop(_OWN_CACHE), ignore_errors=True)


@pytest.fixture(scope="module")
def module_compile_cache(tmp_path_factory):
    """A persistent compilation cache for one module's runs, so equal programs compile once."""
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax-cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield
    for n, v in old.items():
        jax.config.update(n, v)
    compilation_cache.reset_cache()

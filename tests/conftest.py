"""Fixtures shared by several test modules."""

import os

import jax
import pytest

# ddpg_jax.train turns jax's persistent compilation cache on, in a per-user folder, unless
# DDPG_JAX_CACHE_DIR says "off". The suite keeps it off, so that its runs neither read nor
# fill that folder; tests/test_compile_cache.py sets the cache up explicitly.
os.environ.setdefault("DDPG_JAX_CACHE_DIR", "off")


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

"""Versions of the interpreter and the libraries a run depends on, for run records."""

from __future__ import annotations

import platform


def versions() -> dict[str, str]:
    """Versions of the interpreter and the libraries a run depends on."""
    import chex
    import flax
    import gymnasium
    import jax
    import jaxlib
    import numpy
    import optax

    from ddpg_jax import __version__

    return {
        "ddpg_jax": __version__,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "chex": chex.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
    }

"""Versions of the interpreter and the libraries a run depends on, for run records."""

from __future__ import annotations

import platform
from importlib import metadata

# Distributions reported only when installed: test tools, simulators, optional backends.
_OPTIONAL = ("chex", "mujoco", "tensorstore", "rich")


def _dist_version(name: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """Versions of the interpreter and the libraries a run depends on.

    The core dependencies are always listed (``orbax-checkpoint`` from its distribution
    metadata, so it is not imported); chex, mujoco, tensorstore and rich only when they are
    installed, so a plain install (without the ``dev`` extra) reports no error.
    """
    import flax
    import gymnasium
    import jax
    import jaxlib
    import numpy
    import optax

    from ddpg_jax.version import __version__

    out = {
        "ddpg_jax": __version__,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "orbax-checkpoint": _dist_version("orbax-checkpoint") or "not installed",
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
    }
    for name in _OPTIONAL:
        version = _dist_version(name)
        if version is not None:
            out[name] = version
    return out

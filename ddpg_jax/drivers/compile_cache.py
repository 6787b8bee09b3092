"""jax's persistent compilation cache, turned on around ``ddpg_jax.train`` and the CLI.

A second launch of the same program then loads its compiled executables from
disk instead of compiling them again. Importing ``ddpg_jax`` changes nothing
in jax's configuration; :func:`compile_cache` sets jax's cache settings when a
``train`` call starts and puts them back when it returns, so compilations made
outside ``train`` are not cached by ``ddpg_jax``.

Where the cache lives, first match wins:

1. the ``compile_cache`` setting (:class:`~ddpg_jax.drivers.run_options.RunOptions`,
   ``ddpg-jax train --compile-cache``): a folder, or ``"off"``;
2. the environment variable ``DDPG_JAX_CACHE_DIR``: a folder, or ``off``;
3. ``$XDG_CACHE_HOME/ddpg_jax/jax``, or ``~/.cache/ddpg_jax/jax`` without
   ``XDG_CACHE_HOME``.

If jax's own cache is already configured in the process
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config.update("jax_compilation_cache_dir", ...)``),
jax's settings are used as they are and none of the above applies.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import jax

#: The environment variable that moves or disables the cache.
ENV_VAR = "DDPG_JAX_CACHE_DIR"
#: Values of the setting and of ``DDPG_JAX_CACHE_DIR`` that turn the cache off.
OFF_VALUES = ("off", "none", "0", "false", "no")

# jax's settings changed while the cache is on, and the values they get: every program is
# written, however fast it compiled (jax's default skips those under 1 s) and however
# small its executable.
_SETTINGS = {
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,
}

_lock = threading.Lock()
_warned: set[str] = set()
_active: list[str] = []  # the folder set by the outermost active compile_cache


class CompileCacheWarning(UserWarning):
    """The compilation cache folder cannot be used; the run goes on without the cache."""


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/ddpg_jax/jax``, or ``~/.cache/ddpg_jax/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ddpg_jax" / "jax"


def is_off(value: str | os.PathLike | None) -> bool:
    """Whether a setting or ``DDPG_JAX_CACHE_DIR`` value means "no cache"."""
    return value is not None and str(value).strip().lower() in OFF_VALUES


def resolve_dir(setting: str | os.PathLike | None = None) -> Path | None:
    """The cache folder for ``setting`` (see the module's docstring), or ``None`` for off."""
    for value in (setting, os.environ.get(ENV_VAR)):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        return None if is_off(value) else Path(os.path.expanduser(str(value)))
    return default_dir()


def _writable(path: Path) -> str | None:
    """``None`` if files can be created in ``path`` (made if missing), else the reason."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".ddpg_jax_probe_")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"
    return None


def _warn_once(path: Path, reason: str) -> None:
    key = str(path)
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(
        f"ddpg_jax: the compilation cache folder {path} cannot be written ({reason}); running "
        f"without the persistent compilation cache. Accepted: a writable folder or 'off', as "
        f"RunOptions(compile_cache=...), ddpg-jax train --compile-cache, or {ENV_VAR}.",
        CompileCacheWarning, stacklevel=3)


def _reset() -> None:
    from jax.experimental.compilation_cache import compilation_cache as cc

    cc.reset_cache()


@contextlib.contextmanager
def compile_cache(setting: str | os.PathLike | None = None) -> Iterator[Path | None]:
    """Turns jax's persistent compilation cache on for the duration of the block.

    Yields the folder in use: this one, jax's own when it is configured (its
    settings are then left as they are), or the outer block's for a nested block
    (which changes nothing). Yields ``None`` when the cache is off or the folder
    cannot be written (a :class:`CompileCacheWarning` is issued once per folder
    and process). On leaving, jax's settings are restored and its cache object is
    dropped, so that later compilations in the process are not written to the
    folder.
    """
    path = resolve_dir(setting)
    if _active:  # an outer block has set the cache up
        yield Path(_active[0])
        return
    if path is None:
        yield None
        return
    if jax.config.jax_compilation_cache_dir is not None:  # jax's own cache: left as it is
        yield Path(jax.config.jax_compilation_cache_dir)
        return
    reason = _writable(path)
    if reason is not None:
        _warn_once(path, reason)
        yield None
        return
    names = ("jax_compilation_cache_dir", *_SETTINGS)
    saved = {name: getattr(jax.config, name) for name in names}
    _reset()
    jax.config.update("jax_compilation_cache_dir", str(path))
    for name, value in _SETTINGS.items():
        jax.config.update(name, value)
    _active.append(str(path))
    try:
        yield path
    finally:
        _active.pop()
        for name, value in saved.items():
            jax.config.update(name, value)
        _reset()

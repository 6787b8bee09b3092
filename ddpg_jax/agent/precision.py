"""The matmul precision a run's compiled programs are traced with (``config.matmul_precision``)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, ContextManager, TypeVar

import jax

F = TypeVar("F", bound=Callable[..., Any])


def matmul_precision(config: Any) -> ContextManager[Any]:
    """A context in which jax traces matrix products at ``config.matmul_precision``.

    ``"default"`` changes nothing: jax's own setting applies (its default precision,
    unless the process set ``jax_default_matmul_precision``), so programs are the
    same as without this setting. Any other name is passed to
    ``jax.default_matmul_precision``; it only acts while a program is traced, and
    only in the calling thread.
    """
    name = config.matmul_precision
    if name == "default":
        return contextlib.nullcontext()
    return jax.default_matmul_precision(name)


@contextlib.contextmanager
def run_matmul_precision(config: Any) -> Iterator[None]:
    """Sets jax's ``jax_default_matmul_precision`` for a training call, in every thread.

    The gymnasium driver traces its programs in worker threads, where a thread-local
    ``jax.default_matmul_precision`` context does not reach, so a training call
    sets jax's process-wide value and puts the previous one back when it ends.
    ``"default"`` leaves it as it is.
    """
    name = config.matmul_precision
    if name == "default":
        yield
        return
    previous = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", name)
    try:
        yield
    finally:
        jax.config.update("jax_default_matmul_precision", previous)


def with_matmul_precision(config: Any, fn: F) -> F:
    """``fn``, traced at ``config.matmul_precision`` wherever it is called or jitted."""
    if config.matmul_precision == "default":
        return fn

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with matmul_precision(config):
            return fn(*args, **kwargs)

    return wrapped  # type: ignore[return-value]

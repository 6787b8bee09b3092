"""One resolver for every JAX env family: :func:`from_spec` turns a string into an env.

Accepted specs:

* a built-in id of :func:`ddpg_jax.envs.make` (``Pendulum-v1``,
  ``MountainCarContinuous-v0``, and ids added with :func:`ddpg_jax.envs.register`);
* ``playground:TASK``: a MuJoCo Playground task (:func:`ddpg_jax.envs.from_playground`),
  with the machine's default physics; ``playground:TASK:impl=jax`` or ``:impl=warp``
  chooses it;
* ``brax:NAME``: a brax env (:func:`ddpg_jax.envs.from_brax`);
* ``gymnax:NAME``: a gymnax env (:func:`ddpg_jax.envs.from_gymnax`);
* ``module:function``: ``module`` is imported and ``function`` (a dotted
  attribute path is allowed) is called with no arguments; it returns an
  :class:`~ddpg_jax.envs.Environment` or an ``(Environment, params)`` pair.
  This is how a user's own JAX env reaches ``train`` and the command line.

The family prefixes win over module names: ``brax:ant`` is the brax env, not
``brax.ant``. Every refusal is an :class:`~ddpg_jax.envs.core.EnvSpecError`
(a ``ValueError``) with one paragraph, raised before anything is traced.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ddpg_jax.envs.core import Environment, EnvSpecError
from ddpg_jax.envs.registry import make, registered_envs

__all__ = ["FAMILIES", "accepted_specs", "from_spec", "is_family_spec"]


def _playground(text: str) -> tuple[Environment, Any]:
    from ddpg_jax.envs.playground_adapter import from_playground, parse_task_spec

    name, options = parse_task_spec(text)
    return from_playground(name, **options)


def _brax(name: str) -> tuple[Environment, Any]:
    from ddpg_jax.envs.adapters import from_brax

    return from_brax(name)


def _gymnax(name: str) -> tuple[Environment, Any]:
    from ddpg_jax.envs.adapters import from_gymnax

    return from_gymnax(name)


#: Family prefix -> (builder from a name, what the name is, the extra that provides it).
FAMILIES: dict[str, tuple[Callable[[str], tuple[Environment, Any]], str, str]] = {
    "playground": (_playground, "MuJoCo Playground task", "playground"),
    "brax": (_brax, "brax env name", "brax"),
    "gymnax": (_gymnax, "gymnax env id", "gymnax"),
}


def accepted_specs() -> str:
    """One sentence listing the accepted forms (for error messages and help)."""
    return ("Accepted JAX env specs: a built-in id (" + " | ".join(registered_envs()) + "), "
            'playground:TASK or playground:TASK:impl=jax|warp (MuJoCo Playground, pip install '
            '"ddpg-jax[playground]"), '
            'brax:NAME (pip install "ddpg-jax[brax]"), gymnax:NAME (pip install '
            '"ddpg-jax[gymnax]"), or module:function, a function callable with no arguments '
            "that returns a ddpg_jax.envs.Environment or an (Environment, params) pair.")


def is_family_spec(spec: Any) -> bool:
    """Whether ``spec`` names an env of one of the :data:`FAMILIES` (``playground:...``)."""
    return isinstance(spec, str) and spec.partition(":")[0] in FAMILIES and ":" in spec


def from_spec(spec: str) -> tuple[Environment, Any, str]:
    """Builds the JAX env a spec names.

    Args:
      spec: see the module docstring, e.g. ``"Pendulum-v1"``,
        ``"playground:CartpoleBalance"``, ``"brax:inverted_pendulum"`` or
        ``"my_envs:make_env"``.

    Returns:
      ``(env, params, canonical_id)``: the id under which the env is recorded
      in checkpoints and run directories (the spec itself), so that it can be
      rebuilt from there.

    Raises:
      EnvSpecError: for an unknown id, family or task (with close matches), a
        missing optional extra (with its pip line), a module that cannot be
        imported, or a function that is missing, needs arguments or returns
        something other than an env.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise EnvSpecError(f"env spec {spec!r} is not a non-empty string. {accepted_specs()}")
    if spec in registered_envs():
        env, params = make(spec)
        return env, params, spec
    prefix, sep, rest = spec.partition(":")
    if not sep:
        close = difflib.get_close_matches(spec, list(registered_envs()), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise EnvSpecError(f"unknown JAX env id {spec!r}.{hint} {accepted_specs()} (The "
                           "gymnasium backend takes any gymnasium id instead.)")
    if prefix in FAMILIES:
        env, params = _from_family(prefix, rest, spec)
    else:
        env, params = _from_function(prefix, rest, spec)
    return env, params, spec


def _from_family(family: str, name: str, spec: str) -> tuple[Environment, Any]:
    build, what, extra = FAMILIES[family]
    if not name:
        raise EnvSpecError(f"env spec {spec!r} names no {what} after '{family}:'. "
                           f"{accepted_specs()}")
    try:
        return build(name)
    except ImportError as e:
        pip = f'pip install "ddpg-jax[{extra}]"'
        text = " ".join(str(e).split())
        raise EnvSpecError(f"env spec {spec!r} needs an optional extra: "
                           f"{text if pip in text else f'{text} ({pip})'}. Nothing was "
                           "started.") from None
    except ValueError as e:  # EnvSpecError included: add which spec it was about
        raise EnvSpecError(f"env spec {spec!r}: {' '.join(str(e).split())}") from None


def _public_callables(module: Any) -> list[str]:
    return sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))


def _from_function(module_name: str, attr: str, spec: str) -> tuple[Environment, Any]:
    form = ("With 'module:function' the module must be importable (installed, or on "
            "PYTHONPATH) and the function callable with no arguments, returning a "
            "ddpg_jax.envs.Environment or an (Environment, params) pair.")
    if not module_name or not attr or ":" in attr:
        raise EnvSpecError(f"env spec {spec!r} is not of the form 'family:NAME' or "
                           f"'module:function'. {accepted_specs()}")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # a user module may fail in any way while it is imported
        lower = module_name.lower()
        hint = f" Did you mean {lower}:{attr}?" if lower in FAMILIES else ""
        raise EnvSpecError(
            f"env spec {spec!r}: module {module_name!r} cannot be imported "
            f"({type(e).__name__}: {' '.join(str(e).split())}), and {module_name!r} is not "
            f"one of the families {', '.join(f'{f}:' for f in FAMILIES)}.{hint} {form}"
        ) from None
    obj: Any = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            where = module_name if i == 0 else f"{module_name}:{'.'.join(attr.split('.')[:i])}"
            names = _public_callables(obj)
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
            hint = (f" Did you mean: {', '.join(close)}?" if close
                    else f" Its public callables: {', '.join(names[:20]) or 'none'}.")
            raise EnvSpecError(f"env spec {spec!r}: {where} has no attribute {part!r}.{hint} "
                               f"{form}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise EnvSpecError(f"env spec {spec!r}: {attr!r} in {module_name!r} is a "
                           f"{type(obj).__name__}, not a function. {form}")
    try:
        inspect.signature(obj).bind()
    except TypeError as e:
        raise EnvSpecError(f"env spec {spec!r}: {module_name}:{attr} cannot be called with no "
                           f"arguments ({e}). {form}") from None
    except ValueError:  # no signature to inspect (some builtins): just call it
        pass
    result = obj()
    if isinstance(result, Environment):
        return result, result.default_params
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Environment):
        return result[0], result[1]
    shown = type(result).__name__
    if isinstance(result, tuple):
        shown = f"a tuple of ({', '.join(type(x).__name__ for x in result)})"
    raise EnvSpecError(f"env spec {spec!r}: {module_name}:{attr}() returned {shown}; accepted: "
                       "a ddpg_jax.envs.Environment or an (Environment, params) pair. A "
                       "gymnasium env trains with the gymnasium backend instead.")

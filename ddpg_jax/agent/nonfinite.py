"""The non-finite guard: NaN or infinity stops training with the step and the quantity named.

:func:`guard_nonfinite` records, inside the compiled step (a select, no
branch), the first step at which a loss, a Q value, a gradient norm or the
parameters stopped being finite; :func:`raise_if_nonfinite` turns that record
into a :class:`NonFiniteError` on the host. :func:`check_host_transition`
refuses a non-finite reward or observation from a host env before it reaches
the replay buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinity; the message names the step and the quantity."""

    def __init__(self, message: str, env_step: int | None = None, quantity: str | None = None):
        super().__init__(message)
        self.env_step = env_step
        self.quantity = quantity


#: Quantities the guard watches, in the order their codes (index + 1) are given.
GUARDED = ("critic_loss", "actor_loss", "q_mean", "target_mean", "critic_grad_norm",
           "actor_grad_norm", "critic parameters", "actor parameters")


def no_nonfinite() -> jax.Array:
    """An empty guard record: int32 ``[step, code]`` = ``[-1, 0]``."""
    return jnp.array([-1, 0], jnp.int32)


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def guard_nonfinite(record: jax.Array, step: jax.Array, metrics: Mapping[str, jax.Array],
                    train_state: Any) -> jax.Array:
    """Updates a guard record inside a compiled step (a select, no branch).

    Args:
      record: int32 ``[2]``, the first ``(step, code)`` seen so far, or ``[-1, 0]``.
      step: int32 scalar that names the current step in the error message.
      metrics: the update metrics of this step (any leading axes).
      train_state: the state after the update; its actor and critic parameters
        are checked.

    Returns:
      The record, set to ``(step, code)`` if it was empty and something is not
      finite now; ``code - 1`` indexes :data:`GUARDED`.
    """
    quantities = [metrics.get(name) for name in GUARDED[:6]]
    quantities += [train_state.critic_params, train_state.actor_params]
    ok = jnp.stack([_all_finite(q) if q is not None else jnp.asarray(True) for q in quantities])
    code = jnp.where(jnp.all(ok), 0, jnp.argmin(ok) + 1).astype(jnp.int32)
    fresh = (record[1] == 0) & (code > 0)
    return jnp.where(fresh, jnp.stack([jnp.asarray(step, jnp.int32), code]), record)


def raise_if_nonfinite(record: Any, describe_step: Callable[[int], str],
                       env_step_of: Callable[[int], int] | None = None,
                       last_checkpoint: str | None = None) -> None:
    """Raises :class:`NonFiniteError` if a guard record (or a batch of them) is set.

    Args:
      record: int32 ``[2]`` or ``[runs, 2]`` from :func:`guard_nonfinite`.
      describe_step: turns the recorded step into words, e.g. ``"env step 1200"``.
      env_step_of: turns the recorded step into an environment step (for the
        exception's attribute).
      last_checkpoint: path of the last good checkpoint, quoted in the message.
    """
    rec = np.asarray(record).reshape(-1, 2)
    bad = np.flatnonzero(rec[:, 1] > 0)
    if bad.size == 0:
        return
    i = int(bad[np.argmin(rec[bad, 0])])
    step, code = int(rec[i, 0]), int(rec[i, 1])
    quantity = GUARDED[code - 1]
    run = f" in run {i}" if rec.shape[0] > 1 else ""
    kept = (f" The last good checkpoint, {last_checkpoint}, is kept."
            if last_checkpoint else " No checkpoint was written after it.")
    raise NonFiniteError(
        f"non-finite {quantity} (NaN or infinity) at {describe_step(step)}{run}; training "
        f"stopped.{kept} Lower the learning rates, clip gradients (--max-grad-norm) or check "
        "the environment's rewards and observations.",
        env_step=env_step_of(step) if env_step_of else None, quantity=quantity)


def check_host_transition(reward: np.ndarray, next_obs: np.ndarray, env_step: int,
                          last_checkpoint: str | None = None) -> None:
    """Refuses a non-finite reward or observation coming from a gymnasium env."""
    for name, value in (("reward", reward), ("observation", next_obs)):
        if not np.all(np.isfinite(value)):
            kept = (f" The last good checkpoint, {last_checkpoint}, is kept."
                    if last_checkpoint else "")
            raise NonFiniteError(
                f"non-finite {name} (NaN or infinity) returned by the environment at env step "
                f"{env_step}; training stopped before it reached the replay buffer.{kept}",
                env_step=env_step, quantity=name)

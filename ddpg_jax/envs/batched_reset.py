"""An auto-reset that runs the env's reset only on the steps where an episode of the env batch ended.

:meth:`Environment.step <ddpg_jax.envs.core.Environment.step>` computes a
reset on every step and selects it where the episode ended. That is free for
the built-in envs, and costly for tasks whose reset runs physics: MuJoCo
Playground's ``CheetahRun`` settles its model with 200 physics steps, so an
always-computed reset made each step of 16 envs about 19 times dearer than the
task's own step.

:func:`batched_reset_step` returns a step with the same inputs and outputs and
the same semantics (same keys, same transitions, same fresh episodes: each env
that ended is reset with its own key, so reset randomness is kept), whose
reset sits behind one ``lax.cond`` on "did any env of the batch end on this
step". A ``cond`` decides on one scalar; under ``jax.vmap`` a batched
predicate turns it into a ``select`` that computes both branches. So the
branch is decided where the whole batch is seen:

* the step is a :func:`jax.custom_batching.custom_vmap` function whose
  batching rule calls one function of the whole env batch instead of
  vmapping the per-env step;
* that batched function is itself a ``custom_vmap`` function whose rule folds
  any further vmapped axis (seeds, hyperparameters, nested as deep as the
  caller likes) into its env axis. Every env of every seed then shares one
  predicate: a step computes resets for all of them when any of them ended.

With fixed-length episodes in step (the DM Control Suite tasks), that is one
batch of resets per episode length. Where episodes end at different times
(early termination), a batch of resets is computed on every step in which
some env ended, no more than the always-computed reset did. Under a sharding
of the seed axis over devices, the predicate is one reduction across devices
per step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from ddpg_jax.envs.core import Environment, StepInfo, select_reset

__all__ = ["batched_reset_step"]

StepFn = Callable[..., tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, StepInfo]]


def _broadcast_unbatched(axis_size: int, in_batched: Any, args: tuple) -> tuple:
    """Gives every leaf a leading axis of ``axis_size`` (copies where it was not batched)."""

    def one(batched: bool, leaf: Any) -> Any:
        return leaf if batched else jnp.broadcast_to(leaf, (axis_size,) + jnp.shape(leaf))

    return tuple(jax.tree.map(one, b, a) for b, a in zip(in_batched, args))


def _all_batched(tree: Any) -> Any:
    return jax.tree.map(lambda _: True, tree)


def _batch_step_of(env: Environment) -> Callable[..., tuple]:
    """The step of a whole env batch: every argument has the leading env axis."""

    def batch_step(keys: jax.Array, states: Any, actions: jax.Array, params: Any) -> tuple:
        split = jax.vmap(jax.random.split)(keys)
        key_step, key_reset = split[:, 0], split[:, 1]
        obs, states_step, reward, terminated, truncated = jax.vmap(env.advance)(
            key_step, states, actions, params)
        done = jnp.logical_or(terminated, truncated)

        def reset_where_done(_: None) -> tuple[jax.Array, Any]:
            fresh = jax.vmap(env.reset_env)(key_reset, params)
            return select_reset(done, fresh, (obs, states_step))

        next_obs, next_states = jax.lax.cond(
            jnp.any(done), reset_where_done, lambda _: (obs, states_step), None)
        return next_obs, next_states, reward, terminated, truncated, {"final_observation": obs}

    return batch_step


def _folding(batch_step: Callable[..., tuple]) -> Callable[..., tuple]:
    """``batch_step`` as a ``custom_vmap`` function that folds a vmapped axis into the env axis."""
    folded = custom_vmap(batch_step)

    @folded.def_vmap
    def rule(axis_size: int, in_batched: list, *args: Any) -> tuple[tuple, Any]:
        args = _broadcast_unbatched(axis_size, in_batched, args)
        envs = jnp.shape(jax.tree.leaves(args)[0])[1]
        # Explicit sizes, no -1: some physics leaves have a dimension of size 0.
        flat = jax.tree.map(lambda x: x.reshape((axis_size * envs,) + x.shape[2:]), args)
        out = folded(*flat)  # a further vmap around this one comes back to this rule
        out = jax.tree.map(lambda x: x.reshape((axis_size, envs) + x.shape[1:]), out)
        return out, _all_batched(out)

    return folded


def batched_reset_step(env: Environment) -> StepFn:
    """The step of ``env`` with :meth:`~ddpg_jax.envs.core.Environment.step`'s semantics
    and a reset computed only on steps where an episode of the env batch ended.

    Called on one env, its reset sits behind a ``cond`` on that env's ``done``;
    vmapped (over envs, seeds, or both, in any nesting), behind one ``cond``
    on whether any env of the whole batch ended. See the module docstring.

    Args:
      env: the env whose :meth:`~ddpg_jax.envs.core.Environment.advance` and
        ``reset_env`` are used.

    Returns:
      ``step(key, state, action, params) -> (obs, state, reward, terminated,
      truncated, info)``, ``params`` required (not ``None``).
    """
    batch_step = _folding(_batch_step_of(env))

    @custom_vmap
    def step(key: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple:
        one = jax.tree.map(lambda x: jnp.expand_dims(x, 0), (key, state, action, params))
        return jax.tree.map(lambda x: x[0], batch_step(*one))

    @step.def_vmap
    def rule(axis_size: int, in_batched: list, *args: Any) -> tuple[tuple, Any]:
        out = batch_step(*_broadcast_unbatched(axis_size, in_batched, args))
        return out, _all_batched(out)

    return step

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

State leaves without the env axis (MuJoCo Warp keeps its contact pool and
counters once for all the worlds of a batch) are passed whole to every env and
left as the step left them when some envs reset, as Playground's own
auto-reset wrapper does. A leaf is recognised by its number of axes against
those of one env's state from ``reset_env``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from ddpg_jax.envs.core import Environment, StepInfo, select_reset

__all__ = ["batched_reset_step"]

StepFn = Callable[..., tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, StepInfo]]


def _tree_ndims(tree: Any) -> Any:
    return jax.tree.map(jnp.ndim, tree)


def _select_fresh(done: jax.Array, fresh: Any, stepped: Any, base: Any) -> Any:
    """``fresh`` where ``done``, leaf by leaf, for the leaves that have the env axes of ``done``.

    ``base`` holds each leaf's ndim for one env. A leaf with fewer axes than
    ``base + done.ndim`` is shared by the envs of the batch (MuJoCo Warp keeps
    its contact pool and counters once for all worlds, say): it stays as the
    step left it, as Playground's own auto-reset wrapper leaves it.
    """

    def one(f: Any, s: Any, b: int) -> Any:
        if jnp.ndim(s) != b + jnp.ndim(done):
            return s
        return select_reset(done, f, s)

    return jax.tree.map(one, fresh, stepped, base)


def _vmap_over_env_axis(fn: Callable, states: Any, base: Any) -> Callable:
    """``jax.vmap(fn)`` for ``fn(key, state, action, params)``, where the state leaves
    without an env axis (one ndim more than ``base``) are passed whole to every env."""
    leaves, treedef = jax.tree.flatten(states)
    mapped = [jnp.ndim(x) == b + 1 for x, b in zip(leaves, jax.tree.leaves(base))]
    shared = [x for x, m in zip(leaves, mapped) if not m]

    def per_env(key: jax.Array, batched: list, action: jax.Array, params: Any) -> Any:
        it_batched, it_shared = iter(batched), iter(shared)
        state = treedef.unflatten([next(it_batched) if m else next(it_shared) for m in mapped])
        return fn(key, state, action, params)

    def call(keys: jax.Array, actions: jax.Array, params: Any) -> Any:
        batched = [x for x, m in zip(leaves, mapped) if m]
        return jax.vmap(per_env)(keys, batched, actions, params)

    return call


class _Parts:
    """The pieces of one env's step, and the ndim of each of its leaves for one env."""

    def __init__(self, env: Environment):
        self.env = env
        params = env.default_params
        _, state = jax.eval_shape(env.reset_env, jax.random.PRNGKey(0), params)
        self.state_base = _tree_ndims(state)
        self.base = (1, self.state_base)  # (obs, state)

    def single(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple:
        """One env: the reset behind a ``cond`` on its own ``done``."""
        key_step, key_reset = jax.random.split(key)
        obs, stepped, reward, terminated, truncated = self.env.advance(
            key_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)

        def reset(_: None) -> tuple:
            fresh = self.env.reset_env(key_reset, params)
            return _select_fresh(done, fresh, (obs, stepped), self.base)

        next_obs, next_state = jax.lax.cond(done, reset, lambda _: (obs, stepped), None)
        return next_obs, next_state, reward, terminated, truncated, {"final_observation": obs}

    def batch(self, keys: jax.Array, states: Any, actions: jax.Array, params: Any) -> tuple:
        """A batch of envs (leading axis of ``keys``, ``actions``, ``params`` and the state
        leaves that are not shared): one ``cond`` on whether any of them ended."""
        split = jax.vmap(jax.random.split)(keys)
        key_step, key_reset = split[:, 0], split[:, 1]
        obs, stepped, reward, terminated, truncated = _vmap_over_env_axis(
            self.env.advance, states, self.state_base)(key_step, actions, params)
        done = jnp.logical_or(terminated, truncated)

        def reset(_: None) -> tuple:
            fresh = jax.vmap(self.env.reset_env)(key_reset, params)
            return _select_fresh(done, fresh, (obs, stepped), self.base)

        next_obs, next_state = jax.lax.cond(
            jnp.any(done), reset, lambda _: (obs, stepped), None)
        return next_obs, next_state, reward, terminated, truncated, {"final_observation": obs}

    def out_batched(self, out: tuple, extra: int) -> Any:
        """Which outputs carry the vmapped axis: all but the shared state leaves."""
        flags = jax.tree.map(lambda _: True, out)
        state_flags = jax.tree.map(lambda x, b: jnp.ndim(x) == b + extra, out[1],
                                   self.state_base)
        return (flags[0], state_flags, *flags[2:])


def _with_axis(leaf: Any, batched: bool, size: int) -> Any:
    return leaf if batched else jnp.broadcast_to(leaf, (size,) + jnp.shape(leaf))


def _folding(parts: _Parts) -> Callable[..., tuple]:
    """``parts.batch`` as a ``custom_vmap`` function that folds a vmapped axis into the env axis."""
    folded = custom_vmap(parts.batch)

    @folded.def_vmap
    def rule(axis_size: int, in_batched: list, keys: Any, states: Any, actions: Any,
             params: Any) -> tuple[tuple, Any]:
        kb, sb, ab, pb = in_batched
        envs = jnp.shape(actions)[-2]
        fold = lambda x: x.reshape((axis_size * envs,) + x.shape[2:])

        def fold_env_leaf(x: Any, batched: bool) -> Any:
            return fold(_with_axis(x, batched, axis_size))

        def fold_state_leaf(x: Any, batched: bool, base: int) -> Any:
            has_env_axis = jnp.ndim(x) == base + 1 + int(batched)
            if has_env_axis:
                return fold(_with_axis(x, batched, axis_size))
            if batched:  # one value per outer index, the same for its envs
                x = jnp.broadcast_to(jnp.expand_dims(x, 1), (axis_size, envs) + x.shape[1:])
                return fold(x)
            return x  # shared by every env of every outer index

        args = (jax.tree.map(fold_env_leaf, keys, kb),
                jax.tree.map(fold_state_leaf, states, sb, parts.state_base),
                jax.tree.map(fold_env_leaf, actions, ab),
                jax.tree.map(fold_env_leaf, params, pb))
        out = folded(*args)  # a further vmap around this one comes back to this rule
        flags = parts.out_batched(out, 1)
        # Explicit sizes, no -1: some physics leaves have a dimension of size 0.
        unfold = lambda x, f: x.reshape((axis_size, envs) + x.shape[1:]) if f else x
        return jax.tree.map(unfold, out, flags), flags

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
    parts = _Parts(env)
    batch_step = _folding(parts)
    step = custom_vmap(parts.single)

    @step.def_vmap
    def rule(axis_size: int, in_batched: list, key: Any, state: Any, action: Any,
             params: Any) -> tuple[tuple, Any]:
        kb, _, ab, pb = in_batched
        key, action = jax.tree.map(lambda x, b: _with_axis(x, b, axis_size), (key, action),
                                   (kb, ab))
        params = jax.tree.map(lambda x, b: _with_axis(x, b, axis_size), params, pb)
        # State leaves are passed as they come: unbatched ones are vmapped with in_axes None.
        out = batch_step(key, state, action, params)
        return out, parts.out_batched(out, 1)

    return step

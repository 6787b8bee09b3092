"""Stepping an adapter and the env it wraps side by side, in one compiled program.

Used by the brax and MuJoCo Playground tests. Both libraries' envs have
``reset(rng) -> State`` and ``step(State, action) -> State``; the reference is
those functions called directly. One program holds both rollouts because
compiling physics dominates the cost of these tests (one program per env
instead of four jitted functions: about three times less compile time).
:func:`rollouts_over_seeds` and :func:`reference_by_env` check a batched
auto-reset instead: seeds and envs vmapped in one program against the task's
own functions driven env by env in plain Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

KEY = jax.random.PRNGKey(3)


def make_side_by_side(env: Any, inner: Any, n: int, *, repeat: int = 1,
                      resets: bool = True) -> Callable[..., tuple[dict, dict]]:
    """Builds ``run(actions, params, ends=(), key=KEY) -> (adapter, reference)``.

    The adapter ``env`` runs ``n`` steps through its public ``reset`` / ``step``.
    The reference runs ``inner``'s own functions: each agent step is ``repeat``
    of its steps with the rewards summed; with ``resets``, after a step where
    ``inner`` itself reports ``done`` or that is listed in ``ends`` (where the
    caller expects the time limit), it restarts from its own ``reset`` with the
    adapter's reset key (``Environment.step`` resets with
    ``jax.random.split(key)[1]``). Actions, params, ``ends`` and the key are
    inputs of one jitted function, so every call compiles nothing new.

    Returns dicts of numpy arrays with one row per step (and the reset
    observations under ``"first"``).
    """

    def rollouts(key, keys, actions, ends_mask, params):
        first, state = env.reset(key, params)

        def adapter_step(state, xs):
            k, a = xs
            obs, state, reward, term, trunc, info = env.step(k, state, a, params)
            return state, dict(obs=obs, final=info["final_observation"], reward=reward,
                               terminated=term, truncated=trunc, time=state.time)

        _, ad = jax.lax.scan(adapter_step, state, (keys, actions))
        start = inner.reset(key)

        def inner_step(s, xs):
            k, a, end = xs
            reward = 0.0
            for _ in range(repeat):
                s = inner.step(s, a)
                reward = reward + s.reward
            out = dict(final=s.obs, reward=reward, done=s.done)
            if resets:
                fresh = inner.reset(jax.random.split(k)[1])
                restart = end | (s.done > 0.5)
                s = jax.tree.map(lambda f, x: jnp.where(restart, f, x), fresh, s)
                out["fresh"] = fresh.obs
            return s, out

        _, ref = jax.lax.scan(inner_step, start, (keys, actions, ends_mask))
        return {**ad, "first": first}, {**ref, "first": start.obs}

    compiled = jax.jit(rollouts)

    def run(actions, params, ends=(), key=KEY):
        actions = np.asarray(actions, np.float32)
        assert actions.shape[0] == n, actions.shape
        keys = jax.random.split(jax.random.fold_in(key, 1), n)
        ends_mask = np.isin(np.arange(n), ends)
        return jax.device_get(compiled(key, keys, actions, ends_mask, params))

    return run


def _close(a, b, what: str) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=what)


def assert_parity(ad: dict, ref: dict, ends=()) -> None:
    """Same observations, rewards and terminations; truncations exactly at ``ends``.

    After a step that ends an episode the adapter must return the first
    observation of the reference's fresh episode, and its ``time`` restarts.
    """
    _close(ad["first"], ref["first"], "reset observation")
    _close(ad["final"], ref["final"], "final observations (before any reset)")
    _close(ad["reward"], ref["reward"], "rewards")
    np.testing.assert_array_equal(ad["terminated"], ref["done"] > 0.5)
    n = len(ad["reward"])
    np.testing.assert_array_equal(ad["truncated"], np.isin(np.arange(n), ends))
    ended = ad["terminated"] | ad["truncated"]
    time = 0
    for t in range(n):
        expected = ref["fresh"][t] if ended[t] else ref["final"][t]
        _close(ad["obs"][t], expected, f"returned observation, step {t}")
        time = 0 if ended[t] else time + 1
        assert int(ad["time"][t]) == time, (t, ad["time"])


def actions(n: int, dim: int, seed: int = 0, high: float = 1.2) -> np.ndarray:
    """Uniform actions in ``[-high, high]`` (beyond [-1, 1] by default: envs clip them)."""
    return np.random.default_rng(seed).uniform(-high, high, (n, dim)).astype(np.float32)


def rollouts_over_seeds(step: Callable, env: Any, params: Any, starts: Any, keys: Any,
                        actions: Any, offset: Any = None) -> tuple[Any, dict]:
    """``jit(vmap over seeds(scan over steps(vmap over envs(step))))``.

    ``starts`` ``[seeds, envs]`` keys of the first resets, ``keys`` / ``actions``
    ``[seeds, steps, envs, ...]``; ``offset`` ``[envs]``: steps already taken in
    the first episode (so time limits fall on different steps). Returns the
    first observations and a dict of ``[seeds, steps, envs, ...]`` arrays.
    """
    offset = None if offset is None else jnp.asarray(offset, jnp.int32)

    def one_seed(start_keys, step_keys, acts):
        obs0, state = jax.vmap(env.reset, in_axes=(0, None))(start_keys, params)
        if offset is not None:
            state = state.replace(time=offset)

        def body(state, xs):
            k, a = xs
            obs, state, r, term, trunc, info = jax.vmap(step, in_axes=(0, 0, 0, None))(
                k, state, a, params)
            return state, dict(obs=obs, final=info["final_observation"], reward=r,
                               terminated=term, truncated=trunc, time=state.time)

        _, out = jax.lax.scan(body, state, (step_keys, acts))
        return obs0, out

    return jax.jit(jax.vmap(one_seed))(starts, keys, actions)


def reference_by_env(task: Any, limit: int, starts: Any, keys: Any, actions: Any,
                     offset: Any = None) -> dict:
    """What :func:`rollouts_over_seeds` must return, from ``task``'s own functions env by env.

    Plain Python over seeds, envs and steps with the task's jitted ``reset`` and
    ``step``: after the task's ``done`` or the time limit ``limit``, the env
    restarts from ``task.reset(jax.random.split(key)[1])`` with that step's key.
    """
    reset, tstep = jax.jit(task.reset), jax.jit(task.step)
    seeds, steps, envs = np.shape(keys)[:3]
    offset = np.zeros(envs, int) if offset is None else np.asarray(offset)
    obs_shape = np.shape(jax.eval_shape(task.reset, starts[0, 0]).obs)
    out = {n: np.zeros((seeds, steps, envs) + (obs_shape if n in ("obs", "final") else ()))
           for n in ("obs", "final", "reward", "terminated", "truncated", "time")}
    for s in range(seeds):
        for e in range(envs):
            state, time = reset(starts[s, e]), int(offset[e])
            for t in range(steps):
                state, time = tstep(state, actions[s, t, e]), time + 1
                out["final"][s, t, e], out["reward"][s, t, e] = state.obs, state.reward
                out["terminated"][s, t, e] = bool(state.done > 0.5)
                out["truncated"][s, t, e] = time >= limit
                if out["terminated"][s, t, e] or out["truncated"][s, t, e]:
                    state, time = reset(jax.random.split(keys[s, t, e])[1]), 0
                out["obs"][s, t, e], out["time"][s, t, e] = state.obs, time
    return out

"""Stepping an adapter and the env it wraps side by side, in one compiled program.

Used by the brax and MuJoCo Playground tests. Both libraries' envs have
``reset(rng) -> State`` and ``step(State, action) -> State``; the reference is
those functions called directly. One program holds both rollouts because
compiling physics dominates the cost of these tests (one program per env
instead of four jitted functions: about three times less compile time).
"""

from __future__ import annotations

from typing import Any, Callable

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

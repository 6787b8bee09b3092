"""Saving and restoring the state of gymnasium environments as JSON.

gymnasium has no general API for an environment's state, so this captures
what makes a resume exact for the environments whose whole dynamic state is
known:

* the NumPy generator of the base env (``np_random.bit_generator.state``, a
  JSON-able dict), which drives its resets and any stochastic dynamics;
* the elapsed-step counter of every ``TimeLimit`` wrapper in the chain;
* the dynamic state: the env's own ``checkpoint_state()`` /
  ``restore_state(obj)`` methods when it defines them (any JSON-able object),
  else the ``state`` attribute used by gymnasium's classic-control envs
  (Pendulum, MountainCarContinuous, ...) plus the few other attributes
  their ``step`` reads (``last_u``, ``steps_beyond_terminated``).

For other envs (e.g. MuJoCo, whose simulator holds more than its public
``qpos``/``qvel``) :func:`snapshot` reports ``exact = False`` and a resumed run
starts new episodes in them instead of continuing the interrupted ones.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_jax.checkpoint import decode_json, encode_json

#: Attributes of classic-control envs that their ``step`` reads besides ``state``.
_EXTRA_ATTRS = ("last_u", "steps_beyond_terminated")


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, np.ndarray, np.generic)):
        return not isinstance(value, np.ndarray) or value.dtype.kind in "biuf"
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (bool, int, float, np.generic)) for v in value)
    return False


def _wrappers(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def snapshot(env: gym.Env) -> dict[str, Any]:
    """A JSON-able description of ``env``'s state (see the module docstring).

    The result's ``"exact"`` says whether :func:`restore` brings the env back
    to exactly this state.
    """
    base = env.unwrapped
    snap: dict[str, Any] = {
        "elapsed_steps": [getattr(w, "_elapsed_steps", None) for w in _wrappers(env)],
        "rng": (base.np_random.bit_generator.state if base._np_random is not None else None),
        "rng_seed": getattr(base, "_np_random_seed", None),
    }
    if callable(getattr(base, "checkpoint_state", None)) and callable(
            getattr(base, "restore_state", None)):
        snap["custom"] = encode_json(base.checkpoint_state())
        snap["exact"] = True
        return snap
    state = getattr(base, "state", None)
    if "state" in vars(base) and _plain(state):
        snap["attrs"] = {"state": encode_json(state if not isinstance(state, tuple)
                                              else list(state))}
        for name in _EXTRA_ATTRS:
            if name in vars(base) and _plain(getattr(base, name)):
                snap["attrs"][name] = encode_json(getattr(base, name))
        snap["tuple_state"] = isinstance(state, tuple)
        snap["exact"] = True
    else:
        snap["exact"] = False
    return snap


def restore(env: gym.Env, snap: dict[str, Any]) -> bool:
    """Puts ``env`` (already reset once) back into the state of ``snap``.

    Returns:
      Whether the restore is exact; if not, the caller should reset the env.
    """
    base = env.unwrapped
    chain = _wrappers(env)
    if len(chain) != len(snap["elapsed_steps"]):
        return False
    if snap["rng"] is not None:
        base.np_random.bit_generator.state = snap["rng"]
    if snap.get("rng_seed") is not None and hasattr(base, "_np_random_seed"):
        base._np_random_seed = snap["rng_seed"]
    if not snap.get("exact"):
        return False
    for wrapper, elapsed in zip(chain, snap["elapsed_steps"]):
        if elapsed is not None and hasattr(wrapper, "_elapsed_steps"):
            wrapper._elapsed_steps = elapsed
    if "custom" in snap:
        base.restore_state(decode_json(snap["custom"]))
        return True
    for name, value in snap["attrs"].items():
        value = decode_json(value)
        if name == "state" and snap.get("tuple_state"):
            value = tuple(value)
        setattr(base, name, value)
    return True


def snapshot_vector(envs: gym.vector.SyncVectorEnv) -> list[dict[str, Any]]:
    """:func:`snapshot` of each sub-env of a ``SyncVectorEnv``."""
    return [snapshot(e) for e in envs.envs]


def restore_vector(envs: gym.vector.SyncVectorEnv, snaps: list[dict[str, Any]]) -> list[bool]:
    """:func:`restore` of each sub-env; returns which ones were restored exactly."""
    if len(snaps) != len(envs.envs):
        return [False] * len(envs.envs)
    return [restore(e, s) for e, s in zip(envs.envs, snaps)]

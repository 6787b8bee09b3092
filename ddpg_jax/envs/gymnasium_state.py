"""Saving and restoring the state of gymnasium environments as JSON.

gymnasium has no general API for an environment's state, so this captures
what makes a resume exact for the environments and wrappers whose whole
dynamic state is known:

* the NumPy generator of the base env (``np_random.bit_generator.state``, a
  JSON-able dict), which drives its resets and any stochastic dynamics (and
  the randomness of wrappers such as ``StickyAction``, which use it too);
* the state of every wrapper in the chain (:data:`WRAPPER_STATE`): the
  elapsed-step counter of ``TimeLimit``, the running statistics of
  ``NormalizeObservation`` (``obs_rms``: mean, var, count) and
  ``NormalizeReward`` (``return_rms`` and its discounted-return accumulator),
  the queues of ``FrameStackObservation`` / ``DelayObservation``, the episode
  counters of ``RecordEpisodeStatistics`` and a few more; wrappers known to
  hold no state between steps (:data:`STATELESS_WRAPPERS`) need nothing, and
  a wrapper of the user's own can define ``checkpoint_state()`` /
  ``restore_state(obj)`` (any JSON-able object; return ``None`` when it holds
  no state);
* the dynamic state of the base env: its own ``checkpoint_state()`` /
  ``restore_state(obj)`` methods when it defines them; for gymnasium's MuJoCo
  envs (Hopper-v5, HalfCheetah-v5, Ant-v5, ...) MuJoCo's own full
  integration state (``mujoco.mj_getState`` / ``mj_setState`` with
  ``mjSTATE_INTEGRATION``: time, positions, velocities, actuator activations,
  controls, warm start, applied forces, ...) plus the kinematic quantities of
  the last step that the envs read before stepping (body positions, for
  Ant's and Humanoid's forward reward); else the ``state`` attribute used by
  gymnasium's classic-control envs (Pendulum, MountainCarContinuous, ...) plus
  the few other attributes their ``step`` reads (``last_u``,
  ``steps_beyond_terminated``).

Anything else makes the snapshot inexact: a base env whose state is unknown,
or a wrapper that is neither known nor defines the two methods (a wrapper of
unknown type may hold state, such as a running statistic, that a resumed run
would silently lose). :func:`snapshot` then says ``exact = False`` and lists
the reasons under ``"inexact"``; a resumed run restores what was captured,
starts a new episode in that env and warns once (:class:`InexactResumeWarning`,
through :func:`restore_envs`).

:func:`copy_statistics` copies the running statistics of the normalisation
wrappers of one env into another and freezes them there, which is how the
gymnasium driver evaluates with the training envs' statistics.
"""

from __future__ import annotations

import collections
import copy
import sys
import time
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from ddpg_jax.checkpoints.format import decode_json, encode_json

#: Attributes of classic-control envs that their ``step`` reads besides ``state``.
_EXTRA_ATTRS = ("last_u", "steps_beyond_terminated")

_COMMON = "gymnasium.wrappers.common."
_STATEFUL_OBS = "gymnasium.wrappers.stateful_observation."
_STATEFUL_ACT = "gymnasium.wrappers.stateful_action."

#: Wrappers (by exact class, ``module.qualname``) whose state between steps this module
#: captures, with the attributes (dotted paths) that hold it.
WRAPPER_STATE: dict[str, tuple[str, ...]] = {
    _COMMON + "TimeLimit": ("_elapsed_steps",),
    _COMMON + "Autoreset": ("autoreset",),
    _COMMON + "RecordEpisodeStatistics": (
        "episode_count", "episode_returns", "episode_lengths", "return_queue", "length_queue",
        "time_queue", "episode_start_time"),
    _STATEFUL_OBS + "NormalizeObservation": (
        "obs_rms.mean", "obs_rms.var", "obs_rms.count", "_update_running_mean"),
    "gymnasium.wrappers.stateful_reward.NormalizeReward": (
        "return_rms.mean", "return_rms.var", "return_rms.count", "discounted_reward",
        "_update_running_mean"),
    _STATEFUL_OBS + "TimeAwareObservation": ("timesteps",),
    _STATEFUL_OBS + "DelayObservation": ("observation_queue",),
    _STATEFUL_OBS + "FrameStackObservation": ("obs_queue", "padding_value"),
    _STATEFUL_ACT + "StickyAction": ("last_action", "is_sticky_actions", "num_repeats",
                                     "repeats_taken"),
}

#: Attributes holding ``time.perf_counter()`` readings: saved as the time elapsed since
#: them, and restored relative to the new process's clock (they feed only ``info``).
_CLOCK_ATTRS = frozenset({"episode_start_time"})

#: Wrappers (by exact class) that hold nothing between steps that a resumed run needs:
#: the checkers (re-armed by the reset that precedes a restore), pure transformations of
#: actions, observations and rewards (``Transform*`` with the user's function assumed
#: pure), and the rendering-only wrappers (their recordings restart, training does not
#: depend on them).
STATELESS_WRAPPERS: frozenset[str] = frozenset({
    _COMMON + "OrderEnforcing", _COMMON + "PassiveEnvChecker",
    *("gymnasium.wrappers.transform_action." + n for n in (
        "TransformAction", "ClipAction", "RescaleAction", "DiscretizeAction")),
    *("gymnasium.wrappers.transform_observation." + n for n in (
        "TransformObservation", "FlattenObservation", "FilterObservation", "DtypeObservation",
        "ReshapeObservation", "RescaleObservation", "DiscretizeObservation",
        "GrayscaleObservation", "ResizeObservation", "AddRenderObservation")),
    *("gymnasium.wrappers.transform_reward." + n for n in ("TransformReward", "ClipReward")),
    _STATEFUL_OBS + "MaxAndSkipObservation", _STATEFUL_ACT + "RepeatAction",
    *("gymnasium.wrappers.rendering." + n for n in (
        "RecordVideo", "RenderCollection", "HumanRendering", "AddWhiteNoise", "ObstructView")),
})

#: Wrappers whose running statistics :func:`copy_statistics` copies and freezes.
_STATISTICS: dict[str, str] = {
    _STATEFUL_OBS + "NormalizeObservation": "obs_rms",
    "gymnasium.wrappers.stateful_reward.NormalizeReward": "return_rms",
}

#: MuJoCo quantities computed during a step (from the positions and velocities before
#: its integration) that gymnasium's MuJoCo envs read before the next step, e.g. Ant's
#: ``xy_position_before`` (``xpos``) and Humanoid's mass centre (``xipos``). MuJoCo
#: recomputes all of them before using any, so writing them back cannot change the
#: simulation; it makes those reads exact. Only fields of fixed size are listed.
_MUJOCO_DERIVED = (
    "xpos", "xquat", "xmat", "xipos", "ximat", "xanchor", "xaxis", "geom_xpos", "geom_xmat",
    "site_xpos", "site_xmat", "cam_xpos", "cam_xmat", "light_xpos", "light_xdir",
    "subtree_com", "cinert", "cdof", "cvel", "cdof_dot", "cacc", "cfrc_int", "cfrc_ext",
    "subtree_linvel", "subtree_angmom", "ten_length", "ten_velocity", "actuator_length",
    "actuator_velocity", "actuator_force", "qfrc_actuator", "qfrc_bias", "qfrc_passive",
    "qfrc_constraint", "qfrc_smooth", "qacc_smooth", "qacc", "sensordata", "energy",
)


class InexactResumeWarning(UserWarning):
    """A resumed run could not restore its environments exactly (see :func:`restore_envs`)."""


class Restored(NamedTuple):
    """What :func:`restore_envs` did.

    Attributes:
      continued: per sub-env, whether its interrupted episode continues (else the
        caller resets it: a new episode starts).
      notes: why the restore is not exact (empty when it is), one line per sub-env.
    """

    continued: list[bool]
    notes: list[str]


class _Uncapturable(Exception):
    pass


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


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


def _has_hooks(obj: Any) -> bool:
    """Whether ``obj``'s class defines ``checkpoint_state`` and ``restore_state``.

    Looked up on the class, so that a wrapper never borrows its inner env's methods.
    """
    cls = type(obj)
    return callable(getattr(cls, "checkpoint_state", None)) and callable(
        getattr(cls, "restore_state", None))


# ------------------------------------------------------------------ values <-> JSON
def _encode(value: Any) -> Any:
    """JSON-able form of a wrapper attribute (numbers, arrays, lists, deques of them)."""
    if isinstance(value, collections.deque):
        return {"__deque__": [_encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise _Uncapturable(f"an array of dtype {value.dtype}")
        return encode_json(value)
    if value is None or isinstance(value, (bool, int, float, np.generic)):
        return encode_json(value)
    if isinstance(value, (list, tuple)):
        return {"__seq__": type(value).__name__, "items": [_encode(v) for v in value]}
    raise _Uncapturable(f"a value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__deque__" in value:
        return collections.deque([_decode(v) for v in value["__deque__"]], value["maxlen"])
    if isinstance(value, dict) and "__seq__" in value:
        items = [_decode(v) for v in value["items"]]
        return tuple(items) if value["__seq__"] == "tuple" else items
    return decode_json(value)


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set_path(obj: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = getattr(obj, part)
    current = getattr(obj, last, None)
    if isinstance(current, collections.deque) and isinstance(value, collections.deque):
        current.clear()  # in place: keeps the wrapper's own deque (and its maxlen)
        current.extend(value)
    else:
        setattr(obj, last, value)


# ------------------------------------------------------------------ wrappers
def _wrapper_snapshot(wrapper: gym.Wrapper) -> dict[str, Any]:
    name = _type_name(wrapper)
    entry: dict[str, Any] = {"type": name}
    if _has_hooks(wrapper):
        entry["custom"] = encode_json(wrapper.checkpoint_state())
    elif name in WRAPPER_STATE:
        attrs = {}
        try:
            for path in WRAPPER_STATE[name]:
                value = _get_path(wrapper, path)
                if path in _CLOCK_ATTRS and isinstance(value, (int, float)):
                    value = time.perf_counter() - value
                attrs[path] = _encode(value)
        except (AttributeError, _Uncapturable) as e:
            entry["uncaptured"] = f"wrapper {name} holds state that cannot be saved ({e})"
        else:
            entry["attrs"] = attrs
    elif name not in STATELESS_WRAPPERS:
        entry["uncaptured"] = (
            f"wrapper {name} may hold state that ddpg_jax does not know how to save (define "
            "checkpoint_state() and restore_state(state) on it, returning None if it holds none)")
    return entry


def _wrapper_restore(wrapper: gym.Wrapper, entry: dict[str, Any]) -> None:
    if "custom" in entry:
        wrapper.restore_state(decode_json(entry["custom"]))
    for path, value in entry.get("attrs", {}).items():
        value = _decode(value)
        if path in _CLOCK_ATTRS and isinstance(value, (int, float)):
            value = time.perf_counter() - value
        _set_path(wrapper, path, value)


# ------------------------------------------------------------------ MuJoCo
def _mujoco_parts(base: gym.Env) -> tuple[Any, Any, Any] | None:
    """``(mujoco, model, data)`` for gymnasium's own MuJoCo envs, else ``None``."""
    mujoco = sys.modules.get("mujoco")
    if mujoco is None or not type(base).__module__.startswith("gymnasium.envs.mujoco."):
        return None
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if not (isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData)
            and hasattr(mujoco, "mj_getState")
            and hasattr(getattr(mujoco, "mjtState", None), "mjSTATE_INTEGRATION")):
        return None
    return mujoco, model, data


def _mujoco_snapshot(base: gym.Env) -> dict[str, Any] | None:
    parts = _mujoco_parts(base)
    if parts is None:
        return None
    mujoco, model, data = parts
    sig = int(mujoco.mjtState.mjSTATE_INTEGRATION)
    state = np.empty(mujoco.mj_stateSize(model, sig), np.float64)
    mujoco.mj_getState(model, data, state, sig)
    derived = {name: encode_json(np.array(getattr(data, name)))
               for name in _MUJOCO_DERIVED if hasattr(data, name)}
    return {"version": mujoco.__version__, "signature": sig, "state": encode_json(state),
            "derived": derived}


def _mujoco_restore(base: gym.Env, snap: dict[str, Any]) -> str | None:
    """Restores the simulation; returns why it cannot (``None`` when it did)."""
    parts = _mujoco_parts(base)
    if parts is None:
        return f"{_type_name(base)} is not a MuJoCo env here"
    mujoco, model, data = parts
    if snap["version"] != mujoco.__version__:  # the state layout may differ between versions
        return (f"the MuJoCo state was saved by mujoco {snap['version']}, this is "
                f"mujoco {mujoco.__version__}")
    sig, state = int(snap["signature"]), decode_json(snap["state"])
    derived = {name: decode_json(v) for name, v in snap["derived"].items()}
    if mujoco.mj_stateSize(model, sig) != state.size or any(
            not hasattr(data, n) or getattr(data, n).shape != v.shape
            for n, v in derived.items()):
        return f"the MuJoCo state does not fit the model of {_type_name(base)}"
    mujoco.mj_setState(model, data, np.ascontiguousarray(state, np.float64), sig)
    for name, value in derived.items():
        getattr(data, name)[...] = value
    return None


# ------------------------------------------------------------------ snapshot / restore
def snapshot(env: gym.Env) -> dict[str, Any]:
    """A JSON-able description of ``env``'s state (see the module docstring).

    The result's ``"exact"`` says whether :func:`restore` brings the env back
    to exactly this state; if not, ``"inexact"`` lists why.
    """
    base = env.unwrapped
    chain = _wrappers(env)
    snap: dict[str, Any] = {
        "elapsed_steps": [getattr(w, "_elapsed_steps", None) for w in chain],
        "rng": (base.np_random.bit_generator.state if base._np_random is not None else None),
        "rng_seed": getattr(base, "_np_random_seed", None),
        "wrappers": [_wrapper_snapshot(w) for w in chain[:-1]],
    }
    reasons = [w["uncaptured"] for w in snap["wrappers"] if "uncaptured" in w]
    episode = True
    if _has_hooks(base):
        snap["custom"] = encode_json(base.checkpoint_state())
    elif (physics := _mujoco_snapshot(base)) is not None:
        snap["mujoco"] = physics
    elif "state" in vars(base) and _plain(state := getattr(base, "state", None)):
        snap["attrs"] = {"state": encode_json(state if not isinstance(state, tuple)
                                              else list(state))}
        for name in _EXTRA_ATTRS:
            if name in vars(base) and _plain(getattr(base, name)):
                snap["attrs"][name] = encode_json(getattr(base, name))
        snap["tuple_state"] = isinstance(state, tuple)
    else:
        episode = False
        reasons.insert(0, f"the state of {_type_name(base)} is not known (define "
                          "checkpoint_state() and restore_state(state) on it)")
    snap["episode"] = episode
    snap["exact"] = not reasons
    snap["inexact"] = reasons
    return snap


def _restore(env: gym.Env, snap: dict[str, Any]) -> tuple[bool, list[str]]:
    """:func:`restore`, also returning why it is not exact."""
    base = env.unwrapped
    chain = _wrappers(env)
    if len(chain) != len(snap["elapsed_steps"]):
        return False, ["the env's wrapper chain differs from the checkpoint's"]
    wrappers = snap.get("wrappers")
    if wrappers is not None and [w["type"] for w in wrappers] != [_type_name(w)
                                                                   for w in chain[:-1]]:
        return False, ["the env's wrappers differ from the checkpoint's ("
                       + " > ".join(w["type"].rsplit(".", 1)[-1] for w in wrappers) + ")"]
    if snap["rng"] is not None:
        base.np_random.bit_generator.state = snap["rng"]
    if snap.get("rng_seed") is not None and hasattr(base, "_np_random_seed"):
        base._np_random_seed = snap["rng_seed"]
    if wrappers is not None:  # what was captured is restored, exact or not
        for wrapper, entry in zip(chain, wrappers):
            _wrapper_restore(wrapper, entry)
    reasons = list(snap.get("inexact", []))
    if not snap.get("exact"):
        return False, reasons or ["the checkpoint marks this env's state as not exact"]
    if wrappers is None:  # written before wrapper states were saved: only TimeLimit
        for wrapper, elapsed in zip(chain, snap["elapsed_steps"]):
            if elapsed is not None and hasattr(wrapper, "_elapsed_steps"):
                wrapper._elapsed_steps = elapsed
    if "custom" in snap:
        base.restore_state(decode_json(snap["custom"]))
        return True, []
    if "mujoco" in snap:
        problem = _mujoco_restore(base, snap["mujoco"])
        return (True, []) if problem is None else (False, [problem])
    for name, value in snap["attrs"].items():
        value = decode_json(value)
        if name == "state" and snap.get("tuple_state"):
            value = tuple(value)
        setattr(base, name, value)
    return True, []


def restore(env: gym.Env, snap: dict[str, Any]) -> bool:
    """Puts ``env`` (already reset once) back into the state of ``snap``.

    The wrappers' captured state (running statistics, ...) and the base env's
    generator are restored in any case.

    Returns:
      Whether the restore is exact; if not, the caller should reset the env.
    """
    return _restore(env, snap)[0]


def snapshot_vector(envs: gym.vector.SyncVectorEnv) -> list[dict[str, Any]]:
    """:func:`snapshot` of each sub-env of a ``SyncVectorEnv``."""
    return [snapshot(e) for e in envs.envs]


def restore_envs(envs: gym.vector.SyncVectorEnv, snaps: list[dict[str, Any]]) -> Restored:
    """:func:`restore` of each sub-env, with the reasons for any inexactness, per sub-env."""
    if len(snaps) != len(envs.envs):
        note = f"the checkpoint holds {len(snaps)} env states for {len(envs.envs)} envs"
        return Restored([False] * len(envs.envs), [note])
    continued, notes = [], []
    for i, (env, snap) in enumerate(zip(envs.envs, snaps)):
        ok, reasons = _restore(env, snap)
        continued.append(ok)
        if reasons:
            notes.append(f"env {i}: " + "; ".join(reasons))
    return Restored(continued, notes)


def restore_vector(envs: gym.vector.SyncVectorEnv, snaps: list[dict[str, Any]]) -> list[bool]:
    """:func:`restore` of each sub-env; returns which ones were restored exactly."""
    return restore_envs(envs, snaps).continued


def inexact_message(restored: Restored, where: str) -> str | None:
    """The one warning a resumed run gives when its envs were not restored exactly."""
    if not restored.notes:
        return None
    restarted = [i for i, ok in enumerate(restored.continued) if not ok]
    return (f"resuming from {where}: the environment state was not restored exactly, so this "
            "run will not be identical to an uninterrupted one. "
            + " ".join(n.rstrip(".") + "." for n in restored.notes)
            + (f" The interrupted episodes of env(s) {restarted} start anew."
               if restarted else ""))


# ------------------------------------------------------------------ evaluation
def copy_statistics(source: gym.Env, target: gym.Env, freeze: bool = True) -> int:
    """Copies the running statistics of ``source``'s normalisation wrappers into ``target``'s.

    ``NormalizeObservation``'s ``obs_rms`` and ``NormalizeReward``'s
    ``return_rms`` are copied (as new arrays) into the wrapper of the same
    class in ``target`` (the first to the first, and so on), and with
    ``freeze`` their ``update_running_mean`` is turned off there, so an
    evaluation env normalises with the training statistics and does not
    change them. Call it before the target's first reset.

    Returns:
      How many wrappers were copied.
    """
    def stats(env: gym.Env) -> list[tuple[str, gym.Wrapper]]:
        return [(_type_name(w), w) for w in _wrappers(env)[:-1] if _type_name(w) in _STATISTICS]

    copied = 0
    targets = stats(target)
    for name, src in stats(source):
        match = next((k for k, (n, _) in enumerate(targets) if n == name), None)
        if match is None:
            continue
        _, dst = targets.pop(match)
        rms_src, rms_dst = getattr(src, _STATISTICS[name]), getattr(dst, _STATISTICS[name])
        for attr in ("mean", "var", "count"):  # same types as the source's: same arithmetic
            setattr(rms_dst, attr, copy.deepcopy(getattr(rms_src, attr)))
        if freeze:
            dst.update_running_mean = False
        copied += 1
    return copied


def load_statistics(target: gym.Env, snap: dict[str, Any], freeze: bool = True) -> int:
    """:func:`copy_statistics` from a saved :func:`snapshot` instead of a live env.

    For evaluating a checkpoint on an env whose wrappers normalise: pass sub-env 0's
    snapshot (``checkpoint.meta["envs"][0]``). Nothing is loaded when ``target``'s
    wrappers differ from the snapshot's.

    Returns:
      How many wrappers were loaded.
    """
    chain = _wrappers(target)[:-1]
    entries = snap.get("wrappers")
    if entries is None or [e["type"] for e in entries] != [_type_name(w) for w in chain]:
        return 0
    loaded = 0
    for wrapper, entry in zip(chain, entries):
        name = entry["type"]
        if name not in _STATISTICS or "attrs" not in entry:
            continue
        prefix = _STATISTICS[name] + "."
        for path, value in entry["attrs"].items():
            if path.startswith(prefix):
                _set_path(wrapper, path, _decode(value))
        if freeze:
            wrapper.update_running_mean = False
        loaded += 1
    return loaded

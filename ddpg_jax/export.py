"""A trained policy outside training: its description, export to a file, and loading that file.

Three things live here, none of which imports gymnasium:

* the **policy record** that every checkpoint carries in its ``meta.json``
  (:func:`describe_policy`, :func:`policy_record`, :func:`read_policy_record`):
  observation size and layout, the action bounds as the agent saw them (after
  the env factory's wrappers), the observation-normalisation statistics, the
  preset and where the train state lies among the checkpoint's arrays, so a
  policy can be rebuilt from a checkpoint without the env;
* **export** (:func:`export_checkpoint`, the ``ddpg-jax export`` command): the
  deterministic policy, observation normalisation and action bounds inside, as
  one ``jax.export`` serialised function ``act(obs[b, obs_dim]) ->
  action[b, action_dim]`` for any batch size ``b``, lowered for CPU and CUDA,
  plus a JSON sidecar ``FILE.json`` describing it;
* **loading** an exported file (:func:`load_exported`), which needs only jax
  (and flatbuffers, jax's serialisation format): no gymnasium, no env, no
  flax networks, no checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ddpg_jax import normalization
from ddpg_jax.checkpoint import Checkpoint, CheckpointError

#: Version of the ``policy`` record in checkpoints' ``meta.json``.
POLICY_RECORD_VERSION = 1
#: What an exported file's sidecar names itself.
EXPORT_FORMAT = "ddpg_jax.exported_policy"
#: Version of the exported file and its sidecar; a file of a newer version is refused.
EXPORT_FORMAT_VERSION = 1
#: Platforms an exported policy is lowered for (CUDA lowering needs no GPU).
PLATFORMS = ("cpu", "cuda")
SIDECAR_SUFFIX = ".json"
FLATBUFFERS_HINT = "pip install flatbuffers"

_NORMALIZE = inspect.signature(normalization.normalize).parameters
#: Clip and epsilon of :func:`ddpg_jax.normalization.normalize` as the policy uses it.
OBS_NORM_CLIP = float(_NORMALIZE["clip"].default)
OBS_NORM_EPS = float(_NORMALIZE["eps"].default)


class ExportError(CheckpointError):
    """An exported policy cannot be written, or an exported file is missing, foreign,
    corrupted or of a newer format version."""


# ------------------------------------------------------------------ the policy record
def describe_policy(networks: Any, *, train_state: str, seed_axis: bool) -> dict[str, Any]:
    """The static part of a checkpoint's policy record, built once by a driver.

    Args:
      networks: the learner's :class:`~ddpg_jax.networks.Networks`; their bounds
        are the ones the agent acted in (after the env factory's wrappers).
      train_state: where the train state lies in the checkpoint's ``state``
        item (e.g. ``"carry/agent/train_state"``).
      seed_axis: whether its arrays have a leading seed axis.
    """
    low = np.asarray(networks.action_low, np.float32).reshape(-1)
    high = np.asarray(networks.action_high, np.float32).reshape(-1)
    obs_dim = int(networks.obs_dim)
    return {
        "obs_dim": obs_dim,
        "observation": {"layout": "flat", "space": "Box", "shape": [obs_dim], "dtype": "float32"},
        "action_dim": int(low.shape[0]),
        "action_low": [float(x) for x in low],
        "action_high": [float(x) for x in high],
        "train_state": train_state,
        "seed_axis": bool(seed_axis),
    }


def _preset_of(run_dir: str | os.PathLike | None) -> str | None:
    # The command line writes RUN_DIR/config.json (with the preset) before training starts.
    if run_dir is None:
        return None
    try:
        preset = json.loads((Path(run_dir) / "config.json").read_text()).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    return preset if isinstance(preset, str) else None


def obs_norm_record(enabled: bool, obs_stats: Any) -> dict[str, Any]:
    """The observation normalisation as JSON: per seed when the statistics have a seed axis."""
    if not enabled:
        return {"enabled": False}
    out: dict[str, Any] = {"enabled": True, "clip": OBS_NORM_CLIP, "eps": OBS_NORM_EPS}
    if obs_stats is not None:
        count = np.asarray(obs_stats.count, np.float32)
        mean = np.asarray(obs_stats.mean, np.float32)
        var = np.asarray(obs_stats.var, np.float32)
        out.update(count=count.tolist(), mean=mean.tolist(), var=var.tolist())
    return out


def policy_record(description: Mapping[str, Any], config: Any, obs_stats: Any,
                  run_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``policy`` record of one checkpoint's ``meta.json``.

    Args:
      description: from :func:`describe_policy`.
      config: the run's :class:`~ddpg_jax.config.DDPGConfig`.
      obs_stats: the train state's ``obs_stats`` at the save (with the seed
        axis, if any); recorded when ``config.obs_norm``.
      run_dir: the run directory, whose ``config.json`` names the preset when
        the run was started from the command line.
    """
    return {"version": POLICY_RECORD_VERSION, **description,
            "obs_norm": obs_norm_record(config.obs_norm, obs_stats),
            "preset": _preset_of(run_dir)}


def read_policy_record(checkpoint: Checkpoint) -> dict[str, Any] | None:
    """A checkpoint's policy record, checked; ``None`` for a checkpoint written without one.

    Raises:
      CheckpointError: for a malformed record or one of a newer version.
    """
    record = checkpoint.meta.get("policy")
    if record is None:
        return None
    where = f"checkpoint {checkpoint.path}"
    if not isinstance(record, dict):
        raise CheckpointError(f"{where} has an unreadable policy record.")
    version = record.get("version")
    if not isinstance(version, int) or version > POLICY_RECORD_VERSION:
        raise CheckpointError(
            f"{where} has a policy record of version {version!r}; this version of ddpg_jax "
            f"reads policy records up to version {POLICY_RECORD_VERSION}.")
    try:
        obs_dim = int(record["obs_dim"])
        low = np.asarray(record["action_low"], np.float32)
        high = np.asarray(record["action_high"], np.float32)
        ok = (obs_dim >= 1 and low.ndim == 1 and low.shape == high.shape and low.size >= 1
              and record["observation"]["layout"] == "flat"
              and isinstance(record["train_state"], str) and isinstance(record["seed_axis"], bool))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CheckpointError(f"{where} has an unreadable policy record (it needs obs_dim, a "
                              "flat observation layout, action_low/high, train_state and "
                              "seed_axis).")
    return record


# ------------------------------------------------------------------ files
def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of an exported file: ``FILE.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _require_flatbuffers(what: str) -> None:
    try:
        import flatbuffers  # noqa: F401  (jax.export's serialisation format)
    except ImportError:
        raise ExportError(f"{what} needs the flatbuffers package (jax.export's serialisation "
                          f"format): {FLATBUFFERS_HINT}.") from None


def check_out(out: str | os.PathLike, force: bool = False) -> tuple[Path, Path]:
    """Checks where an export would write, before any work; returns (file, sidecar).

    Raises:
      ExportError: for a directory, or an existing file or sidecar without ``force``.
    """
    out = Path(out)
    side = sidecar_path(out)
    if out.is_dir() or side.is_dir():
        raise ExportError(f"--out {str(out)!r} is a directory; accepted: a file name (the "
                          f"policy goes there and its description to {side.name} beside it).")
    existing = [str(p) for p in (out, side) if p.exists()]
    if existing and not force:
        raise ExportError(f"{' and '.join(existing)} already exist(s); refusing to overwrite. "
                          "Accepted: a new file name, or --force to replace the file and its "
                          "sidecar.")
    if out.suffix == SIDECAR_SUFFIX:
        raise ExportError(f"--out {str(out)!r} ends in {SIDECAR_SUFFIX}, the suffix of the "
                          "sidecar; accepted: another name (e.g. policy.jaxexport).")
    return out, side


def _write_atomic(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


# ------------------------------------------------------------------ export
def export_policy(policy: Any, out: str | os.PathLike, *, seed_index: int = 0,
                  force: bool = False, select: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Writes seed ``seed_index`` of a checkpoint's policy as a ``jax.export`` file and sidecar.

    Args:
      policy: a checkpoint's :class:`~ddpg_jax.evaluate.Policy`.
      out: the file to write; its description goes to ``out + ".json"``.
      seed_index: which seed of a multi-seed (JAX backend) checkpoint.
      force: replace an existing file and sidecar.
      select: how the checkpoint was chosen, recorded in the sidecar.

    Returns:
      The file written and the sidecar's contents.

    Raises:
      ExportError: for an existing ``out`` (without ``force``) or a seed index
        the checkpoint does not have; nothing is written then.
    """
    import jax
    import jax.numpy as jnp
    import jaxlib

    from ddpg_jax import __version__

    out, side = check_out(out, force)
    seeds = len(policy.train_states)
    if not 0 <= seed_index < seeds:
        raise ExportError(f"--seed-index {seed_index} is out of range: checkpoint "
                          f"{policy.checkpoint.path} holds {seeds} seed(s); accepted: 0 to "
                          f"{seeds - 1}.")
    _require_flatbuffers("export")
    ts = policy.train_states[seed_index]
    learner = policy.learner
    obs_dim = int(learner.networks.obs_dim)
    low = np.asarray(learner.networks.action_low, np.float32)
    high = np.asarray(learner.networks.action_high, np.float32)

    def act(obs: jax.Array) -> jax.Array:
        return learner.policy(ts, obs)

    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"b, {obs_dim}"), jnp.float32)
    exported = jax.export.export(jax.jit(act), platforms=PLATFORMS)(spec)
    blob = bytes(exported.serialize())
    ck = policy.checkpoint
    record = policy.record or {}
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "file": out.name,
        "size": len(blob),
        "sha256": _sha256(blob),
        "function": "act(obs: float32[batch, obs_dim]) -> action: float32[batch, action_dim]; "
                    "deterministic, observation normalisation and action bounds inside",
        "platforms": list(exported.platforms),
        "calling_convention_version": int(exported.calling_convention_version),
        "obs_dim": obs_dim,
        "action_dim": int(low.shape[0]),
        "observation": {"layout": "flat", "space": "Box", "shape": [obs_dim], "dtype": "float32"},
        "action_low": low.tolist(),
        "action_high": high.tolist(),
        "obs_norm": obs_norm_record(policy.config.obs_norm, ts.obs_stats),
        "env_id": policy.env_id,
        "preset": record.get("preset") or _preset_of(ck.path.parent.parent),
        "config": policy.config.to_dict(),
        "source": {"checkpoint": str(ck.path.absolute()), "step": ck.step,
                   "select": select, "seed_index": seed_index, "num_seeds": seeds,
                   "backend": ck.meta.get("backend"), "eval_return": ck.eval_return},
        "versions": {"ddpg_jax": __version__, "jax": jax.__version__,
                     "jaxlib": jaxlib.__version__},
    }
    text = (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_file, tmp_side = _write_atomic(out, blob), None
    try:
        tmp_side = _write_atomic(side, text)
        os.replace(tmp_file, out)
        os.replace(tmp_side, side)  # last: a file without its sidecar is refused on loading
    except BaseException:
        for tmp in (tmp_file, tmp_side):
            if tmp is not None and tmp.exists():
                tmp.unlink()
        raise
    return out, meta


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                      which: str = "latest", seed_index: int = 0,
                      force: bool = False) -> tuple[Path, dict[str, Any]]:
    """Exports the policy of a checkpoint (or of a run directory's latest or best one).

    Everything is checked before anything is written: ``out`` (see
    :func:`check_out`), the checkpoint (its manifest, format version and
    arrays, through :mod:`ddpg_jax.checkpoint`) and the seed index.

    Raises:
      ExportError, CheckpointError: for bad input; nothing is written then.
    """
    from ddpg_jax.evaluate import load_checkpoint_policy

    check_out(out, force)
    if seed_index < 0:
        raise ExportError(f"--seed-index {seed_index} is not valid; accepted: an integer >= 0.")
    if Path(checkpoint).is_file():
        raise ExportError(f"--checkpoint {str(checkpoint)!r} is a file (an exported policy?); "
                          "accepted: a checkpoint directory or a run directory.")
    policy = load_checkpoint_policy(checkpoint, which=which)
    return export_policy(policy, out, seed_index=seed_index, force=force, select=which)


# ------------------------------------------------------------------ loading an exported file
@dataclasses.dataclass
class ExportedPolicy:
    """A policy read from an exported file (see :func:`load_exported`).

    Attributes:
      path: the exported file.
      meta: its sidecar.
      exported: the deserialised ``jax.export.Exported``.
    """

    path: Path
    meta: dict[str, Any]
    exported: Any

    num_seeds = 1

    @property
    def env_id(self) -> str | None:
        return self.meta.get("env_id")

    @property
    def obs_dim(self) -> int:
        return int(self.meta["obs_dim"])

    @property
    def action_dim(self) -> int:
        return int(self.meta["action_dim"])

    @property
    def action_low(self) -> np.ndarray:
        return np.asarray(self.meta["action_low"], np.float32)

    @property
    def action_high(self) -> np.ndarray:
        return np.asarray(self.meta["action_high"], np.float32)

    @property
    def config(self) -> Any:
        """The training run's :class:`~ddpg_jax.config.DDPGConfig`."""
        from ddpg_jax.config import DDPGConfig

        return DDPGConfig.from_dict(self.meta["config"])

    @property
    def checkpoint(self) -> Checkpoint:
        """This file as a :class:`~ddpg_jax.checkpoint.Checkpoint`-like record (its path,
        the step of the checkpoint it was exported from, the sidecar)."""
        source = self.meta.get("source") or {}
        return Checkpoint(self.path, int(source.get("step") or 0),
                          {"eval_return": source.get("eval_return"), **self.meta})

    def act_fn(self, index: int = 0) -> Callable[[np.ndarray], np.ndarray]:
        """``act(obs) -> action``: numpy in (``[obs_dim]`` or ``[batch, obs_dim]``), numpy out."""
        if index != 0:
            raise IndexError(f"an exported policy holds one seed; index {index} was asked for.")
        import jax

        call = jax.jit(self.exported.call)
        obs_dim = self.obs_dim

        def act(obs: Any) -> np.ndarray:
            x = np.asarray(obs, np.float32)
            single = x.ndim == 1
            if single:
                x = x[None]
            if x.ndim != 2 or x.shape[1] != obs_dim:
                raise ValueError(f"observations of shape {np.shape(obs)}; accepted: "
                                 f"[{obs_dim}] or [batch, {obs_dim}].")
            action = np.asarray(call(x))
            return action[0] if single else action

        return act


def load_exported(path: str | os.PathLike) -> ExportedPolicy:
    """Reads an exported policy file and its sidecar; needs neither gymnasium nor the env.

    Raises:
      ExportError: for a missing file or sidecar, a foreign or corrupted one,
        a file that does not match its sidecar, or a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"exported policy {path} does not exist or is not a file.")
    side = sidecar_path(path)
    if not side.is_file():
        raise ExportError(
            f"exported policy {path} has no sidecar {side}: `ddpg-jax export` writes the file "
            f"and its description FILE{SIDECAR_SUFFIX} side by side, and both are needed; "
            "copy them together, or export again.")
    try:
        meta = json.loads(side.read_text())
        version = meta["format_version"]
        name = meta["format"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ExportError(f"the sidecar {side} of {path} is corrupted (not a ddpg_jax "
                          "exported-policy description).") from None
    if name != EXPORT_FORMAT:
        raise ExportError(f"{side} describes {name!r}, not a ddpg_jax exported policy "
                          f"({EXPORT_FORMAT!r}).")
    if not isinstance(version, int) or version < 1:
        raise ExportError(f"{side} has format version {version!r}, which no ddpg_jax writes.")
    if version > EXPORT_FORMAT_VERSION:
        from ddpg_jax import __version__

        raise ExportError(
            f"exported policy {path} has format version {version}, newer than format version "
            f"{EXPORT_FORMAT_VERSION}, the newest this ddpg_jax ({__version__}) reads; upgrade "
            "ddpg_jax, or export the checkpoint again with this version.")
    blob = path.read_bytes()
    if len(blob) != meta.get("size") or _sha256(blob) != meta.get("sha256"):
        raise ExportError(f"exported policy {path} does not match its sidecar {side} (size or "
                          "SHA-256 differ): the file was truncated, altered or replaced.")
    _require_flatbuffers("loading an exported policy")
    import jax

    try:
        exported = jax.export.deserialize(bytearray(blob))
    except Exception as e:  # flatbuffers and jax raise many kinds; report them as one
        raise ExportError(f"exported policy {path} cannot be deserialised "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:200]}).") from None
    shapes = [tuple(str(d) for d in a.shape) for a in (*exported.in_avals, *exported.out_avals)]
    if shapes != [("b", str(meta.get("obs_dim"))), ("b", str(meta.get("action_dim")))]:
        raise ExportError(f"exported policy {path} has the signature {shapes}, not the "
                          f"[b, obs_dim] -> [b, action_dim] its sidecar {side} describes.")
    return ExportedPolicy(path, meta, exported)

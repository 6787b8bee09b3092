"""Export of a trained policy with ``jax.export`` (the ``ddpg-jax export`` command).

:func:`export_checkpoint` writes the deterministic policy, observation normalisation and
action bounds inside, as one serialised function ``act(obs[b, obs_dim]) -> action[b,
action_dim]`` for any batch size ``b``, lowered for CPU and CUDA, plus a JSON sidecar
``FILE.json`` describing it; :mod:`ddpg_jax.policy.exported` reads it back.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_jax.checkpoints.policy_record import obs_norm_record, preset_of
from ddpg_jax.policy.exported import (
    EXPORT_FORMAT,
    EXPORT_FORMAT_VERSION,
    SIDECAR_SUFFIX,
    ExportError,
    _sha256,
    require_flatbuffers,
    sidecar_path,
)
from ddpg_jax.policy.load import load_checkpoint_policy
from ddpg_jax.version import __version__

#: Platforms an exported policy is lowered for (CUDA lowering needs no GPU).
PLATFORMS = ("cpu", "cuda")


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


def export_policy(policy: Any, out: str | os.PathLike, *, seed_index: int = 0,
                  force: bool = False, select: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Writes seed ``seed_index`` of a checkpoint's policy as a ``jax.export`` file and sidecar.

    Args:
      policy: a checkpoint's :class:`~ddpg_jax.policy.load.Policy`.
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

    out, side = check_out(out, force)
    seeds = len(policy.train_states)
    if not 0 <= seed_index < seeds:
        raise ExportError(f"--seed-index {seed_index} is out of range: checkpoint "
                          f"{policy.checkpoint.path} holds {seeds} seed(s); accepted: 0 to "
                          f"{seeds - 1}.")
    require_flatbuffers("export")
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
        "preset": record.get("preset") or preset_of(ck.path.parent.parent),
        "config": policy.config.to_dict(),
        "source": {"checkpoint": str(ck.path.absolute()), "step": ck.step,
                   "select": select, "seed_index": seed_index, "num_seeds": seeds,
                   "backend": ck.meta.get("backend"), "eval_return": ck.eval_return},
        "versions": {"ddpg_jax": __version__, "jax": jax.__version__,
                     "jaxlib": jaxlib.__version__},
    }
    _write_pair(out, blob, side, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
    return out, meta


def _write_pair(out: Path, blob: bytes, side: Path, text: bytes) -> None:
    """Writes the file and then its sidecar, each whole or not at all."""
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


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                      which: str = "latest", seed_index: int = 0,
                      force: bool = False) -> tuple[Path, dict[str, Any]]:
    """Exports the policy of a checkpoint (or of a run directory's latest or best one).

    Everything is checked before anything is written: ``out`` (see
    :func:`check_out`), the checkpoint (its manifest, format version and
    arrays, through :mod:`ddpg_jax.checkpoints.format`) and the seed index.

    Raises:
      ExportError, CheckpointError: for bad input; nothing is written then.
    """
    check_out(out, force)
    if seed_index < 0:
        raise ExportError(f"--seed-index {seed_index} is not valid; accepted: an integer >= 0.")
    if Path(checkpoint).is_file():
        raise ExportError(f"--checkpoint {str(checkpoint)!r} is a file (an exported policy?); "
                          "accepted: a checkpoint directory or a run directory.")
    policy = load_checkpoint_policy(checkpoint, which=which)
    return export_policy(policy, out, seed_index=seed_index, force=force, select=which)



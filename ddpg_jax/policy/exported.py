"""An exported policy file: its format, its sidecar, and loading it (:func:`load_exported`).

Loading needs only jax (and flatbuffers, jax's serialisation format): no gymnasium, no env,
no flax networks, no checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_jax.checkpoints.format import Checkpoint, CheckpointError
from ddpg_jax.policy.acting import CallablePolicy

#: What an exported file's sidecar names itself.
EXPORT_FORMAT = "ddpg_jax.exported_policy"
#: Version of the exported file and its sidecar; a file of a newer version is refused.
EXPORT_FORMAT_VERSION = 1
SIDECAR_SUFFIX = ".json"
FLATBUFFERS_HINT = "pip install flatbuffers"


class ExportError(CheckpointError):
    """An exported policy cannot be written, or an exported file is missing, foreign,
    corrupted or of a newer format version."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of an exported file: ``FILE.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def require_flatbuffers(what: str) -> None:
    try:
        import flatbuffers  # noqa: F401  (jax.export's serialisation format)
    except ImportError:
        raise ExportError(f"{what} needs the flatbuffers package (jax.export's serialisation "
                          f"format): {FLATBUFFERS_HINT}.") from None


@dataclasses.dataclass
class ExportedPolicy(CallablePolicy):
    """A policy read from an exported file (see :func:`load_exported`); call it to act.

    ``policy(obs)`` (or ``policy.act(obs)``) runs the exported function on one observation
    or a batch (numpy in and out); ``policy.jax_fn`` is the deserialised ``exported.call``,
    for ``jit`` (see :class:`~ddpg_jax.policy.acting.CallablePolicy`).

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
        """This file as a :class:`~ddpg_jax.checkpoints.format.Checkpoint`-like record (its path,
        the step of the checkpoint it was exported from, the sidecar)."""
        source = self.meta.get("source") or {}
        return Checkpoint(self.path, int(source.get("step") or 0),
                          {"eval_return": source.get("eval_return"), **self.meta})

    @functools.cached_property
    def _call(self) -> Callable[[Any], Any]:
        # One bound method, kept, so that jit sees the same function every time.
        return self.exported.call

    @functools.cached_property
    def _compiled(self) -> Callable[[Any], Any]:
        import jax

        return jax.jit(self._call)

    def _act_compiled(self, seed_index: int, obs: np.ndarray) -> Any:
        return self._compiled(obs)

    def _pure_fn(self, seed_index: int) -> Callable[[Any], Any]:
        return self._call

    def for_seed(self, seed_index: int) -> ExportedPolicy:
        self._check_seed(seed_index)  # an exported file holds one seed
        return self


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
        from ddpg_jax.version import __version__

        raise ExportError(
            f"exported policy {path} has format version {version}, newer than format version "
            f"{EXPORT_FORMAT_VERSION}, the newest this ddpg_jax ({__version__}) reads; upgrade "
            "ddpg_jax, or export the checkpoint again with this version.")
    blob = path.read_bytes()
    if len(blob) != meta.get("size") or _sha256(blob) != meta.get("sha256"):
        raise ExportError(f"exported policy {path} does not match its sidecar {side} (size or "
                          "SHA-256 differ): the file was truncated, altered or replaced.")
    require_flatbuffers("loading an exported policy")
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

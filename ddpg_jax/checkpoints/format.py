"""Checkpoints of a training run: orbax-written arrays, JSON metadata, atomic and verified.

A checkpoint is one directory ``RUN_DIR/checkpoints/step_<env steps, 12 digits>/``:

* one orbax PyTree checkpoint per item (``state/``, and ``buffer/`` unless the
  replay buffer is left out), each saved as a flat mapping from the leaf's path
  in the pytree (``train_state/actor_params/MLP_0/Dense_0/kernel``) to a numpy
  array, so a checkpoint can be read back into any pytree with the same paths;
* ``meta.json``: the format version, the run's config, counters and the host
  state that is not an array (Python/NumPy RNG states, gymnasium env states);
* ``manifest.json``, written last: size and SHA-256 of every other file.

The directory is assembled under a hidden temporary name and renamed into
place only once complete, so an interrupted or killed save never shows up as
a checkpoint, and the previous checkpoints stay as they were. Loading checks
the manifest, the format version and every array's path, shape and dtype
against what the caller expects, and raises :class:`CheckpointError` (never a
half-restored state) when anything does not match.

No pickle is used anywhere: arrays go through orbax/tensorstore, everything
else through JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

#: Version of the on-disk layout; a checkpoint with another version is refused.
FORMAT_VERSION = 2
CHECKPOINTS = "checkpoints"
META = "meta.json"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step_(\d{12})$")


class CheckpointError(Exception):
    """A checkpoint is missing, truncated, corrupted, foreign or incompatible."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk.

    Attributes:
      path: its directory.
      step: environment steps done when it was written.
      meta: the contents of its ``meta.json``.
    """

    path: Path
    step: int
    meta: dict[str, Any]

    @property
    def eval_return(self) -> float | None:
        """Evaluation return of the saved parameters, if they were evaluated at this step."""
        value = self.meta.get("eval_return")
        return None if value is None or not math.isfinite(value) else float(value)


# ------------------------------------------------------------------ pytrees <-> flat dicts
def _path_name(path: tuple[Any, ...]) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """Maps each leaf's path (``a/b/0/c``) to the leaf as a host numpy array."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    flat = {_path_name(path): np.asarray(jax.device_get(leaf)) for path, leaf in leaves}
    if len(flat) != len(leaves):
        raise ValueError("two leaves of the pytree have the same path name")
    return flat


#: Traced settings added to the train state's ``hparams`` after checkpoints of this format
#: were first written. A checkpoint without one was trained with it at zero (its default,
#: which is the earlier behaviour: plain Adam), and is read so.
ADDED_HPARAMS = ("actor_adamw_decay", "critic_adamw_decay")


def _added_since(name: str) -> bool:
    head, _, field = name.rpartition("/")
    return field in ADDED_HPARAMS and head.endswith("hparams")


def unflatten(flat: Mapping[str, Any], template: Any, what: str = "checkpoint") -> Any:
    """Rebuilds ``template``'s structure from ``flat``, checking names, shapes and dtypes.

    Args:
      flat: path name -> array, as written by :func:`flatten`.
      template: a pytree of arrays or ``jax.ShapeDtypeStruct`` with the expected layout.
      what: how to name the source in error messages.

    Raises:
      CheckpointError: naming the first missing, extra or mismatched array.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [_path_name(p) for p, _ in leaves]
    # Empty arrays are not written (see save), and settings added since are read as zero:
    # the template alone defines them.
    missing = [n for n, (_, leaf) in zip(names, leaves)
               if n not in flat and math.prod(leaf.shape) != 0 and not _added_since(n)]
    extra = sorted(set(flat) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing arrays {missing[:3]}")
        if extra:
            parts.append(f"unexpected arrays {extra[:3]}")
        raise CheckpointError(
            f"{what} does not match this run's layout ({'; '.join(parts)}): it was written by "
            "an incompatible configuration or version.")
    out = []
    for name, (_, leaf) in zip(names, leaves):
        want_shape, want_dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
        value = np.asarray(flat[name]) if name in flat else np.zeros(want_shape, want_dtype)
        if value.shape != want_shape or value.dtype != want_dtype:
            raise CheckpointError(
                f"{what} holds {name} with shape {value.shape} and dtype {value.dtype}, but this "
                f"run expects shape {want_shape} and dtype {want_dtype}: it was written by an "
                "incompatible configuration (e.g. other network sizes, observation size or "
                "number of envs or seeds).")
        out.append(value)
    return jax.tree.unflatten(jax.tree.structure(template), out)


# ------------------------------------------------------------------ JSON helpers
def encode_json(x: Any) -> Any:
    """Turns numpy values into JSON-able data that :func:`decode_json` restores exactly."""
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.dtype.str, "shape": list(x.shape), "data": x.ravel().tolist()}
    if isinstance(x, np.generic):
        return {"__npscalar__": x.dtype.str, "data": x.item()}
    if isinstance(x, dict):
        return {str(k): encode_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [encode_json(v) for v in x]
    return x


def decode_json(x: Any) -> Any:
    """Inverse of :func:`encode_json`."""
    if isinstance(x, dict):
        if "__ndarray__" in x:
            return np.asarray(x["data"], np.dtype(x["__ndarray__"])).reshape(x["shape"])
        if "__npscalar__" in x:
            return np.dtype(x["__npscalar__"]).type(x["data"])
        return {k: decode_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [decode_json(v) for v in x]
    return x


def _write_json(path: Path, payload: Any) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


# ------------------------------------------------------------------ files and hashes
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def step_dir_name(step: int) -> str:
    return f"step_{step:012d}"


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """Where a run directory keeps its checkpoints."""
    return Path(run_dir) / CHECKPOINTS


# ------------------------------------------------------------------ save / load
def save(directory: str | os.PathLike, step: int, items: Mapping[str, Any],
         meta: Mapping[str, Any]) -> Path:
    """Writes one checkpoint atomically and returns its path.

    Args:
      directory: the checkpoints directory (created if needed).
      step: environment steps done; names the checkpoint.
      items: name -> pytree of arrays (e.g. ``{"state": ..., "buffer": ...}``).
      meta: JSON-able metadata; ``format_version`` and ``step`` are added.

    Returns:
      The final directory. An earlier checkpoint of the same step is replaced.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()  # orbax needs absolute paths
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / step_dir_name(step)
    tmp = directory / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
        for name, tree in items.items():
            # orbax refuses empty arrays (an MJX state holds some, e.g. the contacts of a
            # model without any); they carry no values, so loading rebuilds them from
            # the template's shapes.
            flat = {k: v for k, v in flatten(tree).items() if v.size}
            if flat:  # orbax refuses empty trees
                checkpointer.save(tmp / name, args=ocp.args.PyTreeSave(flat))
        checkpointer.close()
        _write_json(tmp / META, {**encode_json(dict(meta)), "format_version": FORMAT_VERSION,
                                 "step": int(step), "items": sorted(items)})
        files = {str(p.relative_to(tmp)): {"size": p.stat().st_size, "sha256": _sha256(p)}
                 for p in _files(tmp)}
        _write_json(tmp / MANIFEST, {"format_version": FORMAT_VERSION, "files": files})
        _fsync_dir(tmp)
        if final.exists():
            old = directory / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Checks a checkpoint's files against its manifest and returns its metadata.

    Raises:
      CheckpointError: for a missing directory, a foreign directory, missing,
        truncated or altered files, or another format version.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a directory.")
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise CheckpointError(
            f"{path} is not a complete ddpg_jax checkpoint: it has no {MANIFEST} (a foreign "
            "directory, or a save that never finished).")
    try:
        manifest = json.loads(manifest_file.read_text())
        files = manifest["files"]
        version = manifest["format_version"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint {path} has a corrupted {MANIFEST}.") from None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this version of ddpg_jax reads "
            f"format version {FORMAT_VERSION} only.")
    for rel, info in sorted(files.items()):
        f = path / rel
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {rel} is missing.")
        if f.stat().st_size != info["size"]:
            raise CheckpointError(
                f"checkpoint {path} is corrupted: {rel} has {f.stat().st_size} bytes, "
                f"{info['size']} were written (truncated or overwritten).")
        if _sha256(f) != info["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupted: the contents of {rel} "
                                  "changed after it was written.")
    if META not in files:
        raise CheckpointError(f"checkpoint {path} is incomplete: {META} is missing.")
    try:
        meta = json.loads((path / META).read_text())
    except ValueError:
        raise CheckpointError(f"checkpoint {path} has a corrupted {META}.") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta.get('format_version')!r}; this version "
            f"of ddpg_jax reads format version {FORMAT_VERSION} only.")
    return meta


def open_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Verifies ``path`` and returns it as a :class:`Checkpoint` (arrays not loaded)."""
    meta = verify(path)
    return Checkpoint(Path(path), int(meta["step"]), meta)


def load_flat(checkpoint: Checkpoint, name: str) -> dict[str, np.ndarray]:
    """Reads item ``name`` of a verified checkpoint as a flat ``{path name: array}`` dict.

    Raises:
      CheckpointError: if the item is absent or unreadable.
    """
    import orbax.checkpoint as ocp

    if name not in checkpoint.meta.get("items", []):
        raise CheckpointError(f"checkpoint {checkpoint.path} holds no {name!r} "
                              f"(it holds {checkpoint.meta.get('items')}).")
    item_dir = checkpoint.path.absolute() / name
    if not item_dir.exists():
        return {}  # an item without arrays is not written
    try:
        checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
        names = list(checkpointer.metadata(item_dir).item_metadata)
        restore_args = {n: ocp.RestoreArgs(restore_type=np.ndarray) for n in names}
        flat = checkpointer.restore(item_dir, args=ocp.args.PyTreeRestore(
            restore_args=restore_args))
        checkpointer.close()
    except Exception as e:  # orbax/tensorstore raise many kinds; report them as one
        raise CheckpointError(f"checkpoint {checkpoint.path}: {name} cannot be read "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]}).") from None
    return dict(flat)


def load_item(checkpoint: Checkpoint, name: str, template: Any,
              pad_axis: int | None = None) -> Any:
    """Reads item ``name`` of a verified checkpoint into ``template``'s structure.

    Args:
      checkpoint: from :func:`open_checkpoint`.
      name: the item, e.g. ``"state"``.
      template: a pytree of arrays or ``jax.ShapeDtypeStruct`` with the expected
        paths, shapes and dtypes.
      pad_axis: arrays saved with fewer entries than the template along this
        axis (and the same shape otherwise) are padded with zeros: a replay
        buffer is saved only up to its fill level (see :func:`trim_rows`).

    Raises:
      CheckpointError: if the item is absent or does not match ``template``.
    """
    flat = load_flat(checkpoint, name)
    if pad_axis is not None:
        for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
            key, want = _path_name(path), tuple(leaf.shape)
            value = flat.get(key)
            if value is None or value.ndim != len(want) or value.shape == want:
                continue
            short = list(want)
            short[pad_axis] = value.shape[pad_axis]
            if tuple(short) == value.shape and value.shape[pad_axis] < want[pad_axis]:
                padded = np.zeros(want, value.dtype)
                index = (slice(None),) * pad_axis + (slice(0, value.shape[pad_axis]),)
                padded[index] = value
                flat[key] = padded
    return unflatten(flat, template, what=f"checkpoint {checkpoint.path} ({name})")


def trim_rows(data: Any, rows: int, axis: int = 0) -> Any:
    """Keeps the first ``rows`` entries of every leaf along ``axis``.

    A replay buffer is filled from row 0 and never holds anything but zeros
    beyond its fill level, so saving ``trim_rows(buffer.data, size)`` and
    loading with ``pad_axis`` restores it exactly in a fraction of the space.
    """
    index = (slice(None),) * axis + (slice(0, rows),)
    return jax.tree.map(lambda x: np.asarray(x)[index], data)


def select(flat: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of a flat dict under ``prefix/``, with the prefix removed."""
    p = prefix.rstrip("/") + "/"
    return {k[len(p):]: v for k, v in flat.items() if k.startswith(p)}


# ------------------------------------------------------------------ a directory of them
def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of the complete-looking checkpoints in ``directory``, oldest first.

    Hidden temporary directories of unfinished saves are skipped; nothing is
    verified here.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest(directory: str | os.PathLike) -> Path | None:
    """The checkpoint with the most steps in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def best(directory: str | os.PathLike) -> Path | None:
    """The verified checkpoint with the highest evaluation return, or None."""
    best_path, best_value = None, -math.inf
    for _, path in list_checkpoints(directory):
        try:
            value = open_checkpoint(path).eval_return
        except CheckpointError:
            continue
        if value is not None and value > best_value:
            best_path, best_value = path, value
    return best_path


def resolve(path: str | os.PathLike) -> Path:
    """Turns a run directory into its latest checkpoint; a checkpoint directory is kept.

    Raises:
      CheckpointError: if ``path`` is neither, or the run has no checkpoint.
    """
    path = Path(path)
    if (path / MANIFEST).exists() or (path / META).exists() or _STEP_DIR.match(path.name):
        return path
    if (path / CHECKPOINTS).is_dir() or (path / "config.json").is_file():
        found = latest(path / CHECKPOINTS)
        if found is None:
            raise CheckpointError(f"run directory {path} holds no checkpoint.")
        return found
    raise CheckpointError(f"{path} is neither a run directory nor a ddpg_jax checkpoint.")


def _quick_eval_return(path: Path) -> float | None:
    # Reads meta.json without hashing the arrays: pruning must stay cheap.
    try:
        value = json.loads((path / META).read_text()).get("eval_return")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class CheckpointManager:
    """Saves checkpoints into one directory, keeping the last ``keep`` and the best.

    "Best" is the checkpoint with the highest ``meta["eval_return"]``, which a
    trainer sets when the saved parameters were evaluated at that step.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self._remove_stale()

    def _remove_stale(self) -> None:
        # Leftovers of saves or deletions that were killed half-way; never checkpoints.
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                if p.name.startswith((".tmp-", ".old-", ".del-")):
                    shutil.rmtree(p, ignore_errors=True)

    def save(self, step: int, items: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
        """Writes a checkpoint, then deletes those no longer kept. Returns its path."""
        path = save(self.directory, step, items, meta)
        self.prune()
        return path

    def supersede_after(self, step: int) -> list[Path]:
        """Moves checkpoints newer than ``step`` into ``superseded/`` (when a run is
        resumed from an earlier checkpoint, so they are neither resumed from nor
        counted as the latest). Returns their new paths."""
        moved = []
        for s, path in list_checkpoints(self.directory):
            if s > step:
                target_dir = self.directory / "superseded"
                target_dir.mkdir(exist_ok=True)
                target = target_dir / f"{path.name}-{uuid.uuid4().hex[:6]}"
                os.rename(path, target)
                moved.append(target)
        return moved

    def prune(self) -> None:
        found = list_checkpoints(self.directory)
        keep = {p for _, p in found[-self.keep:]}
        scored = [(_quick_eval_return(p), p) for _, p in found]
        scored = [(v, p) for v, p in scored if v is not None]
        if scored:
            keep.add(max(scored, key=lambda vp: vp[0])[1])
        for _, path in found:
            if path not in keep:
                trash = self.directory / f".del-{path.name}-{uuid.uuid4().hex[:8]}"
                os.rename(path, trash)
                shutil.rmtree(trash, ignore_errors=True)

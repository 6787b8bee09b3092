"""The policy record every checkpoint carries in its ``meta.json``.

Observation size and layout, the action bounds as the agent saw them (after the env
factory's wrappers), the observation-normalisation statistics, the preset and where the
train state lies among the checkpoint's arrays, so a policy can be rebuilt from a
checkpoint without the env (:mod:`ddpg_jax.policy.load`).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_jax.agent import normalization
from ddpg_jax.checkpoints.format import Checkpoint, CheckpointError

#: Version of the ``policy`` record in checkpoints' ``meta.json``.
POLICY_RECORD_VERSION = 1

_NORMALIZE = inspect.signature(normalization.normalize).parameters
#: Clip and epsilon of :func:`ddpg_jax.agent.normalization.normalize` as the policy uses it.
OBS_NORM_CLIP = float(_NORMALIZE["clip"].default)
OBS_NORM_EPS = float(_NORMALIZE["eps"].default)


def describe_policy(networks: Any, *, train_state: str, seed_axis: bool) -> dict[str, Any]:
    """The static part of a checkpoint's policy record, built once by a driver.

    Args:
      networks: the learner's :class:`~ddpg_jax.agent.networks.Networks`; their bounds
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


def preset_of(run_dir: str | os.PathLike | None) -> str | None:
    """The preset named by a run directory's ``config.json``: for checkpoints written before
    the policy record held the preset (the command line writes that file first)."""
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
                  preset: str | None = None) -> dict[str, Any]:
    """The ``policy`` record of one checkpoint's ``meta.json``.

    Args:
      description: from :func:`describe_policy`.
      config: the run's :class:`~ddpg_jax.config.DDPGConfig`.
      obs_stats: the train state's ``obs_stats`` at the save (with the seed
        axis, if any); recorded when ``config.obs_norm``.
      preset: the name of the preset the run started from, if the caller said
        (the command line does).
    """
    return {"version": POLICY_RECORD_VERSION, **description,
            "obs_norm": obs_norm_record(config.obs_norm, obs_stats), "preset": preset}


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

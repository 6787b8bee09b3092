"""Loading a saved policy, and its deterministic evaluation on gymnasium environments.

A checkpoint of either backend holds the train state and a ``policy`` record
(:mod:`ddpg_jax.export`) describing the observation size and layout and the
action bounds the agent saw; :func:`load_policy` rebuilds the actor from them
(for a JAX-backend multi-seed run: one actor per seed) without gymnasium or
the env. It also reads a policy exported with ``ddpg-jax export``.
:func:`evaluate_checkpoint` runs episodes without exploration noise (this one
needs gymnasium). By default the episodes use the evaluation seeds of the
training run, so on a gymnasium-backend checkpoint taken at an evaluation
point the mean return equals the one logged then.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from ddpg_jax.checkpoint import (Checkpoint, CheckpointError, best, checkpoint_dir, load_flat,
                                 open_checkpoint, resolve, select, unflatten)
from ddpg_jax.config import DDPGConfig
from ddpg_jax.export import ExportedPolicy, load_exported, read_policy_record
from ddpg_jax.learner import Learner, make_learner
from ddpg_jax.networks import Networks
from ddpg_jax.resume import checkpoint_config

VIDEO_HINT = "pip install 'ddpg-jax[video]'"
#: Where the train state lies in the ``state`` item of checkpoints written without a
#: policy record (format version 2 before the record existed), per backend.
_LEGACY_TRAIN_STATE = {"gymnasium": ("carry/agent/train_state", False),
                       "jax": ("agent/train_state", True)}


@dataclasses.dataclass
class Policy:
    """A saved deterministic policy.

    Attributes:
      checkpoint: where it was read from.
      env_id: the env it was trained on (or the one asked for instead).
      config: the run's config.
      train_states: one train state per seed (one for a gymnasium-backend run).
      learner: the learner the policy belongs to (its ``policy`` normalises
        observations with the saved statistics, then applies the actor).
      record: the checkpoint's policy record (``None`` for a checkpoint written
        before checkpoints carried one).
    """

    checkpoint: Checkpoint
    env_id: str
    config: DDPGConfig
    train_states: list[Any]
    learner: Learner
    record: dict[str, Any] | None = None

    @property
    def networks(self) -> Networks:
        return self.learner.networks

    @property
    def num_seeds(self) -> int:
        return len(self.train_states)

    def act_fn(self, index: int = 0) -> Callable[[np.ndarray], np.ndarray]:
        """The deterministic action of seed ``index`` for a batch of observations."""
        ts = self.train_states[index]
        act = jax.jit(self.learner.policy)
        return lambda obs: np.asarray(act(ts, np.asarray(obs, np.float32)))


def find_checkpoint(path: str | os.PathLike, which: str = "latest") -> Path:
    """A checkpoint directory from a run directory (its latest or best) or itself.

    Raises:
      CheckpointError: if there is none.
    """
    path = Path(path)
    if which == "best" and (path / "checkpoints").is_dir():
        found = best(checkpoint_dir(path))
        if found is None:
            raise CheckpointError(f"run directory {path} has no verified checkpoint with an "
                                  "evaluation return.")
        return found
    return resolve(path)


def _check_env_fits(env_id: str, obs_dim: int, low: np.ndarray, high: np.ndarray) -> None:
    """Refuses an env (asked for instead of the run's) that the policy cannot act in."""
    from ddpg_jax.envcheck import EnvSpecError, check_env, env_factory

    spec = check_env(env_factory(env_id), repr(env_id))
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    if spec.obs_dim != obs_dim or not (np.array_equal(spec.action_low, low)
                                       and np.array_equal(spec.action_high, high)):
        raise EnvSpecError(
            f"env {env_id!r} has observation size {spec.obs_dim} and action bounds "
            f"low={spec.action_low.tolist()} high={spec.action_high.tolist()}, but the policy "
            f"was trained with observation size {obs_dim} and action bounds low={low.tolist()} "
            f"high={high.tolist()}; accepted: an env with the policy's sizes and bounds.")


def load_checkpoint_policy(path: str | os.PathLike, env_id: str | None = None,
                           which: str = "latest") -> Policy:
    """:func:`load_policy` for a checkpoint or run directory (not an exported file)."""
    checkpoint = open_checkpoint(find_checkpoint(path, which))
    meta = checkpoint.meta
    config = checkpoint_config(checkpoint)
    record = read_policy_record(checkpoint)
    run_env = meta.get("env_id")
    if record is not None:
        obs_dim = int(record["obs_dim"])
        low = np.asarray(record["action_low"], np.float32)
        high = np.asarray(record["action_high"], np.float32)
        if env_id is not None and env_id != run_env:
            _check_env_fits(env_id, obs_dim, low, high)
        prefix, seed_axis = record["train_state"], record["seed_axis"]
    else:  # written before checkpoints described their policy: ask the env, as then
        from ddpg_jax.envcheck import check_env, env_factory

        name = env_id or run_env
        spec = check_env(env_factory(name), repr(name))
        obs_dim, low, high = spec.obs_dim, spec.action_low, spec.action_high
        try:
            prefix, seed_axis = _LEGACY_TRAIN_STATE[meta.get("backend")]
        except KeyError:
            raise CheckpointError(f"checkpoint {checkpoint.path} names no known backend "
                                  f"({meta.get('backend')!r}).") from None
    learner = make_learner(config, obs_dim, low, high)
    template = jax.eval_shape(learner.gradient_step.init, jax.random.PRNGKey(0))
    flat = select(load_flat(checkpoint, "state"), prefix)
    what = f"checkpoint {checkpoint.path} (train state)"
    if seed_axis:
        seeds = int(meta.get("num_seeds", 1))
        template = jax.tree.map(
            lambda t: jax.ShapeDtypeStruct((seeds,) + tuple(t.shape), t.dtype), template)
        batched = unflatten(flat, template, what=what)
        states = [jax.tree.map(lambda x: x[i], batched) for i in range(seeds)]
    else:
        states = [unflatten(flat, template, what=what)]
    return Policy(checkpoint, env_id or run_env, config, states, learner, record)


def load_policy(path: str | os.PathLike, env_id: str | None = None,
                which: str = "latest") -> Policy | ExportedPolicy:
    """Reads a saved policy: a checkpoint, a run directory's latest/best one, or an exported file.

    Acting needs neither gymnasium nor the env: the policy is rebuilt from
    the checkpoint's own policy record (observation size, action bounds as the
    agent saw them, config), or deserialised from an exported file. A
    checkpoint written before checkpoints carried a policy record is rebuilt
    from its env, as before (which needs gymnasium and the env).

    Args:
      path: a checkpoint directory, a run directory, or a file written by
        ``ddpg-jax export`` (:func:`ddpg_jax.export.export_checkpoint`).
      env_id: the gymnasium env to evaluate on instead of the run's; it must
        have the policy's observation size and action bounds (checked here,
        with gymnasium).
      which: for a run directory, ``"latest"`` or ``"best"``.

    Returns:
      A :class:`Policy` (checkpoint) or :class:`~ddpg_jax.export.ExportedPolicy`;
      both have ``act_fn(index=0) -> act(obs) -> action``, ``env_id``, ``config``,
      ``num_seeds`` and ``checkpoint``.

    Raises:
      CheckpointError: for a missing, corrupted or foreign checkpoint or
        exported file (:class:`~ddpg_jax.export.ExportError` for the latter).
      EnvSpecError: for an unknown env id or one whose spaces do not fit.
    """
    if Path(path).is_file():
        policy = load_exported(path)
        if env_id is not None and env_id != policy.env_id:
            _check_env_fits(env_id, policy.obs_dim, policy.action_low, policy.action_high)
            policy.meta = {**policy.meta, "env_id": env_id}
        return policy
    return load_checkpoint_policy(path, env_id, which)


def _episodes_recorded(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int,
                       seed: int, video_dir: Path, prefix: str) -> np.ndarray:
    """Runs episodes one by one in a single env wrapped in ``RecordVideo``.

    Episode ``i`` is reset with seed ``seed + i``, as sub-env ``i`` of
    :func:`~ddpg_jax.drivers.host.evaluate_policy`, so the returns match.
    """
    import gymnasium as gym

    env = gym.wrappers.RecordVideo(gym.make(env_id, render_mode="rgb_array"), str(video_dir),
                                   episode_trigger=lambda _: True, name_prefix=prefix,
                                   disable_logger=True)
    returns = np.zeros(episodes, np.float64)
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                action = act(np.asarray(obs, np.float32)[None])[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns


def video_available() -> bool:
    try:
        import moviepy  # noqa: F401
    except ImportError:
        return False
    return True


def evaluate_checkpoint(policy: Policy | ExportedPolicy, episodes: int | None = None,
                        seed: int | None = None,
                        video_dir: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Returns, per seed of the policy, the returns of ``episodes`` deterministic episodes.

    Needs gymnasium and the policy's env (``policy.env_id``).

    Args:
      policy: from :func:`load_policy` (a checkpoint's or an exported file's).
      episodes: default: the run's ``eval_episodes``.
      seed: seed of the first episode; default: the run's evaluation seed.
      video_dir: record every episode there (needs the ``video`` extra).
    """
    from ddpg_jax.drivers.host import EVAL_SEED_OFFSET, evaluate_policy
    from ddpg_jax.envcheck import env_factory

    episodes = policy.config.eval_episodes if episodes is None else episodes
    seed = policy.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    factory = env_factory(policy.env_id)
    # The training envs' wrapper statistics (e.g. NormalizeObservation), frozen, as in training.
    snaps = getattr(getattr(policy, "checkpoint", None), "meta", {}).get("envs") or []
    prepare = None
    if snaps:
        from ddpg_jax import gym_state

        def prepare(env: Any) -> None:
            gym_state.load_statistics(env, snaps[0])

    out = []
    for i in range(policy.num_seeds):
        act = policy.act_fn(i)
        if video_dir is not None:
            prefix = f"seed{i}" if policy.num_seeds > 1 else "eval"
            out.append(_episodes_recorded(act, policy.env_id, episodes, seed, Path(video_dir),
                                          prefix))
        else:
            out.append(evaluate_policy(lambda _, obs: act(obs), None, factory, episodes, seed,
                                       prepare=prepare))
    return out

"""Deterministic evaluation of a saved policy on gymnasium environments.

A checkpoint of either backend holds the train state; :func:`load_policy`
rebuilds the actor from it (for a JAX-backend multi-seed run: one actor per
seed) and :func:`evaluate_checkpoint` runs episodes without exploration noise.
By default the episodes use the evaluation seeds of the training run, so on a
gymnasium-backend checkpoint taken at an evaluation point the mean return
equals the one logged then.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import jax
import numpy as np

from ddpg_jax.checkpoint import (Checkpoint, CheckpointError, best, checkpoint_dir, load_flat,
                                 open_checkpoint, resolve, select, unflatten)
from ddpg_jax.config import DDPGConfig
from ddpg_jax.drivers.host import EVAL_SEED_OFFSET, evaluate_policy
from ddpg_jax.envcheck import check_env, env_factory
from ddpg_jax.learner import Learner, make_learner
from ddpg_jax.networks import Networks
from ddpg_jax.resume import checkpoint_config

VIDEO_HINT = "pip install 'ddpg-jax[video]'"


@dataclasses.dataclass
class Policy:
    """A saved deterministic policy.

    Attributes:
      checkpoint: where it was read from.
      env_id: the env it was trained on.
      config: the run's config.
      train_states: one train state per seed (one for a gymnasium-backend run).
      learner: the learner the policy belongs to (its ``policy`` normalises
        observations with the saved statistics, then applies the actor).
    """

    checkpoint: Checkpoint
    env_id: str
    config: DDPGConfig
    train_states: list[Any]
    learner: Learner

    @property
    def networks(self) -> Networks:
        return self.learner.networks

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


def load_policy(path: str | os.PathLike, env_id: str | None = None,
                which: str = "latest") -> Policy:
    """Reads the policy of a checkpoint (or of a run directory's latest/best one).

    Args:
      path: a checkpoint directory or a run directory.
      env_id: the gymnasium env to build the actor for; default: the run's.
      which: for a run directory, ``"latest"`` or ``"best"``.

    Raises:
      CheckpointError: for a missing, corrupted or foreign checkpoint.
      EnvSpecError: for an unknown env id or one whose spaces do not fit.
    """
    checkpoint = open_checkpoint(find_checkpoint(path, which))
    meta = checkpoint.meta
    config = checkpoint_config(checkpoint)
    env_id = env_id or meta.get("env_id")
    spec = check_env(env_factory(env_id), repr(env_id))
    learner = make_learner(config, spec.obs_dim, spec.action_low, spec.action_high)
    template = jax.eval_shape(learner.gradient_step.init, jax.random.PRNGKey(0))
    flat = load_flat(checkpoint, "state")
    if meta.get("backend") == "jax":
        seeds = int(meta.get("num_seeds", 1))
        template = jax.tree.map(
            lambda t: jax.ShapeDtypeStruct((seeds,) + tuple(t.shape), t.dtype), template)
        batched = unflatten(select(flat, "agent/train_state"), template,
                            what=f"checkpoint {checkpoint.path} (train state)")
        states = [jax.tree.map(lambda x: x[i], batched) for i in range(seeds)]
    else:
        states = [unflatten(select(flat, "carry/agent/train_state"), template,
                            what=f"checkpoint {checkpoint.path} (train state)")]
    return Policy(checkpoint, env_id, config, states, learner)


def _episodes_recorded(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int,
                       seed: int, video_dir: Path, prefix: str) -> np.ndarray:
    """Runs episodes one by one in a single env wrapped in ``RecordVideo``.

    Episode ``i`` is reset with seed ``seed + i``, as sub-env ``i`` of
    :func:`~ddpg_jax.drivers.host.evaluate_policy`, so the returns match.
    """
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


def evaluate_checkpoint(policy: Policy, episodes: int | None = None, seed: int | None = None,
                        video_dir: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Returns, per seed of the policy, the returns of ``episodes`` deterministic episodes.

    Args:
      policy: from :func:`load_policy`.
      episodes: default: the run's ``eval_episodes``.
      seed: seed of the first episode; default: the run's evaluation seed.
      video_dir: record every episode there (needs the ``video`` extra).
    """
    episodes = policy.config.eval_episodes if episodes is None else episodes
    seed = policy.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    factory = env_factory(policy.env_id)
    out = []
    for i in range(len(policy.train_states)):
        act = policy.act_fn(i)
        if video_dir is not None:
            prefix = f"seed{i}" if len(policy.train_states) > 1 else "eval"
            out.append(_episodes_recorded(act, policy.env_id, episodes, seed, Path(video_dir),
                                          prefix))
        else:
            out.append(evaluate_policy(lambda _, obs: act(obs), None, factory, episodes, seed))
    return out

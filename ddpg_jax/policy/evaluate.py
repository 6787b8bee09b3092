"""Deterministic evaluation of a saved policy: :func:`evaluate_checkpoint`.

Episodes run without exploration noise: on gymnasium envs, or, for the JAX env specs that
have no gymnasium counterpart (``playground:TASK``, ``brax:NAME``, ``gymnax:NAME``, and
``module:function`` of JAX-backend runs; see :func:`~ddpg_jax.policy.load.uses_jax_env`),
compiled on the JAX env itself. By default the episodes use the evaluation seeds (or, on a
JAX env, the evaluation key) of the training run, so on a checkpoint taken at an
evaluation point the mean return equals the one logged then.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ddpg_jax.policy.exported import ExportedPolicy
from ddpg_jax.policy.load import Policy, _backend_of, uses_jax_env

VIDEO_HINT = "pip install 'ddpg-jax[video]'"


def _episodes_recorded(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int,
                       seed: int, video_dir: Path, prefix: str) -> np.ndarray:
    """Runs episodes one by one in a single env wrapped in ``RecordVideo``.

    Episode ``i`` is reset with seed ``seed + i``, as sub-env ``i`` of
    :func:`~ddpg_jax.envs.gymnasium_episodes.evaluate_policy`, so the returns match.
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

    Needs the policy's env (``policy.env_id``): gymnasium's, or for a JAX env
    spec (:func:`uses_jax_env`) the JAX env, on which all episodes run side by
    side in one compiled program.

    Args:
      policy: from :func:`load_policy` (a checkpoint's or an exported file's).
      episodes: default: the run's ``eval_episodes``.
      seed: seed of the first episode; default: the run's evaluation seed. On a
        JAX env: the episodes start from ``jax.random.PRNGKey(seed)``'s
        states; by default a checkpoint's from those of the run's own
        evaluations, an exported file's from its run's evaluation seed.
      video_dir: record every episode there (needs the ``video`` extra;
        gymnasium envs only).

    Raises:
      EnvSpecError: for a video of a JAX env, or an env that cannot be built.
    """
    from ddpg_jax.envs.gymnasium_check import env_factory
    from ddpg_jax.envs.gymnasium_episodes import EVAL_SEED_OFFSET, evaluate_policy

    episodes = policy.config.eval_episodes if episodes is None else episodes
    if uses_jax_env(policy.env_id, _backend_of(policy)):
        if video_dir is not None:
            from ddpg_jax.envs.core import EnvSpecError

            raise EnvSpecError(f"videos are recorded with gymnasium's RecordVideo; "
                               f"{policy.env_id!r} is a JAX env, which has no gymnasium "
                               "renderer here. Accepted: evaluation without --video.")
        return _evaluate_on_jax_env(policy, episodes, seed)
    seed = policy.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    factory = env_factory(policy.env_id)
    # The training envs' wrapper statistics (e.g. NormalizeObservation), frozen, as in training.
    snaps = getattr(getattr(policy, "checkpoint", None), "meta", {}).get("envs") or []
    prepare = None
    if snaps:
        from ddpg_jax.envs import gymnasium_state as gym_state

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


def _jax_eval_keys(policy: Policy | ExportedPolicy, seed: int | None) -> list[jax.Array]:
    """One evaluation key per seed of the policy (see :func:`evaluate_checkpoint`)."""
    from ddpg_jax.envs.gymnasium_episodes import EVAL_SEED_OFFSET

    saved = getattr(policy, "eval_keys", None)
    if seed is None and saved is not None and len(saved) == policy.num_seeds:
        return [jax.numpy.asarray(k) for k in saved]
    # An exported file (or a checkpoint without keys) starts from its evaluation seed.
    seed = policy.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    return [jax.random.PRNGKey(seed)] * policy.num_seeds


def _evaluate_on_jax_env(policy: Policy | ExportedPolicy, episodes: int,
                         seed: int | None) -> list[np.ndarray]:
    """Deterministic episodes on the JAX env of ``policy.env_id``, compiled once for all seeds."""
    from ddpg_jax.agent.learner import evaluate_episodes
    from ddpg_jax.envs.specs import from_spec

    env, params, _ = from_spec(policy.env_id)
    keys = _jax_eval_keys(policy, seed)
    if isinstance(policy, ExportedPolicy):
        act = policy.jax_fn
        run = jax.jit(lambda key: evaluate_episodes(act, key, env, params, episodes))
        return [np.asarray(run(keys[0]), np.float64)]
    learner = policy.learner
    run = jax.jit(lambda ts, key: learner.evaluate(ts, key, env, params, episodes))
    return [np.asarray(run(ts, k), np.float64) for ts, k in zip(policy.train_states, keys)]

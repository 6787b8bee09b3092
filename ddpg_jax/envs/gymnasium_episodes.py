"""Vector envs of gymnasium envs, and deterministic evaluation episodes on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ddpg_jax.agent.state import Array
from ddpg_jax.envs.gymnasium_check import EnvFactory

if TYPE_CHECKING:  # gymnasium is imported where it is used: `import ddpg_jax` stays without it
    import gymnasium as gym

#: Seed offset of the evaluation envs, so they never replay the training envs' episodes.
EVAL_SEED_OFFSET = 1_000_003


def vector_env(factory: EnvFactory, num_envs: int) -> gym.vector.VectorEnv:
    import gymnasium as gym

    return gym.vector.SyncVectorEnv(
        [factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def evaluate_policy(act: Callable[[Any, np.ndarray], Array], policy: Any, factory: EnvFactory,
                    episodes: int, seed: int,
                    prepare: Callable[[gym.Env], Any] | None = None) -> np.ndarray:
    """Runs ``episodes`` deterministic episodes (one per sub-env) and returns their returns.

    Args:
      act: ``act(policy, obs[episodes, obs_dim]) -> actions``.
      policy: what ``act`` acts with (e.g. the train state).
      factory: makes one env.
      episodes: number of episodes, run side by side.
      seed: seed of the first env (``seed + i`` for the others); the same at
        every call, so successive evaluations face the same initial states.
      prepare: called with each new sub-env before its first reset (the training
        loop copies its envs' normalisation statistics in, frozen).
    """
    envs = vector_env(factory, episodes)
    try:
        if prepare is not None:
            for env in envs.envs:
                prepare(env)
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes, np.float64)
        running = np.ones(episodes, bool)
        while running.any():
            action = np.asarray(act(policy, np.asarray(obs, np.float32)))
            obs, reward, terminated, truncated, _ = envs.step(action)
            returns += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()

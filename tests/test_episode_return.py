"""``train_episode_return_mean`` means one thing in both drivers: checked on scripted episodes."""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import ddpg_jax
from ddpg_jax import DDPGConfig
from ddpg_jax.drivers.compiled import make_loop
from ddpg_jax.envs import Box, Environment


# Every env plays the same episodes whatever the actions: episode k lasts
# 2 + k % 3 steps and pays k + 1 per step, so returns differ from episode to
# episode and the last one is not the mean of the last few.
def episode_length(k: int) -> int:
    return 2 + k % 3


def expected_return(env_steps_per_env: int) -> float | None:
    """Return of the last episode finished within the first ``env_steps_per_env`` steps."""
    done_steps, k, last = 0, 0, None
    while done_steps + episode_length(k) <= env_steps_per_env:
        done_steps += episode_length(k)
        last = float((k + 1) * episode_length(k))
        k += 1
    return last


@struct.dataclass
class EpisodeState:
    k: jax.Array  # episodes finished so far
    t: jax.Array
    time: jax.Array


@struct.dataclass
class EpisodeParams:
    max_steps_in_episode: int = 10


class ScriptedEpisodes(Environment):
    """The episodes above as a JAX env; its own ``step`` carries the episode count across resets."""

    @property
    def default_params(self):
        return EpisodeParams()

    def observation_space(self, params=None):
        return Box.from_bounds(-jnp.inf, jnp.inf, (2,))

    def action_space(self, params=None):
        return Box.from_bounds(-1.0, 1.0, (1,))

    def reset_env(self, key, params):
        zero = jnp.zeros((), jnp.int32)
        return jnp.zeros(2, jnp.float32), EpisodeState(zero, zero, zero)

    def step_env(self, key, state, action, params):  # unused: step is overridden
        raise NotImplementedError

    def step(self, key, state, action, params=None):
        t = state.t + 1
        done = t >= 2 + state.k % 3
        reward = (state.k + 1).astype(jnp.float32)
        final = jnp.stack([t, state.k]).astype(jnp.float32)
        new = EpisodeState(jnp.where(done, state.k + 1, state.k), jnp.where(done, 0, t),
                           jnp.where(done, 0, t))
        obs = jnp.stack([new.t, new.k]).astype(jnp.float32)
        return obs, new, reward, done, jnp.zeros((), bool), {"final_observation": final}


class GymScriptedEpisodes(gym.Env):
    """The same episodes as a gymnasium env."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.k = -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.t = self.k + 1, 0
        return np.array([self.t, self.k], np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t >= episode_length(self.k)
        return np.array([self.t, self.k], np.float32), float(self.k + 1), done, False, {}


def test_both_drivers_report_the_same_training_episode_return():
    config = DDPGConfig(total_steps=80, num_envs=2, warmup_steps=10, eval_every=20,
                        hidden_sizes=(8,), batch_size=4, buffer_size=200, eval_episodes=1)
    figures = {}
    for name, env in [("gymnasium", GymScriptedEpisodes),
                      ("jax", (ScriptedEpisodes(), EpisodeParams()))]:
        chunks: list[dict] = []
        result = ddpg_jax.train(config, env, log=None, on_chunk=chunks.append)
        figures[name] = ([(r["env_steps"], r["train_episode_return_mean"])
                          for r in result.evaluations],
                         [(r["env_steps"], r["train_episode_return_mean"]) for r in chunks])
    steps = [20, 40, 60, 80]
    want = [(s, expected_return(s // 2)) for s in steps]
    # By hand: episodes end after 2, 5, 9, 11, 14, 18, 20, 23, 27, 29, ..., 38 steps per env.
    assert want == [(20, 12.0), (40, 14.0), (60, 20.0), (80, 26.0)]
    assert figures["gymnasium"] == figures["jax"] == (want, want)
    # The compiled driver's own output says the same.
    out = jax.jit(ddpg_jax.make_train(config, ScriptedEpisodes()))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(out.metrics["train_episode_return"], [w for _, w in want])


def test_envs_without_a_finished_episode_are_left_out():
    from ddpg_jax.records.metrics import train_return

    assert train_return(np.array([np.nan, np.nan])) is None
    assert train_return(np.array([3.0, np.nan])) == 3.0
    assert train_return(np.array([[1.0, np.nan], [2.0, 6.0]])) == pytest.approx(3.0)


def test_compiled_evaluation_leaves_out_envs_without_a_finished_episode():
    config = DDPGConfig(total_steps=20, num_envs=2, warmup_steps=4, hidden_sizes=(8,),
                        batch_size=4, buffer_size=20, eval_episodes=1)
    loop = make_loop(config, ScriptedEpisodes())
    state = loop.init(jax.random.PRNGKey(0))
    ev = jax.jit(loop.evaluate)(state._replace(last_return=jnp.array([jnp.nan, 4.0])))
    assert float(ev["train_episode_return"]) == 4.0

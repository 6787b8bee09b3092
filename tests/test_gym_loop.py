"""The gymnasium host loop: episode boundaries, bounds, tracing, determinism, learning."""

import chex
import gymnasium as gym
import jax
import numpy as np
import pytest
from test_drivers import check_episode_ends

from ddpg_jax import DDPGConfig, train

SMALL = dict(hidden_sizes=(16, 16), batch_size=16, buffer_size=512, warmup_steps=40,
             eval_every=0, eval_episodes=2)


class CounterEnv(gym.Env):
    """obs = [t, 100 + episode]; ends at t == 3, by termination or (via TimeLimit) truncation.

    The episode number in the observation makes a reset observation
    distinguishable from the final observation of the previous episode.
    """

    def __init__(self, terminate: bool):
        self.terminate = terminate
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.episode = -1

    def _obs(self):
        return np.array([self.t, 100 + self.episode], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate and self.t == 3
        return self._obs(), 1.0, terminated, False, {}


def counter_factory(terminate: bool):
    def make():
        env = CounterEnv(terminate)
        return env if terminate else gym.wrappers.TimeLimit(env, max_episode_steps=3)
    return make


@pytest.mark.parametrize("terminate", [False, True])
@pytest.mark.parametrize("num_envs", [1, 3])
def test_episode_ends_are_stored_with_real_final_observation(terminate, num_envs):
    config = DDPGConfig(total_steps=120, num_envs=num_envs, **SMALL)
    result = train(config, counter_factory(terminate), log=None)
    data = jax.tree.map(np.asarray, result.buffer.data)
    n = int(result.buffer.size)
    assert n == min(config.total_steps, config.buffer_size)
    # The same checks as the JAX driver's (tests/test_drivers.py).
    check_episode_ends(data.obs[:n], data.next_obs[:n], data.terminated[:n], terminate)


class BoxedEnv(gym.Env):
    """2-D actions with asymmetric bounds; records every action it receives."""

    low = np.array([0.0, -1.0], np.float32)
    high = np.array([3.0, 5.0], np.float32)

    def __init__(self, log):
        self.log = log
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(self.low, self.high, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.log.append(np.array(action))
        # Reward favours the upper corner, which pushes the policy to the bounds.
        reward = float(np.sum(action))
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), reward, False, False, {}


def test_actions_respect_asymmetric_bounds():
    log: list = []
    config = DDPGConfig(total_steps=600, noise_scale=2.0, actor_lr=1e-2, **SMALL)
    result = train(config, lambda: gym.wrappers.TimeLimit(BoxedEnv(log), 50), log=None)
    actions = np.stack(log)
    assert np.all(actions >= BoxedEnv.low) and np.all(actions <= BoxedEnv.high)
    # The range beyond [-1, 1] is used, so nothing clipped to [-1, 1] on the way.
    assert actions[:, 0].max() > 2.5 and actions[:, 1].max() > 4.0
    stored = np.asarray(result.buffer.data.action)[: int(result.buffer.size)]
    assert np.all(stored >= BoxedEnv.low) and np.all(stored <= BoxedEnv.high)
    # The deterministic policy learned to push to the upper bounds and stays inside them.
    obs = np.random.default_rng(0).uniform(-1, 1, (32, 3)).astype(np.float32)
    mu = np.asarray(result.networks.actor_apply(result.train_state.actor_params, obs))
    assert np.all(mu >= BoxedEnv.low) and np.all(mu <= BoxedEnv.high)
    assert np.all(mu > 0.8 * BoxedEnv.high)


def trace_once_jit(monkeypatch) -> list:
    """Makes every function of ddpg_jax that is jitted fail on a second trace; lists them."""
    real_jit = jax.jit
    jitted: list = []

    def jit(fn, *args, **kwargs):
        if getattr(fn, "__module__", "").startswith("ddpg_jax"):
            jitted.append(fn.__name__)
            fn = chex.assert_max_traces(fn, n=1)
        return real_jit(fn, *args, **kwargs)

    monkeypatch.setattr(jax, "jit", jit)
    return jitted


def test_compiled_functions_trace_once(monkeypatch):
    jitted = trace_once_jit(monkeypatch)
    config = DDPGConfig(total_steps=300, num_envs=2, **{**SMALL, "eval_every": 100})
    result = train(config, "Pendulum-v1", log=None)
    # warm_step is jitted but, per step, never called (the warm-up is added in one call).
    assert sorted(jitted) == ["act", "add", "init", "policy", "step", "warm_step"]
    assert len(result.evaluations) == 3
    assert [r["env_steps"] for r in result.evaluations] == [100, 200, 300]
    assert int(result.train_state.step) == 300 - 40


def test_the_episode_schedule_traces_its_warmup_step_once(monkeypatch):
    """With the 2018 loop the warm-up goes through warm_step, one call per vector step."""
    jitted = trace_once_jit(monkeypatch)
    config = DDPGConfig(total_steps=900, num_envs=2, update_schedule="episode",
                        **{**SMALL, "warmup_steps": 440, "buffer_size": 1000})
    result = train(config, "Pendulum-v1", log=None)
    assert sorted(jitted) == ["act", "add", "init", "policy", "step", "warm_step"]
    # Both envs end their 200-step episodes at vector steps 200 (in the warm-up, which is
    # 220 vector steps) and 400: bursts of 400 gradient steps each.
    assert int(result.train_state.step) == 800


def test_same_seed_same_run_and_different_seeds_differ():
    config = DDPGConfig(total_steps=200, **SMALL)
    a = train(config, "Pendulum-v1", log=None)
    b = train(config, "Pendulum-v1", log=None)
    c = train(config.replace(seed=1), "Pendulum-v1", log=None)
    for x, y in zip(jax.tree.leaves(a.train_state.actor_params),
                    jax.tree.leaves(b.train_state.actor_params)):
        np.testing.assert_array_equal(x, y)
    assert a.summary["final_eval_return_mean"] == b.summary["final_eval_return_mean"]
    assert not all(np.array_equal(x, y) for x, y in zip(
        jax.tree.leaves(a.train_state.actor_params), jax.tree.leaves(c.train_state.actor_params)))


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step from a fixed observation; the episode length is set by the caller."""

    def __init__(self, terminate_after):
        self.terminate_after = terminate_after
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.5, -0.5], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate_after is not None and self.t >= self.terminate_after
        return np.array([0.5, -0.5], np.float32), 1.0, terminated, False, {}


@pytest.mark.parametrize("terminate_after, expected_q", [(None, 10.0), (1, 1.0)])
def test_probe_q_reaches_its_fixed_point(terminate_after, expected_q):
    """Q of a constant reward is 1 / (1 - gamma) when truncation bootstraps, 1 when it terminates.

    The time limit of 5 steps would pull Q down towards
    (1 - 0.9^5) / (1 - 0.9) ~ 4.1 if truncation were mistaken for termination.
    """
    config = DDPGConfig(total_steps=3000, gamma=0.9, tau=0.05, critic_lr=3e-3, **SMALL)

    def make():
        return gym.wrappers.TimeLimit(ConstantRewardEnv(terminate_after), max_episode_steps=5)

    result = train(config, make, log=None)
    obs = np.array([[0.5, -0.5]] * 5, np.float32)
    actions = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    q = np.asarray(result.networks.critic_apply(result.train_state.critic_params, obs, actions))
    np.testing.assert_allclose(q, expected_q, rtol=0.05)


def test_short_pendulum_learning_check():
    """The default agent improves Pendulum well past a random policy (~ -1200) in 5k steps."""
    config = DDPGConfig(total_steps=5000, eval_every=0, eval_episodes=5)
    result = train(config, "Pendulum-v1", log=None)
    assert result.summary["final_eval_return_mean"] > -400, result.summary


def test_observation_statistics_follow_the_collected_stream():
    config = DDPGConfig(total_steps=300, obs_norm=True, **SMALL)
    result = train(config, "Pendulum-v1", log=None)
    stats = result.train_state.obs_stats
    seen = np.asarray(result.buffer.data.obs)[:300]  # every observation acted on, in order
    assert float(stats.count) == 300
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-4)

"""``update_schedule="episode"`` is the TD3 authors' 2018 loop, step for step.

The authors' 2018 ``main.py`` (github.com/sfujim/TD3 at the camera-ready commit) trains at
every episode end from the first on, random-action warm-up episodes included
(``if total_timesteps != 0: policy.train(replay_buffer, episode_timesteps)``), and its
``TD3.train`` counts the policy delay within each call (``for it in range(iterations):
... if it % policy_freq == 0``). :func:`authors_2018_loop` is that loop in plain Python; an
env whose episodes end at known steps gives the bursts it expects, and the learner and both
drivers must run the same number of gradient steps at each episode end, with the actor
moving on the same steps of each burst.
"""

from __future__ import annotations

import math

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import ddpg_jax
from ddpg_jax import DDPGConfig, Transition
from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent.learner import make_learner
from ddpg_jax.config import ConfigError
from ddpg_jax.envs.core import Box, Environment

#: The fake envs' episode lengths, in turn: every episode ends by termination.
LENGTHS = (7, 12, 5, 9, 4, 11)
LOW, HIGH = np.array([-1.0], np.float32), np.array([1.0], np.float32)


def authors_2018_loop(lengths, total, policy_delay):
    """The 2018 ``main.py`` loop, reduced to when it trains: a list of bursts, one per
    episode end, each ``(env_steps, actor_flags)`` with one flag per gradient step."""
    bursts, total_timesteps, episode_timesteps, episode, done = [], 0, 0, 0, True
    while total_timesteps < total:
        if done:
            if total_timesteps != 0:  # TD3.train(replay_buffer, episode_timesteps)
                flags = [it % policy_delay == 0 for it in range(episode_timesteps)]
                bursts.append((total_timesteps, flags))
            episode_timesteps, done = 0, False
            length, episode = lengths[episode % len(lengths)], episode + 1
        episode_timesteps += 1  # env.step (random actions below start_timesteps)
        total_timesteps += 1
        done = episode_timesteps == length
    if done:  # the library also trains when the run's last step ends an episode
        bursts.append((total_timesteps, [it % policy_delay == 0
                                         for it in range(episode_timesteps)]))
    return bursts


def totals(bursts):
    """(gradient steps, actor updates) over all bursts."""
    return sum(len(f) for _, f in bursts), sum(sum(f) for _, f in bursts)


def test_the_model_trains_at_each_episode_end_and_moves_the_actor_first_in_each_burst():
    bursts = authors_2018_loop(LENGTHS, 40, 2)
    assert [(t, len(f)) for t, f in bursts] == [(7, 7), (19, 12), (24, 5), (33, 9), (37, 4)]
    assert bursts[0][1] == [True, False, True, False, True, False, True]
    # Per burst: ceil(n / 2) actor updates (20 here); a global count gives floor(37 / 2) = 18.
    assert totals(bursts) == (37, sum(math.ceil(n / 2) for n in (7, 12, 5, 9, 4)))


def config_for(total, warmup, **changes):
    return ddpg_jax.preset("td3-2018", total_steps=total, warmup_steps=warmup,
                           hidden_sizes=(16, 16), batch_size=32, buffer_size=256, eval_every=0,
                           eval_episodes=1, **changes)


# --------------------------------------------------------------------------- the learner
def done_steps(lengths, total):
    """Whether each of the first ``total`` steps ends an episode."""
    ends = np.cumsum([lengths[i % len(lengths)] for i in range(total)])
    return np.isin(np.arange(1, total + 1), ends)


def random_transition(key):
    k = jax.random.split(key, 4)
    return Transition(jax.random.normal(k[0], (1, 2)), jax.random.uniform(k[1], (1, 1)),
                      jax.random.normal(k[2], (1,)), jnp.zeros((1,)),
                      jax.random.normal(k[3], (1, 2)))


@pytest.mark.parametrize("policy_delay", [2, 3])
def test_the_learner_runs_the_authors_bursts_at_each_episode_end(policy_delay):
    total = 50
    config = config_for(total, 30, policy_delay=policy_delay)
    expected = {t: f for t, f in authors_2018_loop(LENGTHS, total, policy_delay)}
    learner = make_learner(config, 2, LOW, HIGH, batched=False)
    learn, update = jax.jit(learner.learn), jax.jit(learner.gradient_step.update)
    agent = learner.init(jax.random.PRNGKey(0))
    steps = actors = 0
    for t, done in enumerate(done_steps(LENGTHS, total), start=1):
        transition, key = random_transition(jax.random.PRNGKey(t)), jax.random.PRNGKey(1000 + t)
        if t == 19:  # a burst by hand: the same batches, the actor moving where the model says
            reference = learner.observe(agent, transition)
            ts = reference.train_state
            for i, act_now in enumerate(expected[19]):
                batch = rb.sample(reference.buffer, jax.random.fold_in(key, i), config.batch_size)
                ts, _ = update(ts, batch, jnp.asarray(act_now))
        agent, sums = learn(agent, transition, jnp.array([done]), key, jnp.int32(t))
        flags = expected.get(t, [])
        assert done == (t in expected)
        steps, actors = steps + len(flags), actors + sum(flags)
        assert float(sums["updates"]) == len(flags), t
        assert float(sums["actor_updates"]) == sum(flags), t
        assert int(agent.train_state.step) == steps and int(agent.train_state.actor_step) == actors
        if t == 19:
            for a, b in zip(jax.tree.leaves(agent.train_state), jax.tree.leaves(ts)):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert int(agent.owed) == total - max(expected)  # the running episode's steps


# --------------------------------------------------------------------------- the drivers
@struct.dataclass
class EpisodesState:
    t: jax.Array
    episode: jax.Array
    time: jax.Array


@struct.dataclass
class EpisodesParams:
    max_steps_in_episode: int = 1000


class FixedEpisodes(Environment):
    """A JAX env whose episodes terminate after LENGTHS[0], LENGTHS[1], ... steps."""

    @property
    def default_params(self):
        return EpisodesParams()

    def observation_space(self, params=None):
        return Box.from_bounds(-jnp.inf, jnp.inf, (2,))

    def action_space(self, params=None):
        return Box.from_bounds(-1.0, 1.0, (1,))

    def reset_env(self, key, params):
        raise NotImplementedError  # reset and step below are the whole env

    def step_env(self, key, state, action, params):
        raise NotImplementedError

    def reset(self, key, params=None):
        state = EpisodesState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                              jnp.zeros((), jnp.int32))
        return jnp.zeros(2, jnp.float32), state

    def step(self, key, state, action, params=None):
        t = state.t + 1
        length = jnp.asarray(LENGTHS)[state.episode % len(LENGTHS)]
        terminated = t == length
        obs = jnp.stack([t, state.episode]).astype(jnp.float32)
        reward = -jnp.sum(action ** 2)
        new = EpisodesState(jnp.where(terminated, 0, t),
                            state.episode + terminated.astype(jnp.int32),
                            jnp.where(terminated, 0, state.time + 1))
        reset_obs = jnp.stack([0.0, new.episode.astype(jnp.float32)])
        info = {"final_observation": obs}
        return (jnp.where(terminated, reset_obs, obs), new, reward, terminated,
                jnp.zeros((), bool), info)


class FixedEpisodesGym(gym.Env):
    """The same episodes as :class:`FixedEpisodes`, as a gymnasium env."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.episode, self.t = -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.array([0.0, self.episode], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.t == LENGTHS[self.episode % len(LENGTHS)]
        obs = np.array([self.t, self.episode], np.float32)
        return obs, -float(np.sum(np.square(action))), terminated, False, {}


@pytest.mark.parametrize("total, warmup", [
    (26, 25),  # episodes end at 7, 19 and 24, all in the warm-up: 24 gradient steps
    (62, 30),  # and at 33, 37, 48 and 55 after it
])
def test_both_drivers_run_the_authors_bursts(total, warmup):
    config = config_for(total, warmup)  # batch 32: the first bursts sample from fewer rows
    steps, actors = totals(authors_2018_loop(LENGTHS, total, config.policy_delay))
    assert actors != steps // 2  # a global delay count would give another number

    result = ddpg_jax.train(config, FixedEpisodesGym, log=None)
    assert int(result.train_state.step) == steps
    assert int(result.train_state.actor_step) == actors

    train = ddpg_jax.make_train(config, FixedEpisodes())
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 2))
    np.testing.assert_array_equal(np.asarray(out.train_state.step), [steps, steps])
    np.testing.assert_array_equal(np.asarray(out.train_state.actor_step), [actors, actors])


def test_the_jax_warmup_runs_the_bursts_of_its_episodes():
    """The whole-loop driver's warm-up on its own: the bursts of the episodes it ends."""
    config = config_for(62, 30)
    loop = ddpg_jax.make_train(config, FixedEpisodes()).loop
    state = jax.jit(loop.warmup)(loop.init(jax.random.PRNGKey(0)))
    steps, actors = totals(authors_2018_loop(LENGTHS, 30, config.policy_delay)[:3])
    assert (steps, actors) == (24, 4 + 6 + 3)
    assert int(state.agent.train_state.step) == steps
    assert int(state.agent.train_state.actor_step) == actors
    assert int(state.agent.owed) == 30 - 24


# --------------------------------------------------------------------------- the per-step schedule
def test_the_per_step_delay_counts_over_the_run():
    """The per-step schedule keeps the global count: passing its own flags changes nothing
    (one compiled program, so the comparison is exact)."""
    config = DDPGConfig(hidden_sizes=(8,), batch_size=8, num_critics=2, policy_delay=2,
                        target_noise=0.2)
    learner = make_learner(config, 2, LOW, HIGH, batched=False)
    batches = jax.tree.map(lambda x: jnp.broadcast_to(x, (5,) + x.shape),
                           random_transition(jax.random.PRNGKey(0)))

    @jax.jit
    def both(ts):
        def implicit(ts, b):
            return learner.gradient_step.update(ts, b)

        def explicit(ts, b):
            return learner.gradient_step.update(ts, b, (ts.step + 1) % 2 == 0)

        return jax.lax.scan(implicit, ts, batches), jax.lax.scan(explicit, ts, batches)

    (a, ma), (b, mb) = both(learner.init(jax.random.PRNGKey(1)).train_state)
    np.testing.assert_array_equal(np.asarray(ma["actor_updated"]), [0, 1, 0, 1, 0])
    for x, y in zip(jax.tree.leaves((a, ma)), jax.tree.leaves((b, mb))):
        assert np.array_equal(x, y)


def test_a_warmup_shorter_than_a_batch_is_refused_only_per_step():
    """The 2018 loop samples with replacement from what is stored; the per-step schedule
    still refuses a first update on fewer rows than a batch, and names the alternative."""
    DDPGConfig(update_schedule="episode", warmup_steps=10, batch_size=32,
               total_steps=100).validate()
    DDPGConfig(update_schedule="episode", warmup_steps=0, batch_size=32,
               total_steps=100).validate()
    with pytest.raises(ConfigError, match=r"warmup_steps 10 < batch_size 32.*update_schedule "
                                          r"episode"):
        DDPGConfig(warmup_steps=10, batch_size=32, total_steps=100).validate()

"""The Playground adapter's auto-reset, which resets only on steps where an episode ended.

References: the task's own ``reset`` / ``step`` driven env by env in plain Python
(each env restarts from ``task.reset`` with its own reset key,
``jax.random.split(key)[1]``, after its own ``done`` or time limit), and the
always-computed reset of :meth:`ddpg_jax.envs.core.Environment.step`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pg = pytest.importorskip(
    "mujoco_playground",
    reason="MuJoCo Playground is not installed (pip install 'ddpg-jax[playground]')")

from side_by_side import reference_by_env, rollouts_over_seeds

from ddpg_jax.envs import from_playground
from ddpg_jax.envs.core import Environment

pytestmark = pytest.mark.usefixtures("module_compile_cache")

SEEDS, ENVS, STEPS = 3, 4, 9


class CountdownTask:
    """A Playground-style task without physics whose episodes end at random times.

    ``reset`` draws a position and a lifetime in ``lives`` (1 to 4 steps by
    default); the task reports ``done`` once its step counter reaches the
    lifetime. Every reset draw is visible in the observation ``[position,
    count, lifetime]``.
    """

    action_size = 1

    def __init__(self, lives=(1, 5)):
        self.lives = lives

    def reset(self, rng):
        k_pos, k_life = jax.random.split(rng)
        x = jax.random.uniform(k_pos, ())
        life = jax.random.randint(k_life, (), *self.lives).astype(jnp.float32)
        return pg.State(data=jnp.zeros(()), obs=jnp.stack([x, 0.0, life]), reward=jnp.zeros(()),
                        done=jnp.zeros(()), metrics={}, info={})

    def step(self, state, action):
        x, n, life = state.obs
        n = n + 1.0
        obs = jnp.stack([x + action[0], n, life])
        return state.replace(obs=obs, reward=x, done=(n >= life).astype(jnp.float32))


def _keys_and_actions(seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), SEEDS * STEPS * ENVS).reshape(
        SEEDS, STEPS, ENVS, 2)
    acts = np.random.default_rng(seed).uniform(-1, 1, (SEEDS, STEPS, ENVS, 1)).astype(np.float32)
    return keys, jnp.asarray(acts)


def _assert_same(out, ref, rtol=0.0, atol=0.0):
    for name in ("obs", "final", "reward", "terminated", "truncated", "time"):
        np.testing.assert_allclose(np.asarray(out[name], np.float64), ref[name], rtol=rtol,
                                   atol=atol, err_msg=name)


def test_episodes_ending_at_different_times_match_the_tasks_own_functions():
    task = CountdownTask()
    env, params = from_playground(task, obs_key=None, episode_length=3)
    starts = jax.random.split(jax.random.PRNGKey(7), SEEDS * ENVS).reshape(SEEDS, ENVS, 2)
    keys, acts = _keys_and_actions()
    _, out = rollouts_over_seeds(env.step, env, params, starts, keys, acts)
    ref = reference_by_env(task, 3, starts, keys, acts)
    # Lifetimes 1..4 against a time limit of 3: terminations and truncations, env by env.
    ended = ref["terminated"].astype(bool) | ref["truncated"].astype(bool)
    assert ref["terminated"].any() and ref["truncated"].any()
    assert (ended.any(axis=2) & ~ended.all(axis=2)).any()  # some envs end while others go on
    _assert_same(out, ref)  # the same float32 ops in both: equal
    # The fresh episodes' draws differ from env to env: reset randomness is kept.
    fresh = np.asarray(out["obs"])[ended]
    assert len(np.unique(fresh[:, 0])) == len(fresh)


def test_same_numbers_as_the_always_computed_reset():
    env, params = from_playground(CountdownTask(), obs_key=None, episode_length=3)
    starts = jax.random.split(jax.random.PRNGKey(1), SEEDS * ENVS).reshape(SEEDS, ENVS, 2)
    keys, acts = _keys_and_actions(1)
    always = lambda k, s, a, p: Environment.step(env, k, s, a, p)
    _, new = rollouts_over_seeds(env.step, env, params, starts, keys, acts)
    _, old = rollouts_over_seeds(always, env, params, starts, keys, acts)
    jax.tree.map(np.testing.assert_array_equal, new, old)


def test_reset_runs_only_on_steps_where_an_episode_of_the_batch_ended():
    calls = []

    class Counted(CountdownTask):
        def reset(self, rng):
            jax.debug.callback(lambda k: calls.append(np.shape(k)), rng)
            return super().reset(rng)

    env, params = from_playground(Counted(lives=(4, 6)), obs_key=None, episode_length=100)
    starts = jax.random.split(jax.random.PRNGKey(2), SEEDS * ENVS).reshape(SEEDS, ENVS, 2)
    keys, acts = _keys_and_actions(2)
    _, out = jax.block_until_ready(rollouts_over_seeds(env.step, env, params, starts, keys, acts))
    jax.effects_barrier()
    ended = np.asarray(out["terminated"] | out["truncated"])
    steps_with_an_end = int(ended.any(axis=(0, 2)).sum())  # over all seeds and envs at once
    assert 0 < steps_with_an_end < STEPS
    # The callback runs once per env reset (vmap calls it env by env): the first reset of
    # every env, then a whole batch of resets on each step where any env ended, and none
    # on the other steps (the always-computed reset makes SEEDS * ENVS * (1 + STEPS)).
    assert len(calls) == SEEDS * ENVS * (1 + steps_with_an_end)


def test_a_single_env_outside_vmap_resets_where_it_ends():
    task = CountdownTask()
    env, params = from_playground(task, obs_key=None, episode_length=10)
    key = jax.random.PRNGKey(4)
    obs, state = env.reset(key, params)
    ref = task.reset(key)
    step = jax.jit(env.step)
    for t in range(6):
        k = jax.random.PRNGKey(100 + t)
        obs, state, _, term, trunc, info = step(k, state, jnp.zeros(1), params)
        ref = task.step(ref, jnp.zeros(1))
        np.testing.assert_array_equal(info["final_observation"], ref.obs)
        assert bool(term) == bool(ref.done) and not trunc  # time limit 10 > 6 steps
        if ref.done:
            ref = task.reset(jax.random.split(k)[1])
        np.testing.assert_array_equal(obs, ref.obs)


@pytest.fixture(scope="module")
def cartpole():
    return pg.registry.load("CartpoleBalance", config_overrides={"impl": "jax"})


def test_cartpole_parity_with_staggered_time_limits_over_seeds_and_envs(cartpole):
    env, params = from_playground("CartpoleBalance", impl="jax", episode_length=4)
    starts = jax.random.split(jax.random.PRNGKey(5), SEEDS * ENVS).reshape(SEEDS, ENVS, 2)
    keys, acts = _keys_and_actions(5)
    # Envs start 0..3 steps into their episodes, so their time limits fall on different steps.
    offset = np.arange(ENVS) % 4
    _, out = rollouts_over_seeds(env.step, env, params, starts, keys, acts, offset)
    ref = reference_by_env(cartpole, 4, starts, keys, acts, offset)
    assert (ref["truncated"].any(axis=2) & ~ref["truncated"].all(axis=2)).all()
    # Two compiled programs (batched adapter, per-env reference): float32 rounding may
    # differ by a few ulps over 9 MJX steps of values of order 1.
    _assert_same(out, ref, rtol=1e-5, atol=1e-6)
    # Fresh episodes differ from env to env and seed to seed.
    ended = ref["truncated"].astype(bool)
    fresh = np.asarray(out["obs"])[ended]
    assert len({tuple(np.round(o, 6)) for o in fresh}) == len(fresh)

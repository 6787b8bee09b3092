"""``update_schedule="episode"``: the TD3 authors' loop, gradient steps run when an episode ends.

* a burst is exactly the owed number of gradient steps, each on a batch drawn with
  ``fold_in(key, i)``, the actor moving on the burst's steps 0, 2, 4, ... (the 2018
  ``TD3.train``'s per-call delay), and steps without an episode end change no parameter;
* the owed count follows ``updates_per_env_step`` and counts the
  warm-up's rows;
* on Pendulum (every episode 200 steps) both drivers run the hand-counted number of
  gradient steps, warm-up episodes included, and the gymnasium driver's evaluations see it
  at every point (tests/test_2018_loop.py checks the bursts against a model of the
  authors' loop on episodes of varied lengths);
* a run stopped in the middle of an episode (owed steps pending) resumes bit-identically;
* a misspelt schedule is refused naming the accepted values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpg_jax
from ddpg_jax import DDPGConfig, Transition
from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent.learner import make_learner
from ddpg_jax.cli.main import main
from ddpg_jax.config import ConfigError
from ddpg_jax.records.writers import read_jsonl

LOW, HIGH = np.array([-2.0], np.float32), np.array([2.0], np.float32)
SMALL = dict(hidden_sizes=(16, 16), batch_size=16, buffer_size=512, eval_every=0,
             eval_episodes=2)


def transitions(key, n, obs_dim=3):
    k = jax.random.split(key, 4)
    return Transition(jax.random.normal(k[0], (n, obs_dim)),
                      jax.random.uniform(k[1], (n, 1), minval=-2.0, maxval=2.0),
                      jax.random.normal(k[2], (n,)), jnp.zeros((n,)),
                      jax.random.normal(k[3], (n, obs_dim)))


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_a_burst_is_the_owed_gradient_steps_and_other_steps_change_nothing():
    config = ddpg_jax.preset("td3-2018", total_steps=1000, warmup_steps=40, **SMALL)
    learner = make_learner(config, 3, LOW, HIGH, batched=False)
    learn = jax.jit(learner.learn)
    agent = learner.init(jax.random.PRNGKey(0))
    agent = learner.observe(agent, transitions(jax.random.PRNGKey(1), 40))
    assert int(agent.owed) == 40  # the warm-up's steps are owed too
    for i in range(5):  # mid-episode: rows stored, nothing learnt
        before = agent.train_state
        agent, sums = learn(agent, transitions(jax.random.PRNGKey(10 + i), 1),
                            jnp.array([False]), jax.random.PRNGKey(20 + i), jnp.int32(41 + i))
        assert same(agent.train_state, before) and float(sums["updates"]) == 0.0
    assert int(agent.owed) == 45 and int(agent.buffer.size) == 45

    # The episode ends: the reference runs 46 gradient steps by hand on the same buffer, the
    # actor moving on steps 0, 2, ..., 44 of the burst.
    last, key = transitions(jax.random.PRNGKey(30), 1), jax.random.PRNGKey(31)
    reference = learner.observe(agent, last)
    ts, update = reference.train_state, jax.jit(learner.gradient_step.update)
    for i in range(46):
        batch = rb.sample(reference.buffer, jax.random.fold_in(key, i), config.batch_size)
        ts, _ = update(ts, batch, jnp.asarray(i % 2 == 0))
    agent, sums = learn(agent, last, jnp.array([True]), key, jnp.int32(46))
    for a, b in zip(jax.tree.leaves(agent.train_state), jax.tree.leaves(ts)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert int(agent.train_state.step) == 46 and int(agent.train_state.actor_step) == 23
    assert float(sums["updates"]) == 46.0 and float(sums["actor_updates"]) == 23.0
    assert int(agent.owed) == 0


@pytest.mark.parametrize("settings, per_vector_step", [
    (dict(num_envs=1, updates_per_env_step=2), 2),
    (dict(num_envs=4, updates_per_env_step=1), 4),
    (dict(num_envs=4, updates_per_env_step=0.5), 2),
])
def test_owed_steps_follow_the_update_ratio(settings, per_vector_step):
    config = DDPGConfig(total_steps=1000, warmup_steps=40, update_schedule="episode",
                        **{**SMALL, **settings})
    n = config.num_envs
    learner = make_learner(config, 3, LOW, HIGH)
    agent = learner.init(jax.random.PRNGKey(0))
    agent = learner.observe(agent, transitions(jax.random.PRNGKey(1), 40))
    assert int(agent.owed) == 40 // n * per_vector_step
    agent, sums = learner.learn(agent, transitions(jax.random.PRNGKey(2), n),
                                jnp.zeros(n, bool).at[-1].set(True), jax.random.PRNGKey(3),
                                jnp.int32(40 + n))
    assert float(sums["updates"]) == (40 // n + 1) * per_vector_step
    assert int(agent.train_state.step) == (40 // n + 1) * per_vector_step


def test_both_drivers_run_the_hand_counted_steps_on_pendulum():
    """Pendulum episodes last 200 steps. With 300 warm-up steps and 1000 in all, episodes end
    at 200 (in the warm-up, random actions), 400, 600, 800 and 1000: bursts of 200 gradient
    steps each, 1000 in all (700 with the per-step schedule)."""
    config = DDPGConfig(total_steps=1000, warmup_steps=300, update_schedule="episode",
                        **{**SMALL, "eval_every": 100})
    result = ddpg_jax.train(config, "Pendulum-v1", log=None)
    assert int(result.train_state.step) == 1000
    seen = {r["env_steps"]: r["updates"] for r in result.evaluations}
    assert seen == {400: 400, 500: 400, 600: 600, 700: 600, 800: 800, 900: 800, 1000: 1000}
    out = jax.jit(ddpg_jax.make_train(config, *ddpg_jax.envs.make("Pendulum-v1")))(
        jax.random.PRNGKey(0))
    assert int(out.train_state.step) == 1000
    assert int(result.train_state.actor_step) == int(out.train_state.actor_step) == 1000


def test_a_run_stopped_mid_episode_resumes_bit_identically(tmp_path, capsys):
    """Stopped at 1100 steps, 100 gradient steps are owed; the resumed run pays them at 1200."""
    from ddpg_jax.checkpoints import format as ckpt

    args = ["--env", "Pendulum-v1", "--update-schedule", "episode", "--warmup-steps", "200",
            "--batch-size", "32", "--hidden-sizes", "16,16", "--buffer-size", "5000",
            "--eval-every", "500", "--eval-episodes", "2", "--quiet"]
    full, half = tmp_path / "full", tmp_path / "half"
    assert main(["train", *args, "--total-steps", "2000", "--out", str(full)]) == 0
    assert main(["train", *args, "--total-steps", "1100", "--out", str(half)]) == 0
    assert main(["train", "--resume", str(half), "--total-steps", "2000", "--quiet"]) == 0
    capsys.readouterr()

    def final(run):
        c = ckpt.open_checkpoint(ckpt.latest(ckpt.checkpoint_dir(run)))
        return {**ckpt.load_flat(c, "state"), **ckpt.load_flat(c, "buffer")}

    a, b = final(full), final(half)
    assert a.keys() == b.keys() and any("owed" in k for k in a)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    full_evals = {r["env_steps"]: r for r in read_jsonl(full / "evaluations.jsonl")}
    resumed = {r["env_steps"]: r for r in read_jsonl(half / "evaluations.jsonl")}
    assert resumed[1100]["updates"] == 1000  # bursts at 400, 600, 800, 1000; 100 owed
    assert set(full_evals) <= set(resumed)
    for step, r in full_evals.items():
        assert resumed[step]["updates"] == r["updates"]
        assert resumed[step]["eval_return_mean"] == r["eval_return_mean"]


def test_an_unknown_schedule_is_refused_with_the_accepted_values():
    with pytest.raises(ConfigError, match=r"update_schedule = 'episodes'.*step \| episode"):
        DDPGConfig(update_schedule="episodes").validate()

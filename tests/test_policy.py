"""A trained policy is something you call: ``ddpg_jax.load_policy(path)(obs)``.

Written as a new user would use the library: train a tiny run into a run directory, export it
with the command line, load both, act on one observation and on a batch, and use the pure
function inside a jitted program of one's own. The reference is the actor computed here in
numpy from the train state that ``train`` returned (observations normalised with the saved
statistics, ReLU layers, tanh scaled to the action bounds), not through the library's networks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpg_jax
from ddpg_jax.cli.main import main

CONFIG = ddpg_jax.DDPGConfig(total_steps=400, warmup_steps=100, batch_size=32,
                             hidden_sizes=(16, 16), eval_every=200, eval_episodes=2,
                             buffer_size=500, obs_norm=True)
LOW, HIGH = np.array([-2.0]), np.array([2.0])  # Pendulum-v1's torque bounds
# float32 forward passes (XLA's, and the exported program's) against a float64 numpy one: the
# rounding of two 16-unit layers and a tanh is ~1e-7 of the action; 1e-5 leaves room for
# XLA's own kernels and stays far below what a missing normalisation or a wrong seed changes
# (checked below to be over 1e-2).
TOL = dict(rtol=1e-5, atol=1e-5)


def reference_actions(ts, obs) -> np.ndarray:
    """The actor of train state ``ts`` in numpy, on observations ``[batch, 3]``."""
    x = np.asarray(obs, np.float64)
    stats = ts.obs_stats
    if float(stats.count) > 0:
        mean, var = np.asarray(stats.mean, np.float64), np.asarray(stats.var, np.float64)
        x = np.clip((x - mean) / np.sqrt(var + 1e-8), -10.0, 10.0)
    layers = ts.actor_params["MLP_0"]
    names = sorted(layers, key=lambda name: int(name.split("_")[1]))
    for i, name in enumerate(names):
        x = x @ np.asarray(layers[name]["kernel"], np.float64) + np.asarray(
            layers[name]["bias"], np.float64)
        if i < len(names) - 1:
            x = np.maximum(x, 0.0)
    return LOW + (np.tanh(x) + 1.0) * 0.5 * (HIGH - LOW)


def observations(n: int, seed: int = 0) -> np.ndarray:
    """Pendulum-like observations (cos, sin, angular velocity), where the actor is not saturated."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-np.pi, np.pi, n)
    return np.stack([np.cos(theta), np.sin(theta), rng.uniform(-1, 1, n)], 1).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("policy") / "runs" / "x"
    result = ddpg_jax.train(CONFIG, "Pendulum-v1", run_dir=run_dir, log=None)
    return run_dir, result.train_state


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "pendulum.jaxexport"
    assert main(["export", "--checkpoint", str(trained[0]), "--out", str(out)]) == 0
    return out


@pytest.fixture(params=["checkpoint", "export"])
def loaded(request, trained, exported):
    """``(policy, train state)``: the run directory loaded, or its exported file (loaded anew
    for each test, so that no test relies on what another one did with the policy first)."""
    path = trained[0] if request.param == "checkpoint" else exported
    return ddpg_jax.load_policy(path), trained[1]


def test_the_test_observations_tell_a_missing_normalisation_apart(trained):
    ts = trained[1]
    obs = observations(16)
    raw = reference_actions(ts.replace(obs_stats=ts.obs_stats._replace(count=np.float32(0))), obs)
    assert np.max(np.abs(raw - reference_actions(ts, obs))) > 1e-2
    assert np.all(np.abs(reference_actions(ts, obs)) < 1.99)  # not saturated at the bounds


def test_a_loaded_policy_is_called_on_one_observation_or_a_batch(loaded):
    policy, ts = loaded
    batch = observations(7, seed=1)
    actions = policy(batch)
    assert isinstance(actions, np.ndarray) and actions.shape == (7, 1)
    assert actions.dtype == np.float32
    np.testing.assert_allclose(actions, reference_actions(ts, batch), **TOL)
    one = policy(batch[3])
    assert isinstance(one, np.ndarray) and one.shape == (1,)
    np.testing.assert_allclose(one, reference_actions(ts, batch[3:4])[0], **TOL)
    np.testing.assert_allclose(policy(batch[3].tolist()), one, **TOL)  # a list is fine too
    # act and act_fn are the same call: the same compiled program on the same input.
    np.testing.assert_array_equal(policy.act(batch), actions)
    np.testing.assert_array_equal(policy.act_fn()(batch), actions)
    np.testing.assert_array_equal(policy.act(batch[3]), one)


@pytest.mark.parametrize("shape", [(4,), (2, 4), (2, 3, 1), (0, 3), ()])
def test_observations_of_another_shape_are_refused_naming_the_accepted_ones(loaded, shape):
    policy, _ = loaded
    with pytest.raises(ValueError, match=r"accepted: \[3\] \(one observation\) or \[batch, 3\]"):
        policy(np.zeros(shape, np.float32))


def test_a_seed_the_policy_does_not_hold_is_refused(loaded):
    policy, _ = loaded
    assert policy.num_seeds == 1
    for bad in (1, -1):
        with pytest.raises(IndexError, match="holds 1 seed"):
            policy.act(observations(1), seed_index=bad)
        with pytest.raises(IndexError, match="holds 1 seed"):
            policy.act_fn(bad)


def test_jax_fn_runs_inside_a_users_jitted_program(loaded):
    """A jitted rollout on the JAX Pendulum, acting with ``policy.jax_fn`` inside ``lax.scan``."""
    policy, ts = loaded
    env, params = ddpg_jax.envs.make("Pendulum-v1")

    @jax.jit
    def rollout(key):
        obs, state = env.reset(key, params)

        def step(carry, key):
            obs, state = carry
            action = policy.jax_fn(obs[None])[0]
            next_obs, state, reward, _, _, _ = env.step(key, state, action, params)
            return (next_obs, state), (obs, action, reward)

        _, (seen, actions, rewards) = jax.lax.scan(step, (obs, state),
                                                   jax.random.split(key, 20))
        return seen, actions, jnp.sum(rewards)

    seen, actions, total = rollout(jax.random.PRNGKey(3))
    assert actions.shape == (20, 1) and np.isfinite(float(total))
    np.testing.assert_allclose(actions, reference_actions(ts, np.asarray(seen)), **TOL)
    np.testing.assert_allclose(actions, policy(np.asarray(seen)), **TOL)
    if policy.checkpoint.path.is_dir():  # a checkpoint's function composes with vmap too
        batched = jax.jit(jax.vmap(policy.jax_fn))(jnp.asarray(observations(5))[:, None])
        np.testing.assert_allclose(batched[:, 0], reference_actions(ts, observations(5)), **TOL)


class _Counting:
    """Stands in for ``fn``, counting how often JAX traces it."""

    def __init__(self, fn):
        self.fn, self.traces = fn, 0

    def __call__(self, *args):
        self.traces += 1
        return self.fn(*args)


class _CountingExported:
    """Stands in for a ``jax.export.Exported``: ``call`` is a bound method, a new object at
    each access as on the real one, counting how often JAX traces it."""

    def __init__(self, exported):
        self.exported, self.traces = exported, 0

    def call(self, obs):
        self.traces += 1
        return self.exported.call(obs)


def test_a_policy_compiles_once_not_per_call(trained, exported):
    from ddpg_jax.policy.exported import ExportedPolicy

    checkpoint = ddpg_jax.load_policy(trained[0])
    counted = _Counting(checkpoint.learner.policy)
    checkpoint = dataclasses.replace(checkpoint,
                                     learner=checkpoint.learner._replace(policy=counted))
    from_file = ddpg_jax.load_policy(exported)
    proxy = _CountingExported(from_file.exported)
    from_file = ExportedPolicy(from_file.path, from_file.meta, proxy)
    for policy, count in ((checkpoint, counted), (from_file, proxy)):
        for i in range(4):
            policy(observations(1, seed=i)[0])  # one observation: a batch of one inside
        policy.act(observations(1))
        policy.act_fn()(observations(1))
        assert count.traces == 1
        policy(observations(5))
        policy(observations(5, seed=9))
        assert count.traces == 2  # one more batch size, compiled once


def test_a_multi_seed_checkpoint_acts_with_seed_0_unless_told(tmp_path):
    config = CONFIG.replace(total_steps=300, eval_every=0)
    result = ddpg_jax.train(config, ddpg_jax.envs.make("Pendulum-v1"), num_seeds=2,
                            run_dir=tmp_path / "run", log=None)
    policy = ddpg_jax.load_policy(tmp_path / "run")
    assert policy.num_seeds == 2
    obs = observations(6, seed=4)
    want = [reference_actions(ddpg_jax.select_run(result.train_state, i), obs) for i in (0, 1)]
    assert np.max(np.abs(want[0] - want[1])) > 1e-2  # the seeds' actors differ
    np.testing.assert_allclose(policy(obs), want[0], **TOL)
    np.testing.assert_allclose(policy.act(obs, seed_index=1), want[1], **TOL)
    np.testing.assert_array_equal(policy.act_fn(1)(obs), policy.act(obs, seed_index=1))
    seed1 = policy.for_seed(1)
    assert seed1.num_seeds == 1
    np.testing.assert_array_equal(seed1(obs), policy.act(obs, seed_index=1))
    np.testing.assert_allclose(jax.jit(seed1.jax_fn)(obs), want[1], **TOL)
    np.testing.assert_allclose(jax.jit(policy.jax_fn)(obs), want[0], **TOL)
    with pytest.raises(IndexError, match="holds 2 seed"):
        policy.act(obs, seed_index=2)

"""Whole-loop jit training on JAX envs: seeds, sweeps, sharding, tracing, learning."""

import json
import os
import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest

from ddpg_jax import DDPGConfig, make_train
from ddpg_jax.cli.main import main
from ddpg_jax.drivers.multi import (
    make_hparams,
    run_many,
    run_seeds,
    seed_keys,
    select_run,
    sweep,
)
from ddpg_jax.drivers.schedule import make_schedule
from ddpg_jax.envs import make

TINY = DDPGConfig(total_steps=600, warmup_steps=200, batch_size=32, hidden_sizes=(16, 16),
                  eval_every=200, eval_episodes=2, buffer_size=1000, num_envs=2)


@pytest.fixture(scope="module")
def pendulum():
    return make("Pendulum-v1")


@pytest.fixture(scope="module")
def tiny_runs(pendulum):
    env, params = pendulum
    train = chex.assert_max_traces(make_train(TINY, env, params), n=1)
    fn = jax.jit(jax.vmap(train))
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    out = fn(keys)
    again = fn(jax.random.split(jax.random.PRNGKey(8), 3))  # new keys, same program
    return train, keys, out, again


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_seeds_are_pairwise_different(tiny_runs):
    _, _, out, _ = tiny_runs
    params = out.train_state.actor_params
    returns = np.asarray(out.metrics["eval_returns"])
    for i in range(3):
        for j in range(i + 1, 3):
            assert not leaves_equal(select_run(params, i), select_run(params, j))
            assert not np.allclose(returns[i], returns[j])


def test_same_key_gives_identical_results(pendulum, tiny_runs):
    train, keys, out, _ = tiny_runs
    env, params = pendulum
    out2 = jax.jit(jax.vmap(make_train(TINY, env, params)))(keys)
    assert leaves_equal(out.train_state, out2.train_state)
    np.testing.assert_array_equal(out.metrics["eval_returns"], out2.metrics["eval_returns"])


def test_vmapped_run_equals_unbatched_run(pendulum, tiny_runs):
    _, keys, out, _ = tiny_runs
    env, params = pendulum
    single = jax.jit(make_train(TINY, env, params))(keys[1])
    chex.assert_trees_all_close(select_run(out.train_state.actor_params, 1),
                                single.train_state.actor_params, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out.metrics["eval_return_mean"][1],
                               single.metrics["eval_return_mean"], rtol=1e-3)


def test_traced_once_and_outputs_shapes(tiny_runs):
    train, _, out, again = tiny_runs  # assert_max_traces(n=1) guards the second call
    m = out.metrics
    np.testing.assert_array_equal(m["env_steps"][0], [400, 600])
    assert m["eval_returns"].shape == (3, 2, TINY.eval_episodes)
    assert m["critic_loss"].shape == (3, 2)
    assert out.buffer is None
    assert int(out.train_state.step[0]) == (600 - 200) // 2 * 2  # one update per env step
    assert not leaves_equal(out.train_state, again.train_state)


def test_hot_loop_has_no_cond(pendulum):
    env, params = pendulum
    jaxpr = jax.make_jaxpr(make_train(TINY, env, params))(jax.random.PRNGKey(0))
    assert " cond[" not in str(jaxpr)


@pytest.mark.parametrize("total, warmup, every, n, expected", [
    (20000, 1000, 5000, 1, [5000, 10000, 15000, 20000]),
    (20000, 5000, 5000, 1, [10000, 15000, 20000]),
    (10300, 1000, 5000, 1, [5000, 10000, 10300]),
    (600, 200, 200, 2, [400, 600]),
    (1000, 100, 0, 4, [1000]),
])
def test_schedule_matches_gymnasium_backend(total, warmup, every, n, expected):
    config = DDPGConfig(total_steps=total, warmup_steps=warmup, eval_every=every, num_envs=n,
                        batch_size=min(32, warmup))
    assert make_schedule(config).eval_steps == expected


def test_buffer_is_returned_and_holds_real_transitions(pendulum):
    env, params = pendulum
    config = TINY.replace(total_steps=300, eval_every=0)
    out = jax.jit(make_train(config, env, params, return_buffer=True))(jax.random.PRNGKey(0))
    assert int(out.buffer.size) == 300
    data = jax.tree.map(np.asarray, out.buffer.data)
    # Pendulum observations are (cos, sin, thetadot): the stored ones are real ones.
    np.testing.assert_allclose(data.obs[:300, 0] ** 2 + data.obs[:300, 1] ** 2, 1.0, rtol=1e-4)
    assert np.all(np.abs(data.action[:300]) <= 2.0)
    assert np.all(data.terminated[:300] == 0)  # Pendulum never terminates, it truncates


def test_sweep_runs_each_setting_like_a_single_run(pendulum):
    env, params = pendulum
    settings, timed = sweep(TINY, env, params, grid={"actor_lr": [1e-3, 1e-2], "tau": [0.01]},
                            num_seeds=2)
    assert settings == [{"actor_lr": 1e-3, "tau": 0.01}, {"actor_lr": 1e-2, "tau": 0.01}]
    out = timed.output
    assert out.metrics["eval_return_mean"].shape == (2, 2, 2)
    np.testing.assert_allclose(out.train_state.hparams.actor_lr[:, 0], [1e-3, 1e-2])
    # Setting 1, seed 0 equals a plain run with that config and the same key. The
    # plain run also takes its hyperparameters as inputs: with compile-time
    # constants XLA may fold arithmetic differently, and RL training amplifies
    # last-bit differences over a few hundred updates.
    config = TINY.replace(actor_lr=1e-2, tau=0.01)
    single = run_many(make_train(config, env, params), seed_keys(TINY.seed, 2),
                      make_hparams(config, 2)).output
    chex.assert_trees_all_close(select_run(out.train_state.actor_params, 1, 0),
                                select_run(single.train_state.actor_params, 0),
                                rtol=1e-3, atol=1e-4)
    assert not leaves_equal(select_run(out.train_state.actor_params, 0, 0),
                            select_run(out.train_state.actor_params, 1, 0))


def test_make_hparams_refuses_static_fields_and_bad_values():
    from ddpg_jax.config import ConfigError

    with pytest.raises(ConfigError, match="hidden_sizes"):
        make_hparams(TINY, 2, hidden_sizes=[1, 2])
    with pytest.raises(ConfigError, match="tau"):
        make_hparams(TINY, 2, tau=[0.01, 1.5])
    with pytest.raises(ConfigError, match="2 values for 3 runs"):
        make_hparams(TINY, 3, gamma=[0.9, 0.99])


SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from ddpg_jax import DDPGConfig
    from ddpg_jax.envs import make
    from ddpg_jax import make_train
    from ddpg_jax.drivers.multi import run_seeds, seed_keys
    assert len(jax.devices()) == 4, jax.devices()
    env, params = make("Pendulum-v1")
    config = DDPGConfig(total_steps=300, warmup_steps=100, batch_size=32, hidden_sizes=(16, 16),
                        eval_every=100, eval_episodes=2, buffer_size=500)
    sharded = run_seeds(config, env, params, num_seeds=6).output  # padded to 8 over 4 devices
    plain = jax.jit(jax.vmap(make_train(config, env, params)), device=jax.devices()[0])(
        seed_keys(0, 6))
    print(json.dumps({
        "sharded": np.asarray(sharded.metrics["eval_returns"]).tolist(),
        "plain": np.asarray(plain.metrics["eval_returns"]).tolist(),
        "sharded_w": np.asarray(sharded.train_state.actor_params["MLP_0"]["Dense_0"]["kernel"]).tolist(),
        "plain_w": np.asarray(plain.train_state.actor_params["MLP_0"]["Dense_0"]["kernel"]).tolist(),
    }))
""")


def test_sharded_over_four_devices_equals_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(r["sharded"], r["plain"], rtol=1e-3)
    np.testing.assert_allclose(r["sharded_w"], r["plain_w"], rtol=1e-3, atol=1e-4)


def test_cli_jax_backend_writes_per_seed_summary(tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--env", "Pendulum-v1", "--backend", "jax", "--num-seeds", "2",
               "--total-steps", "400", "--warmup-steps", "100", "--batch-size", "32",
               "--hidden-sizes", "16,16", "--eval-every", "200", "--eval-episodes", "2",
               "--buffer-size", "500", "--out", str(out), "--quiet"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("env_id", "seed", "total_steps", "final_eval_return_mean",
                "final_eval_return_std", "eval_episodes", "wall_time_s", "steps_per_second",
                "final_eval_return_per_seed", "compile_time_s", "versions"):
        assert key in summary
    assert len(summary["final_eval_return_per_seed"]) == 2
    assert summary["total_steps"] == 400
    assert np.isclose(np.mean(summary["final_eval_return_per_seed"]),
                      summary["final_eval_return_mean"], rtol=1e-5)


def test_short_jax_pendulum_learning_check(pendulum):
    env, params = pendulum
    config = DDPGConfig(total_steps=5000, eval_every=0, eval_episodes=5)
    out = jax.jit(make_train(config, env, params))(jax.random.PRNGKey(0))
    assert float(out.metrics["eval_return_mean"][-1]) > -400


@pytest.mark.slow
def test_four_seeds_solve_jax_pendulum_in_20k_steps(pendulum):
    env, params = pendulum
    out = run_seeds(DDPGConfig(total_steps=20000), env, params, num_seeds=4).output
    final = np.asarray(out.metrics["eval_return_mean"][:, -1])
    assert np.all(final >= -200), final


def test_observation_statistics_are_kept_in_the_train_state(pendulum):
    env, params = pendulum
    config = TINY.replace(total_steps=300, eval_every=0, obs_norm=True)
    out = jax.jit(make_train(config, env, params, return_buffer=True))(jax.random.PRNGKey(0))
    stats = out.train_state.obs_stats
    seen = np.asarray(out.buffer.data.obs)[:300]
    assert float(stats.count) == 300
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-4)

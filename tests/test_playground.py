"""MuJoCo Playground through ``from_playground`` and the env specs: parity, limits, training, CLI.

The references are the tasks' own ``reset`` / ``step`` (jitted on their own), and
brax's ``EpisodeWrapper`` (what Playground's training wrappers use) for the
action-repeat arithmetic. Compiling an MJX task dominates the cost here, so every
task is compiled once per module and the episode limits are tiny.
"""

from __future__ import annotations

import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import run_cli as _cli

pg = pytest.importorskip(
    "mujoco_playground",
    reason="MuJoCo Playground is not installed (pip install 'ddpg-jax[playground]'; "
           "the dev extra has it)")

from helpers import assert_identical_arrays, final_arrays
from side_by_side import actions, assert_parity, make_side_by_side

import ddpg_jax
from ddpg_jax.config import DDPGConfig
from ddpg_jax.envs import PlaygroundEnv, from_playground, from_spec
from ddpg_jax.envs.core import EnvSpecError
from ddpg_jax.envs.playground_adapter import (
    PLAYGROUND_HINT,
    bundled_tasks,
    default_impl,
)
from ddpg_jax.records.writers import read_jsonl

pytestmark = pytest.mark.usefixtures("module_compile_cache")

#: The multi-joint task of the parity test: among the walker, hopper and cheetah tasks
#: the cheapest to compile on CPU (measured: reset + step ~24 s, hopper ~46 s, cheetah ~47 s).
MULTI_JOINT = "WalkerStand"
TINY = dict(num_envs=4, eval_every=0, eval_episodes=2, hidden_sizes=(32, 32), batch_size=32,
            buffer_size=400)


# --------------------------------------------------------------------------- parity
def _task(name: str):
    """The task as Playground itself builds it (pure-JAX physics)."""
    return pg.registry.load(name, config_overrides={"impl": "jax"})


@pytest.fixture(scope="module")
def cartpole_task():
    return _task("CartpoleBalance")


def test_cartpole_parity_truncation_and_autoreset(cartpole_task):
    env, params = from_playground("CartpoleBalance", episode_length=4)
    assert env.obs_shape == (5,) and env.action_shape == (1,)
    space = env.action_space(params)
    assert np.all(space.low == -1.0) and np.all(space.high == 1.0)
    run = make_side_by_side(env, cartpole_task, 9)
    ends = (3, 7)  # the time limit is a truncation, never a termination; episodes restart
    ad, ref = run(actions(9, 1), params, ends)
    assert_parity(ad, ref, ends)
    assert not ad["terminated"].any()


def test_action_repeat_steps_the_task_repeatedly_and_counts_like_episode_wrapper(
        cartpole_task):
    env, params = from_playground("CartpoleBalance", episode_length=5, action_repeat=2)
    # brax's EpisodeWrapper advances its counter by action_repeat: 2, 4, 6 >= 5.
    assert params.max_steps_in_episode == math.ceil(5 / 2) == 3
    ad, ref = make_side_by_side(env, cartpole_task, 4, repeat=2)(actions(4, 1, 1), params, (2,))
    assert_parity(ad, ref, (2,))


@pytest.mark.parametrize("name", ["PendulumSwingup", MULTI_JOINT])
def test_parity_with_the_tasks_own_functions(name):
    task = _task(name)
    env, params = from_playground(name)
    assert params.max_steps_in_episode == task._config.episode_length
    assert env.action_shape == (task.action_size,)
    run = make_side_by_side(env, task, 4, resets=False)
    assert_parity(*run(actions(4, task.action_size, 2), params))


# --------------------------------------------------------------------------- settings
def test_task_settings_and_overrides():
    env, params = from_playground("CartpoleBalance")
    assert isinstance(env, PlaygroundEnv) and env.name == "CartpoleBalance"
    assert env.task._config.impl == default_impl()  # "jax" on a CPU
    assert (params.max_steps_in_episode, env.action_repeat) == (1000, 1)  # the task's own
    env, params = from_playground("CartpoleBalance", config_overrides={"episode_length": 30,
                                                                       "action_repeat": 4})
    assert env.task._config.impl == default_impl()  # merged with the user's overrides
    assert (env.episode_length, env.action_repeat, params.max_steps_in_episode) == (30, 4, 8)
    env, params = from_playground("CartpoleBalance", config_overrides={"episode_length": 30},
                                  episode_length=12, action_repeat=5)
    assert (env.episode_length, env.action_repeat, params.max_steps_in_episode) == (12, 5, 3)
    with pytest.raises(ValueError, match="episode_length must be an integer >= 1, got 0"):
        from_playground("CartpoleBalance", episode_length=0)


# --------------------------------------------------------------------------- dict observations
class DictObsTask:
    """A Playground-style task without physics: dict observations and a step counter.

    The reward of the n-th step is n, so summed rewards show how many steps ran.
    """

    action_size = 2

    def reset(self, rng):
        x = jax.random.uniform(rng, (3,))
        return pg.State(data=jnp.zeros(()), obs=self._obs(x), reward=jnp.zeros(()),
                        done=jnp.zeros(()), metrics={}, info={"n": jnp.zeros(())})

    def step(self, state, action):
        x = state.obs["state"] + jnp.sum(action)
        n = state.info["n"] + 1.0
        return state.replace(obs=self._obs(x), reward=n, info={**state.info, "n": n})

    @staticmethod
    def _obs(x):
        return {"state": x, "privileged_state": jnp.concatenate([x, -x]),
                "pixels": jnp.zeros((4, 4, 1))}


def test_dict_observations_select_obs_key():
    task = DictObsTask()
    env, params = from_playground(task, episode_length=10)
    assert env.obs_shape == (3,) and env.action_shape == (2,)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    raw = task.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(obs, raw.obs["state"])
    obs, *_ = env.step(jax.random.PRNGKey(1), state, jnp.ones(2), params)
    np.testing.assert_array_equal(obs, task.step(raw, jnp.ones(2)).obs["state"])
    env, _ = from_playground(task, obs_key="privileged_state", episode_length=10)
    assert env.obs_shape == (6,)


def test_missing_or_non_flat_obs_key_is_refused_with_the_keys():
    with pytest.raises(ValueError, match="no observation key 'proprio'") as e:
        from_playground(DictObsTask(), obs_key="proprio")
    assert "'pixels', 'privileged_state', 'state'" in str(e.value)
    with pytest.raises(ValueError, match=r"'pixels' of shape \(4, 4, 1\).*flat"):
        from_playground(DictObsTask(), obs_key="pixels")
    with pytest.raises(ValueError, match="config_overrides and impl apply when building"):
        from_playground(DictObsTask(), config_overrides={"episode_length": 3})


def test_action_repeat_matches_brax_episode_wrapper():
    """Rewards summed over the repeats, truncation after ceil(episode_length / repeat) steps."""
    from brax.envs.wrappers.training import EpisodeWrapper

    ref = EpisodeWrapper(DictObsTask(), episode_length=5, action_repeat=2)
    env, params = from_playground(DictObsTask(), episode_length=5, action_repeat=2)
    key = jax.random.PRNGKey(0)
    raw = ref.reset(key)
    _, state = env.reset(key, params)
    for t in range(3):
        action = jnp.full((2,), 0.1 * (t + 1))
        _, state, reward, term, trunc, info = env.step(jax.random.PRNGKey(t), state, action,
                                                       params)
        raw = ref.step(raw, action)
        np.testing.assert_array_equal(info["final_observation"], raw.obs["state"])
        assert float(reward) == float(raw.reward)  # (1+2), (3+4), (5+6)
        assert bool(trunc) == bool(raw.done) == bool(raw.info["truncation"])
        assert not term
    assert bool(trunc) and t == 2


# --------------------------------------------------------------------------- refusals
@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt to fetch models or to build a task fails the test."""
    from mujoco_playground._src import mjx_env

    def forbidden(*args, **kwargs):
        raise AssertionError("a task was built or a download was attempted")

    monkeypatch.setattr(mjx_env, "ensure_menagerie_exists", forbidden)
    for module in (pg.registry, pg.locomotion, pg.manipulation, pg.dm_control_suite):
        monkeypatch.setattr(module, "load", forbidden)


@pytest.mark.parametrize("name", ["Go1JoystickFlatTerrain", "PandaPickCube"])
def test_network_tasks_are_refused_before_any_download(name, no_downloads):
    with pytest.raises(EnvSpecError) as e:
        from_playground(name)
    text = str(e.value)
    assert name in text and "mujoco_menagerie" in text and "download" in text
    assert "CartpoleBalance" in text and "WalkerWalk" in text  # the bundled tasks
    with pytest.raises(EnvSpecError, match=name):
        from_spec(f"playground:{name}")


def test_unknown_task_lists_close_matches_and_the_bundled_tasks(no_downloads):
    with pytest.raises(EnvSpecError, match="Did you mean: CartpoleBalance") as e:
        from_playground("CartpoleBalanse")
    assert ", ".join(bundled_tasks()) in str(e.value)
    with pytest.raises(EnvSpecError, match="Did you mean: Go1JoystickFlatTerrain"):
        from_spec("playground:Go1JoystickFlatTerain")
    assert set(bundled_tasks()) == set(pg.dm_control_suite.ALL_ENVS)


def test_missing_playground_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)
    with pytest.raises(ImportError) as e:
        from_playground("CartpoleBalance")
    assert str(e.value) == PLAYGROUND_HINT
    assert 'pip install "ddpg-jax[playground]"' in PLAYGROUND_HINT
    with pytest.raises(EnvSpecError, match=r'pip install "ddpg-jax\[playground\]"'):
        from_spec("playground:CartpoleBalance")


# --------------------------------------------------------------------------- training
def test_short_training_run_through_the_adapter():
    env, params = from_playground("CartpoleBalance", episode_length=20)
    config = DDPGConfig(total_steps=120, warmup_steps=40, **TINY)
    result = ddpg_jax.train(config, (env, params), num_seeds=2, log=None)
    assert result.env_steps == 120 and result.summary["num_seeds"] == 2
    assert result.summary["env_id"] == "CartpoleBalance"
    (last,) = result.evaluations  # eval_every=0: once, at the end
    returns = np.asarray(last["eval_returns"])
    assert returns.shape == (2, 2) and np.all(np.isfinite(returns))
    assert np.all((returns >= 0) & (returns <= 20))  # rewards in [0, 1], 20-step episodes
    # Each env finished a 20-step episode during its 30 steps: their returns are known.
    last_returns = np.asarray(result.final_state.last_return)
    assert last_returns.shape == (2, 4) and np.all(np.isfinite(last_returns))
    assert last["train_episode_return_mean"] == pytest.approx(float(np.mean(last_returns)))
    for leaf in jax.tree.leaves(result.train_state.actor_params):
        assert leaf.shape[0] == 2 and np.all(np.isfinite(leaf))
    assert np.all(np.isfinite(last["critic_loss"]))


@pytest.mark.slow
def test_two_seeds_learn_to_balance_cartpole_through_the_adapter():
    """TD3-style DDPG on CartpoleBalance (200-step episodes, reward in [0, 1] per step).

    Measured on a 2-core x86 CPU (about 4.5 minutes): the seeds' evaluations were 143 and
    161 after 5k steps, 149 and 188 after 10k, 198 and 185 after 15k, and 199.8 and 195.6
    after 20k. The threshold, 185 for each seed, is a pole kept up with the cart near the
    centre for at least 92% of the episode.
    """
    env, params = from_playground("CartpoleBalance", episode_length=200)
    config = DDPGConfig(total_steps=20_000, warmup_steps=1000, num_envs=4, eval_every=5000,
                        eval_episodes=4, hidden_sizes=(64, 64), batch_size=128)
    result = ddpg_jax.train(config, (env, params), num_seeds=2, log=None)
    final = np.asarray(result.evaluations[-1]["eval_return_mean_per_seed"])
    assert np.all(final >= 185.0), [e["eval_return_mean_per_seed"] for e in result.evaluations]


# --------------------------------------------------------------------------- command line
CLI_TRAIN = ["train", "--env", "playground:CartpoleBalance", "--backend", "jax",
             "--num-seeds", "2", "--num-envs", "4", "--warmup-steps", "40", "--batch-size", "32",
             "--hidden-sizes", "32,32", "--buffer-size", "400", "--eval-every", "40",
             "--eval-episodes", "2", "--quiet"]


def test_cli_train_evaluate_resume_and_plot(tmp_path, capsys):
    run = tmp_path / "run"
    # The resumed run finds its programs in the module's compilation cache only if they
    # are lowered to the same text: MJX's inner functions are numbered in the order this
    # process first traced them, so both runs start from empty in-memory caches.
    jax.clear_caches()
    code, out, err = _cli(capsys, [*CLI_TRAIN, "--total-steps", "80", "--out", str(run)])
    assert code == 0, err
    assert out.startswith("playground:CartpoleBalance 2 seed(s)"), out
    saved = json.loads((run / "config.json").read_text())
    assert (saved["env_id"], saved["backend"], saved["num_seeds"]) == (
        "playground:CartpoleBalance", "jax", 2)
    logged = read_jsonl(run / "evaluations.jsonl")[-1]

    # evaluate: on the JAX env, from the run's own evaluation states, so it repeats the
    # evaluation logged at the end of training.
    code, out, err = _cli(capsys, ["evaluate", "--checkpoint", str(run)])
    assert code == 0, err
    assert "playground:CartpoleBalance, checkpoint" in out and "over 4 episodes" in out, out
    per_seed = [float(line.split("mean ")[1].split()[0]) for line in out.splitlines()
                if line.strip().startswith("seed ")]
    np.testing.assert_allclose(per_seed, logged["eval_return_mean_per_seed"], atol=0.006)

    jax.clear_caches()
    code, out, err = _cli(capsys, ["train", "--resume", str(run), "--total-steps", "120",
                                   "--quiet"])
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["total_steps"] == 120 and summary["env_id"] == "playground:CartpoleBalance"
    resumed = read_jsonl(run / "evaluations.jsonl")
    assert [r["env_steps"] for r in resumed] == [80, 120]  # none at 40: still in warm-up

    # The resumed run is the uninterrupted one: every array of the last checkpoint (train
    # state, buffer, MJX env states, keys) and every evaluation record, bit for bit (the same
    # compiled programs on this machine: the chunks between evaluation points are equal).
    jax.clear_caches()
    whole = tmp_path / "whole"
    code, out, err = _cli(capsys, [*CLI_TRAIN, "--total-steps", "120", "--out", str(whole)])
    assert code == 0, err
    assert_identical_arrays(final_arrays(run), final_arrays(whole))
    uninterrupted = read_jsonl(whole / "evaluations.jsonl")
    assert len(uninterrupted) == len(resumed)
    for a, b in zip(resumed, uninterrupted):  # as JSON text, where NaN equals NaN
        assert json.dumps({k: v for k, v in a.items() if k != "wall_time_s"}, sort_keys=True) == (
            json.dumps({k: v for k, v in b.items() if k != "wall_time_s"}, sort_keys=True))

    pytest.importorskip("matplotlib")
    code, out, err = _cli(capsys, ["plot", str(run), "--out", str(tmp_path / "c.png")])
    assert code == 0, err
    assert (tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize("argv, needles", [
    (["--env", "playground:CartpoleBalanse"], ["Did you mean: CartpoleBalance"]),
    (["--env", "playground:Go1JoystickFlatTerrain"], ["mujoco_menagerie", "CartpoleBalance"]),
    (["--env", "nosuchfamily:Thing"], ["'nosuchfamily'", "playground:"]),
])
def test_cli_bad_env_specs_exit_2_with_one_paragraph(argv, needles, tmp_path, capsys,
                                                     no_downloads):
    out_dir = tmp_path / "run"
    code, out, err = _cli(capsys, ["train", *argv, "--backend", "jax", "--out", str(out_dir)])
    assert code == 2, (out, err)
    assert err.startswith("ddpg-jax: error: ") and "\n" not in err.strip(), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out_dir.exists()


def test_gymnasium_backend_points_family_specs_to_the_jax_backend(tmp_path, capsys):
    code, _, err = _cli(capsys, ["train", "--env", "playground:CartpoleBalance",
                                 "--out", str(tmp_path / "run")])
    assert code == 2 and "--backend jax" in err, err


# --------------------------------------------------------------------------- physics impl
def test_default_impl_is_warp_only_on_a_gpu_where_warp_imports(monkeypatch):
    from ddpg_jax.envs import playground_adapter as pa

    assert pa.default_impl() == ("warp" if jax.default_backend() == "gpu" and
                                 pa._warp_imports() else "jax")
    monkeypatch.setattr(pa.jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(pa, "_warp_imports", lambda: True)
    assert pa.default_impl() == "warp"
    monkeypatch.setattr(pa, "_warp_imports", lambda: False)
    assert pa.default_impl() == "jax"
    monkeypatch.setattr(pa.jax, "default_backend", lambda: "cpu")
    monkeypatch.setattr(pa, "_warp_imports", lambda: True)
    assert pa.default_impl() == "jax"


def test_impl_chosen_from_python_and_from_the_spec():
    env, _ = from_playground("CartpoleBalance", impl="jax")
    assert env.task._config.impl == "jax"
    env, _ = from_playground("CartpoleBalance", config_overrides={"impl": "jax"}, impl="jax")
    assert env.task._config.impl == "jax"
    env, _, spec = from_spec("playground:CartpoleBalance:impl=jax")
    assert env.task._config.impl == "jax" and spec == "playground:CartpoleBalance:impl=jax"


def test_bad_impl_refused_before_any_task_is_built(no_downloads, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown MuJoCo Playground physics impl 'wrap'; "
                                         r"accepted: 'jax', 'warp', or None"):
        from_playground("CartpoleBalance", impl="wrap")
    with pytest.raises(ValueError, match="disagree"):
        from_playground("CartpoleBalance", impl="jax", config_overrides={"impl": "warp"})
    with pytest.raises(ValueError, match="config_overrides and impl apply when building"):
        from_playground(DictObsTask(), impl="jax")
    with pytest.raises(EnvSpecError, match=r"unknown option 'imp=jax'.*impl=NAME.*jax, warp"):
        from_spec("playground:CartpoleBalance:imp=jax")
    with pytest.raises(EnvSpecError, match="unknown MuJoCo Playground physics impl 'cuda'"):
        from_spec("playground:CartpoleBalance:impl=cuda")
    monkeypatch.setitem(sys.modules, "warp", None)  # warp cannot be imported
    with pytest.raises(ImportError, match="impl 'warp' needs NVIDIA Warp.*pip install warp-lang"):
        from_playground("CartpoleBalance", impl="warp")
    with pytest.raises(EnvSpecError, match="pip install warp-lang"):
        from_spec("playground:CartpoleBalance:impl=warp")


@pytest.mark.parametrize("spec, needle", [
    ("playground:CartpoleBalance:impl=wrap", "accepted: 'jax', 'warp'"),
    ("playground:CartpoleBalance:impl=warp", "pip install warp-lang"),
])
def test_cli_bad_impl_exits_2(spec, needle, tmp_path, capsys, no_downloads, monkeypatch):
    monkeypatch.setitem(sys.modules, "warp", None)
    out_dir = tmp_path / "run"
    code, out, err = _cli(capsys, ["train", "--env", spec, "--backend", "jax",
                                   "--out", str(out_dir)])
    assert code == 2, (out, err)
    assert err.startswith("ddpg-jax: error: ") and "\n" not in err.strip(), err
    assert needle in err and not out_dir.exists()

"""The ``ddpg-jax`` command: refusals of bad input, and one short successful run."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from ddpg_jax.cli import main as cli
from ddpg_jax.config import DDPGConfig

# --------------------------------------------------------------------------- test-only envs
from ddpg_jax.envs.core import EnvSpecError
from ddpg_jax.envs.gymnasium_check import EnvSpec, check_env, check_spaces, env_factory


class _SpaceEnv(gym.Env):
    """An env that only has the given spaces (never stepped by these tests)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


_FLAT = spaces.Box(-1.0, 1.0, (3,), np.float32)
_BOUNDED = spaces.Box(-1.0, 1.0, (2,), np.float32)
TEST_ENVS = {
    "DdpgJaxTestUnboundedAction-v0": (_FLAT, spaces.Box(-np.inf, np.inf, (2,), np.float32)),
    "DdpgJaxTestHalfBoundedAction-v0": (
        _FLAT, spaces.Box(np.array([-1.0, -np.inf], np.float32), np.array([1.0, 1.0], np.float32))),
    "DdpgJaxTestDictObs-v0": (spaces.Dict({"pos": _FLAT, "vel": _FLAT}), _BOUNDED),
    "DdpgJaxTestImageObs-v0": (spaces.Box(0, 255, (8, 8, 3), np.uint8), _BOUNDED),
}
for _id, (_obs, _act) in TEST_ENVS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=_SpaceEnv,
                     kwargs={"observation_space": _obs, "action_space": _act})


PENDULUM_OK = ["--env", "Pendulum-v1"]


def _run(capsys, argv):
    """Calls main in-process; returns (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors exit instead of returning
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_error_paragraph(err: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("ddpg-jax: error: "), err
    assert err.count("ddpg-jax: error:") == 1, err
    assert "\n\n" not in err.strip(), err  # one paragraph
    assert err.endswith("\n")


BAD_INPUTS = {
    "unknown_env": (["train", "--env", "Pendulum-v2"], ["'Pendulum-v2'", "Pendulum-v1"]),
    "discrete_actions": (["train", "--env", "CartPole-v1"], ["Discrete", "Box"]),
    "unbounded_actions": (["train", "--env", "DdpgJaxTestUnboundedAction-v0"],
                          ["unbounded", "inf", "TransformAction"]),
    "half_bounded_actions": (["train", "--env", "DdpgJaxTestHalfBoundedAction-v0"],
                             ["unbounded"]),
    "dict_obs": (["train", "--env", "DdpgJaxTestDictObs-v0"], ["Dict", "FlattenObservation"]),
    "image_obs": (["train", "--env", "DdpgJaxTestImageObs-v0"], ["(8, 8, 3)", "flat"]),
    "tau_out_of_range": (["train", *PENDULUM_OK, "--tau", "2"], ["tau", "2.0", "(0, 1]"]),
    "gamma_out_of_range": (["train", *PENDULUM_OK, "--gamma", "1"], ["gamma", "1.0"]),
    "batch_not_int": (["train", *PENDULUM_OK, "--batch-size", "abc"], ["batch_size", "'abc'"]),
    "hidden_not_ints": (["train", *PENDULUM_OK, "--hidden-sizes", "64,x"], ["hidden_sizes"]),
    "batch_over_buffer": (["train", *PENDULUM_OK, "--batch-size", "512", "--buffer-size", "100"],
                          ["512", "100"]),
    "unknown_field": (["train", *PENDULUM_OK, "--gama", "0.9"], ["'--gama'", "Did you mean --gamma?"]),
    "unknown_field_eq": (["train", *PENDULUM_OK, "--gama=0.9"], ["Did you mean --gamma?"]),
    "unknown_field_2": (["train", *PENDULUM_OK, "--batchsize", "64"],
                        ["Did you mean --batch-size?"]),
    "stray_value": (["train", *PENDULUM_OK, "0.9"], ["0.9"]),
    "unknown_preset": (["train", *PENDULUM_OK, "--preset", "papr"], ["'papr'", "paper"]),
    "unknown_noise": (["train", *PENDULUM_OK, "--noise", "pink"], ["noise", "'pink'", "ou"]),
    "nstep_buffer_not_multiple": (["train", *PENDULUM_OK, "--n-step", "3", "--num-envs", "3",
                                   "--buffer-size", "1000"], ["n_step 3", "multiple of num_envs",
                                                              "999"]),
    "num_envs_over_buffer": (["train", *PENDULUM_OK, "--num-envs", "300", "--buffer-size",
                              "200", "--batch-size", "100"], ["num_envs 300", "buffer_size 200"]),
    "noise_scale_max_below": (["train", *PENDULUM_OK, "--noise-scale-max", "0.05"],
                              ["noise_scale_max 0.05", "noise_scale 0.1"]),
    "two_update_counts": (["train", *PENDULUM_OK, "--updates-per-vector-step", "2",
                           "--updates-per-step", "2"], ["updates_per_vector_step 2",
                                                        "updates_per_step",
                                                        "updates_per_env_step alone"]),
    "update_count_not_whole": (["train", *PENDULUM_OK, "--num-envs", "4",
                                "--updates-per-env-step", "1/8"],
                               ["updates_per_env_step 0.125", "num_envs 4", "k/4"]),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_refused_with_one_paragraph(name, tmp_path, monkeypatch, capsys):
    argv, needles = BAD_INPUTS[name]
    monkeypatch.chdir(tmp_path)  # the default run directory would go under ./runs
    out_dir = tmp_path / "run"
    code, out, err = _run(capsys, [*argv, "--out", str(out_dir)])
    assert code == 2, (code, out, err)
    _assert_one_error_paragraph(err)
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_input_without_out_creates_no_default_run_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, ["train", *PENDULUM_OK, "--tau", "0"])
    assert code == 2
    _assert_one_error_paragraph(err)
    assert list(tmp_path.iterdir()) == []


def test_missing_env_exits_2_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, ["train", "--tau", "0.1"])
    assert code == 2
    assert "Traceback" not in err and "--env" in err
    assert list(tmp_path.iterdir()) == []


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, _ = _run(capsys, [])
    assert code == 2
    assert "train" in out


@pytest.mark.parametrize("holder", ["file_in_dir", "out_is_file"])
def test_out_holding_a_file_is_refused_and_left_intact(holder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    payload = bytes(range(256)) * 4 + b"earlier run\n"
    if holder == "file_in_dir":
        out_dir = tmp_path / "run"
        out_dir.mkdir()
        target = out_dir / "summary.json"
    else:
        out_dir = tmp_path / "run.txt"
        target = out_dir
    target.write_bytes(payload)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    mtime = target.stat().st_mtime_ns
    code, _, err = _run(capsys, ["train", *PENDULUM_OK, "--total-steps", "600",
                                 "--warmup-steps", "300", "--out", str(out_dir)])
    assert code == 2
    _assert_one_error_paragraph(err)
    assert str(out_dir) in err
    assert target.read_bytes() == payload
    assert target.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# --------------------------------------------------------------------------- envcheck directly
@pytest.mark.parametrize(
    "obs_space,act_space,needle",
    [
        (_FLAT, spaces.Discrete(3), "Discrete"),
        (_FLAT, spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
        (_FLAT, spaces.Box(-1, 1, (2, 2), np.float32), "(2, 2)"),
        (_FLAT, spaces.Box(-np.inf, np.inf, (2,), np.float32), "unbounded"),
        (_FLAT, spaces.Box(np.array([0.0, 1.0], np.float32), np.array([1.0, 1.0], np.float32)),
         "high <= low"),
        (spaces.Dict({"a": _FLAT}), _BOUNDED, "Dict"),
        (spaces.Tuple((_FLAT, _FLAT)), _BOUNDED, "Tuple"),
        (spaces.Discrete(5), _BOUNDED, "Discrete"),
        (spaces.Box(0, 255, (8, 8, 3), np.uint8), _BOUNDED, "(8, 8, 3)"),
        (spaces.Box(0, 1, (4, 4), np.float32), _BOUNDED, "(4, 4)"),
    ],
)
def test_check_spaces_refusals(obs_space, act_space, needle):
    with pytest.raises(EnvSpecError) as info:
        check_spaces(obs_space, act_space, "'my-env'")
    msg = str(info.value)
    assert "'my-env'" in msg and needle in msg and "accepted" in msg, msg


def test_check_spaces_accepts_flat_box_and_asymmetric_bounds():
    obs = spaces.Box(-np.inf, np.inf, (5,), np.float64)  # unbounded observations are fine
    act = spaces.Box(np.array([0.0, -1.0], np.float32), np.array([3.0, 5.0], np.float32))
    spec = check_spaces(obs, act)
    assert isinstance(spec, EnvSpec)
    assert spec.obs_dim == 5
    assert spec.action_low.dtype == np.float32 and spec.action_high.dtype == np.float32
    np.testing.assert_array_equal(spec.action_low, [0.0, -1.0])
    np.testing.assert_array_equal(spec.action_high, [3.0, 5.0])
    spec = check_env(env_factory("Pendulum-v1"))
    assert spec.obs_dim == 3
    np.testing.assert_array_equal(spec.action_low, [-2.0])
    np.testing.assert_array_equal(spec.action_high, [2.0])


def test_env_factory_unknown_ids():
    with pytest.raises(EnvSpecError, match="Pendulum-v1"):
        env_factory("Pendulum-v2")
    with pytest.raises(EnvSpecError):
        env_factory(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- subprocess
def _subprocess(args, cwd):
    return subprocess.run([sys.executable, "-m", "ddpg_jax", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_subprocess_bad_input_exit_code(tmp_path):
    proc = _subprocess(["train", "--env", "Pendulum-v2", "--out", str(tmp_path / "run")], tmp_path)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    _assert_one_error_paragraph(proc.stderr)
    assert "Pendulum-v1" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    proc = _subprocess(["train", "--env", "Pendulum-v1", "--gama", "0.9"], tmp_path)
    assert proc.returncode == 2, proc
    _assert_one_error_paragraph(proc.stderr)
    assert "Did you mean --gamma?" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_subprocess_help(tmp_path):
    proc = _subprocess(["--help"], tmp_path)
    assert proc.returncode == 0, proc
    assert "train" in proc.stdout and "Traceback" not in proc.stderr


def test_train_help_lists_the_config_flags(capsys):
    code, out, _ = _run(capsys, ["train", "--help"])
    assert code == 0
    for field in dataclasses.fields(DDPGConfig):
        assert "--" + field.name.replace("_", "-") in out, field.name
    assert "--updates-per-step" not in out  # an earlier spelling, accepted but not shown
    for flag in ("--env", "--preset", "--out", "--quiet"):
        assert flag in out, flag


# --------------------------------------------------------------------------- a short run
def test_short_training_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "run"
    code, out, err = _run(capsys, [
        "train", "--env", "Pendulum-v1", "--total-steps", "600", "--warmup-steps", "200",
        "--batch-size", "32", "--hidden-sizes", "32,32", "--eval-every", "300",
        "--eval-episodes", "2", "--buffer-size", "1000", "--out", str(out_dir), "--quiet",
    ])
    assert code == 0, (out, err)
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing else in the cwd

    config_file = json.loads((out_dir / "config.json").read_text())
    assert config_file["env_id"] == "Pendulum-v1"
    assert config_file["preset"] == "default"
    asked = DDPGConfig(total_steps=600, warmup_steps=200, batch_size=32, hidden_sizes=(32, 32),
                       eval_every=300, eval_episodes=2, buffer_size=1000)
    assert DDPGConfig.from_dict(config_file["config"]) == asked

    summary = json.loads((out_dir / "summary.json").read_text())
    for key in ("env_id", "seed", "total_steps", "final_eval_return_mean",
                "final_eval_return_std", "eval_episodes", "wall_time_s", "steps_per_second",
                "versions"):
        assert key in summary, key
    assert summary["env_id"] == "Pendulum-v1"
    assert summary["seed"] == 0
    assert summary["total_steps"] == 600
    assert summary["eval_episodes"] == 2
    assert summary["wall_time_s"] > 0
    assert summary["steps_per_second"] == pytest.approx(600 / summary["wall_time_s"], rel=1e-6)
    # Pendulum returns over 200 steps lie in [-16.27 * 200, 0].
    assert -3300 < summary["final_eval_return_mean"] <= 0
    assert summary["final_eval_return_std"] >= 0

    import flax
    import jax
    import optax

    versions = summary["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["jax"] == jax.__version__
    assert versions["flax"] == flax.__version__
    assert versions["optax"] == optax.__version__
    assert versions["gymnasium"] == gym.__version__

    evals = [json.loads(line) for line in (out_dir / "evaluations.jsonl").read_text().splitlines()]
    assert [e["env_steps"] for e in evals] == [300, 600]
    assert evals[-1]["eval_return_mean"] == summary["final_eval_return_mean"]
    assert len(evals[-1]["eval_returns"]) == 2

    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out  # --quiet: only the final result line
    final = lines[-1]
    assert "final eval return" in final
    assert f"{summary['final_eval_return_mean']:.1f}" in final
    assert str(out_dir) in final

    # The directory now holds a run: a second run into it is refused, files untouched.
    before = {str(p): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    code, _, err = _run(capsys, ["train", "--env", "Pendulum-v1", "--out", str(out_dir)])
    assert code == 2
    _assert_one_error_paragraph(err)
    assert {str(p): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()} == before


def test_earlier_update_count_flags_and_file_keys_are_translated(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    small = ["--total-steps", "60", "--warmup-steps", "40", "--batch-size", "8",
             "--hidden-sizes", "8", "--eval-every", "0", "--eval-episodes", "1", "--quiet"]
    code, _, err = _run(capsys, ["train", *PENDULUM_OK, *small, "--num-envs", "4",
                                 "--updates-per-vector-step", "2", "--out", "flag"])
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("ddpg-jax: note:")]
    assert notes == ["ddpg-jax: note: updates_per_vector_step=2 is now written "
                     "updates_per_env_step=2/4 (gradient steps per env step, over all envs); "
                     "translated."], err
    saved = json.loads((tmp_path / "flag" / "config.json").read_text())["config"]
    assert saved["updates_per_env_step"] == 0.5 and "updates_per_vector_step" not in saved
    (tmp_path / "old.yaml").write_text("num_envs: 2\nupdates_per_step: 3\n")
    code, _, err = _run(capsys, ["train", *PENDULUM_OK, *small, "--config", "old.yaml",
                                 "--out", "file"])
    assert code == 0, err
    saved = json.loads((tmp_path / "file" / "config.json").read_text())["config"]
    assert saved["updates_per_env_step"] == 3.0 and saved["num_envs"] == 2


# --------------------------------------------------------------------------- changed presets
# The td3 preset's values before 2026-12-05 (now td3-2018 with the per-step schedule).
OLD_TD3 = dict(hidden_sizes=(400, 300), weight_init="fan_in_uniform", actor_lr=1e-3,
               critic_lr=1e-3, batch_size=100, tau=0.005, gamma=0.99, noise="gaussian",
               noise_scale=0.1, warmup_steps=1_000, num_critics=2, policy_delay=2,
               target_noise=0.2, target_noise_clip=0.5)


def test_a_changed_preset_prints_one_notice_and_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    small = ["--total-steps", "60", "--warmup-steps", "40", "--batch-size", "8",
             "--hidden-sizes", "8", "--eval-every", "0", "--eval-episodes", "1", "--quiet"]
    code, _, err = _run(capsys, ["train", *PENDULUM_OK, "--preset", "td3", *small,
                                 "--out", "new"])
    assert code == 0 and "Traceback" not in err, err
    notes = [line for line in err.splitlines() if line.startswith("ddpg-jax: note:")]
    assert len(notes) == 1 and "preset 'td3' changed its values on 2026-12-05" in notes[0], err
    assert "--preset td3-2018 --update-schedule step" in notes[0]
    saved = DDPGConfig.from_dict(json.loads((tmp_path / "new" / "config.json").read_text())[
        "config"])
    assert (saved.actor_lr, saved.batch_size, saved.update_schedule) == (3e-4, 8, "step")
    # The old values, as the notice says: no notice.
    code, _, err = _run(capsys, ["train", *PENDULUM_OK, "--preset", "td3-2018",
                                 "--update-schedule", "step", *small, "--out", "old"])
    assert code == 0 and "note:" not in err, err
    saved = DDPGConfig.from_dict(json.loads((tmp_path / "old" / "config.json").read_text())[
        "config"])
    assert saved == DDPGConfig(**{**OLD_TD3, "total_steps": 60, "warmup_steps": 40,
                                  "batch_size": 8, "hidden_sizes": (8,), "eval_every": 0,
                                  "eval_episodes": 1})


def test_a_run_saved_with_the_old_td3_resumes_with_its_own_values(tmp_path, monkeypatch, capsys):
    """A run directory made with --preset td3 before 2026-12-05: its config.json holds every
    field (the old values), so the resumed run keeps them, without a notice."""
    monkeypatch.chdir(tmp_path)
    old = DDPGConfig(**OLD_TD3, total_steps=1100, eval_every=0, eval_episodes=1,
                     buffer_size=5000)
    code, _, err = _run(capsys, ["train", *PENDULUM_OK, "--preset", "td3-2018",
                                 "--update-schedule", "step", "--total-steps", "1100",
                                 "--eval-every", "0", "--eval-episodes", "1", "--buffer-size",
                                 "5000", "--out", "run", "--quiet"])
    assert code == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert DDPGConfig.from_dict(saved["config"]) == old
    saved["preset"] = "td3"  # as the old preset's run wrote it
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))

    code, _, err = _run(capsys, ["train", "--resume", "run", "--total-steps", "1200",
                                 "--quiet"])
    assert code == 0 and "Traceback" not in err and "note:" not in err, err
    resumed = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resumed["preset"] == "td3"
    assert DDPGConfig.from_dict(resumed["config"]) == old.replace(total_steps=1200)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["total_steps"] == 1200
    # Its checkpoint loads with the old values (400-300 networks, not the new preset's 256-256).
    from ddpg_jax import load_policy

    policy = load_policy(tmp_path / "run")
    assert policy.config == old.replace(total_steps=1200)
    assert np.asarray(policy(np.zeros(3, np.float32))).shape == (1,)

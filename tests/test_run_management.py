"""Run management end to end: exact resume, signals, bad checkpoints, evaluate, plot, NaN guard.

The runs are tiny (16x16 networks, batch 32, a few thousand Pendulum steps) and
shared between tests through module fixtures, so the whole file stays short.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import gymnasium as gym
import jax
import numpy as np
import pytest
from helpers import Terminal as _Terminal
from helpers import final_arrays as _final_arrays
from helpers import run_cli as _cli

from ddpg_jax import DDPGConfig
from ddpg_jax.agent.nonfinite import NonFiniteError
from ddpg_jax.checkpoints import format as ckpt
from ddpg_jax.cli.main import main
from ddpg_jax.drivers.run_options import RunOptions
from ddpg_jax.records.writers import Progress, RunLog, read_jsonl

TOTAL = 3000
GYM = ["--env", "Pendulum-v1", "--warmup-steps", "200", "--batch-size", "32",
       "--hidden-sizes", "16,16", "--buffer-size", "5000", "--eval-every", "500",
       "--eval-episodes", "2"]
JAX = ["--env", "Pendulum-v1", "--backend", "jax", "--num-seeds", "2", "--num-envs", "2",
       "--warmup-steps", "200", "--batch-size", "32", "--hidden-sizes", "16,16",
       "--buffer-size", "1000", "--eval-every", "200", "--eval-episodes", "2"]


def _one_paragraph(err: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("ddpg-jax: error: ") and err.count("ddpg-jax: error:") == 1, err
    assert "\n" not in err.strip(), err


def _assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    assert any("actor_params" in k for k in a)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


# --------------------------------------------------------------------------- shared runs
@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """A persistent compilation cache shared by this module's runs (and its subprocesses).

    Every run here compiles the same few programs; with the cache only the first
    run of each pays for compilation. Restored afterwards for the other modules.
    """
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {n: getattr(jax.config, n) for n in names}
    path = tmp_path_factory.mktemp("jax-cache")
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield path
    for n, v in old.items():
        jax.config.update(n, v)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def gym_full(tmp_path_factory):
    """An uninterrupted gymnasium-backend run of TOTAL steps."""
    out = tmp_path_factory.mktemp("gym") / "full"
    assert main(["train", *GYM, "--total-steps", str(TOTAL), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def jax_full(tmp_path_factory):
    """An uninterrupted two-seed JAX-backend run of 800 steps."""
    out = tmp_path_factory.mktemp("jax") / "full"
    assert main(["train", *JAX, "--total-steps", "800", "--out", str(out), "--quiet"]) == 0
    return out


# --------------------------------------------------------------------------- exact resume
def test_gym_half_run_resumed_to_the_end_is_bit_identical(gym_full, tmp_path, capsys):
    out = tmp_path / "half"
    code, _, err = _cli(capsys, ["train", *GYM, "--total-steps", str(TOTAL // 2),
                                 "--out", str(out), "--quiet"])
    assert code == 0, err
    code, stdout, err = _cli(capsys, ["train", "--resume", str(out), "--total-steps", str(TOTAL),
                                      "--quiet"])
    assert code == 0, err
    _assert_identical(_final_arrays(gym_full), _final_arrays(out))
    full = {r["env_steps"]: r for r in read_jsonl(gym_full / "evaluations.jsonl")}
    resumed = read_jsonl(out / "evaluations.jsonl")
    assert [r["env_steps"] for r in resumed] == sorted(full)  # no step twice
    for r in resumed:
        assert r["eval_return_mean"] == full[r["env_steps"]]["eval_return_mean"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == TOTAL
    assert summary["final_eval_return_mean"] == full[TOTAL]["eval_return_mean"]
    assert json.loads((out / "config.json").read_text())["config"]["total_steps"] == TOTAL
    header = (out / "train_metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("env_steps", "critic_loss", "actor_loss", "q_mean", "steps_per_second"):
        assert col in header
    assert "eval_return_mean" in (out / "evaluations.csv").read_text().splitlines()[0]


def test_jax_run_interrupted_at_a_chunk_boundary_resumes_bit_identically(jax_full, tmp_path):
    from ddpg_jax import train
    from ddpg_jax.envs import make

    env, params = make("Pendulum-v1")
    config = DDPGConfig.from_dict(json.loads((jax_full / "config.json").read_text())["config"])
    chunks = []

    def stop_after_two_chunks() -> bool:
        chunks.append(1)
        return len(chunks) == 2

    first = train(config, (env, params), num_seeds=2, run_dir=tmp_path, log=None,
                  should_stop=stop_after_two_chunks)
    assert first.interrupted and first.env_steps == 600
    assert first.checkpoint.name == "step_000000000600"
    second = train(config, (env, params), num_seeds=2, run_dir=tmp_path, log=None,
                   resume_from=first.checkpoint)
    assert not second.interrupted and second.env_steps == 800
    _assert_identical(_final_arrays(jax_full), _final_arrays(tmp_path))
    logged = read_jsonl(jax_full / "evaluations.jsonl")
    assert [r["env_steps"] for r in second.evaluations] == [r["env_steps"] for r in logged]
    assert second.evaluations[-1]["eval_returns"] == logged[-1]["eval_returns"]
    # The batched state really holds two different seeds.
    actor = _final_arrays(tmp_path)["state/agent/train_state/actor_params/MLP_0/Dense_0/kernel"]
    assert actor.shape[0] == 2 and not np.array_equal(actor[0], actor[1])


# --------------------------------------------------------------------------- signals
def _start(args, cwd):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1",
           "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or "",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    return subprocess.Popen([sys.executable, "-m", "ddpg_jax", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc, prefix: str, timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    proc.kill()
    raise AssertionError(f"no line starting with {prefix!r}; stderr: {proc.stderr.read()[-2000:]}")


def test_sigint_checkpoints_and_the_printed_command_resumes_exactly(gym_full, tmp_path, capsys):
    out = tmp_path / "interrupted"
    proc = _start(["train", *GYM, "--total-steps", str(TOTAL), "--out", str(out)], tmp_path)
    _wait_for_line(proc, "step ")  # the first evaluation: training is under way
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-2000:]
    assert "Traceback" not in stderr and "SIGINT received" in stderr
    command = f"ddpg-jax train --resume {out}"
    assert command in stdout, stdout
    saved = ckpt.latest(ckpt.checkpoint_dir(out))
    assert 500 <= ckpt.open_checkpoint(saved).step < TOTAL
    assert not (out / "summary.json").exists()
    code, _, err = _cli(capsys, command.split()[1:] + ["--quiet"])
    assert code == 0, err
    _assert_identical(_final_arrays(gym_full), _final_arrays(out))


def test_second_signal_exits_at_once_and_the_last_checkpoint_resumes(gym_full, tmp_path,
                                                                      capsys):
    out = tmp_path / "run"
    # Frequent checkpoints, so the signals are likely to land while one is being written.
    proc = _start(["train", *GYM, "--total-steps", str(TOTAL), "--checkpoint-every", "100",
                   "--out", str(out)], tmp_path)
    _wait_for_line(proc, "step ")
    deadline = time.monotonic() + 60
    while ckpt.latest(ckpt.checkpoint_dir(out)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    # Sent back to back, the two signals may be handled in either order (the process can
    # take the first while XLA's threads run): the one handled second exits at once.
    first, second = ((signal.SIGINT, signal.SIGTERM) if "SIGINT received" in stderr
                     else (signal.SIGTERM, signal.SIGINT))
    assert f"{first.name} received" in stderr, stderr[-2000:]
    assert f"second {second.name}: exiting now" in stderr, stderr[-2000:]
    assert proc.returncode == 128 + second, stderr[-2000:]
    assert "Traceback" not in stderr
    found = ckpt.list_checkpoints(ckpt.checkpoint_dir(out))
    assert found and all(ckpt.open_checkpoint(p) for _, p in found)  # all complete, verified
    assert found[-1][0] < TOTAL
    # The last complete checkpoint continues the run exactly.
    code, _, err = _cli(capsys, ["train", "--resume", str(out), "--quiet"])
    assert code == 0, err
    _assert_identical(_final_arrays(gym_full), _final_arrays(out))


# --------------------------------------------------------------------------- bad checkpoints
def test_corrupted_latest_checkpoint_is_refused_and_earlier_ones_stay(gym_full, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(gym_full, run)
    found = ckpt.list_checkpoints(ckpt.checkpoint_dir(run))
    assert len(found) >= 2
    latest, earlier = found[-1][1], found[-2][1]
    victim = max((p for p in (latest / "state").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    before = sorted(str(p) for p in run.rglob("*"))
    code, _, err = _cli(capsys, ["train", "--resume", str(run), "--total-steps", "4000"])
    assert code == 2
    _one_paragraph(err)
    assert "corrupted" in err and str(latest) in err and str(earlier) in err
    assert sorted(str(p) for p in run.rglob("*")) == before  # nothing moved or deleted
    assert ckpt.load_flat(ckpt.open_checkpoint(earlier), "state")


def test_incompatible_config_or_format_is_refused(gym_full, tmp_path, capsys):
    code, _, err = _cli(capsys, ["train", "--resume", str(gym_full), "--hidden-sizes", "32,32",
                                 "--total-steps", "4000"])
    assert code == 2
    _one_paragraph(err)
    assert "--hidden-sizes 32,32" in err and "16, 16" in err
    # A checkpoint written under another config than the run's config.json.
    run = tmp_path / "other"
    shutil.copytree(gym_full, run)
    info = json.loads((run / "config.json").read_text())
    info["config"]["hidden_sizes"] = [32, 32]
    (run / "config.json").write_text(json.dumps(info))
    code, _, err = _cli(capsys, ["train", "--resume", str(run), "--total-steps", "4000"])
    assert code == 2
    _one_paragraph(err)
    assert "hidden_sizes" in err and "another config" in err
    # A checkpoint of another format version.
    run = tmp_path / "version"
    shutil.copytree(gym_full, run)
    latest = ckpt.latest(ckpt.checkpoint_dir(run))
    manifest = json.loads((latest / ckpt.MANIFEST).read_text())
    manifest["format_version"] = 99
    (latest / ckpt.MANIFEST).write_text(json.dumps(manifest))
    code, _, err = _cli(capsys, ["train", "--resume", str(run), "--total-steps", "4000"])
    assert code == 2
    _one_paragraph(err)
    assert "format version 99" in err
    # The library refuses a config that changes shapes, before training.
    from ddpg_jax import train
    from ddpg_jax.config import ConfigError

    config = DDPGConfig.from_dict(json.loads((gym_full / "config.json").read_text())["config"])
    with pytest.raises(ConfigError, match="hidden_sizes"):
        train(config.replace(hidden_sizes=(8,), total_steps=4000), "Pendulum-v1", log=None,
              resume_from=ckpt.latest(ckpt.checkpoint_dir(gym_full)))


def test_a_finished_run_needs_more_total_steps_to_resume(gym_full, capsys):
    code, _, err = _cli(capsys, ["train", "--resume", str(gym_full)])
    assert code == 2
    _one_paragraph(err)
    assert f"already reached {TOTAL}" in err and "--total-steps" in err


@pytest.mark.parametrize("argv, needle", [
    (["--checkpoint-every", "-5"], "--checkpoint-every"),
    (["--checkpoint-every", "x"], "--checkpoint-every"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints"),
    (["--resume", "nowhere"], "neither a run directory"),
])
def test_bad_run_options_are_refused_before_anything_runs(argv, needle, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, ["train", "--env", "Pendulum-v1", *argv])
    assert code == 2
    _one_paragraph(err)
    assert needle in err
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_a_new_out_or_another_env(gym_full, capsys):
    code, _, err = _cli(capsys, ["train", "--resume", str(gym_full), "--out", "elsewhere"])
    assert code == 2 and "--out cannot be combined with --resume" in err
    code, _, err = _cli(capsys, ["train", "--resume", str(gym_full), "--env",
                                 "MountainCarContinuous-v0", "--total-steps", "4000"])
    assert code == 2 and "--env MountainCarContinuous-v0" in err
    _one_paragraph(err)


def test_missing_tensorboard_is_named_with_its_pip_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, ["train", "--env", "Pendulum-v1", "--tensorboard"])
    assert code == 2
    _one_paragraph(err)
    assert "pip install 'ddpg-jax[tensorboard]'" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- evaluate and plot
def test_evaluate_a_saved_policy_prints_mean_and_std(gym_full, jax_full, capsys):
    code, out, err = _cli(capsys, ["evaluate", "--checkpoint", str(gym_full)])
    assert code == 0, err
    line = out.strip().splitlines()[-1]
    assert "eval return mean" in line and " std " in line and "over 2 episodes" in line
    # The default episodes are the run's evaluation episodes: the logged return comes back.
    logged = read_jsonl(gym_full / "evaluations.jsonl")[-1]["eval_return_mean"]
    assert f"mean {logged:.2f} std" in line
    code, out, err = _cli(capsys, ["evaluate", "--checkpoint", str(jax_full), "--episodes", "3",
                                   "--select", "best"])
    assert code == 0, err
    assert out.count("  seed ") == 2 and "over 6 episodes" in out
    code, _, err = _cli(capsys, ["evaluate", "--checkpoint", str(gym_full / "nope")])
    assert code == 2
    _one_paragraph(err)


def test_evaluate_video_needs_its_extra_or_writes_videos(gym_full, tmp_path, capsys):
    videos = tmp_path / "videos"
    code, out, err = _cli(capsys, ["evaluate", "--checkpoint", str(gym_full), "--episodes", "1",
                                   "--video", str(videos)])
    try:
        import moviepy  # noqa: F401
    except ImportError:
        assert code == 2
        _one_paragraph(err)
        assert "pip install 'ddpg-jax[video]'" in err
        return
    assert code == 0, err
    assert list(videos.glob("*.mp4"))


def test_plot_writes_a_png_of_runs_grouped_by_config(gym_full, jax_full, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    png = tmp_path / "plots" / "curves.png"
    code, out, err = _cli(capsys, ["plot", str(gym_full), str(jax_full), "--out", str(png)])
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    from ddpg_jax.records.plot import load_curves

    curves = load_curves(jax_full)
    assert len(curves) == 2 and curves[0].group == curves[1].group
    assert not np.array_equal(curves[0].returns, curves[1].returns)
    assert load_curves(gym_full)[0].group != curves[0].group
    code, _, err = _cli(capsys, ["plot", str(tmp_path), "--out", str(png)])
    assert code == 2 and "not a ddpg-jax run directory" in err


# --------------------------------------------------------------------------- NaN guard
class NanAfterEnv(gym.Env):
    """A Pendulum-sized env whose reward turns NaN after ``bad_after`` steps."""

    def __init__(self, bad_after: int = 700):
        self.bad_after = bad_after
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.count = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-1, 1, 3)
        return self.state.astype(np.float32), {}

    def step(self, action):
        self.count += 1
        self.state = np.clip(self.state + 0.1 * float(action[0]), -1, 1)
        reward = float("nan") if self.count > self.bad_after else -float(np.sum(self.state ** 2))
        return self.state.astype(np.float32), reward, False, False, {}


if "DdpgJaxTestNanReward-v0" not in gym.registry:
    gym.register("DdpgJaxTestNanReward-v0", entry_point=NanAfterEnv, max_episode_steps=50)


def test_nan_reward_stops_the_run_naming_step_and_quantity(tmp_path, capsys):
    out = tmp_path / "nan"
    args = [*GYM[2:], "--env", "DdpgJaxTestNanReward-v0"]  # same shapes: compiled programs reused
    code, _, err = _cli(capsys, ["train", *args, "--total-steps", "2000",
                                 "--checkpoint-every", "300", "--out", str(out)])
    assert code == 1
    _one_paragraph(err)
    assert "non-finite reward" in err and "env step 701" in err
    kept = ckpt.latest(ckpt.checkpoint_dir(out))
    assert kept.name == "step_000000000600" and str(kept) in err
    arrays = ckpt.load_flat(ckpt.open_checkpoint(kept), "state")
    assert all(np.all(np.isfinite(v)) for v in arrays.values() if v.dtype.kind == "f")
    assert not (out / "summary.json").exists()


def test_exploding_learning_rate_is_caught_on_the_device(tmp_path):
    from ddpg_jax import train

    config = DDPGConfig(total_steps=600, warmup_steps=200, batch_size=32, hidden_sizes=(16, 16),
                        buffer_size=5000, eval_every=500, eval_episodes=2, critic_lr=1e30)
    with pytest.raises(NonFiniteError) as info:
        train(config, "Pendulum-v1", log=None, run_dir=tmp_path,
              options=RunOptions(checkpoint_every=150))
    e = info.value
    assert e.quantity in ("critic_loss", "q_mean", "target_mean", "critic_grad_norm",
                          "critic parameters", "actor_loss", "actor_grad_norm",
                          "actor parameters")
    assert 200 < e.env_step <= 600 and f"env step {e.env_step}" in str(e)
    for _, path in ckpt.list_checkpoints(ckpt.checkpoint_dir(tmp_path)):
        assert ckpt.open_checkpoint(path).step < e.env_step


# --------------------------------------------------------------------------- logs and progress
def test_run_log_truncates_on_resume_and_writes_tensorboard(tmp_path):
    log = RunLog(tmp_path)
    for step in (100, 200, 300):
        log.evaluation({"env_steps": step, "eval_return_mean": -step, "eval_returns": [1, 2],
                        "per_seed": [1.5, 2.5]})
        log.chunk({"env_steps": step, "critic_loss": 0.5, "steps_per_second": 10.0})
    log.close()
    header = (tmp_path / "evaluations.csv").read_text().splitlines()[0]
    assert header == "env_steps,eval_return_mean,per_seed_0,per_seed_1"
    tensorboard = pytest.importorskip("tensorboard")
    del tensorboard
    log = RunLog(tmp_path, tensorboard=True, resume_step=200)
    assert [r["env_steps"] for r in read_jsonl(tmp_path / "evaluations.jsonl")] == [100, 200]
    assert len((tmp_path / "train_metrics.csv").read_text().splitlines()) == 3
    log.evaluation({"env_steps": 250, "eval_return_mean": -1.0})
    log.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/eval_return_mean")] == [250]


def test_progress_bar_only_on_a_terminal_and_not_when_quiet():
    plain = io.StringIO()
    bar = Progress(1000, 0, stream=plain)
    bar.update(500)
    bar.write("a line")
    bar.close()
    assert plain.getvalue() == "a line\n"
    quiet = _Terminal()
    Progress(1000, 0, enabled=False, stream=quiet).update(10)
    assert quiet.getvalue() == ""
    term = _Terminal()
    bar = Progress(1000, 200, stream=term)
    bar.update(600)
    bar.set_eval(-123.4)
    bar.update(1000)
    bar.close()
    shown = term.getvalue()
    assert "1000/1000" in shown and "step/s" in shown and "eval return -123.4" in shown

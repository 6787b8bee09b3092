"""Checkpoints describe their policy; `ddpg-jax export` serialises it; loading needs no gymnasium.

Tiny gymnasium-backend runs (module fixtures) are exported and checked against a
reference computed from the train state alone, in float64 numpy: the observation
normalised with the run's statistics, the actor's layers, tanh, the affine map to the
bounds. The loaded checkpoint and the exported file are separate compiled programs (and the
exported one may run on another machine), so they are compared with the reference within a
forward error bound of float32 arithmetic (:func:`_reference_actions`), never bit for bit.
A fresh process that cannot import gymnasium loads and acts with both the exported file and
the checkpoint; bad input is refused with exit code 2 and nothing written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import run_cli as _cli

import ddpg_jax
from ddpg_jax.checkpoints.format import CheckpointError, checkpoint_dir, latest
from ddpg_jax.cli.main import main
from ddpg_jax.policy.export import PLATFORMS
from ddpg_jax.policy.exported import (
    EXPORT_FORMAT_VERSION,
    ExportedPolicy,
    ExportError,
    load_exported,
    sidecar_path,
)

TRAIN = ["train", "--env", "Pendulum-v1", "--total-steps", "400", "--warmup-steps", "100",
         "--batch-size", "32", "--hidden-sizes", "16,16", "--eval-every", "200",
         "--eval-episodes", "2", "--buffer-size", "500", "--obs-norm", "true", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> ddpg_jax.TrainResult:
    """The same settings as ``run`` trained from Python, which hands back its train state."""
    config = ddpg_jax.DDPGConfig(total_steps=400, warmup_steps=100, batch_size=32,
                                 hidden_sizes=(16, 16), eval_every=200, eval_episodes=2,
                                 buffer_size=500, obs_norm=True)
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    return ddpg_jax.train(config, "Pendulum-v1", run_dir=run_dir, log=None)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "pendulum.jaxexport"
    assert main(["export", "--checkpoint", str(trained.checkpoint), "--out", str(out)]) == 0
    return out


# A float32 rounding (round to nearest) moves a value by at most U times its size.
U = float(np.finfo(np.float32).eps) / 2
# XLA's float32 tanh is an approximation, not the correctly rounded value: 2.7e-7 from the
# float64 tanh at most on a 2e6-point grid over [-10, 10] (x86 CPU, jaxlib 0.10.2). Another
# machine's kernel may differ; 1e-6 (about 8 ulps at 1) leaves room for that.
TANH_ERR = 1e-6


def _reference_actions(ts, obs: np.ndarray, low, high) -> tuple[np.ndarray, np.ndarray]:
    """The policy's actions from ``ts`` alone, in float64, and a bound on float32's error.

    The actor is an MLP (ReLU hidden layers, flax ``Dense_i`` in order) whose tanh output
    is mapped affinely to ``[low, high]``; observations are normalised by the run's
    statistics, ``(obs - mean) / sqrt(var + 1e-8)`` clipped to +-10. The bound follows the
    standard forward error analysis of a dot product of length k
    (``|fl(x.w) - x.w| <= gamma_k |x|.|w|`` with ``gamma_k = k U / (1 - k U)``), carried
    through the layers with ReLU and tanh being 1-Lipschitz, plus a few roundings for the
    normalisation and the affine map. Any float32 evaluation, on any machine and in any
    summation order, lies within it; wrong wiring (no normalisation, another scaling, a
    missing layer) moves actions by orders of magnitude more.
    """
    f64 = lambda x: np.asarray(x, np.float64)
    stats = ts.obs_stats
    z = (f64(obs) - f64(stats.mean)) / np.sqrt(f64(stats.var) + 1e-8)
    err = 4 * U * np.abs(z)  # the subtraction, the sum, the square root and the division
    z = np.clip(z, -10.0, 10.0)
    layers = ts.actor_params["MLP_0"]
    names = sorted(layers, key=lambda name: int(name.split("_")[1]))
    for i, name in enumerate(names):
        w, b = f64(layers[name]["kernel"]), f64(layers[name]["bias"])
        k = w.shape[0] + 1
        gamma = k * U / (1 - k * U)
        y = z @ w + b
        err = err @ np.abs(w) + gamma * ((np.abs(z) + err) @ np.abs(w) + np.abs(b))
        if i < len(names) - 1:
            z = np.maximum(y, 0.0)
    half = 0.5 * (f64(high) - f64(low))
    action = f64(low) + (np.tanh(y) + 1.0) * half
    err = (err + TANH_ERR) * half + 4 * U * (np.abs(action) + np.abs(f64(low)))
    return action, err


def _assert_acts_as(ts, actions, obs, low=(-2.0,), high=(2.0,), name="") -> None:
    """``actions`` are the reference's for ``obs`` within the float32 error bound."""
    want, bound = _reference_actions(ts, obs, low, high)
    gap = np.abs(np.asarray(actions, np.float64) - want)
    assert np.all(gap <= bound), (name, gap.max(), bound[gap > bound])


def _obs(n: int, seed: int = 0) -> np.ndarray:
    # Far from the normalisation statistics too, so clipping and bounds are exercised.
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * [1.0, 1.0, 8.0]).astype(np.float32)


def _listing(*dirs: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in dirs for p in sorted(d.rglob("*")) if p.is_file()}


def _refused(capsys, argv: list[str], *needles: str) -> str:
    code, _, err = _cli(capsys, argv)
    assert code == 2, err
    assert err.startswith("ddpg-jax: error: ") and err.count("\n") == 1, err  # one paragraph
    for needle in needles:
        assert needle in err, err
    return err


# --------------------------------------------------------------------------- the policy record
def test_every_checkpoint_describes_its_policy(run):
    for path in sorted(checkpoint_dir(run).glob("step_*")):
        meta = json.loads((path / "meta.json").read_text())
        record = meta["policy"]
        assert record["obs_dim"] == 3 and record["action_dim"] == 1
        assert record["observation"] == {"layout": "flat", "space": "Box", "shape": [3],
                                         "dtype": "float32"}
        assert record["action_low"] == [-2.0] and record["action_high"] == [2.0]
        assert record["preset"] == "default" and meta["config"]["obs_norm"] is True
        norm = record["obs_norm"]
        assert norm["enabled"] and norm["count"] == meta["step"]
        assert len(norm["mean"]) == len(norm["var"]) == 3
    # The statistics recorded are the train state's.
    policy = ddpg_jax.load_policy(run)
    stats = policy.train_states[0].obs_stats
    np.testing.assert_array_equal(np.asarray(record["obs_norm"]["mean"], np.float32),
                                  np.asarray(stats.mean))


# --------------------------------------------------------------------------- export
def test_exported_policy_and_checkpoint_act_as_the_train_state_on_any_batch(trained,
                                                                            exported):
    ts = trained.train_state
    policy = ddpg_jax.load_policy(trained.checkpoint)
    loaded = ddpg_jax.load_policy(exported)
    assert isinstance(loaded, ExportedPolicy)
    assert tuple(loaded.exported.platforms) == PLATFORMS  # lowered for CUDA too, without a GPU
    in_process, from_file = policy.act_fn(), loaded.act_fn()
    for n in (64, 1, 7):
        obs = _obs(n, seed=n)
        a = from_file(obs)
        assert a.shape == (n, 1) and a.dtype == np.float32
        _assert_acts_as(ts, a, obs, name=f"exported, batch {n}")
        _assert_acts_as(ts, in_process(obs), obs, name=f"checkpoint, batch {n}")
        assert np.all(a >= -2.0) and np.all(a <= 2.0)
    # One observation runs the batch-of-one program: the same numbers as a batch of one.
    single = _obs(1)[0]
    np.testing.assert_array_equal(from_file(single), from_file(single[None])[0])
    np.testing.assert_array_equal(in_process(single), in_process(single[None])[0])
    # The sidecar describes it.
    meta = json.loads(sidecar_path(exported).read_text())
    assert meta["format_version"] == EXPORT_FORMAT_VERSION and meta["obs_dim"] == 3
    assert meta["action_dim"] == 1 and meta["action_low"] == [-2.0]
    assert meta["action_high"] == [2.0] and meta["env_id"] == "Pendulum-v1"
    assert meta["observation"]["layout"] == "flat" and meta["obs_norm"]["enabled"]
    assert meta["source"]["step"] == 400 and meta["source"]["checkpoint"] == str(
        Path(trained.checkpoint).absolute())
    assert meta["versions"]["ddpg_jax"] == ddpg_jax.__version__ and meta["versions"]["jax"]
    assert meta["config"]["hidden_sizes"] == [16, 16]
    assert loaded.config.obs_norm and loaded.checkpoint.step == 400
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        from_file(np.zeros((2, 4), np.float32))


def test_loading_and_acting_need_no_gymnasium(trained, exported, tmp_path):
    obs = _obs(5, seed=11)
    child = textwrap.dedent("""
        import json, sys

        class NoGymnasium:  # any import of gymnasium fails in this process
            def find_spec(self, name, path=None, target=None):
                if name == "gymnasium" or name.startswith("gymnasium."):
                    raise ImportError("gymnasium is blocked in this process")
                return None

        sys.meta_path.insert(0, NoGymnasium())
        import numpy as np
        from ddpg_jax.policy.exported import load_exported
        import ddpg_jax

        exported, run = sys.argv[1], sys.argv[2]
        obs = np.asarray(json.loads(sys.argv[3]), np.float32)
        out = {
            "load_exported": load_exported(exported).act_fn()(obs).tolist(),
            "load_policy(file)": ddpg_jax.load_policy(exported).act_fn()(obs).tolist(),
            "load_policy(run)": ddpg_jax.load_policy(run).act_fn()(obs).tolist(),
        }
        assert "gymnasium" not in sys.modules, "gymnasium was imported"
        print(json.dumps(out))
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", child, str(exported), str(trained.checkpoint),
                           json.dumps(obs.tolist())], check=False, capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, actions in got.items():
        _assert_acts_as(trained.train_state, np.asarray(actions, np.float32), obs, name=name)


def test_export_refuses_an_existing_out_unless_forced(trained, exported, capsys):
    before = _listing(exported.parent)
    _refused(capsys, ["export", "--checkpoint", str(trained.checkpoint), "--out", str(exported)],
             "already exist", "--force")
    assert _listing(exported.parent) == before
    # A sidecar alone also blocks the name.
    lone = exported.parent / "lone.jaxexport"
    sidecar_path(lone).write_text("{}")
    _refused(capsys, ["export", "--checkpoint", str(trained.checkpoint), "--out", str(lone)], "already exist")
    assert not lone.exists()
    sidecar_path(lone).unlink()
    code, out, err = _cli(capsys, ["export", "--checkpoint", str(trained.checkpoint), "--out", str(exported),
                                   "--force"])
    assert code == 0, err
    assert "exported the policy of" in out
    assert _listing(exported.parent).keys() == before.keys()  # replaced, nothing else written
    obs = _obs(8)
    _assert_acts_as(trained.train_state, load_exported(exported).act_fn()(obs), obs)


def _copy_checkpoint(run: Path, dest: Path) -> Path:
    shutil.copytree(latest(checkpoint_dir(run)), dest)
    return dest


def _rewrite_manifest(ckpt: Path, **changes) -> None:
    import hashlib

    manifest = json.loads((ckpt / "manifest.json").read_text())
    meta = ckpt / "meta.json"
    manifest["files"]["meta.json"] = {"size": meta.stat().st_size,
                                      "sha256": hashlib.sha256(meta.read_bytes()).hexdigest()}
    manifest.update(changes)
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def test_export_refuses_corrupt_or_foreign_checkpoints_writing_nothing(run, tmp_path, capsys):
    out = tmp_path / "out" / "policy.jaxexport"
    corrupt = _copy_checkpoint(run, tmp_path / "corrupt")
    victim = next(p for p in sorted((corrupt / "state").rglob("*")) if p.is_file()
                  and p.stat().st_size > 0)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    _refused(capsys, ["export", "--checkpoint", str(corrupt), "--out", str(out)], "corrupted")
    newer = _copy_checkpoint(run, tmp_path / "newer")
    _rewrite_manifest(newer, format_version=99)
    _refused(capsys, ["export", "--checkpoint", str(newer), "--out", str(out)],
             "format version 99")
    _refused(capsys, ["export", "--checkpoint", str(tmp_path / "nowhere"), "--out", str(out)])
    _refused(capsys, ["export", "--checkpoint", str(run), "--out", str(out), "--seed-index",
                      "1"], "--seed-index 1", "1 seed(s)")
    assert not (tmp_path / "out").exists()


def test_loading_an_exported_file_refuses_newer_versions_and_missing_sidecars(
        exported, run, tmp_path, capsys):
    newer = tmp_path / "newer.jaxexport"
    shutil.copy(exported, newer)
    meta = json.loads(sidecar_path(exported).read_text())
    sidecar_path(newer).write_text(json.dumps({**meta, "format_version": 7}))
    with pytest.raises(ExportError, match=r"format version 7.*format version 1"):
        load_exported(newer)
    # The evaluate command reads exported files too, and refuses the same way.
    _refused(capsys, ["evaluate", "--checkpoint", str(newer)], "format version 7",
             f"format version {EXPORT_FORMAT_VERSION}")
    lone = tmp_path / "lone.jaxexport"
    shutil.copy(exported, lone)
    with pytest.raises(ExportError, match="no sidecar"):
        ddpg_jax.load_policy(lone)
    altered = tmp_path / "altered.jaxexport"
    altered.write_bytes(exported.read_bytes()[:-10])
    shutil.copy(sidecar_path(exported), sidecar_path(altered))
    with pytest.raises(ExportError, match="does not match its sidecar"):
        ddpg_jax.load_policy(altered)
    assert issubclass(ExportError, CheckpointError)


def test_evaluate_runs_an_exported_policy(exported, run, capsys):
    code, out, err = _cli(capsys, ["evaluate", "--checkpoint", str(exported)])
    assert code == 0, err
    _, logged, _ = _cli(capsys, ["evaluate", "--checkpoint", str(run)])
    # Same policy, same episodes: the same returns as the checkpoint's.
    assert out.split("eval return")[1] == logged.split("eval return")[1]


def test_a_checkpoint_without_a_policy_record_falls_back_to_its_env(run, tmp_path):
    old = _copy_checkpoint(run, tmp_path / "step_000000000400")
    meta = json.loads((old / "meta.json").read_text())
    del meta["policy"]
    (old / "meta.json").write_text(json.dumps(meta))
    _rewrite_manifest(old)
    policy = ddpg_jax.load_policy(old)
    assert policy.record is None
    obs = _obs(9)
    np.testing.assert_array_equal(policy.act_fn()(obs), ddpg_jax.load_policy(run).act_fn()(obs))


def test_jax_backend_checkpoints_load_per_seed_without_the_env(tmp_path, capsys):
    config = ddpg_jax.DDPGConfig(total_steps=200, warmup_steps=50, batch_size=16,
                                 hidden_sizes=(8,), buffer_size=256, eval_every=0,
                                 eval_episodes=1, obs_norm=True)
    env = ddpg_jax.envs.make("MountainCarContinuous-v0")
    result = ddpg_jax.train(config, env, num_seeds=2, run_dir=tmp_path / "run", log=None)
    record = json.loads((result.checkpoint / "meta.json").read_text())["policy"]
    assert record["seed_axis"] and len(record["obs_norm"]["mean"]) == 2
    assert record["obs_dim"] == 2 and record["action_low"] == [-1.0]
    policy = ddpg_jax.load_policy(tmp_path / "run")
    assert policy.num_seeds == 2
    obs = np.random.default_rng(1).uniform(-1, 1, (6, 2)).astype(np.float32)
    out = tmp_path / "seed1.jaxexport"
    code, _, err = _cli(capsys, ["export", "--checkpoint", str(tmp_path / "run"), "--out",
                                 str(out), "--seed-index", "1"])
    assert code == 0, err
    seed1 = jax.tree_util.tree_map(lambda leaf: leaf[1], result.train_state)
    _assert_acts_as(seed1, load_exported(out).act_fn()(obs), obs, (-1.0,), (1.0,), "exported")
    _assert_acts_as(seed1, policy.act_fn(1)(obs), obs, (-1.0,), (1.0,), "checkpoint")
    assert not np.array_equal(policy.act_fn(0)(obs), policy.act_fn(1)(obs))


def test_the_preset_name_is_passed_in_not_read_back_from_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"preset": "paper"}))  # not consulted
    config = ddpg_jax.DDPGConfig(total_steps=60, warmup_steps=40, batch_size=8,
                                 hidden_sizes=(8,), eval_every=0, eval_episodes=1)
    result = ddpg_jax.train(config, "Pendulum-v1", run_dir=run_dir, preset="td3", log=None)
    assert json.loads((result.checkpoint / "meta.json").read_text())["policy"]["preset"] == "td3"
    unnamed = ddpg_jax.train(config, "Pendulum-v1", run_dir=tmp_path / "other", log=None)
    assert json.loads((unnamed.checkpoint / "meta.json").read_text())["policy"]["preset"] is None

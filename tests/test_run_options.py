"""Every ``RunOptions`` field does what it says through ``ddpg_jax.train``, on both drivers.

Tiny runs from Python (no command line), several fields per run: the checkpoints each run
leaves, the metric files, the TensorBoard events and the progress bar are checked against what
the options ask for; a missing extra or a missing run directory is refused before any work.
"""

from __future__ import annotations

import json
import sys

import pytest
from helpers import Terminal as _Terminal

import ddpg_jax
from ddpg_jax.checkpoints.format import checkpoint_dir, list_checkpoints
from ddpg_jax.drivers.run_options import RunOptionsError
from ddpg_jax.records.writers import MissingExtraError, read_jsonl

# Evaluation points at 200, 400 and 600 env steps; nothing happens inside the 100-step warm-up.
CONFIG = ddpg_jax.DDPGConfig(total_steps=600, warmup_steps=100, batch_size=32,
                             hidden_sizes=(8,), eval_every=200, eval_episodes=1,
                             buffer_size=700)


def _checkpoints(run_dir) -> dict[int, dict]:
    """``{env steps: meta}`` of the checkpoints left in a run directory."""
    return {step: json.loads((path / "meta.json").read_text())
            for step, path in list_checkpoints(checkpoint_dir(run_dir))}


def test_checkpoints_at_every_evaluation_point_without_the_buffer_and_a_progress_bar(
        tmp_path, monkeypatch):
    """checkpoint_every=None, keep_checkpoints, buffer_in_checkpoint=False, progress=True."""
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    options = ddpg_jax.RunOptions(keep_checkpoints=5, buffer_in_checkpoint=False, progress=True)
    result = ddpg_jax.train(CONFIG, "Pendulum-v1", run_dir=tmp_path, options=options, log=None)
    monkeypatch.undo()
    evaluated = [r["env_steps"] for r in result.evaluations]
    saved = _checkpoints(tmp_path)
    assert evaluated == [200, 400, 600] and list(saved) == evaluated
    for meta in saved.values():
        assert "buffer" not in meta["items"] and meta["eval_return"] is not None
    # The bar was drawn on the terminal, up to the last step, with the latest evaluation.
    shown = term.getvalue()
    assert "600/600" in shown and "step/s" in shown, shown
    assert f"eval return {result.evaluations[-1]['eval_return_mean']:.1f}" in shown
    # The run directory holds the metric files the command line writes.
    assert [r["env_steps"] for r in read_jsonl(tmp_path / "evaluations.jsonl")] == evaluated
    assert (tmp_path / "evaluations.csv").is_file()
    chunks = read_jsonl(tmp_path / "train_metrics.jsonl")
    assert chunks and chunks[-1]["env_steps"] == 600 and "critic_loss" in chunks[-1]


def test_an_integer_cadence_with_the_buffer_and_no_bar_on_the_jax_driver(tmp_path, monkeypatch):
    """checkpoint_every=300, buffer_in_checkpoint=True, progress=False (the default)."""
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    options = ddpg_jax.RunOptions(checkpoint_every=300, keep_checkpoints=5)
    assert options.progress is False and options.buffer_in_checkpoint is True
    result = ddpg_jax.train(CONFIG, ddpg_jax.envs.make("Pendulum-v1"), run_dir=tmp_path,
                            options=options, log=None)
    monkeypatch.undo()
    saved = _checkpoints(tmp_path)
    assert list(saved) == [300, 600]
    assert all("buffer" in meta["items"] for meta in saved.values())
    assert term.getvalue() == ""
    assert [r["env_steps"] for r in read_jsonl(tmp_path / "evaluations.jsonl")] == [
        r["env_steps"] for r in result.evaluations] == [200, 400, 600]


def test_keep_checkpoints_keeps_the_latest_and_the_best(tmp_path):
    """checkpoint_every=100 writes five checkpoints; keep_checkpoints=1 leaves the last and
    the one with the best evaluation return."""
    options = ddpg_jax.RunOptions(checkpoint_every=100, keep_checkpoints=1)
    result = ddpg_jax.train(CONFIG, "Pendulum-v1", run_dir=tmp_path, options=options, log=None)
    best = max(result.evaluations, key=lambda r: r["eval_return_mean"])["env_steps"]
    assert sorted(_checkpoints(tmp_path)) == sorted({best, 600})


def test_checkpoint_every_zero_writes_only_the_final_checkpoint(tmp_path):
    options = ddpg_jax.RunOptions(checkpoint_every=0)
    ddpg_jax.train(CONFIG.replace(total_steps=300), "Pendulum-v1", run_dir=tmp_path,
                   options=options, log=None)
    assert list(_checkpoints(tmp_path)) == [300]


def test_a_run_resumed_from_an_earlier_checkpoint_rewrites_its_later_records(tmp_path):
    """The metric files drop what came after the checkpoint a run resumes from."""
    config = CONFIG.replace(total_steps=400)
    ddpg_jax.train(config, "Pendulum-v1", run_dir=tmp_path, log=None)
    first = read_jsonl(tmp_path / "evaluations.jsonl")
    assert [r["env_steps"] for r in first] == [200, 400]
    earlier = dict(list_checkpoints(checkpoint_dir(tmp_path)))[200]
    ddpg_jax.train(config, "Pendulum-v1", run_dir=tmp_path, resume_from=earlier, log=None)
    again = read_jsonl(tmp_path / "evaluations.jsonl")
    assert [r["env_steps"] for r in again] == [200, 400]
    assert again[0] == first[0]  # the record before the checkpoint is kept as it was
    steps = [r["env_steps"] for r in read_jsonl(tmp_path / "train_metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 400


def test_tensorboard_events_from_python(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = ddpg_jax.train(CONFIG.replace(total_steps=400), "Pendulum-v1", run_dir=tmp_path,
                            options=ddpg_jax.RunOptions(tensorboard=True), log=None)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("eval/eval_return_mean")
    assert [e.step for e in scalars] == [r["env_steps"] for r in result.evaluations] == [200, 400]
    assert scalars[-1].value == pytest.approx(result.evaluations[-1]["eval_return_mean"])
    assert events.Scalars("train/critic_loss")


def test_tensorboard_without_the_package_or_a_run_dir_is_refused_before_any_work(
        tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    env_made = []

    def factory():
        env_made.append(1)
        import gymnasium

        return gymnasium.make("Pendulum-v1")

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    with pytest.raises(MissingExtraError, match=r"pip install 'ddpg-jax\[tensorboard\]'"):
        ddpg_jax.train(CONFIG, factory, run_dir=run_dir,
                       options=ddpg_jax.RunOptions(tensorboard=True), log=None)
    with pytest.raises(RunOptionsError, match="no run_dir was given"):
        ddpg_jax.train(CONFIG, factory, options=ddpg_jax.RunOptions(tensorboard=True), log=None)
    assert not run_dir.exists() and not env_made

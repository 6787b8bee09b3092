"""Exact resume on a MuJoCo env: a Hopper-v5 run stopped at a checkpoint and resumed with
``ddpg-jax train --resume`` ends bit-identical to an uninterrupted run.

MuJoCo's simulation state is saved with ``mujoco.mj_getState`` (``mjSTATE_INTEGRATION``)
and restored with ``mj_setState`` (:mod:`ddpg_jax.envs.gymnasium_state`), so the resumed run continues
the interrupted episodes instead of starting new ones.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from helpers import final_arrays as _final_arrays

pytest.importorskip("mujoco", reason="MuJoCo is not installed (pip install 'ddpg-jax[mujoco]')")

from ddpg_jax.checkpoints import format as ckpt
from ddpg_jax.cli.main import main
from ddpg_jax.envs import gymnasium_state as gym_state
from ddpg_jax.records.writers import read_jsonl

ARGS = ["--env", "Hopper-v5", "--warmup-steps", "300", "--batch-size", "32",
        "--hidden-sizes", "16,16", "--eval-every", "600", "--eval-episodes", "1",
        "--buffer-size", "2000", "--checkpoint-every", "600", "--quiet"]


pytestmark = pytest.mark.usefixtures("module_compile_cache")


def test_hopper_resumed_through_the_cli_is_bit_identical(tmp_path, capsys):
    full, half = tmp_path / "full", tmp_path / "half"
    assert main(["train", *ARGS, "--total-steps", "1200", "--out", str(full)]) == 0
    assert main(["train", *ARGS, "--total-steps", "600", "--out", str(half)]) == 0
    saved = ckpt.open_checkpoint(ckpt.latest(ckpt.checkpoint_dir(half)))
    assert saved.step == 600
    env = saved.meta["envs"][0]
    assert env["exact"] and "mujoco" in env and env["inexact"] == []
    # Hopper falls often under a random policy: the checkpoint lands inside an episode
    # (the episode continues after the resume; a fresh one would differ).
    assert env["elapsed_steps"][0] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", gym_state.InexactResumeWarning)
        assert main(["train", "--resume", str(half), "--total-steps", "1200", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    a, b = _final_arrays(full), _final_arrays(half)
    assert a.keys() == b.keys() and any("actor_params" in k for k in a)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert ([r["eval_return_mean"] for r in read_jsonl(half / "evaluations.jsonl")]
            == [r["eval_return_mean"] for r in read_jsonl(full / "evaluations.jsonl")])
    final = json.loads((half / "summary.json").read_text())
    assert final["total_steps"] == 1200


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5",
                                    "Humanoid-v5", "Reacher-v5"])
def test_mujoco_snapshot_continues_the_episode_exactly(env_id):
    """Step for step after a restore into another env, across resets.

    Ant and Humanoid read body positions of the last step before stepping (their forward
    reward), which is why the snapshot holds those besides MuJoCo's integration state.
    """
    import gymnasium as gym

    a, b = gym.make(env_id), gym.make(env_id)
    a.reset(seed=3)
    b.reset(seed=99)
    rng = np.random.default_rng(0)

    def action():
        return rng.uniform(a.action_space.low, a.action_space.high).astype(np.float32)

    for _ in range(40):
        if any(a.step(action())[2:4]):
            a.reset()
    snap = json.loads(json.dumps(gym_state.snapshot(a)))  # through JSON, as in a checkpoint
    assert snap["exact"] and "mujoco" in snap
    assert gym_state.restore(b, snap)
    for t in range(200):
        u = action()
        ra, rb = a.step(u), b.step(u)
        assert np.array_equal(ra[0], rb[0]) and ra[1] == rb[1] and ra[2:4] == rb[2:4], t
        if ra[2] or ra[3]:
            assert np.array_equal(a.reset()[0], b.reset()[0])
    # A snapshot from another MuJoCo version is not applied (its layout may differ).
    snap["mujoco"]["version"] = "0.0.1"
    assert not gym_state.restore(b, snap)

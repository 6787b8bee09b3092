"""Checkpoint files: round trip, atomic saves, retention, and refusal of bad checkpoints."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpg_jax.agent.state import Transition
from ddpg_jax.checkpoints import format as ckpt
from ddpg_jax.checkpoints.format import CheckpointError, CheckpointManager
from ddpg_jax.envs.gymnasium_state import restore, snapshot


def _tree(scale: float = 1.0):
    return {
        "params": {"w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3) * scale,
                   "b": jnp.ones(3, jnp.float32)},
        "key": jax.random.PRNGKey(3),
        "step": jnp.asarray(7, jnp.int32),
        "transition": Transition(np.zeros((4, 2), np.float32), np.ones((4, 1), np.float32),
                                 np.zeros(4, np.float32), np.zeros(4, np.float32),
                                 np.full((4, 2), 0.5, np.float32)),
        "empty": (),
    }


def _equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(x, y) and np.asarray(x).dtype == np.asarray(y).dtype for x, y in zip(la, lb))


def test_round_trip_restores_structure_values_and_dtypes(tmp_path):
    tree = _tree()
    path = ckpt.save(tmp_path, 1200, {"state": tree}, {"note": "hello", "x": np.float32(0.25)})
    assert path.name == "step_000000001200"
    loaded = ckpt.open_checkpoint(path)
    assert loaded.step == 1200
    assert loaded.meta["note"] == "hello" and loaded.meta["format_version"] == ckpt.FORMAT_VERSION
    assert ckpt.decode_json(loaded.meta["x"]) == np.float32(0.25)
    back = ckpt.load_item(loaded, "state", jax.eval_shape(lambda: tree))
    assert isinstance(back["transition"], Transition)
    assert _equal(back, tree)


def test_empty_arrays_round_trip(tmp_path):
    """orbax refuses zero-size arrays (an MJX state has some); they come back from the template."""
    tree = {"contacts": np.zeros((2, 0, 3), np.float32), "w": np.ones(2, np.int32),
            "none": np.zeros((0,), np.uint32)}
    path = ckpt.save(tmp_path, 5, {"state": tree}, {})
    back = ckpt.load_item(ckpt.open_checkpoint(path), "state", jax.eval_shape(lambda: tree))
    assert _equal(back, tree) and back["contacts"].shape == (2, 0, 3)


def test_json_encoding_is_exact_for_numpy_values():
    values = {"a": np.array([0.1, 1 / 3, -2.5e-300], np.float64),
              "b": np.array([[1.5, 2.25]], np.float32), "c": np.float32(np.pi), "d": [1, None]}
    back = ckpt.decode_json(json.loads(json.dumps(ckpt.encode_json(values))))
    for k in ("a", "b"):
        assert back[k].dtype == values[k].dtype and np.array_equal(back[k], values[k])
    assert back["c"] == values["c"] and back["c"].dtype == np.float32
    assert back["d"] == [1, None]


def test_mismatched_layout_is_refused_with_the_array_named(tmp_path):
    path = ckpt.save(tmp_path, 10, {"state": _tree()}, {})
    loaded = ckpt.open_checkpoint(path)
    wider = dict(_tree(), params={"w": jnp.zeros((2, 4)), "b": jnp.ones(3)})
    with pytest.raises(CheckpointError, match=r"params/w.*\(2, 3\).*\(2, 4\)"):
        ckpt.load_item(loaded, "state", wider)
    fewer = {k: v for k, v in _tree().items() if k != "step"}
    with pytest.raises(CheckpointError, match="unexpected arrays"):
        ckpt.load_item(loaded, "state", fewer)
    with pytest.raises(CheckpointError, match="holds no 'buffer'"):
        ckpt.load_item(loaded, "buffer", fewer)


def _largest_file(path):
    return max((p for p in path.rglob("*") if p.is_file() and p.name != ckpt.MANIFEST),
               key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "overwrite", "delete", "manifest", "meta"])
def test_corrupted_checkpoint_is_refused_and_the_earlier_one_still_loads(tmp_path, damage):
    manager = CheckpointManager(tmp_path, keep=5)
    first = manager.save(100, {"state": _tree(1.0)}, {"eval_return": -5.0})
    second = manager.save(200, {"state": _tree(2.0)}, {"eval_return": -3.0})
    target = _largest_file(second)
    if damage == "truncate":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif damage == "overwrite":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "delete":
        target.unlink()
    elif damage == "manifest":
        (second / ckpt.MANIFEST).write_text("{not json")
    else:
        meta = second / ckpt.META
        meta.write_text(meta.read_text().replace('"eval_return": -3.0', '"eval_return": 9.0'))
    with pytest.raises(CheckpointError) as info:
        ckpt.open_checkpoint(second)
    assert str(second) in str(info.value)
    # The earlier checkpoint is untouched and loads.
    back = ckpt.load_item(ckpt.open_checkpoint(first), "state", jax.eval_shape(_tree))
    assert _equal(back, _tree(1.0))


def test_other_format_version_and_foreign_directories_are_refused(tmp_path):
    path = ckpt.save(tmp_path / "c", 5, {"state": _tree()}, {})
    manifest = json.loads((path / ckpt.MANIFEST).read_text())
    manifest["format_version"] = ckpt.FORMAT_VERSION + 1
    (path / ckpt.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=f"format version {ckpt.FORMAT_VERSION + 1}"):
        ckpt.open_checkpoint(path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match="not a complete ddpg_jax checkpoint"):
        ckpt.open_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.open_checkpoint(tmp_path / "missing")


def test_interrupted_save_leaves_no_visible_checkpoint(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, keep=3)
    good = manager.save(100, {"state": _tree()}, {})
    real_sha = ckpt._sha256

    def dying_sha(path):  # the process "dies" while the manifest is being made
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "_sha256", dying_sha)
    with pytest.raises(KeyboardInterrupt):
        manager.save(200, {"state": _tree(2.0)}, {})
    monkeypatch.setattr(ckpt, "_sha256", real_sha)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [100]
    assert ckpt.latest(tmp_path) == good
    # A leftover of a save killed outright (os._exit) is hidden and cleaned up later.
    (tmp_path / ".tmp-step_000000000300-123-abcd").mkdir()
    (tmp_path / ".tmp-step_000000000300-123-abcd" / "meta.json").write_text("{}")
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [100]
    CheckpointManager(tmp_path, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000000100"]


def test_manager_keeps_the_last_k_and_the_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    returns = {100: -50.0, 200: -10.0, 300: -40.0, 400: None, 500: -30.0}
    for step, value in returns.items():
        manager.save(step, {"state": _tree()}, {"eval_return": value})
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [200, 400, 500]
    assert ckpt.best(tmp_path).name == "step_000000000200"
    assert ckpt.latest(tmp_path).name == "step_000000000500"
    # Saving a step that exists replaces it.
    manager.save(500, {"state": _tree(3.0)}, {"eval_return": -1.0})
    assert ckpt.best(tmp_path).name == "step_000000000500"
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [400, 500]
    moved = manager.supersede_after(400)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [400]
    assert len(moved) == 1 and moved[0].parent.name == "superseded"


def test_pendulum_state_snapshot_restores_the_episode_exactly():
    import gymnasium as gym

    a, b = gym.make("Pendulum-v1"), gym.make("Pendulum-v1")
    a.reset(seed=3)
    b.reset(seed=99)
    for _ in range(37):
        a.step(np.array([0.3], np.float32))
    snap = json.loads(json.dumps(snapshot(a)))  # through JSON, as in a checkpoint
    assert snap["exact"]
    assert restore(b, snap)
    for t in range(200):  # crosses the time limit (200 steps) and the reset after it
        action = np.array([np.sin(t)], np.float32)
        ra, rb = a.step(action), b.step(action)
        assert np.array_equal(ra[0], rb[0]) and ra[1:4] == rb[1:4], t
        if ra[2] or ra[3]:
            assert np.array_equal(a.reset()[0], b.reset()[0])

"""The MuJoCo report merges per-seed files into the table by hand-computable statistics."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ is a folder of scripts beside the package, not installed with it.
_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "mujoco_report.py"
_SPEC = importlib.util.spec_from_file_location("mujoco_report", _PATH)
R = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(R)


def _write(folder, env, preset, seed, curve, episodes=10, steps=200_000,
           date="2026-12-06T16:00:00"):
    name = f"learning_mujoco_{env}_{steps // 1000}k_{preset}_seed{seed}.json"
    row = {"variant": preset, "env_steps": [100_000, 200_000], "curves": [curve],
           "run_time_s": 1200.0 + seed, "commit": "abc1234", "date": date,
           "config": {"seed": seed, "eval_every": 5000, "eval_episodes": episodes,
                      "warmup_steps": 1000}}
    data = {"env_id": env, "steps": steps, "rows": [row], "command": "python -m ...",
            "machine": {"cpu_model": "test"}}
    (folder / name).write_text(json.dumps(data))


def test_table_statistics_protocol_filter_and_ratio(tmp_path, capsys):
    _write(tmp_path, "Hopper-v5", "td3", 0, [500.0, 1000.0])
    _write(tmp_path, "Hopper-v5", "td3", 1, [900.0, 2000.0])
    _write(tmp_path, "Hopper-v5", "td3", 2, [700.0, 3000.0])
    _write(tmp_path, "Hopper-v5", "ourddpg", 0, [100.0, 200.0], episodes=5)  # other protocol
    _write(tmp_path, "HalfCheetah-v5", "td3 warmup_steps=10000", 0, [5514.1, 6833.1])
    (tmp_path / "learning_mujoco_HalfCheetah-v5_200k_td3 warmup_steps=10000_seed0.json").rename(
        tmp_path / "learning_mujoco_HalfCheetah-v5_200k_td3_seed0.json")
    R.main(["--results", str(tmp_path), "--no-plot"])
    summary = json.loads((tmp_path / "mujoco_200k_summary.json").read_text())
    cheetah, row = summary["rows"]
    assert (cheetah["preset"], cheetah["seeds"]) == ("td3 warmup_steps=10000", [0])
    assert cheetah["ratio_to_authors"] == pytest.approx(1.0)
    assert cheetah["table1_1m"] == pytest.approx(9636.95)
    assert (row["env_id"], row["preset"], row["seeds"]) == ("Hopper-v5", "td3", [0, 1, 2])
    assert row["final_mean"] == pytest.approx(2000.0)
    assert row["final_std"] == pytest.approx(np.sqrt(2.0 / 3.0) * 1000.0)  # population std
    assert row["final_min"] == 1000.0
    assert row["max_of_mean_curve"] == pytest.approx(2000.0)  # max(700, 2000)
    assert row["authors_td3_mean"] == pytest.approx(2441.1)
    assert row["ratio_to_authors"] == pytest.approx(2000.0 / 2441.1)
    assert row["table1_1m"] == pytest.approx(3564.07)
    assert row["wall_time_s_mean"] == pytest.approx(1201.0)
    assert len(summary["left_out"]) == 1 and "ourddpg_seed0" in summary["left_out"][0]
    assert summary["below_0.8_of_authors"] == []
    assert len(summary["runs"]) == 4
    out = capsys.readouterr().out
    assert row["authors_td3_min"] == pytest.approx(903, abs=0.5)
    assert row["authors_td3_max"] == pytest.approx(3290, abs=0.5)
    assert ("| Hopper-v5 | `td3` | 3 | 2000 | 816 | 1000 | 2000 | 2441 (903 to 3290) | 0.82 |"
            in out)


def test_authors_curves_give_the_issue_figures():
    """The stored summary of the authors' 10 seeds reproduces the means quoted in the issue."""
    quoted = {"HalfCheetah": (5514, 6833, 9567), "Hopper": (660, 2441, 3391),
              "Walker2d": (770, 2421, 4413)}
    for name, means in quoted.items():
        got = [R.authors_at(name, s) for s in (100_000, 200_000, 1_000_000)]
        np.testing.assert_allclose(got, means, atol=0.5)
        per_seed = R.authors()["tasks"][name]["per_seed_at"]["200000"]
        assert len(per_seed) == 10
        assert np.mean(per_seed) == pytest.approx(R.authors_at(name, 200_000), abs=0.1)
        assert min(per_seed) == pytest.approx(R.authors_at(name, 200_000, "min"))
    assert R.authors_at("Hopper", 200_001) is None and R.authors_at("Ant", 200_000) is None


def test_low_ratio_is_flagged_and_mixed_points_refused(tmp_path):
    _write(tmp_path, "Walker2d-v5", "ourddpg", 0, [100.0, 1000.0])
    R.main(["--results", str(tmp_path), "--no-plot"])
    summary = json.loads((tmp_path / "mujoco_200k_summary.json").read_text())
    assert summary["below_0.8_of_authors"] == ["Walker2d-v5 ourddpg: 0.41 of the authors' TD3 mean"]
    bad = json.loads((tmp_path / "learning_mujoco_Walker2d-v5_200k_ourddpg_seed0.json").read_text())
    bad["rows"][0]["config"]["seed"] = 1
    bad["rows"][0]["env_steps"] = [50_000, 200_000]
    (tmp_path / "learning_mujoco_Walker2d-v5_200k_ourddpg_seed1.json").write_text(json.dumps(bad))
    with pytest.raises(SystemExit, match="evaluation points differ"):
        R.main(["--results", str(tmp_path), "--no-plot"])


def test_no_runs_names_the_expected_files(tmp_path):
    with pytest.raises(SystemExit, match="learning_mujoco_ENV_Kk_LABEL_seedS.json"):
        R.main(["--results", str(tmp_path)])


def test_a_label_names_settings_on_top_of_a_preset_and_must_start_with_it(tmp_path):
    for seed in (0, 1):
        _write(tmp_path, "Hopper-v5", "td3", seed, [300.0, 400.0])
        _write(tmp_path, "Hopper-v5", "td3 update_schedule=episode", seed, [900.0, 2400.0])
        (tmp_path / f"learning_mujoco_Hopper-v5_200k_td3 update_schedule=episode_seed{seed}.json"
         ).rename(tmp_path / f"learning_mujoco_Hopper-v5_200k_td3episode_seed{seed}.json")
    _write(tmp_path, "Hopper-v5", "td3", 2, [300.0, 400.0])
    (tmp_path / "learning_mujoco_Hopper-v5_200k_td3_seed2.json").rename(
        tmp_path / "learning_mujoco_Hopper-v5_200k_ourddpg_seed2.json")  # holds td3, not ourddpg
    R.main(["--results", str(tmp_path), "--no-plot"])
    summary = json.loads((tmp_path / "mujoco_200k_summary.json").read_text())
    rows = {r["preset"]: r for r in summary["rows"]}
    assert set(rows) == {"td3", "td3 update_schedule=episode"}
    assert rows["td3 update_schedule=episode"]["final_mean"] == 2400.0
    assert rows["td3"]["seeds"] == [0, 1]
    assert len(summary["left_out"]) == 1
    assert "not the file name's 'ourddpg'" in summary["left_out"][0]


def test_runs_of_the_presets_before_they_changed_are_labelled(tmp_path):
    """td3 and ourddpg changed their values on 2026-12-05: older rows say so."""
    _write(tmp_path, "Hopper-v5", "td3", 0, [300.0, 400.0], date="2026-11-30T16:00:00")
    _write(tmp_path, "Hopper-v5", "ourddpg", 0, [200.0, 300.0], date="2026-11-30T17:00:00")
    _write(tmp_path, "Hopper-v5", "td3-2018", 0, [900.0, 2400.0])
    _write(tmp_path, "Hopper-v5", "paper", 0, [10.0, 20.0], date="2026-11-30T17:00:00")
    R.main(["--results", str(tmp_path), "--no-plot"])
    summary = json.loads((tmp_path / "mujoco_200k_summary.json").read_text())
    rows = {r["preset"]: r for r in summary["rows"]}
    assert set(rows) == {"td3 (before 2026-12-05)", "ourddpg (before 2026-12-05)", "td3-2018",
                         "paper"}
    assert rows["td3 (before 2026-12-05)"]["table1_1m"] == pytest.approx(3564.07)
    assert rows["td3-2018"]["table1_1m"] == pytest.approx(3564.07)  # the paper's TD3
    assert rows["ourddpg (before 2026-12-05)"]["table1_1m"] == pytest.approx(1860.02)


def _write_train(folder, seed, curve, train, steps=(180_000, 185_000, 190_000, 195_000, 200_000)):
    row = {"variant": "td3", "env_steps": list(steps), "curves": [curve],
           "run_time_s": 1000.0, "commit": "abc1234", "date": "2026-12-06T16:00:00",
           "config": {"seed": seed, "eval_every": 5000, "eval_episodes": 10,
                      "warmup_steps": 25000}}
    if train is not None:
        row["train_return_curves"] = [train]
    data = {"env_id": "Hopper-v5", "steps": 200_000, "rows": [row], "command": "python -m ...",
            "machine": {"cpu_model": "test"}}
    (folder / f"learning_mujoco_Hopper-v5_200k_td3_seed{seed}.json").write_text(json.dumps(data))


def test_cleanrl_anchor_compares_training_returns_of_the_last_20k_steps(tmp_path, capsys):
    # 180k lies outside the window (200k - 20k, 200k]: its 9999 must not count.
    _write_train(tmp_path, 1, [0.0, 0.0, 0.0, 0.0, 1000.0], [9999.0, 100.0, 200.0, 300.0, 400.0])
    _write_train(tmp_path, 2, [0.0, 0.0, 0.0, 0.0, 3000.0], [9999.0, 500.0, 500.0, 500.0, 700.0])
    R.main(["--results", str(tmp_path), "--no-plot"])
    (row,) = json.loads((tmp_path / "mujoco_200k_summary.json").read_text())["rows"]
    assert row["train_return_near_end"] == pytest.approx((250.0 + 550.0) / 2)
    assert row["cleanrl_td3"] == 794.0  # read off CleanRL's Hopper-v2 figure at 200k
    assert row["ratio_to_cleanrl"] == pytest.approx(400.0 / 794.0)
    out = capsys.readouterr().out
    assert ("| Hopper-v5 | 2 | 2000 | 1000 | 1000 | 2441 | 0.82 | 400 | 794 | 0.50 |" in out)

    # A seed that did not keep its training returns leaves the comparison empty, not partial.
    _write_train(tmp_path, 3, [0.0, 0.0, 0.0, 0.0, 2000.0], None)
    R.main(["--results", str(tmp_path), "--no-plot"])
    (row,) = json.loads((tmp_path / "mujoco_200k_summary.json").read_text())["rows"]
    assert row["train_return_near_end"] is None and row["ratio_to_cleanrl"] is None
    assert "| Hopper-v5 | 3 | 2000 | 816 | 1000 | 2441 | 0.82 | - | 794 | - |" in capsys.readouterr().out

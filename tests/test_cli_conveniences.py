"""Command-line conveniences: --config files, --version, the progress bar, --sweep, --wandb.

Refusals are checked in-process and cheaply (no training); three tiny runs
(16-unit networks, a few hundred Pendulum steps) cover the rest: a run with
flags and a fake wandb, its re-run from its own config.json, and a 2 x 2
sweep over two seeds on the JAX backend.
"""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import pytest
from helpers import Terminal as _Terminal

from ddpg_jax.cli import main as cli
from ddpg_jax.config import FIELD_NAMES, TRACED_FIELDS, DDPGConfig, describe
from ddpg_jax.records import writers as metrics_io
from ddpg_jax.records.writers import Progress

TINY = ["--env", "Pendulum-v1", "--total-steps", "400", "--warmup-steps", "100",
        "--batch-size", "32", "--hidden-sizes", "16", "--eval-every", "200",
        "--eval-episodes", "2", "--buffer-size", "1000"]


def _run(capsys, argv):
    """Calls main in-process; returns (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own exits (--help, --version)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_error_paragraph(err: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("ddpg-jax: error: "), err
    assert err.count("ddpg-jax: error:") == 1, err
    assert "\n" not in err.strip(), err  # one paragraph, one line
    assert err.endswith("\n")


def _refused(capsys, tmp_path, argv, needles):
    """Runs argv in tmp_path and checks: exit 2, one paragraph with needles, nothing written."""
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, out, err = _run(capsys, argv)
    assert code == 2, (code, out, err)
    _assert_one_error_paragraph(err)
    for needle in needles:
        assert needle in err, (needle, err)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    return err


# --------------------------------------------------------------------------- --version, --help
def test_version_prints_one_line_and_exits_0(capsys):
    import flax
    import jax

    import ddpg_jax

    code, out, err = _run(capsys, ["--version"])
    assert code == 0, err
    assert out == (f"ddpg-jax {ddpg_jax.__version__} (jax {jax.__version__}, "
                   f"flax {flax.__version__})\n")


def test_train_help_describes_every_field_and_the_new_flags(capsys):
    code, out, _ = _run(capsys, ["train", "--help"])
    assert code == 0
    text = " ".join(out.split())  # argparse wraps lines (also at hyphens: compare squeezed)
    squeezed = "".join(out.split())
    for name in FIELD_NAMES:
        d = describe(name)
        default = d["default"]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        entry = (f"--{name.replace('_', '-')} VALUE {d['doc']} (default: {shown}; accepted: "
                 f"{d['accepted']}")
        assert "".join(entry.split()) in squeezed, name
    for flag in ("--config FILE", "--sweep FIELD=V1,V2[,...]", "--wandb PROJECT",
                 "--tensorboard"):
        assert flag in text, flag
    assert "override the file's values" in text
    assert "writes no checkpoints" in text and "cannot be resumed" in text
    assert ", ".join(TRACED_FIELDS) in text
    assert "pip install 'ddpg-jax[wandb]'" in text


# --------------------------------------------------------------------------- --config refusals
_GOOD_RUN_FILE = {"env_id": "Pendulum-v1", "preset": "default", "backend": "gymnasium",
                  "config": {"total_steps": 400, "warmup_steps": 100, "batch_size": 32}}

BAD_FILES = {
    "unknown_key": ("c.json", {"gama": 0.9}, ["c.json", "'gama'", "Did you mean 'gamma'?",
                                               "Accepted keys", "actor_lr", "env_id"]),
    "unknown_key_yaml": ("c.yaml", "batchsize: 64\n", ["c.yaml", "'batchsize'",
                                                        "Did you mean 'batch_size'?"]),
    "unknown_run_key": ("c.json", {**_GOOD_RUN_FILE, "envid": "x"},
                        ["'envid'", "Did you mean 'env_id'?", "run_options"]),
    "unknown_field_in_run_file": ("c.json", {**_GOOD_RUN_FILE, "config": {"tua": 0.1}},
                                  ["'tua'", "Did you mean 'tau'?", "under 'config'"]),
    "wrong_type": ("c.json", {"batch_size": "abc"}, ["c.json", "batch_size", "'abc'",
                                                     "an integer"]),
    "wrong_type_list": ("c.json", {"hidden_sizes": [64, "x"]}, ["hidden_sizes"]),
    "wrong_type_str": ("c.json", {"activation": 3}, ["activation = 3", "a string"]),
    "wrong_type_bool": ("c.yaml", "batch_size: true\n", ["batch_size = True"]),
    "out_of_range": ("c.json", {"tau": 2}, ["c.json", "tau = 2", "(0, 1]"]),
    "out_of_range_yaml": ("c.yml", "gamma: 1.5\n", ["c.yml", "gamma = 1.5", "[0, 1)"]),
    "out_of_range_choice": ("c.json", {"noise": "pink"}, ["noise = 'pink'", "gaussian | ou"]),
    "not_finite": ("c.json", '{"actor_lr": NaN}', ["actor_lr = nan", "finite"]),
    "combination": ("c.json", {"batch_size": 512, "buffer_size": 100}, ["c.json", "512", "100"]),
    "invalid_json": ("c.json", '{"tau": 0.1,', ["c.json", "not valid JSON"]),
    "invalid_yaml": ("c.yaml", "tau: [0.1, 0.2\n", ["c.yaml", "not valid YAML"]),
    "not_a_mapping": ("c.json", "[1, 2]", ["c.json", "a list", "mapping"]),
    "empty_yaml": ("c.yaml", "", ["c.yaml", "nothing"]),
    "bad_extension": ("c.toml", "tau = 0.1\n", ["c.toml", "'.toml'", ".json", ".yaml"]),
    "bad_preset": ("c.json", {"preset": "papr"}, ["preset = 'papr'", "paper"]),
    "bad_backend": ("c.json", {"backend": "torch"}, ["backend = 'torch'", "jax"]),
    "bad_num_seeds": ("c.json", {"num_seeds": 0}, ["num_seeds = 0", ">= 1"]),
    "num_seeds_gymnasium": ("c.json", {"num_seeds": 2}, ["num_seeds = 2", "jax backend"]),
    "bad_run_option": ("c.json", {"run_options": {"keep_checkpoint": 2}},
                       ["'keep_checkpoint'", "Did you mean 'keep_checkpoints'?"]),
    "bad_run_option_value": ("c.json", {"run_options": {"keep_checkpoints": 0}},
                             ["run_options", "--keep-checkpoints 0"]),
    "bad_env_id": ("c.json", {"env_id": 3}, ["env_id = 3"]),
    "unknown_env_from_file": ("c.json", {"env_id": "Pendulum-v2"}, ["'Pendulum-v2'"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_config_file_is_refused_before_any_work(name, tmp_path, monkeypatch, capsys):
    filename, content, needles = BAD_FILES[name]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / filename
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    env = [] if "env_id" in str(content) else ["--env", "Pendulum-v1"]
    _refused(capsys, tmp_path, ["train", "--config", filename, *env, "--out", "run"], needles)


def test_missing_config_file_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, tmp_path, ["train", "--config", "nowhere.yaml", "--env", "Pendulum-v1"],
             ["nowhere.yaml", "cannot be read", "No such file"])


def test_config_file_refusals_that_involve_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flat.json").write_text(json.dumps({"env_id": "Pendulum-v1",
                                                    "warmup_steps": 500}))
    (tmp_path / "run.json").write_text(json.dumps(_GOOD_RUN_FILE))
    # The file's values are fine alone; with the flag they are not: both are named.
    _refused(capsys, tmp_path, ["train", "--config", "flat.json", "--total-steps", "400"],
             ["flat.json with the command-line flags", "warmup_steps 500", "total_steps 400"])
    # A bad flag is reported as the flag's, not the file's.
    err = _refused(capsys, tmp_path, ["train", "--tau", "3", "--config", "flat.json"],
                   ["tau = 3.0", "(0, 1]"])
    assert "flat.json" not in err
    # A run's config.json lists every field: another preset would only rename it.
    _refused(capsys, tmp_path, ["train", "--config", "run.json", "--preset", "td3"],
             ["--preset td3", "run.json", "every field"])
    _refused(capsys, tmp_path, ["train", "--config", "run.json", "--resume", "somewhere"],
             ["--config cannot be combined with --resume"])


# --------------------------------------------------------------------------- --config precedence
def _plan(argv):
    parser = cli._build_parser()
    args, unknown = parser.parse_known_args(["train", *argv])
    assert not unknown
    return cli._new_plan(args)


def test_flags_override_the_file_wherever_they_stand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # PyYAML reads 1e-3 (no dot) as a string: it is parsed as the field's type.
    (tmp_path / "c.yaml").write_text(
        "env_id: Pendulum-v1\npreset: td3-2018\nactor_lr: 1e-3\ncritic_lr: 2.0e-3\n"
        "hidden_sizes: [8, 8]\ntotal_steps: 5.0e+3\nseed: 4\nrun_options:\n"
        "  keep_checkpoints: 5\n")
    for argv in (["--actor-lr", "0.005", "--config", "c.yaml", "--keep-checkpoints", "2"],
                 ["--config", "c.yaml", "--actor-lr", "0.005", "--keep-checkpoints", "2"]):
        plan = _plan(argv)
        assert plan.env_id == "Pendulum-v1" and plan.preset == "td3-2018"
        assert plan.backend == "gymnasium" and plan.num_seeds == 1
        assert plan.config == DDPGConfig.from_dict({
            **cli.PRESETS["td3-2018"].to_dict(), "actor_lr": 0.005, "critic_lr": 2e-3,
            "hidden_sizes": (8, 8), "total_steps": 5000, "seed": 4})
        assert plan.options.keep_checkpoints == 2
        assert plan.sweep is None
        assert not (tmp_path / "runs").exists()  # the plan writes nothing
    plan = _plan(["--config", "c.yaml", "--preset", "default", "--env", "MountainCarContinuous-v0"])
    assert plan.preset == "default" and plan.env_id == "MountainCarContinuous-v0"
    assert plan.config.num_critics == 1 and plan.config.actor_lr == 1e-3
    assert plan.options.keep_checkpoints == 5


def test_a_sweep_run_file_rebuilds_the_sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({
        "env_id": "Pendulum-v1", "preset": "default", "backend": "jax", "num_seeds": 3,
        "config": {**DDPGConfig(total_steps=400, warmup_steps=100, batch_size=32).to_dict()},
        "sweep": {"tau": [0.01, 0.02]}}))
    plan = _plan(["--config", "c.json"])
    assert plan.backend == "jax" and plan.num_seeds == 3
    assert plan.sweep == {"tau": [0.01, 0.02]}
    plan = _plan(["--config", "c.json", "--sweep", "gamma=0.9,0.95,0.99", "--num-seeds", "1"])
    assert plan.sweep == {"gamma": [0.9, 0.95, 0.99]} and plan.num_seeds == 1


# --------------------------------------------------------------------------- --sweep refusals
JAX_TINY = [*TINY, "--backend", "jax"]
BAD_SWEEPS = {
    "static_field": (["--sweep", "hidden_sizes=8,16"],
                     ["hidden_sizes", "static", *TRACED_FIELDS]),
    "static_field_2": (["--sweep", "batch_size=32,64"], ["batch_size", "static", "actor_lr"]),
    "unknown_field": (["--sweep", "actor_rl=1e-3"], ["'actor_rl'", "Did you mean actor_lr?"]),
    "out_of_range": (["--sweep", "tau=0.01,2"], ["--sweep tau", "tau = 2.0", "(0, 1]"]),
    "not_a_number": (["--sweep", "actor_lr=1e-3,fast"], ["actor_lr", "'fast'", "a number"]),
    "malformed": (["--sweep", "actor_lr"], ["'actor_lr'", "FIELD=V1,V2"]),
    "twice": (["--sweep", "tau=0.01", "--sweep", "tau=0.02"], ["tau", "twice"]),
    "flag_and_sweep": (["--tau", "0.01", "--sweep", "tau=0.02,0.03"], ["--tau", "both"]),
    "checkpoint_options": (["--sweep", "tau=0.01,0.02", "--checkpoint-every", "100"],
                           ["--checkpoint-every", "no checkpoints"]),
}


@pytest.mark.parametrize("name", sorted(BAD_SWEEPS))
def test_bad_sweep_is_refused_before_any_work(name, tmp_path, monkeypatch, capsys):
    argv, needles = BAD_SWEEPS[name]
    monkeypatch.chdir(tmp_path)
    _refused(capsys, tmp_path, ["train", *JAX_TINY, *argv, "--out", "run"], needles)


def test_sweep_needs_the_jax_backend_and_is_not_resumable(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, tmp_path, ["train", *TINY, "--sweep", "tau=0.01,0.02", "--out", "run"],
             ["--sweep needs --backend jax"])
    _refused(capsys, tmp_path, ["train", "--resume", "run", "--sweep", "tau=0.01,0.02"],
             ["--sweep cannot be combined with --resume", "not resumable"])
    sweep_dir = tmp_path / "swept"
    sweep_dir.mkdir()
    (sweep_dir / "config.json").write_text(json.dumps({
        "env_id": "Pendulum-v1", "preset": "default", "backend": "jax", "num_seeds": 1,
        "config": DDPGConfig().to_dict(), "sweep": {"tau": [0.01, 0.02]}}))
    _refused(capsys, tmp_path, ["train", "--resume", "swept"],
             ["sweep", "not resumable", "--config swept/config.json"])


# --------------------------------------------------------------------------- --wandb refusals
def test_wandb_without_the_package_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    _refused(capsys, tmp_path, ["train", *TINY, "--wandb", "proj", "--out", "run"],
             ["--wandb proj", "pip install 'ddpg-jax[wandb]'"])


class _FakeWandb(types.ModuleType):
    """Records wandb.init, run.log, run.summary.update and run.finish."""

    def __init__(self, fail: bool = False):
        super().__init__("wandb")
        self.calls: list[tuple] = []
        self.fail = fail

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        if self.fail:
            raise RuntimeError("api_key not configured (no-tty)")
        Path(kwargs["dir"], "wandb").mkdir()  # as wandb does
        calls = self.calls

        class Summary:
            def update(self, values):
                calls.append(("summary", dict(values)))

        class Run:
            summary = Summary()

            def log(self, data, step=None):
                calls.append(("log", dict(data), step))

            def finish(self, **kwargs):
                calls.append(("finish",))

        return Run()


def test_wandb_init_failure_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fake = _FakeWandb(fail=True)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    _refused(capsys, tmp_path, ["train", *TINY, "--wandb", "proj", "--out", "run"],
             ["--wandb proj", "wandb.init failed", "api_key", "WANDB_MODE=offline"])
    assert [c[0] for c in fake.calls] == ["init"]


# --------------------------------------------------------------------------- progress bar
def test_progress_bar_needs_no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    term = _Terminal()
    bar = Progress(1000, 200, stream=term)
    assert bar.active
    bar.update(600)
    bar.set_eval(-123.4)
    bar.write("a line")
    bar.update(1000)
    bar.close()
    shown = term.getvalue()
    for needle in ("1000/1000", "step/s", "eval return -123.4", "eta", "a line"):
        assert needle in shown, (needle, shown)
    quiet = _Terminal()
    bar = Progress(1000, 0, enabled=False, stream=quiet)
    bar.update(10)
    bar.close()
    assert not bar.active and quiet.getvalue() == ""
    plain = io.StringIO()
    bar = Progress(1000, 0, stream=plain)
    bar.update(10)
    bar.write("a line")
    bar.close()
    assert plain.getvalue() == "a line\n"


# --------------------------------------------------------------------------- tiny runs
@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """A tiny gymnasium run with flags, logged to a fake wandb."""
    root = tmp_path_factory.mktemp("runs")
    fake = _FakeWandb()
    mp = pytest.MonkeyPatch()
    mp.setitem(sys.modules, "wandb", fake)
    try:
        code = cli.main(["train", *TINY, "--seed", "3", "--out", str(root / "A"), "--quiet",
                         "--wandb", "proj"])
    finally:
        mp.undo()
    assert code == 0
    return root, fake


def test_wandb_mirrors_the_logs(run_a):
    root, fake = run_a
    run_dir = root / "A"
    kinds = [c[0] for c in fake.calls]
    assert kinds[0] == "init" and kinds[-1] == "finish" and kinds[-2] == "summary"
    init = fake.calls[0][1]
    assert init["project"] == "proj" and init["name"] == "A" and init["dir"] == str(run_dir)
    assert init["config"] == json.loads((run_dir / "config.json").read_text())
    logs = [c for c in fake.calls if c[0] == "log"]
    evals = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    chunks = [json.loads(line)
              for line in (run_dir / "train_metrics.jsonl").read_text().splitlines()]
    eval_logs = [(step, data) for _, data, step in logs if "eval/eval_return_mean" in data]
    assert [s for s, _ in eval_logs] == [e["env_steps"] for e in evals] == [200, 400]
    for (_, data), record in zip(eval_logs, evals):
        assert data["eval/eval_return_mean"] == record["eval_return_mean"]
    chunk_logs = [(step, data) for _, data, step in logs if any(k.startswith("train/")
                                                                for k in data)]
    assert [s for s, _ in chunk_logs] == [c["env_steps"] for c in chunks]
    assert "train/critic_loss" in chunk_logs[-1][1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert fake.calls[-2][1]["final_eval_return_mean"] == summary["final_eval_return_mean"]


def test_config_round_trip_reproduces_the_run(run_a, monkeypatch, capsys):
    root, _ = run_a
    a, b = root / "A", root / "B"
    monkeypatch.chdir(root)
    # B is shown on a (fake) terminal: the first line says what the first seconds are for.
    monkeypatch.setattr(metrics_io, "_isatty", lambda stream: True)
    code, out, err = _run(capsys, ["train", "--config", str(a / "config.json"), "--out", str(b)])
    assert code == 0, err
    assert "compiling and warming up (100 random steps)..." in out
    assert "400/400" in out and "step/s" in out
    config_a, config_b = (json.loads((d / "config.json").read_text()) for d in (a, b))
    assert config_b == config_a
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    assert sb["seed"] == 3
    assert sb["final_eval_return_mean"] == sa["final_eval_return_mean"]
    assert not (b / "wandb").exists()  # --wandb is a logging choice, not part of the file


def test_sweep_grid_over_two_fields_and_two_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out_dir = tmp_path / "sweep"
    code, out, err = _run(capsys, [
        "train", *JAX_TINY, "--hidden-sizes", "8", "--num-seeds", "2", "--wandb", "proj",
        "--sweep", "actor_lr=1e-3,3e-3", "--sweep", "tau=0.005,0.01", "--out", str(out_dir)])
    assert code == 0, err
    # No checkpoints, no per-evaluation logs: the results are in summary.json.
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "summary.json", "wandb"]
    config = json.loads((out_dir / "config.json").read_text())
    assert config["sweep"] == {"actor_lr": [1e-3, 3e-3], "tau": [0.005, 0.01]}
    assert config["backend"] == "jax" and config["num_seeds"] == 2
    summary = json.loads((out_dir / "summary.json").read_text())
    settings = [e["setting"] for e in summary["sweep"]]
    assert settings == [{"actor_lr": 1e-3, "tau": 0.005}, {"actor_lr": 1e-3, "tau": 0.01},
                        {"actor_lr": 3e-3, "tau": 0.005}, {"actor_lr": 3e-3, "tau": 0.01}]
    for e in summary["sweep"]:
        assert len(e["final_eval_return_per_seed"]) == 2
        assert e["final_eval_return_mean"] == pytest.approx(
            sum(e["final_eval_return_per_seed"]) / 2)
        assert e["eval_steps"] == [200, 400] and len(e["eval_return_mean"]) == 2
        assert e["eval_return_mean"][-1] == pytest.approx(e["final_eval_return_mean"])
        assert -3300 < e["final_eval_return_mean"] <= 0
    # Same seeds for every setting (common random numbers), yet the settings differ.
    assert len({tuple(e["final_eval_return_per_seed"]) for e in summary["sweep"]}) == 4
    best = summary["best_setting"]
    assert summary["sweep"][best]["final_eval_return_mean"] == max(
        e["final_eval_return_mean"] for e in summary["sweep"])
    assert summary["num_settings"] == 4 and summary["num_seeds"] == 2
    assert "versions" in summary and summary["compile_time_s"] > 0
    # wandb: the config (with the grid), each setting's curve, the summary.
    assert fake.calls[0][1]["config"] == config
    logs = [(step, data) for kind, *rest in fake.calls if kind == "log" for data, step in [rest]]
    assert [step for step, _ in logs] == [200, 400]
    for j, (_, data) in enumerate(logs):
        assert data == {
            f"sweep/actor_lr={s['actor_lr']:g},tau={s['tau']:g}/eval_return_mean":
                pytest.approx(e["eval_return_mean"][j])
            for s, e in zip(settings, summary["sweep"])}
    assert fake.calls[-2] == ("summary", summary) and fake.calls[-1] == ("finish",)
    lines = out.strip().splitlines()
    assert lines[0].startswith("compiling 4 setting(s) x 2 seed(s) = 8 run(s)")
    assert sum("final eval return" in line for line in lines) == 5
    assert str(out_dir / "summary.json") in lines[-1]

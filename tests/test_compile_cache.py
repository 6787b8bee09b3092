"""jax's persistent compilation cache around ``ddpg_jax.train`` and the CLI.

Launches are fresh Python processes (the cache is about the next process); each prints what
jax's monitoring saw (cache hits and misses), the files in the cache folder, and a checksum of
the final parameters. A tiny whole-loop run on the JAX Pendulum keeps each launch to seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

import ddpg_jax
from ddpg_jax.cli.main import main
from ddpg_jax.drivers import compile_cache as cc
from ddpg_jax.drivers.run_options import RunOptionsError

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden_sizes=(8,), total_steps=300, warmup_steps=64, batch_size=32, eval_every=0,
            eval_episodes=1, buffer_size=400)

LAUNCH = r"""
import json, sys
from jax import monitoring
counts = {}
monitoring.register_event_listener(
    lambda name, **kw: counts.__setitem__(name, counts.get(name, 0) + 1))
import jax, numpy as np
import ddpg_jax
tiny, setting = json.loads(sys.argv[1]), json.loads(sys.argv[2])
options = ddpg_jax.RunOptions(**({} if setting is None else {"compile_cache": setting}))
r = ddpg_jax.train(ddpg_jax.DDPGConfig.from_dict(tiny), "Pendulum-v1", backend="jax", log=None,
                   options=options)
leaves = jax.tree_util.tree_leaves(r.train_state.actor_params)
print("RESULT " + json.dumps({
    "hits": counts.get("/jax/compilation_cache/cache_hits", 0),
    "misses": counts.get("/jax/compilation_cache/cache_misses", 0),
    "requests": counts.get("/jax/compilation_cache/compile_requests_use_cache", 0),
    "jax_cache_dir_after": jax.config.jax_compilation_cache_dir,
    "actor": [np.asarray(x).tobytes().hex() for x in leaves]}))
"""


def _launch(env: dict[str, str], setting: str | None = None) -> dict:
    full = {k: v for k, v in os.environ.items()
            if k not in (cc.ENV_VAR, "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME")}
    full.update(env, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", LAUNCH, json.dumps(TINY), json.dumps(setting)],
                          env=full, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_a_second_launch_loads_every_program_from_the_per_user_cache(tmp_path):
    """Default folder ($XDG_CACHE_HOME/ddpg_jax/jax): run 1 writes, run 2 only reads."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    folder = tmp_path / "xdg" / "ddpg_jax" / "jax"
    first = _launch(env)
    after_first = _entries(folder)
    # Every program compiled went to the cache, however fast it compiled (jax's own default
    # skips those under 1 s: most of these).
    assert first["misses"] == first["requests"] > 0 and first["hits"] == 0
    assert len(after_first) >= first["misses"]  # one file per program written
    second = _launch(env)
    assert _entries(folder) == after_first  # nothing new written
    assert second["hits"] == first["misses"] and second["misses"] == 0
    # The loaded executables are the programs run 1 compiled: the same parameters, bit for bit
    # (one machine, the same compiled programs).
    assert second["actor"] == first["actor"]
    # jax's settings are put back when train returns.
    assert first["jax_cache_dir_after"] is None and second["jax_cache_dir_after"] is None
    assert not (tmp_path / "home").exists()  # with XDG_CACHE_HOME set, ~/.cache is not used


def test_env_var_off_disables_and_the_setting_moves_the_folder(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home"),
           cc.ENV_VAR: "off"}
    off = _launch(env)
    assert off["hits"] == 0 and off["misses"] == 0
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()
    # The setting wins over the environment variable.
    moved = _launch(env, str(tmp_path / "mine"))
    assert moved["misses"] > 0 and len(_entries(tmp_path / "mine")) >= moved["misses"]
    assert not (tmp_path / "xdg").exists()
    # The cache changes no number: the same parameters with and without it.
    assert off["actor"] == moved["actor"]


def test_importing_ddpg_jax_changes_no_jax_setting():
    names = ["jax_compilation_cache_dir", "jax_enable_compilation_cache",
             "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes", "jax_default_matmul_precision"]
    code = ("import json, jax; names = json.loads(input()); before = [getattr(jax.config, n) "
            "for n in names]; import ddpg_jax, ddpg_jax.cli.main; print(json.dumps([before, "
            "[getattr(jax.config, n) for n in names]]))")
    env = {k: v for k, v in os.environ.items() if k != cc.ENV_VAR}
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(names), env=env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = json.loads(proc.stdout.splitlines()[-1])
    assert before == after


def test_settings_are_restored_and_a_block_inside_another_changes_nothing(tmp_path):
    names = ["jax_compilation_cache_dir", *cc._SETTINGS]
    before = [getattr(jax.config, n) for n in names]
    with cc.compile_cache(str(tmp_path / "a")) as folder:
        assert folder == tmp_path / "a"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "a")
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
        with cc.compile_cache(str(tmp_path / "b")) as inner:
            assert inner == tmp_path / "a"
            assert jax.config.jax_compilation_cache_dir == str(tmp_path / "a")
        jax.jit(lambda x: x * 3.0 + 1.0)(np.float32(2.0)).block_until_ready()
    assert [getattr(jax.config, n) for n in names] == before
    assert _entries(tmp_path / "a") and not (tmp_path / "b").exists()
    # After the block nothing is written to the folder.
    written = _entries(tmp_path / "a")
    jax.jit(lambda x: x * 5.0 - 2.0)(np.float32(2.0)).block_until_ready()
    assert _entries(tmp_path / "a") == written


def test_jax_own_cache_configuration_is_left_as_it_is(tmp_path, monkeypatch):
    monkeypatch.delenv(cc.ENV_VAR)
    old = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax-own"))
    try:
        with cc.compile_cache(str(tmp_path / "ours")) as folder:
            assert folder == tmp_path / "jax-own"
            assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0  # jax's default
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "jax-own")
    finally:
        jax.config.update("jax_compilation_cache_dir", old)
    assert not (tmp_path / "ours").exists()


def test_an_unwritable_folder_warns_once_and_trains_without_the_cache(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = blocker / "cache"  # cannot be created, even by root
    config = ddpg_jax.DDPGConfig(**TINY)
    options = ddpg_jax.RunOptions(compile_cache=str(bad))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ddpg_jax.train(config, "Pendulum-v1", backend="jax", log=None, options=options)
        with cc.compile_cache(str(bad)) as folder:  # the same folder again: no second warning
            assert folder is None
    ours = [w for w in caught if issubclass(w.category, cc.CompileCacheWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert str(bad) in message and "'off'" in message and cc.ENV_VAR in message
    assert result.env_steps == config.total_steps
    assert jax.config.jax_compilation_cache_dir is None


@pytest.mark.parametrize("value, folder", [
    ("off", None), ("OFF", None), ("0", None), ("none", None), ("/x/y", Path("/x/y"))])
def test_resolve_dir_reads_off_values_and_folders(value, folder, monkeypatch):
    monkeypatch.setenv(cc.ENV_VAR, value)
    assert cc.resolve_dir() == folder
    monkeypatch.setenv(cc.ENV_VAR, "")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert cc.resolve_dir() == Path("/xdg/ddpg_jax/jax")
    assert cc.resolve_dir(value) == folder
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv(cc.ENV_VAR, "~/elsewhere")  # ~ is expanded
    assert cc.resolve_dir() == Path("/home/someone/elsewhere")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv(cc.ENV_VAR)
    assert cc.resolve_dir() == Path("/home/someone/.cache/ddpg_jax/jax")


def test_compile_cache_option_refuses_an_empty_value():
    with pytest.raises(RunOptionsError, match="compile-cache.*accepted: a folder"):
        ddpg_jax.RunOptions(compile_cache=" ").validate()
    with pytest.raises(RunOptionsError, match="compile-cache"):
        ddpg_jax.RunOptions(compile_cache=3).validate()


def test_cli_flag_moves_the_cache_and_is_not_saved_with_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--env", "Pendulum-v1", "--backend", "jax", "--quiet", "--out", str(out),
            "--compile-cache", str(tmp_path / "cli-cache"),
            *[a for k, v in TINY.items() for a in (
                "--" + k.replace("_", "-"), ",".join(map(str, v)) if isinstance(v, tuple)
                else str(v))]]
    assert main(args) == 0
    assert _entries(tmp_path / "cli-cache")
    saved = json.loads((out / "config.json").read_text())
    assert "compile_cache" not in saved["run_options"]
    assert main(["train", "--env", "Pendulum-v1", "--compile-cache", ""]) == 2
    assert "--compile-cache" in capsys.readouterr().err


def test_cli_sweep_uses_the_cache_too(tmp_path):
    args = ["train", "--env", "Pendulum-v1", "--backend", "jax", "--quiet",
            "--out", str(tmp_path / "sweep"), "--compile-cache", str(tmp_path / "sweep-cache"),
            "--sweep", "actor_lr=0.001,0.0001",
            *[a for k, v in TINY.items() for a in (
                "--" + k.replace("_", "-"), ",".join(map(str, v)) if isinstance(v, tuple)
                else str(v))]]
    assert main(args) == 0
    assert _entries(tmp_path / "sweep-cache")
    assert jax.config.jax_compilation_cache_dir is None

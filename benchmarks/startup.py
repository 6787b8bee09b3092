"""Start-up costs of ddpg_jax source trees, side by side, measured in one run.

    python -m benchmarks.startup [--trees OLD=/work/old NEW=/work/main] [--repeats N]
                                 [--td3-steps T] [--quick] [--out FILE]

Every figure comes from a fresh Python subprocess (one per measurement), so
imports and JIT compilation are cold; the trees' measurements are interleaved
(order rotated every round), so they share the machine's load. The first tree
is the reference: ratios are ``OTHER/FIRST`` (``NEW/OLD`` with the default
trees), taken within a round where a figure is repeated. Per tree:

* ``import``: ``import jax``, then ``import ddpg_jax``, then the gymnasium
  training entry point (old tree: ``from ddpg_jax.train import train``; new:
  ``ddpg_jax.drivers.host``, which ``ddpg_jax.train`` loads for a gymnasium
  id). Measured with the package's bytecode cached (``*.pyc``, as an
  installed package has it) and, once per round, without (sources compiled).
* ``compile``: ``jax.jit(make_train(DDPGConfig(eval_every=E), env, params))
  .lower(key).compile()`` on the JAX Pendulum-v1 (20k steps, default
  networks) for E = 5000 (the default: 4 evaluation points), 1000 and 500;
  ``make_train`` from ``ddpg_jax.train.jax_loop`` (old) or ``ddpg_jax`` (new).
  Build (Python), trace+lower and XLA compile are timed separately.
* ``init``: ``init_train_state(key, nets, DDPGConfig())`` for Pendulum's
  shapes, first call (op-by-op dispatch and compilation included) and second
  call, blocked with ``jax.block_until_ready``; eagerly and under ``jax.jit``,
  each in its own process.
* ``first step``: process launch (the parent's clock just before ``Popen``)
  to the end of the first learning step of the gymnasium driver at defaults on
  Pendulum-v1 (``on_progress`` sees ``env_steps > warmup_steps``; the run is
  stopped there by an exception raised in the callback). The time the
  warm-up's last env step finished is reported beside it.
* ``td3``: env steps/s of ``preset("td3-2018", update_schedule="step", total_steps=T,
  eval_every=0, eval_episodes=1)`` (the ``td3`` preset before 2026-12-05) through the gymnasium driver over the learning phase only
  (``on_progress`` stamps at step ``warmup+1`` and ``T-1``: compile, warm-up and
  the final evaluation are excluded).

* ``launch`` (first and second launch, trees with ``ddpg_jax.train``): the
  same training program launched twice in fresh processes sharing one new,
  empty persistent compilation cache folder (``DDPG_JAX_CACHE_DIR``): the
  whole-loop driver (``ddpg_jax.train(DDPGConfig(total_steps=T, eval_every=0,
  eval_episodes=1), "Pendulum-v1", backend="jax")``, the default networks)
  and the gymnasium driver (the same config, launch to the first learning
  step). jax's monitoring gives, per launch, the time spent tracing, lowering
  to StableHLO and in XLA's compile or the cache's load, and the cache's hits
  and misses; the driver reports its own compile time. ``--launches-only``
  runs just this part (results in ``startup.launches.json``).

Every other figure runs with ``DDPG_JAX_CACHE_DIR=off``: they are first-launch
figures, as before the cache existed.

Child processes read the same clock as the parent (``CLOCK_MONOTONIC``), so
times "from launch" include interpreter start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _common as C

DEFAULT_TREES = ("OLD=/work/old", f"NEW={C.REPO_ROOT}")

# The child: one measurement per process. argv: mode, JSON of arguments. It
# prints one line "RESULT {json}" at the end. Clock: CLOCK_MONOTONIC, shared
# with the parent.
CHILD = r'''
import time
T0 = time.clock_gettime(time.CLOCK_MONOTONIC)
import json
import sys


def now():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


mode, arg = sys.argv[1], json.loads(sys.argv[2])
out = {"t_first_statement": T0}
t = now()
import jax
out["import_jax_s"] = now() - t
t = now()
import ddpg_jax
out["import_ddpg_jax_s"] = now() - t
out["t_imported"] = now()
out["ddpg_jax_file"] = ddpg_jax.__file__
NEW_API = callable(getattr(ddpg_jax, "train", None))
out["api"] = "new" if NEW_API else "old"


def gym_train():
    if NEW_API:
        return ddpg_jax.train
    from ddpg_jax.train import train
    return train


def make_train():
    if NEW_API:
        return ddpg_jax.make_train
    from ddpg_jax.train.jax_loop import make_train
    return make_train


class _Stop(Exception):
    pass


if mode == "import":
    t = now()
    if NEW_API:
        import ddpg_jax.drivers.host
    else:
        from ddpg_jax.train import train
    out["import_gym_entry_s"] = now() - t

elif mode == "compile":
    import numpy as np
    from ddpg_jax.envs import make
    env, params = make("Pendulum-v1")
    key = jax.block_until_ready(jax.random.PRNGKey(0))
    config = ddpg_jax.DDPGConfig(eval_every=arg["eval_every"])
    t = now()
    fn = make_train()(config, env, params)
    t1 = now()
    lowered = jax.jit(fn).lower(key)
    t2 = now()
    lowered.compile()
    t3 = now()
    out.update(build_s=t1 - t, lower_s=t2 - t1, compile_s=t3 - t2, total_s=t3 - t)
    schedule = getattr(fn, "schedule", None)
    steps = getattr(schedule, "eval_steps", None)
    out["eval_points"] = None if steps is None else len(steps)
    out["stablehlo_lines"] = len(lowered.as_text().splitlines())

elif mode == "init":
    import numpy as np
    config = ddpg_jax.DDPGConfig()
    nets = ddpg_jax.make_networks(config, 3, np.array([-2.0], np.float32),
                                  np.array([2.0], np.float32))
    key = jax.block_until_ready(jax.random.PRNGKey(0))
    if arg["jit"]:
        init = jax.jit(lambda k: ddpg_jax.init_train_state(k, nets, config))
    else:
        init = lambda k: ddpg_jax.init_train_state(k, nets, config)
    t = now()
    jax.block_until_ready(init(key))
    t1 = now()
    jax.block_until_ready(init(jax.random.PRNGKey(1)))
    t2 = now()
    out.update(first_s=t1 - t, second_s=t2 - t1)

elif mode == "first_step":
    config = ddpg_jax.DDPGConfig()
    warm = config.warmup_steps
    marks = {}

    def on_progress(n):
        t = now()
        marks.setdefault("t_first_env_step", t)
        if n >= warm:
            marks.setdefault("t_warmup_end", t)
        if n > warm:
            marks["t_first_learning_step"] = t
            raise _Stop

    train = gym_train()
    t = now()
    try:
        train(config, "Pendulum-v1", log=None, on_progress=on_progress)
    except _Stop:
        pass
    out["t_train_called"] = t
    out.update(marks)
    out["warmup_steps"] = warm

elif mode == "td3":
    # The td3 preset before 2026-12-05, which the recorded figures used.
    config = ddpg_jax.preset("td3-2018", update_schedule="step", total_steps=arg["total_steps"],
                             eval_every=0, eval_episodes=1)
    warm, total = config.warmup_steps, config.total_steps
    marks = {}

    def on_progress(n):
        if n == warm + 1:
            marks["t_start"] = now()
        elif n == total - 1:
            marks["t_end"] = now()

    train = gym_train()
    t = now()
    result = train(config, "Pendulum-v1", log=None, on_progress=on_progress)
    out["run_s"] = now() - t
    out["first_learning_step_s"] = marks["t_start"] - t
    out["learning_steps_timed"] = total - 1 - (warm + 1)
    out["learning_s"] = marks["t_end"] - marks["t_start"]
    out["steps_per_s"] = out["learning_steps_timed"] / out["learning_s"]
    out["final_eval_return"] = result.summary["final_eval_return_mean"]
    out["warmup_steps"] = warm

elif mode == "launch":
    from jax import monitoring
    counts, durations = {}, {}
    monitoring.register_event_listener(
        lambda name, **kw: counts.__setitem__(name, counts.get(name, 0) + 1))
    monitoring.register_event_duration_secs_listener(
        lambda name, secs, **kw: durations.__setitem__(name, durations.get(name, 0.0) + secs))
    config = ddpg_jax.DDPGConfig(total_steps=arg["total_steps"], eval_every=0,
                                 eval_episodes=1)
    marks = {}

    def on_progress(n):
        if n > config.warmup_steps:
            marks.setdefault("t_first_learning_step", now())

    t = now()
    result = ddpg_jax.train(config, "Pendulum-v1", backend=arg["backend"], log=None,
                            on_progress=on_progress)
    out["train_s"] = now() - t
    out["t_train_called"] = t
    out.update(marks)
    out["driver_compile_s"] = result.summary.get("compile_time_s")
    out["trace_s"] = durations.get("/jax/core/compile/jaxpr_trace_duration", 0.0)
    out["lower_s"] = durations.get("/jax/core/compile/jaxpr_to_mlir_module_duration", 0.0)
    out["xla_or_load_s"] = durations.get("/jax/core/compile/backend_compile_duration", 0.0)
    for k in ("cache_hits", "cache_misses", "compile_requests_use_cache"):
        out[k] = counts.get("/jax/compilation_cache/" + k, 0)
    out["final_eval_return"] = result.summary["final_eval_return_mean"]

else:
    raise SystemExit(f"unknown mode {mode}")
print("RESULT " + json.dumps(out), flush=True)
'''


class Tree:
    def __init__(self, name: str, path: Path, workdir: Path):
        self.name, self.path = name, path
        if not (path / "ddpg_jax" / "__init__.py").is_file():
            raise SystemExit(f"{name}: {path} has no ddpg_jax/__init__.py")
        # A copy of the package with its bytecode compiled, so that imports read *.pyc as
        # an installed package does, without writing into the tree itself.
        self.copy = workdir / name
        shutil.copytree(path / "ddpg_jax", self.copy / "ddpg_jax",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(self.copy / "ddpg_jax")],
                       check=True)
        self.git = _git(path)
        # The commit does not identify a tree with local changes: a hash of the sources does.
        h = hashlib.sha256()
        for f in sorted((self.copy / "ddpg_jax").rglob("*.py")):
            h.update(str(f.relative_to(self.copy)).encode() + b"\0" + f.read_bytes())
        self.sources_sha256 = h.hexdigest()

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path), "git": self.git,
                "ddpg_jax_sources_sha256": self.sources_sha256, "pyc_copy": str(self.copy)}


def _git(path: Path) -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = run("status", "--porcelain")
    return {"commit": run("rev-parse", "HEAD"),
            "dirty": bool(status) if status is not None else None}


def run_child(tree: Tree, mode: str, arg: dict[str, Any], *, pyc: bool = True,
              cwd: str, timeout: float = 900.0, cache: str | None = None) -> dict[str, Any]:
    """One measurement in a fresh interpreter; times ``t_*`` become seconds from launch.

    ``cache``: the persistent compilation cache folder (``DDPG_JAX_CACHE_DIR``); none by
    default.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONPYCACHEPREFIX", "JAX_COMPILATION_CACHE_DIR")}
    env["DDPG_JAX_CACHE_DIR"] = cache or "off"
    # pyc=False: the tree itself, nothing written into it (sources compiled at import).
    env["PYTHONPATH"] = str(tree.copy if pyc else tree.path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    launch = time.clock_gettime(time.CLOCK_MONOTONIC)
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, json.dumps(arg)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{tree.name} {mode} {arg} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    out = json.loads(lines[-1][len("RESULT "):])
    expected = (tree.copy if pyc else tree.path) / "ddpg_jax" / "__init__.py"
    if Path(out["ddpg_jax_file"]).resolve() != expected.resolve():
        raise RuntimeError(f"{tree.name}: the child imported {out['ddpg_jax_file']}, "
                           f"not {expected}")
    for k in [k for k in out if k.startswith("t_")]:
        out[k.replace("t_", "from_launch_", 1) + "_s"] = out.pop(k) - launch
    return out


def main() -> None:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--trees", nargs="+", default=list(DEFAULT_TREES), metavar="NAME=PATH",
                   help="source trees to compare, the first is the reference "
                        f"(default: {' '.join(DEFAULT_TREES)})")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds of the import, init and td3 measurements (default 3)")
    p.add_argument("--td3-steps", type=int, default=4_000,
                   help="total steps of the TD3 host-loop runs (1000 of them warm-up)")
    p.add_argument("--launch-steps", type=int, default=1_100,
                   help="total steps of the first/second launch runs (1000 of them warm-up)")
    p.add_argument("--launches-only", action="store_true",
                   help="measure only the first and second launch with the compilation cache")
    args = p.parse_args()
    if args.out is None:
        name = "startup.launches" if args.launches_only else "startup"
        args.out = C.RESULTS_DIR / (f"{name}.quick.json" if args.quick else f"{name}.json")
    repeats = 1 if args.quick else args.repeats
    evals = [5_000] if args.quick else [5_000, 1_000, 500]
    td3_steps = 1_500 if args.quick else args.td3_steps

    rec = C.Recorder("startup", args)
    workdir = Path(tempfile.mkdtemp(prefix="ddpg_startup_"))
    try:
        trees = []
        for spec in args.trees:
            name, _, path = spec.partition("=")
            if not path:
                p.error(f"--trees takes NAME=PATH, got {spec!r}")
            if (args.trees == list(DEFAULT_TREES)
                    and not (Path(path) / "ddpg_jax" / "__init__.py").is_file()):
                print(f"default tree {name}={path} is not here: skipped")
                continue
            trees.append(Tree(name, Path(path).resolve(), workdir))
        names = [t.name for t in trees]
        rec.config({
            "trees": {t.name: t.info() for t in trees}, "repeats": repeats,
            "env": "Pendulum-v1", "compile_eval_every": evals,
            "compile": "jax.jit(make_train(DDPGConfig(eval_every=E), env, params))"
                       ".lower(key).compile(), JAX Pendulum-v1, other fields default",
            "init": "init_train_state(PRNGKey(0), make_networks(DDPGConfig(), 3, [-2], [2]), "
                    "DDPGConfig()), eager and jax.jit, first and second call",
            "first_step": "gymnasium driver, DDPGConfig() defaults, Pendulum-v1, log=None; "
                          "launch to on_progress(env_steps > warmup_steps)",
            "td3": f"preset('td3-2018', update_schedule='step', total_steps={td3_steps}, "
                   "eval_every=0, eval_episodes=1) (the td3 preset before 2026-12-05), "
                   "gymnasium driver; rate over on_progress steps warmup+1 .. total-1",
            "child": "fresh `python -c` per measurement, cwd an empty temp dir, "
                     "PYTHONPATH = the tree's package (a copy with compiled *.pyc, or the tree "
                     "itself for import_nopyc), PYTHONDONTWRITEBYTECODE=1, no JAX "
                     "compilation cache (DDPG_JAX_CACHE_DIR=off) except in the launch figures",
            "launch": f"DDPGConfig(total_steps={args.launch_steps}, eval_every=0, "
                      "eval_episodes=1) on Pendulum-v1 through ddpg_jax.train, jax and "
                      "gymnasium backends, launched twice with one new DDPG_JAX_CACHE_DIR",
        })
        cwd = str(workdir)

        def rounds(label: str, mode: str, arg: dict[str, Any], n: int,
                   **kw: Any) -> dict[str, list[dict[str, Any]]]:
            res: dict[str, list[dict[str, Any]]] = {t.name: [] for t in trees}
            for r in range(n):
                k = r % len(trees)
                for tree in trees[k:] + trees[:k]:
                    res[tree.name].append(run_child(tree, mode, arg, cwd=cwd, **kw))
                print(f"  {label} round {r + 1}/{n}: " + "; ".join(
                    f"{t.name} " + _brief(mode, res[t.name][-1]) for t in trees), flush=True)
            return res

        # Unmeasured: one import per tree and variant, so that every measured child finds
        # the files in the page cache.
        for tree in trees:
            for pyc in (True, False):
                run_child(tree, "import", {}, pyc=pyc, cwd=cwd)
        raw: dict[str, Any] = {}
        launch_trees = [t for t in trees
                        if (t.path / "ddpg_jax" / "drivers" / "compile_cache.py").is_file()]
        print("-- first and second launch with the compilation cache", flush=True)
        raw["launch"] = launches(launch_trees, repeats, args.launch_steps, workdir)
        if args.launches_only:
            return _finish_launches(rec, raw, launch_trees)
        print("-- import (bytecode cached, then sources compiled)", flush=True)
        raw["import"] = rounds("import", "import", {}, repeats)
        raw["import_nopyc"] = rounds("import_nopyc", "import", {}, repeats, pyc=False)
        print("-- init_train_state", flush=True)
        raw["init_eager"] = rounds("eager", "init", {"jit": False}, repeats)
        raw["init_jit"] = rounds("jit", "init", {"jit": True}, repeats)
        print("-- compile of the whole-loop program", flush=True)
        for e in evals:
            raw[f"compile_eval{e}"] = rounds(f"eval_every={e}", "compile", {"eval_every": e}, 1)
        print("-- process launch to first learning step (gymnasium driver)", flush=True)
        raw["first_step"] = rounds("first step", "first_step", {}, repeats)
        print(f"-- TD3 host loop, {td3_steps} steps", flush=True)
        raw["td3"] = rounds("td3", "td3", {"total_steps": td3_steps}, repeats)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    figures = summarise(raw, names, evals)
    print()
    C.print_table(figures["table"], ["figure", *names,
                                     *(f"{n}/{names[0]}" for n in names[1:])])
    launch = summarise_launches(raw["launch"], [t.name for t in launch_trees])
    print()
    C.print_table(launch["table"], ["figure", "tree", "1st launch", "2nd launch", "2nd/1st"])
    rec.finish({**figures, "launch": launch, "raw": raw}, launch["goals"], notes=[
        *LAUNCH_NOTES[:2],
        "one process per figure, trees interleaved with the order rotated each round; "
        "repeated figures are medians, their ratios medians of per-round ratios",
        "the old tree's `import ddpg_jax` does not load its training loops "
        "(ddpg_jax.train is a subpackage imported separately); import + gym entry compares "
        "what the gymnasium path loads",
        "first step: the old driver calls on_progress right after dispatching the first "
        "learning step (not waiting for its result), the new one after fetching its action; "
        "the difference is one step's execution, milliseconds beside the compilation",
        "figures from launch include interpreter start-up; the machine is shared, so only "
        "ratios from the same run are meaningful",
    ])


LAUNCH_NOTES = [
    "first and second launch: two fresh processes in a row sharing one new, empty "
    "DDPG_JAX_CACHE_DIR per tree, driver and round; the second loads every program from the "
    "cache (cache_hits = the first launch's cache_misses)",
    "driver compile (the whole-loop driver's compile_time_s) = tracing + lowering + XLA "
    "compile or cache load of its four programs; only the XLA part is cached, tracing and "
    "lowering run in Python at every launch",
    "figures from launch include interpreter start-up; the machine is shared, so only "
    "ratios from the same run are meaningful",
]


def launches(trees: list[Tree], repeats: int, total_steps: int,
             workdir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{driver: {tree: [{"first": ..., "second": ...} per round]}}``."""
    res: dict[str, dict[str, list[dict[str, Any]]]] = {
        b: {t.name: [] for t in trees} for b in ("jax", "gymnasium")}
    for r in range(repeats):
        for backend in ("jax", "gymnasium"):
            k = r % max(len(trees), 1)
            for tree in trees[k:] + trees[:k]:
                folder = workdir / f"cache-{tree.name}-{backend}-{r}"
                arg = {"backend": backend, "total_steps": total_steps}
                pair = {which: run_child(tree, "launch", arg, cwd=str(workdir),
                                         cache=str(folder))
                        for which in ("first", "second")}
                pair["cache_files"] = sum(1 for f in folder.rglob("*") if f.is_file())
                res[backend][tree.name].append(pair)
                print(f"  launch round {r + 1}/{repeats} {backend} {tree.name}: driver compile "
                      f"{_launch_brief(pair['first'])} then {_launch_brief(pair['second'])}",
                      flush=True)
    return res


def _launch_brief(r: dict[str, Any]) -> str:
    compile_s = r["driver_compile_s"]
    head = f"{compile_s:.2f}s, " if compile_s is not None else ""
    return (f"{head}XLA/load {r['xla_or_load_s']:.2f}s, trace+lower "
            f"{r['trace_s'] + r['lower_s']:.2f}s, hits {r['cache_hits']} misses "
            f"{r['cache_misses']}")


def summarise_launches(raw: dict[str, Any], names: list[str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    goals: list[dict[str, Any]] = []
    figures = [
        ("jax", "whole-loop driver: driver compile, s", lambda r: r["driver_compile_s"]),
        ("jax", "  XLA compile or cache load, s", lambda r: r["xla_or_load_s"]),
        ("jax", "  tracing + lowering, s", lambda r: r["trace_s"] + r["lower_s"]),
        ("jax", "  launch to result, s", lambda r: r["from_launch_train_called_s"]
         + r["train_s"]),
        ("gymnasium", "gymnasium driver: launch to first learning step, s",
         lambda r: r["from_launch_first_learning_step_s"]),
        ("gymnasium", "  XLA compile or cache load, s", lambda r: r["xla_or_load_s"]),
        ("gymnasium", "  tracing + lowering, s", lambda r: r["trace_s"] + r["lower_s"]),
    ]
    for name in names:
        for backend, label, f in figures:
            pairs = raw[backend][name]
            first = [f(p["first"]) for p in pairs]
            second = [f(p["second"]) for p in pairs]
            key = f"{name}/{backend}/{label.strip()}"
            stats[key] = {"first": C.spread(first), "second": C.spread(second),
                          "second/first": C.per_round_ratio(second, first)}
            rows.append({"figure": label, "tree": name,
                         "1st launch": stats[key]["first"]["median"],
                         "2nd launch": stats[key]["second"]["median"],
                         "2nd/1st": stats[key]["second/first"]["median"]})
        pairs = raw["jax"][name]
        goals.append(C.goal(
            f"{name}: second launch, XLA compile or cache load of the whole-loop programs <= "
            "1.5 s", C.median([p["second"]["xla_or_load_s"] for p in pairs]), 1.5,
            higher_is_better=False))
        goals.append(C.goal(
            f"{name}: second launch, whole-loop driver compile (tracing and lowering included) "
            "<= 1.5 s", C.median([p["second"]["driver_compile_s"] for p in pairs]), 1.5,
            higher_is_better=False,
            limited_by="tracing and lowering in Python, which no compilation cache removes"))
    return {"table": rows, "stats": stats, "goals": goals}


def _finish_launches(rec: C.Recorder, raw: dict[str, Any], trees: list[Tree]) -> None:
    launch = summarise_launches(raw["launch"], [t.name for t in trees])
    print()
    C.print_table(launch["table"], ["figure", "tree", "1st launch", "2nd launch", "2nd/1st"])
    rec.finish({"launch": launch, "raw": raw}, launch["goals"], notes=LAUNCH_NOTES)


def _brief(mode: str, r: dict[str, Any]) -> str:
    if mode == "import":
        return f"{r['import_jax_s'] + r['import_ddpg_jax_s']:.2f}s"
    if mode == "init":
        return f"{r['first_s']:.2f}s"
    if mode == "compile":
        return f"{r['total_s']:.1f}s"
    if mode == "first_step":
        return f"{r['from_launch_first_learning_step_s']:.1f}s"
    if mode == "td3":
        return f"{r['steps_per_s']:.0f} steps/s"
    return ""


def summarise(raw: dict[str, Any], names: list[str], evals: list[int]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}

    def add(label: str, key: str, values: dict[str, list[float]]) -> None:
        s = {n: C.spread(values[n]) for n in names}
        ratios = {f"{n}/{names[0]}": C.per_round_ratio(values[n], values[names[0]])
                  for n in names[1:]}
        stats[key] = {"label": label, **s, "ratios": ratios}
        row: dict[str, Any] = {"figure": label}
        row.update({n: s[n]["median"] for n in names})
        row.update({r: v["median"] for r, v in ratios.items()})
        rows.append(row)

    def col(group: str, f) -> dict[str, list[float]]:
        return {n: [f(r) for r in raw[group][n]] for n in names}

    add("import jax, s", "import_jax_s", col("import", lambda r: r["import_jax_s"]))
    add("import ddpg_jax (after jax), s", "import_ddpg_jax_s",
        col("import", lambda r: r["import_ddpg_jax_s"]))
    add("import jax + ddpg_jax + gym entry, s", "import_with_gym_entry_s",
        col("import", lambda r: r["import_jax_s"] + r["import_ddpg_jax_s"]
            + r["import_gym_entry_s"]))
    add("  same, ddpg_jax without *.pyc, s", "import_with_gym_entry_nopyc_s",
        col("import_nopyc", lambda r: r["import_jax_s"] + r["import_ddpg_jax_s"]
            + r["import_gym_entry_s"]))
    add("launch to ddpg_jax imported, s", "launch_to_imported_s",
        col("import", lambda r: r["from_launch_imported_s"]))
    add("init_train_state eager, 1st call, s", "init_eager_first_s",
        col("init_eager", lambda r: r["first_s"]))
    add("init_train_state eager, 2nd call, ms", "init_eager_second_ms",
        col("init_eager", lambda r: r["second_s"] * 1e3))
    add("init_train_state jit, 1st call, s", "init_jit_first_s",
        col("init_jit", lambda r: r["first_s"]))
    add("init_train_state jit, 2nd call, ms", "init_jit_second_ms",
        col("init_jit", lambda r: r["second_s"] * 1e3))
    for e in evals:
        g = f"compile_eval{e}"
        points = raw[g][names[0]][0].get("eval_points")
        tag = f"eval_every={e}" + (f" ({points} evals)" if points else "")
        add(f"compile {tag}: total, s", f"{g}_total_s", col(g, lambda r: r["total_s"]))
        add("  trace+lower, s", f"{g}_lower_s", col(g, lambda r: r["lower_s"]))
        add("  XLA compile, s", f"{g}_xla_s", col(g, lambda r: r["compile_s"]))
        add("  StableHLO lines", f"{g}_stablehlo_lines",
            col(g, lambda r: float(r["stablehlo_lines"])))
    add("launch to first env step, s", "first_env_step_s",
        col("first_step", lambda r: r["from_launch_first_env_step_s"]))
    add("launch to warm-up end (1000 steps), s", "warmup_end_s",
        col("first_step", lambda r: r["from_launch_warmup_end_s"]))
    add("launch to first learning step, s", "first_learning_step_s",
        col("first_step", lambda r: r["from_launch_first_learning_step_s"]))
    add("  warm-up end to first learning step, s", "warmup_end_to_first_learning_step_s",
        col("first_step", lambda r: r["from_launch_first_learning_step_s"]
            - r["from_launch_warmup_end_s"]))
    add("TD3 host loop, learning steps/s", "td3_steps_per_s",
        col("td3", lambda r: r["steps_per_s"]))
    add("TD3 run start to first learning step, s", "td3_first_learning_step_s",
        col("td3", lambda r: r["first_learning_step_s"]))
    return {"table": rows, "stats": stats}


if __name__ == "__main__":
    main()

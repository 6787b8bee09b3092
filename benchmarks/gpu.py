"""One command for one GPU: vmapped-seed TD3, Playground physics and training, matmul drift, export.

    python -m benchmarks.gpu                 # the full run: at most 8 minutes on one GPU
    python -m benchmarks.gpu --smoke         # every part at tiny sizes, on a CPU (CI)
    python -m benchmarks.gpu --parts precision,export --out FILE.json
    bash .whl/run.sh python3 -m benchmarks.gpu   # on the project's GPU machine

Six parts, each in its own process with its own time budget (``benchmarks/_gpu_parts.py``
has the sizes and the settings):

* ``pendulum_seeds``: TD3 with rejax's Pendulum settings on the built-in JAX Pendulum-v1,
  1 / 64 / 256 / 1024 vmapped seeds in one compiled program each (``ddpg_jax.run_seeds``):
  compile time, env steps/s over all seeds, final returns;
* ``hopper_seeds``: the same with rejax's brax ``hopper`` settings on brax's hopper;
* ``playground_env``: ``CartpoleBalance`` and ``CheetahRun`` alone through
  ``from_playground`` at 1024 and 4096 envs, for each physics impl available;
* ``playground_train``: the ``accelerator`` preset through ``ddpg_jax.train``: env steps/s
  and updates/s while training, and the wall time to a return threshold;
* ``precision``: the actor after 20 TD3 updates at batch 256 from one state and batches, at
  the default matmul precision against ``"highest"`` (relative norm of the difference);
* ``export``: a checkpoint's policy exported with ``jax.export`` for CPU and CUDA, loaded and
  called on the default device, against the in-process policy (max abs difference).

A part that fails, or runs past its budget, is recorded as such (with what it finished) and
the rest still run. Within a part, a larger size whose time, projected from the smaller one,
exceeds what is left of the budget is skipped and listed. The record goes to ``--out``
(default ``$OUT/gpu-HOST-DATE.json`` where ``$OUT`` is set, else
``benchmarks/results/gpu-HOST-DATE.json``; ``.smoke.json`` for ``--smoke``) with a markdown
table beside it (``.md``), also printed. ``--smoke`` sizes are meaningless as figures.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _common as C
from benchmarks._gpu_parts import PARTS, SIZES, Budget, PartRecord

#: The whole run's limit in seconds (the goal is 8 minutes on one GPU) and the smoke run's.
TOTAL_S = {"full": 470.0, "smoke": 600.0}
#: Smoke budgets are limits for a loaded 2-core CPU, not expected times.
SMOKE_PART_S = 120.0
#: XLA flag of the smoke run's parts: compile for speed, since its figures are not used.
SMOKE_XLA_FLAG = "--xla_backend_optimization_level=0"
#: Seconds a part may run past its deadline (finishing a record) before it is killed.
GRACE_S = 8.0
#: The goals of issue 19 ("Goals to report against"): part, text, target.
GOALS = (
    ("playground_train", "accelerator preset on Playground CheetahRun: env steps/s while "
                         "training >= 100k", 100_000.0),
    ("hopper_seeds", "TD3 on brax hopper at 256 vmapped seeds: env steps/s > rejax's ~94k",
     94_000.0),
    ("pendulum_seeds", "1024 Pendulum seeds: env steps/s >= 8x that of 64 seeds", 8.0),
)


def default_out(smoke: bool) -> Path:
    base = Path(os.environ["OUT"]) if os.environ.get("OUT") else C.RESULTS_DIR
    day = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    return base / f"gpu-{platform.node() or 'host'}-{day}{'.smoke' if smoke else ''}.json"


def part_budget(mode: str, part: str) -> float:
    return SMOKE_PART_S if mode == "smoke" else float(SIZES[mode][part]["budget_s"])


# --------------------------------------------------------------------------- child
def child(part: str, mode: str, record_path: Path, deadline: float) -> int:
    """Runs one part in this process, writing its record to ``record_path`` as it goes."""
    record = PartRecord(part, record_path)
    try:
        record.data.update(machine=C.machine(), versions=C.versions())
        record.write()
        PARTS[part](SIZES[mode][part], Budget(deadline - time.time() - 2.0), record)
        record.data["status"] = "ok"
        return 0
    except Exception:  # recorded, so that the parent reports it and goes on
        record.data.update(status="failed", error=traceback.format_exc()[-4000:])
        print(f"[{part}] failed:\n{record.data['error']}", file=sys.stderr, flush=True)
        return 1
    finally:
        record.write()


# --------------------------------------------------------------------------- parent
def child_env(mode: str) -> dict[str, str]:
    """The parts' environment: a smoke run compiles with XLA's backend optimisation off
    (a third of the CPU compile time measured here, same returns), unless XLA_FLAGS sets it."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    if mode == "smoke" and "xla_backend_optimization_level" not in flags:
        env["XLA_FLAGS"] = (flags + " " + SMOKE_XLA_FLAG).strip()
    return env


def run_part(name: str, argv: list[str], record_path: Path, kill_after_s: float,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs ``argv`` (a part's process) for at most ``kill_after_s``; returns its record with
    ``status`` ok / failed / timed_out / crashed, ``wall_s`` and ``returncode``."""
    record_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    timed_out, rc = False, None
    try:
        rc = subprocess.run(argv, cwd=C.REPO_ROOT, timeout=kill_after_s, env=env,
                            check=False).returncode
    except subprocess.TimeoutExpired:
        timed_out = True
    wall = time.perf_counter() - t0
    try:
        data = json.loads(record_path.read_text())
    except (OSError, ValueError):
        data = {"part": name, "cases": [], "skipped": [], "notes": []}
    if timed_out:
        data["status"] = "timed_out"
        data.setdefault("notes", []).append(
            f"killed after {kill_after_s:.0f} s; the cases above finished before that")
    elif rc != 0 and data.get("status") != "failed":
        data["status"] = "crashed"
        data["error"] = f"the part's process exited with code {rc} without a record of why"
    data.update(wall_s=round(wall, 1), returncode=rc)
    return data


def child_argv(name: str, mode: str, record_path: Path, deadline: float) -> list[str]:
    """The command of one part's process."""
    return [sys.executable, "-m", "benchmarks.gpu", "--child", name, "--mode", mode,
            "--record", str(record_path), "--deadline", repr(deadline)]


def run_all(parts: list[str], mode: str, out: Path, total_s: float,
            command: Callable[[str, str, Path, float], list[str]] = child_argv
            ) -> dict[str, dict[str, Any]]:
    """Every part in turn (``command`` gives its process), each within its budget and within
    the whole run's limit; a part that fails or runs over does not stop the others."""
    start = time.time()
    results: dict[str, dict[str, Any]] = {}
    for name in parts:
        left = start + total_s - time.time()
        budget = min(part_budget(mode, name), left - GRACE_S)
        if budget < 5:
            results[name] = {"part": name, "status": "skipped", "cases": [], "skipped": [],
                             "notes": [f"{left:.0f} s left of the run's {total_s:.0f} s"]}
            continue
        print(f"\n== part {name} (budget {budget:.0f} s)", flush=True)
        record_path = out.with_name(f".{out.stem}.{name}.part.json")
        deadline = time.time() + budget
        results[name] = run_part(name, command(name, mode, record_path, deadline), record_path,
                                 budget + GRACE_S, child_env(mode))
        results[name]["budget_s"] = round(budget, 1)
        record_path.unlink(missing_ok=True)
        print(f"== part {name}: {results[name]['status']} in {results[name]['wall_s']} s",
              flush=True)
    return results


# --------------------------------------------------------------------------- judging
def _case(results: dict[str, Any], part: str, **match: Any) -> dict[str, Any] | None:
    for case in results.get(part, {}).get("cases", []):
        if all(case.get(k) == v for k, v in match.items()):
            return case
    return None


def _unmeasured(text: str, why: str) -> dict[str, Any]:
    return {"goal": text, "measured": None, "met": None, "why": why}


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals against what was measured ("not measured" where a case is missing)."""
    goals = []
    (_, t_cheetah, g_cheetah), (_, t_hopper, g_hopper), (_, t_pend, g_pend) = GOALS
    train = _case(results, "playground_train", task="CheetahRun")
    alone = _case(results, "playground_env", task="CheetahRun", impl="jax", num_envs=1024)
    if train and train.get("env_steps_per_s"):
        bound = None
        if alone:
            ratio = train["env_steps_per_s"] / alone["env_steps_per_s"]
            bound = (f"training runs at {ratio:.2f}x the env alone at 1024 envs "
                     f"({alone['env_steps_per_s']:.4g} env steps/s): "
                     + ("the env bounds it" if ratio > 0.5 else "the learning step bounds it"))
        goals.append({**C.goal(t_cheetah, train["env_steps_per_s"], g_cheetah,
                               limited_by=bound), "rate_from": train.get("rate_from")})
    else:
        goals.append(_unmeasured(t_cheetah, "no CheetahRun training rate in this run"))
    hopper = (_case(results, "hopper_seeds", num_seeds=256)
              if "hopper" in str(results.get("hopper_seeds", {}).get("env")) else None)
    goals.append(C.goal(t_hopper, hopper["env_steps_per_s"], g_hopper) if hopper else
                 _unmeasured(t_hopper, "no 256-seed hopper case in this run"))
    p64, p1024 = (_case(results, "pendulum_seeds", num_seeds=n) for n in (64, 1024))
    goals.append(C.goal(t_pend, p1024["env_steps_per_s"] / p64["env_steps_per_s"], g_pend)
                 if p64 and p1024 else
                 _unmeasured(t_pend, "the 64- and 1024-seed cases are not both in this run"))
    return goals


# --------------------------------------------------------------------------- tables
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(no case measured)"]
    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows])


def markdown(record: dict[str, Any]) -> str:
    """The run as markdown: one table per part, the parts' status and the goals."""
    r, m = record["parts"], record.get("machine") or {}
    lines = [f"# benchmarks.gpu ({record['mode']}), {record['date_utc']}", "",
             f"Device: {m.get('device_kind')} ({m.get('jax_backend')}), host CPU "
             f"{m.get('cpu_model')}; jax {(record.get('versions') or {}).get('jax')}; "
             f"commit {str(((record.get('versions') or {}).get('git') or {}).get('commit'))[:10]}"
             f"; command `{record['command']}`; {record['wall_time_s']} s.", ""]
    seeds = [[part.split("_")[0], c["num_seeds"], c["steps_per_seed"], c["compile_s"], c["run_s"],
              c["env_steps_per_s"], c["final_return_mean"], c["final_return_min"],
              c["final_return_max"]]
             for part in ("pendulum_seeds", "hopper_seeds") if part in r
             for c in sorted(r[part]["cases"], key=lambda c: c["num_seeds"])]
    lines += ["## Vmapped seeds (TD3, rejax's settings)", ""] + _table(
        ["env", "seeds", "steps/seed", "compile s", "run s", "env steps/s", "final return mean",
         "min", "max"], seeds)
    env = [[c["task"], c["impl"], c["num_envs"], c["compile_s"], c["env_steps_per_s"],
            c["ms_per_vector_step"]] for c in r.get("playground_env", {}).get("cases", [])]
    lines += ["", "## Playground env alone (through from_playground, random actions)", ""] + \
        _table(["task", "impl", "envs", "compile s", "env steps/s", "ms/vector step"], env)
    train = [[c["task"], c["num_envs"], c["batch_size"], c.get("env_steps_per_s"),
              c.get("updates_per_s"), c.get("compile_s"), c["threshold"],
              c.get("env_steps_to_threshold"), c.get("wall_s_to_threshold"),
              c.get("final_return")] for c in r.get("playground_train", {}).get("cases", [])]
    lines += ["", "## accelerator preset training", ""] + _table(
        ["task", "envs", "batch", "env steps/s", "updates/s", "compile s", "threshold",
         "steps to it", "wall s to it", "last return"], train)
    prec = [[c["updates"], c["batch_size"], c["actor_rel_diff"], c["critic_rel_diff"],
             c["actor_rel_change_by_updates"]] for c in r.get("precision", {}).get("cases", [])]
    lines += ["", "## Matmul precision: default against \"highest\"", ""] + _table(
        ["updates", "batch", "actor rel diff", "critic rel diff", "actor moved by"], prec)
    exp = [[",".join(c["platforms"]), ",".join(c["ran_on"]), c["max_abs_diff"],
            all(b["bitwise_equal"] for b in c["batches"]),
            c["in_process_default_device_vs_cpu_max_abs_diff"]]
           for c in r.get("export", {}).get("cases", [])]
    lines += ["", "## Exported policy against the in-process policy", ""] + _table(
        ["platforms", "ran on", "max abs diff", "bitwise equal", "in-process vs CPU"], exp)
    status = [[n, p["status"], p.get("budget_s"), p.get("wall_s"),
               "; ".join(f"{s['case']} ({s['why']})" for s in p.get("skipped", []))]
              for n, p in r.items()]
    lines += ["", "## Parts", ""] + _table(["part", "status", "budget s", "wall s", "skipped"],
                                           status)
    goals = [[g["goal"], g["measured"], g["met"], g.get("limited_by") or g.get("why")]
             for g in record["goals"]]
    lines += ["", "## Goals", ""] + _table(["goal", "measured", "met", "note"], goals)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def unwritable(out: Path) -> str | None:
    """Why the results cannot be written to ``out``, checked before any part runs; or None."""
    if out.is_dir():
        return "it is a directory"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.with_name(f".{out.name}.probe")
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        return f"cannot write there ({e.strerror})"
    return None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="every part at tiny sizes (a CPU check that the script runs; figures "
                        "meaningless)")
    p.add_argument("--out", type=Path, default=None,
                   help="results file (default: $OUT/gpu-HOST-DATE.json where $OUT is set, "
                        "else benchmarks/results/gpu-HOST-DATE.json); markdown beside it (.md)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated parts, in this order (default all: {','.join(PARTS)})")
    p.add_argument("--total-s", type=float, default=None,
                   help="limit of the whole run in seconds (default 470 full, 600 smoke)")
    # One part in this process, as the parent starts it.
    p.add_argument("--child", choices=list(PARTS), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=list(SIZES), default="full", help=argparse.SUPPRESS)
    p.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in parts if x not in PARTS]
    if unknown or not parts:
        p.error(f"--parts {args.parts!r}: unknown {unknown}; accepted: a comma-separated "
                f"list of {', '.join(PARTS)}")
    if args.total_s is not None and args.total_s <= 0:
        p.error(f"--total-s {args.total_s}: accepted: a number of seconds > 0")
    args.parts_list = parts
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        return child(args.child, args.mode, args.record, args.deadline)
    mode = "smoke" if args.smoke else "full"
    out = args.out or default_out(args.smoke)
    problem = unwritable(out)
    if problem:
        print(f"benchmarks.gpu: error: --out {out}: {problem}; accepted: a file path in a "
              "writable directory (the markdown table goes beside it)", file=sys.stderr)
        return 2
    total_s = args.total_s or TOTAL_S[mode]
    started = _dt.datetime.now(_dt.UTC)
    t0, load0 = time.perf_counter(), C.loadavg()
    print(f"== benchmarks.gpu ({mode}) {started.isoformat(timespec='seconds')}: parts "
          f"{', '.join(args.parts_list)}; limit {total_s:.0f} s; load {C.loadavg()}", flush=True)
    parts = run_all(args.parts_list, mode, out, total_s)
    first = next((p for p in parts.values() if p.get("machine")), {})
    record = {
        "benchmark": "gpu", "mode": mode,
        "command": "python -m benchmarks.gpu" + (" " + " ".join(sys.argv[1:])
                                                 if argv is None and sys.argv[1:] else ""),
        "date_utc": started.isoformat(timespec="seconds"), "host": platform.node(),
        "machine": first.get("machine"), "versions": first.get("versions"),
        "total_limit_s": total_s, "load_average_start": load0, "parts": parts,
    }
    for p in parts.values():
        p.pop("machine", None)
        p.pop("versions", None)
    record["goals"] = judge(parts)
    record["notes"] = ([f"smoke: tiny sizes on whatever backend jax finds, compiled with "
                        f"XLA_FLAGS={child_env(mode)['XLA_FLAGS']!r}; figures are meaningless, "
                        "the run checks that every part works"] if args.smoke else [])
    record["wall_time_s"] = round(time.perf_counter() - t0, 1)
    record["load_average_end"] = C.loadavg()
    out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    text = markdown(record)
    out.with_suffix(".md").write_text(text)
    print("\n" + text)
    print(f"wrote {out} and {out.with_suffix('.md')} ({record['wall_time_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared helpers of the benchmarks: machine and version records, timing, results files."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD flags that decide dense float32 throughput (AVX2 / AVX-512 / FMA)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f in ("avx", "avx2", "fma", "avx512f",
                                                             "avx512_bf16", "amx_tile"))
    except OSError:
        pass
    return []


def mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    import jax

    devices = jax.devices()
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": mem_total_gib(),
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
    }


def _pkg_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_state() -> dict[str, Any]:
    """Commit and whether tracked files had local changes (read-only git calls).

    Untracked files do not count: results written by a run beside this one (new JSON and
    PNG files) are not a change to the code that made the figures.
    """
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def versions() -> dict[str, Any]:
    import ddpg_jax

    out = {"python": platform.python_version(), "ddpg_jax": ddpg_jax.__version__}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "gymnasium", "numpy"):
        out[name] = _pkg_version(name)
    for name in ("mujoco", "tensorstore", "chex", "rich"):  # only when installed
        version = _pkg_version(name)
        if version is not None:
            out[name] = version
    out["git"] = git_state()
    return out


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(threshold: float = 1.5, max_wait_s: float = 600.0, step_s: float = 60.0,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Sleeps in steps while the 1-minute load is above ``threshold``, at most ``max_wait_s``."""
    waited = 0.0
    start = loadavg()
    while os.getloadavg()[0] > threshold and waited < max_wait_s:
        log(f"load {loadavg()} > {threshold}: waiting {step_s:.0f} s "
            f"({waited:.0f}/{max_wait_s:.0f} s so far)")
        time.sleep(step_s)
        waited += step_s
    return {"threshold": threshold, "waited_s": waited, "load_before_wait": start,
            "load_after_wait": loadavg()}


# --------------------------------------------------------------------------- timing
def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def spread(xs: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the interquartile range of a list of figures."""
    xs = sorted(float(x) for x in xs)
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"median": median(xs), "min": xs[0], "max": xs[-1], "q1": q[0], "q3": q[2],
            "n": len(xs)}


def interleaved(variants: Mapping[str, Callable[[], float]], repeats: int,
                log: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Runs each variant once per round, rotating the order every round.

    Each callable returns one measurement (e.g. seconds per item). Rotating the
    order keeps a slow phase of a shared machine from always hitting the same
    variant; ratios are then taken per round, so drift between rounds cancels.
    """
    names = list(variants)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(float(variants[name]()))
        if log is not None:
            log(f"  round {r + 1}/{repeats}: " +
                ", ".join(f"{n} {out[n][-1]:.4g}" for n in names))
    return out


def per_round_ratio(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    return spread([a / b for a, b in zip(num, den)])


# --------------------------------------------------------------------------- records
def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and few repeats: checks that the script runs, figures are "
                        "not meaningful (results go to NAME.quick.json)")
    p.add_argument("--out", type=Path, default=None,
                   help="results file (default: benchmarks/results/NAME.json)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before measuring, wait up to SECONDS for the 1-minute load to drop "
                        "below 1.5 (default 0: do not wait)")
    return p


class Recorder:
    """Collects the record of one benchmark run and writes it as JSON."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name = name
        self.args = args
        self.started = _dt.datetime.now(_dt.UTC)
        self.quiet = (wait_for_quiet(max_wait_s=args.wait_quiet)
                      if getattr(args, "wait_quiet", 0) > 0 else None)
        self.load_start = loadavg()
        self.record: dict[str, Any] = {
            "benchmark": name,
            "command": "python -m benchmarks." + name + (" " + " ".join(sys.argv[1:])
                                                         if sys.argv[1:] else ""),
            "date_utc": self.started.isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": versions(),
            "load_average_start": self.load_start,
        }
        if self.quiet is not None:
            self.record["wait_for_quiet"] = self.quiet
        m, v = self.record["machine"], self.record["versions"]
        print(f"== benchmarks.{name}  {self.record['date_utc']}")
        print(f"machine: {m['cpu_model']}, {m['cpu_count']} cores "
              f"({m['cpus_usable']} usable), {m['mem_total_gib']} GiB, flags {m['cpu_flags']}")
        print(f"jax devices: {m['jax_devices']} (kind {m['device_kind']!r})")
        print("versions: " + ", ".join(f"{k} {v[k]}" for k in v if k != "git")
              + f", commit {str(v['git']['commit'])[:10]}{' (dirty)' if v['git']['dirty'] else ''}")
        print(f"load average at start (1/5/15 min): {self.load_start}")

    def config(self, cfg: Mapping[str, Any]) -> None:
        self.record["config"] = dict(cfg)
        print("config: " + json.dumps(cfg, sort_keys=True, default=str))

    def finish(self, figures: Mapping[str, Any], goals: Sequence[Mapping[str, Any]] = (),
               notes: Sequence[str] = ()) -> Path:
        self.record["figures"] = figures
        self.record["goals"] = list(goals)
        self.record["notes"] = list(notes)
        self.record["load_average_end"] = loadavg()
        self.record["wall_time_s"] = round(
            (_dt.datetime.now(_dt.UTC) - self.started).total_seconds(), 1)
        path = self.args.out or RESULTS_DIR / (
            self.name + (".quick" if getattr(self.args, "quick", False) else "") + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record, indent=2, sort_keys=False, default=_jsonable) + "\n")
        print(f"load average at end: {self.record['load_average_end']}")
        for g in goals:
            status = "MET" if g["met"] else "NOT MET"
            print(f"goal {g['goal']}: measured {g['measured']} -> {status}")
        for n in notes:
            print(f"note: {n}")
        print(f"wrote {path} ({self.record['wall_time_s']} s)")
        return path


def _jsonable(x: Any) -> Any:
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:
        pass
    return str(x)


def goal(text: str, measured: float, target: float, higher_is_better: bool = True,
         limited_by: str | None = None) -> dict[str, Any]:
    met = measured >= target if higher_is_better else measured <= target
    g = {"goal": text, "measured": round(float(measured), 3), "target": target, "met": bool(met)}
    if limited_by and not met:
        g["limited_by"] = limited_by
    return g


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def random_rollout(env: Any, params: Any, num_envs: int, steps: int) -> Callable[[Any], Any]:
    """``rollout(key) -> summed reward``: ``num_envs`` envs reset once, then ``steps`` vector
    steps of uniform random actions in one ``lax.scan`` (an env's speed alone)."""
    import jax
    import jax.numpy as jnp

    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    space = env.action_space(params)

    def rollout(key: Any) -> Any:
        reset_key, steps_key = jax.random.split(key)
        _, state = v_reset(jax.random.split(reset_key, num_envs), params)

        def body(carry: Any, k: Any) -> Any:
            state, total = carry
            ka, ks = jax.random.split(k)
            action = jax.random.uniform(ka, (num_envs,) + space.shape, jnp.float32,
                                        space.low, space.high)
            _, state, reward, _, _, _ = v_step(jax.random.split(ks, num_envs), state, action,
                                               params)
            return (state, total + jnp.sum(reward)), None

        (_, total), _ = jax.lax.scan(body, (state, 0.0), jax.random.split(steps_key, steps))
        return total

    return rollout

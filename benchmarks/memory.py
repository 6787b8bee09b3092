"""Peak memory of short training runs with a 1e6-transition replay buffer.

    python -m benchmarks.memory [--quick]

Each case runs in a fresh Python subprocess, which reports its peak resident
memory (``VmHWM`` from ``/proc/self/status`` and ``ru_maxrss`` from
``resource.getrusage``) and, where the device has them (GPUs), the device's
``memory_stats()`` (``peak_bytes_in_use``). Cases:

* ``baseline``: imports, environment creation and one tiny jitted call;
* ``gym/<capacity>``: ``ddpg_jax.train`` (gymnasium driver) on gymnasium Pendulum-v1;
* ``jax/<capacity>/<seeds>``: ``ddpg_jax.run_seeds`` on the JAX Pendulum.

Every run is short (default networks, 2,000 steps, 1,000 of them warm-up),
with buffer capacity 1e6 and, for comparison, 1e4. The raw bytes of the
buffer are ``capacity * 36`` (obs 3 + action 1 + reward + terminated +
next_obs 3, float32). The headline figure is the *extra* peak memory of the
1e6 run over the 1e4 run of the same kind, divided by the extra raw bytes:
1.0 means the buffer is held exactly once, 2.0 that a second copy existed
at the peak.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

from benchmarks import _common as C

ROW_BYTES = 4 * (3 + 1 + 1 + 1 + 3)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def child(case: str, total_steps: int, warmup: int, hidden: tuple[int, ...]) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import ddpg_jax
    from ddpg_jax import run_seeds, train
    from ddpg_jax.envs import make

    kind, *rest = case.split("/")
    info: dict[str, Any] = {"case": case}
    if kind == "baseline":
        make("Pendulum-v1")
        import gymnasium as gym

        gym.make("Pendulum-v1").reset(seed=0)
        jax.block_until_ready(jax.jit(lambda x: x * 2)(jnp.ones(3)))
        capacity = 0
    else:
        capacity = int(float(rest[0]))
        cfg = ddpg_jax.DDPGConfig(total_steps=total_steps, warmup_steps=warmup,
                                  buffer_size=capacity, eval_every=0, eval_episodes=1,
                                  hidden_sizes=hidden)
        if kind == "gym":
            res = train(cfg, "Pendulum-v1", log=None)
            info["buffer_nbytes"] = ddpg_jax.agent.buffer.nbytes(res.buffer)
        elif kind == "jax":
            seeds = int(rest[1])
            env, params = make("Pendulum-v1")
            run_seeds(cfg, env, params, num_seeds=seeds)
            capacity *= seeds
        else:
            raise ValueError(case)
    info["raw_buffer_bytes"] = capacity * ROW_BYTES
    info["vm_hwm_bytes"] = (_status_kib("VmHWM") or 0) * 1024
    info["vm_rss_end_bytes"] = (_status_kib("VmRSS") or 0) * 1024
    info["ru_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stats = jax.devices()[0].memory_stats()
    info["device_memory_stats"] = (
        {k: stats[k] for k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit") if k in stats}
        if stats else None)
    if kind == "jax":
        # After the peak is recorded: XLA's own account of the compiled program's
        # buffers (deterministic, unlike resident memory).
        from ddpg_jax import make_train, seed_keys

        fn = jax.jit(jax.vmap(make_train(cfg, env, params)))
        ma = fn.lower(seed_keys(0, seeds)).compile().memory_analysis()
        info["xla_memory_analysis"] = None if ma is None else {
            k: int(getattr(ma, k)) for k in ("argument_size_in_bytes", "output_size_in_bytes",
                                            "alias_size_in_bytes", "temp_size_in_bytes",
                                            "generated_code_size_in_bytes")
            if hasattr(ma, k)}
    return info


def run_child(case: str, total_steps: int, warmup: int, hidden: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", case,
           "--total-steps", str(total_steps), "--warmup", str(warmup), "--hidden", hidden]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=C.REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(C.REPO_ROOT)})
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--child", default=None, help=argparse_hidden())
    p.add_argument("--total-steps", type=int, default=2_000)
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--hidden", default="256,256")
    args = p.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    if args.child:
        print(json.dumps(child(args.child, args.total_steps, args.warmup, hidden)))
        return

    rec = C.Recorder("memory", args)
    big, small = 1_000_000, 10_000
    cases = ["baseline", f"gym/{small}", f"gym/{big}", f"jax/{small}/1", f"jax/{big}/1",
             f"jax/{small}/8", f"jax/{big}/8"]
    total, warmup, hidden_s = args.total_steps, args.warmup, args.hidden
    if args.quick:
        big, small, total, warmup, hidden_s = 100_000, 1_000, 600, 300, "32,32"
        cases = ["baseline", f"gym/{small}", f"gym/{big}", f"jax/{small}/1", f"jax/{big}/1"]
    rec.config({"cases": cases, "total_steps": total, "warmup_steps": warmup,
                "hidden_sizes": hidden_s, "raw_bytes_per_transition": ROW_BYTES,
                "eval_every": 0, "eval_episodes": 1,
                "measure": "fresh subprocess per case; VmHWM, ru_maxrss, device memory_stats"})
    results = {}
    for case in cases:
        r = run_child(case, total, warmup, hidden_s)
        results[case] = r
        print(f"  {case:>16}: peak RSS {r['vm_hwm_bytes'] / 2**20:8.1f} MiB "
              f"(ru_maxrss {r['ru_maxrss_bytes'] / 2**20:.1f} MiB), raw buffer "
              f"{r['raw_buffer_bytes'] / 2**20:7.1f} MiB, device stats {r['device_memory_stats']}")
    base = results["baseline"]["vm_hwm_bytes"]
    rows, pairs = [], {}
    for case, r in results.items():
        rows.append({"case": case, "peak RSS MiB": r["vm_hwm_bytes"] / 2**20,
                     "over baseline MiB": (r["vm_hwm_bytes"] - base) / 2**20,
                     "raw buffer MiB": r["raw_buffer_bytes"] / 2**20,
                     "(peak-baseline)/raw": ((r["vm_hwm_bytes"] - base) / r["raw_buffer_bytes"]
                                             if r["raw_buffer_bytes"] else float("nan"))})
    for case in cases:
        if case.startswith(("gym/", "jax/")) and f"/{big}" in case:
            other = case.replace(f"/{big}", f"/{small}")
            d_peak = results[case]["vm_hwm_bytes"] - results[other]["vm_hwm_bytes"]
            d_raw = results[case]["raw_buffer_bytes"] - results[other]["raw_buffer_bytes"]
            pairs[case] = {"vs": other, "extra_peak_bytes": d_peak, "extra_raw_bytes": d_raw,
                           "extra_peak_over_extra_raw": d_peak / d_raw}
    for case in cases:
        ma = results[case].get("xla_memory_analysis")
        if ma and results[case]["raw_buffer_bytes"]:
            ratio = ma["temp_size_in_bytes"] / results[case]["raw_buffer_bytes"]
            ma["temp_over_raw_buffer"] = ratio
            print(f"  {case}: XLA temp buffers {ma['temp_size_in_bytes'] / 2**20:.1f} MiB = "
                  f"{ratio:.2f} x raw buffer")
    print()
    C.print_table(rows, list(rows[0]))
    for case, d in pairs.items():
        print(f"  {case} vs {d['vs']}: extra peak {d['extra_peak_bytes'] / 2**20:.1f} MiB for "
              f"{d['extra_raw_bytes'] / 2**20:.1f} MiB more raw buffer -> "
              f"{d['extra_peak_over_extra_raw']:.2f} buffer copies at the peak")
    rec.finish({"cases": results, "table": rows, "capacity_pairs": pairs}, [], notes=[
        "host memory is what matters on CPU, where device arrays live in host memory; "
        "device_memory_stats is null on CPU and reported on GPUs",
        "ratios of differences cancel the memory of Python, XLA, compiled programs and "
        "the networks, which both runs of a pair share",
    ])


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

"""Runs every benchmark in turn, each in its own process.

    python -m benchmarks.run_all [--quick] [--wait-quiet SECONDS] [--only NAME,NAME]

Each benchmark writes ``benchmarks/results/NAME.json`` (``NAME.quick.json``
with ``--quick``). Full runs take about 40 minutes on a 2-core CPU: update_flops ~4,
buffer ~3, host_loop ~8, whole_loop ~8, memory ~3, startup ~10 (startup compares the
source trees of its ``--trees`` default, ``OLD=/work/old NEW=<this repository>``, and
measures this repository alone where ``/work/old`` is missing).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks import _common as C

BENCHMARKS = ("update_flops", "buffer", "host_loop", "whole_loop", "memory", "startup")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke-test sizes")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each benchmark, wait up to SECONDS for the 1-minute load "
                        "to drop below 1.5")
    p.add_argument("--only", default=",".join(BENCHMARKS),
                   help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    args = p.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; accepted: {', '.join(BENCHMARKS)}")
    failed = []
    for name in names:
        cmd = [sys.executable, "-m", f"benchmarks.{name}"]
        if args.quick:
            cmd.append("--quick")
        if args.wait_quiet:
            cmd += ["--wait-quiet", str(args.wait_quiet)]
        print(f"\n$ {' '.join(cmd[1:])}   (load {C.loadavg()})", flush=True)
        t = time.perf_counter()
        rc = subprocess.call(cmd, cwd=C.REPO_ROOT)
        print(f"-> {name}: exit {rc}, {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

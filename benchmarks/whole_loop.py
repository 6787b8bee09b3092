"""Whole-loop jit on the JAX Pendulum: compile time and env steps/s for 1, 8 and 64 seeds.

    python -m benchmarks.whole_loop [--quick] [--steps-64x64 N] [--steps-256x256 N,N,N]

Each case is one call of ``ddpg_jax.run_seeds`` (one compiled program
that trains ``num_seeds`` independent runs with ``vmap``), which reports its
compile time and its run time separately. Configuration: ``DDPGConfig``
defaults except ``total_steps`` (short runs, see below), ``warmup_steps=256``
(= batch size, so that most steps learn), ``buffer_size=5_000`` (at least every
run's length, so nothing is overwritten, and small, so that the figures measure
the learning step and not the buffer: ``benchmarks.buffer`` checks separately
that the trainers' step cost does not grow with capacity), ``eval_every=0`` (one
final evaluation of 10 episodes), and ``hidden_sizes`` 64x64 or 256x256.

Runs are short to keep the script near 10 minutes on a 2-core CPU: 64 seeds
of 256x256 networks cost about 64 times one seed there. Figures per case:

* ``env steps/s``: ``num_seeds * total_steps / run_time`` (all seeds, warm-up
  steps included);
* ``per-seed step cost``: ``run_time / (num_seeds * (total_steps - warmup))``,
  the time of one learning step of one seed (warm-up and the final
  evaluation are charged to it, which overstates it slightly);
* ``projected 20k``: compile time + 20,000 steps at that per-seed cost, for a
  default-length run of that many seeds.

On a GPU the same script runs unchanged (it reports ``jax.devices()``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax

from benchmarks import _common as C
from ddpg_jax import DDPGConfig, run_seeds
from ddpg_jax.envs import make

PLOT = C.RESULTS_DIR / "steps_per_second_vs_seeds.png"


def run_case(hidden: tuple[int, ...], num_seeds: int, total_steps: int, warmup: int,
             buffer_size: int, batch_size: int) -> dict[str, Any]:
    env, params = make("Pendulum-v1")
    cfg = DDPGConfig(total_steps=total_steps, warmup_steps=warmup, hidden_sizes=hidden,
                     buffer_size=buffer_size, eval_every=0, batch_size=batch_size)
    load0 = C.loadavg()
    t0 = time.perf_counter()
    timed = run_seeds(cfg, env, params, num_seeds=num_seeds)
    wall = time.perf_counter() - t0
    learn = total_steps - warmup
    per_seed_step = timed.run_time_s / (num_seeds * learn)
    ret = timed.output.metrics["eval_return_mean"][:, -1]
    out = {
        "hidden": list(hidden), "num_seeds": num_seeds, "total_steps": total_steps,
        "warmup_steps": warmup, "compile_time_s": timed.compile_time_s,
        "run_time_s": timed.run_time_s, "wall_time_s": wall,
        "env_steps_per_s": num_seeds * total_steps / timed.run_time_s,
        "learning_steps_per_s": num_seeds * learn / timed.run_time_s,
        "per_seed_step_ms": per_seed_step * 1e3,
        "projected_20k_steps_s": timed.compile_time_s + per_seed_step * num_seeds * 20_000,
        "final_eval_return_mean_over_seeds": float(ret.mean()),
        "load_before": load0, "load_after": C.loadavg(),
    }
    print(f"  hidden {hidden} seeds {num_seeds:3d} steps {total_steps}: compile "
          f"{out['compile_time_s']:.1f} s, run {out['run_time_s']:.1f} s, "
          f"{out['env_steps_per_s']:.0f} env steps/s, {out['per_seed_step_ms']:.3f} ms per "
          f"seed-step, projected 20k-step run {out['projected_20k_steps_s']:.0f} s "
          f"(load {out['load_after'][0]})")
    return out


def plot(cases: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for hidden in sorted({tuple(c["hidden"]) for c in cases}):
        cs = sorted((c for c in cases if tuple(c["hidden"]) == hidden),
                    key=lambda c: c["num_seeds"])
        seeds = [c["num_seeds"] for c in cs]
        rates = [c["learning_steps_per_s"] for c in cs]
        line, = ax.plot(seeds, rates, "o-", label="x".join(map(str, hidden)))
        # Where perfect scaling would put the larger batches of seeds.
        ax.plot(seeds, [rates[0] * s / seeds[0] for s in seeds], ":", color=line.get_color(),
                alpha=0.6, label=f"{'x'.join(map(str, hidden))}, linear in seeds")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("seeds in one program (vmap)")
    ax.set_ylabel("learning env steps / s (all seeds)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="1,8,64")
    p.add_argument("--steps-64x64", default="3000,3000,3000",
                   help="total steps per seed for each seed count, 64x64 networks")
    p.add_argument("--steps-256x256", default="3000,3000,1200",
                   help="total steps per seed for each seed count, 256x256 networks")
    p.add_argument("--plot", type=Path, default=None, help=f"plot file (default {PLOT})")
    args = p.parse_args()
    rec = C.Recorder("whole_loop", args)
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = {(64, 64): [int(s) for s in args.steps_64x64.split(",")],
             (256, 256): [int(s) for s in args.steps_256x256.split(",")]}
    warmup, buffer_size, batch = 256, 5_000, 256
    if args.quick:
        seeds, steps, warmup, batch = [1, 4], {(16, 16): [400, 400]}, 64, 64
    for h, s in steps.items():
        if len(s) != len(seeds):
            p.error(f"{len(s)} step counts for {len(seeds)} seed counts ({h})")
    rec.config({"env": "Pendulum-v1 (ddpg_jax.envs)", "seeds": seeds,
                "total_steps": {"x".join(map(str, h)): dict(zip(seeds, s))
                                for h, s in steps.items()},
                "warmup_steps": warmup, "buffer_size": buffer_size, "eval_every": 0,
                "eval_episodes": 10, "batch_size": batch,
                "other": "DDPGConfig defaults", "entry": "ddpg_jax.run_seeds"})
    cases = []
    for hidden, step_list in steps.items():
        for n, total in zip(seeds, step_list):
            cases.append(run_case(hidden, n, total, warmup, buffer_size, batch))
    for c in cases:
        base = next(b for b in cases if b["hidden"] == c["hidden"] and b["num_seeds"] == seeds[0])
        c["per_seed_cost_vs_fewest_seeds"] = c["per_seed_step_ms"] / base["per_seed_step_ms"]
        c["throughput_vs_fewest_seeds"] = c["learning_steps_per_s"] / base["learning_steps_per_s"]
    rows = [{"hidden": "x".join(map(str, c["hidden"])), "seeds": c["num_seeds"],
             "steps/seed": c["total_steps"], "compile s": c["compile_time_s"],
             "run s": c["run_time_s"], "env steps/s": c["env_steps_per_s"],
             "ms/seed-step": c["per_seed_step_ms"],
             "per-seed cost vs 1": c["per_seed_cost_vs_fewest_seeds"],
             "projected 20k s": c["projected_20k_steps_s"],
             "final return": c["final_eval_return_mean_over_seeds"]} for c in cases]
    print()
    C.print_table(rows, list(rows[0]))
    dev = rec.record["machine"]
    title = (f"ddpg_jax whole-loop jit, Pendulum, batch {batch} - {dev['device_kind']} "
             f"({dev['cpu_model']}, {dev['cpu_count']} cores)" if dev["jax_backend"] == "cpu"
             else f"ddpg_jax whole-loop jit, Pendulum, batch {batch} - {dev['device_kind']}")
    path = plot(cases, (args.plot or (PLOT if not args.quick else
                                      C.RESULTS_DIR / "steps_per_second_vs_seeds.quick.png")),
                title)
    notes = ["per-seed step cost charges warm-up and the final evaluation to the learning "
             "steps; runs are short (see config), projected figures extrapolate linearly"]
    if jax.default_backend() == "cpu":
        notes.append("measured on CPU; the GPU table is pending (no GPU was available)")
    rec.finish({"cases": cases, "table": rows, "plot": str(path) if path else None}, [], notes)


if __name__ == "__main__":
    main()

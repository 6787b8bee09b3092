"""Parallel-env training on JAX physics (MuJoCo Playground): throughput, seeds, compile, time to a return.

    python -m benchmarks.accelerator            # sizes for the backend jax finds (CPU: small)
    python -m benchmarks.accelerator --full     # the accelerator sizes on any backend
    python -m benchmarks.accelerator --quick    # smoke test: tiny sizes, figures meaningless

Needs the playground extra (``pip install -e ".[playground]"``). Four parts, each
measured in this one process:

1. **env**: environment steps/s of the task alone (uniform random actions, a
   ``lax.scan`` over the vmapped ``step``), at each ``num_envs``;
2. **train**: one compiled learning chunk of the whole-loop driver (acting,
   env steps, buffer adds, n-step sampling, ``updates_per_env_step * num_envs``
   gradient steps) at each ``(num_envs, batch_size)``: environment steps/s
   and gradient updates/s, the compile time of the chunk, and the ratio of
   training env steps/s to the env alone at the same ``num_envs``;
3. **seeds**: the same chunk with 1 and with S seeds vmapped in one program:
   the per-seed throughput ratio (S x the one-seed time is the cost of
   running them one after another);
4. **threshold**: wall time until the mean deterministic return over S seeds
   first reaches a threshold on two tasks, through ``ddpg_jax.train`` (the
   chunked whole-loop driver), compile time reported beside it.

Configurations are the ``accelerator`` preset with the sizes of each case
(printed, and stored in ``benchmarks/results/accelerator[.cpu|.quick].json``).
On a CPU the default sizes are small, so that every part is exercised in about
ten minutes on two cores; the preset's own sizes need an accelerator.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from benchmarks import _common as C

# The CPU learning configuration of benchmarks.learning's playground suite (TD3 with 16
# envs, 4 updates per vector step, 3-step returns and per-env noise scales in [0.1, 0.4]).
# On the td3 preset before 2026-12-05 (td3-2018 per step), as the recorded figures.
CPU_LEARNING = dict(updates_per_env_step=4 / 16, n_step=3, noise_scale=0.1,
                    noise_scale_max=0.4,
                    weight_init="lecun_normal", update_schedule="step")
# The accelerator preset before it became FastTD3's settings (2026-12-05), which the
# recorded figures used.
OLD_ACCELERATOR = "accelerator (before 2026-12-05)"

# name -> sizes. "cpu" is the default on a CPU backend, "full" on an accelerator.
SIZES: dict[str, dict[str, Any]] = {
    "quick": dict(task="CartpoleBalance", num_envs=[1, 16], batch=[64], hidden=(32, 32),
                  chunk=8, env_steps=16, seeds=4, seed_envs=16, seed_batch=64,
                  threshold_tasks=[("CartpoleBalance", 100.0, 2_048)],
                  threshold_preset="td3-2018", threshold_overrides=CPU_LEARNING,
                  threshold_envs=16, threshold_batch=64, threshold_seeds=2,
                  threshold_episode_length=200),
    "cpu": dict(task="CartpoleBalance", num_envs=[1, 16, 256], batch=[256, 1024],
                hidden=(256, 256), chunk=32, env_steps=64, seeds=8, seed_envs=16,
                seed_batch=256,
                threshold_tasks=[("CartpoleBalance", 500.0, 48_000),
                                 ("PendulumSwingup", 100.0, 48_000)],
                threshold_preset="td3-2018", threshold_overrides=CPU_LEARNING,
                threshold_envs=16, threshold_batch=256, threshold_seeds=4,
                threshold_episode_length=None),
    "full": dict(task="CheetahRun", num_envs=[64, 1024, 4096], batch=[4096, 32768],
                 hidden=(1024, 512, 256), chunk=50, env_steps=200, seeds=64, seed_envs=1024,
                 seed_batch=4096,
                 threshold_tasks=[("CartpoleBalance", 900.0, 4_096_000),
                                  ("CheetahRun", 400.0, 20_480_000)],
                 threshold_preset=OLD_ACCELERATOR, threshold_overrides={},
                 threshold_envs=1024, threshold_batch=32768, threshold_seeds=4,
                 threshold_episode_length=None),
}


def load_task(name: str, episode_length: int | None = None):
    from ddpg_jax.envs import from_playground

    return from_playground(name, episode_length=episode_length)


def case_config(num_envs: int, batch: int, hidden: tuple[int, ...], chunk: int, **extra: Any):
    """The accelerator preset (as before 2026-12-05) at one case's sizes: a warm-up of one
    batch, a buffer that holds the warm-up and the chunk (a multiple of num_envs, as n-step
    returns need)."""

    warmup = max(batch, num_envs)
    warm_vec = -(-warmup // num_envs)
    rows = num_envs * (warm_vec + chunk + 1)
    total = num_envs * (warm_vec + chunk + 1)
    fields = dict(num_envs=num_envs, updates_per_env_step=2 / num_envs, batch_size=batch,
                  hidden_sizes=hidden, warmup_steps=warmup,
                  buffer_size=rows, total_steps=total, eval_every=0, eval_episodes=1)
    fields.update(extra)
    return base_config(OLD_ACCELERATOR, **fields)


def base_config(name: str, **fields: Any):
    """A preset with ``fields``, or the accelerator preset before 2026-12-05 (OLD_ACCELERATOR)."""
    from ddpg_jax import preset
    from ddpg_jax.config import ACCELERATOR_BEFORE_FASTTD3

    if name == OLD_ACCELERATOR:
        return ACCELERATOR_BEFORE_FASTTD3.replace(**fields)
    return preset(name, **fields)


def time_env(env, params, num_envs: int, steps: int) -> dict[str, float]:
    """Env steps/s of the task alone: random actions, one scan of ``steps`` vector steps."""
    rollout = C.random_rollout(env, params, num_envs, steps)

    t0 = time.perf_counter()
    fn = jax.jit(rollout).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(fn(jax.random.PRNGKey(1)))
    runs = []
    for i in range(2):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(jax.random.PRNGKey(2 + i)))
        runs.append(time.perf_counter() - t0)
    # The reset of each rollout is charged to its steps (one reset per `steps` steps).
    run = min(runs)
    return {"num_envs": num_envs, "vector_steps": steps, "compile_s": compile_s,
            "env_steps_per_s": num_envs * steps / run, "ms_per_vector_step": 1e3 * run / steps}


def time_chunk(config, env, params, num_seeds: int, chunk: int) -> dict[str, float]:
    """One learning chunk of ``chunk`` vector steps for ``num_seeds`` vmapped seeds."""
    from ddpg_jax.drivers.compiled import make_loop

    loop_fns = make_loop(config, env, params)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), num_seeds)
    setup = jax.jit(jax.vmap(lambda k: loop_fns.warmup(loop_fns.init(k))))
    learn = jax.jit(jax.vmap(lambda loop: loop_fns.learn(loop, chunk)))
    loop = jax.block_until_ready(setup(keys))
    t0 = time.perf_counter()
    compiled = learn.lower(loop).compile()
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        loop, sums = jax.block_until_ready(compiled(loop))
        runs.append(time.perf_counter() - t0)
    run = min(runs)
    updates = float(np.asarray(sums["updates"])[0])
    assert updates == chunk * config.updates_per_vector, (updates, chunk)
    return {"num_envs": config.num_envs, "batch_size": config.batch_size,
            "num_seeds": num_seeds, "chunk_vector_steps": chunk,
            "updates_per_vector_step": config.updates_per_vector, "compile_s": compile_s,
            "run_s": run,
            "env_steps_per_s": num_seeds * config.num_envs * chunk / run,
            "updates_per_s": num_seeds * updates / run,
            "ms_per_vector_step": 1e3 * run / chunk}


def time_to_threshold(task: str, threshold: float, steps: int, sizes: dict[str, Any],
                      ) -> dict[str, Any]:
    """Wall time until the mean return over seeds first reaches ``threshold``."""
    import ddpg_jax

    env, params = load_task(task, sizes["threshold_episode_length"])
    n = sizes["threshold_envs"]
    config = base_config(
        sizes["threshold_preset"], **sizes["threshold_overrides"], num_envs=n, batch_size=sizes["threshold_batch"],
        hidden_sizes=sizes["hidden"], warmup_steps=max(sizes["threshold_batch"], n),
        buffer_size=min(n * -(-steps // n), 1024 * 1024), total_steps=steps,
        eval_every=max(steps // 8 // n * n, n), eval_episodes=4)
    evaluations: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    result = ddpg_jax.train(config, (env, params), num_seeds=sizes["threshold_seeds"], log=None,
                            on_evaluation=lambda r: evaluations.append(
                                {**r, "since_start_s": time.perf_counter() - t0}))
    hit = next((r for r in evaluations if r["eval_return_mean"] >= threshold), None)
    return {
        "task": task, "threshold": threshold, "num_seeds": sizes["threshold_seeds"],
        "num_envs": n, "batch_size": config.batch_size, "total_steps": steps,
        "compile_s": result.summary.get("compile_time_s"),
        "reached": hit is not None,
        "env_steps_to_threshold": hit["env_steps"] if hit else None,
        "wall_s_to_threshold": hit["since_start_s"] if hit else None,
        "wall_s_total": time.perf_counter() - t0,
        "final_return_mean": evaluations[-1]["eval_return_mean"],
        "final_return_per_seed": evaluations[-1].get("eval_return_mean_per_seed"),
        "curve": [(r["env_steps"], round(r["eval_return_mean"], 1)) for r in evaluations],
        "config": config.to_dict(),
    }


def main() -> None:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="the accelerator sizes on any backend")
    p.add_argument("--skip-threshold", action="store_true", help="parts 1-3 only")
    args = p.parse_args()
    mode = "quick" if args.quick else "full" if (args.full or jax.default_backend() != "cpu") \
        else "cpu"
    sizes = SIZES[mode]
    # accelerator.json (full sizes), accelerator.cpu.json, accelerator.quick.json
    rec = C.Recorder("accelerator.cpu" if mode == "cpu" else "accelerator", args)
    rec.config({"mode": mode, **{k: v for k, v in sizes.items()},
                "preset": "accelerator as before 2026-12-05 "
                          "(ddpg_jax.config.ACCELERATOR_BEFORE_FASTTD3), sizes overridden "
                          "per case"})

    env, params = load_task(sizes["task"])
    env_rows = [time_env(env, params, n, sizes["env_steps"]) for n in sizes["num_envs"]]
    print("\n1. env alone:", sizes["task"])
    C.print_table(env_rows, list(env_rows[0]))

    train_rows = []
    for n in sizes["num_envs"]:
        for b in sizes["batch"]:
            config = case_config(n, b, sizes["hidden"], sizes["chunk"])
            row = time_chunk(config, env, params, 1, sizes["chunk"])
            alone = next(r for r in env_rows if r["num_envs"] == n)
            row["train_vs_env_alone"] = row["env_steps_per_s"] / alone["env_steps_per_s"]
            train_rows.append(row)
            print(f"   train n={n} b={b}: {row['env_steps_per_s']:.4g} env steps/s, "
                  f"{row['updates_per_s']:.4g} updates/s, compile {row['compile_s']:.1f} s",
                  flush=True)
    print("\n2. training chunk (1 seed):")
    C.print_table(train_rows, list(train_rows[0]))

    config = case_config(sizes["seed_envs"], sizes["seed_batch"], sizes["hidden"], sizes["chunk"])
    seed_rows = [time_chunk(config, env, params, s, sizes["chunk"]) for s in (1, sizes["seeds"])]
    ratio = seed_rows[1]["env_steps_per_s"] / seed_rows[0]["env_steps_per_s"]
    print(f"\n3. vmapped seeds (num_envs {sizes['seed_envs']}, batch {sizes['seed_batch']}):")
    C.print_table(seed_rows, list(seed_rows[0]))
    print(f"   {sizes['seeds']} seeds in one program: {ratio:.3g}x the env steps/s of one seed "
          f"({sizes['seeds']}x would be free parallelism)")

    threshold_rows = []
    if not args.skip_threshold:
        for task, threshold, steps in sizes["threshold_tasks"]:
            row = time_to_threshold(task, threshold, steps, sizes)
            threshold_rows.append(row)
            print(f"\n4. {task}: threshold {threshold}: "
                  + (f"reached at {row['env_steps_to_threshold']} env steps after "
                     f"{row['wall_s_to_threshold']:.0f} s" if row["reached"] else
                     f"not reached in {steps} env steps ({row['wall_s_total']:.0f} s)")
                  + f"; final mean return {row['final_return_mean']:.1f}; compile "
                    f"{row['compile_s']} s; curve {row['curve']}", flush=True)

    notes = []
    if jax.default_backend() == "cpu":
        notes.append("measured on CPU at small sizes; the accelerator sizes (--full) need a GPU "
                     "or TPU")
    rec.finish({"env": env_rows, "train": train_rows, "seeds": seed_rows,
                "seeds_throughput_ratio": ratio, "threshold": threshold_rows}, notes=notes)


if __name__ == "__main__":
    main()

"""The whole-loop TD3 of this library against rejax's TD3, side by side on Pendulum.

    python -m benchmarks.rejax_side_by_side --rejax-python /work/venv-rejax/bin/python \
        [--seeds 1,8] [--steps 20000,20000] [--rounds 2] [--wait-quiet 600]

rejax 0.1.3 with gymnax 0.0.9 lives in its own environment (it pins other
versions of flax and friends), made with::

    python3 -m venv /work/venv-rejax
    /work/venv-rejax/bin/pip install rejax==0.1.3 gymnax==0.0.9

Each measurement is a fresh subprocess: this library with the current
interpreter, rejax with ``--rejax-python``. A subprocess builds the program,
compiles it ahead of time (``jit(...).lower(...).compile()``, the compile
time), then times one blocking call of the compiled program (the run time);
``env steps/s = seeds * steps / run time``. Both sides train ``seeds`` runs in
one program with ``vmap`` over keys (1 seed is a ``vmap`` over one key too)
and evaluate once, at the end, inside that call: the mean return of 128
deterministic episodes (rejax's own evaluation count), averaged over seeds.
Rounds are interleaved (ours, rejax, rejax, ours, ...: the order rotates
each round) and the figures are medians over rounds, with the ratio per round.

Matched settings: Pendulum-v1 (200-step episodes), TD3 (two critics, actor
and targets every 2nd critic update, target smoothing), 256x256 ReLU
networks for actor and critics, batch 256, Adam 1e-3 for both, gamma 0.99,
1000 uniform random steps before learning, one env, one gradient step per
env step, replay capacity = steps (nothing overwritten), no gradient clipping,
no observation or reward normalisation.

Unit conversions (rejax's noises are absolute; ours are in action
half-ranges, 2 on Pendulum): exploration std 0.1 half-ranges = rejax
``exploration_noise=0.2``; target noise 0.2 half-ranges, clipped at 0.5 =
rejax ``target_noise=0.4``, ``target_noise_clip=1.0``; tau 0.005 = rejax
``polyak=0.995``; rejax's ``fill_buffer=999`` gives 1000 random steps (it
learns once ``global_step > fill_buffer``).

Differences that remain (each side as its library builds it):

* env: this library's built-in JAX Pendulum against gymnax's Pendulum-v1
  (same dynamics and reward, different code and random initial states);
* actor-update batch: rejax updates the actor on the minibatch of the
  second critic update of its pair; this library's actor step reuses the
  batch of the critic step it follows: the same choice in other code;
* critic loss: rejax sums two ``optax.l2_loss`` (half squared error) means;
  this library averages squared errors. Adam makes the step nearly scale-free;
* initialisation: rejax uses flax's default (LeCun normal, zero bias); this
  library its own default (see ``weight_init`` in ``DDPGConfig``);
* this library's step also keeps per-chunk metric sums and a non-finite
  guard (measured below the noise of a 256x256 step: see docs/benchmarks.md);
* warm-up: this library runs its 1000 random steps as a separate scan
  without updates; rejax branches on ``global_step > fill_buffer`` inside
  every step (its step counter starts as a constant, so it stays unbatched
  under ``vmap`` and the branch is a real ``cond``);
* TD3's delay: rejax runs the actor once per pair of env steps by the shape
  of its loop; this library branches on "does any vmapped run act now" (an
  unbatched bool) and skips the actor's half on the other steps.

Step counts: the matched setting is 20,000 steps per seed (the default of
``--steps``). On the 2-core CPU this project runs on, 8 seeds x 20,000 steps
take about 9 minutes per side and round (about 40 minutes for two rounds of
both seed counts), so the recorded 8-seed run uses ``--steps 4000,2000``
(3000 and 1000 learning steps per seed: its returns are those of short runs,
and the warm-up weighs more in the 8-seed figure); 1 seed also ran at the
matched 20,000 steps (``--seeds 1 --steps 20000``, its own results file).

Figures per seed count: compile time, run time, env steps/s, final return
(mean over seeds of the 128-episode evaluation), for both sides, and the
ratio ours/rejax of env steps/s per round. The machine (lscpu model), the
versions of both environments and the load averages go into
``benchmarks/results/rejax_side_by_side.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WARMUP = 1000
HIDDEN = (256, 256)
BATCH = 256
LR = 1e-3
EVAL_EPISODES = 128
TAU = 0.005
NOISE = 0.1  # half-ranges
TARGET_NOISE, TARGET_CLIP = 0.2, 0.5  # half-ranges
HALF_RANGE = 2.0  # Pendulum's action bound


def _time_compiled(fn, args):
    """Compile time and blocking run time of ``fn(*args)`` (AOT compile, then one call)."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = compiled(*args)
    jax.block_until_ready(out)
    t2 = time.perf_counter()
    return out, t1 - t0, t2 - t1


def worker_ours(seeds: int, steps: int) -> dict:
    import jax
    import numpy as np

    import ddpg_jax
    from ddpg_jax import envs
    from ddpg_jax.drivers.multi import seed_keys

    env, params = envs.make("Pendulum-v1")
    cfg = ddpg_jax.preset("td3-2018", update_schedule="step", total_steps=steps, warmup_steps=WARMUP, hidden_sizes=HIDDEN,
                          batch_size=BATCH, actor_lr=LR, critic_lr=LR, tau=TAU,
                          noise_scale=NOISE, target_noise=TARGET_NOISE,
                          target_noise_clip=TARGET_CLIP, buffer_size=steps, eval_every=0,
                          eval_episodes=EVAL_EPISODES, activation="relu", gamma=0.99)
    train = ddpg_jax.make_train(cfg, env, params)
    keys = seed_keys(cfg.seed, seeds)
    out, compile_s, run_s = _time_compiled(jax.vmap(lambda k: train(k)), (keys,))
    ret = np.asarray(out.metrics["eval_return_mean"])[:, -1]
    return {"compile_s": compile_s, "run_s": run_s, "final_return": float(ret.mean()),
            "final_return_per_seed": ret.tolist(),
            "versions": {"jax": jax.__version__, "ddpg_jax": ddpg_jax.__version__}}


def worker_rejax(seeds: int, steps: int) -> dict:
    import importlib.metadata as md

    import jax
    import numpy as np
    from flax import linen as nn
    from rejax import TD3
    from rejax.networks import DeterministicPolicy, QNetwork

    algo = TD3.create(
        env="Pendulum-v1", total_timesteps=steps, eval_freq=steps, skip_initial_evaluation=True,
        num_envs=1, learning_rate=LR, batch_size=BATCH, buffer_size=steps,
        fill_buffer=WARMUP - 1, gamma=0.99, polyak=1.0 - TAU, policy_delay=2, num_critics=2,
        exploration_noise=NOISE * HALF_RANGE, target_noise=TARGET_NOISE * HALF_RANGE,
        target_noise_clip=TARGET_CLIP * HALF_RANGE)
    # rejax 0.1.3's TD3.create_agent fixes 64x64 and refuses hidden_layer_sizes in its
    # kwargs, so the networks are swapped in after creation (the same classes).
    space = algo.env.action_space(algo.env_params)
    algo = algo.replace(
        actor=DeterministicPolicy(int(np.prod(space.shape)), (space.low, space.high),
                                  hidden_layer_sizes=HIDDEN, activation=nn.relu),
        critic=QNetwork(hidden_layer_sizes=HIDDEN, activation=nn.relu))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    out, compile_s, run_s = _time_compiled(jax.vmap(algo.train), (keys,))
    _, (_, returns) = out  # evaluation: (lengths, returns) [seeds, 1, 128]
    ret = np.asarray(returns).reshape(seeds, -1).mean(axis=1)
    versions = {n: md.version(n) for n in ("rejax", "gymnax", "jax", "flax", "optax")}
    return {"compile_s": compile_s, "run_s": run_s, "final_return": float(ret.mean()),
            "final_return_per_seed": ret.tolist(), "versions": versions}


def run_worker(python: str, side: str, seeds: int, steps: int) -> dict:
    """One measurement in a fresh process; its last stdout line is the JSON record."""
    env = dict(os.environ)
    if side == "rejax":  # keep this library's path out of rejax's interpreter
        env.pop("PYTHONPATH", None)
    cmd = [python, str(Path(__file__).resolve()), "--worker", side, "--worker-seeds",
           str(seeds), "--worker-steps", str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1] if side == "ours" else "/")
    if done.returncode != 0:
        raise RuntimeError(f"{side} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rec = json.loads(done.stdout.strip().splitlines()[-1])
    rec["env_steps_per_s"] = seeds * steps / rec["run_s"]
    return rec


def summarise(seeds: int, steps: int, recs: dict[str, list[dict]]) -> dict:
    from benchmarks import _common as C

    sps = {side: [r["env_steps_per_s"] for r in recs[side]] for side in recs}
    out = {"seeds": seeds, "steps_per_seed": steps, "rounds": recs}
    for side in recs:
        out[side] = {k: C.median([r[k] for r in recs[side]])
                     for k in ("compile_s", "run_s", "env_steps_per_s", "final_return")}
    out["ratio_ours_over_rejax"] = C.per_round_ratio(sps["ours"], sps["rejax"])
    return out


def main() -> None:
    from benchmarks import _common as C

    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--rejax-python", required=True, help="interpreter of the rejax environment")
    p.add_argument("--seeds", default="1,8", help="seed counts, comma-separated")
    p.add_argument("--steps", default="20000,20000",
                   help="env steps per seed for each seed count (matched setting: 20000)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds per seed count")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.steps, args.rounds = "1,2", "1300,1300", 1
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    if len(steps) != len(seeds) or min(steps) <= WARMUP:
        raise SystemExit(f"--steps needs one value > {WARMUP} per seed count ({seeds}), "
                         f"got {steps}")
    rec = C.Recorder("rejax_side_by_side", args)
    rec.config({"warmup": WARMUP, "hidden": HIDDEN, "batch": BATCH, "lr": LR, "tau": TAU,
                "noise_half_ranges": NOISE, "target_noise_half_ranges": TARGET_NOISE,
                "target_clip_half_ranges": TARGET_CLIP, "eval_episodes": EVAL_EPISODES,
                "seeds": seeds, "steps": steps, "rounds": args.rounds,
                "rejax_python": args.rejax_python})
    pythons = {"ours": sys.executable, "rejax": args.rejax_python}
    cases = []
    for n, s in zip(seeds, steps):
        recs: dict[str, list[dict]] = {"ours": [], "rejax": []}
        for r in range(args.rounds):
            order = ["ours", "rejax"] if r % 2 == 0 else ["rejax", "ours"]
            for side in order:
                C.wait_for_quiet(max_wait_s=args.wait_quiet, step_s=20) if args.wait_quiet else None
                load = C.loadavg()
                m = run_worker(pythons[side], side, n, s)
                m["load_before"], m["load_after"] = load, C.loadavg()
                recs[side].append(m)
                print(f"  seeds {n} steps {s} round {r + 1} {side:5s}: compile "
                      f"{m['compile_s']:.1f} s, run {m['run_s']:.1f} s, "
                      f"{m['env_steps_per_s']:.1f} env steps/s, final return "
                      f"{m['final_return']:.1f} (load {load[0]} -> {m['load_after'][0]})",
                      flush=True)
        cases.append(summarise(n, s, recs))
    C.print_table([{"seeds": c["seeds"], "steps": c["steps_per_seed"],
                    "ours steps/s": round(c["ours"]["env_steps_per_s"], 1),
                    "rejax steps/s": round(c["rejax"]["env_steps_per_s"], 1),
                    "ratio": round(c["ratio_ours_over_rejax"]["median"], 3),
                    "ours return": round(c["ours"]["final_return"], 1),
                    "rejax return": round(c["rejax"]["final_return"], 1),
                    "ours compile s": round(c["ours"]["compile_s"], 1),
                    "rejax compile s": round(c["rejax"]["compile_s"], 1)} for c in cases],
                   ["seeds", "steps", "ours steps/s", "rejax steps/s", "ratio", "ours return",
                    "rejax return", "ours compile s", "rejax compile s"])
    rec.record["rejax_versions"] = cases[0]["rounds"]["rejax"][0]["versions"]
    goals = [C.goal(f"ours >= 1.2x rejax env steps/s at {c['seeds']} seed(s)",
                    c["ratio_ours_over_rejax"]["median"], 1.2) for c in cases]
    rec.finish({"cases": cases}, goals)


if __name__ == "__main__":
    a = argparse.ArgumentParser(add_help=False)
    a.add_argument("--worker", choices=("ours", "rejax"))
    a.add_argument("--worker-seeds", type=int)
    a.add_argument("--worker-steps", type=int)
    known, _ = a.parse_known_args()
    if known.worker is not None:
        fn = worker_ours if known.worker == "ours" else worker_rejax
        print(json.dumps(fn(known.worker_seeds, known.worker_steps)))
    else:
        if str(Path(__file__).resolve().parents[1]) not in sys.path:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        main()

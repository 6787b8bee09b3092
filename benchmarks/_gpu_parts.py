"""The parts of ``benchmarks.gpu``, their sizes (full and smoke) and the time budget each keeps.

Each part is a function ``part(sizes, budget, record)`` run in its own process by
``benchmarks.gpu``. It appends one dict per measured case to ``record.cases`` (the record is
written to disk after every case, so a part killed at its time limit still reports what it
finished), and lists in ``record.skipped`` the cases it left out because its budget would
not have held them. Figures are computed here; ``benchmarks.gpu`` only collects, tables and
judges them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# rejax's published TD3 settings (github.com/keraJLi/rejax, configs/gymnax/pendulum.yaml and
# configs/brax/hopper.yaml, "td3" entries), in this library's fields. rejax's noises are in
# action units: Pendulum's half-range is 2, so 0.3 / 0.2 / 0.5 there are 0.15 / 0.1 / 0.25
# half-ranges here; hopper's actions lie in [-1, 1], so its values carry over. rejax's
# polyak 0.95 is tau 0.05; "swish" is silu; its networks are 64x64 (rejax.algos.td3) with
# flax's default initialisation (lecun_normal). rejax's num_epochs gradient steps per vector
# step are updates_per_vector_step here. Not carried over: rejax runs `policy_delay` vector
# steps of critic updates and then as many actor updates as one vector step has; here the
# actor and targets move on every policy_delay-th critic update.
REJAX_PENDULUM = dict(
    hidden_sizes=(64, 64), activation="silu", weight_init="lecun_normal", num_envs=1,
    buffer_size=10_000, warmup_steps=1_000, batch_size=100, actor_lr=1e-3, critic_lr=1e-3,
    total_steps=10_000, gamma=0.99, tau=0.05, max_grad_norm=100.0, noise_scale=0.15,
    target_noise=0.1, target_noise_clip=0.25, policy_delay=2, obs_norm=True)
REJAX_HOPPER = dict(
    hidden_sizes=(64, 64), activation="tanh", weight_init="lecun_normal", num_envs=128,
    buffer_size=1_048_576, warmup_steps=8192, batch_size=256, actor_lr=1.8789279685460533e-4,
    critic_lr=1.8789279685460533e-4, updates_per_vector_step=128, gamma=0.995, tau=0.05,
    max_grad_norm=2.0, noise_scale=0.5, target_noise=0.8, target_noise_clip=0.5,
    policy_delay=3, obs_norm=True)

TINY_NET = dict(hidden_sizes=(16, 16))

# Sizes of every part. "full" is the GPU run (budgets in seconds sum to 465 of the 8 minutes);
# "smoke" runs every code path at tiny sizes on a CPU. Where the smoke run cannot use the full
# run's env (brax hopper, Playground training), it says so in `env_note`.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "precision": dict(budget_s=25, updates=20, batch=256, preset="td3-2018",
                          overrides=dict(update_schedule="step")),
        "export": dict(budget_s=40, train=dict(total_steps=3_000, warmup_steps=1_000,
                                               eval_every=0, eval_episodes=2, obs_norm=True),
                       batches=(1, 7, 1024)),
        # Seed counts in the order that measures the goals first (1024 against 64 seeds;
        # hopper at 256); the tables sort them.
        "pendulum_seeds": dict(budget_s=90, seeds=(64, 1024, 1, 256), overrides={},
                               eval_episodes=10),
        "hopper_seeds": dict(budget_s=110, seeds=(256, 64, 1, 1024), env="hopper",
                             overrides=dict(total_steps=16_384, buffer_size=16_384),
                             eval_episodes=4, episode_length=1000),
        "playground_env": dict(budget_s=60, tasks=("CartpoleBalance", "CheetahRun"),
                               num_envs=(1024, 4096), vector_steps=50, all_impls=True),
        "playground_train": dict(
            budget_s=140, preset_overrides=dict(eval_every=131_072, eval_episodes=4),
            tasks=(("CheetahRun", 400.0, 20_480_000), ("CartpoleBalance", 900.0, 4_096_000))),
    },
    "smoke": {
        "precision": dict(budget_s=15, updates=20, batch=32, preset="td3-2018",
                          overrides=dict(TINY_NET, update_schedule="step")),
        "export": dict(budget_s=25, train=dict(total_steps=300, warmup_steps=100, batch_size=32,
                                               buffer_size=300, eval_every=0, eval_episodes=2,
                                               obs_norm=True, **TINY_NET),
                       batches=(1, 7, 64)),
        "pendulum_seeds": dict(budget_s=20, seeds=(2,), eval_episodes=2, overrides=dict(
            total_steps=300, warmup_steps=100, batch_size=32, buffer_size=300, **TINY_NET)),
        "hopper_seeds": dict(budget_s=25, seeds=(2,), env="fast", eval_episodes=1,
                             episode_length=50, overrides=dict(
                                 num_envs=4, total_steps=128, warmup_steps=64, batch_size=32,
                                 buffer_size=128, updates_per_vector_step=2, **TINY_NET),
                             env_note="smoke: brax's trivial 'fast' env instead of hopper, "
                                      "whose whole-loop compile takes over 2 minutes on a "
                                      "2-core CPU"),
        "playground_env": dict(budget_s=25, tasks=("PendulumSwingup",), num_envs=(4,),
                               vector_steps=8, all_impls=False,
                               env_note="smoke: PendulumSwingup, the cheapest DM Control task "
                                        "measured here (compile 12 s against 18 s for "
                                        "CartpoleBalance and ~85 s for CheetahRun)"),
        "playground_train": dict(
            budget_s=25, env="Pendulum-v1", tasks=(("Pendulum-v1", -3300.0, 256),),
            preset_overrides=dict(num_envs=4, batch_size=32, warmup_steps=32, buffer_size=256,
                                  updates_per_vector_step=1, eval_every=64, eval_episodes=1,
                                  **TINY_NET),
            env_note="smoke: the accelerator preset trains on the built-in JAX Pendulum-v1: "
                     "the whole-loop compile of the cheapest Playground task takes 110-150 s "
                     "on a 2-core CPU (CartpoleBalance measured 154 s); the threshold is a "
                     "code-path check (-3300 lies below Pendulum's lowest return, -3254 over "
                     "200 steps, so it is reached at the first evaluation)"),
    },
}


class PartRecord:
    """What one part has measured so far, rewritten to ``path`` after every change."""

    def __init__(self, part: str, path: Path | None):
        self.part, self.path = part, path
        self.data: dict[str, Any] = {"part": part, "status": "running", "cases": [],
                                     "skipped": [], "notes": []}

    @property
    def cases(self) -> list[dict[str, Any]]:
        return self.data["cases"]

    def add(self, case: dict[str, Any]) -> None:
        self.cases.append(case)
        self.write()

    def skip(self, what: str, why: str) -> None:
        self.data["skipped"].append({"case": what, "why": why})
        print(f"  [{self.part}] skipped {what}: {why}", flush=True)
        self.write()

    def note(self, text: str) -> None:
        self.data["notes"].append(text)

    def write(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_plain) + "\n")
        os.replace(tmp, self.path)


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


class Budget:
    """The seconds a part may still spend, and whether a case's projected time fits in them."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter):
        self.seconds, self.clock, self.start = float(seconds), clock, clock()

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.start)

    def allows(self, projected_s: float) -> bool:
        return projected_s <= self.remaining()


def nearest(cases: list[dict[str, Any]], key: str, n: int) -> dict[str, Any] | None:
    """The measured case whose ``key`` (seeds, envs) is nearest to ``n`` in ratio."""
    return min(cases, key=lambda c: abs(math.log(n / c[key])), default=None)


def projected_seconds(previous: dict[str, Any] | None, scale: float) -> float:
    """A case's time from the previous (smaller) one: its compile plus its run times ``scale``.

    Linear in the work: an upper bound where a batch ``scale`` times larger costs at most
    ``scale`` times as much, as vmapped seeds and parallel envs do. Without a previous
    case nothing is known and 0 is returned (the first case is always tried).
    """
    if previous is None:
        return 0.0
    return float(previous["compile_s"]) + float(previous["run_s"]) * scale


# --------------------------------------------------------------------------- precision
def precision_part(sizes: dict[str, Any], budget: Budget, record: PartRecord) -> None:
    """Actor and critic after ``updates`` TD3 updates from one state and batches, at the
    default matmul precision and at "highest": relative norm of the difference."""
    import jax
    import jax.numpy as jnp

    import ddpg_jax
    from ddpg_jax.agent.gradient_step import make_gradient_step
    from ddpg_jax.agent.networks import make_networks
    from ddpg_jax.agent.state import Transition

    cfg = ddpg_jax.preset(sizes["preset"], batch_size=sizes["batch"], **sizes["overrides"])
    obs_dim, low, high = 3, np.array([-2.0], np.float32), np.array([2.0], np.float32)
    step = make_gradient_step(make_networks(cfg, obs_dim, low, high), cfg)
    k_init, k_obs, k_act, k_rew, k_next = jax.random.split(jax.random.PRNGKey(0), 5)
    n, b = sizes["updates"], sizes["batch"]
    batches = Transition(
        obs=jax.random.normal(k_obs, (n, b, obs_dim)),
        action=jax.random.uniform(k_act, (n, b, 1), minval=-2.0, maxval=2.0),
        reward=jax.random.normal(k_rew, (n, b)),
        terminated=jnp.zeros((n, b)),
        next_obs=jax.random.normal(k_next, (n, b, obs_dim)))
    state = step.init(k_init)

    def run(state: Any, batches: Transition) -> Any:
        return jax.lax.scan(lambda s, batch: (step.update(s, batch)[0], None), state, batches)[0]

    out = {}
    for name in ("default", "highest"):
        t0 = time.perf_counter()
        # A fresh jit per setting: the precision is read when the function is traced.
        with jax.default_matmul_precision(None if name == "default" else "highest"):
            out[name] = jax.block_until_ready(jax.jit(run)(state, batches))
        out[name + "_s"] = time.perf_counter() - t0
    record.add({
        "config": f"preset {sizes['preset']!r}, hidden {list(cfg.hidden_sizes)}, batch {b}, "
                  f"Pendulum-v1 shapes (obs 3, action 1 in [-2, 2]), random batches",
        "updates": n, "batch_size": b,
        "default_matmul_precision_setting": str(jax.config.jax_default_matmul_precision),
        "actor_rel_diff": rel_norm(out["default"].actor_params, out["highest"].actor_params),
        "critic_rel_diff": rel_norm(out["default"].critic_params, out["highest"].critic_params),
        "actor_max_abs_diff": max_abs(out["default"].actor_params, out["highest"].actor_params),
        "actor_rel_change_by_updates": rel_norm(out["highest"].actor_params, state.actor_params),
        "seconds_default": out["default_s"], "seconds_highest": out["highest_s"]})


def _flat(tree: Any) -> np.ndarray:
    import jax

    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def rel_norm(a: Any, b: Any) -> float:
    """``|a - b| / |b|`` over all leaves of two pytrees of the same structure."""
    fa, fb = _flat(a), _flat(b)
    return float(np.linalg.norm(fa - fb) / np.linalg.norm(fb))


def max_abs(a: Any, b: Any) -> float:
    return float(np.max(np.abs(_flat(a) - _flat(b))))


# --------------------------------------------------------------------------- export
def export_part(sizes: dict[str, Any], budget: Budget, record: PartRecord) -> None:
    """A short Pendulum-v1 run's checkpoint exported (lowered for CPU and CUDA), loaded and
    called on the default device, against the in-process policy of the same checkpoint.

    The run uses the gymnasium driver, whose small per-step programs compile in about half
    the time of the whole-loop driver's on a CPU; the exported function is the same.
    """
    import jax

    import ddpg_jax
    from ddpg_jax.policy.export import export_policy
    from ddpg_jax.policy.exported import load_exported
    from ddpg_jax.policy.load import load_checkpoint_policy

    cfg = ddpg_jax.preset("td3-2018", update_schedule="step", **sizes["train"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ddpg_jax.train(cfg, "Pendulum-v1", run_dir=Path(tmp) / "run", log=None)
        train_s = time.perf_counter() - t0
        policy = load_checkpoint_policy(Path(tmp) / "run")
        t0 = time.perf_counter()
        path, meta = export_policy(policy, Path(tmp) / "policy.jaxexport")
        export_s = time.perf_counter() - t0
        exported = load_exported(path)
        rng = np.random.default_rng(0)
        rows = []
        for b in sizes["batches"]:
            # Far from the normalisation statistics too, so that clipping and bounds act.
            obs = (rng.normal(size=(b, 3)) * [1.0, 1.0, 8.0]).astype(np.float32)
            a_in, a_ex = policy(obs), exported(obs)
            rows.append({"batch": b, "max_abs_diff": float(np.max(np.abs(a_in - a_ex))),
                         "bitwise_equal": bool(np.array_equal(a_in, a_ex))})
        out = exported.jax_fn(jax.numpy.asarray(obs))
        cpu = _cpu_reference(policy, obs)
    record.add({
        "config": f"preset 'td3-2018' (per-step schedule: the td3 preset before 2026-12-05) on gymnasium's Pendulum-v1, {cfg.total_steps} steps, obs_norm",
        "platforms": list(meta["platforms"]), "ran_on": sorted(str(d) for d in out.devices()),
        "backend": jax.default_backend(), "train_s": train_s, "export_s": export_s,
        "batches": rows, "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        "in_process_default_device_vs_cpu_max_abs_diff": float(np.max(np.abs(a_in - cpu))),
        "action_range": [float(np.min(a_in)), float(np.max(a_in))]})


def _cpu_reference(policy: Any, obs: np.ndarray) -> np.ndarray:
    """The in-process policy's actions computed on the host CPU (the GPU's counterpart)."""
    import jax

    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        ts = jax.device_put(policy.train_states[0], cpu)
        return np.asarray(jax.jit(policy.learner.policy)(ts, jax.device_put(obs, cpu)))


# --------------------------------------------------------------------------- vmapped seeds
def _seeds_case(cfg: Any, env: Any, params: Any, n: int) -> dict[str, Any]:
    """One ``run_seeds`` call (one compiled program, ``n`` vmapped seeds)."""
    from ddpg_jax.drivers.multi import run_seeds

    t0 = time.perf_counter()
    timed = run_seeds(cfg, env, params, num_seeds=n)
    ret = np.asarray(timed.output.metrics["eval_return_mean"])[:, -1]
    return {"num_seeds": n, "compile_s": timed.compile_time_s, "run_s": timed.run_time_s,
            "wall_s": time.perf_counter() - t0, "steps_per_seed": cfg.total_steps,
            "env_steps_per_s": n * cfg.total_steps / timed.run_time_s,
            "updates_per_seed": int(np.asarray(timed.output.train_state.step)[0]),
            "final_return_mean": float(np.mean(ret)), "final_return_min": float(np.min(ret)),
            "final_return_max": float(np.max(ret)),
            "final_return_per_seed_first8": [float(r) for r in ret[:8]]}


def seeds_sweep(cfg: Any, env: Any, params: Any, seeds: tuple[int, ...], budget: Budget,
                record: PartRecord) -> None:
    """Each seed count in the given order (the goal's counts first) while the budget holds
    it, its time projected from the measured count nearest to it."""
    record.data["config"] = cfg.to_dict()
    for n in seeds:
        near = nearest(record.cases, "num_seeds", n)
        projected = projected_seconds(near, n / near["num_seeds"] if near else 1)
        if not budget.allows(projected):
            record.skip(f"{n} seeds", f"projected {projected:.0f} s > {budget.remaining():.0f} "
                                      "s left of the part's budget")
            continue
        case = _seeds_case(cfg, env, params, n)
        print(f"  {n} seeds: compile {case['compile_s']:.1f} s, run {case['run_s']:.1f} s, "
              f"{case['env_steps_per_s']:.4g} env steps/s, final return "
              f"{case['final_return_mean']:.1f}", flush=True)
        record.add(case)


def pendulum_part(sizes: dict[str, Any], budget: Budget, record: PartRecord) -> None:
    """TD3 with rejax's Pendulum settings on the built-in JAX Pendulum-v1, vmapped seeds."""
    import ddpg_jax
    from ddpg_jax.envs import make

    cfg = ddpg_jax.preset("td3-2018", **{**REJAX_PENDULUM, "update_schedule": "step",
                                         "eval_every": 0,
                                         "eval_episodes": sizes["eval_episodes"],
                                         **sizes["overrides"]})
    env, params = make("Pendulum-v1")
    record.note("rejax's TD3 settings for Pendulum (configs/gymnax/pendulum.yaml), see "
                "REJAX_PENDULUM in benchmarks/_gpu_parts.py; one evaluation at the end")
    seeds_sweep(cfg, env, params, sizes["seeds"], budget, record)


def hopper_part(sizes: dict[str, Any], budget: Budget, record: PartRecord) -> None:
    """TD3 with rejax's hopper settings on brax ``hopper`` (default backend), vmapped seeds."""
    import ddpg_jax
    from ddpg_jax.envs import from_brax

    cfg = ddpg_jax.preset("td3-2018", **{**REJAX_HOPPER, "update_schedule": "step",
                                         "eval_every": 0,
                                         "eval_episodes": sizes["eval_episodes"],
                                         **sizes["overrides"]})
    env, params = from_brax(sizes["env"], episode_length=sizes["episode_length"])
    record.data["env"] = f"brax {sizes['env']!r}, episode_length {sizes['episode_length']}"
    record.note("rejax's TD3 settings for brax hopper (configs/brax/hopper.yaml), see "
                "REJAX_HOPPER in benchmarks/_gpu_parts.py; the buffer holds the whole short "
                "run (nothing is overwritten, so sampling is as with rejax's 1,048,576 rows, "
                "which would need 27 GB per 256 seeds); final returns are after this short "
                "run, not rejax's 5.24M steps")
    if "env_note" in sizes:
        record.note(sizes["env_note"])
    seeds_sweep(cfg, env, params, sizes["seeds"], budget, record)


# --------------------------------------------------------------------------- Playground
def playground_impls(full: bool) -> tuple[list[str], str]:
    """The physics implementations to measure, and why: "jax" always; "warp" in a full run
    where ``from_playground`` takes ``impl`` and ``warp`` imports."""
    import inspect

    from ddpg_jax.envs import from_playground

    if "impl" not in inspect.signature(from_playground).parameters:
        return ["jax"], "from_playground has no impl argument here: its physics is 'jax'"
    if not full:
        return ["jax"], "smoke: impl 'jax' only"
    try:
        import warp  # noqa: F401
    except Exception as e:  # warp raises more than ImportError when its runtime is missing
        return ["jax"], f"warp does not import ({type(e).__name__}): impl 'jax' only"
    return ["jax", "warp"], "warp imports: impls 'jax' and 'warp'"


def load_playground(task: str, impl: str) -> tuple[Any, Any]:
    """``from_playground(task, impl=impl)``, or without ``impl`` where it takes none."""
    import inspect

    from ddpg_jax.envs import from_playground

    if "impl" in inspect.signature(from_playground).parameters:
        return from_playground(task, impl=impl)
    return from_playground(task)


def env_rate(env: Any, params: Any, num_envs: int, steps: int) -> dict[str, Any]:
    """Env steps/s of an env alone: uniform random actions, ``steps`` vector steps in one
    ``lax.scan`` after one vmapped reset (charged to the steps), one untimed call first."""
    import jax

    from benchmarks._common import random_rollout

    rollout = random_rollout(env, params, num_envs, steps)

    t0 = time.perf_counter()
    fn = jax.jit(rollout).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn(jax.random.PRNGKey(1)))
    t1 = time.perf_counter()
    total = float(jax.block_until_ready(fn(jax.random.PRNGKey(2))))
    t2 = time.perf_counter()
    return {"num_envs": num_envs, "vector_steps": steps, "compile_s": compile_s,
            "run_s": t2 - t0, "env_steps_per_s": num_envs * steps / (t2 - t1),
            "ms_per_vector_step": 1e3 * (t2 - t1) / steps,
            "mean_reward": total / (num_envs * steps)}


def playground_env_part(sizes: dict[str, Any], budget: Budget, record: PartRecord) -> None:
    """Playground tasks alone through ``from_playground``, per impl and number of envs."""
    impls, why = playground_impls(full=sizes["all_impls"])
    record.data["impls"] = impls
    record.note(why)
    if "env_note" in sizes:
        record.note(sizes["env_note"])
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    for impl in impls:
        for n in sizes["num_envs"]:
            for task in sizes["tasks"]:
                prev = previous.get((impl, task))
                projected = projected_seconds(prev, n / prev["num_envs"] if prev else 1)
                if not budget.allows(projected):
                    record.skip(f"{task} impl {impl} {n} envs",
                                f"projected {projected:.0f} s > {budget.remaining():.0f} s left")
                    continue
                env, params = load_playground(task, impl)
                case = {"task": task, "impl": impl, **env_rate(env, params, n,
                                                               sizes["vector_steps"])}
                print(f"  {task} impl {impl} {n} envs: {case['env_steps_per_s']:.4g} env "
                      f"steps/s ({case['ms_per_vector_step']:.3g} ms per vector step), compile "
                      f"{case['compile_s']:.1f} s", flush=True)
                record.add(case)
                previous[(impl, task)] = case


def _learning_rates(chunks: list[dict[str, Any]], evals_done: list[float]
                    ) -> dict[str, Any]:
    """Env steps/s and updates/s over the chunks after the first (the first one follows the
    warm-up), each timed from the end of the evaluation before it to its own end."""
    steady = []
    for prev, cur in zip(chunks, chunks[1:]):
        start = max([prev["t"]] + [t for t in evals_done if prev["t"] <= t < cur["t"]])
        steady.append((cur["env_steps"] - prev["env_steps"], cur["updates"] - prev["updates"],
                       cur["t"] - start))
    if not steady:  # one chunk only: from the start of the call, compile and warm-up included
        c = chunks[0] if chunks else None
        return ({"env_steps_per_s": None, "updates_per_s": None, "rate_from": "no chunk"}
                if c is None else
                {"env_steps_per_s": c["env_steps"] / c["t"], "updates_per_s": c["updates"] / c["t"],
                 "rate_from": "one chunk only: compile and warm-up included"})
    steps, updates, seconds = (sum(x) for x in zip(*steady))
    return {"env_steps_per_s": steps / seconds, "updates_per_s": updates / seconds,
            "rate_from": f"{len(steady)} chunk(s) after the first, evaluations excluded"}


def train_to_threshold(env: Any, params: Any, task: str, threshold: float, total: int,
                       overrides: dict[str, Any], seconds: tuple[float, float],
                       record: PartRecord) -> dict[str, Any]:
    """``ddpg_jax.train`` with the accelerator preset until the mean evaluation return reaches
    ``threshold`` or ``total`` env steps are done, or time runs out: past ``seconds[0]``
    once a chunk after the first is timed (the training rates need one), past
    ``seconds[1]`` in any case."""
    import ddpg_jax
    from ddpg_jax.config import ACCELERATOR_BEFORE_FASTTD3

    # The accelerator preset as it was when these figures were recorded (before FastTD3).
    cfg = ACCELERATOR_BEFORE_FASTTD3.replace(total_steps=total, **overrides)
    case: dict[str, Any] = {"task": task, "threshold": threshold,
                            "time_limits_s": [round(x, 1) for x in seconds],
                            "num_envs": cfg.num_envs, "batch_size": cfg.batch_size,
                            "updates_per_vector_step": cfg.updates_per_vector_step,
                            "eval_every": cfg.eval_every, "curve": [], "reached": False}
    record.add(case)
    chunks: list[dict[str, Any]] = []
    evals_done: list[float] = []
    t0 = time.perf_counter()

    def on_chunk(r: dict[str, Any]) -> None:
        chunks.append({"t": time.perf_counter() - t0, "env_steps": r["env_steps"],
                       "updates": r["updates"]})
        case.update(_learning_rates(chunks, evals_done), env_steps_done=r["env_steps"])
        record.write()

    def on_evaluation(r: dict[str, Any]) -> None:
        now = time.perf_counter() - t0
        evals_done.append(now)
        case["curve"].append([r["env_steps"], round(r["eval_return_mean"], 2), round(now, 2)])
        if not case["reached"] and r["eval_return_mean"] >= threshold:
            case.update(reached=True, env_steps_to_threshold=r["env_steps"],
                        wall_s_to_threshold=now)
        case.update(_learning_rates(chunks, evals_done))
        record.write()

    def should_stop() -> bool:
        # One chunk after the first (timed without compile or warm-up) gives the rates.
        elapsed, timed = time.perf_counter() - t0, len(chunks) >= 2
        return ((case["reached"] or elapsed > seconds[0]) and timed) or elapsed > seconds[1]

    result = ddpg_jax.train(cfg, (env, params), num_seeds=1, log=None, on_chunk=on_chunk,
                            on_evaluation=on_evaluation, should_stop=should_stop)
    case.update(compile_s=result.summary["compile_time_s"], wall_s=time.perf_counter() - t0,
                stopped_early=bool(result.interrupted),
                final_return=case["curve"][-1][1] if case["curve"] else None,
                config=cfg.to_dict())
    record.write()
    return case


def playground_train_part(sizes: dict[str, Any], budget: Budget, record: PartRecord) -> None:
    """The accelerator preset on Playground tasks: env steps/s and updates/s while training,
    and the wall time to a return threshold (compile included), within the part's budget."""
    from ddpg_jax.envs import make

    if "env_note" in sizes:
        record.note(sizes["env_note"])
    tasks = sizes["tasks"]
    for i, (task, threshold, total) in enumerate(tasks):
        # An even share of what is left (less a margin for loading and returning), stretched
        # by half where the training rates still lack a timed chunk.
        left = budget.remaining() - 5.0
        seconds = (left / (len(tasks) - i), min(1.5 * left / (len(tasks) - i), left))
        if seconds[0] < 10:
            record.skip(task, f"{budget.remaining():.0f} s left of the part's budget")
            continue
        env, params = (make(task) if sizes.get("env") == task
                       else load_playground(task, "jax"))
        case = train_to_threshold(env, params, task, threshold, total,
                                  sizes["preset_overrides"], seconds, record)
        rate = case.get("env_steps_per_s")
        print(f"  {task}: {'reached' if case['reached'] else 'did not reach'} {threshold} "
              f"({case.get('wall_s_to_threshold')} s); training "
              f"{rate if rate is None else round(rate)} env steps/s, "
              f"{case.get('updates_per_s')} updates/s; compile {case['compile_s']:.1f} s; "
              f"curve {case['curve']}", flush=True)


PARTS: dict[str, Callable[[dict[str, Any], Budget, PartRecord], None]] = {
    "precision": precision_part,
    "export": export_part,
    "pendulum_seeds": pendulum_part,
    "hopper_seeds": hopper_part,
    "playground_env": playground_env_part,
    "playground_train": playground_train_part,
}

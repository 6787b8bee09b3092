"""What the MuJoCo Playground adapter costs: env steps/s through it against the task's own step.

    python -m benchmarks.adapter_cost                 # impl "jax", 16 envs (2-core CPU: 10 to 25 min)
    python -m benchmarks.adapter_cost --impl warp --num-envs 1024   # on a GPU
    python -m benchmarks.adapter_cost --quick         # CartpoleBalance only, 4 envs

Needs the playground extra. For each task, at one ``impl`` and ``num_envs``,
four rollouts of uniform random actions in ``[-1, 1]``, each a ``lax.scan`` of
``--steps`` vector steps under ``jit``, compiled before timing and timed in
interleaved rounds (the order rotates; ratios are taken within a round):

* ``task_step``: the task's own ``jax.vmap(task.step)`` and nothing else. It
  never restarts an episode, so it is a floor, not a loop anyone can train
  with.
* ``task_loop``: what a fair user loop around the task's own functions needs:
  the vmapped ``step``, plus the reset its own auto-reset needs, with fresh
  randomness for every new episode: one ``lax.cond`` on "any env ended" (by
  the task's ``done`` or the time limit) that runs the vmapped
  ``task.reset`` and selects it where an env ended. **The ratio's
  denominator.**
* ``adapter``: ``jax.vmap(env.step)`` of ``from_playground``: the same work
  plus the protocol's bookkeeping (time counter, truncation flag, the final
  observation, dtype casts).
* ``adapter_main``: the adapter's step before this change, kept here as a
  baseline: the base class's auto-reset, which computes ``task.reset`` on
  every step and selects it where an env ended.

Tasks: ``CheetahRun`` (its reset settles the model with 200 physics steps),
``CartpoleBalance``, and ``CartpoleBalanceEarlyEnd``: no DM Control task
bundled with Playground 0.2.0 ends its state-observation episodes early
(their ``done`` is NaN physics only; the time limit is a truncation), so this
is the nearest: ``CartpoleBalance`` with the termination rule Playground
applies to its vision variant (cart beyond 3, or pole beyond 90 degrees).
Its rollouts start after a burn-in of random actions, so that envs end their
episodes at different times inside the timed windows.

The windows of the fixed-length tasks (``CheetahRun``, ``CartpoleBalance``,
1000-step episodes) hold no episode end, as in the measurement of issue 19:
there, ``task_loop`` and ``adapter`` pay one batch of resets per 1000 steps
outside the window, and ``adapter_main`` pays a reset on every step.
Results: ``benchmarks/results/adapter_cost[.quick].json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common as C

TASKS = ("CheetahRun", "CartpoleBalance", "CartpoleBalanceEarlyEnd")
VARIANTS = ("task_step", "task_loop", "adapter", "adapter_main")
GOAL = 0.95


def early_end_task(impl: str) -> Any:
    """CartpoleBalance whose episodes end when the cart leaves [-3, 3] or the pole passes 90 deg."""
    from mujoco_playground._src.dm_control_suite import cartpole

    class EarlyEnd(cartpole.Balance):
        def step(self, state, action):
            state = super().step(state, action)
            cart, angle = state.data.qpos[self._slider_qposadr], state.data.qpos[1]
            fell = (jnp.abs(cart) > 3.0) | (jnp.abs(angle) > jnp.pi / 2)
            return state.replace(done=jnp.maximum(state.done, fell.astype(state.done.dtype)))

    return EarlyEnd(swing_up=False, sparse=False, config_overrides={"impl": impl})


def build(name: str, impl: str) -> tuple[Any, Any, Any]:
    """``(env, params, task)``: the adapter and the very task object it wraps."""
    from ddpg_jax.envs import from_playground

    if name == "CartpoleBalanceEarlyEnd":
        env, params = from_playground(early_end_task(impl))
    else:
        env, params = from_playground(name, impl=impl)
    return env, params, env.task


def task_functions(task: Any, limit: int, n: int) -> dict[str, Callable]:
    """The task's own vector step, bare (``task_step``) and with a fair auto-reset (``task_loop``).

    The carry is ``(task state, time)``; both reset with ``split(key)[1]``.
    """
    v_step, v_reset = jax.vmap(task.step), jax.vmap(task.reset)

    def bare(carry, keys, action):
        state, time = carry
        return v_step(state, action), time + 1

    def loop(carry, keys, action):
        state, time = carry
        state, time = v_step(state, action), time + 1
        done = (state.done > 0.5) | (time >= limit)

        def reset(_):
            fresh = v_reset(jax.vmap(lambda k: jax.random.split(k)[1])(keys))
            pick = lambda f, s: jnp.where(done.reshape((n,) + (1,) * (s.ndim - 1)), f, s)
            return jax.tree.map(pick, fresh, state), jnp.where(done, 0, time)

        return jax.lax.cond(jnp.any(done), reset, lambda _: (state, time), None)

    return {"task_step": bare, "task_loop": loop}


def adapter_functions(env: Any, params: Any) -> dict[str, Callable]:
    from ddpg_jax.envs.core import Environment

    def through(step: Callable) -> Callable:
        v = jax.vmap(step, in_axes=(0, 0, 0, None))

        def one(state, keys, action):
            return v(keys, state, action, params)[1]
        return one

    main_step = lambda k, s, a, p: Environment.step(env, k, s, a, p)
    return {"adapter": through(env.step), "adapter_main": through(main_step)}


def rollout_fn(vector_step: Callable, n: int, action_size: int, steps: int) -> Callable:
    """``state, key -> state, ended``: ``steps`` vector steps of random actions in one scan."""

    def rollout(state, key):
        def body(state, k):
            k_act, k_env = jax.random.split(k)
            action = jax.random.uniform(k_act, (n, action_size), jnp.float32, -1.0, 1.0)
            return vector_step(state, jax.random.split(k_env, n), action), None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, steps))
        return state

    return rollout


def measure_task(name: str, impl: str, n: int, steps: int, rounds: int, burn_in: int,
                 log: Callable[[str], None]) -> dict[str, Any]:
    env, params, task = build(name, impl)
    limit = int(params.max_steps_in_episode)
    fns = {**task_functions(task, limit, n), **adapter_functions(env, params)}
    key = jax.random.PRNGKey(0)
    _, adapter_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, n), params)
    starts = {v: ((adapter_state.env_state, jnp.zeros(n, jnp.int32)) if v.startswith("task")
                  else adapter_state) for v in VARIANTS}
    compiled, compile_s, states = {}, {}, {}
    for v in VARIANTS:
        t0 = time.perf_counter()
        fn = jax.jit(rollout_fn(fns[v], n, task.action_size, steps), donate_argnums=0)
        compiled[v] = fn.lower(starts[v], key).compile()
        compile_s[v] = time.perf_counter() - t0
        log(f"  {name}: compiled {v} in {compile_s[v]:.1f} s")
        states[v] = jax.tree.map(jnp.copy, starts[v])  # each variant donates its own
        for i in range(1 + burn_in // steps):  # warm call, then the burn-in
            states[v] = jax.block_until_ready(compiled[v](states[v], jax.random.PRNGKey(1 + i)))
    counter = [100]

    def timed(v: str) -> Callable[[], float]:
        def run() -> float:
            counter[0] += 1
            k = jax.random.PRNGKey(counter[0])
            before = states[v]
            t0 = time.perf_counter()
            states[v] = jax.block_until_ready(compiled[v](before, k))
            return (time.perf_counter() - t0) / steps
        return run

    secs = C.interleaved({v: timed(v) for v in VARIANTS}, rounds, log)
    row: dict[str, Any] = {"task": name, "impl": impl, "num_envs": n, "vector_steps": steps,
                           "episode_length": limit}
    for v in VARIANTS:
        row[f"{v}_env_steps_per_s"] = n / C.median(secs[v])
        row[f"{v}_ms_per_vector_step"] = 1e3 * C.median(secs[v])
        row[f"{v}_compile_s"] = compile_s[v]
    ratio = C.per_round_ratio(secs["task_loop"], secs["adapter"])  # rate ratio adapter/task
    row["ratio_adapter_to_task_loop"] = ratio["median"]
    row["ratio_adapter_to_task_loop_spread"] = ratio
    row["ratio_adapter_to_task_step"] = C.per_round_ratio(secs["task_step"],
                                                          secs["adapter"])["median"]
    row["ratio_adapter_main_to_task_loop"] = C.per_round_ratio(secs["task_loop"],
                                                               secs["adapter_main"])["median"]
    row["speedup_adapter_over_adapter_main"] = C.per_round_ratio(secs["adapter_main"],
                                                                 secs["adapter"])["median"]
    row["envs_ending_per_window"] = _ends_per_window(compiled["adapter"], steps,
                                                     states["adapter"])
    return row


def _ends_per_window(fn: Any, steps: int, state: Any) -> int:
    """How many envs end an episode in one more window of ``steps`` vector steps."""
    time_before = np.asarray(state.time)
    state = fn(jax.tree.map(jnp.copy, state), jax.random.PRNGKey(999))
    # An env that ended inside the window restarted its counter.
    return int(np.sum(np.asarray(state.time) < time_before + steps))


def _pkg_versions() -> dict[str, Any]:
    return {n: C._pkg_version(n) for n in ("playground", "brax", "mujoco", "mujoco-mjx",
                                           "warp-lang")}


def main() -> None:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--impl", default="jax", choices=("jax", "warp"))
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="vector steps per timed window")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tasks", default=",".join(TASKS))
    args = p.parse_args()
    if args.quick:
        args.tasks, args.num_envs, args.steps, args.rounds = "CartpoleBalance", 4, 5, 2
    rec = C.Recorder("adapter_cost", args)
    print("more versions: " + ", ".join(f"{k} {v}" for k, v in _pkg_versions().items()))
    cfg = dict(impl=args.impl, num_envs=args.num_envs, steps=args.steps, rounds=args.rounds,
               tasks=args.tasks.split(","), burn_in={"CartpoleBalanceEarlyEnd": 300})
    rec.config(cfg)
    rec.record["versions_playground"] = _pkg_versions()
    rows = [measure_task(t, args.impl, args.num_envs, args.steps, args.rounds,
                         cfg["burn_in"].get(t, 0), print) for t in cfg["tasks"]]
    cols = ["task", "num_envs"] + [f"{v}_ms_per_vector_step" for v in VARIANTS] + [
        "ratio_adapter_to_task_loop", "ratio_adapter_to_task_step",
        "speedup_adapter_over_adapter_main", "envs_ending_per_window"]
    C.print_table(rows, cols)
    goals = [{"goal": f"{r['task']}: adapter env steps/s >= {GOAL} x task_loop",
              "measured": round(r["ratio_adapter_to_task_loop"], 3),
              "met": r["ratio_adapter_to_task_loop"] >= GOAL} for r in rows]
    rec.finish({"tasks": rows}, goals, notes=[
        "ratios are of env steps/s (adapter / task), medians of per-round ratios",
        "fixed-length tasks: no episode end inside the timed windows (see the docstring)"])


if __name__ == "__main__":
    main()

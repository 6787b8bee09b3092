"""Where a whole-loop TD3 step's time goes: the learn step against the update alone, 1 seed.

    python -m benchmarks.step_attribution

Four programs, each compiled once and called 3 times in rotating order, 400
steps per call, on the Pendulum settings of ``benchmarks.rejax_side_by_side``
(256x256, batch 256, TD3): the whole-loop ``learn`` step of this tree; the same
with TD3's actor half computed on every step and kept with a select (the code
before the delay became a branch); the same without the non-finite guard; and
a ``lax.scan`` of the TD3 update alone over 400 batches sampled from the same
buffer. Prints wall and process CPU time per step (CPU time is steadier on a
shared machine). The variants patch private functions while tracing, so they
measure this tree's code and nothing is changed for other callers.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import ddpg_jax
from benchmarks import _common as Cm
from ddpg_jax import envs
from ddpg_jax.agent import gradient_step as G
from ddpg_jax.agent import learner as L
from ddpg_jax.drivers import compiled as C

N = 400
NAMES = ("learn (this tree)", "learn, old select", "learn, no guard",
         "update alone (scan of step.update)")


def build(variant: str, cfg: ddpg_jax.DDPGConfig) -> tuple[Callable[..., Any], tuple]:
    """The compiled program of one variant and its arguments (patches undone before return)."""
    env, params = envs.make("Pendulum-v1")
    any_in_batch, guard = G._any_in_batch, L.guard_nonfinite
    if variant == "learn, old select":  # a constant True cond: the actor half on every step
        G._any_in_batch = lambda p: True
    if variant == "learn, no guard":
        L.guard_nonfinite = lambda rec, *a: rec
    try:
        loop = C.make_loop(cfg, env, params)
        st = loop.warmup(loop.init(jax.random.PRNGKey(0)))
        if variant.startswith("update"):
            rows = loop.learner.sample_rows(st.agent, jax.random.PRNGKey(1), N)
            args = (st.agent.train_state, loop.learner.sample_at(st.agent, rows))
            fn = jax.jit(lambda ts, b: jax.lax.scan(loop.learner.gradient_step.update, ts, b))
        else:
            args = (st,)
            fn = jax.jit(lambda s: loop.learn(s, N))
        compiled = fn.lower(*args).compile()
    finally:
        G._any_in_batch, L.guard_nonfinite = any_in_batch, guard
    jax.block_until_ready(compiled(*args))
    return compiled, args


def main() -> None:
    # The td3 preset before 2026-12-05 (td3-2018, per step), as the recorded figures.
    cfg = ddpg_jax.preset("td3-2018", update_schedule="step", total_steps=20000, warmup_steps=1000, hidden_sizes=(256, 256),
                          batch_size=256, actor_lr=1e-3, critic_lr=1e-3, buffer_size=20000,
                          eval_every=0, eval_episodes=128)
    m, v = Cm.machine(), Cm.versions()
    print(f"machine: {m['cpu_model']}, {m['cpu_count']} cores; jax {v['jax']}; "
          f"commit {str(v['git']['commit'])[:10]}; load {Cm.loadavg()}")
    fns = {n: build(n, cfg) for n in NAMES}
    wall: dict[str, list[float]] = {n: [] for n in NAMES}
    cpu: dict[str, list[float]] = {n: [] for n in NAMES}
    for r in range(3):
        for n in NAMES[r:] + NAMES[:r]:
            fn, args = fns[n]
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            wall[n].append((time.perf_counter() - t0) / N * 1e3)
            cpu[n].append((time.process_time() - c0) / N * 1e3)
    print(f"load at end {Cm.loadavg()}")
    for n in NAMES:
        print(f"{n:38s} wall ms/step median {np.median(wall[n]):.3f} "
              f"{np.round(wall[n], 3).tolist()}  CPU ms/step median {np.median(cpu[n]):.3f}")


if __name__ == "__main__":
    main()

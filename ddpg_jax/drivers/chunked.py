"""Chunked, checkpointed and resumable runs of the whole-loop driver.

:func:`train_chunked` drives the pure pieces of
:func:`ddpg_jax.drivers.compiled.make_loop` from the host: one compiled,
vmapped (over seeds) and device-sharded call per chunk of learning steps,
where chunks end at evaluation points, checkpoint points and the end of the
run. ``learn`` takes the chunk length as an argument, so every chunk runs the
same compiled program. Between chunks the host evaluates, writes records,
checks for non-finite values, saves the whole batched
:class:`~ddpg_jax.drivers.compiled.LoopState` and looks at the stop flag.

Because each learning step takes its keys from the loop state, the chunking
does not change the computation: a run stopped at a chunk boundary and
resumed ends with the same parameters as an uninterrupted one (bit-identical
on the same machine and device count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax.checkpoints.format import Checkpoint
from ddpg_jax.checkpoints.policy_record import describe_policy
from ddpg_jax.checkpoints.resume import open_for_resume
from ddpg_jax.config import DDPGConfig
from ddpg_jax.drivers.compiled import Loop, LoopState, make_loop
from ddpg_jax.drivers.multi import seed_keys
from ddpg_jax.drivers.result import TrainResult, summarize
from ddpg_jax.drivers.run_options import RunOptions
from ddpg_jax.drivers.schedule import Schedule, make_schedule
from ddpg_jax.drivers.session import (
    Callbacks,
    Session,
    checkpoint_items,
    load_checkpoint_items,
)
from ddpg_jax.drivers.sharding import RunPlacement, place_runs
from ddpg_jax.envs.core import Environment


class Compiled(NamedTuple):
    """The loop's pieces compiled once for a batch of runs on a mesh."""

    init: Callable[[Any], LoopState]
    warmup: Callable[[LoopState], LoopState]
    learn: Callable[[LoopState, Any], tuple[LoopState, dict[str, Any]]]
    evaluate: Callable[[LoopState], dict[str, Any]]
    compile_time_s: float


def compile_loop(loop: Loop, keys: Any, placement: RunPlacement) -> Compiled:
    """Compiles ``vmap`` of each piece over the run axis, sharded by ``placement``."""
    sh, rep = placement.sharding, placement.replicated

    def init(keys: Any) -> LoopState:
        return jax.vmap(lambda k: loop.init(k))(keys)

    def warmup(state: LoopState) -> LoopState:
        return jax.vmap(loop.warmup)(state)

    def learn(state: LoopState, length: Any) -> tuple[LoopState, dict[str, Any]]:
        return jax.vmap(loop.learn, in_axes=(0, None))(state, length)

    def evaluate(state: LoopState) -> dict[str, Any]:
        return jax.vmap(loop.evaluate)(state)

    t0 = time.perf_counter()
    key_arr = placement.place(keys)
    shapes = jax.eval_shape(init, key_arr)
    length = jax.ShapeDtypeStruct((), jnp.int32, sharding=rep)
    compiled = Compiled(
        jax.jit(init, in_shardings=sh, out_shardings=sh).lower(key_arr).compile(),
        jax.jit(warmup, in_shardings=sh, out_shardings=sh, donate_argnums=0).lower(shapes)
        .compile(),
        jax.jit(learn, in_shardings=(sh, rep), out_shardings=sh, donate_argnums=0)
        .lower(shapes, length).compile(),
        jax.jit(evaluate, in_shardings=sh, out_shardings=sh).lower(shapes).compile(),
        0.0)
    return compiled._replace(compile_time_s=time.perf_counter() - t0)


def _restore(checkpoint: Checkpoint, loop: Loop, keys: np.ndarray) -> LoopState:
    """The batched loop state of a checkpoint, on the host (buffer zeros if it was left out)."""
    template = jax.eval_shape(jax.vmap(lambda k: loop.init(k)), keys)
    buffer_t = template.agent.buffer
    loaded, buffer = load_checkpoint_items(
        checkpoint, template._replace(agent=template.agent._replace(buffer=None)), buffer_t,
        seed_axis=True)
    if buffer is None:
        buffer = jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), buffer_t)
    return loaded._replace(agent=loaded.agent._replace(buffer=buffer))


def _save(session: Session, placement: RunPlacement, state: LoopState, env_steps: int) -> None:
    if session.manager is None:
        return
    host = placement.fetch(state)
    agent = host.agent
    items = checkpoint_items(host._replace(agent=agent._replace(buffer=None)), agent.buffer,
                             session.buffer_in_checkpoint, seed_axis=True)
    session.save(env_steps, items, {}, obs_stats=agent.train_state.obs_stats)


def _evaluate(session: Session, placement: RunPlacement, compiled: Compiled, state: LoopState,
              env_steps: int) -> None:
    ev = placement.fetch(compiled.evaluate(state))
    updates = int(placement.fetch(state.agent.train_state.step)[0])
    # Each env's last return, as the chunk records get it: the records average
    # the finished ones over envs and seeds together.
    session.evaluation(env_steps, updates, ev["eval_returns"], placement.fetch(state.last_return))


def _run(session: Session, schedule: Schedule, placement: RunPlacement, compiled: Compiled,
         state: LoopState, v: int) -> tuple[LoopState, bool]:
    """The chunk loop from vector step ``v``; returns the final state and whether it stopped early."""
    n = schedule.num_envs
    while v < schedule.total:
        end = schedule.next_stop(v)
        state, sums = compiled.learn(state, placement.place_replicated(np.int32(end - v)))
        v = end
        session.check_finite(placement.fetch(state.agent.nonfinite))
        updates = int(placement.fetch(state.agent.train_state.step)[0])
        last = placement.fetch(state.last_return)
        session.chunk(v * n, updates, placement.fetch(sums), last)
        if schedule.evaluates_at(v):
            _evaluate(session, placement, compiled, state, v * n)
        session.progress(v * n)
        stopping = v < schedule.total and session.stop_requested()
        if schedule.checkpoints_at(v) or stopping:
            _save(session, placement, state, v * n)
        if stopping:
            return state, True
    return state, False


def train_chunked(
    config: DDPGConfig,
    env: Environment,
    env_params: Any = None,
    *,
    num_seeds: int = 1,
    keys: jax.Array | None = None,
    env_id: str = "",
    run_dir: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    resume_from: str | os.PathLike | Checkpoint | None = None,
    callbacks: Callbacks = Callbacks(),
    devices: Any = None,
    preset: str | None = None,
) -> TrainResult:
    """Trains ``num_seeds`` runs of ``config`` chunk by chunk, with checkpoints and resume.

    Args:
      config: the run's settings.
      env, env_params: a functional env and its params.
      num_seeds: runs trained at once (vmapped, sharded over ``devices``).
      keys: one key per run; default ``seed_keys(config.seed, num_seeds)``
        (the keys of :func:`ddpg_jax.run_seeds`).
      env_id: the env's id, stored in checkpoints and checked on resume.
      run_dir: directory that receives ``checkpoints/``; ``None`` writes none.
      options: checkpoint cadence, retention, buffer in checkpoints.
      resume_from: a checkpoint of this driver to continue from; its config
        must equal ``config`` except for ``total_steps``.
      callbacks: logging, records, progress and the stop flag.
      devices: devices to shard the runs over (default: all).

    Raises:
      ConfigError, CheckpointError: before any training, for bad settings or
        a checkpoint that does not fit.
      NonFiniteError: when training produces NaN or infinity.
    """
    options = (options or RunOptions()).validate()
    loop = make_loop(config, env, env_params)
    schedule = make_schedule(config, options.checkpoint_interval(config))
    keys = seed_keys(config.seed, num_seeds) if keys is None else keys
    keys = np.asarray(jax.random.key_data(keys) if jnp.issubdtype(
        keys.dtype, jax.dtypes.prng_key) else keys)
    num_seeds = keys.shape[0]
    checkpoint = None
    if resume_from is not None:
        checkpoint = open_for_resume(resume_from, backend="jax", config=config,
                                     env_id=env_id or None, num_seeds=num_seeds)
    placement = place_runs(num_seeds, devices)
    compiled = compile_loop(loop, keys, placement)
    t_start = time.perf_counter()
    if checkpoint is None:
        state = compiled.warmup(compiled.init(placement.place(keys)))
    else:
        state = placement.place(_restore(checkpoint, loop, keys))
        if "buffer" not in checkpoint.meta["items"]:
            state = compiled.warmup(state)  # refill the buffer with a new warm-up
    v = int(placement.fetch(state.env_steps)[0]) // schedule.num_envs
    session = Session(backend="jax", env_id=env_id, config=config, options=options,
                      run_dir=run_dir, callbacks=callbacks, num_seeds=num_seeds,
                      resumed=checkpoint, start_steps=v * schedule.num_envs,
                      policy=describe_policy(loop.learner.networks, seed_axis=True,
                                             train_state="agent/train_state"),
                      preset=preset)
    session.wall_offset += compiled.compile_time_s  # the wall time includes compiling
    start = v * schedule.num_envs
    state, interrupted = _run(session, schedule, placement, compiled, state, v)
    final = placement.fetch(state)
    run_time = time.perf_counter() - t_start
    return TrainResult(
        train_state=final.agent.train_state, buffer=final.agent.buffer,
        evaluations=session.evaluations, networks=loop.learner.networks,
        summary=summarize(session, int(final.env_steps[0]), int(final.agent.train_state.step[0]),
                          compile_time_s=compiled.compile_time_s, run_time_s=run_time,
                          steps_done=int(final.env_steps[0]) - start),
        interrupted=interrupted, checkpoint=session.last_checkpoint, final_state=final)

"""Chunked, checkpointed and resumable runs of the JAX backend.

:func:`run_chunks` drives the pure pieces of :func:`ddpg_jax.train.jax_loop.make_train_parts`
from the host: one compiled, vmapped (over seeds) and device-sharded call per
chunk of learning steps, where chunks end at evaluation points, checkpoint
points and the end of the run. Between chunks the host evaluates, writes
metrics, checks for non-finite values, saves the whole batched
:class:`~ddpg_jax.train.jax_loop.RunState` (train state, replay buffer, env
states, observations, noise state, keys, episode returns) and looks at the
stop flag.

Because each learning step takes its keys from the run state, the chunking
does not change the computation: a run stopped at a chunk boundary and
resumed ends with the same parameters as an uninterrupted one (bit-identical
on the same machine and device count; see the README's "Run management").
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ddpg_jax.checkpoint import (Checkpoint, CheckpointError, CheckpointManager, checkpoint_dir,
                                 load_item, open_checkpoint, trim_rows)
from ddpg_jax.config import ConfigError, DDPGConfig
from ddpg_jax.envs.core import Environment
from ddpg_jax.networks import Networks
from ddpg_jax.run import RunOptions, check_resume_config, crossed, raise_if_nonfinite
from ddpg_jax.train.jax_loop import METRIC_NAMES, RunState, make_train_parts
from ddpg_jax.train.multi import RUN_AXIS, _global, _mesh, _pad, seed_keys, to_host


@dataclasses.dataclass
class ChunkedResult:
    """What :func:`run_chunks` returns.

    Attributes:
      run_state: the final (or interrupted) run state on the host, leading
        axis over seeds.
      evaluations: one record per evaluation point of the whole run (earlier
        sessions included): ``env_steps``, ``eval_return_mean`` / ``_std``
        over all seeds and episodes, ``eval_return_mean_per_seed``,
        ``eval_returns`` ``[seed][episode]``, update metrics averaged since the
        previous evaluation, ``wall_time_s``.
      interrupted: True when ``should_stop`` ended the run early.
      checkpoint: the last checkpoint written (or resumed from), if any.
      wall_time_s: time of the whole run, earlier sessions included.
      compile_time_s: time spent compiling in this session.
      run_time_s: time of this session without compilation.
      networks: the pure network functions.
    """

    run_state: RunState
    evaluations: list[dict[str, Any]]
    interrupted: bool
    checkpoint: Path | None
    wall_time_s: float
    compile_time_s: float
    run_time_s: float
    networks: Networks

    @property
    def env_steps(self) -> int:
        return int(np.asarray(self.run_state.env_steps).reshape(-1)[0])


def _nan_to_none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def run_chunks(
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
    should_stop: Callable[[], bool] | None = None,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    devices: Any = None,
) -> ChunkedResult:
    """Trains ``num_seeds`` runs of ``config`` chunk by chunk, with checkpoints and resume.

    Args:
      config: the run's settings.
      env, env_params: a functional env and its params.
      num_seeds: runs trained at once (vmapped, sharded over ``devices``).
      keys: one key per run; default ``seed_keys(config.seed, num_seeds)``
        (the keys of :func:`ddpg_jax.train.multi.run_seeds`).
      env_id: the env's id, stored in checkpoints and checked on resume.
      run_dir: directory that receives ``checkpoints/``; ``None`` writes none.
      options: checkpoint cadence, retention, buffer in checkpoints.
      resume_from: a checkpoint of this backend to continue from; its config
        must equal ``config`` except for ``total_steps``.
      should_stop: polled after every chunk; when True the run checkpoints
        and returns with ``interrupted=True``.
      on_evaluation, on_chunk: called with each evaluation / chunk record.
      on_progress: called with the env steps (per run) done after each chunk.
      log: receives one line per evaluation.
      devices: devices to shard the runs over (default: all).

    Raises:
      ConfigError, CheckpointError: before any training, for bad settings or
        a checkpoint that does not fit.
      NonFiniteError: when training produces NaN or infinity.
    """
    options = (options or RunOptions()).validate()
    parts = make_train_parts(config, env, env_params)
    schedule = parts.schedule
    n = config.num_envs
    total_v = config.vector_steps
    eval_points = sorted({p // n for p in schedule.eval_steps})
    ckpt_every = options.checkpoint_interval(config)
    if keys is None:
        keys = seed_keys(config.seed, num_seeds)
    keys = np.asarray(jax.random.key_data(keys) if jnp.issubdtype(
        keys.dtype, jax.dtypes.prng_key) else keys)
    num_seeds = keys.shape[0]

    checkpoint = None
    if resume_from is not None:
        checkpoint = (resume_from if isinstance(resume_from, Checkpoint)
                      else open_checkpoint(resume_from))
        meta = checkpoint.meta
        if meta.get("backend") != "jax":
            raise CheckpointError(f"checkpoint {checkpoint.path} was written by the "
                                  f"{meta.get('backend')!r} backend, not jax.")
        if env_id and meta.get("env_id") != env_id:
            raise CheckpointError(f"checkpoint {checkpoint.path} is of env "
                                  f"{meta.get('env_id')!r}, not {env_id!r}.")
        if meta.get("num_seeds") != num_seeds:
            raise CheckpointError(f"checkpoint {checkpoint.path} holds {meta.get('num_seeds')} "
                                  f"seed(s), not {num_seeds}.")
        try:
            saved = DDPGConfig.from_dict(meta["config"])
        except (KeyError, TypeError, ConfigError) as e:
            raise CheckpointError(f"checkpoint {checkpoint.path} has an unreadable config "
                                  f"({e}).") from None
        check_resume_config(saved, config, checkpoint.step)

    mesh = _mesh(devices)
    padded = -(-num_seeds // mesh.devices.size) * mesh.devices.size
    sharding = NamedSharding(mesh, PartitionSpec(RUN_AXIS))

    def place(tree: Any) -> Any:
        return jax.tree.map(lambda x: _global(_pad(np.asarray(x), padded), sharding), tree)

    def fetch(tree: Any) -> Any:
        return jax.tree.map(lambda x: x[:num_seeds], to_host(tree))

    compile_time = 0.0

    def compiled(fn: Callable, *args: Any, donate: bool = True) -> Callable:
        nonlocal compile_time
        t0 = time.perf_counter()
        jitted = jax.jit(jax.vmap(fn), in_shardings=sharding, out_shardings=sharding,
                         donate_argnums=0 if donate else ())
        c = jitted.lower(*args).compile()
        compile_time += time.perf_counter() - t0
        return c

    learn_fns: dict[int, Callable] = {}
    evaluate_fn: Callable | None = None
    t_start = time.perf_counter()
    wall_offset = 0.0
    evaluations: list[dict[str, Any]] = []
    acc: dict[str, Any] = {"steps": 0, "sums": {}}  # update metrics since the last evaluation
    key_arr = place(keys)

    def init_fn(k):
        return parts.init(k)

    if checkpoint is None:
        run = compiled(init_fn, key_arr, donate=False)(key_arr)
        run = compiled(parts.warmup, run)(run)
    else:
        template = jax.eval_shape(jax.vmap(init_fn), keys)
        loaded = load_item(checkpoint, "state", template._replace(buffer=None))
        if "buffer" in checkpoint.meta["items"]:
            buffer = load_item(checkpoint, "buffer", template.buffer, pad_axis=1)
        else:
            buffer = jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), template.buffer)
        run = place(loaded._replace(buffer=buffer))
        if "buffer" not in checkpoint.meta["items"]:
            # Without the replay buffer the run refills it with a new warm-up.
            run = compiled(parts.warmup, run)(run)
        try:
            host = checkpoint.meta["host"]
            evaluations = list(host["evaluations"])
            acc = host["acc"]
            wall_offset = float(host["wall_time_s"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {checkpoint.path} has unreadable loop state "
                                  f"({e}).") from None
    v = int(np.asarray(fetch(run.env_steps))[0]) // n

    manager = None
    if run_dir is not None:
        manager = CheckpointManager(checkpoint_dir(run_dir), options.keep_checkpoints)
        if checkpoint is not None:
            manager.supersede_after(checkpoint.step)
    last_checkpoint = checkpoint.path if checkpoint is not None else None
    write_checkpoints = manager is not None and jax.process_index() == 0

    def wall_time() -> float:
        return wall_offset + time.perf_counter() - t_start

    def check_finite() -> None:
        raise_if_nonfinite(fetch(run.nonfinite), lambda s: f"env step {s}", lambda s: s,
                           str(last_checkpoint) if last_checkpoint else None)

    def next_end(v: int) -> int:
        ends = [total_v]
        i = bisect.bisect_right(eval_points, v)
        if i < len(eval_points):
            ends.append(eval_points[i])
        if ckpt_every > 0:
            m = v * n // ckpt_every + 1
            ends.append(-(-m * ckpt_every // n))
        return min(ends)

    def save(eval_return: float | None) -> None:
        nonlocal last_checkpoint
        if manager is None:
            return
        check_finite()
        state = fetch(run)
        if not write_checkpoints:
            return
        items = {"state": state._replace(buffer=None)}
        if options.buffer_in_checkpoint:  # rows past the fill level are zeros: not saved
            items["buffer"] = state.buffer.replace(packed=trim_rows(
                state.buffer.packed, int(np.max(state.buffer.size)), axis=1))
        meta = {
            "backend": "jax", "env_id": env_id, "config": config.to_dict(),
            "num_seeds": num_seeds, "env_steps": v * n, "eval_return": eval_return,
            "host": {"evaluations": evaluations, "acc": acc, "wall_time_s": wall_time()},
        }
        last_checkpoint = manager.save(v * n, items, meta)

    stop = should_stop or (lambda: False)
    interrupted = False
    while v < total_v:
        end = next_end(v)
        length = end - v
        if length not in learn_fns:
            learn_fns[length] = compiled(lambda r, L=length: parts.learn(r, L), run)
        t0 = time.perf_counter()
        run, metrics = learn_fns[length](run)
        metrics = fetch(metrics)
        prev, v = v, end
        check_finite()
        now = time.perf_counter()
        chunk = {name: float(np.mean(metrics[name])) for name in METRIC_NAMES}
        for name in METRIC_NAMES:
            per_seed = np.asarray(metrics[name], np.float64) * length
            acc["sums"][name] = (np.asarray(acc["sums"].get(name, 0.0)) + per_seed).tolist()
        acc["steps"] += length
        if on_chunk is not None:
            on_chunk({"env_steps": v * n, **chunk,
                      "steps_per_second": num_seeds * length * n / max(now - t0, 1e-9),
                      "wall_time_s": wall_time()})
        eval_return = None
        if v in eval_points:
            if evaluate_fn is None:
                evaluate_fn = compiled(parts.evaluate, run, donate=False)
            ev = fetch(evaluate_fn(run))
            returns = np.asarray(ev["eval_returns"])  # [seeds, episodes]
            record: dict[str, Any] = {
                "env_steps": v * n,
                "eval_return_mean": float(np.mean(returns)),
                "eval_return_std": float(np.std(returns)),
                "eval_return_mean_per_seed": [float(x) for x in np.mean(returns, axis=1)],
                "eval_returns": returns.tolist(),
                "train_episode_return_mean": _nan_to_none(
                    float(np.nanmean(ev["train_episode_return"]))
                    if np.any(np.isfinite(ev["train_episode_return"])) else float("nan")),
            }
            for name in METRIC_NAMES:
                record[name] = float(np.mean(acc["sums"][name])) / acc["steps"]
            record["wall_time_s"] = wall_time()
            acc = {"steps": 0, "sums": {}}
            evaluations.append(record)
            eval_return = record["eval_return_mean"]
            if on_evaluation is not None:
                on_evaluation(record)
            if log is not None:
                log(f"step {v * n:>8d}  eval return {record['eval_return_mean']:9.2f} "
                    f"+- {record['eval_return_std']:7.2f} (all seeds)")
        if on_progress is not None:
            on_progress(v * n)
        stopping = stop() and v < total_v
        if v == total_v or crossed(prev * n, v * n, ckpt_every) or stopping:
            save(eval_return)
        if stopping:
            interrupted = True
            break
    final_state = fetch(run)
    wall = wall_time()
    session = time.perf_counter() - t_start
    return ChunkedResult(final_state, evaluations, interrupted, last_checkpoint, wall,
                         compile_time, session - compile_time, parts.networks)

"""One front door for training: :func:`train` picks the driver from the env it is given."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax

from ddpg_jax.agent.precision import run_matmul_precision
from ddpg_jax.checkpoints.format import Checkpoint
from ddpg_jax.config import ConfigError, DDPGConfig
from ddpg_jax.drivers.compile_cache import compile_cache
from ddpg_jax.drivers.result import TrainResult
from ddpg_jax.drivers.run_options import RunOptions
from ddpg_jax.drivers.session import Callbacks, RunWriters
from ddpg_jax.envs.core import Environment
from ddpg_jax.envs.gymnasium_check import EnvFactory

BACKENDS = ("gymnasium", "jax")


def jax_env(env: Any, env_params: Any) -> tuple[Environment, Any, str]:
    """``(env, params, id)`` from an env spec, an env or an ``(env, params)`` pair.

    A string goes through :func:`ddpg_jax.envs.from_spec` (a built-in id,
    ``playground:TASK``, ``brax:NAME``, ``gymnax:NAME`` or ``module:function``),
    which raises :class:`~ddpg_jax.envs.core.EnvSpecError` for a bad one.
    """
    from ddpg_jax.envs.specs import from_spec

    if isinstance(env, str):
        made, params, env_id = from_spec(env)
        return made, params if env_params is None else env_params, env_id
    if isinstance(env, tuple) and len(env) == 2 and isinstance(env[0], Environment):
        return env[0], env[1] if env_params is None else env_params, env[0].name
    return env, env_params, env.name


def train(
    config: DDPGConfig,
    env: str | EnvFactory | Environment | tuple[Environment, Any],
    env_params: Any = None,
    *,
    backend: str | None = None,
    num_seeds: int = 1,
    keys: jax.Array | None = None,
    env_kwargs: dict[str, Any] | None = None,
    run_dir: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    resume_from: str | os.PathLike | Checkpoint | None = None,
    log: Callable[[str], None] | None = print,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    devices: Sequence[jax.Device] | None = None,
    preset: str | None = None,
) -> TrainResult:
    """Trains DDPG/TD3 on a gymnasium env or a JAX env, with the driver that fits it.

    * A gymnasium id (``"Pendulum-v1"``) or a zero-argument factory returning a
      ``gymnasium.Env`` (wrappers included) trains through the gymnasium
      driver: host envs, one compiled call per vector step.
    * A JAX env (:class:`ddpg_jax.envs.Environment`, or the ``(env, params)``
      pair of :func:`ddpg_jax.envs.make`), or an env spec with
      ``backend="jax"`` (a built-in id, ``"playground:CartpoleBalance"``,
      ``"brax:NAME"``, ``"gymnax:NAME"`` or ``"module:function"``; see
      :func:`ddpg_jax.envs.from_spec`), trains through the whole-loop driver:
      ``num_seeds`` runs vmapped and sharded over ``devices``, in compiled
      chunks between evaluation and checkpoint points.

    Args:
      config: the run's settings; validated before anything else happens.
      env: see above.
      env_params: a JAX env's params (default: the env's own).
      backend: ``"gymnasium"`` or ``"jax"`` for an id; otherwise chosen from ``env``.
      num_seeds: runs trained at once (JAX driver), seeded from ``config.seed``.
      keys: one PRNG key per run instead (JAX driver).
      env_kwargs: keyword arguments for ``gymnasium.make`` when ``env`` is an id.
      run_dir: directory that receives ``checkpoints/``, the metric files
        ``evaluations.jsonl`` / ``train_metrics.jsonl`` (and their CSV twins) and,
        with ``options.tensorboard``, ``tensorboard/``; ``None`` writes nothing.
      options: checkpoints, TensorBoard, progress bar, cache (:class:`RunOptions`).
      resume_from: a checkpoint (or its directory) of the same driver to
        continue from; its config must equal ``config`` except for a larger
        ``total_steps``.
      log, on_evaluation, on_chunk, on_progress: receive each evaluation's line (``None``
        for silence), record, each training chunk's record, the env steps done per run.
      should_stop: polled at safe points; once True the run checkpoints (with a
        ``run_dir``) and returns with ``interrupted=True``.
      devices: devices to shard the JAX driver's runs over (default: all).
      preset: the name of the preset ``config`` came from, recorded in checkpoints.

    While it runs, jax's persistent compilation cache is on (see
    :mod:`ddpg_jax.drivers.compile_cache`) and matmuls run at ``config.matmul_precision``;
    jax's settings are put back when it returns.

    Returns:
      A :class:`~ddpg_jax.drivers.result.TrainResult` (either driver).

    Raises:
      ConfigError, EnvSpecError, CheckpointError, RunOptionsError, MissingExtraError (for
        ``options.tensorboard`` without the package): for bad input, before any work.
      NonFiniteError: when training produces NaN or infinity.
    """
    config.validate()
    is_jax = _is_jax(env, backend, num_seeds, keys)
    options = (options or RunOptions()).validate()
    writers = RunWriters(options, run_dir, config.total_steps)
    callbacks = writers.wrap(Callbacks(log, on_evaluation, on_chunk, on_progress, should_stop))
    try:
        with compile_cache(options.compile_cache), run_matmul_precision(config):
            return _run_driver(config, env, env_params, is_jax, num_seeds=num_seeds, keys=keys,
                               env_kwargs=env_kwargs, run_dir=run_dir, options=options,
                               resume_from=resume_from, callbacks=callbacks, devices=devices,
                               preset=preset)
    finally:
        writers.close()


def _is_jax(env: Any, backend: str | None, num_seeds: int, keys: jax.Array | None) -> bool:
    """Whether ``env`` trains through the whole-loop driver; refuses what neither driver takes."""
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not known; accepted: {' | '.join(BACKENDS)}.")
    is_jax = (isinstance(env, Environment) or backend == "jax"
              or (isinstance(env, tuple) and len(env) == 2 and isinstance(env[0], Environment)))
    if not is_jax and (num_seeds != 1 or keys is not None):
        raise ConfigError(f"num_seeds {num_seeds} needs a JAX env (the jax backend); the "
                          "gymnasium driver trains one seed per process.")
    return is_jax


def _run_driver(config: DDPGConfig, env: Any, env_params: Any, is_jax: bool, *, num_seeds: int,
                keys: jax.Array | None, env_kwargs: dict[str, Any] | None,
                run_dir: str | os.PathLike | None, options: RunOptions,
                resume_from: str | os.PathLike | Checkpoint | None, callbacks: Callbacks,
                devices: Sequence[jax.Device] | None, preset: str | None) -> TrainResult:
    """The whole-loop driver for a JAX env, the gymnasium driver otherwise."""
    if is_jax:
        from ddpg_jax.drivers.chunked import train_chunked

        made, params, env_id = jax_env(env, env_params)
        return train_chunked(config, made, params, num_seeds=num_seeds, keys=keys,
                             env_id=env_id, run_dir=run_dir, options=options,
                             resume_from=resume_from, callbacks=callbacks, devices=devices,
                             preset=preset)
    from ddpg_jax.drivers.host import train_host

    return train_host(config, env, env_kwargs=env_kwargs, run_dir=run_dir, options=options,
                      resume_from=resume_from, callbacks=callbacks, preset=preset)

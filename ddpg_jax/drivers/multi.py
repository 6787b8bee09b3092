"""Many runs in one program: vmapped seeds and hyperparameters, sharded over devices.

The run axis (seeds, or settings x seeds) is the leading axis of every input
and output. :func:`compile_runs` jits ``vmap(train)`` with that axis sharded
over the devices (:mod:`ddpg_jax.drivers.sharding`), so the same code runs on
one CPU, one GPU, several local devices or several hosts.

Multi-host use: start one process per host, call
``jax.distributed.initialize(coordinator_address, num_processes, process_id)``
in each before anything else touches JAX, then call :func:`run_seeds` with the
same arguments on every process. Each process computes the (identical) global
array of keys and places only its own shards; results come back to every
process through :func:`~ddpg_jax.drivers.sharding.to_host`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax.agent.gradient_step import hparams_from_config
from ddpg_jax.agent.state import HParams
from ddpg_jax.config import SWITCHED_FIELDS, TRACED_FIELDS, ConfigError, DDPGConfig
from ddpg_jax.drivers.compiled import TrainOutput, make_train
from ddpg_jax.drivers.sharding import place_runs
from ddpg_jax.envs.core import Environment


class Timed(NamedTuple):
    output: TrainOutput  # on the host (numpy leaves), leading run axis
    compile_time_s: float
    run_time_s: float


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """``num_seeds`` independent keys derived from one integer seed."""
    return jax.random.split(jax.random.PRNGKey(seed), num_seeds)


def make_hparams(config: DDPGConfig, num_runs: int, **values: Sequence[float]) -> HParams:
    """A batch of ``num_runs`` hyperparameter settings.

    Fields not given take the config's value in every run; a given field takes
    one value per run.

    Raises:
      ConfigError: for fields that are not traced, or lists of the wrong length
        or with out-of-range values.
    """
    for name, vals in values.items():
        if name not in TRACED_FIELDS:
            raise ConfigError(f"{name!r} cannot be swept in one program; accepted: "
                              f"{', '.join(TRACED_FIELDS)} (other fields change shapes).")
        if len(vals) != num_runs:
            raise ConfigError(f"{name} has {len(vals)} values for {num_runs} runs.")
        for v in vals:  # range checks through the config's own validation
            config.replace(**{name: float(v)}).validate()
        if name in SWITCHED_FIELDS and getattr(config, name) == 0 and any(v > 0 for v in vals):
            raise ConfigError(
                f"{name} {list(vals)} in a program compiled with {name} = 0, which has no "
                f"decay term; accepted: a config with {name} > 0 (e.g. {max(vals)!r}; each "
                "run then takes its own value, 0 included), or sweep() which sets it.")
    base = hparams_from_config(config)
    return HParams(**{
        name: (jnp.asarray(values[name], jnp.float32) if name in values
               else jnp.full((num_runs,), getattr(base, name), jnp.float32))
        for name in TRACED_FIELDS
    })


def compile_runs(
    train: Callable[..., TrainOutput],
    num_runs: int,
    *,
    with_hparams: bool = False,
    devices: Sequence[jax.Device] | None = None,
) -> tuple[Callable[..., TrainOutput], int, Any]:
    """Jits ``vmap(train)`` with the run axis sharded over ``devices``.

    Returns:
      ``(fn, padded, sharding)``: ``fn(keys[, hparams])`` expects a run axis
      of length ``padded`` (``num_runs`` rounded up to a multiple of the
      device count), placed with ``sharding``.
    """
    placement = place_runs(num_runs, devices)
    sharding = placement.sharding
    if with_hparams:
        fn = jax.jit(jax.vmap(train), in_shardings=(sharding, sharding), out_shardings=sharding)
    else:
        fn = jax.jit(jax.vmap(lambda k: train(k)), in_shardings=sharding, out_shardings=sharding)
    return fn, placement.padded, sharding


def run_many(
    train: Callable[..., TrainOutput],
    keys: jax.Array,
    hparams: HParams | None = None,
    *,
    devices: Sequence[jax.Device] | None = None,
) -> Timed:
    """Runs ``train`` once per key (and per hparams row), sharded over ``devices``.

    Returns:
      The outputs on the host with a leading run axis, the compile time and
      the run time.
    """
    keys = np.asarray(jax.random.key_data(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
                      else keys)
    num_runs = keys.shape[0]
    placement = place_runs(num_runs, devices)
    fn, _, _ = compile_runs(train, num_runs, with_hparams=hparams is not None, devices=devices)
    args = [placement.place(keys)]
    if hparams is not None:
        args.append(placement.place(hparams))
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    t1 = time.perf_counter()
    out = compiled(*args)
    jax.block_until_ready(out)
    t2 = time.perf_counter()
    out = placement.fetch(out)
    return Timed(out, t1 - t0, t2 - t1)


def run_seeds(
    config: DDPGConfig,
    env: Environment,
    env_params: Any = None,
    *,
    num_seeds: int = 1,
    keys: jax.Array | None = None,
    devices: Sequence[jax.Device] | None = None,
    return_buffer: bool = False,
) -> Timed:
    """Trains ``num_seeds`` independent runs of ``config`` in one compiled program.

    Keys default to ``seed_keys(config.seed, num_seeds)``.
    """
    if keys is None:
        keys = seed_keys(config.seed, num_seeds)
    train = make_train(config, env, env_params, return_buffer=return_buffer)
    return run_many(train, keys, devices=devices)


def sweep(
    config: DDPGConfig,
    env: Environment,
    env_params: Any = None,
    *,
    grid: Mapping[str, Sequence[float]],
    num_seeds: int = 1,
    devices: Sequence[jax.Device] | None = None,
) -> tuple[list[dict[str, float]], Timed]:
    """Trains every combination of the traced hyperparameters in ``grid`` x ``num_seeds``.

    Example: ``sweep(config, env, grid={"actor_lr": [1e-4, 1e-3], "tau": [0.005, 0.01]},
    num_seeds=4)`` trains 16 runs at once.

    Returns:
      ``(settings, timed)``: ``settings[i]`` is the dict of values of setting
      ``i``; the outputs have leading axes ``[len(settings), num_seeds]``.
    """
    names = list(grid)
    settings = [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    # A decay term switched off in the config is compiled in when the grid turns it on.
    config = config.replace(**{n: max(map(float, grid[n])) for n in names
                               if n in SWITCHED_FIELDS and getattr(config, n) == 0})
    runs = len(settings) * num_seeds
    hparams = make_hparams(config, runs, **{
        n: [s[n] for s in settings for _ in range(num_seeds)] for n in names})
    # Every setting sees the same seeds (common random numbers), which makes
    # differences between settings less noisy.
    keys = jnp.tile(seed_keys(config.seed, num_seeds), (len(settings), 1))
    train = make_train(config, env, env_params)
    timed = run_many(train, keys, hparams, devices=devices)
    out = jax.tree.map(lambda x: x.reshape((len(settings), num_seeds) + x.shape[1:]), timed.output)
    return settings, timed._replace(output=out)


def select_run(tree: Any, *index: int) -> Any:
    """Takes one run out of a batched result, e.g. ``select_run(out.train_state, 3)``."""
    return jax.tree.map(lambda x: x[index], tree)

"""Whole-loop training on JAX environments: one compiled program per run.

``make_train(config, env, env_params)`` returns ``train(key, hparams=None)``:
warm-up, acting, environment steps, buffer adds, gradient updates and
periodic deterministic evaluation, all inside ``lax.scan``. Because it is a
pure function of its key and hyperparameters, ``jax.vmap(train)`` trains many
seeds (or settings) at once, and sharding that batch axis over a device mesh
spreads them across devices and hosts (see :mod:`ddpg_jax.train.multi`).

Evaluation points follow the gymnasium backend: every ``eval_every``
environment steps counted from the start of the run, once learning has begun
(points inside the warm-up are skipped), and at the end.

The pieces ``train`` is made of are exposed by :func:`make_train_parts`:
``init(key, hparams) -> RunState``, ``warmup(run)``, ``learn(run, length)`` and
``evaluate(run)``. The whole state of a run, environments included, is the
:class:`RunState` pytree, so a host driver can run it chunk by chunk,
checkpoint it between chunks and resume it exactly
(:func:`ddpg_jax.train.jax_run.run_chunks`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax import buffer as rb
from ddpg_jax.config import ConfigError, DDPGConfig
from ddpg_jax.envs.core import Environment
from ddpg_jax.networks import Networks, make_networks
from ddpg_jax.noise import NoiseState, make_noise
from ddpg_jax.policy import make_explore
from ddpg_jax.run import guard_nonfinite, no_nonfinite
from ddpg_jax.types import Array, HParams, PRNGKey, TrainState, Transition
from ddpg_jax.update import (hparams_from_config, init_train_state, make_update, normalize_obs,
                             observe)

METRIC_NAMES = ("critic_loss", "actor_loss", "q_mean", "target_mean",
                "critic_grad_norm", "actor_grad_norm")


class RunState(NamedTuple):
    """The carry of the training scan: everything a run needs to go on."""

    train_state: TrainState
    buffer: rb.BufferState
    env_state: Any  # batched over num_envs
    obs: Array  # [num_envs, obs_dim]
    noise_state: NoiseState
    key: PRNGKey
    episode_return: Array  # [num_envs] float32: return of the running episodes
    last_return: Array  # [num_envs] float32: return of each env's last finished episode
    eval_key: PRNGKey  # fixed for the run: every evaluation starts from the same states
    env_steps: Array  # int32 []: environment steps done (warm-up included)
    nonfinite: Array  # int32 [2]: (env step, code) of the first non-finite quantity, or (-1, 0)


class TrainParts(NamedTuple):
    """The pure functions a run is made of (see :func:`make_train_parts`).

    Attributes:
      init: ``(key, hparams=None) -> RunState``: parameters, empty buffer, reset envs.
      warmup: ``run -> run``: ``schedule.warmup`` vector steps of uniform random actions.
      learn: ``(run, length) -> (run, metrics)``: ``length`` (static) learning
        vector steps; ``metrics`` are the update metrics averaged over them.
      evaluate: ``run -> metrics``: deterministic evaluation of the current
        actor (``eval_returns``, ``eval_return_mean``, ``eval_return_std``,
        ``train_episode_return``).
      schedule: the run's loop lengths.
      networks: the pure network functions.
    """

    init: Callable[..., RunState]
    warmup: Callable[[RunState], RunState]
    learn: Callable[[RunState, int], tuple[RunState, dict[str, Array]]]
    evaluate: Callable[[RunState], dict[str, Array]]
    schedule: Schedule
    networks: Networks


class TrainOutput(NamedTuple):
    """What ``train(key)`` returns (with a leading seed axis under vmap).

    Attributes:
      train_state: final parameters, targets, optimizer states, hparams.
      buffer: the final replay buffer, or ``None`` unless ``return_buffer``.
      metrics: arrays with a leading axis over evaluation points:
        ``env_steps [E]``, ``eval_returns [E, eval_episodes]``,
        ``eval_return_mean [E]``, ``eval_return_std [E]``,
        ``train_episode_return [E]`` (mean over envs of the last finished
        episode), and the update metrics averaged over each chunk
        (``critic_loss``, ``actor_loss``, ``q_mean``, ...).
    """

    train_state: TrainState
    buffer: rb.BufferState | None
    metrics: dict[str, Array]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Static loop lengths, in vector steps (each advances ``num_envs`` envs)."""

    warmup: int
    first: int  # steps from the end of warm-up to the first evaluation point
    chunk: int  # steps between regular evaluation points
    num_chunks: int
    last: int  # steps after the last regular point up to the end (0: none)
    num_envs: int

    @property
    def eval_steps(self) -> list[int]:
        """Environment steps at which evaluations happen."""
        points, t = [], self.warmup + self.first
        if self.first:
            points.append(t)
        for _ in range(self.num_chunks):
            t += self.chunk
            points.append(t)
        if self.last:
            points.append(t + self.last)
        return [p * self.num_envs for p in points]


def make_schedule(config: DDPGConfig) -> Schedule:
    n = config.num_envs
    total, warmup = config.vector_steps, config.warmup_vector_steps
    main = total - warmup
    if main <= 0:
        raise ConfigError(
            f"warmup_steps {config.warmup_steps} leaves no learning steps in total_steps "
            f"{config.total_steps} with num_envs {n}; accepted: warmup_steps < total_steps - num_envs.")
    if config.eval_every == 0:
        return Schedule(warmup, 0, main, 1, 0, n)
    if config.eval_every % n:
        raise ConfigError(
            f"eval_every {config.eval_every} is not a multiple of num_envs {n}; the JAX backend "
            "evaluates between vector steps, accepted: a multiple of num_envs (or 0).")
    every = config.eval_every // n
    first = (-warmup) % every  # up to the first multiple of eval_every after warm-up
    first = min(first, main)
    rest = main - first
    return Schedule(warmup, first, every, rest // every, rest % every, n)


def make_train_parts(
    config: DDPGConfig,
    env: Environment,
    env_params: Any = None,
) -> TrainParts:
    """Builds the pure functions of a run: ``init``, ``warmup``, ``learn``, ``evaluate``.

    ``make_train`` chains them into one program; a host driver can instead
    call them chunk by chunk (each under ``jit`` and ``vmap``) and checkpoint
    the :class:`RunState` in between. Every learning step splits its keys from
    ``RunState.key``, so how a run is cut into chunks does not change what it
    computes.

    Args:
      config: the run's settings (validated here, before any tracing).
      env: a functional env (:class:`ddpg_jax.envs.Environment`).
      env_params: its params; ``None`` means ``env.default_params``.

    Returns:
      A :class:`TrainParts`.
    """
    config.validate()
    params = env.default_params if env_params is None else env_params
    schedule = make_schedule(config)
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    low, high = np.asarray(act_space.low, np.float32), np.asarray(act_space.high, np.float32)
    if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
        raise ConfigError(f"{env!r} has observation shape {obs_space.shape} and action shape "
                          f"{act_space.shape}; accepted: flat (1-D) observations and actions.")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ConfigError(f"{env!r} has unbounded actions (low={low}, high={high}); accepted: "
                          "finite bounds.")
    obs_dim, action_dim = obs_space.shape[0], act_space.shape[0]
    episode_len = int(np.asarray(env.max_steps(params)))
    num_envs = config.num_envs

    networks = make_networks(config, obs_dim, low, high)
    noise = make_noise(config.noise, config.ou_theta, config.ou_dt)
    explore = make_explore(networks, noise)
    update = make_update(networks, config)
    updates_per_step = num_envs * config.updates_per_step
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def env_step(run: RunState, key: PRNGKey, action: Array) -> tuple[RunState, Transition, Array]:
        obs, env_state, reward, terminated, truncated, info = v_step(
            jax.random.split(key, num_envs), run.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        transition = Transition(run.obs, action, reward, terminated.astype(jnp.float32),
                                info["final_observation"])
        ep_ret = run.episode_return + reward
        run = run._replace(
            env_state=env_state, obs=obs,
            buffer=rb.add(run.buffer, transition),
            train_state=observe(run.train_state, transition.obs, config),
            episode_return=jnp.where(done, 0.0, ep_ret),
            last_return=jnp.where(done, ep_ret, run.last_return),
            env_steps=run.env_steps + num_envs,
        )
        return run, transition, done

    def warmup_step(run: RunState, _) -> tuple[RunState, None]:
        key, act_key, step_key = jax.random.split(run.key, 3)
        action = jax.random.uniform(act_key, (num_envs, action_dim), jnp.float32, low, high)
        run, _, _ = env_step(run._replace(key=key), step_key, action)
        return run, None

    def learn_step(run: RunState, _) -> tuple[RunState, dict[str, Array]]:
        key, act_key, step_key, update_key = jax.random.split(run.key, 4)
        ts = run.train_state
        action, noise_state = explore(ts.actor_params, run.noise_state, act_key,
                                      normalize_obs(ts, run.obs, config), ts.hparams.noise_scale)
        run, _, done = env_step(run._replace(key=key), step_key, action)
        # run.train_state now holds the updated obs statistics.
        batches = rb.sample_batches(run.buffer, update_key, config.batch_size, updates_per_step)
        ts, metrics = jax.lax.scan(update, run.train_state, batches)
        run = run._replace(train_state=ts, noise_state=noise.reset(noise_state, done),
                           nonfinite=guard_nonfinite(run.nonfinite, run.env_steps, metrics, ts))
        return run, {name: jnp.mean(metrics[name]) for name in METRIC_NAMES}

    v_step_eval = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def eval_returns(ts: TrainState, key: PRNGKey) -> Array:
        """Returns of ``eval_episodes`` deterministic episodes run in parallel."""
        episodes = config.eval_episodes
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, episodes), params)

        def body(carry, k):
            obs, state, ret, running = carry
            action = networks.actor_apply(ts.actor_params, normalize_obs(ts, obs, config))
            obs, state, reward, term, trunc, _ = v_step_eval(
                jax.random.split(k, episodes), state, action, params)
            ret = ret + jnp.where(running, reward, 0.0)
            running = jnp.logical_and(running, ~jnp.logical_or(term, trunc))
            return (obs, state, ret, running), None

        init = (obs, state, jnp.zeros(episodes, jnp.float32), jnp.ones(episodes, bool))
        (_, _, ret, _), _ = jax.lax.scan(body, init,
                                         jax.random.split(jax.random.fold_in(key, 1), episode_len))
        return ret

    def init(key: PRNGKey, hparams: HParams | None = None) -> RunState:
        init_key, eval_key, env_key, run_key = jax.random.split(key, 4)
        if hparams is None:
            hparams = hparams_from_config(config)
        ts = init_train_state(init_key, networks, config, hparams)
        obs, env_state = v_reset(jax.random.split(env_key, num_envs), params)
        example = Transition(jnp.zeros(obs_dim), jnp.zeros(action_dim), jnp.zeros(()),
                             jnp.zeros(()), jnp.zeros(obs_dim))
        return RunState(
            train_state=ts,
            buffer=rb.init(example, config.buffer_size),
            env_state=env_state, obs=obs,
            noise_state=noise.init(num_envs, action_dim),
            key=run_key,
            episode_return=jnp.zeros(num_envs, jnp.float32),
            last_return=jnp.full(num_envs, jnp.nan, jnp.float32),
            eval_key=eval_key,
            env_steps=jnp.zeros((), jnp.int32),
            nonfinite=no_nonfinite(),
        )

    def warmup(run: RunState) -> RunState:
        run, _ = jax.lax.scan(warmup_step, run, None, length=schedule.warmup)
        return run

    def learn(run: RunState, length: int) -> tuple[RunState, dict[str, Array]]:
        run, metrics = jax.lax.scan(learn_step, run, None, length=length)
        return run, {name: jnp.mean(metrics[name]) for name in METRIC_NAMES}

    def evaluate(run: RunState) -> dict[str, Array]:
        returns = eval_returns(run.train_state, run.eval_key)
        return dict(eval_returns=returns, eval_return_mean=jnp.mean(returns),
                    eval_return_std=jnp.std(returns),
                    train_episode_return=jnp.mean(run.last_return))

    return TrainParts(init, warmup, learn, evaluate, schedule, networks)


def make_train(
    config: DDPGConfig,
    env: Environment,
    env_params: Any = None,
    *,
    return_buffer: bool = False,
) -> Callable[..., TrainOutput]:
    """Builds ``train(key, hparams=None) -> TrainOutput``, a pure function of its inputs.

    Args:
      config: the run's settings (validated here, before any tracing).
      env: a functional env (:class:`ddpg_jax.envs.Environment`).
      env_params: its params; ``None`` means ``env.default_params``.
      return_buffer: include the final replay buffer in the output (memory:
        ``buffer_size`` transitions per run).

    Returns:
      ``train``. Jit it, vmap it over keys for seeds, or over ``hparams``
      (an :class:`~ddpg_jax.types.HParams` of arrays) for a sweep. Key usage:
      each run splits its key into initialisation, evaluation and loop keys,
      so different keys give independent runs. ``train.parts`` holds the
      :class:`TrainParts` it is built from.
    """
    parts = make_train_parts(config, env, env_params)
    schedule = parts.schedule

    def chunk(run: RunState, length: int) -> tuple[RunState, dict[str, Array]]:
        run, out = parts.learn(run, length)
        return run, {**out, **parts.evaluate(run)}

    def train(key: PRNGKey, hparams: HParams | None = None) -> TrainOutput:
        run = parts.warmup(parts.init(key, hparams))
        outs = []
        if schedule.first:
            run, out = chunk(run, schedule.first)
            outs.append(jax.tree.map(lambda x: x[None], out))
        if schedule.num_chunks:
            run, out = jax.lax.scan(lambda r, _: chunk(r, schedule.chunk), run, None,
                                    length=schedule.num_chunks)
            outs.append(out)
        if schedule.last:
            run, out = chunk(run, schedule.last)
            outs.append(jax.tree.map(lambda x: x[None], out))
        metrics = jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)
        metrics["env_steps"] = jnp.asarray(schedule.eval_steps, jnp.int32)
        return TrainOutput(run.train_state, run.buffer if return_buffer else None, metrics)

    train.networks = parts.networks  # type: ignore[attr-defined]
    train.schedule = schedule  # type: ignore[attr-defined]
    train.parts = parts  # type: ignore[attr-defined]
    return train

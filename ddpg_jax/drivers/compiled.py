"""The whole-loop driver: a run on a JAX env as one compiled program.

``make_train(config, env, env_params)`` returns ``train(key, hparams=None)``:
warm-up, acting, environment steps, buffer adds, gradient updates and
periodic deterministic evaluation, all inside ``lax.scan``. Because it is a
pure function of its key and hyperparameters, ``jax.vmap(train)`` trains many
seeds (or settings) at once, and sharding that batch axis over a device mesh
spreads them across devices and hosts (:mod:`ddpg_jax.drivers.multi`).

The pieces ``train`` is made of are returned by :func:`make_loop`:
``init(key, hparams) -> LoopState``, ``warmup(loop)``, ``learn(loop, length)``
and ``evaluate(loop)``. ``learn`` takes its length as a (possibly traced)
number, so one compiled body serves every chunk: ``train`` scans it over the
chunk lengths between evaluation points, and the chunked driver
(:mod:`ddpg_jax.drivers.chunked`) calls it between checkpoints. Compile time
therefore does not grow with the number of evaluation points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent.learner import COUNT_NAMES, AgentState, Learner, make_learner
from ddpg_jax.agent.precision import with_matmul_precision
from ddpg_jax.agent.state import (
    METRIC_NAMES,
    Array,
    HParams,
    PRNGKey,
    TrainState,
    Transition,
)
from ddpg_jax.config import DDPGConfig
from ddpg_jax.drivers.schedule import Schedule, make_schedule
from ddpg_jax.envs.core import Environment, env_spec
from ddpg_jax.records.metrics import ACTOR_METRICS


class LoopState(NamedTuple):
    """The carry of the training scan: everything a run needs to go on."""

    agent: AgentState  # train state, replay buffer, noise state, non-finite record
    env_state: Any  # batched over num_envs
    obs: Array  # [num_envs, obs_dim]
    key: PRNGKey
    episode_return: Array  # [num_envs] float32: return of the running episodes
    last_return: Array  # [num_envs] float32: return of each env's last finished episode
    eval_key: PRNGKey  # fixed for the run: every evaluation starts from the same states
    env_steps: Array  # int32 []: environment steps done (warm-up included)


class Loop(NamedTuple):
    """The pure functions a run is made of (see :func:`make_loop`).

    Attributes:
      init: ``(key, hparams=None) -> LoopState``: parameters, empty buffer, reset envs.
      warmup: ``loop -> loop``: ``schedule.warmup`` vector steps of uniform random actions
        (with ``update_schedule="episode"``, each episode end among them runs its burst of
        gradient steps, whose metrics are not reported).
      learn: ``(loop, length) -> (loop, sums)``: ``length`` learning vector
        steps; ``sums`` are the learner's metric sums and counts over them.
      evaluate: ``loop -> dict``: ``eval_returns [episodes]``,
        ``eval_return_mean``, ``eval_return_std``, ``train_episode_return``.
      schedule: the run's evaluation points.
      learner: the shared learner.
    """

    init: Callable[..., LoopState]
    warmup: Callable[[LoopState], LoopState]
    learn: Callable[[LoopState, Any], tuple[LoopState, dict[str, Array]]]
    evaluate: Callable[[LoopState], dict[str, Array]]
    schedule: Schedule
    learner: Learner


class TrainOutput(NamedTuple):
    """What ``train(key)`` returns (with a leading seed axis under vmap).

    Attributes:
      train_state: final parameters, targets, optimizer states, hparams.
      buffer: the final replay buffer, or ``None`` unless ``return_buffer``.
      metrics: arrays with a leading axis over evaluation points:
        ``env_steps [E]``, ``eval_returns [E, eval_episodes]``,
        ``eval_return_mean [E]``, ``eval_return_std [E]``,
        ``train_episode_return [E]`` (the mean over envs of each env's last
        finished training episode, envs without one left out: NaN before any
        episode ends), and the update metrics averaged over each chunk
        (``critic_loss``, ``actor_loss``, ``q_mean``, ...).
    """

    train_state: TrainState
    buffer: rb.BufferState | None
    metrics: dict[str, Array]


def chunk_means(sums: dict[str, Array]) -> dict[str, Array]:
    """Each metric's mean over a chunk's updates (actor metrics over the actor's).

    NaN for a chunk without such updates (with ``update_schedule="episode"``, a
    chunk in which no episode ended).
    """
    def mean(name: str) -> Array:
        count = sums["actor_updates" if name in ACTOR_METRICS else "updates"]
        return jnp.where(count > 0, sums[name] / jnp.maximum(count, 1), jnp.nan)

    return {name: mean(name) for name in METRIC_NAMES}


def make_loop(config: DDPGConfig, env: Environment, env_params: Any = None) -> Loop:
    """Builds the pure functions of a run on a JAX env (validated before any tracing).

    Every learning step splits its keys from ``LoopState.key``, so how a run
    is cut into chunks does not change what it computes.
    """
    config.validate()
    params = env.default_params if env_params is None else env_params
    schedule = make_schedule(config)
    obs_dim, low, high = env_spec(env, params)
    learner = make_learner(config, obs_dim, low, high, batched=True)
    num_envs = config.num_envs
    episodic = config.update_schedule == "episode"
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def env_step(loop: LoopState, key: PRNGKey, action: Array
                 ) -> tuple[LoopState, Transition, Array]:
        obs, env_state, reward, terminated, truncated, info = v_step(
            jax.random.split(key, num_envs), loop.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        transition = Transition(loop.obs, action, reward, terminated.astype(jnp.float32),
                                info["final_observation"])
        ep_ret = loop.episode_return + reward
        loop = loop._replace(env_state=env_state, obs=obs,
                             episode_return=jnp.where(done, 0.0, ep_ret),
                             last_return=jnp.where(done, ep_ret, loop.last_return),
                             env_steps=loop.env_steps + num_envs)
        return loop, transition, done

    def warmup_step(loop: LoopState, _) -> tuple[LoopState, None]:
        if episodic:  # the 2018 loop: a burst at every episode end, warm-up included
            key, act_key, step_key, update_key = jax.random.split(loop.key, 4)
            action = learner.random_action(act_key, num_envs)
            loop, transition, done = env_step(loop._replace(key=key), step_key, action)
            agent, _ = learner.learn(loop.agent, transition, done, update_key, loop.env_steps)
            return loop._replace(agent=agent), None
        key, act_key, step_key = jax.random.split(loop.key, 3)
        action = learner.random_action(act_key, num_envs)
        loop, transition, done = env_step(loop._replace(key=key), step_key, action)
        return loop._replace(agent=learner.observe(loop.agent, transition, done)), None

    def learn_step(_, carry: tuple[LoopState, dict[str, Array]]):
        loop, sums = carry
        key, act_key, step_key, update_key = jax.random.split(loop.key, 4)
        agent, action = learner.explore(loop.agent, act_key, loop.obs)
        loop, transition, done = env_step(loop._replace(key=key), step_key, action)
        agent, step_sums = learner.learn(agent, transition, done, update_key, loop.env_steps)
        return loop._replace(agent=agent), {k: sums[k] + step_sums[k] for k in sums}

    def init(key: PRNGKey, hparams: HParams | None = None) -> LoopState:
        init_key, eval_key, env_key, run_key = jax.random.split(key, 4)
        obs, env_state = v_reset(jax.random.split(env_key, num_envs), params)
        return LoopState(
            agent=learner.init(init_key, hparams), env_state=env_state, obs=obs, key=run_key,
            episode_return=jnp.zeros(num_envs, jnp.float32),
            last_return=jnp.full(num_envs, jnp.nan, jnp.float32),
            eval_key=eval_key, env_steps=jnp.zeros((), jnp.int32))

    def warmup(loop: LoopState) -> LoopState:
        loop, _ = jax.lax.scan(warmup_step, loop, None, length=schedule.warmup)
        return loop

    def learn(loop: LoopState, length: Any) -> tuple[LoopState, dict[str, Array]]:
        zeros = {name: jnp.zeros((), jnp.float32) for name in METRIC_NAMES + COUNT_NAMES}
        return jax.lax.fori_loop(0, length, learn_step, (loop, zeros))

    def evaluate(loop: LoopState) -> dict[str, Array]:
        returns = learner.evaluate(loop.agent.train_state, loop.eval_key, env, params,
                                   config.eval_episodes)
        return dict(eval_returns=returns, eval_return_mean=jnp.mean(returns),
                    eval_return_std=jnp.std(returns),
                    train_episode_return=jnp.nanmean(loop.last_return))

    # Every piece is traced at the config's matmul precision, wherever it is jitted.
    init, warmup, learn, evaluate = (with_matmul_precision(config, f)
                                     for f in (init, warmup, learn, evaluate))
    return Loop(init, warmup, learn, evaluate, schedule, learner)


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
      (an :class:`~ddpg_jax.agent.state.HParams` of arrays) for a sweep. Each run
      splits its key into initialisation, evaluation and loop keys, so
      different keys give independent runs. ``train.loop`` holds the
      :class:`Loop` it is built from, ``train.schedule`` its evaluation points.
    """
    loop_fns = make_loop(config, env, env_params)
    schedule = loop_fns.schedule
    lengths = schedule.chunk_lengths

    def chunk(loop: LoopState, length: Array) -> tuple[LoopState, dict[str, Array]]:
        loop, sums = loop_fns.learn(loop, length)
        return loop, {**chunk_means(sums), **loop_fns.evaluate(loop)}

    def train(key: PRNGKey, hparams: HParams | None = None) -> TrainOutput:
        loop = loop_fns.warmup(loop_fns.init(key, hparams))
        loop, metrics = jax.lax.scan(chunk, loop, jnp.asarray(lengths))
        metrics["env_steps"] = jnp.asarray(schedule.eval_steps, jnp.int32)
        buffer = loop.agent.buffer if return_buffer else None
        return TrainOutput(loop.agent.train_state, buffer, metrics)

    train.loop = loop_fns  # type: ignore[attr-defined]
    train.networks = loop_fns.learner.networks  # type: ignore[attr-defined]
    train.schedule = schedule  # type: ignore[attr-defined]
    return train

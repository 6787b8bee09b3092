"""Training on gymnasium environments: a thin host loop around one compiled step.

Per environment step the host does only what must happen on the host (step
the gymnasium envs) and makes one call into a compiled function that adds the
previous transition to the replay buffer, runs the gradient updates, and
returns the next action. The buffer, the train state and the noise state stay
on the device and are donated, so nothing but observations, actions, rewards
and flags crosses between host and device.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax import buffer as rb
from ddpg_jax.config import DDPGConfig
from ddpg_jax.envcheck import EnvFactory, EnvSpec, check_env, env_factory
from ddpg_jax.networks import Networks, make_networks
from ddpg_jax.noise import NoiseState, make_noise
from ddpg_jax.policy import make_explore
from ddpg_jax.types import Array, TrainState, Transition
from ddpg_jax.update import init_train_state, make_update

METRIC_NAMES = ("critic_loss", "actor_loss", "q_mean", "target_mean",
                "critic_grad_norm", "actor_grad_norm")

#: Seed offset of the evaluation envs, so they never replay the training envs' episodes.
EVAL_SEED_OFFSET = 1_000_003


class Carry(NamedTuple):
    """Device-resident state of the host loop, donated to every compiled step."""

    train_state: TrainState
    buffer: rb.BufferState
    noise_state: NoiseState
    key: jax.Array
    metric_sums: dict[str, Array]  # float32 [] running sums since the last read
    metric_count: Array  # int32 []


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
      train_state: the final parameters and optimizer states.
      buffer: the final replay buffer.
      evaluations: one dict per evaluation point (env step, return mean/std,
        per-episode returns, and the update metrics averaged since the last point).
      summary: the run's headline figures (see :func:`train`).
      trace_counts: how often each compiled function was traced (1 each on a
        healthy run).
      networks: the pure network functions, for acting with ``train_state``.
    """

    train_state: TrainState
    buffer: rb.BufferState
    evaluations: list[dict[str, Any]]
    summary: dict[str, Any]
    trace_counts: dict[str, int]
    networks: Networks


def _vector_env(factory: EnvFactory, num_envs: int) -> gym.vector.VectorEnv:
    return gym.vector.SyncVectorEnv(
        [factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def real_next_obs(obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The observation that followed each env's action.

    Under gymnasium 1.x same-step autoreset, a finished env's ``obs`` is already
    the first observation of its next episode; the true final observation is in
    ``info["final_obs"]``. Bootstrapping from it on truncation is what keeps a
    time limit from being mistaken for a terminal state.
    """
    next_obs = np.array(obs, dtype=np.float32, copy=True)
    if np.any(done):
        final = info["final_obs"]
        for i in np.flatnonzero(done):
            next_obs[i] = np.asarray(final[i], np.float32)
    return next_obs


def evaluate_policy(
    act: Callable[[Any, np.ndarray], Array],
    actor_params: Any,
    factory: EnvFactory,
    episodes: int,
    seed: int,
) -> np.ndarray:
    """Runs ``episodes`` deterministic episodes (one per sub-env) and returns their returns.

    The envs are reset with the same seeds at every call, so successive
    evaluations of a run face the same initial states.
    """
    envs = _vector_env(factory, episodes)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes, np.float64)
        running = np.ones(episodes, bool)
        while running.any():
            action = np.asarray(act(actor_params, np.asarray(obs, np.float32)))
            obs, reward, terminated, truncated, _ = envs.step(action)
            returns += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()


def train(
    config: DDPGConfig,
    env: str | EnvFactory,
    *,
    env_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Trains DDPG on a gymnasium environment.

    Args:
      config: the run's settings; validated before anything else happens.
      env: a registered gymnasium id, or a zero-argument factory returning a
        ``gymnasium.Env`` (wrappers included).
      env_kwargs: keyword arguments for ``gymnasium.make`` when ``env`` is an id.
      log: receives one progress line per evaluation; ``None`` for silence.
      on_evaluation: called with each evaluation record as it is made.

    Returns:
      A :class:`TrainResult`; ``summary`` has ``env_id, seed, total_steps,
      final_eval_return_mean, final_eval_return_std, eval_episodes,
      wall_time_s, steps_per_second``.

    Raises:
      ConfigError: for invalid settings.
      EnvSpecError: for unknown ids or unsupported spaces.
    """
    config.validate()
    if isinstance(env, str):
        env_id = env
        factory = env_factory(env, **(env_kwargs or {}))
    else:
        env_id = getattr(env, "__name__", type(env).__name__)
        factory = env
    spec = check_env(factory, repr(env_id))
    t_start = time.perf_counter()

    networks = make_networks(config, spec.obs_dim, spec.action_low, spec.action_high)
    noise = make_noise(config.noise, config.ou_theta, config.ou_dt)
    explore = make_explore(networks, noise)
    update = make_update(networks, config)
    num_envs = config.num_envs
    action_dim = spec.action_low.shape[0]
    updates_per_call = num_envs * config.updates_per_step
    trace_counts = {"step": 0, "act": 0, "add": 0, "policy": 0}

    key = jax.random.PRNGKey(config.seed)
    key, init_key = jax.random.split(key)
    state = init_train_state(init_key, networks, config)
    example = Transition(
        obs=jnp.zeros(spec.obs_dim, jnp.float32),
        action=jnp.zeros(action_dim, jnp.float32),
        reward=jnp.zeros((), jnp.float32),
        terminated=jnp.zeros((), jnp.float32),
        next_obs=jnp.zeros(spec.obs_dim, jnp.float32),
    )
    carry = Carry(
        train_state=state,
        buffer=rb.init(example, config.buffer_size),
        noise_state=noise.init(num_envs, action_dim),
        key=key,
        metric_sums={name: jnp.zeros((), jnp.float32) for name in METRIC_NAMES},
        metric_count=jnp.zeros((), jnp.int32),
    )

    def act(carry: Carry, obs: Array) -> tuple[Carry, Array]:
        key, act_key = jax.random.split(carry.key)
        action, noise_state = explore(carry.train_state.actor_params, carry.noise_state,
                                      act_key, obs, carry.train_state.hparams.noise_scale)
        return carry._replace(noise_state=noise_state, key=key), action

    def step_fn(carry: Carry, transition: Transition, done: Array,
                obs: Array) -> tuple[Carry, Array]:
        trace_counts["step"] += 1
        key, update_key = jax.random.split(carry.key)
        buffer = rb.add(carry.buffer, transition)

        def one_update(state: TrainState, k: jax.Array):
            return update(state, rb.sample(buffer, k, config.batch_size))

        train_state, metrics = jax.lax.scan(
            one_update, carry.train_state, jax.random.split(update_key, updates_per_call))
        sums = {name: carry.metric_sums[name] + jnp.sum(metrics[name]) for name in METRIC_NAMES}
        carry = carry._replace(
            train_state=train_state, buffer=buffer, key=key,
            noise_state=noise.reset(carry.noise_state, done),
            metric_sums=sums, metric_count=carry.metric_count + updates_per_call,
        )
        return act(carry, obs)

    def act_fn(carry: Carry, obs: Array) -> tuple[Carry, Array]:
        trace_counts["act"] += 1
        return act(carry, obs)

    def add_fn(carry: Carry, transitions: Transition) -> Carry:
        trace_counts["add"] += 1
        return carry._replace(buffer=rb.add(carry.buffer, transitions))

    def policy_fn(params: Any, obs: Array) -> Array:
        trace_counts["policy"] += 1
        return networks.actor_apply(params, obs)

    step_c = jax.jit(step_fn, donate_argnums=0)
    act_c = jax.jit(act_fn, donate_argnums=0)
    add_c = jax.jit(add_fn, donate_argnums=0)
    policy_c = jax.jit(policy_fn)

    envs = _vector_env(factory, num_envs)
    rng = np.random.default_rng(config.seed)
    evaluations: list[dict[str, Any]] = []
    env_steps = 0
    eval_seed = config.seed + EVAL_SEED_OFFSET
    episode_returns: list[float] = []
    running_return = np.zeros(num_envs, np.float64)

    def env_step(action: np.ndarray) -> tuple[np.ndarray, Transition, np.ndarray]:
        nonlocal obs, env_steps
        next_obs, reward, terminated, truncated, info = envs.step(action)
        done = np.logical_or(terminated, truncated)
        transition = Transition(
            obs=obs, action=np.asarray(action, np.float32),
            reward=np.asarray(reward, np.float32),
            terminated=np.asarray(terminated, np.float32),
            next_obs=real_next_obs(next_obs, done, info),
        )
        running_return[:] += reward
        for i in np.flatnonzero(done):
            episode_returns.append(float(running_return[i]))
            running_return[i] = 0.0
        obs = np.asarray(next_obs, np.float32)
        env_steps += num_envs
        return obs, transition, done

    def maybe_evaluate(prev_steps: int, final: bool = False) -> None:
        nonlocal carry
        due = config.eval_every > 0 and env_steps // config.eval_every > prev_steps // config.eval_every
        if not (due or final):
            return
        if final and evaluations and evaluations[-1]["env_steps"] == env_steps:
            return
        returns = evaluate_policy(policy_c, carry.train_state.actor_params, factory,
                                  config.eval_episodes, eval_seed)
        count = int(carry.metric_count)
        record: dict[str, Any] = {
            "env_steps": env_steps,
            "updates": int(carry.train_state.step),
            "eval_return_mean": float(np.mean(returns)),
            "eval_return_std": float(np.std(returns)),
            "eval_returns": [float(r) for r in returns],
            "train_episode_return_mean": (float(np.mean(episode_returns[-10:]))
                                          if episode_returns else None),
            "wall_time_s": time.perf_counter() - t_start,
        }
        for name in METRIC_NAMES:
            record[name] = float(carry.metric_sums[name]) / count if count else None
        carry = carry._replace(
            metric_sums={name: jnp.zeros((), jnp.float32) for name in METRIC_NAMES},
            metric_count=jnp.zeros((), jnp.int32),
        )
        evaluations.append(record)
        if on_evaluation is not None:
            on_evaluation(record)
        if log is not None:
            q = f"{record['q_mean']:.1f}" if record["q_mean"] is not None else "-"
            log(f"step {env_steps:>8d}  eval return {record['eval_return_mean']:9.2f} "
                f"+- {record['eval_return_std']:7.2f}  q_mean {q}  "
                f"{env_steps / record['wall_time_s']:7.0f} steps/s")

    try:
        obs, _ = envs.reset(seed=config.seed)
        obs = np.asarray(obs, np.float32)
        # Warm-up: uniform random actions, its own loop, one bulk add at the end.
        warm: list[Transition] = []
        for _ in range(config.warmup_vector_steps):
            prev = env_steps
            action = rng.uniform(spec.action_low, spec.action_high,
                                 size=(num_envs, action_dim)).astype(np.float32)
            obs, transition, done = env_step(action)
            warm.append(transition)
            maybe_evaluate(prev)
        if warm:
            carry = add_c(carry, jax.tree.map(lambda *xs: np.concatenate(xs), *warm))
        carry, action = act_c(carry, obs)
        for _ in range(max(0, config.vector_steps - config.warmup_vector_steps)):
            prev = env_steps
            obs, transition, done = env_step(np.asarray(action))
            carry, action = step_c(carry, transition, done, obs)
            maybe_evaluate(prev)
        maybe_evaluate(env_steps, final=True)
    finally:
        envs.close()

    wall = time.perf_counter() - t_start
    final = evaluations[-1]
    summary = {
        "env_id": env_id,
        "seed": config.seed,
        "total_steps": env_steps,
        "updates": int(carry.train_state.step),
        "final_eval_return_mean": final["eval_return_mean"],
        "final_eval_return_std": final["eval_return_std"],
        "eval_episodes": config.eval_episodes,
        "wall_time_s": wall,
        "steps_per_second": env_steps / wall,
    }
    return TrainResult(carry.train_state, carry.buffer, evaluations, summary,
                       dict(trace_counts), networks)

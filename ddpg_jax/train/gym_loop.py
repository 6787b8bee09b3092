"""Training on gymnasium environments: a thin host loop around one compiled step.

Per environment step the host does only what must happen on the host (step
the gymnasium envs) and makes one call into a compiled function that adds the
previous transition to the replay buffer, runs the gradient updates, and
returns the next action. The buffer, the train state and the noise state stay
on the device and are donated, so nothing but observations, actions, rewards
and flags crosses between host and device.

Run management (see :mod:`ddpg_jax.run`): with a ``run_dir`` the loop writes
checkpoints (:mod:`ddpg_jax.checkpoint`) every ``checkpoint_every`` env steps
and at the end, and ``resume_from`` continues a run from one. A checkpoint
holds the device carry (train state, buffer, noise state, key, metric sums),
the pending action and observation, the NumPy generator of the warm-up
actions and the state of every gymnasium sub-env (:mod:`ddpg_jax.gym_state`),
so on envs whose state can be captured (gymnasium's classic-control envs) a
resumed run is bit-identical to an uninterrupted one on the same machine.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax import buffer as rb
from ddpg_jax import gym_state
from ddpg_jax.checkpoint import (Checkpoint, CheckpointError, CheckpointManager, checkpoint_dir,
                                 load_item, open_checkpoint, step_dir_name, trim_rows)
from ddpg_jax.config import ConfigError, DDPGConfig
from ddpg_jax.envcheck import EnvFactory, EnvSpec, check_env, env_factory
from ddpg_jax.networks import Networks, make_networks
from ddpg_jax.noise import NoiseState, make_noise
from ddpg_jax.policy import make_explore
from ddpg_jax.run import (NonFiniteError, RunOptions, check_host_transition, check_resume_config,
                          crossed, guard_nonfinite, no_nonfinite, raise_if_nonfinite)
from ddpg_jax.types import Array, TrainState, Transition
from ddpg_jax.update import init_train_state, make_update, normalize_obs, observe

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
    env_steps: Array  # int32 []: transitions added to the buffer (env steps done)
    nonfinite: Array  # int32 [2]: (env step, code) of the first non-finite quantity, or (-1, 0)


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
      interrupted: True when ``should_stop`` ended the run early (a checkpoint
        was written first if there is a run directory).
      checkpoint: the last checkpoint written (or resumed from), if any.
    """

    train_state: TrainState
    buffer: rb.BufferState
    evaluations: list[dict[str, Any]]
    summary: dict[str, Any]
    trace_counts: dict[str, int]
    networks: Networks
    interrupted: bool = False
    checkpoint: Path | None = None


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
    policy: Any,
    factory: EnvFactory,
    episodes: int,
    seed: int,
) -> np.ndarray:
    """Runs ``episodes`` deterministic episodes (one per sub-env) and returns their returns.

    Args:
      act: ``act(policy, obs[episodes, obs_dim]) -> actions``.
      policy: what ``act`` acts with (actor parameters, or the whole TrainState
        when observations are normalised).
      factory: makes one env.
      episodes: number of episodes, run side by side.
      seed: seed of the first env (``seed + i`` for the others).

    The envs are reset with the same seeds at every call, so successive
    evaluations of a run face the same initial states.
    """
    envs = _vector_env(factory, episodes)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes, np.float64)
        running = np.ones(episodes, bool)
        while running.any():
            action = np.asarray(act(policy, np.asarray(obs, np.float32)))
            obs, reward, terminated, truncated, _ = envs.step(action)
            returns += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()


@dataclasses.dataclass
class _Host:
    """Host-side state of the loop that a checkpoint must carry besides the arrays."""

    env_steps: int = 0
    phase: str = "warmup"  # "warmup" (random actions) or "learn"
    warm_until: int = 0  # env steps at which the (current) warm-up ends
    running_return: list[float] = dataclasses.field(default_factory=list)  # per sub-env
    recent_returns: list[float] = dataclasses.field(default_factory=list)  # last finished episodes
    evaluations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    eval_sums: dict[str, float] = dataclasses.field(default_factory=dict)  # since the last eval
    eval_count: int = 0
    wall_time_s: float = 0.0  # of the earlier sessions of this run

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "_Host":
        return cls(**d)


def _checkpoint_config(checkpoint: Checkpoint) -> DDPGConfig:
    try:
        return DDPGConfig.from_dict(checkpoint.meta["config"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"checkpoint {checkpoint.path} has an unreadable config ({e}).") from None


def train(
    config: DDPGConfig,
    env: str | EnvFactory,
    *,
    env_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
    run_dir: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    resume_from: str | os.PathLike | Checkpoint | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Trains DDPG on a gymnasium environment.

    Args:
      config: the run's settings; validated before anything else happens.
      env: a registered gymnasium id, or a zero-argument factory returning a
        ``gymnasium.Env`` (wrappers included).
      env_kwargs: keyword arguments for ``gymnasium.make`` when ``env`` is an id.
      log: receives one progress line per evaluation; ``None`` for silence.
      on_evaluation: called with each evaluation record as it is made.
      run_dir: directory that receives ``checkpoints/``; ``None`` writes none.
      options: checkpoint cadence, retention and whether the buffer is saved.
      resume_from: a checkpoint (or its directory) to continue from. Its config
        must equal ``config`` except for ``total_steps``, which may grow.
      should_stop: polled after every environment step; once it returns True
        the loop writes a checkpoint (with a ``run_dir``) and returns with
        ``interrupted=True``.
      on_chunk: called with a training-metrics record at every evaluation and
        checkpoint point (losses, Q values, steps per second of the chunk).
      on_progress: called with the env steps done after every step.

    Returns:
      A :class:`TrainResult`; ``summary`` has ``env_id, seed, total_steps,
      final_eval_return_mean, final_eval_return_std, eval_episodes,
      wall_time_s, steps_per_second``.

    Raises:
      ConfigError: for invalid settings, or a config that differs from the
        resumed checkpoint's.
      EnvSpecError: for unknown ids or unsupported spaces.
      CheckpointError: for a corrupted, foreign or incompatible checkpoint.
      NonFiniteError: when a reward, observation, loss, Q value or parameter
        is NaN or infinite; nothing is checkpointed after that point.
    """
    config.validate()
    options = (options or RunOptions()).validate()
    if isinstance(env, str):
        env_id = env
        factory = env_factory(env, **(env_kwargs or {}))
    else:
        env_id = getattr(env, "__name__", type(env).__name__)
        factory = env
    spec = check_env(factory, repr(env_id))
    checkpoint = None
    if resume_from is not None:
        checkpoint = (resume_from if isinstance(resume_from, Checkpoint)
                      else open_checkpoint(resume_from))
        if checkpoint.meta.get("backend") != "gymnasium":
            raise CheckpointError(f"checkpoint {checkpoint.path} was written by the "
                                  f"{checkpoint.meta.get('backend')!r} backend, not gymnasium.")
        if isinstance(env, str) and checkpoint.meta.get("env_id") != env_id:
            raise CheckpointError(f"checkpoint {checkpoint.path} is of env "
                                  f"{checkpoint.meta.get('env_id')!r}, not {env_id!r}.")
        check_resume_config(_checkpoint_config(checkpoint), config, checkpoint.step)
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

    def zero_sums() -> dict[str, Array]:
        return {name: jnp.zeros((), jnp.float32) for name in METRIC_NAMES}

    carry = Carry(
        train_state=state,
        buffer=rb.init(example, config.buffer_size),
        noise_state=noise.init(num_envs, action_dim),
        key=key,
        metric_sums=zero_sums(),
        metric_count=jnp.zeros((), jnp.int32),
        env_steps=jnp.zeros((), jnp.int32),
        nonfinite=no_nonfinite(),
    )

    def act(carry: Carry, obs: Array) -> tuple[Carry, Array]:
        key, act_key = jax.random.split(carry.key)
        ts = carry.train_state
        action, noise_state = explore(ts.actor_params, carry.noise_state, act_key,
                                      normalize_obs(ts, obs, config), ts.hparams.noise_scale)
        return carry._replace(noise_state=noise_state, key=key), action

    def step_fn(carry: Carry, transition: Transition, done: Array,
                obs: Array) -> tuple[Carry, Array]:
        trace_counts["step"] += 1
        key, update_key = jax.random.split(carry.key)
        buffer = rb.add(carry.buffer, transition)
        train_state = observe(carry.train_state, transition.obs, config)
        batches = rb.sample_batches(buffer, update_key, config.batch_size, updates_per_call)
        train_state, metrics = jax.lax.scan(update, train_state, batches)
        sums = {name: carry.metric_sums[name] + jnp.sum(metrics[name]) for name in METRIC_NAMES}
        env_steps = carry.env_steps + num_envs
        carry = carry._replace(
            train_state=train_state, buffer=buffer, key=key,
            noise_state=noise.reset(carry.noise_state, done),
            metric_sums=sums, metric_count=carry.metric_count + updates_per_call,
            env_steps=env_steps,
            nonfinite=guard_nonfinite(carry.nonfinite, env_steps, metrics, train_state),
        )
        return act(carry, obs)

    def act_fn(carry: Carry, obs: Array) -> tuple[Carry, Array]:
        trace_counts["act"] += 1
        return act(carry, obs)

    def add_fn(carry: Carry, transitions: Transition) -> Carry:
        trace_counts["add"] += 1
        rows = jax.tree.leaves(transitions)[0].shape[0]
        return carry._replace(buffer=rb.add(carry.buffer, transitions),
                              train_state=observe(carry.train_state, transitions.obs, config),
                              env_steps=carry.env_steps + rows)

    def policy_fn(train_state: TrainState, obs: Array) -> Array:
        trace_counts["policy"] += 1
        return networks.actor_apply(train_state.actor_params,
                                    normalize_obs(train_state, obs, config))

    step_c = jax.jit(step_fn, donate_argnums=0)
    act_c = jax.jit(act_fn, donate_argnums=0)
    add_c = jax.jit(add_fn, donate_argnums=0)
    policy_c = jax.jit(policy_fn)

    envs = _vector_env(factory, num_envs)
    rng = np.random.default_rng(config.seed)
    eval_seed = config.seed + EVAL_SEED_OFFSET
    total = config.vector_steps * num_envs
    warm_steps = config.warmup_vector_steps * num_envs
    ckpt_every = options.checkpoint_interval(config)
    manager = (CheckpointManager(checkpoint_dir(run_dir), options.keep_checkpoints)
               if run_dir is not None else None)
    host = _Host(warm_until=warm_steps, running_return=[0.0] * num_envs)
    # Mutable loop state shared by the helpers below.
    obs = np.zeros((num_envs, spec.obs_dim), np.float32)
    action = np.zeros((num_envs, action_dim), np.float32)  # next action (learning phase)
    warm: list[Transition] = []  # warm-up transitions not yet added to the buffer
    last_checkpoint: Path | None = None
    last_log = (0, time.perf_counter())  # (env steps, time) of the last chunk record

    def wall_time() -> float:
        return host.wall_time_s + time.perf_counter() - t_start

    def check_finite() -> None:
        raise_if_nonfinite(carry.nonfinite, lambda s: f"env step {s}", lambda s: s,
                           str(last_checkpoint) if last_checkpoint else None)

    def env_step(action: np.ndarray) -> tuple[np.ndarray, Transition, np.ndarray]:
        nonlocal obs
        next_obs, reward, terminated, truncated, info = envs.step(action)
        done = np.logical_or(terminated, truncated)
        real_next = real_next_obs(next_obs, done, info)
        try:
            check_host_transition(reward, real_next, host.env_steps + num_envs,
                                  str(last_checkpoint) if last_checkpoint else None)
        except NonFiniteError:
            check_finite()  # a NaN that started on the device (e.g. in the actor) comes first
            raise
        transition = Transition(
            obs=obs, action=np.asarray(action, np.float32),
            reward=np.asarray(reward, np.float32),
            terminated=np.asarray(terminated, np.float32),
            next_obs=real_next,
        )
        for i in range(num_envs):
            host.running_return[i] += float(reward[i])
        for i in np.flatnonzero(done):
            host.recent_returns = (host.recent_returns + [host.running_return[i]])[-10:]
            host.running_return[i] = 0.0
        obs = np.asarray(next_obs, np.float32)
        host.env_steps += num_envs
        return obs, transition, done

    def flush_warm() -> None:
        nonlocal carry, warm
        if warm:
            carry = add_c(carry, jax.tree.map(lambda *xs: np.concatenate(xs), *warm))
            warm = []

    def read_metrics() -> tuple[dict[str, float], int]:
        """Takes the device metric sums since the last read and zeroes them."""
        nonlocal carry
        count = int(carry.metric_count)
        sums = {name: float(carry.metric_sums[name]) for name in METRIC_NAMES}
        carry = carry._replace(metric_sums=zero_sums(), metric_count=jnp.zeros((), jnp.int32))
        for name in METRIC_NAMES:
            host.eval_sums[name] = host.eval_sums.get(name, 0.0) + sums[name]
        host.eval_count += count
        return sums, count

    def chunk_record(sums: dict[str, float], count: int) -> None:
        nonlocal last_log
        now = time.perf_counter()
        steps, t = last_log
        record: dict[str, Any] = {
            "env_steps": host.env_steps,
            "updates": int(carry.train_state.step),
            **{name: (sums[name] / count if count else None) for name in METRIC_NAMES},
            "train_episode_return_mean": (float(np.mean(host.recent_returns))
                                          if host.recent_returns else None),
            "steps_per_second": (host.env_steps - steps) / max(now - t, 1e-9),
            "wall_time_s": wall_time(),
        }
        last_log = (host.env_steps, now)
        if on_chunk is not None:
            on_chunk(record)

    def evaluate() -> dict[str, Any]:
        returns = evaluate_policy(policy_c, carry.train_state, factory,
                                  config.eval_episodes, eval_seed)
        count = host.eval_count
        record: dict[str, Any] = {
            "env_steps": host.env_steps,
            "updates": int(carry.train_state.step),
            "eval_return_mean": float(np.mean(returns)),
            "eval_return_std": float(np.std(returns)),
            "eval_returns": [float(r) for r in returns],
            "train_episode_return_mean": (float(np.mean(host.recent_returns))
                                          if host.recent_returns else None),
            "wall_time_s": wall_time(),
        }
        for name in METRIC_NAMES:
            record[name] = host.eval_sums.get(name, 0.0) / count if count else None
        host.eval_sums, host.eval_count = {}, 0
        host.evaluations.append(record)
        if on_evaluation is not None:
            on_evaluation(record)
        if log is not None:
            q = f"{record['q_mean']:.1f}" if record["q_mean"] is not None else "-"
            log(f"step {host.env_steps:>8d}  eval return {record['eval_return_mean']:9.2f} "
                f"+- {record['eval_return_std']:7.2f}  q_mean {q}  "
                f"{host.env_steps / record['wall_time_s']:7.0f} steps/s")
        return record

    def save_checkpoint() -> None:
        nonlocal last_checkpoint
        if manager is None:
            return
        check_finite()  # a state with NaNs is never saved
        flush_warm()
        evals = host.evaluations
        evaluated_now = bool(evals) and evals[-1]["env_steps"] == host.env_steps
        items = {"state": {"carry": carry._replace(buffer=None), "obs": obs, "action": action}}
        if options.buffer_in_checkpoint:  # rows past the fill level are zeros: not saved
            items["buffer"] = carry.buffer.replace(
                packed=trim_rows(carry.buffer.packed, int(carry.buffer.size)))
        meta = {
            "backend": "gymnasium", "env_id": env_id, "config": config.to_dict(),
            "env_steps": host.env_steps, "updates": int(carry.train_state.step),
            "eval_return": evals[-1]["eval_return_mean"] if evaluated_now else None,
            "rng_state": rng.bit_generator.state,
            "envs": gym_state.snapshot_vector(envs),
            "host": {**host.to_json(), "wall_time_s": wall_time()},
        }
        last_checkpoint = manager.save(host.env_steps, items, meta)

    def saved_at(step: int) -> bool:
        return last_checkpoint is not None and last_checkpoint.name == step_dir_name(step)

    def at_log_point(prev: int, final: bool = False) -> None:
        """Evaluates, records and checkpoints when an interval boundary was crossed."""
        now = host.env_steps
        evaluated = bool(host.evaluations) and host.evaluations[-1]["env_steps"] == now
        eval_due = (crossed(prev, now, config.eval_every) or final) and not evaluated
        ckpt_due = final or (crossed(prev, now, ckpt_every) and host.phase == "learn")
        ckpt_due = ckpt_due and not saved_at(now)
        if not (eval_due or ckpt_due):
            return
        check_finite()
        if host.phase == "learn":
            sums, count = read_metrics()
            if now > last_log[0]:
                chunk_record(sums, count)
        if eval_due:
            evaluate()
        if ckpt_due:
            save_checkpoint()

    def restore(checkpoint: Checkpoint) -> bool:
        """Loads the checkpoint into the loop; returns whether a new action must be drawn."""
        nonlocal carry, obs, action, host
        meta = checkpoint.meta
        template = {"carry": carry._replace(buffer=None), "obs": obs, "action": action}
        loaded = load_item(checkpoint, "state", template)
        if "buffer" in meta["items"]:
            buffer = load_item(checkpoint, "buffer", carry.buffer, pad_axis=0)
        else:
            buffer = carry.buffer
        carry = jax.device_put(loaded["carry"]._replace(buffer=buffer))
        obs, action = np.array(loaded["obs"]), np.array(loaded["action"])
        try:
            host = _Host.from_json(meta["host"])
            rng.bit_generator.state = meta["rng_state"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {checkpoint.path} has unreadable loop state "
                                  f"({e}).") from None
        redraw = False
        if "buffer" not in meta["items"]:
            # Without the replay buffer: refill it with a new warm-up before learning.
            carry = carry._replace(env_steps=jnp.asarray(host.env_steps, jnp.int32))
            host.phase, host.warm_until = "warmup", host.env_steps + warm_steps
        exact = gym_state.restore_vector(envs, meta.get("envs", []))
        for i in np.flatnonzero(~np.asarray(exact, bool)):
            # This env's state cannot be restored: start a new episode in it.
            o, _ = envs.envs[i].reset(seed=config.seed + 7919 * (checkpoint.step + 1) + int(i))
            obs[i] = np.asarray(o, np.float32)
            host.running_return[i] = 0.0
            redraw = True
        return redraw and host.phase == "learn"

    interrupted = False
    try:
        first_obs, _ = envs.reset(seed=config.seed)
        obs = np.asarray(first_obs, np.float32)
        redraw = False
        if checkpoint is not None:
            redraw = restore(checkpoint)
            last_checkpoint = checkpoint.path
            if manager is not None:
                manager.supersede_after(checkpoint.step)
            last_log = (host.env_steps, time.perf_counter())
        stop = should_stop or (lambda: False)
        # Warm-up: uniform random actions, its own loop, one bulk add at the end.
        while host.phase == "warmup" and host.env_steps < min(host.warm_until, total):
            prev = host.env_steps
            action_w = rng.uniform(spec.action_low, spec.action_high,
                                   size=(num_envs, action_dim)).astype(np.float32)
            obs, transition, done = env_step(action_w)
            warm.append(transition)
            at_log_point(prev)
            if on_progress is not None:
                on_progress(host.env_steps)
            if stop():
                interrupted = True
                if not saved_at(host.env_steps):
                    save_checkpoint()
                break
        if not interrupted:
            flush_warm()
            if host.phase == "warmup" or redraw:
                carry, action = act_c(carry, obs)
                host.phase = "learn"
            while host.env_steps < total:
                prev = host.env_steps
                obs, transition, done = env_step(np.asarray(action))
                carry, action = step_c(carry, transition, done, obs)
                at_log_point(prev)
                if on_progress is not None:
                    on_progress(host.env_steps)
                if stop() and host.env_steps < total:
                    interrupted = True
                    if not saved_at(host.env_steps):
                        save_checkpoint()
                    break
        if not interrupted:
            at_log_point(host.env_steps, final=True)
    finally:
        envs.close()

    wall = wall_time()
    evaluations = host.evaluations
    final = evaluations[-1] if evaluations else {"eval_return_mean": None,
                                                  "eval_return_std": None}
    summary = {
        "env_id": env_id,
        "seed": config.seed,
        "total_steps": host.env_steps,
        "updates": int(carry.train_state.step),
        "final_eval_return_mean": final["eval_return_mean"],
        "final_eval_return_std": final["eval_return_std"],
        "eval_episodes": config.eval_episodes,
        "wall_time_s": wall,
        "steps_per_second": host.env_steps / wall,
    }
    return TrainResult(carry.train_state, carry.buffer, evaluations, summary,
                       dict(trace_counts), networks, interrupted, last_checkpoint)

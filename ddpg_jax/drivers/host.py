"""The gymnasium driver: host envs, one compiled call per vector step.

Per vector step the host does only what must happen on the host (step the
gymnasium envs) and makes one call into a compiled function of the shared
learner that adds the previous transitions to the replay buffer, runs the
gradient updates and returns the next action. The device state
(:class:`HostCarry`: learner state, key, metric sums) is donated to every
call, so the buffer is updated in place and only observations, actions,
rewards and flags cross between host and device.

The loop's host state is explicit (:class:`HostState`): each phase function
takes it and returns it. Uniform random warm-up actions run as their own loop
and are added to the buffer in one call when it ends (with
``update_schedule="episode"``, one call per vector step, which runs the burst
of gradient steps at each warm-up episode end, as the TD3 authors' 2018 loop).

With a ``run_dir`` checkpoints hold the device carry, the pending action and
observation, the NumPy generator of the warm-up actions and the state of
every gymnasium sub-env (:mod:`ddpg_jax.envs.gymnasium_state`), so on envs whose state
can be captured a resumed run is bit-identical to an uninterrupted one on the
same machine.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax.agent.learner import COUNT_NAMES, AgentState, Learner, make_learner
from ddpg_jax.agent.nonfinite import NonFiniteError, check_host_transition
from ddpg_jax.agent.state import METRIC_NAMES, Array, Transition
from ddpg_jax.checkpoints.format import Checkpoint, CheckpointError
from ddpg_jax.checkpoints.policy_record import describe_policy
from ddpg_jax.checkpoints.resume import open_for_resume
from ddpg_jax.config import DDPGConfig
from ddpg_jax.drivers.result import TrainResult, summarize
from ddpg_jax.drivers.run_options import RunOptions
from ddpg_jax.drivers.schedule import Schedule, make_schedule
from ddpg_jax.drivers.session import (
    Callbacks,
    Session,
    checkpoint_items,
    load_checkpoint_items,
)
from ddpg_jax.envs import gymnasium_state as gym_state
from ddpg_jax.envs.gymnasium_check import EnvFactory, EnvSpec, check_env, env_factory
from ddpg_jax.envs.gymnasium_episodes import (
    EVAL_SEED_OFFSET,
    evaluate_policy,
    vector_env,
)


class HostCarry(NamedTuple):
    """Device-resident state of the gymnasium driver, donated to every compiled call."""

    agent: AgentState
    key: jax.Array
    sums: dict[str, Array]  # float32 []: metric sums and counts since the last read
    env_steps: Array  # int32 []: transitions added to the buffer (env steps done)


@dataclasses.dataclass
class HostState:
    """Host-side state of the loop; checkpoints carry it besides the arrays."""

    env_steps: int
    phase: str  # "warmup" (random actions) or "learn"
    warm_until: int  # env steps at which the current warm-up ends
    obs: np.ndarray  # [num_envs, obs_dim]: the envs' current observations
    action: np.ndarray  # [num_envs, action_dim]: the next action (learn phase)
    running_return: list[float]  # per sub-env
    last_returns: list[float]  # per sub-env: return of its last finished episode (NaN before one)
    warm: list[tuple[Transition, np.ndarray]]  # warm-up transitions (and done) not yet added

    def to_json(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps, "phase": self.phase, "warm_until": self.warm_until,
                "running_return": self.running_return,
                "last_returns": [None if np.isnan(x) else x for x in self.last_returns]}


class HostFns(NamedTuple):
    """The compiled pure functions of the gymnasium driver."""

    act: Callable[[HostCarry, Array], tuple[HostCarry, Array]]
    step: Callable[[HostCarry, Transition, Array, Array], tuple[HostCarry, Array]]
    add: Callable[[HostCarry, Transition], HostCarry]
    policy: Callable[[Any, Array], Array]
    # (carry, transition, done) -> carry: one warm-up vector step through ``learn`` (the
    # episode schedule's bursts at warm-up episode ends)
    warm_step: Callable[[HostCarry, Transition, Array], HostCarry]


def zero_sums() -> dict[str, Array]:
    return {name: jnp.zeros((), jnp.float32) for name in METRIC_NAMES + COUNT_NAMES}


def make_host_fns(learner: Learner, num_envs: int) -> HostFns:
    """Compiles the driver's calls into the learner (carry donated)."""

    def act(carry: HostCarry, obs: Array) -> tuple[HostCarry, Array]:
        key, act_key = jax.random.split(carry.key)
        agent, action = learner.explore(carry.agent, act_key, obs)
        return carry._replace(agent=agent, key=key), action

    def warm_step(carry: HostCarry, transition: Transition, done: Array) -> HostCarry:
        key, update_key = jax.random.split(carry.key)
        env_steps = carry.env_steps + num_envs
        agent, sums = learner.learn(carry.agent, transition, done, update_key, env_steps)
        return HostCarry(agent, key, {k: carry.sums[k] + sums[k] for k in carry.sums},
                         env_steps)

    def step(carry: HostCarry, transition: Transition, done: Array,
             obs: Array) -> tuple[HostCarry, Array]:
        return act(warm_step(carry, transition, done), obs)

    def add(carry: HostCarry, transitions: Transition, done: Array) -> HostCarry:
        rows = done.shape[0]
        return carry._replace(agent=learner.observe(carry.agent, transitions, done),
                              env_steps=carry.env_steps + rows)

    return HostFns(jax.jit(act, donate_argnums=0), jax.jit(step, donate_argnums=0),
                   jax.jit(add, donate_argnums=0), jax.jit(learner.policy),
                   jax.jit(warm_step, donate_argnums=0))


def compile_ahead(fns: HostFns, carry: Any, spec: EnvSpec, config: DDPGConfig,
                  warm_rows: int) -> list[concurrent.futures.Future]:
    """Compiles the driver's functions on background threads, so compiling overlaps the warm-up.

    XLA releases the GIL while it compiles, so on two or more cores the learning
    step, the acting, the warm-up add and the evaluation policy compile side by
    side while the main thread initialises and steps the envs. Each compile
    lands in the function's own cache; the loop waits for them before the first
    call (:func:`_warmup`), so nothing compiles twice.

    Args:
      carry: the device carry or its shapes (``jax.eval_shape``).
      warm_rows: transitions the warm-up adds in one call.
    """
    n, obs_dim, action_dim = config.num_envs, spec.obs_dim, spec.action_low.shape[0]

    def f32(*shape: int) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, jnp.float32)

    def rows(k: int) -> Transition:
        return Transition(f32(k, obs_dim), f32(k, action_dim), f32(k), f32(k), f32(k, obs_dim))

    done = jax.ShapeDtypeStruct((n,), jnp.bool_)
    jobs = [(fns.step, (carry, rows(n), done, f32(n, obs_dim))),
            (fns.act, (carry, f32(n, obs_dim))),
            (fns.policy, (carry.agent.train_state, f32(config.eval_episodes, obs_dim)))]
    if warm_rows > 0:
        jobs.append((fns.add, (carry, rows(warm_rows),
                               jax.ShapeDtypeStruct((warm_rows,), jnp.bool_))))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="compile")
    futures = [pool.submit(lambda f=f, a=a: f.lower(*a).compile()) for f, a in jobs]
    pool.shutdown(wait=False)
    return futures


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


@dataclasses.dataclass
class _Run:
    """What the phase functions share that does not change during the loop."""

    config: DDPGConfig
    spec: EnvSpec
    factory: EnvFactory
    envs: gym.vector.VectorEnv
    rng: np.random.Generator  # warm-up actions
    fns: HostFns
    schedule: Schedule
    session: Session
    compiling: list[concurrent.futures.Future]  # background compiles (see compile_ahead)

    def eval_prepare(self, env: gym.Env) -> None:
        """Gives an evaluation env the training normalisation statistics, frozen.

        The statistics of ``NormalizeObservation`` / ``NormalizeReward`` wrappers in the
        user's factory come from training sub-env 0 (see :func:`gym_state.copy_statistics`);
        a fresh evaluation env would otherwise normalise with statistics of its own.
        """
        gym_state.copy_statistics(self.envs.envs[0], env, freeze=True)


def _env_step(run: _Run, host: HostState, carry: HostCarry,
              action: np.ndarray) -> tuple[Transition, np.ndarray]:
    """Steps the gymnasium envs; updates ``host`` in place and returns the transitions."""
    n = run.config.num_envs
    next_obs, reward, terminated, truncated, info = run.envs.step(action)
    done = np.logical_or(terminated, truncated)
    real_next = real_next_obs(next_obs, done, info)
    try:
        check_host_transition(reward, real_next, host.env_steps + n,
                              str(run.session.last_checkpoint or "") or None)
    except NonFiniteError:
        run.session.check_finite(carry.agent.nonfinite)  # a NaN from the device comes first
        raise
    transition = Transition(obs=host.obs, action=np.asarray(action, np.float32),
                            reward=np.asarray(reward, np.float32),
                            terminated=np.asarray(terminated, np.float32), next_obs=real_next)
    for i in range(n):
        host.running_return[i] += float(reward[i])
    for i in np.flatnonzero(done):
        host.last_returns[i] = host.running_return[i]
        host.running_return[i] = 0.0
    host.obs = np.asarray(next_obs, np.float32)
    host.env_steps += n
    return transition, done


def _flush_warm(run: _Run, host: HostState, carry: HostCarry) -> HostCarry:
    if host.warm:
        transitions, done = jax.tree.map(lambda *xs: np.concatenate(xs), *host.warm)
        carry = run.fns.add(carry, transitions, done)
        host.warm = []
    return carry


def _save(run: _Run, host: HostState, carry: HostCarry) -> HostCarry:
    """Writes a checkpoint of the loop (after adding pending warm-up transitions)."""
    session = run.session
    if session.manager is None:
        return carry
    session.check_finite(carry.agent.nonfinite)  # a state with NaNs is never saved
    carry = _flush_warm(run, host, carry)
    agent = carry.agent
    items = checkpoint_items({"carry": carry._replace(agent=agent._replace(buffer=None)),
                              "obs": host.obs, "action": host.action}, agent.buffer,
                             session.buffer_in_checkpoint, seed_axis=False)
    meta = {"updates": int(agent.train_state.step), "rng_state": run.rng.bit_generator.state,
            "envs": gym_state.snapshot_vector(run.envs)}
    session.save(host.env_steps, items, meta, host=host.to_json(),
                 obs_stats=agent.train_state.obs_stats)
    return carry


def _at_point(run: _Run, host: HostState, carry: HostCarry) -> HostCarry:
    """Records, evaluates and checkpoints when the schedule says so (learn phase)."""
    v = host.env_steps // run.config.num_envs
    evaluate, save = run.schedule.evaluates_at(v), run.schedule.checkpoints_at(v)
    if not (evaluate or save):
        return carry
    run.session.check_finite(carry.agent.nonfinite)
    sums = jax.device_get(carry.sums)
    carry = carry._replace(sums=zero_sums())
    updates = int(carry.agent.train_state.step)
    run.session.chunk(host.env_steps, updates, sums, np.array(host.last_returns))
    if evaluate and not run.session.evaluated_at(host.env_steps):
        returns = evaluate_policy(run.fns.policy, carry.agent.train_state, run.factory,
                                  run.config.eval_episodes, run.config.seed + EVAL_SEED_OFFSET,
                                  prepare=run.eval_prepare)
        run.session.evaluation(host.env_steps, updates, returns, np.array(host.last_returns))
    if save and not run.session.saved_at(host.env_steps):
        carry = _save(run, host, carry)
    return carry


def _stop(run: _Run, host: HostState, carry: HostCarry) -> HostCarry:
    """Saves (unless just saved) before an early stop."""
    if not run.session.saved_at(host.env_steps):
        carry = _save(run, host, carry)
    return carry


def _warmup(run: _Run, host: HostState, carry: HostCarry) -> tuple[HostCarry, bool]:
    """Uniform random actions up to the end of the warm-up; returns (carry, stopped)."""
    n, spec = run.config.num_envs, run.spec
    total = run.schedule.total * n
    episodic = run.config.update_schedule == "episode"
    while host.phase == "warmup" and host.env_steps < min(host.warm_until, total):
        action = run.rng.uniform(spec.action_low, spec.action_high,
                                 size=(n, spec.action_low.shape[0])).astype(np.float32)
        if episodic:  # the 2018 loop: every episode end runs its burst, in the warm-up too
            carry = run.fns.warm_step(carry, *_env_step(run, host, carry, action))
        else:
            host.warm.append(_env_step(run, host, carry, action))
        run.session.progress(host.env_steps)
        if run.session.stop_requested():
            return _stop(run, host, carry), True
    for future in run.compiling:  # the learning phase starts: its functions must be ready
        future.result()
    carry = _flush_warm(run, host, carry)
    if host.phase == "warmup":
        carry, action = run.fns.act(carry, host.obs)
        host.action, host.phase = np.asarray(action), "learn"
    return carry, False


def _learn(run: _Run, host: HostState, carry: HostCarry) -> tuple[HostCarry, bool]:
    """The learning loop to the end of the run; returns (carry, stopped)."""
    total = run.schedule.total * run.config.num_envs
    while host.env_steps < total:
        transition, done = _env_step(run, host, carry, host.action)
        carry, action = run.fns.step(carry, transition, done, host.obs)
        host.action = np.asarray(action)
        carry = _at_point(run, host, carry)
        run.session.progress(host.env_steps)
        if host.env_steps < total and run.session.stop_requested():
            return _stop(run, host, carry), True
    return carry, False


def _last_returns(saved: dict[str, Any], num_envs: int) -> list[float]:
    """Each sub-env's last finished return from a checkpoint's loop state (NaN where none).

    Checkpoints written before this field (they kept the last 10 returns of
    all envs together) give NaN: the figure restarts with the next episode ends.
    """
    values = saved.get("last_returns") or [None] * num_envs
    return [np.nan if x is None else float(x) for x in values]


def _restore(run: _Run, checkpoint: Checkpoint, host: HostState,
             carry: HostCarry) -> tuple[HostState, HostCarry]:
    """The loop's state from a checkpoint.

    Sub-envs that cannot be restored exactly (see :mod:`ddpg_jax.envs.gymnasium_state`) start new
    episodes, and one :class:`~ddpg_jax.envs.gymnasium_state.InexactResumeWarning` says which and why.
    """
    meta, config = checkpoint.meta, run.config
    agent = carry.agent
    template = {"carry": carry._replace(agent=agent._replace(buffer=None)), "obs": host.obs,
                "action": host.action}
    loaded, buffer = load_checkpoint_items(checkpoint, template, agent.buffer, seed_axis=False)
    has_buffer = buffer is not None
    buffer = buffer if has_buffer else agent.buffer
    loaded_carry = loaded["carry"]
    carry = jax.device_put(loaded_carry._replace(agent=loaded_carry.agent._replace(buffer=buffer)))
    try:
        saved = meta["host"]
        host = HostState(int(saved["env_steps"]), saved["phase"], int(saved["warm_until"]),
                         np.array(loaded["obs"]), np.array(loaded["action"]),
                         list(saved["running_return"]), _last_returns(saved, config.num_envs),
                         [])
        run.rng.bit_generator.state = meta["rng_state"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {checkpoint.path} has unreadable loop state "
                              f"({e}).") from None
    if not has_buffer:  # refill the buffer with a new warm-up before learning
        carry = carry._replace(env_steps=jnp.asarray(host.env_steps, jnp.int32))
        host.phase = "warmup"
        host.warm_until = host.env_steps + run.schedule.warmup * config.num_envs
    restored = gym_state.restore_envs(run.envs, meta.get("envs", []))
    message = gym_state.inexact_message(restored, f"checkpoint {checkpoint.path}")
    if message is not None:  # once per resume, for all sub-envs together
        warnings.warn(message, gym_state.InexactResumeWarning, stacklevel=5)
    redraw = False
    for i in np.flatnonzero(~np.asarray(restored.continued, bool)):
        o, _ = run.envs.envs[i].reset(seed=config.seed + 7919 * (checkpoint.step + 1) + int(i))
        host.obs[i] = np.asarray(o, np.float32)
        host.running_return[i] = 0.0
        redraw = True
    if redraw and host.phase == "learn":  # the pending action was for the old observation
        carry, action = run.fns.act(carry, host.obs)
        host.action = np.asarray(action)
    return host, carry


def _setup(env: str | EnvFactory, env_kwargs: dict[str, Any] | None
           ) -> tuple[str, EnvFactory, EnvSpec]:
    if isinstance(env, str):
        name, factory = env, env_factory(env, **(env_kwargs or {}))
    else:
        name, factory = getattr(env, "__name__", type(env).__name__), env
    return name, factory, check_env(factory, repr(name))


def train_host(
    config: DDPGConfig,
    env: str | EnvFactory,
    *,
    env_kwargs: dict[str, Any] | None = None,
    run_dir: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    resume_from: str | os.PathLike | Checkpoint | None = None,
    callbacks: Callbacks = Callbacks(),
    preset: str | None = None,
) -> TrainResult:
    """Trains on a gymnasium environment (an id, or a factory returning a ``gymnasium.Env``).

    See :func:`ddpg_jax.train` for the arguments. Raises ``ConfigError``,
    ``EnvSpecError`` or ``CheckpointError`` before any work for bad input,
    and ``NonFiniteError`` when a reward, observation, loss, Q value or
    parameter is NaN or infinite (nothing is checkpointed after that point).
    """
    config.validate()
    options = (options or RunOptions()).validate()
    env_id, factory, spec = _setup(env, env_kwargs)
    checkpoint = None
    if resume_from is not None:
        checkpoint = open_for_resume(resume_from, backend="gymnasium", config=config,
                                     env_id=env_id if isinstance(env, str) else None)
    schedule = make_schedule(config, options.checkpoint_interval(config))
    learner = make_learner(config, spec.obs_dim, spec.action_low, spec.action_high,
                           batched=False)
    n, action_dim = config.num_envs, spec.action_low.shape[0]
    key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    fns = make_host_fns(learner, n)
    carry_shapes = HostCarry(jax.eval_shape(learner.init, init_key), key, zero_sums(),
                             jnp.zeros((), jnp.int32))
    episodic = config.update_schedule == "episode"  # its warm-up goes through fns.warm_step
    compiling = compile_ahead(fns, carry_shapes, spec, config,
                              0 if checkpoint or episodic else schedule.warmup * n)
    carry = carry_shapes._replace(agent=jax.jit(learner.init)(init_key))
    session = Session(backend="gymnasium", env_id=env_id, config=config, options=options,
                      run_dir=run_dir, callbacks=callbacks, resumed=checkpoint,
                      start_steps=checkpoint.step if checkpoint else 0,
                      policy=describe_policy(learner.networks, seed_axis=False,
                                             train_state="carry/agent/train_state"),
                      preset=preset)
    run = _Run(config, spec, factory, vector_env(factory, n), np.random.default_rng(config.seed),
               fns, schedule, session, compiling)
    try:
        first_obs, _ = run.envs.reset(seed=config.seed)
        host = HostState(0, "warmup", schedule.warmup * n, np.asarray(first_obs, np.float32),
                         np.zeros((n, action_dim), np.float32), [0.0] * n, [np.nan] * n, [])
        if checkpoint is not None:
            host, carry = _restore(run, checkpoint, host, carry)
        carry, stopped = _warmup(run, host, carry)
        if not stopped:
            carry, stopped = _learn(run, host, carry)
    finally:
        run.envs.close()
    ts = carry.agent.train_state
    summary = summarize(session, host.env_steps, int(ts.step), compile_time_s=0.0,
                        run_time_s=session.wall_time(), steps_done=host.env_steps)
    return TrainResult(ts, carry.agent.buffer, session.evaluations, summary, learner.networks,
                       stopped, session.last_checkpoint, final_state=carry)

"""The learner: every piece of DDPG/TD3 that both training drivers share, built once.

:func:`make_learner` returns a :class:`Learner`, a record of pure functions in
the style of an optax transformation (built together, so they cannot drift
apart). The gymnasium driver (host envs, one compiled call per vector step)
and the whole-loop driver (JAX envs inside ``lax.scan``) both call it; a
driver decides *when* things happen, the learner decides *what* a step is:

* ``init``: train state, empty replay buffer, noise state, non-finite record;
* ``explore``: the policy's action plus exploration noise, clipped to the bounds;
* ``observe``: transitions into the buffer and the observation statistics;
* ``learn``: observe -> sample -> ``scan(update)`` -> noise reset -> non-finite guard;
* ``policy``: the deterministic action, observation normalisation inside;
* ``evaluate``: returns of a batch of deterministic episodes on a JAX env.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax.agent import buffer as rb
from ddpg_jax.agent import normalization, nstep
from ddpg_jax.agent.gradient_step import GradientStep, make_gradient_step, normalize_obs
from ddpg_jax.agent.networks import Networks, make_networks
from ddpg_jax.agent.noise import Noise, NoiseState, make_noise
from ddpg_jax.agent.nonfinite import guard_nonfinite, no_nonfinite
from ddpg_jax.agent.state import (
    METRIC_NAMES,
    Array,
    HParams,
    Params,
    PRNGKey,
    TrainState,
    Transition,
)
from ddpg_jax.config import DDPGConfig

#: Counters that :attr:`Learner.learn` reports beside the metric sums.
COUNT_NAMES = ("updates", "actor_updates")


class AgentState(NamedTuple):
    """What the learner changes, as one pytree (leading axes under vmap)."""

    train_state: TrainState
    buffer: rb.BufferState
    noise_state: NoiseState  # [num_envs, action_dim]
    nonfinite: Array  # int32 [2]: (env step, code) of the first non-finite quantity, or (-1, 0)
    # int32 scalar: gradient steps owed to the steps observed since the last ones ran
    # (``update_schedule="episode"``); None with the default per-step schedule.
    owed: Array | None = None


class Learner(NamedTuple):
    """The pure functions of one DDPG/TD3 agent (see the module docstring).

    Attributes:
      init: ``(key, hparams=None) -> AgentState``.
      explore: ``(agent, key, obs[num_envs, obs_dim]) -> (agent, action)``.
      observe: ``(agent, transitions, done) -> agent``: adds rows to the buffer
        and folds their observations into the running statistics (with
        ``obs_norm``). ``done`` (whether each step ended its episode) is stored
        for n-step returns and may be omitted when ``n_step == 1``. Rows come
        in vector steps: ``num_envs`` rows per step, in env order.
      learn: ``(agent, transition, done[num_envs], key, env_steps) -> (agent, sums)``:
        observes the vector step's transitions, runs ``config.updates_per_vector``
        gradient steps on sampled batches (n-step samples with ``n_step > 1``);
        with ``update_schedule="episode"`` it runs instead every gradient step
        owed so far (``updates_per_vector`` per vector step observed), one batch
        each, when any env's episode ends, and none otherwise (the TD3 authors'
        2018 loop: the drivers call it in the warm-up too, with random actions, so
        each warm-up episode's steps run at its end; the delay counts per burst);
        restarts the noise of finished episodes (and redraws their noise
        scales, with ``noise_scale_max > 0``) and records the first non-finite value.
        No key is used twice: ``key`` goes to sampling alone, or is split once
        into a sampling key and a scales key (see ``sample_rows``).
        ``sums`` holds the sum over those steps of each metric in
        :data:`~ddpg_jax.agent.state.METRIC_NAMES` and the counts in :data:`COUNT_NAMES`.
      policy: ``(train_state, obs) -> action``: deterministic, normalised inside.
      evaluate: ``(train_state, key, env, env_params, episodes) -> returns[episodes]``.
      random_action: ``(key, num_envs) -> action``: uniform in the bounds (warm-up).
      sample_rows: ``(agent, key, batches=updates_per_vector) -> rows [batches, batch_size]``:
        the rows a draw with ``key`` starts its samples at (uniform over the rows written).
        ``learn`` draws this way with its key, or with ``split(key)[0]`` when
        ``noise_scale_max > 0`` (``split(key)[1]`` draws the scales); the
        episode schedule's gradient step ``i`` draws one batch with ``fold_in(that key, i)``.
      sample_at: ``(agent, rows) -> batch``: the samples that start at ``rows``
        (n-step samples with ``n_step > 1``), leaves with ``rows``' shape in front.
        ``learn`` trains on ``sample_at(agent, sample_rows(agent, key))``, its
        vector step observed first.
      networks, noise, gradient_step: the pieces it is made of.
    """

    init: Callable[..., AgentState]
    explore: Callable[[AgentState, PRNGKey, Array], tuple[AgentState, Array]]
    observe: Callable[[AgentState, Transition], AgentState]
    learn: Callable[..., tuple[AgentState, dict[str, Array]]]
    policy: Callable[[TrainState, Array], Array]
    evaluate: Callable[..., Array]
    random_action: Callable[[PRNGKey, int], Array]
    sample_rows: Callable[..., Array]
    sample_at: Callable[[AgentState, Array], Transition | nstep.NStepTransition]
    networks: Networks
    noise: Noise
    gradient_step: GradientStep


def make_explore(
    networks: Networks, noise: Noise
) -> Callable[[Params, NoiseState, PRNGKey, Array, Array], tuple[Array, NoiseState]]:
    """Builds ``explore(actor_params, noise_state, key, obs, scale) -> (action, noise_state)``.

    The action is mu(s) plus noise in units of the action half-range,
    ``(high - low) / 2 * scale * n``, clipped to the env's own ``[low, high]``
    (not to [-1, 1]). ``obs`` is ``[num_envs, obs_dim]``, already normalised.
    """
    low = jnp.asarray(networks.action_low)
    high = jnp.asarray(networks.action_high)
    half_range = (high - low) / 2.0

    def explore(actor_params: Params, noise_state: NoiseState, key: PRNGKey, obs: Array,
                scale: Array) -> tuple[Array, NoiseState]:
        n, noise_state = noise.sample(noise_state, key, scale)
        action = networks.actor_apply(actor_params, obs) + half_range * n
        return jnp.clip(action, low, high), noise_state

    return explore


def draw_scales(key: PRNGKey, low: Array, high: float, num_envs: int) -> Array:
    """Per-env exploration scales, uniform in ``[low, high]`` (all ``low`` if ``high < low``)."""
    return jax.random.uniform(key, (num_envs,), jnp.float32, low, high)


def example_transition(obs_dim: int, action_dim: int) -> Transition:
    """One float32 transition of zeros: the layout of a replay buffer row."""
    return Transition(jnp.zeros(obs_dim, jnp.float32), jnp.zeros(action_dim, jnp.float32),
                      jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32),
                      jnp.zeros(obs_dim, jnp.float32))


class _Pieces(NamedTuple):
    """What the learner's functions are made of, built once by :func:`make_learner`."""

    config: DDPGConfig
    networks: Networks
    noise: Noise
    step: GradientStep
    row: Any  # one buffer row (with its ``done`` flag when n_step > 1)
    action_dim: int

    @property
    def per_env_scales(self) -> bool:
        return self.config.noise_scale_max > 0


def make_learner(
    config: DDPGConfig,
    obs_dim: int,
    action_low: np.ndarray,
    action_high: np.ndarray,
    *,
    batched: bool = True,
) -> Learner:
    """Builds the learner of ``config`` for an env's observation size and action bounds.

    Args:
      config: the run's settings (validated here).
      obs_dim: length of the flat observation.
      action_low, action_high: the env's finite action bounds, shape ``[action_dim]``.
      batched: whether the learner runs under ``vmap`` (the whole-loop driver's
        seeds). An unbatched learner skips TD3's delayed actor gradient with a
        ``lax.cond`` on its own step; a batched one branches on whether any
        vmapped run acts now and selects each run's result inside the branch.
    """
    config.validate()
    networks = make_networks(config.network, obs_dim, action_low, action_high)
    action_dim = int(np.shape(networks.action_low)[0])
    row = example_transition(obs_dim, action_dim)
    if config.n_step > 1:
        row = nstep.make_row(row, jnp.zeros((), bool))
    p = _Pieces(config, networks, make_noise(config.noise, config.ou_theta, config.ou_dt),
                make_gradient_step(networks, config, branch_on_delay=not batched), row,
                action_dim)
    observe = _make_observe(p)
    sample_rows, sample_at = _make_sampling(p)
    if config.update_schedule == "episode":
        learn = _make_learn_episodic(p, observe, sample_rows, sample_at)
    else:
        learn = _make_learn_per_step(p, observe, sample_rows, sample_at)
    low, high = jnp.asarray(networks.action_low), jnp.asarray(networks.action_high)

    def policy(ts: TrainState, obs: Array) -> Array:
        return networks.actor_apply(ts.actor_params, normalize_obs(ts, obs, config))

    def evaluate(ts: TrainState, key: PRNGKey, env: Any, env_params: Any,
                 episodes: int) -> Array:
        return evaluate_episodes(lambda obs: policy(ts, obs), key, env, env_params, episodes)

    def random_action(key: PRNGKey, n: int) -> Array:
        return jax.random.uniform(key, (n, action_dim), jnp.float32, low, high)

    return Learner(_make_init(p), _make_explore_agent(p), observe, learn, policy, evaluate,
                   random_action, sample_rows, sample_at, networks, p.noise, p.step)


def _make_init(p: _Pieces) -> Callable[..., AgentState]:
    """``init(key, hparams=None)``: fresh networks, an empty buffer, the noise at rest."""
    config = p.config

    def init(key: PRNGKey, hparams: HParams | None = None) -> AgentState:
        noise_state = p.noise.init(config.num_envs, p.action_dim)
        if p.per_env_scales:  # split only here, so runs with one scale keep their numbers
            key, scales_key = jax.random.split(key)
            ts = p.step.init(key, hparams)
            noise_state = noise_state._replace(
                scale=draw_scales(scales_key, ts.hparams.noise_scale, config.noise_scale_max,
                                  config.num_envs))
        else:
            ts = p.step.init(key, hparams)
        episodic = config.update_schedule == "episode"
        return AgentState(train_state=ts, buffer=rb.init(p.row, config.buffer_size),
                          noise_state=noise_state, nonfinite=no_nonfinite(),
                          owed=jnp.zeros((), jnp.int32) if episodic else None)

    return init


def _make_explore_agent(p: _Pieces) -> Callable[..., tuple[AgentState, Array]]:
    """``explore(agent, key, obs)``: the noisy action, with each env's scale."""
    noisy_action = make_explore(p.networks, p.noise)

    def explore(agent: AgentState, key: PRNGKey, obs: Array) -> tuple[AgentState, Array]:
        ts = agent.train_state
        scale = (agent.noise_state.scale[:, None] if p.per_env_scales
                 else ts.hparams.noise_scale)
        action, noise_state = noisy_action(ts.actor_params, agent.noise_state, key,
                                           normalize_obs(ts, obs, p.config), scale)
        return agent._replace(noise_state=noise_state), action

    return explore


def _make_observe(p: _Pieces) -> Callable[..., AgentState]:
    """``observe(agent, transitions, done=None)``: rows into the buffer, statistics updated,
    and (episode schedule) the gradient steps they are owed added to the count."""
    config = p.config
    n_step, updates = config.n_step, config.updates_per_vector

    def observe(agent: AgentState, transitions: Transition, done: Array | None = None
                ) -> AgentState:
        ts = agent.train_state
        if config.obs_norm:
            ts = ts.replace(obs_stats=normalization.update(ts.obs_stats, transitions.obs))
        rows: Any = transitions
        if n_step > 1:
            if done is None:
                raise ValueError("observe needs `done` (whether each step ended its episode) "
                                 f"with n_step = {n_step}: n-step returns stop at episode ends")
            rows = nstep.make_row(transitions, done)
        agent = agent._replace(buffer=rb.add(agent.buffer, rows), train_state=ts)
        if config.update_schedule == "episode":  # rows come in vector steps: this is exact
            owed = updates * transitions.reward.shape[0] // config.num_envs
            agent = agent._replace(owed=agent.owed + owed)
        return agent

    return observe


def _make_sampling(p: _Pieces) -> tuple[Callable[..., Array], Callable[..., Any]]:
    """``sample_rows(agent, key, batches)`` and ``sample_at(agent, rows)`` (see :class:`Learner`)."""
    config = p.config

    def sample_rows(agent: AgentState, key: PRNGKey,
                    batches: int = config.updates_per_vector) -> Array:
        return rb.sample_rows(agent.buffer, key, config.batch_size, batches)

    def sample_at(agent: AgentState, rows: Array) -> Transition | nstep.NStepTransition:
        if config.n_step > 1:
            flat = nstep.returns_from(agent.buffer, rows.reshape(-1), config.n_step,
                                      config.num_envs, agent.train_state.hparams.gamma)
            return jax.tree.map(lambda x: x.reshape(rows.shape + x.shape[1:]), flat)
        return rb.gather(agent.buffer, rows)

    return sample_rows, sample_at


def _keys_for(p: _Pieces, key: PRNGKey) -> tuple[PRNGKey, PRNGKey | None]:
    """One key per consumer of ``learn``: sampling, and the noise scales when they are drawn.
    Split only when the scales need a key, so runs with one scale keep their numbers."""
    if p.per_env_scales:
        sample_key, scales_key = jax.random.split(key)
        return sample_key, scales_key
    return key, None


def _finish_learn(p: _Pieces, agent: AgentState, ts: TrainState, metrics: dict[str, Array],
                  done: Array, scales_key: PRNGKey | None, env_steps: Array) -> AgentState:
    """The new train state, the noise of finished episodes restarted (their scales redrawn),
    and the first non-finite value recorded."""
    noise_state = p.noise.reset(agent.noise_state, done)
    if p.per_env_scales:
        fresh = draw_scales(scales_key, agent.train_state.hparams.noise_scale,
                            p.config.noise_scale_max, p.config.num_envs)
        noise_state = noise_state._replace(scale=jnp.where(done, fresh, noise_state.scale))
    return agent._replace(train_state=ts, noise_state=noise_state,
                          nonfinite=guard_nonfinite(agent.nonfinite, env_steps, metrics, ts))


def _make_learn_per_step(p: _Pieces, observe: Callable, sample_rows: Callable,
                         sample_at: Callable) -> Callable[..., tuple[AgentState, dict]]:
    """``learn`` of the per-step schedule: ``updates_per_vector`` gradient steps in a scan."""
    updates = p.config.updates_per_vector

    def learn(agent: AgentState, transition: Transition, done: Array, key: PRNGKey,
              env_steps: Array) -> tuple[AgentState, dict[str, Array]]:
        agent = observe(agent, transition, done)
        sample_key, scales_key = _keys_for(p, key)
        batches = sample_at(agent, sample_rows(agent, sample_key))
        ts, metrics = jax.lax.scan(p.step.update, agent.train_state, batches)
        sums = {name: jnp.sum(metrics[name]) for name in METRIC_NAMES}
        sums["updates"] = jnp.asarray(updates, jnp.float32)
        sums["actor_updates"] = jnp.sum(metrics["actor_updated"])
        return _finish_learn(p, agent, ts, metrics, done, scales_key, env_steps), sums

    return learn


def _make_learn_episodic(p: _Pieces, observe: Callable, sample_rows: Callable,
                         sample_at: Callable) -> Callable[..., tuple[AgentState, dict]]:
    """``learn`` of the episode schedule: every gradient step owed so far runs when any
    env's episode ends (the TD3 authors' burst), none otherwise.

    A ``while_loop`` with the count as its bound, one freshly sampled batch per
    step (step ``i`` samples with ``fold_in(key, i)``, uniform with replacement over
    the rows stored, even fewer than a batch): the count varies from call to call.
    TD3's delay counts within the burst, as the authors' 2018 ``TD3.train`` (``for it
    in range(iterations): ... if it % policy_freq == 0``): the actor and targets move on
    the burst's first step and every ``policy_delay``-th after it. Under ``vmap`` the
    loop runs to the largest count of the batch and each member keeps its own.
    The drivers call it in the warm-up too (random actions), so a burst runs at every
    episode end from the first, as the 2018 ``main.py`` trains ``if total_timesteps != 0``.
    """
    delay = p.config.policy_delay

    def burst(agent: AgentState, key: PRNGKey, count: Array
              ) -> tuple[TrainState, dict[str, Array]]:
        def body(carry):
            i, ts, sums = carry
            rows = sample_rows(agent, jax.random.fold_in(key, i), 1)
            batch = jax.tree.map(lambda x: x[0], sample_at(agent, rows))
            # The 2018 code counts the delay per burst: the actor and targets move on its
            # steps 0, policy_delay, 2 * policy_delay, ... (``if it % policy_freq == 0``).
            act_now = i % delay == 0 if delay > 1 else None
            ts, m = p.step.update(ts, batch, act_now)
            added = {**{name: m[name] for name in METRIC_NAMES},
                     "actor_updates": m["actor_updated"]}
            return i + 1, ts, {name: sums[name] + added[name] for name in sums}

        zeros = {name: jnp.zeros((), jnp.float32) for name in METRIC_NAMES + ("actor_updates",)}
        _, ts, sums = jax.lax.while_loop(lambda c: c[0] < count, body,
                                         (jnp.zeros((), jnp.int32), agent.train_state, zeros))
        sums["updates"] = count.astype(jnp.float32)
        return ts, sums

    def learn(agent: AgentState, transition: Transition, done: Array, key: PRNGKey,
              env_steps: Array) -> tuple[AgentState, dict[str, Array]]:
        agent = observe(agent, transition, done)
        sample_key, scales_key = _keys_for(p, key)
        count = jnp.where(jnp.any(done), agent.owed, 0)
        ts, sums = burst(agent, sample_key, count)
        agent = agent._replace(owed=agent.owed - count)
        # The sums carry any NaN or infinity of the steps to the guard.
        metrics = {name: sums[name] for name in METRIC_NAMES}
        return _finish_learn(p, agent, ts, metrics, done, scales_key, env_steps), sums

    return learn


def evaluate_episodes(act: Callable[[Array], Array], key: PRNGKey, env: Any, env_params: Any,
                      episodes: int) -> Array:
    """Returns of ``episodes`` deterministic episodes of a JAX env, run side by side.

    Each episode runs until its first end (termination or truncation); the
    env's time limit bounds the scan, so the cost is one episode length.
    """
    episode_len = int(np.asarray(env.max_steps(env_params)))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    # One key for the resets and one for the steps: the resets' keys split from ``key``
    # itself would include fold_in(key, 1), the steps' parent key, once episodes > 1.
    reset_key, steps_key = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes),
                                                         env_params)

    def body(carry, k):
        obs, state, ret, running = carry
        obs, state, reward, term, trunc, _ = v_step(jax.random.split(k, episodes), state,
                                                    act(obs), env_params)
        ret = ret + jnp.where(running, reward, 0.0)
        running = jnp.logical_and(running, ~jnp.logical_or(term, trunc))
        return (obs, state, ret, running), None

    init = (obs, state, jnp.zeros(episodes, jnp.float32), jnp.ones(episodes, bool))
    (_, _, ret, _), _ = jax.lax.scan(body, init, jax.random.split(steps_key, episode_len))
    return ret

"""The DDPG/TD3 gradient step over an immutable :class:`~ddpg_jax.agent.state.TrainState`.

:func:`make_gradient_step` returns ``init`` and ``update`` side by side, in
the style of an optax transformation, so the optimizer chains they use are
built once and cannot disagree. Learning rates and weight decays (the
critic's coupled L2, both nets' AdamW decay) are traced values read from
``state.hparams`` at every step, which is what lets ``jax.vmap`` over a
batch of states train different settings.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ddpg_jax.agent import distributional, losses, normalization
from ddpg_jax.agent.networks import Networks
from ddpg_jax.agent.state import (
    Array,
    HParams,
    Metrics,
    Params,
    PRNGKey,
    TrainState,
    Transition,
)
from ddpg_jax.config import TRACED_FIELDS, DDPGConfig


def make_optimizer(max_grad_norm: float, coupled_weight_decay: bool = False,
                   decoupled_weight_decay: bool = False
                   ) -> Callable[..., optax.GradientTransformation]:
    """The optax chain of one network, as a function of its traced rates.

    ``optimizer(lr, weight_decay=None, adamw_decay=None)`` returns: with
    ``coupled_weight_decay``, the L2 term ``weight_decay * params`` added to
    the gradient (the paper's critic weight decay, coupled: it goes through
    Adam); global-norm clipping when ``max_grad_norm > 0``; Adam; with
    ``decoupled_weight_decay``, the term ``adamw_decay * params`` added to
    Adam's output (AdamW, Loshchilov and Hutter 2019, as ``optax.adamw`` and
    PyTorch's ``AdamW``); and the step ``-lr * update``. Rates may be traced
    arrays; the chain's state does not depend on their values (the decay
    terms hold none), so one ``init`` serves every rate and a checkpoint's
    optimizer state has the same structure and arrays with or without AdamW.
    A decay term that is off is not in the program at all: a zero rate is
    plain Adam in value, but a different program, whose last bits can differ.
    """

    def optimizer(lr: Any, weight_decay: Any = None, adamw_decay: Any = None
                  ) -> optax.GradientTransformation:
        if (weight_decay is not None) != coupled_weight_decay:
            raise ValueError("pass weight_decay exactly when the optimizer was made with "
                             "coupled_weight_decay=True")
        if (adamw_decay is not None) != decoupled_weight_decay:
            raise ValueError("pass adamw_decay exactly when the optimizer was made with "
                             "decoupled_weight_decay=True")
        parts = [optax.add_decayed_weights(weight_decay)] if coupled_weight_decay else []
        if max_grad_norm > 0:
            parts.append(optax.clip_by_global_norm(max_grad_norm))
        # optax.identity() holds the decay's place when it is off (no operation, the same
        # EmptyState), so the optimizer state has one structure either way.
        parts += [optax.scale_by_adam(),
                  optax.identity() if adamw_decay is None else
                  optax.add_decayed_weights(adamw_decay),
                  optax.scale_by_learning_rate(lr)]
        return optax.chain(*parts)

    return optimizer


def hparams_from_config(config: DDPGConfig) -> HParams:
    """The config's traced settings as float32 scalars."""
    return HParams(**{name: jnp.asarray(getattr(config, name), jnp.float32)
                      for name in TRACED_FIELDS})


class GradientStep(NamedTuple):
    """``init`` and ``update`` of one DDPG/TD3 learner, built together.

    Attributes:
      init: ``(key, hparams=None) -> TrainState``: parameters, targets (exact
        copies) and optimizer states; ``hparams`` defaults to the config's.
      update: ``(state, batch, act_now=None) -> (state, metrics)``: one gradient step
        (see :func:`make_gradient_step`); ``act_now`` (a bool, possibly traced) says
        whether the actor and targets move on this step, in place of the delay's own
        global count.
    """

    init: Callable[..., TrainState]
    update: Callable[..., tuple[TrainState, Metrics]]


def _select(pred: Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


@jax.custom_batching.custom_vmap
def _any_in_batch(pred: Array) -> Array:
    """``pred`` itself; under ``vmap``, whether it holds for any member, as one unbatched bool.

    A ``lax.cond`` on the result stays a branch under ``vmap`` (a batched
    predicate would turn it into a select that runs both sides).
    """
    return pred


@_any_in_batch.def_vmap
def _any_in_batch_vmap(axis_size: int, in_batched: list[bool], pred: Array):
    return (jnp.any(pred, axis=0) if in_batched[0] else pred), False


class _Step(NamedTuple):
    """What the gradient step closes over: fixed once :func:`make_gradient_step` is called."""

    config: DDPGConfig
    networks: Networks
    actor_opt: Callable[..., optax.GradientTransformation]
    critic_opt: Callable[..., optax.GradientTransformation]
    axis_name: str | None
    branch_on_delay: bool

    def actor_tx(self, hp: HParams) -> optax.GradientTransformation:
        adamw = hp.actor_adamw_decay if self.config.actor_adamw_decay > 0 else None
        return self.actor_opt(hp.actor_lr, adamw_decay=adamw)

    def critic_tx(self, hp: HParams) -> optax.GradientTransformation:
        adamw = hp.critic_adamw_decay if self.config.critic_adamw_decay > 0 else None
        return self.critic_opt(hp.critic_lr, hp.critic_weight_decay, adamw_decay=adamw)

    def reduce(self, tree: Any) -> Any:
        return tree if self.axis_name is None else jax.lax.pmean(tree, self.axis_name)

    @property
    def bounds(self) -> tuple[Array, Array, Array]:
        low = jnp.asarray(self.networks.action_low)
        high = jnp.asarray(self.networks.action_high)
        return low, high, (high - low) / 2.0


def _init(s: _Step, key: PRNGKey, hparams: HParams | None = None) -> TrainState:
    actor_key, critic_key, update_key = jax.random.split(key, 3)
    actor_params = s.networks.actor_init(actor_key)
    critic_params = s.networks.critic_init(critic_key)
    hp = hparams_from_config(s.config) if hparams is None else hparams
    return TrainState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_actor_params=jax.tree.map(jnp.copy, actor_params),
        target_critic_params=jax.tree.map(jnp.copy, critic_params),
        actor_opt_state=s.actor_tx(hp).init(actor_params),
        critic_opt_state=s.critic_tx(hp).init(critic_params),
        hparams=hp,
        obs_stats=normalization.init(s.networks.obs_dim),
        rng=update_key,
        step=jnp.zeros((), jnp.int32),
        actor_step=jnp.zeros((), jnp.int32),
    )


def _descend(tx: optax.GradientTransformation, grads: Params, opt_state: Any,
             params: Params) -> tuple[Params, Any]:
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _objectives(s: _Step) -> distributional.Objectives:
    """The TD target and the two losses of the step's critic: scalar, or C51 (``num_atoms``)."""
    if not s.networks.num_atoms:
        return distributional.Objectives(losses.td_target, losses.critic_loss, losses.actor_loss)
    return distributional.make_objectives(s.config.v_min, s.config.v_max, s.networks.num_atoms)


def _critic_half(s: _Step, state: TrainState, batch: Transition, noise_key: PRNGKey):
    """Critic regression onto the (smoothed, minimum-over-critics) TD target."""
    hp, (low, high, half_range) = state.hparams, s.bounds
    nets, objectives = s.networks, _objectives(s)
    smoothing = losses.smoothing_noise(noise_key, batch.action.shape, hp.target_noise,
                                       hp.target_noise_clip, half_range)
    target = objectives.td_target(state.target_actor_params, state.target_critic_params, batch,
                                  hp.gamma, nets.actor_apply, nets.critic_apply, smoothing, low,
                                  high)
    (loss, aux), grads = jax.value_and_grad(objectives.critic_loss, has_aux=True)(
        state.critic_params, batch, target, nets.critic_apply)
    grads = s.reduce(grads)
    params, opt_state = _descend(s.critic_tx(hp), grads, state.critic_opt_state,
                                 state.critic_params)
    metrics = {"critic_loss": loss, "q_mean": aux["q_mean"], "target_mean": aux["target_mean"],
               "critic_grad_norm": optax.tree_utils.tree_norm(grads)}
    return params, opt_state, metrics


def _actor_half(s: _Step, state: TrainState, critic_params: Params, obs: Array):
    """Actor step on the updated critic, then both targets; returns the moved pieces."""
    hp, nets = state.hparams, s.networks
    (loss, _), grads = jax.value_and_grad(_objectives(s).actor_loss, has_aux=True)(
        state.actor_params, critic_params, obs, nets.actor_apply, nets.critic_apply)
    grads = s.reduce(grads)
    actor_params, actor_opt_state = _descend(s.actor_tx(hp), grads, state.actor_opt_state,
                                             state.actor_params)
    moved = (actor_params, actor_opt_state,
             optax.incremental_update(actor_params, state.target_actor_params, hp.tau),
             optax.incremental_update(critic_params, state.target_critic_params, hp.tau))
    return moved, loss, optax.tree_utils.tree_norm(grads)


def _actor_kept(s: _Step, state: TrainState, critic_params: Params, obs: Array):
    kept = (state.actor_params, state.actor_opt_state, state.target_actor_params,
            state.target_critic_params)
    return kept, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)


def _actor_selected(s: _Step, act_now: Array, state: TrainState, critic_params: Params,
                    obs: Array):
    """The actor's half computed, kept where ``act_now`` (a select: ``act_now`` may be batched)."""
    moved, loss, norm = _actor_half(s, state, critic_params, obs)
    kept, zero, _ = _actor_kept(s, state, critic_params, obs)
    return (_select(act_now, moved, kept), jnp.where(act_now, loss, zero),
            jnp.where(act_now, norm, zero))


def _actor_delayed(s: _Step, state: TrainState, critic_params: Params, obs: Array,
                   act_now: Array):
    """TD3's delay: the actor's half on every ``policy_delay``-th step, else the old pieces."""
    if s.branch_on_delay:
        return jax.lax.cond(act_now, functools.partial(_actor_half, s),
                            functools.partial(_actor_kept, s), state, critic_params, obs)
    if s.axis_name is not None:  # replicas all-reduce inside the actor's half: no branch
        return _actor_selected(s, act_now, state, critic_params, obs)
    # Batched: a cond on act_now itself would be a select under vmap and run the
    # actor's half on every step. The vmapped runs step together, so the cond asks
    # whether any member acts now (one unbatched bool) and skips the actor's half
    # when none does; inside it, a select keeps each member's own choice.
    return jax.lax.cond(_any_in_batch(act_now), functools.partial(_actor_selected, s, act_now),
                        functools.partial(_actor_kept, s), state, critic_params, obs)


def _update(s: _Step, state: TrainState, batch: Transition, act_now: Array | None = None
            ) -> tuple[TrainState, Metrics]:
    rng, noise_key = jax.random.split(state.rng)
    batch = batch._replace(
        obs=normalize_obs(state, batch.obs, s.config),
        next_obs=normalize_obs(state, batch.next_obs, s.config),
        reward=batch.reward * state.hparams.reward_scale,
    )
    critic_params, critic_opt_state, metrics = _critic_half(s, state, batch, noise_key)
    if s.config.policy_delay > 1:
        if act_now is None:  # the global count: every policy_delay-th critic update
            act_now = (state.step + 1) % s.config.policy_delay == 0
        else:
            act_now = jnp.asarray(act_now, bool)
        moved, a_loss, a_norm = _actor_delayed(s, state, critic_params, batch.obs, act_now)
    else:
        act_now = jnp.asarray(True)
        moved, a_loss, a_norm = _actor_half(s, state, critic_params, batch.obs)
    actor_params, actor_opt_state, target_actor, target_critic = moved
    new_state = state.replace(
        actor_params=actor_params, critic_params=critic_params,
        target_actor_params=target_actor, target_critic_params=target_critic,
        actor_opt_state=actor_opt_state, critic_opt_state=critic_opt_state,
        rng=rng, step=state.step + 1,
        actor_step=state.actor_step + act_now.astype(jnp.int32),
    )
    metrics = s.reduce({**metrics, "actor_loss": a_loss, "actor_grad_norm": a_norm})
    metrics["actor_updated"] = act_now.astype(jnp.float32)
    return new_state, metrics


def make_gradient_step(
    networks: Networks,
    config: DDPGConfig,
    axis_name: str | None = None,
    *,
    branch_on_delay: bool = False,
) -> GradientStep:
    """Builds the gradient step of ``config`` for ``networks``.

    The step (Lillicrap et al. 2015, Algorithm 1): regress the critic onto
    y = r + gamma (1 - terminated) Q'(s', mu'(s')); then move the actor along
    the deterministic policy gradient of the *updated* critic; then
    Polyak-average both targets with rate tau via ``optax.incremental_update``.

    The TD3 options of Fujimoto et al. (2018) are settings of the same step:
    ``num_critics`` critics with the minimum in the target, target policy
    smoothing (``target_noise``, ``target_noise_clip``, in action half-ranges,
    clipped to the env's bounds), and ``policy_delay``: the actor and the
    targets move only on every ``policy_delay``-th critic update, counted over
    the whole run (``state.step``: the 2nd, 4th, ... update with delay 2, as the
    authors' current code); a caller that counts otherwise passes ``act_now``
    (the 2018 code's bursts move them on the 1st, 3rd, ... step of each burst,
    see :mod:`ddpg_jax.agent.learner`). With delay 1 the actor moves on every
    step, whatever ``act_now`` says. With one critic, no smoothing and delay 1
    this is exactly the DDPG step.

    Rewards enter the target multiplied by ``reward_scale``; with ``obs_norm``
    both observations of the batch are normalised with the state's statistics.
    With ``critic="c51"`` (networks made with ``num_atoms``) the target, the
    critic loss and the actor loss are the distributional ones of
    :mod:`ddpg_jax.agent.distributional`; everything else is the same step.

    Args:
      networks: the pure network functions.
      config: static settings (clipping, delay, obs_norm); traced values come
        from ``state.hparams``.
      axis_name: if given, gradients and metrics are averaged with
        ``lax.pmean`` over this named axis (data-parallel training over
        devices or a vmapped axis).
      branch_on_delay: with ``policy_delay > 1``, skip the actor's gradient on
        the steps where the actor does not move with ``lax.cond``. Right where
        the step is not vmapped (the gymnasium driver). The default (for
        ``vmap``) branches on whether any vmapped member acts now, an
        unbatched bool, and keeps each member's choice with a select inside:
        the runs of one program step together, so the actor's half is skipped
        on the steps where none acts (about a fifth of a 256x256 TD3 step).

    Returns:
      A :class:`GradientStep`. ``update``'s metrics are float32 scalars
      ``critic_loss``, ``q_mean``, ``target_mean``, ``critic_grad_norm``
      (of the loss gradient), ``actor_loss`` and ``actor_grad_norm`` (0 on the
      steps where the actor does not move) and ``actor_updated`` (1 or 0).
    """
    if branch_on_delay and axis_name is not None:
        raise ValueError("branch_on_delay is for unbatched steps; with an axis_name the step is "
                         "batched, where a cond runs both branches")
    s = _Step(config, networks,
              make_optimizer(config.max_grad_norm,
                             decoupled_weight_decay=config.actor_adamw_decay > 0),
              make_optimizer(config.max_grad_norm, coupled_weight_decay=True,
                             decoupled_weight_decay=config.critic_adamw_decay > 0),
              axis_name, branch_on_delay)

    def init(key: PRNGKey, hparams: HParams | None = None) -> TrainState:
        return _init(s, key, hparams)

    def update(state: TrainState, batch: Transition, act_now: Array | None = None
               ) -> tuple[TrainState, Metrics]:
        return _update(s, state, batch, act_now)

    return GradientStep(init, update)


def init_train_state(key: PRNGKey, networks: Networks, config: DDPGConfig,
                     hparams: HParams | None = None) -> TrainState:
    """``make_gradient_step(networks, config).init(key, hparams)``: a fresh train state."""
    return make_gradient_step(networks, config).init(key, hparams)


def make_update(networks: Networks, config: DDPGConfig, axis_name: str | None = None
                ) -> Callable[[TrainState, Transition], tuple[TrainState, Metrics]]:
    """``make_gradient_step(networks, config, axis_name).update``: the pure gradient step.

    It is not jitted, so it can be called inside a user's ``jit``, ``vmap``
    or ``lax.scan``.
    """
    return make_gradient_step(networks, config, axis_name).update


def normalize_obs(state: TrainState, obs: Array, config: DDPGConfig) -> Array:
    """Observations as the networks see them (identity unless ``config.obs_norm``)."""
    if not config.obs_norm:
        return obs
    return normalization.normalize(state.obs_stats, obs)

"""The DDPG update step over an immutable :class:`~ddpg_jax.types.TrainState`."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ddpg_jax import losses, normalization
from ddpg_jax.config import TRACED_FIELDS, DDPGConfig
from ddpg_jax.networks import Networks
from ddpg_jax.types import Array, HParams, Metrics, Params, PRNGKey, TrainState, Transition


class Optimizers(NamedTuple):
    """Learning-rate-free optax transformations; the rates live in ``TrainState.hparams``."""

    actor: optax.GradientTransformation
    critic: optax.GradientTransformation


def make_optimizers(config: DDPGConfig) -> Optimizers:
    """Adam (with optional global-norm clipping) for each network.

    The learning rate is applied in :func:`make_update` from the traced
    ``hparams`` so that a vmapped batch of states can carry different rates.
    """

    def base() -> optax.GradientTransformation:
        parts = []
        if config.max_grad_norm > 0:
            parts.append(optax.clip_by_global_norm(config.max_grad_norm))
        parts.append(optax.scale_by_adam())
        return optax.chain(*parts)

    return Optimizers(base(), base())


def hparams_from_config(config: DDPGConfig) -> HParams:
    return HParams(**{name: jnp.asarray(getattr(config, name), jnp.float32) for name in TRACED_FIELDS})


def init_train_state(
    key: PRNGKey,
    networks: Networks,
    config: DDPGConfig,
    hparams: HParams | None = None,
) -> TrainState:
    """Initialises parameters, targets (exact copies) and optimizer states.

    Args:
      key: PRNG key for the parameter initialisation.
      networks: from :func:`ddpg_jax.networks.make_networks`.
      config: supplies the optimizer settings and, unless ``hparams`` is
        given, the traced hyperparameters.
      hparams: overrides the config's traced hyperparameters (e.g. arrays
        taken from a sweep).
    """
    actor_key, critic_key, update_key = jax.random.split(key, 3)
    actor_params = networks.actor_init(actor_key)
    critic_params = networks.critic_init(critic_key)
    opt = make_optimizers(config)
    return TrainState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_actor_params=jax.tree.map(jnp.copy, actor_params),
        target_critic_params=jax.tree.map(jnp.copy, critic_params),
        actor_opt_state=opt.actor.init(actor_params),
        critic_opt_state=opt.critic.init(critic_params),
        hparams=hparams_from_config(config) if hparams is None else hparams,
        obs_stats=normalization.init(networks.obs_dim),
        rng=update_key,
        step=jnp.zeros((), jnp.int32),
        actor_step=jnp.zeros((), jnp.int32),
    )


def _descend(
    tx: optax.GradientTransformation, grads: Params, opt_state, params: Params, lr: Array
) -> tuple[Params, object]:
    updates, opt_state = tx.update(grads, opt_state, params)
    return jax.tree.map(lambda p, u: p - lr * u, params, updates), opt_state


def normalize_obs(state: TrainState, obs: Array, config: DDPGConfig) -> Array:
    """Observations as the networks see them (identity unless ``config.obs_norm``)."""
    if not config.obs_norm:
        return obs
    return normalization.normalize(state.obs_stats, obs)


def observe(state: TrainState, obs: Array, config: DDPGConfig) -> TrainState:
    """Folds newly collected observations into the running statistics (if ``obs_norm``)."""
    if not config.obs_norm:
        return state
    return state.replace(obs_stats=normalization.update(state.obs_stats, obs))


def _select(pred: Array, on_true, on_false):
    # An elementwise select, not lax.cond: under vmap a cond runs both branches
    # anyway, and a select keeps the step a single straight-line program.
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def make_update(
    networks: Networks, config: DDPGConfig, axis_name: str | None = None
) -> Callable[[TrainState, Transition], tuple[TrainState, Metrics]]:
    """Builds ``update(state, batch) -> (state, metrics)``: one DDPG/TD3 gradient step.

    The step (Lillicrap et al. 2015, Algorithm 1): regress the critic onto
    y = r + gamma (1 - terminated) Q'(s', mu'(s')); then move the actor along
    the deterministic policy gradient of the *updated* critic; then Polyak-average
    both targets with rate tau via ``optax.incremental_update``.

    The TD3 options of Fujimoto et al. (2018) are settings of the same step:
    ``num_critics`` critics with the minimum in the target, target policy
    smoothing (``target_noise``, ``target_noise_clip``, in action half-ranges,
    clipped to the env's bounds), and ``policy_delay``: the actor and the
    targets move only on every ``policy_delay``-th critic update. With one
    critic, no smoothing and delay 1 this is exactly the DDPG step. With a
    delay, the actor gradient is still computed every step and discarded
    between actor updates (a select, so the step stays one program under vmap).

    Rewards enter the target multiplied by ``reward_scale``; with ``obs_norm``
    both observations of the batch are normalised with the state's statistics.

    The returned function is pure and not jitted, so it can be called inside a
    user's ``jit``, ``vmap`` or ``lax.scan``.

    Args:
      networks: the pure network functions.
      config: optimizer settings (clipping); traced values come from ``state.hparams``.
      axis_name: if given, gradients are averaged with ``lax.pmean`` over this
        named axis (data-parallel training over devices or a vmapped axis).

    Returns:
      The update function. ``metrics`` holds float32 scalars ``critic_loss``,
      ``actor_loss``, ``q_mean``, ``target_mean``, ``critic_grad_norm`` and
      ``actor_grad_norm``.
    """
    opt = make_optimizers(config)
    actor_apply, critic_apply = networks.actor_apply, networks.critic_apply
    low = jnp.asarray(networks.action_low)
    high = jnp.asarray(networks.action_high)
    half_range = (high - low) / 2.0
    delay = config.policy_delay

    def reduce(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    def update(state: TrainState, batch: Transition) -> tuple[TrainState, Metrics]:
        hp = state.hparams
        rng, noise_key = jax.random.split(state.rng)
        batch = batch._replace(
            obs=normalize_obs(state, batch.obs, config),
            next_obs=normalize_obs(state, batch.next_obs, config),
            reward=batch.reward * hp.reward_scale,
        )
        smoothing = losses.smoothing_noise(noise_key, batch.action.shape, hp.target_noise,
                                           hp.target_noise_clip, half_range)
        target = losses.td_target(
            state.target_actor_params, state.target_critic_params, batch, hp.gamma,
            actor_apply, critic_apply, smoothing, low, high,
        )
        (c_loss, c_aux), c_grads = jax.value_and_grad(losses.critic_loss, has_aux=True)(
            state.critic_params, batch, target, critic_apply
        )
        c_grads = reduce(c_grads)
        # Coupled L2 penalty (the paper's critic weight decay): d/dθ (wd/2 ||θ||²) = wd θ.
        c_grads = jax.tree.map(lambda g, p: g + hp.critic_weight_decay * p, c_grads,
                               state.critic_params)
        critic_params, critic_opt_state = _descend(
            opt.critic, c_grads, state.critic_opt_state, state.critic_params, hp.critic_lr
        )

        (a_loss, a_aux), a_grads = jax.value_and_grad(losses.actor_loss, has_aux=True)(
            state.actor_params, critic_params, batch.obs, actor_apply, critic_apply
        )
        a_grads = reduce(a_grads)
        actor_params, actor_opt_state = _descend(
            opt.actor, a_grads, state.actor_opt_state, state.actor_params, hp.actor_lr
        )

        target_actor = optax.incremental_update(actor_params, state.target_actor_params, hp.tau)
        target_critic = optax.incremental_update(critic_params, state.target_critic_params,
                                                 hp.tau)
        if delay > 1:
            # TD3: the actor and both targets move on every delay-th critic update.
            act_now = (state.step + 1) % delay == 0
            actor_params, actor_opt_state, target_actor, target_critic = _select(
                act_now,
                (actor_params, actor_opt_state, target_actor, target_critic),
                (state.actor_params, state.actor_opt_state, state.target_actor_params,
                 state.target_critic_params),
            )
            actor_step = state.actor_step + act_now.astype(jnp.int32)
        else:
            actor_step = state.actor_step + 1
        new_state = state.replace(
            actor_params=actor_params,
            critic_params=critic_params,
            target_actor_params=target_actor,
            target_critic_params=target_critic,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            rng=rng,
            step=state.step + 1,
            actor_step=actor_step,
        )
        metrics = {
            "critic_loss": c_loss,
            "actor_loss": a_loss,
            "q_mean": c_aux["q_mean"],
            "target_mean": c_aux["target_mean"],
            "critic_grad_norm": optax.tree_utils.tree_norm(c_grads),
            "actor_grad_norm": optax.tree_utils.tree_norm(a_grads),
        }
        return new_state, reduce(metrics)

    return update

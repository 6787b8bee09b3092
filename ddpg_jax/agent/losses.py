"""DDPG losses. Each takes the parameters it differentiates first and returns ``(loss, aux)``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ddpg_jax.agent.state import Array, Params, Transition


def smoothing_noise(
    key: Array, shape: tuple[int, ...], scale: Array, clip: Array, half_range: Array
) -> Array:
    """TD3's target policy smoothing noise, clip(N(0, scale^2), -clip, clip) * half_range.

    Fujimoto et al. (2018), Eq. 14, with the scale and the clip expressed in
    units of the action half-range ``(high - low) / 2`` so that the paper's 0.2
    and 0.5 mean the same on every env.
    """
    eps = jax.random.normal(key, shape, jnp.float32)
    return jnp.clip(eps * scale, -clip, clip) * half_range


def target_action(
    target_actor_params: Params,
    next_obs: Array,
    actor_apply: Callable[[Params, Array], Array],
    action_noise: Array | None = None,
    action_low: Array | None = None,
    action_high: Array | None = None,
) -> Array:
    """mu'(s'), plus ``action_noise`` clipped to ``[action_low, action_high]`` when given."""
    next_action = actor_apply(target_actor_params, next_obs)
    if action_noise is not None:
        next_action = jnp.clip(next_action + action_noise, action_low, action_high)
    return next_action


def td_target(
    target_actor_params: Params,
    target_critic_params: Params,
    batch: Transition,
    gamma: Array,
    actor_apply: Callable[[Params, Array], Array],
    critic_apply: Callable[[Params, Array, Array], Array],
    action_noise: Array | None = None,
    action_low: Array | None = None,
    action_high: Array | None = None,
) -> Array:
    """Bootstrapped target y = r + gamma * (1 - terminated) * Q'(s', mu'(s')).

    Lillicrap et al. (2015), Algorithm 1. With several critics the minimum over
    the target critics is taken (Fujimoto et al. 2018, Eq. 10); with one it is
    the paper's target. Truncated-but-not-terminated transitions keep the
    bootstrap, since only ``terminated`` enters the mask. An n-step batch
    (:class:`ddpg_jax.agent.nstep.NStepTransition`) is bootstrapped with ``gamma * discount``.

    Args:
      action_noise: optional ``[batch, action_dim]`` perturbation added to
        mu'(s') (TD3's target policy smoothing, Fujimoto et al. 2018, Eq. 14);
        the perturbed action is clipped to ``[action_low, action_high]``.

    Returns:
      ``[batch]`` targets, with gradients stopped.
    """
    next_action = target_action(target_actor_params, batch.next_obs, actor_apply, action_noise,
                                action_low, action_high)
    next_q = jnp.min(critic_apply(target_critic_params, batch.next_obs, next_action), axis=0)
    bootstrap = 1.0 - batch.terminated
    discount = getattr(batch, "discount", None)  # an n-step sample: gamma^m in all
    if discount is not None:
        bootstrap = discount * bootstrap
    y = batch.reward + gamma * bootstrap * next_q
    return jax.lax.stop_gradient(y)


def critic_loss(
    critic_params: Params,
    batch: Transition,
    target: Array,
    critic_apply: Callable[[Params, Array, Array], Array],
) -> tuple[Array, dict[str, Array]]:
    """Mean squared TD error, L = 1/N sum_i (y_i - Q(s_i, a_i))^2, summed over critics.

    Lillicrap et al. (2015), Algorithm 1, critic update.
    """
    q = critic_apply(critic_params, batch.obs, batch.action)  # [num_critics, batch]
    loss = jnp.sum(jnp.mean(jnp.square(q - target[None]), axis=-1))
    return loss, {"q_mean": jnp.mean(q), "target_mean": jnp.mean(target)}


def actor_loss(
    actor_params: Params,
    critic_params: Params,
    obs: Array,
    actor_apply: Callable[[Params, Array], Array],
    critic_apply: Callable[[Params, Array, Array], Array],
) -> tuple[Array, dict[str, Array]]:
    """Negative mean of the first critic at the policy's action, -1/N sum_i Q(s_i, mu(s_i)).

    Its gradient is the sampled deterministic policy gradient,
    -1/N sum_i dQ/da(s_i, mu(s_i)) dmu/dtheta(s_i) (Lillicrap et al. 2015,
    Eq. 6; Silver et al. 2014): autodiff chains dQ/da through mu, and only
    ``actor_params`` are differentiated.
    """
    action = actor_apply(actor_params, obs)
    q = critic_apply(critic_params, obs, action)[0]
    return -jnp.mean(q), {"policy_q_mean": jnp.mean(q)}

"""The C51 distributional critic: its support, the categorical projection, its target and losses.

With ``critic="c51"`` each critic outputs the logits of a categorical
distribution over ``num_atoms`` fixed returns ``z_j = linspace(v_min, v_max)``
(Bellemare et al. 2017), and its value is the expectation
``Q(s, a) = sum_j softmax(logits)_j z_j``. The update follows FastTD3 (Seo et
al. 2025, ``fast_td3/train.py``): the n-step target distribution is projected
back onto the support, the clipped double-Q takes per sample the projected
distribution of the target critic with the lower mean, every online critic is
trained by cross-entropy against it, and the actor maximises the expected value.

:func:`make_objectives` binds the support into three functions with the
signatures of :func:`ddpg_jax.agent.losses.td_target`,
:func:`~ddpg_jax.agent.losses.critic_loss` and
:func:`~ddpg_jax.agent.losses.actor_loss`, so the gradient step calls either
kind the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ddpg_jax.agent.losses import target_action
from ddpg_jax.agent.state import Array, Params, Transition


def make_support(v_min: float, v_max: float, num_atoms: int) -> Array:
    """The fixed returns of the atoms, ``linspace(v_min, v_max, num_atoms)``, float32."""
    return jnp.linspace(v_min, v_max, num_atoms, dtype=jnp.float32)


def expected_value(logits: Array, support: Array) -> Array:
    """``sum_j softmax(logits)_j z_j`` over the last axis: the critic's value."""
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * support, axis=-1)


def categorical_projection(probs: Array, reward: Array, bootstrap: Array, support: Array
                           ) -> Array:
    """Projects the distribution of ``reward + bootstrap * Z`` onto ``support``.

    ``Z`` takes the value ``z_j = support[j]`` with probability ``probs[..., j]``.
    Each shifted atom ``r + bootstrap z_j``, clipped to ``[v_min, v_max]``, lies
    at fractional index ``b = (clip(...) - v_min) / delta`` between atoms
    ``l = floor(b)`` and ``l + 1``; its mass is split between them linearly,
    ``1 - (b - l)`` to the lower and ``b - l`` to the upper (Bellemare et al.
    2017, Algorithm 1). Both shares are ``max(0, 1 - |b - k|)`` for atom ``k``,
    which is how it is computed: a target on an atom gives all its mass to that
    atom, farther atoms get none, and the mass sums to 1 whatever the target.

    Every (source, destination) pair is weighed and summed, ``num_atoms^2``
    products per sample, in one expression that XLA fuses into the sum (no
    ``[..., num_atoms, num_atoms]`` array is stored; checked with the compiled
    program's memory analysis on CPU). A scatter-add would do ``num_atoms`` per
    sample but adds floats in no fixed order on a GPU, and a matrix product
    with a one-hot matrix would store it and be rounded to TF32 on a GPU.

    Args:
      probs: ``[..., num_atoms]`` probabilities.
      reward: ``[...]`` rewards (an n-step sample's discounted sum).
      bootstrap: ``[...]`` the factor of the next return, ``gamma^m (1 - terminated)``.
      support: ``[num_atoms]`` increasing, evenly spaced atoms.

    Returns:
      ``[..., num_atoms]`` projected probabilities.
    """
    num_atoms = support.shape[-1]
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (num_atoms - 1)
    shifted = jnp.clip(reward[..., None] + bootstrap[..., None] * support, v_min, v_max)
    b = jnp.clip((shifted - v_min) / delta, 0.0, num_atoms - 1.0)  # rounding kept inside
    atoms = jnp.arange(num_atoms, dtype=jnp.float32)
    # [..., source atom, destination atom]: the source's share on each destination atom.
    share = jnp.maximum(1.0 - jnp.abs(b[..., None] - atoms), 0.0)
    return jnp.sum(probs[..., None] * share, axis=-2)


def projected_target(
    target_actor_params: Params,
    target_critic_params: Params,
    batch: Transition,
    gamma: Array,
    actor_apply: Callable[[Params, Array], Array],
    critic_apply: Callable[[Params, Array, Array], Array],
    action_noise: Array | None = None,
    action_low: Array | None = None,
    action_high: Array | None = None,
    *,
    support: Array,
) -> Array:
    """The target distribution ``[batch, num_atoms]``: the projected n-step return of the
    target critic with the lower mean, per sample.

    Each target critic's distribution at ``(s', mu'(s') + smoothing)`` is
    projected with ``bootstrap = gamma * discount * (1 - terminated)`` (the
    n-step sample's ``discount`` is ``gamma^(m-1)``, so gamma^m in all; only
    termination cuts the bootstrap, not truncation). The clipped double-Q
    then picks, for each sample, the projected distribution whose expected
    value is the smallest, as FastTD3 does (it compares the means after the
    projection, which equal the means of the clipped shifted atoms; on an exact
    tie FastTD3 takes its second critic, this the first).
    """
    next_action = target_action(target_actor_params, batch.next_obs, actor_apply, action_noise,
                                action_low, action_high)
    probs = jax.nn.softmax(critic_apply(target_critic_params, batch.next_obs, next_action),
                           axis=-1)  # [num_critics, batch, num_atoms]
    bootstrap = 1.0 - batch.terminated
    discount = getattr(batch, "discount", None)  # an n-step sample: gamma^m in all
    if discount is not None:
        bootstrap = discount * bootstrap
    bootstrap = gamma * bootstrap
    # The projection keeps the mean of the clipped shifted atoms (each atom's mass is split
    # so that its mean stays where it landed), so the projected means are known without
    # projecting: only the chosen distribution is projected.
    shifted = jnp.clip(batch.reward[..., None] + bootstrap[..., None] * support, support[0],
                       support[-1])
    values = jnp.sum(probs * shifted, axis=-1)  # [num_critics, batch]
    lowest = jnp.argmin(values, axis=0)  # [batch]
    chosen = jnp.take_along_axis(probs, lowest[None, :, None], axis=0)[0]
    return jax.lax.stop_gradient(
        categorical_projection(chosen, batch.reward, bootstrap, support))


def critic_loss(
    critic_params: Params,
    batch: Transition,
    target: Array,
    critic_apply: Callable[[Params, Array, Array], Array],
    *,
    support: Array,
) -> tuple[Array, dict[str, Array]]:
    """Cross-entropy of each critic against the target distribution, batch mean, summed over
    critics: ``L = sum_k 1/N sum_i -sum_j p_ij log softmax(logits_k(s_i, a_i))_j``.

    The metrics are expected values: ``q_mean`` of the online critics at the
    batch's actions, ``target_mean`` of the target distribution.
    """
    logits = critic_apply(critic_params, batch.obs, batch.action)  # [critics, batch, atoms]
    cross_entropy = -jnp.sum(target[None] * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    loss = jnp.sum(jnp.mean(cross_entropy, axis=-1))
    return loss, {"q_mean": jnp.mean(expected_value(logits, support)),
                  "target_mean": jnp.mean(jnp.sum(target * support, axis=-1))}


def actor_loss(
    actor_params: Params,
    critic_params: Params,
    obs: Array,
    actor_apply: Callable[[Params, Array], Array],
    critic_apply: Callable[[Params, Array, Array], Array],
    *,
    support: Array,
) -> tuple[Array, dict[str, Array]]:
    """Negative batch mean of the smallest expected value over the critics at mu(s).

    FastTD3's actor (``update_pol`` with its default ``use_cdq``) maximises the
    minimum of its two critics' expected values, not the first critic's as the
    scalar TD3 step does; this follows FastTD3. With one critic it is that
    critic's expected value.
    """
    action = actor_apply(actor_params, obs)
    q = jnp.min(expected_value(critic_apply(critic_params, obs, action), support), axis=0)
    return -jnp.mean(q), {"policy_q_mean": jnp.mean(q)}


class Objectives(NamedTuple):
    """The target, critic loss and actor loss of one critic kind, with the signatures of
    :mod:`ddpg_jax.agent.losses`."""

    td_target: Callable[..., Array]
    critic_loss: Callable[..., tuple[Array, dict[str, Array]]]
    actor_loss: Callable[..., tuple[Array, dict[str, Array]]]


def make_objectives(v_min: float, v_max: float, num_atoms: int) -> Objectives:
    """The C51 target and losses on ``linspace(v_min, v_max, num_atoms)``."""
    support = make_support(v_min, v_max, num_atoms)

    def td_target(*args: object) -> Array:
        return projected_target(*args, support=support)

    def c51_critic_loss(*args: object) -> tuple[Array, dict[str, Array]]:
        return critic_loss(*args, support=support)

    def c51_actor_loss(*args: object) -> tuple[Array, dict[str, Array]]:
        return actor_loss(*args, support=support)

    return Objectives(td_target, c51_critic_loss, c51_actor_loss)

"""Acting: the deterministic policy and its noisy exploration version."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from ddpg_jax.networks import Networks
from ddpg_jax.noise import Noise, NoiseState
from ddpg_jax.types import Array, Params, PRNGKey


def make_explore(
    networks: Networks, noise: Noise
) -> Callable[[Params, NoiseState, PRNGKey, Array, Array], tuple[Array, NoiseState]]:
    """Builds ``explore(actor_params, noise_state, key, obs, scale) -> (action, noise_state)``.

    The action is mu(s) plus noise in units of the action half-range,
    ``(high - low) / 2 * scale * n``, clipped to the env's own ``[low, high]``
    (not to [-1, 1]). ``obs`` is ``[num_envs, obs_dim]``.
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

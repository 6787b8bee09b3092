"""Actor and critic networks and their pure apply functions.

The modules are ordinary flax.linen MLPs; the rest of the library only sees
the pure functions of :class:`Networks`, so any other pair of functions with
the same signatures can be plugged in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax.agent.state import Array, Params, PRNGKey
from ddpg_jax.config import DDPGConfig

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "leaky_relu": nn.leaky_relu,
}


def _uniform(bound: float) -> Callable[..., Array]:
    """Initializer drawing from U(-bound, bound)."""
    base = nn.initializers.uniform(scale=2 * bound)
    return lambda key, shape, dtype=jnp.float32: base(key, shape, dtype) - bound


def _dense(features: int, fan_in: int, weight_init: str, final_layer_init: float = 0.0
           ) -> nn.Dense:
    if final_layer_init > 0:
        # Lillicrap et al. (2015), Sec. 7: U(-3e-3, 3e-3) keeps initial outputs near zero.
        init = _uniform(final_layer_init)
        return nn.Dense(features, kernel_init=init, bias_init=init)
    if weight_init == "fan_in_uniform":
        # Lillicrap et al.'s hidden layers, and PyTorch's nn.Linear default (which the
        # TD3 authors' code uses): weights and biases from U(-1/sqrt(f), 1/sqrt(f)).
        init = _uniform(1.0 / float(np.sqrt(fan_in)))
        return nn.Dense(features, kernel_init=init, bias_init=init)
    return nn.Dense(features)  # flax: lecun-normal weights, zero biases


class MLP(nn.Module):
    """ReLU (or other) MLP; ``extra`` (if given) joins the input of hidden layer ``extra_layer``."""

    hidden_sizes: Sequence[int]
    out_features: int
    activation: str = "relu"
    final_layer_init: float = 0.0
    weight_init: str = "lecun_normal"
    extra_layer: int = 0

    @nn.compact
    def __call__(self, x: Array, extra: Array | None = None) -> Array:
        act = _ACTIVATIONS[self.activation]
        for i, width in enumerate(self.hidden_sizes):
            if extra is not None and i == self.extra_layer:
                x = jnp.concatenate([x, extra], axis=-1)
            x = act(_dense(width, x.shape[-1], self.weight_init)(x))
        return _dense(self.out_features, x.shape[-1], self.weight_init,
                      self.final_layer_init)(x)


class Actor(nn.Module):
    """Deterministic policy mu(s) with outputs in ``[low, high]`` per dimension.

    tanh squashes to (-1, 1); an affine map then sends -1 to ``low`` and +1 to
    ``high``, so asymmetric bounds (e.g. ``[0, 3]``) are handled exactly.
    """

    hidden_sizes: Sequence[int]
    action_low: Sequence[float]
    action_high: Sequence[float]
    activation: str = "relu"
    final_layer_init: float = 0.0
    weight_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        low = jnp.asarray(self.action_low, jnp.float32)
        high = jnp.asarray(self.action_high, jnp.float32)
        raw = MLP(self.hidden_sizes, low.shape[-1], self.activation, self.final_layer_init,
                  self.weight_init)(obs)
        return low + (jnp.tanh(raw) + 1.0) * 0.5 * (high - low)


class Critic(nn.Module):
    """Action value Q(s, a), or with ``num_atoms > 0`` the logits of its distribution.

    The action joins the input of hidden layer ``action_layer``: 0 concatenates
    it with the observation (the TD3 paper's critics), 1 feeds it to the second
    hidden layer (Lillicrap et al. 2015, Sec. 7). With ``num_atoms`` the last
    layer has that many outputs, the logits of a categorical distribution over
    fixed returns (C51, Bellemare et al. 2017), shape ``[..., num_atoms]``.
    """

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    final_layer_init: float = 0.0
    weight_init: str = "lecun_normal"
    action_layer: int = 0
    num_atoms: int = 0

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        out = MLP(self.hidden_sizes, max(self.num_atoms, 1), self.activation,
                  self.final_layer_init, self.weight_init, self.action_layer)(obs, action)
        return out if self.num_atoms else out[..., 0]


class CriticEnsemble(nn.Module):
    """``num_critics`` independent critics; returns values of shape ``[num_critics, ...]``
    (with ``num_atoms > 0``, logits ``[num_critics, ..., num_atoms]``)."""

    hidden_sizes: Sequence[int]
    num_critics: int = 1
    activation: str = "relu"
    final_layer_init: float = 0.0
    weight_init: str = "lecun_normal"
    action_layer: int = 0
    num_atoms: int = 0

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        return ensemble(self.hidden_sizes, self.activation, self.final_layer_init,
                        self.weight_init, self.action_layer, self.num_atoms)(obs, action)


class Networks(NamedTuple):
    """Pure functions of the actor and the critic ensemble.

    Attributes:
      actor_init: ``(key) -> params``.
      actor_apply: ``(params, obs[..., obs_dim]) -> action[..., action_dim]``.
      critic_init: ``(key) -> params`` (leading axis ``num_critics`` on every leaf).
      critic_apply: ``(params, obs, action) -> q[num_critics, ...]``; with the
        ``c51`` critic, logits ``[num_critics, ..., num_atoms]`` (see ``num_atoms``).
      action_low, action_high: float32 bounds of shape ``[action_dim]``.
      num_atoms: 0 for scalar critics; else the atoms of each critic's
        distribution (``config.critic == "c51"``).
    """

    actor_init: Callable[[PRNGKey], Params]
    actor_apply: Callable[[Params, Array], Array]
    critic_init: Callable[[PRNGKey], Params]
    critic_apply: Callable[[Params, Array, Array], Array]
    action_low: np.ndarray
    action_high: np.ndarray
    obs_dim: int
    num_atoms: int = 0


def make_networks(
    config: DDPGConfig, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray
) -> Networks:
    """Builds the actor and critic for an environment's shapes and bounds.

    The actor's hidden widths are ``actor_hidden_sizes`` and the critic's
    ``critic_hidden_sizes``; either, when empty, is ``hidden_sizes``.

    Args:
      config: supplies ``hidden_sizes``, ``activation``, ``final_layer_init``,
        ``weight_init``, ``critic_action_layer``, ``num_critics``, ``critic`` and
        ``num_atoms``.
      obs_dim: length of the flat observation.
      action_low: lower action bounds, shape ``[action_dim]``, finite.
      action_high: upper action bounds, same shape, ``> action_low``.

    Returns:
      The pure init and apply functions.
    """
    low = np.asarray(action_low, np.float32).reshape(-1)
    high = np.asarray(action_high, np.float32).reshape(-1)
    if low.shape != high.shape:
        raise ValueError(f"action_low shape {low.shape} != action_high shape {high.shape}")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
        raise ValueError(
            f"action bounds must be finite with high > low; got low={low}, high={high}"
        )
    actor_hidden = tuple(config.actor_hidden_sizes or config.hidden_sizes)
    critic_hidden = tuple(config.critic_hidden_sizes or config.hidden_sizes)
    actor = Actor(actor_hidden, tuple(low.tolist()), tuple(high.tolist()), config.activation,
                  config.final_layer_init, config.weight_init)
    num_atoms = config.num_atoms if config.critic == "c51" else 0
    critic = CriticEnsemble(critic_hidden, config.num_critics, config.activation,
                            config.final_layer_init, config.weight_init,
                            config.critic_action_layer, num_atoms)
    dummy_obs = jnp.zeros((obs_dim,), jnp.float32)
    dummy_act = jnp.zeros(low.shape, jnp.float32)

    def actor_init(key: PRNGKey) -> Params:
        return actor.init(key, dummy_obs)["params"]

    def actor_apply(params: Params, obs: Array) -> Array:
        return actor.apply({"params": params}, obs)

    def critic_init(key: PRNGKey) -> Params:
        return critic.init(key, dummy_obs, dummy_act)["params"]

    def critic_apply(params: Params, obs: Array, action: Array) -> Array:
        return critic.apply({"params": params}, obs, action)

    return Networks(actor_init, actor_apply, critic_init, critic_apply, low, high, obs_dim,
                    num_atoms)


def count_params(params: Params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))

"""Exploration noise as pure init/sample/reset functions with explicit state.

Both kinds share one state layout (the OU process value ``x``; Gaussian noise
keeps it at zero), so a trainer can switch kinds without changing the shape
of its carry. The scale is an argument of ``sample`` rather than a closed-over
constant, so it can be a traced, vmapped hyperparameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ddpg_jax.agent.state import Array, PRNGKey


class NoiseState(NamedTuple):
    x: Array  # [num_envs, action_dim] float32: OU process value (zeros for Gaussian)
    #: [num_envs] float32: each env's own scale when the learner draws them per
    #: env (``noise_scale_max > 0``); ``None`` when every env uses one scale.
    scale: Array | None = None


class Noise(NamedTuple):
    """Pure functions of an exploration process.

    Attributes:
      init: ``(num_envs, action_dim) -> NoiseState``.
      sample: ``(state, key, scale) -> (noise [num_envs, action_dim], state)``;
        unit-free, the caller multiplies by the action half-range. ``scale`` is
        a scalar, or ``[num_envs, 1]`` for a scale per env.
      reset: ``(state, done [num_envs] bool) -> state``: restarts the process of
        the environments whose episode ended.
    """

    init: Callable[[int, int], NoiseState]
    sample: Callable[[NoiseState, PRNGKey, Array], tuple[Array, NoiseState]]
    reset: Callable[[NoiseState, Array], NoiseState]


def _init(num_envs: int, action_dim: int) -> NoiseState:
    return NoiseState(jnp.zeros((num_envs, action_dim), jnp.float32))


def _reset(state: NoiseState, done: Array) -> NoiseState:
    return state._replace(x=jnp.where(done[:, None], 0.0, state.x))


def gaussian() -> Noise:
    """Independent N(0, scale^2) noise every step (Fujimoto et al. 2018)."""

    def sample(state: NoiseState, key: PRNGKey, scale: Array) -> tuple[Array, NoiseState]:
        return scale * jax.random.normal(key, state.x.shape, state.x.dtype), state

    return Noise(_init, sample, _reset)


def ornstein_uhlenbeck(theta: float = 0.15, dt: float = 1.0, mu: float = 0.0) -> Noise:
    """Ornstein-Uhlenbeck noise as in Lillicrap et al. (2015), Sec. 7.

    Euler-Maruyama discretisation of dx = theta (mu - x) dt + sigma dW:
    ``x' = x + theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1)``, with
    ``sigma`` the ``scale`` given to ``sample``. The returned noise is ``x'``.
    Its stationary standard deviation is ``sigma * sqrt(dt / (1 - (1 - theta dt)^2))``.
    """
    if not 0.0 < theta * dt <= 1.0:
        raise ValueError(f"theta * dt must be in (0, 1] for a mean-reverting process; got {theta * dt}")

    def sample(state: NoiseState, key: PRNGKey, scale: Array) -> tuple[Array, NoiseState]:
        eps = jax.random.normal(key, state.x.shape, state.x.dtype)
        x = state.x + theta * (mu - state.x) * dt + scale * jnp.sqrt(dt) * eps
        return x, state._replace(x=x)

    return Noise(_init, sample, _reset)


def make_noise(kind: str, theta: float = 0.15, dt: float = 1.0) -> Noise:
    """Returns the noise named ``kind`` (``"gaussian"`` or ``"ou"``)."""
    if kind == "gaussian":
        return gaussian()
    if kind == "ou":
        return ornstein_uhlenbeck(theta, dt)
    raise ValueError(f"unknown noise {kind!r}; accepted: gaussian | ou")

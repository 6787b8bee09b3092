"""The functional environment protocol shared by every env in :mod:`ddpg_jax.envs`.

An environment is a plain Python object whose methods are pure JAX functions of
explicit inputs. The object itself carries only static configuration, so it is
closed over (never traced) when ``reset`` / ``step`` are wrapped in ``jit``,
``vmap`` or ``lax.scan``. Everything that changes lives in two pytrees:

* ``params``: the physical constants and the time limit. They are ordinary
  pytree leaves, so a batch of params can be vmapped like any other input.
* ``state``: the dynamic state, which always has an integer ``time`` field
  counting the steps taken in the current episode.

The shape of the API follows gymnax 1.0, with termination and truncation kept
apart as in gymnasium:

>>> obs, state = env.reset(key, params)
>>> obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

``step`` resets automatically: when the episode ends (``terminated`` or
``truncated``), the returned ``obs`` / ``state`` already belong to a fresh
episode and ``info["final_observation"]`` holds the last observation of the
episode that just ended. That observation is the correct ``next_obs`` to store
for bootstrapping, and is what makes time-limit truncation harmless.
"""

from __future__ import annotations

import abc
from typing import Any, Generic, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from ddpg_jax.config import ConfigError

__all__ = ["Box", "Environment", "StepInfo", "select_reset"]

TState = TypeVar("TState")
TParams = TypeVar("TParams")

#: The info dict returned by :meth:`Environment.step`. Its keys never change
#: from one step to the next, so it can be carried through ``lax.scan``.
StepInfo = dict[str, jax.Array]


class Box(NamedTuple):
    """A continuous space: every element lies in ``[low, high]`` elementwise.

    It is a static description of an env, not meant to be passed through
    ``jit`` as an argument (``shape`` would then become traced).

    Attributes:
      low: lower bounds, float32 array of shape ``shape`` (may hold ``-inf``).
      high: upper bounds, float32 array of shape ``shape`` (may hold ``inf``).
      shape: the shape of one element.
    """

    low: jax.Array
    high: jax.Array
    shape: tuple[int, ...]

    @classmethod
    def from_bounds(cls, low: Any, high: Any, shape: tuple[int, ...] | None = None) -> Box:
        """Builds a Box, broadcasting scalar bounds to ``shape``.

        Args:
          low: scalar or array lower bound.
          high: scalar or array upper bound.
          shape: the element shape; inferred from the bounds when omitted.

        Returns:
          A Box whose ``low`` / ``high`` are float32 arrays of ``shape``.
        """
        low = jnp.asarray(low, jnp.float32)
        high = jnp.asarray(high, jnp.float32)
        if shape is None:
            shape = jnp.broadcast_shapes(low.shape, high.shape)
        shape = tuple(int(d) for d in shape)
        return cls(jnp.broadcast_to(low, shape), jnp.broadcast_to(high, shape), shape)

    def sample(self, key: jax.Array) -> jax.Array:
        """Draws one element: uniform where both bounds are finite.

        Unbounded dimensions get a standard normal draw clipped to the bounds,
        because a uniform distribution over an infinite interval does not exist.

        Args:
          key: a PRNG key.

        Returns:
          A float32 array of shape ``shape``.
        """
        finite = jnp.isfinite(self.low) & jnp.isfinite(self.high)
        key_u, key_n = jax.random.split(key)
        # Substitute 0/1 for infinite bounds so the uniform draw stays NaN-free.
        lo = jnp.where(finite, self.low, 0.0)
        hi = jnp.where(finite, self.high, 1.0)
        uniform = jax.random.uniform(key_u, self.shape, jnp.float32, lo, hi)
        normal = jnp.clip(jax.random.normal(key_n, self.shape, jnp.float32), self.low, self.high)
        return jnp.where(finite, uniform, normal)

    def contains(self, x: jax.Array) -> jax.Array:
        """Whether ``x`` has this shape and lies within the bounds (a bool scalar)."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high))

    def clip(self, x: jax.Array) -> jax.Array:
        """Projects ``x`` onto the box."""
        return jnp.clip(x, self.low, self.high)


def _replace_time(state: Any, time: jax.Array) -> Any:
    # Env states are flax.struct dataclasses (``replace``) or NamedTuples
    # (``_replace``); both are accepted so adapters can pick either.
    if hasattr(state, "replace"):
        return state.replace(time=time)
    return state._replace(time=time)


class Environment(abc.ABC, Generic[TState, TParams]):
    """Base class of functional environments with time limit and auto-reset.

    Subclasses implement the raw dynamics in :meth:`reset_env` and
    :meth:`step_env`, plus :attr:`default_params` and the two spaces. The
    public :meth:`reset` and :meth:`step` add what every env needs the same
    way: dtype normalisation, the episode time limit and the automatic reset.

    Requirements on subclasses:

    * ``state`` is a pytree (``flax.struct.dataclass`` or ``NamedTuple``) with
      an int32 scalar field ``time``; :meth:`reset_env` sets it to 0 and
      :meth:`step` advances it (``step_env`` may leave it unchanged).
    * ``params`` has a field ``max_steps_in_episode`` (or the subclass
      overrides :meth:`max_steps`).
    * Neither method branches in Python on traced values.
    """

    # ------------------------------------------------------------------ #
    # To implement
    # ------------------------------------------------------------------ #

    @property
    @abc.abstractmethod
    def default_params(self) -> TParams:
        """The params used when ``None`` is passed."""

    @abc.abstractmethod
    def reset_env(self, key: jax.Array, params: TParams) -> tuple[jax.Array, TState]:
        """Samples an initial state; returns ``(obs, state)`` with ``state.time == 0``."""

    @abc.abstractmethod
    def step_env(
        self, key: jax.Array, state: TState, action: jax.Array, params: TParams
    ) -> tuple[jax.Array, TState, jax.Array, jax.Array, jax.Array]:
        """One transition, without time limit or reset.

        Returns:
          ``(obs, state, reward, terminated, truncated_by_env)``, where
          ``truncated_by_env`` flags an env-specific cut that is not a true
          terminal state (most envs return ``False``; the time limit is added
          by :meth:`step`).
        """

    @abc.abstractmethod
    def observation_space(self, params: TParams | None = None) -> Box:
        """The observation space under ``params`` (default params if ``None``)."""

    @abc.abstractmethod
    def action_space(self, params: TParams | None = None) -> Box:
        """The action space under ``params`` (default params if ``None``)."""

    # ------------------------------------------------------------------ #
    # Provided
    # ------------------------------------------------------------------ #

    @property
    def name(self) -> str:
        """A human-readable id of the environment."""
        return type(self).__name__

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation under the default params."""
        return self.observation_space(self.default_params).shape

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action under the default params."""
        return self.action_space(self.default_params).shape

    def max_steps(self, params: TParams) -> jax.Array:
        """The episode time limit: steps after which ``truncated`` is set."""
        return params.max_steps_in_episode  # type: ignore[attr-defined]

    def reset(self, key: jax.Array, params: TParams | None = None) -> tuple[jax.Array, TState]:
        """Starts an episode.

        Args:
          key: a PRNG key (raw ``uint32[2]`` or typed).
          params: env params; ``None`` means :attr:`default_params`.

        Returns:
          ``(obs, state)`` with ``obs`` float32 of shape :attr:`obs_shape`.
        """
        if params is None:
            params = self.default_params
        obs, state = self.reset_env(key, params)
        return jnp.asarray(obs, jnp.float32), state

    def step(
        self,
        key: jax.Array,
        state: TState,
        action: jax.Array,
        params: TParams | None = None,
    ) -> tuple[jax.Array, TState, jax.Array, jax.Array, jax.Array, StepInfo]:
        """Advances one step, applying the time limit and resetting when done.

        The reset uses its own key, split from ``key``
        (``jax.random.split(key)[1]``; the transition uses ``[0]``), so the
        result is a deterministic function of the inputs. The reset is always
        computed and selected with ``jnp.where``, which keeps the function free
        of data-dependent Python control flow.

        As in gymnasium's ``TimeLimit``, ``truncated`` is set whenever the time
        limit is reached, even if the same step also terminated; learners
        should bootstrap with ``1 - terminated`` only.

        Args:
          key: a PRNG key.
          state: the current state.
          action: the action, shape :attr:`action_shape`; values out of bounds
            are handled exactly as the wrapped dynamics do (the built-in envs
            clip them like gymnasium).
          params: env params; ``None`` means :attr:`default_params`.

        Returns:
          ``(obs, state, reward, terminated, truncated, info)``: ``obs`` float32
          (of the new episode if this step ended one), ``reward`` float32
          scalar, ``terminated`` / ``truncated`` bool scalars, and ``info`` with
          ``"final_observation"``: the observation reached by this step, before
          any reset (equal to ``obs`` when the episode goes on).
        """
        if params is None:
            params = self.default_params
        key_step, key_reset = jax.random.split(key)
        obs_step, state_step, reward, terminated, truncated = self.advance(
            key_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        obs_reset, state_reset = self.reset_env(key_reset, params)
        next_obs, next_state = select_reset(done, (obs_reset, state_reset),
                                            (obs_step, state_step))
        info: StepInfo = {"final_observation": obs_step}
        return next_obs, next_state, reward, terminated, truncated, info

    def advance(
        self, key: jax.Array, state: TState, action: jax.Array, params: TParams
    ) -> tuple[jax.Array, TState, jax.Array, jax.Array, jax.Array]:
        """One transition with the time limit applied, before any reset.

        The part of :meth:`step` that every step computes; auto-resets built
        differently (see :mod:`ddpg_jax.envs.batched_reset`) share it.

        Returns:
          ``(obs, state, reward, terminated, truncated)`` with the dtypes and
          shapes :meth:`step` documents; ``state.time`` advanced by one.
        """
        obs_step, state_step, reward, terminated, truncated_env = self.step_env(
            key, state, action, params
        )
        time = jnp.asarray(state.time, jnp.int32) + 1
        state_step = _replace_time(state_step, time)
        obs_step = jnp.asarray(obs_step, jnp.float32)
        reward = jnp.asarray(reward, jnp.float32).reshape(())
        terminated = jnp.asarray(terminated, jnp.bool_).reshape(())
        truncated = jnp.logical_or(
            jnp.asarray(truncated_env, jnp.bool_).reshape(()),
            time >= self.max_steps(params),
        )
        return obs_step, state_step, reward, terminated, truncated

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.name}>"


def select_reset(done: jax.Array, reset: Any, stepped: Any) -> Any:
    """``reset`` where ``done`` and ``stepped`` elsewhere, leaf by leaf, in ``stepped``'s dtypes.

    ``done`` is a bool scalar (or has the leading shape of every leaf, for a
    batch). Reset leaves are cast to the step leaf's dtype so that the state
    is a stable scan carry (typed PRNG keys cannot be cast, nor need it).
    """

    def select(reset_leaf: Any, step_leaf: Any) -> jax.Array:
        step_leaf = jnp.asarray(step_leaf)
        reset_leaf = jnp.asarray(reset_leaf)
        if not jax.dtypes.issubdtype(step_leaf.dtype, jax.dtypes.prng_key):
            reset_leaf = reset_leaf.astype(step_leaf.dtype)
        shape = step_leaf.shape
        mask = jnp.reshape(done, jnp.shape(done) + (1,) * (len(shape) - jnp.ndim(done)))
        return jax.lax.select(jnp.broadcast_to(mask, shape),
                              jnp.broadcast_to(reset_leaf, shape), step_leaf)

    return jax.tree.map(select, reset, stepped)


class EnvSpecError(ValueError):
    """The environment id is unknown, or its spaces are not ones DDPG supports."""


def env_spec(env: Environment, params: Any) -> tuple[int, np.ndarray, np.ndarray]:
    """``(obs_dim, action_low, action_high)`` of a JAX env, refusing shapes DDPG cannot use."""
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    low, high = np.asarray(act_space.low, np.float32), np.asarray(act_space.high, np.float32)
    if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
        raise ConfigError(f"{env!r} has observation shape {obs_space.shape} and action shape "
                          f"{act_space.shape}; accepted: flat (1-D) observations and actions.")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ConfigError(f"{env!r} has unbounded actions (low={low}, high={high}); accepted: "
                          "finite bounds.")
    return obs_space.shape[0], low, high

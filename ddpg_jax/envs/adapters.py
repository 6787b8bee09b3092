"""Adapters that present other JAX environment libraries as :class:`Environment`.

* :func:`from_gymnasium_functional`: gymnasium's functional JAX envs
  (``gymnasium.experimental.functional.FuncEnv``, e.g.
  ``gymnasium.envs.phys2d.PendulumFunctional``), or a ``FunctionalJaxEnv``
  wrapping one.
* :func:`from_gymnax`: gymnax (>= 1.0) envs; optional extra ``ddpg-jax[gymnax]``.
* :func:`from_brax`: brax envs; optional extra ``ddpg-jax[brax]``.
* :class:`BraxProtocolEnv`: what brax and MuJoCo Playground envs share (both
  have brax's ``reset(rng) -> State`` / ``step(State, action) -> State``);
  :func:`ddpg_jax.envs.from_playground` builds on it.

Every adapter keeps the wrapped env's own dynamics (including how it treats
out-of-bounds actions) and routes time limit and auto-reset through
:meth:`Environment.step`, so all envs share one set of semantics. Each returns
``(env, params)`` like :func:`ddpg_jax.envs.make`. Only continuous (``Box``)
action spaces are accepted: DDPG's actor outputs real vectors.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ddpg_jax.envs.core import Box, Environment

__all__ = [
    "AdapterState",
    "BraxEnv",
    "BraxParams",
    "BraxProtocolEnv",
    "FuncEnvParams",
    "GymnasiumFunctionalEnv",
    "GymnaxEnv",
    "from_brax",
    "from_gymnasium_functional",
    "from_gymnax",
]

GYMNAX_HINT = 'gymnax is not installed: pip install "ddpg-jax[gymnax]"'
BRAX_HINT = 'brax is not installed: pip install "ddpg-jax[brax]"'


@struct.dataclass
class AdapterState:
    """The wrapped library's state plus our episode step counter."""

    env_state: Any  # the wrapped env's own state pytree
    time: jax.Array  # int32 []: steps taken in this episode


def _zero_time() -> jax.Array:
    return jnp.zeros((), jnp.int32)


def _check_positive_steps(max_steps: Any, what: str) -> None:
    # Validate eagerly with the number in the message; traced values pass.
    if isinstance(max_steps, (int, np.integer)) and max_steps < 1:
        raise ValueError(f"{what} must be >= 1, got {max_steps}")


# ---------------------------------------------------------------------- #
# gymnasium functional envs
# ---------------------------------------------------------------------- #


@struct.dataclass
class FuncEnvParams:
    """Params of a wrapped gymnasium ``FuncEnv``."""

    env_params: Any  # the FuncEnv's own params pytree (None if it has none)
    max_steps_in_episode: int  # time limit added by the adapter


def _box_from_gymnasium(space: Any, what: str, env_name: str) -> Box:
    import gymnasium

    if not isinstance(space, gymnasium.spaces.Box):
        raise ValueError(
            f"{env_name} has a {what} space {space!r}; only continuous gymnasium.spaces.Box "
            f"{what} spaces are supported (DDPG needs real-valued vectors)"
        )
    return Box.from_bounds(np.asarray(space.low), np.asarray(space.high), space.shape)


class GymnasiumFunctionalEnv(Environment[AdapterState, FuncEnvParams]):
    """A gymnasium ``FuncEnv`` seen through the :class:`Environment` protocol.

    Mapping: ``reset`` = ``initial`` then ``observation``; ``step`` =
    ``transition``, ``observation`` of the next state, ``reward(state, action,
    next_state)`` and ``terminal(next_state)``, which gives ``terminated``.
    ``FuncEnv`` has no time limit, so truncation comes only from
    ``max_steps_in_episode``. Each function gets its own key, where gymnasium's
    ``FunctionalJaxEnv`` passes one key to all of them; deterministic envs are
    unaffected.
    """

    def __init__(self, func_env: Any, max_steps_in_episode: int, env_params: Any = None):
        """See :func:`from_gymnasium_functional`."""
        # A gymnasium.Env built on a FuncEnv (FunctionalJaxEnv) keeps it here.
        func_env = getattr(func_env, "func_env", func_env)
        for method in ("initial", "transition", "observation", "reward", "terminal"):
            if not callable(getattr(func_env, method, None)):
                raise TypeError(
                    f"{type(func_env).__name__} is not a gymnasium FuncEnv: it has no {method}()"
                )
        _check_positive_steps(max_steps_in_episode, "max_steps_in_episode")
        self.func_env = func_env
        self._name = type(func_env).__name__
        self._obs_space = _box_from_gymnasium(func_env.observation_space, "observation", self._name)
        self._action_space = _box_from_gymnasium(func_env.action_space, "action", self._name)
        if env_params is None:
            env_params = getattr(func_env, "default_params", None)
        self._default_params = FuncEnvParams(
            env_params=env_params, max_steps_in_episode=max_steps_in_episode
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> FuncEnvParams:
        return self._default_params

    def observation_space(self, params: FuncEnvParams | None = None) -> Box:
        return self._obs_space

    def action_space(self, params: FuncEnvParams | None = None) -> Box:
        return self._action_space

    @staticmethod
    def _kw(params: FuncEnvParams) -> dict[str, Any]:
        # FuncEnvs without params (None) are called without the argument, so
        # their own defaults apply.
        return {} if params.env_params is None else {"params": params.env_params}

    def reset_env(self, key: jax.Array, params: FuncEnvParams) -> tuple[jax.Array, AdapterState]:
        key_init, key_obs = jax.random.split(key)
        env_state = self.func_env.initial(key_init, **self._kw(params))
        obs = self.func_env.observation(env_state, key_obs, **self._kw(params))
        return jnp.asarray(obs, jnp.float32), AdapterState(env_state, _zero_time())

    def step_env(
        self, key: jax.Array, state: AdapterState, action: jax.Array, params: FuncEnvParams
    ) -> tuple[jax.Array, AdapterState, jax.Array, jax.Array, jax.Array]:
        key_trans, key_obs, key_reward, key_term = jax.random.split(key, 4)
        kw = self._kw(params)
        env_state = state.env_state
        next_env_state = self.func_env.transition(env_state, action, key_trans, **kw)
        obs = self.func_env.observation(next_env_state, key_obs, **kw)
        reward = self.func_env.reward(env_state, action, next_env_state, key_reward, **kw)
        terminated = self.func_env.terminal(next_env_state, key_term, **kw)
        next_state = state.replace(env_state=next_env_state)
        return obs, next_state, reward, terminated, jnp.zeros((), jnp.bool_)


def from_gymnasium_functional(
    func_env: Any, max_steps_in_episode: int, env_params: Any = None
) -> tuple[GymnasiumFunctionalEnv, FuncEnvParams]:
    """Wraps a gymnasium functional env (``FuncEnv``) as an :class:`Environment`.

    Args:
      func_env: a ``gymnasium.experimental.functional.FuncEnv`` instance (e.g.
        ``gymnasium.envs.phys2d.PendulumFunctional()``), or a
        ``FunctionalJaxEnv`` such as ``PendulumJaxEnv()`` (its ``func_env``
        is used).
      max_steps_in_episode: time limit in steps (FuncEnvs have none; use 200
        for the phys2d pendulum to match ``Pendulum-v1``).
      env_params: the FuncEnv's own params; default ``func_env.default_params``.

    Returns:
      ``(env, params)``.

    Raises:
      ValueError: if an action or observation space is not a ``Box`` (e.g.
        ``CartPoleFunctional``, whose actions are ``Discrete(2)``), or the
        time limit is not positive.
      TypeError: if ``func_env`` is not a FuncEnv.
    """
    env = GymnasiumFunctionalEnv(func_env, max_steps_in_episode, env_params)
    return env, env.default_params


# ---------------------------------------------------------------------- #
# gymnax
# ---------------------------------------------------------------------- #


def _import_optional(module: str, hint: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = getattr(e, "name", None)
        root = module.split(".")[0]
        if missing is None or missing == root or missing.startswith(root + "."):
            raise ImportError(hint) from e
        # The package is there but one of its own dependencies is not.
        raise ImportError(f"{hint} (importing {module} failed: {e})") from e


def _box_from_gymnax(space: Any, what: str, env_name: str) -> Box:
    from gymnax.environments import spaces

    if not isinstance(space, spaces.Box):
        raise ValueError(
            f"gymnax env {env_name} has a {what} space {space!r}; only continuous "
            f"gymnax Box {what} spaces are supported (DDPG needs real-valued vectors)"
        )
    return Box.from_bounds(space.low, space.high, tuple(space.shape))


class GymnaxEnv(Environment[AdapterState, Any]):
    """A gymnax environment seen through the :class:`Environment` protocol.

    The params are gymnax's own params (they carry ``max_steps_in_episode``,
    which this adapter uses as the time limit). The adapter calls gymnax's
    ``reset_env`` / ``step_env`` (no gymnax auto-reset) and lets
    :meth:`Environment.step` split the key exactly as gymnax 1.0's ``step``
    does, so with the same key both produce the same transitions and resets.

    How ``terminated`` / ``truncated`` are recovered:

    * gymnax 1.0 (envs with ``is_truncated``): ``step_env``'s done flag is the
      natural termination and the time limit is ``is_truncated``; both map
      one to one.
    * older gymnax, whose single ``done`` includes the time limit: a step that
      reaches ``max_steps_in_episode`` is reported as truncated and not
      terminated, even if the env also reached a terminal state on that very
      step (gymnax's flag cannot tell the two apart there). Note that
      ``info["discount"]`` does not help in that API: it is also 0 on timeout.
    """

    def __init__(self, gymnax_env: Any, params: Any = None):
        """See :func:`from_gymnax`."""
        self.gymnax_env = gymnax_env
        self._name = str(getattr(gymnax_env, "name", type(gymnax_env).__name__))
        self._default_params = gymnax_env.default_params if params is None else params
        if not hasattr(self._default_params, "max_steps_in_episode"):
            raise ValueError(f"gymnax params of {self._name} have no max_steps_in_episode")
        _check_positive_steps(self._default_params.max_steps_in_episode, "max_steps_in_episode")
        self._separate_truncation = callable(getattr(gymnax_env, "is_truncated", None))
        # Validate the spaces now, before anything is traced.
        self.action_space(self._default_params)
        self.observation_space(self._default_params)

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> Any:
        return self._default_params

    def observation_space(self, params: Any = None) -> Box:
        params = self.default_params if params is None else params
        return _box_from_gymnax(
            self.gymnax_env.observation_space(params), "observation", self._name
        )

    def action_space(self, params: Any = None) -> Box:
        params = self.default_params if params is None else params
        return _box_from_gymnax(self.gymnax_env.action_space(params), "action", self._name)

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, AdapterState]:
        obs, env_state = self.gymnax_env.reset_env(key, params)
        return obs, AdapterState(env_state, _zero_time())

    def step_env(
        self, key: jax.Array, state: AdapterState, action: jax.Array, params: Any
    ) -> tuple[jax.Array, AdapterState, jax.Array, jax.Array, jax.Array]:
        obs, env_state, reward, done, _ = self.gymnax_env.step_env(
            key, state.env_state, action, params
        )
        done = jnp.asarray(done, jnp.bool_).reshape(())
        if self._separate_truncation:
            terminated = done
            truncated = jnp.asarray(self.gymnax_env.is_truncated(env_state, params), jnp.bool_)
        else:
            time_up = state.time + 1 >= params.max_steps_in_episode
            terminated = done & ~time_up
            truncated = done & time_up
        return obs, state.replace(env_state=env_state), reward, terminated, truncated


def from_gymnax(env_or_id: Any, params: Any = None) -> tuple[GymnaxEnv, Any]:
    """Wraps a gymnax (>= 1.0) environment as an :class:`Environment`.

    Requires the optional extra: ``pip install "ddpg-jax[gymnax]"``.

    Args:
      env_or_id: a gymnax env id (e.g. ``"Pendulum-v1"``,
        ``"MountainCarContinuous-v0"``) or a gymnax ``Environment`` instance.
      params: gymnax env params; default: the env's default params.

    Returns:
      ``(env, params)``, where ``params`` are gymnax's params.

    Raises:
      ImportError: if gymnax is not installed.
      ValueError: if the action or observation space is not a gymnax ``Box``.

    Note:
      gymnax's envs are ports and may differ from gymnasium's: e.g. gymnax
      1.0.1's ``MountainCarContinuous-v0`` zeroes the velocity when
      ``position >= goal_position`` instead of at the left wall. Prefer the
      built-in envs from :func:`ddpg_jax.envs.make` for those two ids.
    """
    gymnax = _import_optional("gymnax", GYMNAX_HINT)
    if isinstance(env_or_id, str):
        env, default_params = gymnax.make(env_or_id)
        params = default_params if params is None else params
    else:
        env = env_or_id
    adapter = GymnaxEnv(env, params)
    return adapter, adapter.default_params


# ---------------------------------------------------------------------- #
# envs with brax's functional protocol: brax and MuJoCo Playground
# ---------------------------------------------------------------------- #


@struct.dataclass
class BraxParams:
    """Params of an env with brax's protocol (brax or MuJoCo Playground).

    Those envs keep their physical constants inside; only the time limit is
    a param here.
    """

    max_steps_in_episode: int  # time limit in agent steps (after action repeat)


# Wrappers that batch or reset on their own would fight our vmap and auto-reset.
# The Brax* names are MuJoCo Playground's versions of brax's wrappers.
_UNSUPPORTED_WRAPPERS = (
    "AutoResetWrapper",
    "VmapWrapper",
    "DomainRandomizationVmapWrapper",
    "EvalWrapper",
    "BraxAutoResetWrapper",
    "BraxDomainRandomizationVmapWrapper",
)


def _check_count(value: Any, what: str) -> int:
    """An integer setting that must be >= 1, validated before anything is traced."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def _keep_dtypes(new: Any, old: Any) -> Any:
    """``new`` with the dtypes of ``old``, leaf by leaf.

    Some envs return a state whose leaves differ in dtype from the state they
    were given (an int counter from ``reset`` that becomes float after one
    step, say). A scan carry must keep its types, so the state coming out of
    a step takes the types of the state that went in. PRNG keys are left alone.
    """

    def cast(n: Any, o: Any) -> Any:
        n = jnp.asarray(n)
        o_dtype = jnp.asarray(o).dtype
        if n.dtype == o_dtype or jax.dtypes.issubdtype(o_dtype, jax.dtypes.prng_key):
            return n
        return n.astype(o_dtype)

    return jax.tree.map(cast, new, old)


class BraxProtocolEnv(Environment[AdapterState, BraxParams]):
    """Shared base of the adapters for envs with brax's functional protocol.

    brax envs and MuJoCo Playground tasks (``MjxEnv``) work alike:
    ``reset(rng) -> State`` and ``step(State, action) -> State``, where
    ``State`` holds ``obs``, ``reward``, ``done``, ``info`` and ``metrics``
    (plus the physics state). This class maps them onto :class:`Environment`:

    * the wrapped ``State`` is kept whole in :class:`AdapterState`;
    * ``done`` is a true termination (a fallen hopper, NaN physics); the time
      limit comes from :class:`BraxParams` and is reported as truncation. If
      the wrapped env carries brax's ``info["truncation"]`` (it is wrapped in
      brax's ``EpisodeWrapper``), that flag is honoured: ``truncated =
      truncation``, ``terminated = done and not truncation``;
    * ``action_repeat`` > 1 applies each action that many times, summing the
      rewards, as brax's ``EpisodeWrapper`` does (which playground's
      ``wrap_for_brax_training`` uses): the inner steps are not cut short by
      a ``done`` on an earlier one, and ``done`` is that of the last one.
      ``episode_length`` counts the inner steps, like ``EpisodeWrapper``'s
      counter, which advances by ``action_repeat`` per agent step and ends
      the episode once it reaches ``episode_length``: an episode therefore
      lasts ``ceil(episode_length / action_repeat)`` agent steps;
    * dict observations: the entry ``obs_key`` is the observation;
    * steps take no key (these envs are deterministic given their state);
      actions are passed unchanged, in the protocol's range ``[-1, 1]``.
    """

    def __init__(
        self,
        inner: Any,
        *,
        name: str,
        episode_length: int,
        action_repeat: int = 1,
        obs_key: str | None = "state",
        family: str = "brax",
    ):
        """Validates the settings and the observation layout (by abstract evaluation only)."""
        layer = inner
        while layer is not None:
            if type(layer).__name__ in _UNSUPPORTED_WRAPPERS:
                raise ValueError(
                    f"{family} env is wrapped in {type(layer).__name__}; pass the bare env (or "
                    "one wrapped only in brax's EpisodeWrapper): ddpg_jax resets and vmaps by "
                    "itself"
                )
            layer = getattr(layer, "env", None) if "Wrapper" in type(layer).__name__ else None
        self.inner = inner
        # The inner reset and step behind jit: a program traces each once per input shape and
        # reuses it wherever it appears (the vmapped step, the reset branch, each program of a
        # run), instead of running the physics' Python again at every appearance.
        self._inner_reset = jax.jit(lambda key: self.inner.reset(key))
        self._inner_step_once = jax.jit(lambda s, action: self.inner.step(s, action))
        self.episode_length = _check_count(episode_length, "episode_length")
        self.action_repeat = _check_count(action_repeat, "action_repeat")
        self.obs_key = obs_key
        self._name = name
        self._family = family
        action_size = getattr(inner, "action_size", None)
        if not isinstance(action_size, (int, np.integer)) or action_size < 1:
            raise ValueError(f"{family} env {name} has action_size {action_size!r}; "
                             "expected a positive integer")
        # The observation layout, from an abstract reset: nothing is compiled or run.
        layout = jax.eval_shape(self._inner_reset, jax.random.PRNGKey(0)).obs
        self._structured = isinstance(layout, Mapping)
        if self._structured:
            self._check_obs_key(sorted(layout))
        obs = self._observe_layout(layout)
        if len(obs.shape) != 1:
            where = f"observation {obs_key!r}" if self._structured else "observation"
            raise ValueError(
                f"{family} env {name} has {where} of shape {tuple(obs.shape)}; only flat "
                "(1-D) observation vectors are supported by the MLP networks"
            )
        self._obs_space = Box.from_bounds(-jnp.inf, jnp.inf, (int(obs.shape[0]),))
        self._action_space = Box.from_bounds(-1.0, 1.0, (int(action_size),))
        steps = -(-self.episode_length // self.action_repeat)  # ceil
        self._default_params = BraxParams(max_steps_in_episode=steps)

    def _check_obs_key(self, keys: list[str]) -> None:
        """Refuses an ``obs_key`` that the env's dict observations do not have."""
        if self.obs_key is None:
            raise ValueError(
                f"{self._family} env {self._name} has dict observations with keys "
                f"{', '.join(map(repr, keys))}; pass obs_key= one of them"
            )
        if self.obs_key not in keys:
            raise ValueError(
                f"{self._family} env {self._name} has no observation key {self.obs_key!r}; its "
                f"observation keys are {', '.join(map(repr, keys))}; pass obs_key= one of them"
            )

    def _observe_layout(self, obs: Any) -> Any:
        """The observation vector within the env's observation (a dict or the vector itself)."""
        return obs[self.obs_key] if self._structured else obs

    def _observe(self, inner_state: Any) -> jax.Array:
        return self._observe_layout(inner_state.obs)

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> BraxParams:
        return self._default_params

    def observation_space(self, params: BraxParams | None = None) -> Box:
        return self._obs_space

    def action_space(self, params: BraxParams | None = None) -> Box:
        return self._action_space

    def reset_env(self, key: jax.Array, params: BraxParams) -> tuple[jax.Array, AdapterState]:
        inner_state = self._inner_reset(key)
        return self._observe(inner_state), AdapterState(inner_state, _zero_time())

    def _inner_step(self, inner_state: Any, action: jax.Array) -> Any:
        if self.action_repeat == 1:
            return _keep_dtypes(self._inner_step_once(inner_state, action), inner_state)

        def repeat(s: Any, _: Any) -> tuple[Any, jax.Array]:
            s = _keep_dtypes(self._inner_step_once(s, action), s)
            return s, jnp.asarray(s.reward)

        inner_state, rewards = jax.lax.scan(repeat, inner_state, None, length=self.action_repeat)
        return inner_state.replace(reward=jnp.sum(rewards, axis=0).astype(rewards.dtype))

    def step_env(
        self, key: jax.Array, state: AdapterState, action: jax.Array, params: BraxParams
    ) -> tuple[jax.Array, AdapterState, jax.Array, jax.Array, jax.Array]:
        del key  # these envs are deterministic given their state
        inner_state = self._inner_step(state.env_state, action)
        done = jnp.asarray(inner_state.done) > 0.5
        if "truncation" in inner_state.info:
            truncated = jnp.asarray(inner_state.info["truncation"]) > 0.5
        else:
            truncated = jnp.zeros((), jnp.bool_)
        terminated = done & ~truncated
        return (
            self._observe(inner_state),
            state.replace(env_state=inner_state),
            inner_state.reward,
            terminated,
            truncated,
        )


# ---------------------------------------------------------------------- #
# brax
# ---------------------------------------------------------------------- #


class BraxEnv(BraxProtocolEnv):
    """A brax environment seen through the :class:`Environment` protocol.

    See :class:`BraxProtocolEnv` for the mapping. Without brax's
    ``EpisodeWrapper`` (the default of :func:`from_brax`) brax's ``done`` is
    a true termination and the time limit comes from ``episode_length``. If
    the given env is wrapped in ``EpisodeWrapper``, its ``info["truncation"]``
    is honoured (brax clears ``truncation`` when the env also terminated on
    the last step, so such a step is reported as terminated only).
    """

    def __init__(
        self,
        brax_env: Any,
        episode_length: int,
        action_repeat: int = 1,
        obs_key: str | None = "state",
    ):
        """See :func:`from_brax`."""
        self.brax_env = brax_env
        super().__init__(
            brax_env,
            name=type(getattr(brax_env, "unwrapped", brax_env)).__name__,
            episode_length=episode_length,
            action_repeat=action_repeat,
            obs_key=obs_key,
            family="brax",
        )


def _brax_env_names(brax_envs: Any) -> list[str]:
    # brax keeps its registry in a module-level dict and has no public listing.
    return sorted(getattr(brax_envs, "_envs", {}))


def from_brax(
    env_name_or_env: Any,
    episode_length: int = 1000,
    backend: str | None = None,
    *,
    action_repeat: int = 1,
    obs_key: str | None = "state",
    **env_kwargs: Any,
) -> tuple[BraxEnv, BraxParams]:
    """Wraps a brax environment as an :class:`Environment`.

    Requires the optional extra: ``pip install "ddpg-jax[brax]"``.

    Args:
      env_name_or_env: a brax env name (``brax.envs.get_environment``, e.g.
        ``"halfcheetah"``, ``"ant"``) or a brax ``Env`` instance (bare, or
        wrapped only in ``EpisodeWrapper``).
      episode_length: time limit in brax steps, as in ``brax.envs.create``.
      backend: brax physics backend (``"generalized"``, ``"positional"``,
        ``"spring"``, ``"mjx"``) when building from a name; ``None`` keeps
        the env's default.
      action_repeat: times each action is applied per agent step, as in
        ``brax.envs.create`` (rewards summed; an episode lasts
        ``ceil(episode_length / action_repeat)`` agent steps).
      obs_key: for dict observations, the entry used as the observation.
      **env_kwargs: further constructor arguments when building from a name.

    Returns:
      ``(env, params)``.

    Raises:
      ImportError: if brax is not installed.
      ValueError: for an unknown env name (with close matches), auto-resetting
        or vmapping brax wrappers, non-flat observations or a missing
        ``obs_key``, or a non-positive ``episode_length`` / ``action_repeat``.
    """
    if isinstance(env_name_or_env, str):
        brax_envs = _import_optional("brax.envs", BRAX_HINT)
        known = _brax_env_names(brax_envs)
        if known and env_name_or_env not in known:
            close = difflib.get_close_matches(env_name_or_env, known, n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown brax env name {env_name_or_env!r}.{hint} brax envs: "
                             f"{', '.join(known)}")
        if backend is not None:
            env_kwargs["backend"] = backend
        brax_env = brax_envs.get_environment(env_name_or_env, **env_kwargs)
    else:
        _import_optional("brax", BRAX_HINT)
        brax_env = env_name_or_env
    adapter = BraxEnv(brax_env, episode_length, action_repeat, obs_key)
    return adapter, adapter.default_params

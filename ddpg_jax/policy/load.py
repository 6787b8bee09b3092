"""Loading a saved policy: a checkpoint, a run directory's latest or best one, or an exported file.

A checkpoint of either backend holds the train state and a ``policy`` record
(:mod:`ddpg_jax.checkpoints.policy_record`) describing the observation size and layout and the
action bounds the agent saw; :func:`load_policy` rebuilds the actor from them
(for a JAX-backend multi-seed run: one actor per seed) without gymnasium or
the env. It also reads a policy exported with ``ddpg-jax export``
(:mod:`ddpg_jax.policy.exported`); :mod:`ddpg_jax.policy.evaluate` runs either.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ddpg_jax.agent.learner import Learner, make_learner
from ddpg_jax.agent.networks import Networks
from ddpg_jax.checkpoints.format import (
    Checkpoint,
    CheckpointError,
    best,
    checkpoint_dir,
    load_flat,
    open_checkpoint,
    resolve,
    select,
    unflatten,
)
from ddpg_jax.checkpoints.policy_record import read_policy_record
from ddpg_jax.checkpoints.resume import checkpoint_config
from ddpg_jax.config import DDPGConfig
from ddpg_jax.policy.acting import CallablePolicy
from ddpg_jax.policy.exported import ExportedPolicy, load_exported

#: Where the train state lies in the ``state`` item of checkpoints written without a
#: policy record (format version 2 before the record existed), per backend.
_LEGACY_TRAIN_STATE = {"gymnasium": ("carry/agent/train_state", False),
                       "jax": ("agent/train_state", True)}


@dataclasses.dataclass
class Policy(CallablePolicy):
    """A saved deterministic policy, read from a checkpoint; call it to act.

    ``policy(obs)`` (or ``policy.act(obs)``) gives the action for one observation
    ``[obs_dim]`` or a batch ``[batch, obs_dim]`` as numpy, observation normalisation and
    action bounds inside; ``policy.jax_fn`` is the same as a pure function for ``jit``. A
    multi-seed checkpoint acts with seed 0 unless told otherwise (see
    :class:`~ddpg_jax.policy.acting.CallablePolicy`).

    Attributes:
      checkpoint: where it was read from.
      env_id: the env it was trained on (or the one asked for instead).
      config: the run's config.
      train_states: one train state per seed (one for a gymnasium-backend run).
      learner: the learner the policy belongs to (its ``policy`` normalises
        observations with the saved statistics, then applies the actor).
      record: the checkpoint's policy record (``None`` for a checkpoint written
        before checkpoints carried one).
      eval_keys: for a JAX-backend checkpoint, each seed's evaluation key
        (``uint32 [num_seeds, 2]``), with which training evaluated; else ``None``.
    """

    checkpoint: Checkpoint
    env_id: str
    config: DDPGConfig
    train_states: list[Any]
    learner: Learner
    record: dict[str, Any] | None = None
    eval_keys: np.ndarray | None = None

    @property
    def networks(self) -> Networks:
        return self.learner.networks

    @property
    def num_seeds(self) -> int:
        return len(self.train_states)

    @property
    def obs_dim(self) -> int:
        return int(self.learner.networks.obs_dim)

    @functools.cached_property
    def _device_states(self) -> list[Any]:
        # Placed once, so acting does not copy the parameters to the device on every call.
        return [jax.device_put(ts) for ts in self.train_states]

    @functools.cached_property
    def _compiled(self) -> Callable[[Any, Any], Any]:
        # The train state is an argument, so every seed shares one compiled program.
        return jax.jit(self.learner.policy)

    @functools.cached_property
    def _pure_fns(self) -> list[Callable[[Any], Any]]:
        # Over the host arrays: this may first run inside a user's jit, where a device_put
        # would give tracers that must not outlive that trace.
        return [_closing_over(self.learner.policy, ts) for ts in self.train_states]

    def _act_compiled(self, seed_index: int, obs: np.ndarray) -> Any:
        return self._compiled(self._device_states[seed_index], obs)

    def _pure_fn(self, seed_index: int) -> Callable[[Any], Any]:
        return self._pure_fns[seed_index]

    def for_seed(self, seed_index: int) -> Policy:
        i = self._check_seed(seed_index)
        keys = None if self.eval_keys is None else self.eval_keys[i:i + 1]
        return dataclasses.replace(self, train_states=[self.train_states[i]], eval_keys=keys)


def _closing_over(policy: Callable[[Any, Any], Any], ts: Any) -> Callable[[Any], Any]:
    """``obs -> policy(ts, obs)``: one seed's pure policy with its train state bound."""

    def act(obs: Any) -> Any:
        return policy(ts, obs)

    return act


def find_checkpoint(path: str | os.PathLike, which: str = "latest") -> Path:
    """A checkpoint directory from a run directory (its latest or best) or itself.

    Raises:
      CheckpointError: if there is none.
    """
    path = Path(path)
    if which == "best" and (path / "checkpoints").is_dir():
        found = best(checkpoint_dir(path))
        if found is None:
            raise CheckpointError(f"run directory {path} has no verified checkpoint with an "
                                  "evaluation return.")
        return found
    return resolve(path)


def uses_jax_env(env_id: str | None, backend: str | None) -> bool:
    """Whether ``env_id`` is evaluated as a JAX env spec rather than as a gymnasium id.

    True for the family specs (``playground:``, ``brax:``, ``gymnax:``) and,
    for JAX-backend runs, ``module:function`` specs. Built-in ids such as
    ``Pendulum-v1`` are evaluated on gymnasium's env, which the built-in JAX
    envs reproduce step for step.
    """
    from ddpg_jax.envs.specs import is_family_spec

    if not env_id:
        return False
    return is_family_spec(env_id) or (backend == "jax" and ":" in env_id)


def _env_io(env_id: str, backend: str | None) -> tuple[int, np.ndarray, np.ndarray]:
    """``(obs_dim, action_low, action_high)`` of a JAX env spec or a gymnasium id."""
    if uses_jax_env(env_id, backend):
        from ddpg_jax.config import ConfigError
        from ddpg_jax.envs.core import EnvSpecError, env_spec
        from ddpg_jax.envs.specs import from_spec

        env, params, _ = from_spec(env_id)
        try:
            return env_spec(env, params)
        except ConfigError as e:
            raise EnvSpecError(str(e)) from None
    from ddpg_jax.envs.gymnasium_check import check_env, env_factory

    spec = check_env(env_factory(env_id), repr(env_id))
    return spec.obs_dim, spec.action_low, spec.action_high


def _backend_of(policy: Any) -> str | None:
    """The backend that trained a checkpoint's or an exported file's policy."""
    if isinstance(policy, ExportedPolicy):
        return (policy.meta.get("source") or {}).get("backend")
    return policy.checkpoint.meta.get("backend")


def _check_env_fits(env_id: str, obs_dim: int, low: np.ndarray, high: np.ndarray,
                    backend: str | None = None) -> None:
    """Refuses an env (asked for instead of the run's) that the policy cannot act in."""
    from ddpg_jax.envs.core import EnvSpecError

    env_obs, env_low, env_high = _env_io(env_id, backend)
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    env_low, env_high = np.asarray(env_low, np.float32), np.asarray(env_high, np.float32)
    if env_obs != obs_dim or not (np.array_equal(env_low, low)
                                  and np.array_equal(env_high, high)):
        raise EnvSpecError(
            f"env {env_id!r} has observation size {env_obs} and action bounds "
            f"low={env_low.tolist()} high={env_high.tolist()}, but the policy "
            f"was trained with observation size {obs_dim} and action bounds low={low.tolist()} "
            f"high={high.tolist()}; accepted: an env with the policy's sizes and bounds.")


def load_checkpoint_policy(path: str | os.PathLike, env_id: str | None = None,
                           which: str = "latest") -> Policy:
    """:func:`load_policy` for a checkpoint or run directory (not an exported file)."""
    checkpoint = open_checkpoint(find_checkpoint(path, which))
    meta = checkpoint.meta
    config = checkpoint_config(checkpoint)
    record = read_policy_record(checkpoint)
    run_env = meta.get("env_id")
    if record is not None:
        obs_dim = int(record["obs_dim"])
        low = np.asarray(record["action_low"], np.float32)
        high = np.asarray(record["action_high"], np.float32)
        if env_id is not None and env_id != run_env:
            _check_env_fits(env_id, obs_dim, low, high, meta.get("backend"))
        prefix, seed_axis = record["train_state"], record["seed_axis"]
    else:  # written before checkpoints described their policy: ask the env, as then
        obs_dim, low, high = _env_io(env_id or run_env, meta.get("backend"))
        try:
            prefix, seed_axis = _LEGACY_TRAIN_STATE[meta.get("backend")]
        except KeyError:
            raise CheckpointError(f"checkpoint {checkpoint.path} names no known backend "
                                  f"({meta.get('backend')!r}).") from None
    learner = make_learner(config, obs_dim, low, high)
    template = jax.eval_shape(learner.gradient_step.init, jax.random.PRNGKey(0))
    state = load_flat(checkpoint, "state")
    flat = select(state, prefix)
    # The JAX driver keeps each run's evaluation key in its loop state.
    eval_keys = state.get("eval_key") if seed_axis else None
    what = f"checkpoint {checkpoint.path} (train state)"
    if seed_axis:
        seeds = int(meta.get("num_seeds", 1))
        template = jax.tree.map(
            lambda t: jax.ShapeDtypeStruct((seeds,) + tuple(t.shape), t.dtype), template)
        batched = unflatten(flat, template, what=what)
        states = [jax.tree.map(lambda x: x[i], batched) for i in range(seeds)]
    else:
        states = [unflatten(flat, template, what=what)]
    return Policy(checkpoint, env_id or run_env, config, states, learner, record,
                  None if eval_keys is None else np.asarray(eval_keys))


def load_policy(path: str | os.PathLike, env_id: str | None = None,
                which: str = "latest") -> Policy | ExportedPolicy:
    """Reads a saved policy: a checkpoint, a run directory's latest/best one, or an exported file.

    Acting needs neither gymnasium nor the env: the policy is rebuilt from
    the checkpoint's own policy record (observation size, action bounds as the
    agent saw them, config), or deserialised from an exported file. A
    checkpoint written before checkpoints carried a policy record is rebuilt
    from its env, as before (which needs gymnasium and the env).

    Args:
      path: a checkpoint directory, a run directory, or a file written by
        ``ddpg-jax export`` (:func:`ddpg_jax.policy.export.export_checkpoint`).
      env_id: the env to evaluate on instead of the run's (a gymnasium id,
        or a JAX env spec, see :func:`uses_jax_env`); it must have the
        policy's observation size and action bounds (checked here).
      which: for a run directory, ``"latest"`` or ``"best"``.

    Returns:
      A :class:`Policy` (checkpoint) or :class:`~ddpg_jax.policy.exported.ExportedPolicy`,
      to call: ``policy(obs)`` for one observation or a batch (numpy in and out),
      ``policy.act(obs, seed_index=0)``, ``policy.jax_fn`` (the pure function, for
      ``jit``) and ``act_fn(index=0)``; both also have ``env_id``, ``config``,
      ``num_seeds`` and ``checkpoint``.

    Raises:
      CheckpointError: for a missing, corrupted or foreign checkpoint or
        exported file (:class:`~ddpg_jax.policy.exported.ExportError` for the latter).
      EnvSpecError: for an unknown env id or one whose spaces do not fit.
    """
    if Path(path).is_file():
        policy = load_exported(path)
        if env_id is not None and env_id != policy.env_id:
            _check_env_fits(env_id, policy.obs_dim, policy.action_low, policy.action_high,
                            _backend_of(policy))
            policy.meta = {**policy.meta, "env_id": env_id}
        return policy
    return load_checkpoint_policy(path, env_id, which)

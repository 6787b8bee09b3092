"""Pytrees shared across the library."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import flax.struct
import jax

from ddpg_jax.config import TRACED_FIELDS

Array = jax.Array
Params = Any  # a flax parameter pytree
PRNGKey = jax.Array


class Transition(NamedTuple):
    """One environment step (a leading batch axis where stored or sampled).

    ``next_obs`` is the observation that followed ``action``: on an episode end
    it is the final observation of that episode, never the reset observation.
    Only ``terminated`` cuts the bootstrap; time-limit truncation does not.
    With n-step returns, batches are :class:`ddpg_jax.agent.nstep.NStepTransition`
    instead: the same fields plus the bootstrap's extra ``discount``.
    """

    obs: Array  # [..., obs_dim] float32
    action: Array  # [..., action_dim] float32
    reward: Array  # [...] float32
    terminated: Array  # [...] float32 in {0, 1}
    next_obs: Array  # [..., obs_dim] float32


#: The traced hyperparameters of a run, one float32 field per name in
#: ``config.TRACED_FIELDS`` (declared there, once); each is a scalar, or has a
#: leading batch axis when a sweep vmaps over states.
HParams = NamedTuple("HParams", [(name, Array) for name in TRACED_FIELDS])

#: Names of the metrics one gradient step reports (float32 scalars).
METRIC_NAMES = ("critic_loss", "actor_loss", "q_mean", "target_mean",
                "critic_grad_norm", "actor_grad_norm")


@flax.struct.dataclass
class TrainState:
    """Everything the update step changes, as one immutable pytree.

    Optimizers are not stored here: the gradient step that owns them is built
    by :func:`ddpg_jax.agent.gradient_step.make_gradient_step`, which keeps this a plain
    class that checkpoints, vmaps and shards like any pytree.
    """

    actor_params: Params  # actor network parameters
    critic_params: Params  # critic ensemble parameters, leading axis num_critics
    target_actor_params: Params  # Polyak average of actor_params
    target_critic_params: Params  # Polyak average of critic_params
    actor_opt_state: Any  # optax state of the actor's optimizer
    critic_opt_state: Any  # optax state of the critic's optimizer
    hparams: HParams  # traced hyperparameters
    obs_stats: Any  # normalization.RunningStats: running observation mean/var
    rng: PRNGKey  # uint32 [2]: key for the update's own randomness (target smoothing)
    step: Array  # int32 []: critic (gradient) updates done
    actor_step: Array  # int32 []: actor (and target) updates done


class ActorApply(Protocol):
    def __call__(self, params: Params, obs: Array) -> Array: ...


class CriticApply(Protocol):
    def __call__(self, params: Params, obs: Array, action: Array) -> Array: ...


Metrics = dict[str, Array]
UpdateFn = Callable[[TrainState, Transition], tuple[TrainState, Metrics]]

"""Acting with a loaded policy: ``policy(obs)``, ``policy.act``, ``act_fn`` and ``jax_fn``.

Both kinds of loaded policy, a checkpoint's (:class:`~ddpg_jax.policy.load.Policy`) and an
exported file's (:class:`~ddpg_jax.policy.exported.ExportedPolicy`), act through the one
:class:`CallablePolicy` here: numpy in (one observation or a batch), numpy out, with the
compiled function made once per policy and reused by every call.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any

import numpy as np


def as_batch(obs: Any, obs_dim: int) -> tuple[np.ndarray, bool]:
    """``obs`` as a float32 ``[batch, obs_dim]`` array, and whether it was a single observation.

    Raises:
      ValueError: for any other shape, naming the accepted ones.
    """
    x = np.asarray(obs, np.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != obs_dim or x.shape[0] == 0:
        raise ValueError(f"observations of shape {tuple(np.shape(obs))}; accepted: [{obs_dim}] "
                         f"(one observation) or [batch, {obs_dim}] with batch >= 1.")
    return x, single


class CallablePolicy(abc.ABC):
    """What every loaded policy offers for acting; subclasses say how one seed acts.

    A multi-seed checkpoint (JAX backend, ``num_seeds > 1``) holds one policy per seed:
    ``policy(obs)``, ``act_fn()`` and ``jax_fn`` use seed 0; ``policy.act(obs, seed_index=i)``,
    ``act_fn(i)`` and ``policy.for_seed(i)`` pick another.

    Subclasses provide ``obs_dim``, ``num_seeds``, :meth:`_act_compiled` (the cached compiled
    function for a batch), :meth:`_pure_fn` (the pure function for ``jit``) and
    :meth:`for_seed`.
    """

    obs_dim: int
    num_seeds: int

    @abc.abstractmethod
    def _act_compiled(self, seed_index: int, obs: np.ndarray) -> Any:
        """Actions of seed ``seed_index`` for ``obs[batch, obs_dim]`` (compiled once)."""

    @abc.abstractmethod
    def _pure_fn(self, seed_index: int) -> Callable[[Any], Any]:
        """The pure ``obs -> action`` of seed ``seed_index``."""

    @abc.abstractmethod
    def for_seed(self, seed_index: int) -> CallablePolicy:
        """The policy of one seed alone (``num_seeds == 1``), to call, export or ``jit``."""

    def _check_seed(self, seed_index: int) -> int:
        if (not isinstance(seed_index, (int, np.integer)) or isinstance(seed_index, bool)
                or not 0 <= seed_index < self.num_seeds):
            raise IndexError(f"seed index {seed_index!r} is out of range: this policy holds "
                             f"{self.num_seeds} seed(s); accepted: 0 to {self.num_seeds - 1}.")
        return int(seed_index)

    def act(self, obs: Any, seed_index: int = 0) -> np.ndarray:
        """The deterministic action for one observation or a batch.

        Args:
          obs: ``[obs_dim]`` or ``[batch, obs_dim]`` (anything ``np.asarray`` reads).
          seed_index: which seed of a multi-seed checkpoint (default 0).

        Returns:
          float32 ``[action_dim]`` for one observation, ``[batch, action_dim]`` for a batch,
          within the action bounds; observation normalisation is applied inside.

        Raises:
          ValueError: for observations of another shape.
          IndexError: for a seed index the policy does not hold.
        """
        seed_index = self._check_seed(seed_index)
        x, single = as_batch(obs, self.obs_dim)
        action = np.asarray(self._act_compiled(seed_index, x))
        return action[0] if single else action

    def __call__(self, obs: Any) -> np.ndarray:
        """``policy.act(obs)``: seed 0's action for one observation or a batch."""
        return self.act(obs)

    def act_fn(self, index: int = 0) -> Callable[[Any], np.ndarray]:
        """``act(obs) -> action`` of seed ``index``, as :meth:`act` (the same compiled code)."""
        return functools.partial(self.act, seed_index=self._check_seed(index))

    @property
    def jax_fn(self) -> Callable[[Any], Any]:
        """The pure ``obs[batch, obs_dim] -> action[batch, action_dim]`` of seed 0, for ``jit``.

        It takes and returns JAX arrays and composes with ``jit`` and ``lax.scan`` in a
        program of your own (a checkpoint's also with ``vmap``; jax has no ``vmap`` rule for
        an exported file's function, which takes any batch size itself). For another seed:
        ``policy.for_seed(i).jax_fn``.
        """
        return self._pure_fn(0)

"""ddpg_jax: functional DDPG (and its descendants) in JAX.

The building blocks are pure functions over immutable pytrees, so they run
under ``jit``, ``vmap`` and ``lax.scan`` and compose into larger programs.
"""

from ddpg_jax import buffer, losses, noise, normalization
from ddpg_jax.config import PRESETS, ConfigError, DDPGConfig, preset
from ddpg_jax.envcheck import EnvSpecError
from ddpg_jax.losses import actor_loss, critic_loss, td_target
from ddpg_jax.networks import Actor, Critic, CriticEnsemble, Networks, make_networks
from ddpg_jax.noise import Noise, NoiseState, make_noise
from ddpg_jax.policy import make_explore
from ddpg_jax.types import HParams, TrainState, Transition
from ddpg_jax.update import (hparams_from_config, init_train_state, make_optimizers, make_update,
                             normalize_obs, observe)

__version__ = "0.1.0"

__all__ = [
    "Actor", "ConfigError", "Critic", "CriticEnsemble", "DDPGConfig", "EnvSpecError",
    "HParams", "Networks", "Noise", "NoiseState", "PRESETS", "TrainState", "Transition",
    "actor_loss", "buffer", "critic_loss", "hparams_from_config", "init_train_state",
    "losses", "make_explore", "make_networks", "make_noise", "make_optimizers",
    "make_update", "noise", "normalization", "normalize_obs", "observe", "preset", "td_target", "__version__",
]

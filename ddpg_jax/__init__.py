"""ddpg_jax: functional DDPG (and its descendants, TD3) in JAX.

The building blocks are pure functions over immutable pytrees, so they run
under ``jit``, ``vmap`` and ``lax.scan`` and compose into larger programs.
``import ddpg_jax`` reaches every common task:

* ``ddpg_jax.train(config, env)``: train on a gymnasium id or factory, or on a
  JAX env (``ddpg_jax.envs.make("Pendulum-v1")``) with many seeds at once;
* ``ddpg_jax.make_train(config, env, env_params)``: the pure ``train(key)``
  for your own ``jit`` / ``vmap`` / sharding; ``run_seeds`` and ``sweep`` run
  it over seeds and hyperparameter grids;
* ``ddpg_jax.load_policy(path)``: act with a trained policy;
* the pieces: ``make_learner``, ``make_gradient_step`` / ``make_update``,
  ``init_train_state``, ``make_networks``, ``make_noise``, ``buffer``, ``losses``.
"""

from ddpg_jax import envs
from ddpg_jax.agent import buffer, losses, noise, normalization
from ddpg_jax.agent.gradient_step import (
                                          GradientStep,
                                          init_train_state,
                                          make_gradient_step,
                                          make_update,
)
from ddpg_jax.agent.learner import AgentState, Learner, make_explore, make_learner
from ddpg_jax.agent.losses import actor_loss, critic_loss, td_target
from ddpg_jax.agent.networks import (
                                          Actor,
                                          Critic,
                                          CriticEnsemble,
                                          Networks,
                                          make_networks,
)
from ddpg_jax.agent.noise import Noise, NoiseState, make_noise
from ddpg_jax.agent.state import HParams, TrainState, Transition
from ddpg_jax.config import PRESETS, ConfigError, DDPGConfig, PresetChangedWarning, preset
from ddpg_jax.drivers.compiled import TrainOutput, make_train
from ddpg_jax.drivers.dispatch import train
from ddpg_jax.drivers.multi import make_hparams, run_seeds, seed_keys, select_run, sweep
from ddpg_jax.drivers.result import TrainResult
from ddpg_jax.drivers.run_options import RunOptions
from ddpg_jax.envs.core import EnvSpecError
from ddpg_jax.policy.load import load_policy
from ddpg_jax.version import __version__

__all__ = [
                                          "PRESETS",
                                          "Actor",
                                          "AgentState",
                                          "ConfigError",
                                          "Critic",
                                          "CriticEnsemble",
                                          "DDPGConfig",
                                          "EnvSpecError",
                                          "GradientStep",
                                          "HParams",
                                          "Learner",
                                          "Networks",
                                          "Noise",
                                          "NoiseState",
                                          "PresetChangedWarning",
                                          "RunOptions",
                                          "TrainOutput",
                                          "TrainResult",
                                          "TrainState",
                                          "Transition",
                                          "__version__",
                                          "actor_loss",
                                          "buffer",
                                          "critic_loss",
                                          "envs",
                                          "init_train_state",
                                          "load_policy",
                                          "losses",
                                          "make_explore",
                                          "make_gradient_step",
                                          "make_hparams",
                                          "make_learner",
                                          "make_networks",
                                          "make_noise",
                                          "make_train",
                                          "make_update",
                                          "noise",
                                          "normalization",
                                          "preset",
                                          "run_seeds",
                                          "seed_keys",
                                          "select_run",
                                          "sweep",
                                          "td_target",
                                          "train",
]

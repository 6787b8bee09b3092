"""Training loops: the host loop for gymnasium envs."""

from ddpg_jax.train.gym_loop import TrainResult, evaluate_policy, train

__all__ = ["TrainResult", "evaluate_policy", "train"]

"""Training loops: the host loop for gymnasium envs and the whole-loop jit for JAX envs."""

from ddpg_jax.train.gym_loop import TrainResult, evaluate_policy, train

__all__ = ["TrainResult", "evaluate_policy", "train"]

from ddpg_jax.train.jax_loop import TrainOutput, make_schedule, make_train  # noqa: E402
from ddpg_jax.train.multi import (  # noqa: E402
    make_hparams,
    run_many,
    run_seeds,
    seed_keys,
    select_run,
    sweep,
    to_host,
)

__all__ += ["TrainOutput", "make_hparams", "make_schedule", "make_train", "run_many",
            "run_seeds", "seed_keys", "select_run", "sweep", "to_host"]

"""Every preset trains through both backends (tiny budgets, the preset's own settings).

A preset is only useful if its combination of options (OU noise and weight decay
for ``paper``, twin critics, smoothing and delay for ``td3``, ...) runs end to end
on the gymnasium host loop and on the whole-loop jit. Each run keeps the preset's
networks, optimizers, noise and TD3 options and only shrinks the budget; the
checks are on counts the update rules fix exactly (critic updates, delayed actor
updates, Adam's step counters) and on the targets having moved by Polyak
averaging, not on returns.
"""

import jax
import numpy as np
import pytest

from ddpg_jax import PRESETS, make_train, preset, train
from ddpg_jax.envs import make

BUDGET = dict(total_steps=500, warmup_steps=256, eval_every=0, eval_episodes=1,
              buffer_size=1_000)


def adam_counts(opt_state) -> set[int]:
    """The step counters of the optax transformations inside an optimizer state."""
    flat, _ = jax.tree_util.tree_flatten_with_path(opt_state)
    return {int(leaf) for path, leaf in flat if "count" in jax.tree_util.keystr(path)}


def check_trained(state, config, expected_updates: int) -> None:
    step, actor_step = int(state.step), int(state.actor_step)
    assert step == expected_updates
    # The actor (and the targets) move on every policy_delay-th critic update.
    assert actor_step == step // config.policy_delay
    assert adam_counts(state.critic_opt_state) == {step}
    assert adam_counts(state.actor_opt_state) == {actor_step}
    # One critic per ensemble member, stacked on the leading axis.
    for leaf in jax.tree.leaves(state.critic_params):
        assert leaf.shape[0] == config.num_critics
    # Targets are Polyak averages: moved off the initial copy, not equal to the online nets.
    for online, target in ((state.actor_params, state.target_actor_params),
                           (state.critic_params, state.target_critic_params)):
        for p, t in zip(jax.tree.leaves(online), jax.tree.leaves(target)):
            assert np.all(np.isfinite(p)) and np.all(np.isfinite(t))
            assert not np.array_equal(p, t)


# The accelerator preset's 1024 envs and batches of 32768 do not fit these budgets: its
# parallel-env settings (n-step, per-env noise, 2 updates per vector step) are kept.
PARALLEL_BUDGET = dict(num_envs=8, updates_per_env_step=2 / 8, batch_size=64, buffer_size=1024,
                       warmup_steps=64)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_trains_on_both_backends(name):
    config = preset(name, **{**BUDGET, **(PARALLEL_BUDGET if name == "accelerator" else {})})
    updates = (config.vector_steps - config.warmup_vector_steps) * config.updates_per_vector

    result = train(config, "Pendulum-v1", log=None)
    check_trained(result.train_state, config, updates)
    assert np.isfinite(result.summary["final_eval_return_mean"])

    env, params = make("Pendulum-v1")
    out = jax.jit(make_train(config, env, params))(jax.random.PRNGKey(config.seed))
    check_trained(out.train_state, config, updates)
    assert np.all(np.isfinite(np.asarray(out.metrics["eval_return_mean"])))
    for key in ("critic_loss", "actor_loss", "q_mean"):
        assert np.all(np.isfinite(np.asarray(out.metrics[key]))), key

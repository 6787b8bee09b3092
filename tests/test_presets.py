"""Every preset trains through both backends (tiny budgets, the preset's own settings).

A preset is only useful if its combination of options (OU noise and weight decay
for ``paper``, twin critics, smoothing and delay for ``td3``, ...) runs end to end
on the gymnasium host loop and on the whole-loop jit. Each run keeps the preset's
networks, optimizers, noise and TD3 options and only shrinks the budget; the
checks are on counts the update rules fix exactly (critic updates, delayed actor
updates, Adam's step counters) and on the targets having moved by Polyak
averaging, not on returns.
"""

import re
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from ddpg_jax import PRESETS, DDPGConfig, PresetChangedWarning, make_train, preset, train
from ddpg_jax.config import ACCELERATOR_BEFORE_FASTTD3, CHANGED_PRESETS
from ddpg_jax.envs import make

DOCS = Path(__file__).resolve().parents[1] / "docs"

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


# The accelerator preset's 1024 envs, batches of 32768 and wide networks do not fit these
# budgets: its parallel-env settings (n-step, per-env noise, 2 updates per vector step, the
# c51 critic, AdamW) are kept, on small networks and a small support.
PARALLEL_BUDGET = dict(num_envs=8, updates_per_env_step=2 / 8, batch_size=64, buffer_size=1024,
                       warmup_steps=64, hidden_sizes=(32, 32), actor_hidden_sizes=(32, 32),
                       critic_hidden_sizes=(32, 32), num_atoms=11)


def expected_updates(config) -> int:
    if config.update_schedule == "episode":  # Pendulum's 200-step episodes end at 200, 400
        return config.total_steps // 200 * 200
    return (config.vector_steps - config.warmup_vector_steps) * config.updates_per_vector


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_trains_on_both_backends(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PresetChangedWarning)
        config = preset(name, **{**BUDGET, **(PARALLEL_BUDGET if name == "accelerator" else {})})
    updates = expected_updates(config)

    result = train(config, "Pendulum-v1", log=None)
    check_trained(result.train_state, config, updates)
    assert np.isfinite(result.summary["final_eval_return_mean"])

    env, params = make("Pendulum-v1")
    out = jax.jit(make_train(config, env, params))(jax.random.PRNGKey(config.seed))
    check_trained(out.train_state, config, updates)
    assert np.all(np.isfinite(np.asarray(out.metrics["eval_return_mean"])))
    for key in ("critic_loss", "actor_loss", "q_mean"):
        assert np.all(np.isfinite(np.asarray(out.metrics[key]))), key


# --------------------------------------------------------------------------- values
# The values of the presets before 2026-12-05, as their config.json files hold them.
OLD_OURDDPG = dict(hidden_sizes=(400, 300), weight_init="fan_in_uniform", actor_lr=1e-3,
                   critic_lr=1e-3, batch_size=100, tau=0.005, gamma=0.99, noise="gaussian",
                   noise_scale=0.1, warmup_steps=1_000)
OLD_TD3 = dict(OLD_OURDDPG, num_critics=2, policy_delay=2, target_noise=0.2,
               target_noise_clip=0.5)
OLD_ACCELERATOR = dict(OLD_TD3, num_envs=1024, updates_per_env_step=2 / 1024,
                       batch_size=32768, buffer_size=1024 * 1024, n_step=3, noise_scale=0.1,
                       noise_scale_max=0.4, target_noise=0.1, actor_lr=3e-4, critic_lr=3e-4,
                       tau=0.1, gamma=0.97, obs_norm=True, hidden_sizes=(1024, 512, 256),
                       weight_init="lecun_normal", warmup_steps=32768, total_steps=10_240_000,
                       eval_every=1_024_000)


def quiet_preset(name, **changes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PresetChangedWarning)
        return preset(name, **changes)


def test_td3_is_the_authors_current_code():
    """TD3.py and main.py of github.com/sfujim/TD3 (master, 34770cc)."""
    config = quiet_preset("td3")
    assert config == DDPGConfig(
        hidden_sizes=(256, 256), weight_init="fan_in_uniform", actor_lr=3e-4, critic_lr=3e-4,
        batch_size=256, buffer_size=1_000_000, warmup_steps=25_000, updates_per_env_step=1.0,
        update_schedule="step", num_critics=2, policy_delay=2, noise="gaussian",
        noise_scale=0.1, target_noise=0.2, target_noise_clip=0.5, tau=0.005, gamma=0.99,
        total_steps=1_000_000, critic_action_layer=0, final_layer_init=0.0,
        critic_weight_decay=0.0)


def test_the_2018_presets_are_the_old_values_in_the_2018_loop():
    assert quiet_preset("td3-2018") == DDPGConfig(**OLD_TD3, update_schedule="episode")
    assert quiet_preset("ourddpg") == DDPGConfig(**OLD_OURDDPG, update_schedule="episode")
    # The old names' values, exactly, as the notice says.
    assert preset("td3-2018", update_schedule="step") == DDPGConfig(**OLD_TD3)
    assert quiet_preset("ourddpg", update_schedule="step") == DDPGConfig(**OLD_OURDDPG)
    assert ACCELERATOR_BEFORE_FASTTD3 == DDPGConfig(**OLD_ACCELERATOR)


@pytest.mark.parametrize("name", sorted(CHANGED_PRESETS))
def test_a_changed_preset_says_how_to_get_its_old_values(name):
    with pytest.warns(PresetChangedWarning, match=r"2026-12-05") as record:
        preset(name, total_steps=5000)
    message = str(record[0].message)
    old = {"td3": ('preset("td3-2018", update_schedule="step")',
                   "--preset td3-2018 --update-schedule step"),
           "ourddpg": ('preset("ourddpg", update_schedule="step")',
                       "--preset ourddpg --update-schedule step")}[name]
    assert old[0] in message and old[1] in message
    assert record[0].filename == __file__  # points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preset("td3-2018")
        preset("default")
        # A run's own config.json gives every field: nothing of the preset is left to change.
        preset(name, **quiet_preset(name).replace(seed=3).to_dict())


def fasttd3_documented() -> DDPGConfig:
    """The config that docs/fasttd3.md lists under "The preset"."""
    text = (DOCS / "fasttd3.md").read_text()
    block = re.search(r"## The preset.*?```python\n(DDPGConfig\(.*?\))\n```", text, re.S)
    assert block, "docs/fasttd3.md lists the preset's config in a python block"
    return eval(block.group(1), {"DDPGConfig": DDPGConfig})


def test_accelerator_is_fasttd3_as_documented():
    config = PRESETS["accelerator"]
    assert config == fasttd3_documented()
    assert (config.critic, config.num_atoms, config.v_min, config.v_max) == ("c51", 101, -500.0,
                                                                            500.0)
    assert (config.actor_widths, config.critic_widths) == ((512, 256, 128), (1024, 512, 256))
    assert (config.actor_adamw_decay, config.critic_adamw_decay) == (0.1, 0.1)
    assert config.buffer_size == 1024 * 10240 and config.updates_per_vector == 2
    assert "`accelerator` is FastTD3's settings" in (DOCS / "presets.md").read_text()
    assert "The `accelerator` preset is FastTD3's settings" in (DOCS / "fasttd3.md").read_text()

"""MuJoCo Warp through ``from_playground`` on a CPU: parity with the task's own functions.

Warp runs here on the CPU: it compiles its kernels once (about two minutes for
CartpoleBalance on two cores) and loads them from its cache afterwards. The
reference is the same task's own ``reset`` / ``step`` at impl ``"warp"``, driven
env by env in plain Python; the adapter runs seeds and envs vmapped in one program.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

pg = pytest.importorskip(
    "mujoco_playground",
    reason="MuJoCo Playground is not installed (pip install 'ddpg-jax[playground]')")

from side_by_side import reference_by_env, rollouts_over_seeds

from ddpg_jax.envs import from_playground, from_spec
from ddpg_jax.envs.playground_adapter import _warp_imports

pytestmark = [
    pytest.mark.usefixtures("module_compile_cache"),
    pytest.mark.skipif(not _warp_imports(), reason="NVIDIA Warp does not import here "
                       "(pip install warp-lang)"),
]


def test_warp_parity_with_the_tasks_own_functions_over_seeds_and_envs():
    env, params, spec = from_spec("playground:CartpoleBalance:impl=warp")
    assert spec == "playground:CartpoleBalance:impl=warp"
    assert env.task._config.impl == "warp"
    env, params = from_playground(env.task, episode_length=3)  # the same task, a short limit
    seeds, steps, envs = 2, 5, 2
    starts = jax.random.split(jax.random.PRNGKey(0), seeds * envs).reshape(seeds, envs, 2)
    keys = jax.random.split(jax.random.PRNGKey(1), seeds * steps * envs).reshape(
        seeds, steps, envs, 2)
    acts = np.random.default_rng(0).uniform(-1, 1, (seeds, steps, envs, 1)).astype(np.float32)
    offset = np.arange(envs)  # the envs' time limits fall on different steps
    _, out = rollouts_over_seeds(env.step, env, params, starts, keys, acts, offset)
    ref = reference_by_env(env.task, 3, starts, keys, acts, offset)
    assert ref["truncated"].any() and (ref["truncated"].any(2) & ~ref["truncated"].all(2)).any()
    # The same Warp kernels for one world and for a batch of worlds, but two compiled
    # programs: float32 results may differ by a few ulps over 5 steps of values of order 1.
    for name in ("obs", "final", "reward", "terminated", "truncated", "time"):
        np.testing.assert_allclose(np.asarray(out[name], np.float64), ref[name], rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    fresh = np.asarray(out["obs"])[ref["truncated"].astype(bool)]
    assert len({tuple(np.round(o, 6)) for o in fresh}) == len(fresh)  # random resets kept

"""The README's Python example runs as written, and its Quickstart has the promised shape."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_example_runs(capsys):
    example = next(b for b in _blocks("python") if "make_update" in b)
    exec(compile(example, str(README), "exec"), {"__name__": "readme_example"})
    assert "critic_loss" in capsys.readouterr().out


def test_readme_new_user_script_needs_only_import_ddpg_jax(tmp_path, monkeypatch, capsys):
    """Train through gymnasium, through the compiled path with 2 seeds, then load and act."""
    example = next(b for b in _blocks("python") if "load_policy" in b)
    imports = re.findall(r"^\s*(?:import|from)\s+(\S+)", example, flags=re.MULTILINE)
    assert imports == ["ddpg_jax"], imports
    full = "DDPGConfig(total_steps=20_000)"
    assert full in example
    small = ("DDPGConfig(total_steps=400, warmup_steps=100, batch_size=32, hidden_sizes=(8,), "
             "eval_every=200, eval_episodes=2, buffer_size=500)")
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "readme_example"}
    exec(compile(example.replace(full, small), str(README), "exec"), scope)
    result, runs, policy, obs = scope["result"], scope["runs"], scope["policy"], scope["obs"]
    assert [r["env_steps"] for r in result.evaluations] == [200, 400]
    assert [r["env_steps"] for r in runs.evaluations] == [200, 400]
    per_seed = runs.summary["final_eval_return_per_seed"]
    assert len(per_seed) == 2 and per_seed[0] != per_seed[1]
    assert "policy = ddpg_jax.load_policy(" in example and "policy(obs)" in example
    action = policy(obs)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0
    # The loaded policy is the trained one: it acts as the final train state does.
    expected = result.networks.actor_apply(result.train_state.actor_params,
                                           np.array([[1.0, 0.0, 0.0]], np.float32))
    np.testing.assert_allclose(action, expected[0], rtol=1e-6)
    assert (tmp_path / "runs" / "pendulum" / "checkpoints").is_dir()


def test_readme_whole_loop_example_runs_with_a_small_budget():
    example = next(b for b in _blocks("python") if "make_train" in b)
    full = "ddpg_jax.DDPGConfig(total_steps=20_000)"
    assert full in example
    small = ("ddpg_jax.DDPGConfig(total_steps=300, warmup_steps=100, batch_size=32, "
             "hidden_sizes=(8,), eval_every=100, eval_episodes=2, buffer_size=500)")
    scope = {"__name__": "readme_example"}
    exec(compile(example.replace(full, small), str(README), "exec"), scope)
    assert scope["out"].metrics["eval_return_mean"].shape == (8, 2)
    assert len(scope["settings"]) == 4


def test_quickstart_is_two_lines():
    quickstart = README.read_text().split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", quickstart, flags=re.DOTALL).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2
    assert "ddpg-jax train --env Pendulum-v1" in lines[0]
    assert "pytest" in lines[1]

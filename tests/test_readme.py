"""The README's Python example runs as written, and its Quickstart has the promised shape."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs(capsys):
    example = _blocks("python")[0]
    exec(compile(example, str(README), "exec"), {"__name__": "readme_example"})
    assert "critic_loss" in capsys.readouterr().out


def test_readme_whole_loop_example_runs_with_a_small_budget():
    example = next(b for b in _blocks("python") if "make_train" in b)
    full = "DDPGConfig(total_steps=20_000)"
    assert full in example
    small = ("DDPGConfig(total_steps=300, warmup_steps=100, batch_size=32, hidden_sizes=(8,), "
             "eval_every=100, eval_episodes=2, buffer_size=500)")
    scope = {"__name__": "readme_example"}
    exec(compile(example.replace(full, small), str(README), "exec"), scope)
    assert scope["out"].metrics["eval_return_mean"].shape == (8, 2)
    assert len(scope["settings"]) == 4


def test_quickstart_is_two_lines():
    quickstart = README.read_text().split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", quickstart, flags=re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2
    assert "ddpg-jax train --env Pendulum-v1" in lines[0]
    assert "pytest" in lines[1]

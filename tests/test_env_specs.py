"""``ddpg_jax.envs.from_spec``: one resolver for built-in ids, the env families and user factories.

The families' own behaviour is tested with their adapters (test_playground.py,
test_brax.py, test_env_adapters.py); here: the routing, ``module:function``
specs and the refusals, none of which compiles anything.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from ddpg_jax.cli import main as cli
from ddpg_jax.drivers.dispatch import jax_env
from ddpg_jax.envs import Pendulum, adapters, from_spec, make
from ddpg_jax.envs.core import EnvSpecError
from ddpg_jax.envs.gymnasium_check import env_factory

USER_MODULE = textwrap.dedent('''
    """A user's own JAX env factories."""
    from ddpg_jax.envs import make

    calls = []

    def make_env():
        calls.append("make_env")
        return make("Pendulum-v1")[0]

    def make_pair():
        env, params = make("Pendulum-v1")
        return env, params.replace(max_steps_in_episode=50)

    class factories:
        @staticmethod
        def short():
            return make("MountainCarContinuous-v0", max_steps_in_episode=20)

    def needs_a_size(size):
        return make("Pendulum-v1")

    def makes_a_number():
        return 3

    def makes_a_gymnasium_pair():
        return "Pendulum-v1", None

    not_callable = 7
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_jax_envs.py").write_text(USER_MODULE)
    (tmp_path / "broken_envs.py").write_text("raise RuntimeError('no GPU here')\n")
    # A module named like a family: the family must win, the function never run.
    (tmp_path / "playground.py").write_text("def make():\n    raise AssertionError('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("my_jax_envs", "broken_envs", "playground"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("my_jax_envs", "broken_envs", "playground"):
        sys.modules.pop(name, None)


def test_built_in_ids():
    env, params, env_id = from_spec("Pendulum-v1")
    assert isinstance(env, Pendulum) and env_id == "Pendulum-v1"
    assert params == make("Pendulum-v1")[1]
    assert from_spec("MountainCarContinuous-v0")[2] == "MountainCarContinuous-v0"


def test_module_function_specs(user_module):
    env, params, env_id = from_spec("my_jax_envs:make_env")
    assert isinstance(env, Pendulum) and env_id == "my_jax_envs:make_env"
    assert params == env.default_params
    assert sys.modules["my_jax_envs"].calls == ["make_env"]
    env, params, _ = from_spec("my_jax_envs:make_pair")
    assert params.max_steps_in_episode == 50  # the factory's params are kept
    env, params, _ = from_spec("my_jax_envs:factories.short")  # a dotted attribute path
    assert env.name == "MountainCarContinuous-v0" and params.max_steps_in_episode == 20
    # The jax backend's front door resolves specs the same way and records the spec.
    made, made_params, env_id = jax_env("my_jax_envs:make_pair", None)
    assert env_id == "my_jax_envs:make_pair" and made_params.max_steps_in_episode == 50


BAD_SPECS = {
    "unknown id": ("Pendulum-v2", ["'Pendulum-v2'", "Did you mean: Pendulum-v1", "playground:TASK",
                                   "module:function"]),
    "empty": ("", ["not a non-empty string"]),
    "no function": ("my_jax_envs:", ["'module:function'"]),
    "no module": ("no_such_module_xyz:make", ["'no_such_module_xyz' cannot be imported",
                                             "ModuleNotFoundError", "playground:"]),
    "capitalised family": ("Playground:CartpoleBalance", ["Did you mean playground:"]),
    "module fails": ("broken_envs:make", ["'broken_envs' cannot be imported", "no GPU here"]),
    "missing function": ("my_jax_envs:make_evn", ["has no attribute 'make_evn'",
                                                  "Did you mean: make_env"]),
    "missing nested": ("my_jax_envs:factories.long", ["my_jax_envs:factories has no attribute "
                                                      "'long'"]),
    "not callable": ("my_jax_envs:not_callable", ["is a int, not a function"]),
    "needs arguments": ("my_jax_envs:needs_a_size", ["cannot be called with no arguments",
                                                     "size"]),
    "wrong type": ("my_jax_envs:makes_a_number", ["returned int",
                                                  "ddpg_jax.envs.Environment"]),
    "gymnasium pair": ("my_jax_envs:makes_a_gymnasium_pair", ["a tuple of (str, NoneType)"]),
    "family name": ("brax:", ["names no brax env name"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_are_refused_with_one_paragraph(case, user_module):
    spec, needles = BAD_SPECS[case]
    with pytest.raises(EnvSpecError) as e:
        from_spec(spec)
    assert isinstance(e.value, ValueError)
    text = str(e.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)


def test_family_prefix_wins_over_a_module_of_that_name(user_module):
    # playground.py on sys.path has make(), which would fail the test if it were called.
    with pytest.raises(EnvSpecError, match="playground:make"):
        from_spec("playground:make")


def test_gymnax_specs_go_to_from_gymnax(monkeypatch):
    seen = []

    def fake_from_gymnax(name):
        seen.append(name)
        return make("Pendulum-v1")

    monkeypatch.setattr(adapters, "from_gymnax", fake_from_gymnax)
    env, _, env_id = from_spec("gymnax:Pendulum-v1")
    assert seen == ["Pendulum-v1"] and env_id == "gymnax:Pendulum-v1"


def test_missing_gymnax_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnax", None)
    with pytest.raises(EnvSpecError, match=r'pip install "ddpg-jax\[gymnax\]"') as e:
        from_spec("gymnax:Pendulum-v1")
    assert "Nothing was started" in str(e.value)


def test_gymnasium_backend_refuses_family_specs_before_importing(monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)  # importing brax would fail loudly
    with pytest.raises(EnvSpecError, match="jax backend"):
        env_factory("brax:ant")


def test_cli_bad_jax_spec_exits_2_without_writing(tmp_path, capsys, user_module):
    out_dir = tmp_path / "run"
    code = cli.main(["train", "--env", "my_jax_envs:makes_a_number", "--backend", "jax",
                     "--out", str(out_dir)])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("ddpg-jax: error: ") and "\n" not in err.strip(), err
    assert "returned int" in err and not out_dir.exists()

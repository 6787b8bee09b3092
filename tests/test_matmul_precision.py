"""``config.matmul_precision`` reaches the compiled programs of every entry point.

A CPU computes float32 products the same way at every precision, so the setting is checked
where it acts: the ``precision`` attribute of the matrix products in the lowered programs.
"""

from __future__ import annotations

import re

import jax
import pytest

import ddpg_jax
from ddpg_jax.cli.main import main
from ddpg_jax.config import MATMUL_PRECISIONS, ConfigError
from ddpg_jax.envs import make

TINY = ddpg_jax.DDPGConfig(hidden_sizes=(8,), total_steps=300, warmup_steps=64, batch_size=32,
                           eval_every=0, eval_episodes=1, buffer_size=400)
# jax's names and the precision each one puts on a product.
EXPECTED = {"default": "DEFAULT", "high": "HIGH", "highest": "HIGHEST", "bfloat16": "DEFAULT",
            "tensorfloat32": "HIGH", "float32": "HIGHEST"}


def _precisions(hlo: str) -> list[str]:
    """The precision of every operand of every matrix product in a StableHLO text."""
    found = re.findall(r"stablehlo\.dot_general[^\n]*precision = \[(\w+), (\w+)\]", hlo)
    assert len(found) == hlo.count("stablehlo.dot_general") > 0
    return [p for pair in found for p in pair]


def _train_hlo(config: ddpg_jax.DDPGConfig) -> str:
    env, params = make("Pendulum-v1")
    return jax.jit(ddpg_jax.make_train(config, env, params)).lower(
        jax.random.PRNGKey(0)).as_text()


def test_accepted_names_are_jaxs():
    assert set(MATMUL_PRECISIONS) == set(EXPECTED)


@pytest.mark.parametrize("name", ["highest", "high", "bfloat16"])
def test_make_train_traces_every_product_at_the_config_precision(name):
    assert set(_precisions(_train_hlo(TINY.replace(matmul_precision=name)))) == {EXPECTED[name]}


def test_default_is_jaxs_own_setting_as_before():
    """"default" adds nothing: the program is jax's default, and follows jax's own setting."""
    assert TINY.matmul_precision == "default"
    plain = _train_hlo(TINY)
    assert set(_precisions(plain)) == {"DEFAULT"}
    with jax.default_matmul_precision("highest"):  # a user's own jax setting still applies
        assert set(_precisions(_train_hlo(TINY))) == {"HIGHEST"}
        # ... unless the config names a precision.
        assert set(_precisions(_train_hlo(TINY.replace(matmul_precision="high")))) == {"HIGH"}
    assert _train_hlo(TINY) == plain


@pytest.fixture
def lowered_texts(monkeypatch):
    """The StableHLO text of every program compiled through ``Lowered.compile``."""
    texts: list[str] = []
    original = jax.stages.Lowered.compile

    def compile_and_record(self, *args, **kwargs):
        texts.append(self.as_text())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", compile_and_record)
    return texts


@pytest.mark.parametrize("backend", ["gymnasium", "jax"])
def test_train_compiles_both_drivers_at_the_config_precision(backend, lowered_texts):
    seen = []
    result = ddpg_jax.train(
        TINY.replace(matmul_precision="highest"), "Pendulum-v1", backend=backend, log=None,
        on_evaluation=lambda r: seen.append(jax.config.jax_default_matmul_precision))
    assert result.env_steps == TINY.total_steps
    with_products = [t for t in lowered_texts if "stablehlo.dot_general" in t]
    assert len(with_products) >= 2  # acting and learning at least
    assert {p for t in with_products for p in _precisions(t)} == {"HIGHEST"}
    assert seen == ["highest"]
    assert jax.config.jax_default_matmul_precision is None  # put back after the run


def test_unknown_precision_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(ConfigError) as err:
        TINY.replace(matmul_precision="fast").validate()
    message = str(err.value)
    assert "matmul_precision = 'fast'" in message
    assert all(name in message for name in MATMUL_PRECISIONS)
    out = tmp_path / "run"
    code = main(["train", "--env", "Pendulum-v1", "--matmul-precision", "fast", "--out", str(out)])
    assert code == 2
    assert "matmul_precision = 'fast'" in capsys.readouterr().err
    assert not out.exists()


def test_cli_flag_reaches_the_run(tmp_path, lowered_texts):
    out = tmp_path / "run"
    args = ["train", "--env", "Pendulum-v1", "--backend", "jax", "--quiet", "--out", str(out),
            "--matmul-precision", "float32"]
    for name in ("hidden_sizes", "total_steps", "warmup_steps", "batch_size", "eval_every",
                 "eval_episodes", "buffer_size"):
        value = getattr(TINY, name)
        args += ["--" + name.replace("_", "-"),
                 ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    assert main(args) == 0
    texts = [t for t in lowered_texts if "stablehlo.dot_general" in t]
    assert texts and {p for t in texts for p in _precisions(t)} == {"HIGHEST"}

"""DDPGConfig validation, presets, conversions and command-line parsing."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpg_jax.config import (
    FIELD_NAMES,
    PRESETS,
    TRACED_FIELDS,
    ConfigError,
    DDPGConfig,
    parse_field,
    preset,
)


def test_default_validates_and_returns_self():
    c = DDPGConfig()
    assert c.validate() is c
    assert preset("default") == c
    for name in PRESETS:
        preset(name).validate()


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DDPGConfig().tau = 0.5  # type: ignore[misc]


# --------------------------------------------------------------------------- refusals
def _refused(**changes) -> str:
    config = DDPGConfig().replace(**changes)
    with pytest.raises(ConfigError) as info:
        config.validate()
    return str(info.value)


@pytest.mark.parametrize(
    "field,value",
    [
        ("tau", 0.0),
        ("tau", 1.5),
        ("tau", -0.01),
        ("gamma", 1.0),
        ("gamma", -0.1),
        ("batch_size", 0),
        ("buffer_size", -1),
        ("total_steps", 0),
        ("num_envs", 0),
        ("seed", -3),
        ("actor_lr", 0.0),
        ("critic_lr", float("inf")),
        ("noise_scale", -0.5),
        ("critic_weight_decay", float("nan")),
        ("hidden_sizes", ()),
        ("hidden_sizes", (0, 64)),
        ("hidden_sizes", (64, -8)),
        ("noise", "uniform"),
        ("activation", "swish"),
        ("weight_init", "xavier"),
        ("critic_action_layer", 2),
        ("critic_action_layer", -1),
    ],
)
def test_out_of_range_values_are_refused_with_field_and_value(field, value):
    msg = _refused(**{field: value})
    assert field in msg
    assert repr(value) in msg, msg


def test_tau_and_gamma_edges_accepted():
    DDPGConfig(tau=1.0).validate()
    DDPGConfig(gamma=0.0).validate()
    DDPGConfig(gamma=0.999999).validate()


def test_unknown_choices_list_the_accepted_ones():
    assert "gaussian" in _refused(noise="uniform") and "ou" in _refused(noise="uniform")
    assert "relu" in _refused(activation="swish") and "tanh" in _refused(activation="swish")
    msg = _refused(weight_init="xavier")
    assert "lecun_normal" in msg and "fan_in_uniform" in msg
    assert "[0, 1]" in _refused(critic_action_layer=2)  # hidden_sizes (256, 256)


def test_batch_larger_than_buffer_shows_both_numbers():
    msg = _refused(batch_size=300, buffer_size=200, warmup_steps=1000)
    assert "batch_size" in msg and "buffer_size" in msg
    assert "300" in msg and "200" in msg


@pytest.mark.parametrize("warmup,total", [(1000, 1000), (2000, 1000)])
def test_warmup_not_below_total_is_refused(warmup, total):
    msg = _refused(warmup_steps=warmup, total_steps=total, batch_size=64)
    assert "warmup_steps" in msg and "total_steps" in msg
    assert str(warmup) in msg and str(total) in msg


def test_warmup_below_batch_is_refused():
    msg = _refused(warmup_steps=100, batch_size=256)
    assert "warmup_steps" in msg and "100" in msg and "256" in msg


def test_ou_theta_dt_product_is_refused():
    msg = _refused(ou_theta=0.5, ou_dt=3.0)
    assert "ou_theta" in msg and "ou_dt" in msg


@pytest.mark.parametrize(
    "field,value,type_name",
    [
        ("batch_size", 64.5, "float"),
        ("batch_size", 64.0, "float"),
        ("gamma", "x", "str"),
        ("total_steps", True, "bool"),
        ("tau", False, "bool"),
        ("hidden_sizes", [256, 256], "list"),
        ("hidden_sizes", (256.0, 256), "tuple"),
        ("hidden_sizes", "256,256", "str"),
        ("noise", 1, "int"),
        ("seed", None, "NoneType"),
    ],
)
def test_wrong_types_are_refused(field, value, type_name):
    msg = _refused(**{field: value})
    assert field in msg and repr(value) in msg and type_name in msg, msg


def test_ints_accepted_for_float_fields():
    c = DDPGConfig(gamma=0, tau=1, actor_lr=1).validate()
    assert c.gamma == 0 and c.tau == 1


@pytest.mark.parametrize("bad,close", [("gama", "gamma"), ("batchsize", "batch_size"),
                                       ("hidden_size", "hidden_sizes"), ("taus", "tau")])
def test_unknown_field_names_suggest_the_close_one(bad, close):
    for call in (lambda: DDPGConfig().replace(**{bad: 1}),
                 lambda: DDPGConfig.from_dict({**DDPGConfig().to_dict(), bad: 1}),
                 lambda: preset("paper", **{bad: 1}),
                 lambda: parse_field(bad, "1")):
        with pytest.raises(ConfigError) as info:
            call()
        msg = str(info.value)
        assert repr(bad) in msg and repr(close) in msg, msg


def test_unknown_field_without_close_name():
    with pytest.raises(ConfigError, match="zzzzqqq"):
        DDPGConfig().replace(zzzzqqq=1)


def test_unknown_preset():
    with pytest.raises(ConfigError) as info:
        preset("papr")
    msg = str(info.value)
    assert "'papr'" in msg and "paper" in msg and "default" in msg


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- presets
def test_paper_preset_is_lillicrap_2015():
    p = preset("paper")
    assert p.hidden_sizes == (400, 300)
    assert p.actor_lr == 1e-4
    assert p.critic_lr == 1e-3
    assert p.critic_weight_decay == 1e-2
    assert p.gamma == 0.99
    assert p.tau == 0.001
    assert p.batch_size == 64
    assert p.buffer_size == 1_000_000
    assert p.noise == "ou"
    assert p.noise_scale == 0.2
    assert p.ou_theta == 0.15
    assert p.final_layer_init == 3e-3
    # "The other layers were initialized from uniform distributions [-1/sqrt(f), 1/sqrt(f)]"
    # and "actions were not included until the 2nd hidden layer of Q".
    assert p.weight_init == "fan_in_uniform"
    assert p.critic_action_layer == 1
    assert p.num_critics == 1  # one critic: DDPG, not TD3
    assert p.activation == "relu"
    p.validate()
    # Everything else stays at the defaults.
    expected_changed = {"hidden_sizes", "actor_lr", "critic_weight_decay", "tau", "batch_size",
                        "noise", "noise_scale", "final_layer_init", "weight_init",
                        "critic_action_layer"}
    d, base = p.to_dict(), DDPGConfig().to_dict()
    assert {k for k in d if d[k] != base[k]} == expected_changed


def test_preset_overrides_and_presets_not_mutated():
    p = preset("paper", tau=0.01, seed=3)
    assert p.tau == 0.01 and p.seed == 3 and p.hidden_sizes == (400, 300)
    assert preset("paper").tau == 0.001


# --------------------------------------------------------------------------- conversions
@st.composite
def configs(draw):
    batch = draw(st.integers(1, 128))
    total = draw(st.integers(batch + 1, 10**6))
    return DDPGConfig(
        total_steps=total,
        seed=draw(st.integers(0, 2**31 - 1)),
        buffer_size=draw(st.integers(batch, 10**7)),
        batch_size=batch,
        warmup_steps=draw(st.integers(batch, total - 1)),
        gamma=draw(st.floats(0.0, 0.9999)),
        tau=draw(st.floats(1e-6, 1.0)),
        actor_lr=draw(st.floats(1e-7, 1.0)),
        hidden_sizes=tuple(draw(st.lists(st.integers(1, 1024), min_size=1, max_size=4))),
        activation=draw(st.sampled_from(["relu", "tanh", "elu", "gelu", "silu", "leaky_relu"])),
        noise=draw(st.sampled_from(["gaussian", "ou"])),
        noise_scale=draw(st.floats(0.0, 3.0)),
    )


@settings(max_examples=80, deadline=None)
@given(configs())
def test_dict_and_json_round_trip(config):
    config.validate()
    d = config.to_dict()
    assert set(d) == set(FIELD_NAMES)
    assert isinstance(d["hidden_sizes"], list)
    assert DDPGConfig.from_dict(d) == config
    loaded = json.loads(config.to_json())
    assert loaded == d
    back = DDPGConfig.from_dict(loaded)
    assert back == config
    assert isinstance(back.hidden_sizes, tuple)
    back.validate()


def test_from_dict_partial_uses_defaults():
    c = DDPGConfig.from_dict({"tau": 0.01, "hidden_sizes": [64]})
    assert c == DDPGConfig(tau=0.01, hidden_sizes=(64,))


def test_traced_fields_are_float_fields():
    names = {f.name: f.type for f in dataclasses.fields(DDPGConfig)}
    for name in TRACED_FIELDS:
        assert names[name] == "float"


# --------------------------------------------------------------------------- parse_field
@pytest.mark.parametrize(
    "field,text,value",
    [
        ("batch_size", "64", 64),
        ("buffer_size", "1e6", 1_000_000),
        ("buffer_size", "1E6", 1_000_000),
        ("total_steps", "2.5e4", 25_000),
        ("buffer_size", "1_000", 1000),
        ("seed", "-3", -3),
        ("seed", "0", 0),
        ("gamma", "0.99", 0.99),
        ("tau", "5e-3", 0.005),
        ("actor_lr", "1", 1.0),
        ("hidden_sizes", "256,256", (256, 256)),
        ("hidden_sizes", "400, 300", (400, 300)),
        ("hidden_sizes", "64", (64,)),
        ("noise", "ou", "ou"),
        ("activation", "tanh", "tanh"),
    ],
)
def test_parse_field(field, text, value):
    got = parse_field(field, text)
    assert got == value
    assert type(got) is type(value)
    if isinstance(got, tuple):
        assert all(type(v) is int for v in got)


@pytest.mark.parametrize(
    "field,text",
    [
        ("batch_size", "abc"),
        ("batch_size", "1.5"),
        ("batch_size", "64.5"),
        ("batch_size", "2.5e0"),
        ("batch_size", ""),
        ("buffer_size", "1e400"),
        ("seed", "nan"),
        ("gamma", "abc"),
        ("tau", ""),
        ("hidden_sizes", "256,abc"),
        ("hidden_sizes", "1.5,2"),
        ("hidden_sizes", "256;256"),
    ],
)
def test_parse_field_refusals(field, text):
    with pytest.raises(ConfigError) as info:
        parse_field(field, text)
    msg = str(info.value)
    assert field in msg and repr(text) in msg, msg


@settings(max_examples=100, deadline=None)
@given(st.integers(-(10**12), 10**12))
def test_parse_int_round_trip(n):
    assert parse_field("seed", str(n)) == n


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_parse_float_round_trip(x):
    assert parse_field("gamma", repr(x)) == x


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_parse_tuple_round_trip(sizes):
    assert parse_field("hidden_sizes", ",".join(map(str, sizes))) == tuple(sizes)


def test_parsed_nan_and_inf_are_refused_by_validate():
    for field in ("gamma", "tau", "actor_lr", "noise_scale", "ou_theta"):
        for text in ("nan", "inf"):
            value = parse_field(field, text)
            with pytest.raises(ConfigError, match=field):
                DDPGConfig().replace(**{field: value}).validate()


# --------------------------------------------------------------------------- gradient steps
def test_one_setting_counts_gradient_steps_per_env_step():
    # 1024 envs and 2 per vector step, FastTD3's recipe, written directly.
    assert DDPGConfig(num_envs=1024, updates_per_env_step=2 / 1024).updates_per_vector == 2
    assert preset("accelerator").updates_per_vector == 2
    assert DDPGConfig(num_envs=3, updates_per_env_step=2 / 3).validate().updates_per_vector == 2
    assert DDPGConfig(num_envs=4, updates_per_env_step=2).updates_per_vector == 8
    assert parse_field("updates_per_env_step", "2/1024") == 2 / 1024
    with pytest.raises(ConfigError, match=r"'1/0' cannot be read; accepted: a number or a "
                                          r"fraction a/b"):
        parse_field("updates_per_env_step", "1/0")


@pytest.mark.parametrize("old, new", [
    (dict(updates_per_step=3), dict(updates_per_env_step=3.0)),
    (dict(num_envs=4, updates_per_vector_step=2), dict(num_envs=4, updates_per_env_step=0.5)),
    (dict(num_envs=4, updates_per_step=1, updates_per_vector_step=6),
     dict(num_envs=4, updates_per_env_step=1.5)),  # what a checkpoint of either field holds
])
def test_earlier_names_are_translated_with_a_one_line_notice(old, new):
    with pytest.warns(FutureWarning, match=r"is now written updates_per_env_step=") as seen:
        translated = DDPGConfig(**old)
    assert translated == DDPGConfig(**new)
    assert all("\n" not in str(w.message) for w in seen)
    # From a saved config (config.json, a checkpoint's meta): the same.
    saved = {k: v for k, v in DDPGConfig(**new).to_dict().items() if k != "updates_per_env_step"}
    with pytest.warns(FutureWarning):
        assert DDPGConfig.from_dict({**saved, **old}) == DDPGConfig(**new)


def test_earlier_names_on_top_of_a_preset_replace_its_count():
    with pytest.warns(FutureWarning, match=r"updates_per_vector_step=4 .* updates_per_env_step="
                                           r"4/1024"):
        config = preset("accelerator", updates_per_vector_step=4)
    assert config.updates_per_vector == 4 and config.num_envs == 1024
    with pytest.warns(FutureWarning):
        smaller = preset("accelerator", num_envs=8, updates_per_vector_step=2)
    assert smaller.updates_per_vector == 2 and smaller.updates_per_env_step == 0.25
    # Both spellings at once are refused, naming the one accepted.
    with pytest.raises(ConfigError, match="updates_per_env_step alone"):
        DDPGConfig(updates_per_env_step=2.0, updates_per_step=2)
    with pytest.raises(ConfigError, match="sets no gradient steps"):
        DDPGConfig(updates_per_step=0)


def test_a_training_run_checks_its_config_once(monkeypatch):
    import ddpg_jax

    calls = []
    original = DDPGConfig._check_combinations
    monkeypatch.setattr(DDPGConfig, "_check_combinations",
                        lambda self: calls.append(1) or original(self))
    config = DDPGConfig(total_steps=60, warmup_steps=40, batch_size=8, hidden_sizes=(8,),
                        eval_every=0, eval_episodes=1)
    for backend in ("gymnasium", "jax"):
        calls.clear()
        ddpg_jax.train(config.replace(seed=len(backend)), "Pendulum-v1", backend=backend,
                       log=None)
        assert len(calls) == 1, backend
    # A config whose check failed is checked again (and fails again) when asked.
    bad = DDPGConfig(num_envs=3, n_step=3, buffer_size=1000)
    for _ in range(2):
        with pytest.raises(ConfigError):
            bad.validate()
    assert DDPGConfig() == DDPGConfig().validate() and hash(DDPGConfig().validate()) == hash(
        DDPGConfig())

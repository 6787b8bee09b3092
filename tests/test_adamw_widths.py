"""AdamW weight decay for each net and separate actor/critic widths (FastTD3's settings).

The decoupled decay is checked against a hand-written float64 numpy AdamW (PyTorch's and
the AdamW paper's update, not optax), routed to the right net inside the gradient step,
swept under ``vmap`` and run through both drivers; the widths by the parameter shapes of
each net, the command line, config files, checkpoints and exported policies.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import run_cli

import ddpg_jax
from ddpg_jax import DDPGConfig, init_train_state, make_networks, make_update
from ddpg_jax.agent.gradient_step import make_optimizer
from ddpg_jax.agent.state import Transition
from ddpg_jax.checkpoints import format as ckpt
from ddpg_jax.config import ConfigError, parse_field
from ddpg_jax.drivers.multi import make_hparams
from ddpg_jax.policy.exported import load_exported

LOW, HIGH = np.array([-2.0, 0.5]), np.array([2.0, 3.0])
OBS_DIM, BATCH = 3, 6
TINY = {"total_steps": 160, "warmup_steps": 64, "batch_size": 16, "buffer_size": 256,
        "eval_every": 0, "eval_episodes": 1}


# ------------------------------------------------------------------ AdamW against numpy
def numpy_adamw(params, grads_per_step, lr, decay, b1=0.9, b2=0.999, eps=1e-8):
    """AdamW by hand, in float64 (Loshchilov and Hutter 2019, Alg. 2; PyTorch's ``AdamW``):
    ``p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + decay * p)``; returns p after each step."""
    p = [np.asarray(x, np.float64) for x in params]
    m = [np.zeros_like(x) for x in p]
    v = [np.zeros_like(x) for x in p]
    out = []
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            g = np.asarray(g, np.float64)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            p[i] = p[i] - lr * (m_hat / (np.sqrt(v_hat) + eps) + decay * p[i])
        out.append([x.copy() for x in p])
    return out


@pytest.mark.parametrize("coupled", [False, True])
def test_decoupled_decay_is_adamw_step_by_step(coupled):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]
    # Gradients of mixed sizes, so Adam's normalisation and the decay are of different orders.
    grads = [[(rng.normal(size=x.shape) * 10.0 ** rng.integers(-3, 1, x.shape)).astype(np.float32)
              for x in params] for _ in range(5)]
    lr, decay = 1e-2, 0.3
    # The coupled L2 term (the paper's) exists alongside in the critic's chain; at 0 it must
    # leave AdamW as it is.
    make = make_optimizer(0.0, coupled_weight_decay=coupled, decoupled_weight_decay=True)
    tx = make(jnp.float32(lr), jnp.float32(0.0) if coupled else None,
              adamw_decay=jnp.float32(decay))
    state, p = tx.init(params), [jnp.asarray(x) for x in params]
    want = numpy_adamw(params, grads, lr, decay)
    for step, g in enumerate(grads):
        updates, state = tx.update([jnp.asarray(x) for x in g], state, p)
        p = [a + u for a, u in zip(p, updates)]
        for got, ref in zip(p, want[step]):
            # float32 against float64: each step adds a few roundings of values of size
            # ~|p| + lr, so 5 steps stay within 1e-6 of |p| <~ 3 (float32's eps is 1.2e-7).
            np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=1e-6)
    # The decay changes the result by far more than that tolerance (it is really applied).
    plain = numpy_adamw(params, grads, lr, 0.0)[-1]
    assert max(np.max(np.abs(a - b)) for a, b in zip(plain, want[-1])) > 1e-3


def test_adamw_decay_is_refused_where_the_optimizer_has_no_such_term():
    with pytest.raises(ValueError, match="adamw_decay exactly"):
        make_optimizer(0.0)(1e-3, adamw_decay=0.1)
    with pytest.raises(ValueError, match="adamw_decay exactly"):
        make_optimizer(0.0, decoupled_weight_decay=True)(1e-3)


# ------------------------------------------------------------------ in the gradient step
@pytest.fixture(scope="module")
def setup():
    config = DDPGConfig(hidden_sizes=(5, 4), num_critics=2, gamma=0.9, tau=0.05,
                        actor_lr=1e-2, critic_lr=3e-3, batch_size=BATCH, buffer_size=100,
                        warmup_steps=10, total_steps=100)
    nets = make_networks(config, OBS_DIM, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(1), nets, config)
    ks = jax.random.split(jax.random.PRNGKey(2), 5)
    # Nonzero biases: the decay's effect -lr * decay * p is then visible on every leaf.
    state = state.replace(
        actor_params=jax.tree.map(lambda x: x + 0.3 * jax.random.normal(ks[4], x.shape),
                                  state.actor_params),
        critic_params=jax.tree.map(lambda x: x + 0.3 * jax.random.normal(ks[4], x.shape),
                                   state.critic_params))
    batch = Transition(
        obs=jax.random.normal(ks[0], (BATCH, OBS_DIM)),
        action=jax.random.uniform(ks[1], (BATCH, 2), minval=LOW, maxval=HIGH),
        reward=jax.random.normal(ks[2], (BATCH,)),
        terminated=jnp.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
        next_obs=jax.random.normal(ks[3], (BATCH, OBS_DIM)),
    )
    return config, nets, state, batch


def _step(config, nets, state, batch, **decays):
    cfg = config.replace(**decays)
    hp = state.hparams._replace(**{k: jnp.float32(v) for k, v in decays.items()})
    return make_update(nets, cfg)(state.replace(hparams=hp), batch)[0]


def _assert_moved_by_decay(new, plain, old, lr, decay):
    """``new - plain == -lr * decay * old`` on every leaf: from the same state, gradients and
    Adam's moments are those of the plain step, so AdamW adds exactly its decay term."""
    for a, b, p in zip(jax.tree.leaves(new), jax.tree.leaves(plain), jax.tree.leaves(old)):
        want = -lr * decay * np.asarray(p, np.float64)
        got = np.asarray(a, np.float64) - np.asarray(b, np.float64)
        # Each of new and plain is rounded once more than the other's ~|p| (<~ 2): a few
        # float32 ulps of 2, 1e-6, against decay terms of 1e-4..1e-2.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert np.max(np.abs(want)) > 1e-4


def test_each_net_takes_its_own_decay(setup):
    config, nets, state, batch = setup
    plain = _step(config, nets, state, batch)
    actor_only = _step(config, nets, state, batch, actor_adamw_decay=0.2)
    _assert_moved_by_decay(actor_only.actor_params, plain.actor_params, state.actor_params,
                           config.actor_lr, 0.2)
    np.testing.assert_allclose(  # the critic (updated first) does not see the actor's decay
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(actor_only.critic_params)]),
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(plain.critic_params)]),
        rtol=0, atol=1e-7)
    critic_only = _step(config, nets, state, batch, critic_adamw_decay=0.3)
    _assert_moved_by_decay(critic_only.critic_params, plain.critic_params, state.critic_params,
                           config.critic_lr, 0.3)


def test_a_sweep_over_the_decay_under_vmap_matches_single_runs(setup):
    config, nets, state, batch = setup
    values = [0.0, 0.05, 0.4]
    with pytest.raises(ConfigError, match="actor_adamw_decay > 0"):
        make_hparams(config, 3, actor_adamw_decay=values)  # no term in a 0-decay program
    on = config.replace(actor_adamw_decay=0.1)
    hparams = make_hparams(on, 3, actor_adamw_decay=values)
    states = jax.vmap(lambda h: state.replace(hparams=h))(hparams)
    update = make_update(nets, on)
    batched, _ = jax.jit(jax.vmap(update, in_axes=(0, None)))(states, batch)
    rows = [[np.asarray(x)[i] for x in jax.tree.leaves(batched.actor_params)]
            for i in range(len(values))]
    for row, v in zip(rows, values):
        single = _step(config, nets, state, batch, actor_adamw_decay=v)
        for a, b in zip(row, jax.tree.leaves(single.actor_params)):
            # One program batched, another not: the same float32 sums in another order.
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)
    assert not np.allclose(rows[0][0], rows[2][0])


# ------------------------------------------------------------------ settings
def test_coupled_and_decoupled_decay_on_the_critic_are_refused_together():
    with pytest.raises(ConfigError, match="critic_weight_decay 0.01.*critic_adamw_decay 0.1"):
        ddpg_jax.preset("paper", critic_adamw_decay=0.1).validate()
    ddpg_jax.preset("paper", actor_adamw_decay=0.1).validate()  # the actor has no L2 term
    with pytest.raises(ConfigError, match="actor_adamw_decay = -0.1 is out of range"):
        DDPGConfig(actor_adamw_decay=-0.1).validate()
    with pytest.raises(ConfigError, match="at most one"):
        make_hparams(ddpg_jax.preset("paper", critic_weight_decay=0.01), 2,
                     critic_adamw_decay=[0.0, 0.1])


def _shapes(params):
    return {jax.tree_util.keystr(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_flatten_with_path(params)[0] if "kernel" in str(p)}


def test_each_net_has_its_own_widths():
    config = DDPGConfig(hidden_sizes=(9, 9), actor_hidden_sizes=(7, 5),
                        critic_hidden_sizes=(11, 6, 4), num_critics=2)
    nets = make_networks(config.validate().network, OBS_DIM, LOW, HIGH)
    state = init_train_state(jax.random.PRNGKey(0), nets, config)
    assert sorted(_shapes(state.actor_params).values()) == sorted([(3, 7), (7, 5), (5, 2)])
    assert sorted(_shapes(state.critic_params).values()) == sorted(
        [(2, 5, 11), (2, 11, 6), (2, 6, 4), (2, 4, 1)])
    assert _shapes(state.target_actor_params) == _shapes(state.actor_params)
    assert _shapes(state.target_critic_params) == _shapes(state.critic_params)
    # Empty: hidden_sizes for that net, as every config written before these fields.
    default = DDPGConfig(hidden_sizes=(9, 8), critic_hidden_sizes=(6,))
    s = init_train_state(jax.random.PRNGKey(0), make_networks(default, OBS_DIM, LOW, HIGH),
                         default)
    assert sorted(_shapes(s.actor_params).values()) == sorted([(3, 9), (9, 8), (8, 2)])
    assert sorted(_shapes(s.critic_params).values()) == sorted([(1, 5, 6), (1, 6, 1)])


def test_widths_from_the_command_line_and_config_files():
    assert parse_field("actor_hidden_sizes", "512,256,128") == (512, 256, 128)
    assert parse_field("critic_hidden_sizes", "") == ()
    config = DDPGConfig(actor_hidden_sizes=(4, 3), critic_hidden_sizes=(8,),
                        critic_adamw_decay=0.1)
    back = DDPGConfig.from_dict(json.loads(config.to_json()))
    assert back == config and back.actor_hidden_sizes == (4, 3)
    old = json.loads(DDPGConfig().to_json())
    for name in ("actor_hidden_sizes", "critic_hidden_sizes", "actor_adamw_decay",
                 "critic_adamw_decay"):
        del old[name]
    assert DDPGConfig.from_dict(old) == DDPGConfig()  # a config saved before these fields
    with pytest.raises(ConfigError, match="critic_action_layer = 1 is out of range.*critic"):
        DDPGConfig(hidden_sizes=(4, 4), critic_hidden_sizes=(4,), critic_action_layer=1).validate()
    with pytest.raises(ConfigError, match="actor_hidden_sizes = \\(4, 0\\) is out of range"):
        DDPGConfig(actor_hidden_sizes=(4, 0)).validate()


def test_command_line_flags_reach_the_config():
    from ddpg_jax.cli import main as cli

    args, unknown = cli._build_parser().parse_known_args(
        ["train", "--env", "Pendulum-v1", "--actor-hidden-sizes", "8,4",
         "--critic-hidden-sizes", "16", "--actor-adamw-decay", "0.1",
         "--critic-adamw-decay", "0.2"])
    assert not unknown
    config = cli._new_plan(args).config
    assert (config.actor_hidden_sizes, config.critic_hidden_sizes) == ((8, 4), (16,))
    assert (config.actor_adamw_decay, config.critic_adamw_decay) == (0.1, 0.2)


def test_checkpoints_without_the_new_hparams_read_them_as_zero():
    hp = {"gamma": jax.ShapeDtypeStruct((2,), jnp.float32),
          "actor_adamw_decay": jax.ShapeDtypeStruct((2,), jnp.float32),
          "critic_adamw_decay": jax.ShapeDtypeStruct((2,), jnp.float32)}
    template = {"agent": {"hparams": hp}}
    got = ckpt.unflatten({"agent/hparams/gamma": np.full(2, 0.99, np.float32)}, template)
    np.testing.assert_array_equal(got["agent"]["hparams"]["actor_adamw_decay"], np.zeros(2))
    np.testing.assert_array_equal(got["agent"]["hparams"]["critic_adamw_decay"], np.zeros(2))
    with pytest.raises(ckpt.CheckpointError, match="missing arrays.*gamma"):
        ckpt.unflatten({"agent/hparams/actor_adamw_decay": np.zeros(2, np.float32),
                        "agent/hparams/critic_adamw_decay": np.zeros(2, np.float32)}, template)


# ------------------------------------------------------------------ both drivers
def test_gymnasium_driver_with_adamw_and_separate_widths_exports_the_actor(tmp_path, capsys):
    config = DDPGConfig(**TINY, actor_hidden_sizes=(8,), critic_hidden_sizes=(16, 16),
                        actor_adamw_decay=0.1, critic_adamw_decay=0.1, obs_norm=True)
    result = ddpg_jax.train(config, "Pendulum-v1", run_dir=tmp_path / "run", log=None)
    ts = result.train_state
    assert sorted(_shapes(ts.actor_params).values()) == [(3, 8), (8, 1)]
    assert sorted(_shapes(ts.critic_params).values()) == [(1, 4, 16), (1, 16, 1), (1, 16, 16)]
    assert float(ts.hparams.actor_adamw_decay) == pytest.approx(0.1)
    obs = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    norm = ddpg_jax.agent.gradient_step.normalize_obs(ts, jnp.asarray(obs), config)
    want = np.asarray(result.networks.actor_apply(ts.actor_params, norm))
    policy = ddpg_jax.load_policy(tmp_path / "run")
    out = tmp_path / "p.jaxexport"
    code, _, err = run_cli(capsys, ["export", "--checkpoint", str(tmp_path / "run"),
                                    "--out", str(out)])
    assert code == 0, err
    for name, acted in (("checkpoint", policy.act_fn()(obs)),
                        ("exported", load_exported(out).act_fn()(obs))):
        # Separate compiled programs of one float32 function: a few ulps of actions in [-2, 2].
        np.testing.assert_allclose(np.asarray(acted), want, rtol=0, atol=1e-5, err_msg=name)


def test_jax_driver_with_adamw_and_widths_over_seeds_and_a_sweep():
    env, params = ddpg_jax.envs.make("Pendulum-v1")
    config = DDPGConfig(**TINY, actor_hidden_sizes=(8,), critic_hidden_sizes=(12, 6),
                        critic_adamw_decay=0.2)
    result = ddpg_jax.train(config, (env, params), num_seeds=2, log=None)
    ts = result.train_state
    assert sorted(_shapes(ts.actor_params).values()) == [(2, 3, 8), (2, 8, 1)]
    assert sorted(_shapes(ts.critic_params).values()) == [(2, 1, 4, 12), (2, 1, 6, 1),
                                                          (2, 1, 12, 6)]
    leaf = np.asarray(jax.tree.leaves(ts.actor_params)[0])
    assert not np.array_equal(leaf[0], leaf[1])  # the seeds differ
    # A sweep over the actor's decay from a config without it: sweep() compiles the term in.
    settings, timed = ddpg_jax.sweep(config, env, params, grid={"actor_adamw_decay": [0.0, 0.5]},
                                     num_seeds=1)
    assert settings == [{"actor_adamw_decay": 0.0}, {"actor_adamw_decay": 0.5}]
    hp = timed.output.train_state.hparams
    np.testing.assert_allclose(np.asarray(hp.actor_adamw_decay).ravel(), [0.0, 0.5])
    np.testing.assert_allclose(np.asarray(hp.critic_adamw_decay).ravel(), [0.2, 0.2])
    a = jax.tree.leaves(timed.output.train_state.actor_params)
    # Same seed, same start: the decay alone multiplies the weights by (1 - lr * 0.5) per
    # update, the squared norm by that squared: 0.908 after 96 updates. The Adam steps of
    # the two runs differ only through what the decay changed (measured: 0.910).
    norms = [sum(float(np.sum(np.asarray(x)[i] ** 2)) for x in a) for i in range(2)]
    updates = TINY["total_steps"] - TINY["warmup_steps"]
    shrink = (1 - config.actor_lr * 0.5) ** (2 * updates)
    assert norms[1] / norms[0] == pytest.approx(shrink, abs=0.02)

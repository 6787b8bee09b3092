"""The C51 critic (``critic="c51"``): projection by hand, the update against a plain-jax
reference, both drivers, vmapped seeds, exact resume, export, and refused settings.

The reference step below uses no library code but the parameter pytrees it starts
from: the MLPs, the categorical projection (written as FastTD3 writes it, with
floor, ceil and a scatter-add, where the library weighs every pair of atoms), the
clipped double-Q over distributions, the losses and Adam are all written out here.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_identical_arrays, final_arrays, run_cli

import ddpg_jax
from ddpg_jax.agent import distributional
from ddpg_jax.agent.nonfinite import GUARDED, NonFiniteError
from ddpg_jax.agent.nstep import NStepTransition
from ddpg_jax.cli.main import main
from ddpg_jax.config import ConfigError
from ddpg_jax.policy.exported import load_exported

# A support whose atoms and spacing are exact in float32: -2, -1, 0, 1, 2.
Z5 = jnp.linspace(-2.0, 2.0, 5, dtype=jnp.float32)
# Probabilities are sums of a few float32 products of numbers <= 1: a handful of roundings
# of size eps/2 = 6e-8 each.
PTOL = 1e-6


def _project(probs, reward, bootstrap, support=Z5):
    return np.asarray(distributional.categorical_projection(
        jnp.asarray(probs, jnp.float32), jnp.asarray(reward, jnp.float32),
        jnp.asarray(bootstrap, jnp.float32), support))


def _one_hot(j, k=5):
    return np.eye(k, dtype=np.float32)[j]


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """A persistent compilation cache for this module: the resumed runs compile the programs
    of the uninterrupted one again, and find them here. Restored afterwards."""
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax-cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield
    for n, v in old.items():
        jax.config.update(n, v)
    compilation_cache.reset_cache()


# ------------------------------------------------------------------ the projection by hand
def test_projection_conserves_mass_for_any_target():
    gen = np.random.default_rng(0)
    probs = gen.dirichlet(np.ones(5), size=200).astype(np.float32)
    reward = gen.normal(0.0, 3.0, 200)  # many beyond the edges
    bootstrap = gen.uniform(0.0, 1.0, 200)
    out = _project(probs, reward, bootstrap)
    assert np.all(out >= 0.0)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=PTOL)


def test_projection_stores_no_atoms_by_atoms_array():
    """The share of every (source, destination) pair is fused into the sum: the compiled
    projection's scratch memory stays far below one ``[batch, atoms, atoms]`` float32 array."""
    batch, atoms = 512, 101
    support = distributional.make_support(-10.0, 10.0, atoms)
    compiled = jax.jit(distributional.categorical_projection).lower(
        jnp.zeros((2, batch, atoms)), jnp.zeros((2, batch)), jnp.zeros((2, batch)),
        support).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    assert analysis.temp_size_in_bytes < batch * atoms * atoms * 4 / 10


def test_targets_beyond_the_edges_land_on_the_edge_atoms():
    probs = np.full((3, 5), 0.2, np.float32)
    out = _project(probs, [10.0, -10.0, 2.5], [1.0, 1.0, 0.5])
    np.testing.assert_allclose(out[0], _one_hot(4), atol=PTOL)  # all of 10 + z >= 8 > 2
    np.testing.assert_allclose(out[1], _one_hot(0), atol=PTOL)
    # 2.5 + 0.5 z = 1.5, 2, 2.5, 3, 3.5: the first splits 1 and 2, the rest sit on 2.
    np.testing.assert_allclose(out[2], [0, 0, 0, 0.1, 0.9], atol=PTOL)


def test_a_target_on_an_atom_keeps_all_its_mass_there():
    # 0.5 + 0.5 * 1 = 1 (atom 3); the identity shift (r=0, bootstrap 1) returns probs.
    np.testing.assert_allclose(_project(_one_hot(3), 0.5, 0.5), _one_hot(3), atol=PTOL)
    probs = np.array([0.1, 0.2, 0.3, 0.15, 0.25], np.float32)
    np.testing.assert_allclose(_project(probs, 0.0, 1.0), probs, atol=PTOL)
    # On the top atom exactly (b = num_atoms - 1): no mass beyond the support.
    np.testing.assert_allclose(_project(_one_hot(4), 1.0, 0.5), _one_hot(4), atol=PTOL)


def test_a_target_between_atoms_is_split_linearly():
    # Atom z=0 moves to 0.25: 3/4 stays on atom 2 (z=0), 1/4 goes to atom 3 (z=1).
    np.testing.assert_allclose(_project(_one_hot(2), 0.25, 0.9), [0, 0, 0.75, 0.25, 0],
                               atol=PTOL)
    # Atom z=-2 moves to -0.6 * 2 + 0.1 = -1.1: 0.1 on atom 0 (z=-2), 0.9 on atom 1 (z=-1).
    np.testing.assert_allclose(_project(_one_hot(0), 0.1, 0.6), [0.1, 0.9, 0, 0, 0],
                               atol=PTOL)
    # Its mean is the shifted mean wherever nothing is clipped.
    probs = np.array([0.1, 0.2, 0.3, 0.15, 0.25], np.float32)
    out = _project(probs, 0.3, 0.5)
    np.testing.assert_allclose(out @ np.asarray(Z5), 0.3 + 0.5 * (probs @ np.asarray(Z5)),
                               atol=PTOL)


class _Fixed(NamedTuple):
    """Two target critics whose distributions ignore the inputs, and an identity actor."""

    logits: np.ndarray  # [2, batch, atoms]

    def actor_apply(self, params, obs):
        return obs[..., :1]

    def critic_apply(self, params, obs, action):
        return jnp.asarray(self.logits)


def _fixed_target(logits, reward, terminated, discount=None, gamma=0.5):
    nets = _Fixed(np.asarray(logits, np.float32))
    batch_size = nets.logits.shape[1]
    fields = {"obs": jnp.zeros((batch_size, 1)), "action": jnp.zeros((batch_size, 1)),
              "reward": jnp.asarray(reward, jnp.float32),
              "terminated": jnp.asarray(terminated, jnp.float32),
              "next_obs": jnp.zeros((batch_size, 1))}
    if discount is None:
        batch = ddpg_jax.Transition(**fields)
    else:
        batch = NStepTransition(**fields, discount=jnp.asarray(discount, jnp.float32))
    target = distributional.make_objectives(-2.0, 2.0, 5).td_target
    return np.asarray(target(None, None, batch, jnp.float32(gamma), nets.actor_apply,
                             nets.critic_apply))


# Logits that put (almost) all the mass on one atom: a mass of 1 - 4e-44 in float32 is 1.
_ON = 100.0


def test_terminal_transitions_put_all_mass_at_the_reward():
    logits = np.stack([np.full((2, 5), 0.0), _ON * np.stack([_one_hot(4), _one_hot(0)])])
    out = _fixed_target(logits, reward=[-0.5, 1.0], terminated=[1.0, 1.0])
    np.testing.assert_allclose(out[0], [0, 0.5, 0.5, 0, 0], atol=PTOL)  # -0.5, any next return
    np.testing.assert_allclose(out[1], _one_hot(3), atol=PTOL)
    # Not terminated, the same rows bootstrap: critic 0's uniform next return, halved.
    out = _fixed_target(logits, reward=[-0.5, 1.0], terminated=[0.0, 0.0])
    assert not np.allclose(out[0], [0, 0.5, 0.5, 0, 0], atol=1e-3)


def test_n_step_targets_bootstrap_with_gamma_to_the_m():
    # Both critics certain of z=2. gamma 0.5 and discount gamma^(m-1): gamma^m z, m = 1, 2, 3.
    logits = _ON * np.stack([np.stack([_one_hot(4)] * 3)] * 2)
    out = _fixed_target(logits, reward=[0.0, 0.0, 0.0], terminated=[0.0, 0.0, 0.0],
                        discount=[1.0, 0.5, 0.25])
    np.testing.assert_allclose(out[0], _one_hot(3), atol=PTOL)  # 0.5 * 2 = 1
    np.testing.assert_allclose(out[1], [0, 0, 0.5, 0.5, 0], atol=PTOL)  # 0.25 * 2
    np.testing.assert_allclose(out[2], [0, 0, 0.75, 0.25, 0], atol=PTOL)  # 0.125 * 2


def test_clipped_double_q_takes_the_distribution_with_the_lower_mean_per_sample():
    # Sample 0: critic 0 is certain of +2 and critic 1 of -1; sample 1: the other way round.
    logits = _ON * np.stack([np.stack([_one_hot(4), _one_hot(1)]),
                             np.stack([_one_hot(1), _one_hot(4)])])
    out = _fixed_target(logits, reward=[0.0, 0.0], terminated=[0.0, 0.0], gamma=1.0)
    np.testing.assert_allclose(out, np.stack([_one_hot(1), _one_hot(1)]), atol=PTOL)
    # The means compared are those after the projection, clipping included (FastTD3's): with
    # r = 3, critic 0 (-2 or +2, mean 0) lands on 1 or 2 (mean 1.5) and critic 1 (-1, the
    # lower mean before the shift) on 2.
    logits = _ON * np.stack([(_one_hot(0) + _one_hot(4))[None], _one_hot(1)[None]])
    out = _fixed_target(logits, reward=[3.0], terminated=[0.0], gamma=1.0)
    np.testing.assert_allclose(out[0], [0, 0, 0, 0.5, 0.5], atol=PTOL)


# ------------------------------------------------------------------ the reference step
OBS_DIM, BATCH, ATOMS, V_MIN, V_MAX = 4, 32, 11, -10.0, 10.0
LOW = np.array([-2.0, 0.0], np.float32)
HIGH = np.array([2.0, 3.0], np.float32)
SUPPORT = (np.arange(ATOMS) * (V_MAX - V_MIN) / (ATOMS - 1) + V_MIN).astype(np.float32)
B1, B2, EPS = 0.9, 0.999, 1e-8  # optax.scale_by_adam's defaults
# float32 tolerance as tests/test_td3_reference.py: the library and this step compute the
# same functions in other orders (the projection above all), which moves values by a few
# ulps; Adam's step is bounded by the learning rate, so after a few steps the parameters
# agree to ~1e-7 absolute. 1e-5 relative / 1e-6 absolute is 10x that; the mutants below move
# parameters by ~lr = 1e-3.
RTOL, ATOL = 1e-5, 1e-6


class Mutation(NamedTuple):
    """Deliberate bugs in the reference, to show the comparison can see each one. Flags are
    arrays (0 or 1), so that every mutation runs in the one compiled reference."""

    swap_split_weights: Any = 0.0
    max_mean: Any = 0.0
    no_terminal_mask: Any = 0.0
    gamma_not_gamma_m: Any = 0.0
    actor_on_mode: Any = 0.0


def _mlp(layers, x):
    names = sorted(layers, key=lambda n: int(n.split("_")[1]))
    for i, name in enumerate(names):
        x = x @ layers[name]["kernel"] + layers[name]["bias"]
        if i < len(names) - 1:
            x = jnp.maximum(x, 0.0)
    return x


def _actor(params, obs):
    raw = _mlp(params["MLP_0"], obs)
    return LOW + (jnp.tanh(raw) + 1.0) * 0.5 * (HIGH - LOW)


def _critic_logits(params, k, obs, action):
    """Critic k's logits [batch, atoms]: its slice of the stacked ensemble parameters."""
    layers = jax.tree.map(lambda x: x[k], params["VmapCritic_0"]["MLP_0"])
    return _mlp(layers, jnp.concatenate([obs, action], axis=-1))


def _ref_project(probs, reward, bootstrap, m: Mutation):
    """FastTD3's projection: floor and ceil of the fractional index, a scatter-add, and on an
    exact atom (floor == ceil) all of the mass to it."""
    delta = (V_MAX - V_MIN) / (ATOMS - 1)
    tz = jnp.clip(reward[:, None] + bootstrap[:, None] * SUPPORT, V_MIN, V_MAX)
    b = (tz - V_MIN) / delta
    lo, hi = jnp.floor(b), jnp.ceil(b)
    lo_w = jnp.where(lo == hi, 1.0, hi - b)
    hi_w = jnp.where(lo == hi, 0.0, b - lo)
    swap = m.swap_split_weights > 0
    lo_w, hi_w = jnp.where(swap, hi_w, lo_w), jnp.where(swap, lo_w, hi_w)
    rows = jnp.arange(probs.shape[0])[:, None]
    out = jnp.zeros_like(probs).at[rows, lo.astype(jnp.int32)].add(probs * lo_w)
    return out.at[rows, hi.astype(jnp.int32)].add(probs * hi_w)


def _adam(params, grads, opt, lr):
    mu = jax.tree.map(lambda a, g: B1 * a + (1 - B1) * g, opt[1], grads)
    nu = jax.tree.map(lambda a, g: B2 * a + (1 - B2) * g * g, opt[2], grads)
    count = opt[0] + 1
    c1, c2 = 1 - B1 ** count.astype(jnp.float32), 1 - B2 ** count.astype(jnp.float32)
    new = jax.tree.map(lambda p, a, v: p - lr * (a / c1) / (jnp.sqrt(v / c2) + EPS),
                       params, mu, nu)
    return new, (count, mu, nu)


def _adam_init(params):
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), params)
    return (jnp.zeros((), jnp.int32), zeros, zeros)


def make_reference_step(config):
    """``step(ref, batch, act_now, mutation) -> (ref, info)``: one C51 TD3 step, all by hand."""
    gamma, tau = config.gamma, config.tau
    scale, clip = config.target_noise, config.target_noise_clip

    def target(ref, batch, noise_key, m):
        reward = batch.reward * config.reward_scale
        eps = jax.random.normal(noise_key, batch.action.shape)
        noise = jnp.clip(eps * scale, -clip, clip) * (HIGH - LOW) / 2
        next_action = jnp.clip(_actor(ref["target_actor"], batch.next_obs) + noise, LOW, HIGH)
        m_steps = jnp.where(m.gamma_not_gamma_m > 0, 1.0, batch.discount)  # gamma^(m-1)
        mask = jnp.where(m.no_terminal_mask > 0, 1.0, 1.0 - batch.terminated)
        projected = [
            _ref_project(jax.nn.softmax(_critic_logits(ref["target_critic"], k, batch.next_obs,
                                                       next_action)),
                         reward, gamma * m_steps * mask, m)
            for k in range(2)]
        means = [p @ SUPPORT for p in projected]
        pick_first = jnp.where(m.max_mean > 0, means[0] > means[1], means[0] <= means[1])
        return jnp.where(pick_first[:, None], projected[0], projected[1])

    def value(logits, m):
        mode = jnp.asarray(SUPPORT)[jnp.argmax(logits, axis=-1)]
        return jnp.where(m.actor_on_mode > 0, mode, jax.nn.softmax(logits) @ SUPPORT)

    @jax.jit
    def core(ref, batch, m):
        rng, noise_key = jax.random.split(ref["rng"])
        y = jax.lax.stop_gradient(target(ref, batch, noise_key, m))

        def critic_objective(cp):
            return sum(jnp.mean(-jnp.sum(y * jax.nn.log_softmax(
                _critic_logits(cp, k, batch.obs, batch.action)), axis=-1)) for k in range(2))

        c_loss, c_grads = jax.value_and_grad(critic_objective)(ref["critic"])
        critic, critic_opt = _adam(ref["critic"], c_grads, ref["critic_opt"], config.critic_lr)

        def actor_objective(ap):  # FastTD3: the smaller of the two expected values
            action = _actor(ap, batch.obs)
            q = jnp.minimum(value(_critic_logits(critic, 0, batch.obs, action), m),
                            value(_critic_logits(critic, 1, batch.obs, action), m))
            return -jnp.mean(q)

        a_loss, a_grads = jax.value_and_grad(actor_objective)(ref["actor"])
        actor, actor_opt = _adam(ref["actor"], a_grads, ref["actor_opt"], config.actor_lr)
        polyak = lambda o, t: tau * o + (1 - tau) * t
        moved = {"actor": actor, "actor_opt": actor_opt,
                 "target_actor": jax.tree.map(polyak, actor, ref["target_actor"]),
                 "target_critic": jax.tree.map(polyak, critic, ref["target_critic"])}
        q_mean = jnp.mean(jnp.stack([
            jax.nn.softmax(_critic_logits(ref["critic"], k, batch.obs, batch.action)) @ SUPPORT
            for k in range(2)]))
        info = {"critic_loss": c_loss, "actor_loss": a_loss,
                "target_mean": jnp.mean(y @ SUPPORT), "q_mean": q_mean}
        return dict(ref, rng=rng, critic=critic, critic_opt=critic_opt), moved, info

    def step(ref, batch, act_now: bool, m: Mutation = Mutation()):
        ref, moved, info = core(ref, batch, Mutation(*(jnp.float32(f) for f in m)))
        return ({**ref, **moved} if act_now else ref), info

    return step


def _random_batch(gen, gamma) -> NStepTransition:
    """Large observations, rewards that push edge atoms past the support, ~30% terminated,
    and n-step samples of 1, 2 and 3 steps."""
    terminated = (gen.random(BATCH) < 0.3).astype(np.float32)
    terminated[:2] = [1.0, 0.0]
    m = gen.integers(1, 4, BATCH)
    return NStepTransition(
        obs=jnp.asarray(gen.normal(0.0, 4.0, (BATCH, OBS_DIM)), jnp.float32),
        action=jnp.asarray(gen.uniform(LOW, HIGH, (BATCH, 2)), jnp.float32),
        reward=jnp.asarray(gen.normal(1.0, 4.0, BATCH), jnp.float32),
        terminated=jnp.asarray(terminated),
        next_obs=jnp.asarray(gen.normal(0.0, 4.0, (BATCH, OBS_DIM)), jnp.float32),
        discount=jnp.asarray(gamma ** (m - 1), jnp.float32))


@pytest.fixture(scope="module")
def setup():
    # Distinct rates, a large tau, reward_scale != 1 and targets apart from the online nets,
    # so every term shows in the parameters from the first steps on.
    config = ddpg_jax.preset("td3", critic="c51", num_atoms=ATOMS, v_min=V_MIN, v_max=V_MAX,
                             hidden_sizes=(16, 16), tau=0.1, reward_scale=0.5, actor_lr=3e-4,
                             critic_lr=1e-3, gamma=0.9)
    assert (config.num_critics, config.policy_delay, config.target_noise) == (2, 2, 0.2)
    nets = ddpg_jax.make_networks(config, OBS_DIM, LOW, HIGH)
    state = jax.jit(lambda key: ddpg_jax.init_train_state(key, nets, config))(
        jax.random.PRNGKey(7))
    gen = np.random.default_rng(123)
    perturbed = lambda t: jax.tree.map(lambda x: x + gen.normal(0, 0.05, x.shape).astype(
        np.float32), t)
    state = state.replace(target_actor_params=perturbed(state.target_actor_params),
                          target_critic_params=perturbed(state.target_critic_params))
    return (config, state, jax.jit(ddpg_jax.make_update(nets, config)),
            make_reference_step(config))


def _run_both(setup, steps, m=Mutation()):
    config, state, update, ref_step = setup
    ref = {"actor": state.actor_params, "critic": state.critic_params,
           "target_actor": state.target_actor_params,
           "target_critic": state.target_critic_params,
           "actor_opt": _adam_init(state.actor_params),
           "critic_opt": _adam_init(state.critic_params), "rng": state.rng}
    gen = np.random.default_rng(0)
    for i in range(1, steps + 1):
        batch = _random_batch(gen, config.gamma)
        state, metrics = update(state, batch)
        ref, info = ref_step(ref, batch, i % config.policy_delay == 0, m)
        yield i, state, metrics, ref, info


def _close(actual, expected, what):
    for (path, a), e in zip(jax.tree_util.tree_flatten_with_path(actual)[0],
                            jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what} {jax.tree_util.keystr(path)}")


def _assert_matches(i, state, metrics, ref, info):
    _close(state.critic_params, ref["critic"], f"step {i}: critic")
    _close(state.actor_params, ref["actor"], f"step {i}: actor")
    _close(state.target_critic_params, ref["target_critic"], f"step {i}: target critic")
    _close(state.target_actor_params, ref["target_actor"], f"step {i}: target actor")
    names = ["critic_loss", "target_mean", "q_mean"] + (["actor_loss"] if i % 2 == 0 else [])
    for name in names:
        np.testing.assert_allclose(float(metrics[name]), float(info[name]), rtol=RTOL,
                                   atol=ATOL, err_msg=f"step {i}: {name}")


def test_c51_steps_match_the_reference(setup):
    """4 steps (the actor and targets move on steps 2 and 4, target smoothing on, n-step
    samples) equal the hand-written C51 TD3 step."""
    prev = None
    for i, state, metrics, ref, info in _run_both(setup, steps=4):
        _assert_matches(i, state, metrics, ref, info)
        assert int(state.actor_step) == i // 2
        if prev is not None:
            assert np.array_equal(state.actor_params["MLP_0"]["Dense_0"]["kernel"],
                                  prev.actor_params["MLP_0"]["Dense_0"]["kernel"]) == (i % 2 == 1)
        prev = state
    assert float(metrics["critic_loss"]) > 0.0  # cross-entropies, two critics


@pytest.mark.parametrize("mutation", [
    Mutation(swap_split_weights=1), Mutation(max_mean=1), Mutation(no_terminal_mask=1),
    Mutation(gamma_not_gamma_m=1), Mutation(actor_on_mode=1),
], ids=["swapped_split_weights", "max_mean", "no_terminal_mask", "gamma_not_gamma_m",
        "actor_on_mode"])
def test_a_mutated_reference_does_not_match(setup, mutation):
    """Power check: each of these bugs is visible to the comparison within 2 steps."""
    with pytest.raises(AssertionError):
        for i, state, metrics, ref, info in _run_both(setup, steps=2, m=mutation):
            _assert_matches(i, state, metrics, ref, info)


# ------------------------------------------------------------------ drivers, seeds, resume
TINY = {"critic": "c51", "num_atoms": 21, "v_min": -20.0, "v_max": 20.0, "reward_scale": 0.1,
        "hidden_sizes": (16, 16), "batch_size": 32, "warmup_steps": 200, "buffer_size": 1000,
        "eval_episodes": 2, "n_step": 2}


def _finite_chunks(records):
    assert records
    for r in records:
        for name in ("critic_loss", "q_mean", "target_mean", "actor_loss"):
            assert np.all(np.isfinite(np.asarray(r[name], np.float64))), (name, r)
    return records


def test_gymnasium_driver_trains_and_exports_a_c51_agent(tmp_path, capsys):
    config = ddpg_jax.preset("td3", total_steps=600, eval_every=300, **TINY)
    chunks = []
    result = ddpg_jax.train(config, "Pendulum-v1", run_dir=tmp_path / "run", log=None,
                            on_chunk=chunks.append)
    _finite_chunks(chunks)
    # Expected values lie on the support: a scalar q_mean could leave it.
    assert all(-20.0 <= float(np.mean(r["q_mean"])) <= 20.0 for r in chunks)
    logits = result.networks.critic_apply(result.train_state.critic_params,
                                          jnp.zeros((5, 3)), jnp.zeros((5, 1)))
    assert logits.shape == (2, 5, 21)
    # The actor is unchanged, so export and load_policy work as for the scalar critic.
    out = tmp_path / "policy.jaxexport"
    code, _, err = run_cli(capsys, ["export", "--checkpoint", str(result.checkpoint), "--out",
                                    str(out)])
    assert code == 0, err
    obs = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    want = np.asarray(jax.jit(result.networks.actor_apply)(result.train_state.actor_params, obs))
    # Other compiled programs of the same float32 16x16 MLP: a few ulps of tanh and the
    # sums apart, far below 1e-5 on actions of size 2.
    np.testing.assert_allclose(load_exported(out).act_fn()(obs), want, atol=1e-5)
    np.testing.assert_allclose(ddpg_jax.load_policy(result.checkpoint).act_fn()(obs), want,
                               atol=1e-5)


def test_the_nonfinite_guard_stops_an_exploding_c51_run(tmp_path):
    """Softmax keeps q_mean finite long after the logits blow up; the guard still stops the
    run (the same compiled programs as above: the learning rate is a traced setting)."""
    config = ddpg_jax.preset("td3", total_steps=600, eval_every=300, critic_lr=1e30, **TINY)
    with pytest.raises(NonFiniteError) as info:
        ddpg_jax.train(config, "Pendulum-v1", run_dir=tmp_path / "run", log=None)
    assert 200 < info.value.env_step <= 600 and info.value.quantity in GUARDED


JAX = ["--env", "Pendulum-v1", "--backend", "jax", "--num-seeds", "2", "--num-envs", "2",
       "--preset", "td3", "--critic", "c51", "--num-atoms", "21", "--v-min", "-20",
       "--v-max", "20", "--reward-scale", "0.1", "--n-step", "2", "--warmup-steps", "200",
       "--batch-size", "32", "--hidden-sizes", "16,16", "--buffer-size", "1000",
       "--eval-every", "200", "--eval-episodes", "2", "--obs-norm", "true"]


def test_whole_loop_driver_vmapped_seeds_resume_exactly(tmp_path):
    """Two vmapped seeds on the JAX Pendulum: different runs, and a run stopped after two
    chunks and resumed ends with the arrays of the uninterrupted one."""
    full = tmp_path / "full"
    assert main(["train", *JAX, "--total-steps", "800", "--out", str(full), "--quiet"]) == 0
    config = ddpg_jax.DDPGConfig.from_dict(
        json.loads((full / "config.json").read_text())["config"])
    assert config.critic == "c51" and config.num_atoms == 21 and config.obs_norm
    env = ddpg_jax.envs.make("Pendulum-v1")
    chunks: list[Any] = []
    first = ddpg_jax.train(config, env, num_seeds=2, run_dir=tmp_path / "half", log=None,
                           should_stop=lambda: chunks.append(1) or len(chunks) == 2)
    assert first.interrupted and first.env_steps == 600
    second = ddpg_jax.train(config, env, num_seeds=2, run_dir=tmp_path / "half", log=None,
                            resume_from=first.checkpoint)
    assert second.env_steps == 800
    arrays = final_arrays(full)
    assert_identical_arrays(arrays, final_arrays(tmp_path / "half"))
    head = arrays["state/agent/train_state/critic_params/VmapCritic_0/MLP_0/Dense_2/kernel"]
    assert head.shape == (2, 2, 16, 21)  # seeds, critics, hidden, atoms
    assert not np.array_equal(head[0], head[1])
    returns = second.evaluations[-1]["eval_returns"]
    assert np.all(np.isfinite(returns)) and returns[0] != returns[1]


# ------------------------------------------------------------------ refused settings
@pytest.mark.parametrize("changes, needle", [
    ({"critic": "c52"}, "critic = 'c52' is out of range; accepted: scalar | c51"),
    ({"num_atoms": 1}, "num_atoms = 1 is out of range; accepted: an integer >= 2"),
    ({"v_min": 5.0, "v_max": 5.0}, "v_min 5.0 >= v_max 5.0"),
    ({"v_max": float("inf")}, "v_max = inf is out of range; accepted: a finite number"),
])
def test_bad_c51_settings_are_refused_before_training(changes, needle, tmp_path, monkeypatch):
    def no_networks(*args, **kwargs):
        raise AssertionError("networks built for a refused config")

    monkeypatch.setattr("ddpg_jax.agent.learner.make_networks", no_networks)
    with pytest.raises(ConfigError) as info:
        ddpg_jax.train(ddpg_jax.DDPGConfig(**changes), "Pendulum-v1", log=None)
    assert needle in str(info.value)


@pytest.mark.parametrize("flags, needle", [
    (["--critic", "distributional"], "accepted: scalar | c51"),
    (["--num-atoms", "0"], "accepted: an integer >= 2"),
    (["--critic", "c51", "--v-min", "10", "--v-max", "-10"], "accepted: v_min < v_max"),
])
def test_cli_refuses_bad_c51_settings_with_exit_code_2(flags, needle, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, ["train", "--env", "Pendulum-v1", *flags, "--out", str(out)])
    assert code == 2, err
    assert err.startswith("ddpg-jax: error: ") and err.count("\n") == 1, err
    assert needle in err and not out.exists()

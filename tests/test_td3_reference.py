"""The td3 and ourddpg update steps against an independent, hand-written reference.

The reference below does not use ``ddpg_jax.agent.losses`` or ``ddpg_jax.agent.gradient_step``: it
writes the TD3 step (Fujimoto et al. 2018, Algorithm 1) out in plain jax.numpy,
on the same flax parameter pytrees, with Adam written by hand as
``optax.scale_by_adam`` defines it. The only library code it calls is the
networks' forward passes (``actor_apply``, and ``critic_apply`` of a
*one-critic* network applied to each critic's slice of the ensemble's
parameters, so that the minimum over the two critics is taken here, not in the
library).

From the same parameters, batches and PRNG key, several consecutive library
steps (delayed actor/target steps included, target smoothing on) must equal the
reference's to float tolerance. Mutated references (smoothing scale and clip
swapped, symmetric [-1, 1] bounds, ...) must *not* match, which shows the
comparison has the power to catch those bugs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpg_jax
from ddpg_jax import Transition

# Asymmetric bounds: half-range [2, 1.5], centre [0, 1.5]. A step that clipped to
# [-1, 1], or measured the noise in raw units instead of half-ranges, differs.
LOW = np.array([-2.0, 0.0], np.float32)
HIGH = np.array([2.0, 3.0], np.float32)
OBS_DIM = 4
BATCH = 32
RTOL, ATOL = 1e-5, 1e-6

# Hand-written Adam, as optax.scale_by_adam (b1, b2, eps, eps_root=0, bias-corrected).
B1, B2, EPS = 0.9, 0.999, 1e-8


# ------------------------------------------------------------------ reference
@dataclasses.dataclass(frozen=True)
class Mutation:
    """Deliberate bugs for the power checks; the default is the correct reference."""

    swap_noise_scale_and_clip: bool = False
    symmetric_unit_bounds: bool = False  # clip the target action to [-1, 1]
    no_bound_clip: bool = False  # do not clip mu'(s') + noise to [low, high]
    raw_noise_units: bool = False  # noise not multiplied by the half-range
    actor_adam_counts_every_step: bool = False
    no_policy_delay: bool = False


class Adam(NamedTuple):
    count: Any  # int32 scalar
    mu: Any
    nu: Any


def adam_init(params) -> Adam:
    def zeros(tree):
        return jax.tree.map(lambda x: np.zeros(x.shape, np.float32), tree)

    return Adam(np.zeros((), np.int32), zeros(params), zeros(params))


def adam_step(params, grads, opt: Adam, lr):
    """params - lr * mu_hat / (sqrt(nu_hat) + eps), moments bias-corrected with count t."""
    mu = jax.tree.map(lambda m, g: B1 * m + (1.0 - B1) * g, opt.mu, grads)
    nu = jax.tree.map(lambda v, g: B2 * v + (1.0 - B2) * g * g, opt.nu, grads)
    count = opt.count + 1
    c1 = 1.0 - B1 ** count.astype(jnp.float32)
    c2 = 1.0 - B2 ** count.astype(jnp.float32)
    new = jax.tree.map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + EPS),
                       params, mu, nu)
    return new, Adam(count, mu, nu)


class RefState(NamedTuple):
    actor: Any
    critic: Any  # leading axis num_critics, as the library's
    target_actor: Any
    target_critic: Any
    actor_opt: Adam
    critic_opt: Adam
    rng: Any
    step: int
    actor_step: int


def ref_init(state) -> RefState:
    """The reference starts from the library's initial parameters and key (and fresh Adams)."""
    return RefState(state.actor_params, state.critic_params, state.target_actor_params,
                    state.target_critic_params, adam_init(state.actor_params),
                    adam_init(state.critic_params), state.rng, 0, 0)


class Smoothing(NamedTuple):
    """Target smoothing constants, as arrays so that every mutation shares one compilation."""

    scale: Any  # noise standard deviation, in half-ranges
    clip: Any  # noise clip, in half-ranges
    half_range: Any  # [action_dim]
    low: Any  # [action_dim] clip of mu'(s') + noise
    high: Any


def smoothing_constants(config, mutation: Mutation) -> Smoothing:
    scale, clip = config.target_noise, config.target_noise_clip
    if mutation.swap_noise_scale_and_clip:
        scale, clip = clip, scale
    half_range = (HIGH - LOW) / 2.0
    if mutation.raw_noise_units:
        half_range = np.ones_like(half_range)
    low, high = LOW, HIGH
    if mutation.symmetric_unit_bounds:
        low, high = -np.ones_like(LOW), np.ones_like(HIGH)
    if mutation.no_bound_clip:
        low, high = np.full_like(LOW, -np.inf), np.full_like(HIGH, np.inf)
    return Smoothing(*(np.asarray(v, np.float32) for v in (scale, clip, half_range, low, high)))


def make_reference_core(config, one_critic_nets):
    """The array part of one TD3 step (DDPG when num_critics=1 and target_noise=0), jitted.

    ``core(ref, batch, smoothing)`` computes the critic step and the actor and
    target step that would be taken if the actor moves now; the policy delay
    is applied by :func:`make_reference_step`.
    """
    actor_apply, q_apply = one_critic_nets.actor_apply, one_critic_nets.critic_apply
    n = config.num_critics
    gamma, tau = config.gamma, config.tau
    smoothing_on = config.target_noise > 0

    def q_k(critic_params, k, obs, action):
        """Critic k alone: its slice of the stacked parameters in a one-critic network."""
        return q_apply(jax.tree.map(lambda x: x[k:k + 1], critic_params), obs, action)[0]

    @jax.jit
    def core(ref: RefState, batch: Transition, sm: Smoothing):
        rng, noise_key = jax.random.split(ref.rng)
        reward = batch.reward * config.reward_scale

        # Target action: clip(mu'(s') + clip(eps * scale, -clip, clip) * half_range, low, high).
        next_action = actor_apply(ref.target_actor, batch.next_obs)
        if smoothing_on:
            eps = jax.random.normal(noise_key, batch.action.shape)
            noise = jnp.clip(eps * sm.scale, -sm.clip, sm.clip) * sm.half_range
            next_action = jnp.clip(next_action + noise, sm.low, sm.high)
        on_bound = jnp.mean((next_action == LOW) | (next_action == HIGH))

        # y = r * reward_scale + gamma * (1 - terminated) * min_k Q'_k(s', a').
        next_q = q_k(ref.target_critic, 0, batch.next_obs, next_action)
        for k in range(1, n):
            next_q = jnp.minimum(next_q, q_k(ref.target_critic, k, batch.next_obs, next_action))
        y = jax.lax.stop_gradient(reward + gamma * (1.0 - batch.terminated) * next_q)

        # Critic: sum over critics of the mean squared TD error, one Adam step.
        def critic_objective(cp):
            return sum(jnp.mean((q_k(cp, k, batch.obs, batch.action) - y) ** 2)
                       for k in range(n))

        c_loss, c_grads = jax.value_and_grad(critic_objective)(ref.critic)
        critic, critic_opt = adam_step(ref.critic, c_grads, ref.critic_opt, config.critic_lr)

        # Actor: -mean Q_0(s, mu(s)) under the *updated* critic, its own Adam.
        def actor_objective(ap):
            return -jnp.mean(q_k(critic, 0, batch.obs, actor_apply(ap, batch.obs)))

        a_loss, a_grads = jax.value_and_grad(actor_objective)(ref.actor)
        actor, actor_opt = adam_step(ref.actor, a_grads, ref.actor_opt, config.actor_lr)
        # Polyak: target = tau * online + (1 - tau) * target.
        target_actor = jax.tree.map(lambda o, t: tau * o + (1.0 - tau) * t, actor,
                                    ref.target_actor)
        target_critic = jax.tree.map(lambda o, t: tau * o + (1.0 - tau) * t, critic,
                                     ref.target_critic)
        info = {"critic_loss": c_loss, "actor_loss": a_loss, "target_mean": jnp.mean(y),
                "on_bound": on_bound}
        return rng, critic, critic_opt, (actor, actor_opt, target_actor, target_critic), info

    return core


def make_reference_step(config, core, mutation: Mutation = Mutation()):
    """``step(ref_state, batch) -> (ref_state, info)``: ``core`` plus the policy delay."""
    delay = 1 if mutation.no_policy_delay else config.policy_delay
    sm = smoothing_constants(config, mutation)

    def step(ref: RefState, batch: Transition):
        rng, critic, critic_opt, moved, info = core(ref, batch, sm)
        steps = ref.step + 1
        if steps % delay == 0:  # the actor and both targets move on every delay-th step
            actor, actor_opt, target_actor, target_critic = moved
            actor_step = ref.actor_step + 1
        else:  # held, including the actor's Adam state (its count too)
            actor, target_actor, target_critic = ref.actor, ref.target_actor, ref.target_critic
            actor_opt = ref.actor_opt
            if mutation.actor_adam_counts_every_step:
                actor_opt = actor_opt._replace(count=moved[1].count)
            actor_step = ref.actor_step
        info = {**info, "actor_moved": actor_step > ref.actor_step}
        return RefState(actor, critic, target_actor, target_critic, actor_opt, critic_opt, rng,
                        steps, actor_step), info

    return step


# ------------------------------------------------------------------- fixtures
def random_batch(gen: np.random.Generator) -> Transition:
    """A fresh batch: large observations (so some target actions reach the bounds),
    nonzero rewards, some terminated transitions."""
    terminated = (gen.random(BATCH) < 0.3).astype(np.float32)
    terminated[:2] = [1.0, 0.0]
    return Transition(
        obs=jnp.asarray(gen.normal(0.0, 4.0, (BATCH, OBS_DIM)), jnp.float32),
        action=jnp.asarray(gen.uniform(LOW, HIGH, (BATCH, 2)), jnp.float32),
        reward=jnp.asarray(gen.normal(1.0, 2.0, BATCH), jnp.float32),
        terminated=jnp.asarray(terminated),
        next_obs=jnp.asarray(gen.normal(0.0, 4.0, (BATCH, OBS_DIM)), jnp.float32),
    )


class Setup(NamedTuple):
    config: Any
    nets: Any
    one_critic: Any  # the same networks with num_critics=1 (for the reference's slices)
    state: Any  # the library's initial train state
    update: Any  # the library's jitted update
    core: Any  # the reference's jitted core


def make_setup(name: str) -> Setup:
    # Distinct learning rates (a swapped actor/critic rate fails), a large tau and a
    # reward scale != 1 so that every term is visible in the parameters.
    config = ddpg_jax.preset(name, hidden_sizes=(32, 32), tau=0.1, reward_scale=0.5,
                             actor_lr=3e-4, critic_lr=1e-3, gamma=0.9)
    # The reference covers neither weight decay, gradient clipping nor obs_norm.
    assert config.critic_weight_decay == 0.0 and config.max_grad_norm == 0.0
    assert not config.obs_norm
    nets = ddpg_jax.make_networks(config, OBS_DIM, LOW, HIGH)
    one_critic = ddpg_jax.make_networks(config.replace(num_critics=1), OBS_DIM, LOW, HIGH)
    state = jax.jit(lambda key: ddpg_jax.init_train_state(key, nets, config))(
        jax.random.PRNGKey(7))
    # Start from targets that differ from the online networks, so the Polyak
    # average (and which network the target uses) is visible from step 1 on.
    perturb = np.random.default_rng(123)

    def perturbed(tree):
        return jax.tree.map(
            lambda x: jnp.asarray(np.asarray(x) + perturb.normal(0, 0.05, x.shape), x.dtype),
            tree)

    state = state.replace(target_actor_params=perturbed(state.target_actor_params),
                          target_critic_params=perturbed(state.target_critic_params))
    update = jax.jit(ddpg_jax.make_update(nets, config))
    return Setup(config, nets, one_critic, state, update, make_reference_core(config, one_critic))


@pytest.fixture(scope="module")
def td3_setup():
    return make_setup("td3")


@pytest.fixture(scope="module")
def ourddpg_setup():
    return make_setup("ourddpg")


def assert_trees_close(actual, expected, what):
    a_leaves, a_def = jax.tree.flatten(actual)
    e_leaves, e_def = jax.tree.flatten(expected)
    assert a_def == e_def, what
    for path_leaf, a, e in zip(jax.tree_util.tree_flatten_with_path(actual)[0], a_leaves,
                               e_leaves):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what} {jax.tree_util.keystr(path_leaf[0])}")


def assert_step_matches(state, metrics, ref: RefState, info, step: int):
    assert_trees_close(state.critic_params, ref.critic, f"step {step}: critic")
    assert_trees_close(state.actor_params, ref.actor, f"step {step}: actor")
    assert_trees_close(state.target_critic_params, ref.target_critic,
                       f"step {step}: target critic")
    assert_trees_close(state.target_actor_params, ref.target_actor,
                       f"step {step}: target actor")
    names = ["critic_loss", "target_mean"]
    if info["actor_moved"]:  # a held actor's loss may be reported as 0
        names.append("actor_loss")
    for name in names:
        np.testing.assert_allclose(float(metrics[name]), float(info[name]), rtol=RTOL,
                                   atol=ATOL, err_msg=f"step {step}: {name}")
    assert int(state.step) == ref.step
    assert int(state.actor_step) == ref.actor_step


def run_both(setup, steps, mutation=Mutation(), seed=0):
    """Yields (step, library state, metrics, reference state, reference info) per step."""
    state, update = setup.state, setup.update
    ref = ref_init(state)
    ref_step = make_reference_step(setup.config, setup.core, mutation)
    gen = np.random.default_rng(seed)
    for i in range(1, steps + 1):
        batch = random_batch(gen)
        state, metrics = update(state, batch)
        ref, info = ref_step(ref, batch)
        yield i, state, metrics, ref, info


def same_tree(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ---------------------------------------------------------------------- tests
def test_reference_critic_slices_agree_with_the_ensemble(td3_setup):
    """Applying each critic's slice alone gives the ensemble's [num_critics, batch] output."""
    nets, one_critic, params = td3_setup.nets, td3_setup.one_critic, td3_setup.state.critic_params
    batch = random_batch(np.random.default_rng(5))

    @jax.jit
    def both(params, obs, action):
        slices = [one_critic.critic_apply(jax.tree.map(lambda x: x[k:k + 1], params), obs,
                                          action)[0] for k in range(2)]
        return nets.critic_apply(params, obs, action), jnp.stack(slices)

    q, q_sliced = (np.asarray(x) for x in both(params, batch.obs, batch.action))
    assert q.shape == (2, BATCH)
    np.testing.assert_allclose(q_sliced, q, rtol=1e-6, atol=1e-7)
    assert not np.allclose(q[0], q[1])  # two genuinely different critics


def test_td3_steps_match_the_reference(td3_setup):
    """4 td3 steps (actor/targets move on steps 2 and 4) equal the hand-written TD3."""
    config = td3_setup.config
    assert (config.num_critics, config.policy_delay, config.target_noise,
            config.target_noise_clip) == (2, 2, 0.2, 0.5)
    prev = None
    on_bound = []
    for i, state, metrics, ref, info in run_both(td3_setup, steps=4):
        assert_step_matches(state, metrics, ref, info, i)
        on_bound.append(float(info["on_bound"]))
        assert ref.actor_step == i // 2 and ref.actor_opt.count == i // 2
        if prev is not None:  # the delay really holds the actor and targets between updates
            moved = i % 2 == 0
            assert same_tree(state.actor_params, prev.actor_params) != moved
            assert same_tree(state.target_actor_params, prev.target_actor_params) != moved
            assert same_tree(state.target_critic_params, prev.target_critic_params) != moved
            assert not same_tree(state.critic_params, prev.critic_params)
        prev = state
    # The env-bound clip of the smoothed target action is exercised, not vacuous.
    assert max(on_bound) > 0.0


def test_ourddpg_steps_match_the_reference(ourddpg_setup):
    """3 ourddpg steps (one critic, no smoothing, no delay) equal the hand-written DDPG."""
    config = ourddpg_setup.config
    assert (config.num_critics, config.policy_delay, config.target_noise) == (1, 1, 0.0)
    for i, state, metrics, ref, info in run_both(ourddpg_setup, steps=3, seed=1):
        assert_step_matches(state, metrics, ref, info, i)
        assert int(state.actor_step) == i


@pytest.mark.parametrize("mutation", [
    Mutation(swap_noise_scale_and_clip=True),
    Mutation(symmetric_unit_bounds=True),
    Mutation(raw_noise_units=True),
    Mutation(no_bound_clip=True),
], ids=["swapped_scale_and_clip", "unit_bounds", "raw_noise_units", "no_bound_clip"])
def test_mutated_smoothing_does_not_match(td3_setup, mutation):
    """Power check: a reference with a smoothing bug differs from the library step.

    After step 1 the TD targets (and so the critic loss) already differ. The
    parameters differ from step 2 on: Adam's first step from fresh moments is
    mu_hat / sqrt(nu_hat) = sign(g) (up to eps), so it hides the gradient's size.
    """
    steps = run_both(td3_setup, steps=2, mutation=mutation)
    _, state, metrics, ref, info = next(steps)
    with pytest.raises(AssertionError):
        assert_step_matches(state, metrics, ref, info, 1)
    assert not np.isclose(float(metrics["target_mean"]), float(info["target_mean"]),
                          rtol=RTOL, atol=ATOL)
    _, state, metrics, ref, info = next(steps)
    with pytest.raises(AssertionError):
        assert_trees_close(state.critic_params, ref.critic, "critic")


@pytest.mark.parametrize("mutation, first_bad_step", [
    (Mutation(actor_adam_counts_every_step=True), 2),
    (Mutation(no_policy_delay=True), 1),
], ids=["actor_adam_counts_every_step", "no_policy_delay"])
def test_mutated_delay_does_not_match(td3_setup, mutation, first_bad_step):
    """Power check for the delay: the actor's own Adam count and the held actor matter."""
    for i, state, _, ref, _ in run_both(td3_setup, steps=first_bad_step, mutation=mutation):
        if i < first_bad_step:
            assert_trees_close(state.actor_params, ref.actor, f"step {i}: actor")
    with pytest.raises(AssertionError):
        assert_trees_close(state.actor_params, ref.actor, f"step {i}: actor")

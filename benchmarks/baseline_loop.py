"""A straightforward single-file DDPG loop, as a speed baseline for the gymnasium backend.

    python -m benchmarks.baseline_loop [--total-steps N] [--hidden 256,256]

It is written the way many single-file JAX agents are: a replay buffer of
numpy arrays on the host, a batch sampled with numpy and copied to the device
every step, separately jitted calls for acting, the critic update and the
actor update (which also moves the target networks), and flax's
``TrainState`` holding Adam. The networks, batch size, learning rates, tau,
gamma, exploration noise, warm-up and the environment (gymnasium Pendulum-v1
in a one-env ``SyncVectorEnv`` with same-step autoreset) match
``ddpg_jax.train`` (gymnasium driver) at ``DDPGConfig`` defaults, so that
``benchmarks.host_loop`` compares the loops and not the algorithms.

It is deliberately not part of the library, and it shares no code with it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState


class ReplayBuffer:
    """Preallocated numpy arrays written in a ring."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, seed: int):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros((capacity, act_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.capacity, self.pos, self.full = capacity, 0, False
        self.rng = np.random.default_rng(seed)

    def add(self, obs, next_obs, action, reward, terminated) -> None:
        for i in range(len(obs)):
            p = self.pos
            self.obs[p], self.next_obs[p], self.actions[p] = obs[i], next_obs[i], action[i]
            self.rewards[p], self.terminated[p] = reward[i], terminated[i]
            self.pos = (p + 1) % self.capacity
            self.full = self.full or self.pos == 0

    def sample(self, n: int):
        high = self.capacity if self.full else self.pos
        idx = self.rng.integers(0, high, size=n)
        return (self.obs[idx], self.actions[idx], self.rewards[idx], self.terminated[idx],
                self.next_obs[idx])


class Actor(nn.Module):
    hidden: Sequence[int]
    low: Sequence[float]
    high: Sequence[float]

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.relu(nn.Dense(h)(x))
        x = jnp.tanh(nn.Dense(len(self.low))(x))
        low, high = jnp.asarray(self.low), jnp.asarray(self.high)
        return low + (x + 1.0) * 0.5 * (high - low)


class QNetwork(nn.Module):
    hidden: Sequence[int]

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([obs, action], -1)
        for h in self.hidden:
            x = nn.relu(nn.Dense(h)(x))
        return nn.Dense(1)(x)[..., 0]


class DDPGState(TrainState):
    target_params: Any = None


def train(
    total_steps: int = 20_000,
    *,
    seed: int = 0,
    hidden: Sequence[int] = (256, 256),
    batch_size: int = 256,
    buffer_size: int = 1_000_000,
    warmup_steps: int = 1_000,
    gamma: float = 0.99,
    tau: float = 0.005,
    lr: float = 1e-3,
    noise_scale: float = 0.1,
    env_id: str = "Pendulum-v1",
) -> dict[str, Any]:
    """Trains for ``total_steps`` env steps; returns wall time, steps/s and recent returns."""
    t_start = time.perf_counter()
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    low = envs.single_action_space.low.astype(np.float32)
    high = envs.single_action_space.high.astype(np.float32)
    obs_dim = envs.single_observation_space.shape[0]
    act_dim = low.shape[0]
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    key, actor_key, critic_key = jax.random.split(key, 3)

    actor = Actor(tuple(hidden), tuple(low.tolist()), tuple(high.tolist()))
    qf = QNetwork(tuple(hidden))
    obs, _ = envs.reset(seed=seed)
    obs = obs.astype(np.float32)
    actor_params = actor.init(actor_key, obs)
    qf_params = qf.init(critic_key, obs, np.zeros((1, act_dim), np.float32))
    actor_state = DDPGState.create(apply_fn=actor.apply, params=actor_params,
                                   target_params=actor_params, tx=optax.adam(lr))
    qf_state = DDPGState.create(apply_fn=qf.apply, params=qf_params,
                                target_params=qf_params, tx=optax.adam(lr))
    rb = ReplayBuffer(buffer_size, obs_dim, act_dim, seed)

    @jax.jit
    def act(params, obs):
        return actor.apply(params, obs)

    @jax.jit
    def update_critic(actor_state, qf_state, obs, actions, rewards, terminated, next_obs):
        next_actions = actor.apply(actor_state.target_params, next_obs)
        next_q = qf.apply(qf_state.target_params, next_obs, next_actions)
        target = rewards + gamma * (1.0 - terminated) * next_q

        def loss_fn(params):
            q = qf.apply(params, obs, actions)
            return jnp.mean((q - target) ** 2), jnp.mean(q)

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(qf_state.params)
        return qf_state.apply_gradients(grads=grads), loss, q_mean

    @jax.jit
    def update_actor(actor_state, qf_state, obs):
        def loss_fn(params):
            return -jnp.mean(qf.apply(qf_state.params, obs, actor.apply(params, obs)))

        loss, grads = jax.value_and_grad(loss_fn)(actor_state.params)
        actor_state = actor_state.apply_gradients(grads=grads)
        actor_state = actor_state.replace(target_params=optax.incremental_update(
            actor_state.params, actor_state.target_params, tau))
        qf_state = qf_state.replace(target_params=optax.incremental_update(
            qf_state.params, qf_state.target_params, tau))
        return actor_state, qf_state, loss

    half_range = (high - low) / 2.0
    returns, running = [], 0.0
    for step in range(total_steps):
        if step < warmup_steps:
            action = rng.uniform(low, high, size=(1, act_dim)).astype(np.float32)
        else:
            action = np.asarray(act(actor_state.params, obs))
            action = np.clip(action + half_range * noise_scale * rng.standard_normal(action.shape),
                             low, high).astype(np.float32)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        done = np.logical_or(terminated, truncated)
        real_next = next_obs.astype(np.float32).copy()
        for i in np.flatnonzero(done):
            real_next[i] = info["final_obs"][i]
        rb.add(obs, real_next, action, reward, terminated)
        running += float(reward[0])
        if done[0]:
            returns.append(running)
            running = 0.0
        obs = next_obs.astype(np.float32)
        if step >= warmup_steps:
            batch = rb.sample(batch_size)
            qf_state, _, _ = update_critic(actor_state, qf_state, *batch)
            actor_state, qf_state, _ = update_actor(actor_state, qf_state, batch[0])
    jax.block_until_ready(actor_state.params)
    envs.close()
    wall = time.perf_counter() - t_start
    return {"total_steps": total_steps, "wall_time_s": wall, "steps_per_second": total_steps / wall,
            "last_returns": returns[-5:], "actor_params": actor_state.params}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--total-steps", type=int, default=20_000)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = train(args.total_steps, seed=args.seed,
                hidden=tuple(int(h) for h in args.hidden.split(",")))
    print({k: v for k, v in out.items() if k != "actor_params"})


if __name__ == "__main__":
    main()

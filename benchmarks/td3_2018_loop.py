"""An independent replica of the TD3 paper's own training loop, as a reference run on v5 tasks.

    python -m benchmarks.td3_2018_loop --env Hopper-v5 --steps 200000 --seed 1 \\
        --out benchmarks/results/learning_mujoco_Hopper-v5_200k_td3paperloop_seed1.json

The TD3 authors' learning curves (``results/td3_authors_curves_v1.json``) come from their
2018 code on the gym v1 tasks. This script follows that code's loop, not ``ddpg_jax``'s,
and shares no code with the library:

* random actions for the first ``--start`` steps (1000; 10000 on HalfCheetah, as the
  authors' experiment script), and training from the first episode end on, warm-up
  included;
* training in bursts: at each episode end, as many iterations as the episode had steps,
  the actor and both targets moving on iterations 0, 2, 4, ... of each burst;
* a growing replay buffer sampled uniformly, batch 100; two critics with the action at the
  input layer; 400-300 ReLU networks initialised as PyTorch's ``nn.Linear``; Adam 1e-3;
  tau 0.005; exploration N(0, 0.1) clipped to the bounds; target noise N(0, 0.2) clipped to
  0.5; the bootstrap kept at the time limit (``done_bool = 0`` there).

Only the evaluation differs from their script: 10 deterministic episodes on a separate env
at exact multiples of 5000 steps (theirs ran at the first episode end past each multiple,
on the training env), so that seeds share evaluation points. It does not change training.

If this loop and the ``td3`` preset land in the same place on a v5 task, a gap to the
authors' v1 curve is not the library's; if the loop does better, the difference is in
what the two loops do differently. ``--per-step`` changes only the schedule (one
iteration per step once the random steps are over, as the authors' later code and
``ddpg_jax`` train), which separates the schedule from everything else.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common as C

HIDDEN = (400, 300)
BATCH, GAMMA, TAU, LR = 100, 0.99, 0.005, 1e-3
EXPL_NOISE, POLICY_NOISE, NOISE_CLIP, POLICY_FREQ = 0.1, 0.2, 0.5, 2
EVAL_EVERY, EVAL_EPISODES = 5000, 10
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


def linear_init(rng: np.random.Generator, fan_in: int, fan_out: int) -> dict[str, np.ndarray]:
    """PyTorch's nn.Linear default: weights and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    b = 1.0 / np.sqrt(fan_in)
    return {"w": rng.uniform(-b, b, (fan_in, fan_out)).astype(np.float32),
            "b": rng.uniform(-b, b, (fan_out,)).astype(np.float32)}


def mlp_init(rng: np.random.Generator, sizes: list[int]) -> list[dict[str, np.ndarray]]:
    return [linear_init(rng, i, o) for i, o in itertools.pairwise(sizes)]


def mlp(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def actor(params, obs, max_action):
    return max_action * jnp.tanh(mlp(params, obs))


def critics(params, obs, action):
    x = jnp.concatenate([obs, action], axis=-1)
    return mlp(params["q1"], x)[..., 0], mlp(params["q2"], x)[..., 0]


def adam_init(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return {"t": jnp.zeros((), jnp.float32), "m": zeros, "v": zeros}


def adam(params, grads, opt):
    """torch.optim.Adam with its defaults (lr 1e-3, no weight decay)."""
    t = opt["t"] + 1.0
    m = jax.tree.map(lambda m, g: ADAM_B1 * m + (1 - ADAM_B1) * g, opt["m"], grads)
    v = jax.tree.map(lambda v, g: ADAM_B2 * v + (1 - ADAM_B2) * g * g, opt["v"], grads)
    c1, c2 = 1 - ADAM_B1 ** t, 1 - ADAM_B2 ** t
    new = jax.tree.map(lambda p, m, v: p - LR * (m / c1) / (jnp.sqrt(v / c2) + ADAM_EPS),
                       params, m, v)
    return new, {"t": t, "m": m, "v": v}


def make_steps(max_action: float):
    @jax.jit
    def critic_step(s, obs, action, reward, next_obs, not_done, noise):
        next_action = jnp.clip(actor(s["actor_t"], next_obs, max_action) + noise,
                               -max_action, max_action)
        q1_t, q2_t = critics(s["critic_t"], next_obs, next_action)
        target = jax.lax.stop_gradient(reward + not_done * GAMMA * jnp.minimum(q1_t, q2_t))

        def loss(p):
            q1, q2 = critics(p, obs, action)
            return jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)

        critic, opt = adam(s["critic"], jax.grad(loss)(s["critic"]), s["critic_opt"])
        return {**s, "critic": critic, "critic_opt": opt}

    @jax.jit
    def actor_step(s, obs):
        def loss(p):
            return -jnp.mean(critics(s["critic"], obs, actor(p, obs, max_action))[0])

        params, opt = adam(s["actor"], jax.grad(loss)(s["actor"]), s["actor_opt"])
        soft = lambda new, old: jax.tree.map(lambda a, b: TAU * a + (1 - TAU) * b, new, old)
        return {**s, "actor": params, "actor_opt": opt,
                "actor_t": soft(params, s["actor_t"]), "critic_t": soft(s["critic"], s["critic_t"])}

    @jax.jit
    def act(s, obs):
        return actor(s["actor"], obs, max_action)

    return critic_step, actor_step, act


def evaluate(act, state, env_id: str, seed: int) -> float:
    env = gym.make(env_id)
    total = 0.0
    for i in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=seed + 100 + i)
        done = False
        while not done:
            action = np.asarray(act(state, jnp.asarray(obs, jnp.float32)))
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
    env.close()
    return total / EVAL_EPISODES


def run(env_id: str, steps: int, seed: int, start: int, per_step: bool = False,
        log=print) -> dict[str, Any]:
    env = gym.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    max_action = float(env.action_space.high[0])
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    a = mlp_init(rng, [obs_dim, *HIDDEN, act_dim])
    c = {"q1": mlp_init(rng, [obs_dim + act_dim, *HIDDEN, 1]),
         "q2": mlp_init(rng, [obs_dim + act_dim, *HIDDEN, 1])}
    state = jax.tree.map(jnp.asarray, {"actor": a, "critic": c, "actor_t": a, "critic_t": c})
    state["actor_opt"], state["critic_opt"] = adam_init(state["actor"]), adam_init(state["critic"])
    critic_step, actor_step, act = make_steps(max_action)

    cap = steps
    buf = {"obs": np.zeros((cap, obs_dim), np.float32), "next": np.zeros((cap, obs_dim), np.float32),
           "action": np.zeros((cap, act_dim), np.float32), "reward": np.zeros(cap, np.float32),
           "not_done": np.zeros(cap, np.float32)}
    size = 0

    def train(iterations: int, first: int = 0):
        nonlocal state
        for it in range(first, first + iterations):
            i = rng.integers(0, size, BATCH)
            noise = np.clip(rng.normal(0, POLICY_NOISE, (BATCH, act_dim)), -NOISE_CLIP,
                            NOISE_CLIP).astype(np.float32) * max_action
            state = critic_step(state, buf["obs"][i], buf["action"][i], buf["reward"][i],
                                buf["next"][i], buf["not_done"][i], noise)
            if it % POLICY_FREQ == 0:
                state = actor_step(state, buf["obs"][i])

    env_steps, curve, t0 = [], [], time.perf_counter()
    obs, _ = env.reset(seed=seed)
    episode_t = 0
    for t in range(1, steps + 1):
        if t <= start:
            action = env.action_space.sample()
        else:
            action = np.asarray(act(state, jnp.asarray(obs, jnp.float32)))
            action = np.clip(action + rng.normal(0, EXPL_NOISE * max_action, act_dim), low, high)
        next_obs, reward, term, trunc, _ = env.step(action)
        episode_t += 1
        buf["obs"][size], buf["next"][size], buf["action"][size] = obs, next_obs, action
        buf["reward"][size], buf["not_done"][size] = reward, 0.0 if term else 1.0
        size += 1
        obs = next_obs
        if per_step and t > start:
            train(1, first=t - start - 1)
        if term or trunc:
            if not per_step:
                train(episode_t)
            obs, _ = env.reset()
            episode_t = 0
        if t % EVAL_EVERY == 0:
            ret = evaluate(act, state, env_id, seed)
            env_steps.append(t)
            curve.append(ret)
            log(f"step {t:8d}  eval return {ret:9.2f}  {t / (time.perf_counter() - t0):.0f} steps/s")
    return {"env_steps": env_steps, "curve": curve, "run_time_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=None,
                        help="random steps first (default: 10000 on HalfCheetah, else 1000)")
    parser.add_argument("--per-step", action="store_true",
                        help="instead of the bursts: one iteration per step after the random "
                             "steps, the actor on every second one (the authors' later code and "
                             "ddpg_jax's loop); the only change, for an A/B of the schedules")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    start = args.start if args.start is not None else (
        10_000 if args.env.startswith("HalfCheetah") else 1_000)
    if args.steps % EVAL_EVERY or args.steps < EVAL_EVERY:
        raise SystemExit(f"--steps {args.steps}: a positive multiple of {EVAL_EVERY}")
    info = {**C.machine(), "loadavg_start": C.loadavg()}
    raw = run(args.env, args.steps, args.seed, start, per_step=args.per_step)
    git = C.git_state()
    row = {"variant": "td3perstep" if args.per_step else "td3paperloop", "env_steps": raw["env_steps"], "curves": [raw["curve"]],
           "final_per_seed": [raw["curve"][-1]], "run_time_s": raw["run_time_s"],
           "compile_time_s": None,
           "config": {"seed": args.seed, "eval_every": EVAL_EVERY, "eval_episodes": EVAL_EPISODES,
                      "warmup_steps": start, "hidden_sizes": list(HIDDEN), "batch_size": BATCH,
                      "gamma": GAMMA, "tau": TAU, "lr": LR, "expl_noise": EXPL_NOISE,
                      "policy_noise": POLICY_NOISE, "noise_clip": NOISE_CLIP,
                      "policy_freq": POLICY_FREQ,
                      "training": "one per step" if args.per_step else "bursts at episode ends"},
           "date": _dt.datetime.now().isoformat(),
           "commit": f"{(git['commit'] or '?')[:7]}{'+dirty' if git['dirty'] else ''}"}
    payload = {"suite": "td3_2018_loop", "env_id": args.env, "steps": args.steps, "seeds": 1,
               "first_seed": args.seed, "command": "python -m benchmarks.td3_2018_loop "
               + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": {**info, "loadavg_end": C.loadavg()}, "versions": C.versions(),
               "rows": [row]}
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, args.out)
    print(f"final {raw['curve'][-1]:.1f} in {raw['run_time_s']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()

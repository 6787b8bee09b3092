"""The learner's real path (observe -> ring -> learn -> sample) and both drivers against references.

The references here are plain Python: an n-step return that walks one env's
own steps, and episode ends read from what the scripted envs put in their
observations. They share nothing with the library's sampling code, so a
window that runs across a truncation, mixes envs or stops at a termination
only is seen as a wrong number.
"""

from __future__ import annotations

import importlib

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import ddpg_jax
from ddpg_jax import DDPGConfig, Transition
from ddpg_jax.agent.learner import evaluate_episodes, make_learner
from ddpg_jax.drivers.compiled import make_loop
from ddpg_jax.envs import Box, Environment

# float32 sums of at most 3 rewards below 40 against float64 sums: a few ulps
# of 100, far below the smallest difference a wrong window makes (>= 1).
RTOL = 1e-6
GAMMA = 0.9
SMALL = dict(hidden_sizes=(8,), batch_size=4, gamma=GAMMA, noise="ou", noise_scale=0.2,
             noise_scale_max=0.5, eval_every=0, eval_episodes=1)


# --------------------------------------------------------------------------- the reference
def reference_nstep(steps: list[dict], t: int, n: int, gamma: float) -> dict:
    """The n-step sample of one env starting at its step ``t``, walking its own steps.

    ``steps`` is the env's steps in order, each a dict with obs, action,
    reward, terminated, next_obs and ``end`` (the step ended its episode).
    The window takes up to ``n`` steps, keeps a step that ends the episode
    and stops after it, and stops at the newest step taken.
    """
    reward, last = 0.0, t
    for k in range(n):
        s = t + k
        if s >= len(steps):
            break
        reward += gamma ** k * float(steps[s]["reward"])
        last = s
        if steps[s]["end"]:
            break
    return dict(obs=steps[t]["obs"], action=steps[t]["action"], reward=reward,
                terminated=float(steps[last]["terminated"]), next_obs=steps[last]["next_obs"],
                discount=gamma ** (last - t))


def check_samples(batch, expected: list[dict]) -> None:
    """Compares a flat n-step batch (leaves ``[k, ...]``) with reference samples."""
    got = jax.tree.map(np.asarray, batch)
    for name in ("obs", "action", "next_obs", "terminated"):
        np.testing.assert_array_equal(getattr(got, name),
                                      np.array([e[name] for e in expected], np.float32),
                                      err_msg=name)
    for name in ("reward", "discount"):
        np.testing.assert_allclose(getattr(got, name), [e[name] for e in expected], rtol=RTOL,
                                   err_msg=name)


# --------------------------------------------------------------------------- learner level
E, T, N = 3, 8, 3
# Per env: vector step -> how its episode ends there. Ends at different times
# per env, a truncation right before a termination, a termination right after
# one, and ends on the last step.
ENDS = {0: {1: "term", 4: "trunc", 7: "trunc"}, 1: {2: "trunc", 3: "term"}, 2: {5: "trunc"}}


def scripted_steps() -> list[list[dict]]:
    """steps[e][t] for E envs and T vector steps; a final observation differs from any reset one."""
    out = []
    for e in range(E):
        steps = []
        for t in range(T):
            end = ENDS[e].get(t)
            next_obs = [e + 0.5, t + 0.5] if end else [e, t + 1]
            steps.append(dict(obs=np.array([e, t], np.float32),
                              action=np.array([0.1 * e + 0.01 * t], np.float32),
                              reward=np.float32(1 + 10 * e + t),
                              terminated=np.float32(end == "term"),
                              next_obs=np.array(next_obs, np.float32), end=end is not None))
        out.append(steps)
    return out


def vector_step(steps: list[list[dict]], t: int) -> tuple[Transition, np.ndarray]:
    rows = [steps[e][t] for e in range(E)]
    transition = Transition(*(np.stack([r[f] for r in rows]) for f in Transition._fields))
    return transition, np.array([r["end"] for r in rows])


def test_scripted_steps_are_what_the_test_means():
    steps = scripted_steps()
    assert [int(sum(s["end"] for s in steps[e])) for e in range(E)] == [3, 2, 1]
    # A window from env 0's step 3 must stop at its truncation at step 4.
    ref = reference_nstep(steps[0], 3, N, GAMMA)
    assert ref["reward"] == pytest.approx(4 + GAMMA * 5) and ref["terminated"] == 0.0
    np.testing.assert_array_equal(ref["next_obs"], [0.5, 4.5])


@pytest.mark.parametrize("buffer_size", [48, 12])  # 12: the ring wraps (24 rows written)
def test_learn_samples_match_a_reference_that_walks_each_env(buffer_size):
    config = DDPGConfig(num_envs=E, n_step=N, buffer_size=buffer_size, **SMALL)
    learner = make_learner(config, 2, np.array([-1.0]), np.array([1.0]), batched=False)
    steps = scripted_steps()

    @jax.jit
    def learn_and_replay(agent, transition, done, key, env_steps):
        """learn, and beside it (same program) the batch it should draw and the update on it."""
        after, _ = learner.learn(agent, transition, done, key, env_steps)
        observed = learner.observe(agent, transition, done)
        sample_key = jax.random.split(key)[0]  # learn splits off the noise scales' key
        rows = learner.sample_rows(observed, sample_key)
        batch = learner.sample_at(observed, rows)
        ts, _ = jax.lax.scan(learner.gradient_step.update, observed.train_state, batch)
        return after, rows, batch, ts

    explore = jax.jit(learner.explore)
    agent = learner.init(jax.random.PRNGKey(0))
    for t in range(T):
        agent, _ = explore(agent, jax.random.PRNGKey(100 + t), jnp.zeros((E, 2)))
        before = agent.noise_state
        transition, done = vector_step(steps, t)
        agent, rows, batch, ts = learn_and_replay(agent, transition, done,
                                                  jax.random.PRNGKey(t), (t + 1) * E)
        # Noise restarts where an episode ended, and only there; so do the scales.
        x, x0 = np.asarray(agent.noise_state.x), np.asarray(before.x)
        assert np.all(x[done] == 0.0) and np.all(x0 != 0.0)
        np.testing.assert_array_equal(x[~done], x0[~done])
        scale, scale0 = np.asarray(agent.noise_state.scale), np.asarray(before.scale)
        assert np.all(scale[done] != scale0[done])
        np.testing.assert_array_equal(scale[~done], scale0[~done])
        # learn trained on exactly the batch drawn at `rows` (one compiled program).
        for a, b in zip(jax.tree.leaves(agent.train_state), jax.tree.leaves(ts)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    def where(row: int) -> tuple[int, int]:
        """(env, step) of what the ring holds at ``row``: the newest write there."""
        written = T * E
        w = max(i for i in range(written) if i % buffer_size == row)
        return w % E, w // E

    # The last draw, then every row the buffer holds, against the reference.
    drawn = np.asarray(rows).reshape(-1)
    check_samples(jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch),
                  [reference_nstep(steps[e], t, N, GAMMA) for e, t in map(where, drawn)])
    size = int(agent.buffer.size)
    assert size == min(T * E, buffer_size)
    every = learner.sample_at(agent, jnp.arange(size))
    check_samples(every, [reference_nstep(steps[e], t, N, GAMMA)
                          for e, t in map(where, range(size))])


# --------------------------------------------------------------------------- keys
@pytest.fixture
def key_spy(monkeypatch):
    """Records the key data of every random draw and every split traced while it is active.

    A key is used up when it is split or when bits are drawn from it (each
    sampler, ``randint`` included, ends in one of the two). ``fold_in`` only
    derives a key, so it is not recorded. Two records of the same key mean
    two consumers drew from one key. JAX's samplers are jitted functions with
    a global trace cache, so the caches are cleared before (to trace them
    again through the spy) and after (to leave no spy in them).
    """
    # Private names: where jax keeps its samplers' two primitives moved between releases.
    random_core = None
    for name in ("jax._src.random.core", "jax._src.random"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "_random_bits") and hasattr(module, "_split"):
            random_core = module
            break
    if random_core is None:
        pytest.skip(f"jax {jax.__version__} keeps _random_bits/_split elsewhere: update the spy")
    seen: list[tuple[str, tuple[int, ...]]] = []

    def spy(name, original):
        def wrapped(key, *args, **kwargs):
            def record(data):
                for row in np.asarray(data).reshape(-1, np.shape(data)[-1]):
                    seen.append((name, tuple(int(v) for v in row)))
            jax.debug.callback(record, jax.random.key_data(key))
            return original(key, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(random_core, "_random_bits", spy("bits", random_core._random_bits))
    monkeypatch.setattr(random_core, "_split", spy("split", random_core._split))
    jax.clear_caches()
    yield seen
    monkeypatch.undo()
    jax.clear_caches()


# n-step sampling takes the same key as one-step sampling; each schedule gets one of them.
@pytest.mark.parametrize("noise_scale_max", [0.0, 0.5])
@pytest.mark.parametrize("schedule, n_step", [("step", 1), ("episode", 3)])
def test_one_learn_call_never_uses_a_key_twice(key_spy, schedule, n_step, noise_scale_max):
    config = DDPGConfig(num_envs=2, n_step=n_step, buffer_size=64, update_schedule=schedule,
                        **{**SMALL, "noise_scale_max": noise_scale_max})
    learner = make_learner(config, 2, np.array([-1.0]), np.array([1.0]), batched=False)
    agent = learner.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)

    def transition():
        return Transition(rng.normal(size=(2, 2)).astype(np.float32),
                          rng.uniform(-1, 1, (2, 1)).astype(np.float32),
                          rng.normal(size=2).astype(np.float32), np.zeros(2, np.float32),
                          rng.normal(size=(2, 2)).astype(np.float32))

    for _ in range(4):  # owed gradient steps pile up for the episode schedule's burst
        agent = learner.observe(agent, transition(), np.zeros(2, bool))
    key_spy.clear()  # only what one learn call consumes
    done = np.array([True, False])  # an episode ends: the burst runs, a scale is redrawn
    agent, sums = jax.jit(learner.learn)(agent, transition(), done, jax.random.PRNGKey(7), 10)
    jax.effects_barrier()
    seen = list(key_spy)
    # Sampling draws (2 per randint) plus each update's split and target noise,
    # and the scales' draw: at least this many records, or the spy saw nothing.
    updates = int(sums["updates"])
    assert updates == (5 if schedule == "episode" else 1) * config.updates_per_vector
    assert len(seen) >= 2 + updates + (noise_scale_max > 0)
    keys = [k for _, k in seen]
    repeated = {k for k in keys if keys.count(k) > 1}
    assert not repeated, [s for s in seen if s[1] in repeated]


def test_an_evaluation_never_uses_a_key_twice(key_spy):
    # Pendulum's reset draws its start state; several episodes side by side, each with its
    # reset key, and the step keys of the scan split from another.
    env, params = ddpg_jax.envs.make("Pendulum-v1")
    act = lambda obs: jnp.zeros((obs.shape[0], 1))
    returns = evaluate_episodes(act, jax.random.PRNGKey(3), env, params, 3)
    jax.effects_barrier()
    assert returns.shape == (3,) and len(set(np.asarray(returns).tolist())) == 3
    keys = [k for _, k in key_spy]
    assert len(keys) >= 3  # the resets' draws at least, or the spy saw nothing
    repeated = {k for k in keys if keys.count(k) > 1}
    assert not repeated, [s for s in key_spy if s[1] in repeated]


# --------------------------------------------------------------------------- scripted envs
# Each episode draws its length (2..5) and how it ends (termination or
# truncation by the env) at reset, so envs end at different times. The
# observation [t, length, kind, id] tells the test everything about a step:
# it ends the episode iff t + 1 == length; it terminates iff it ends and
# kind == 1; its true next observation is [t + 1, length, kind, id]; its
# reward is 1 + t + 10 kind. The random id tells a reset observation apart.
@struct.dataclass
class ScriptState:
    t: jax.Array
    length: jax.Array
    kind: jax.Array
    ident: jax.Array
    time: jax.Array


@struct.dataclass
class ScriptParams:
    max_steps_in_episode: int = 1000


def _script_obs(s: ScriptState) -> jax.Array:
    return jnp.stack([s.t, s.length, s.kind, s.ident])


class ScriptEnv(Environment):
    """The scripted episodes above as a JAX env (the env's own cut is a truncation)."""

    @property
    def default_params(self):
        return ScriptParams()

    def observation_space(self, params=None):
        return Box.from_bounds(-jnp.inf, jnp.inf, (4,))

    def action_space(self, params=None):
        return Box.from_bounds(-1.0, 1.0, (1,))

    def reset_env(self, key, params):
        k1, k2, k3 = jax.random.split(key, 3)
        s = ScriptState(jnp.zeros((), jnp.float32),
                        jax.random.randint(k1, (), 2, 6).astype(jnp.float32),
                        jax.random.bernoulli(k2).astype(jnp.float32),
                        jax.random.uniform(k3, (), jnp.float32, 0.0, 1000.0),
                        jnp.zeros((), jnp.int32))
        return _script_obs(s), s

    def step_env(self, key, state, action, params):
        s = state.replace(t=state.t + 1.0)
        end = s.t == s.length
        reward = 1.0 + state.t + 10.0 * state.kind
        return (_script_obs(s), s, reward, end & (s.kind == 1.0), end & (s.kind == 0.0))


class GymScriptEnv(gym.Env):
    """The same scripted episodes as a gymnasium env."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _obs(self):
        return np.array([self.t, self.length, self.kind, self.ident], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.length = int(self.np_random.integers(2, 6))
        self.kind = int(self.np_random.integers(0, 2))
        self.ident = float(self.np_random.uniform(0, 1000))
        return self._obs(), {}

    def step(self, action):
        reward = 1.0 + self.t + 10.0 * self.kind
        self.t += 1
        end = self.t == self.length
        return self._obs(), reward, end and self.kind == 1, end and self.kind == 0, {}


def truth(obs: np.ndarray) -> dict[str, np.ndarray]:
    """What the scripted envs say about the steps taken from ``obs`` (``[k, 4]``)."""
    end = obs[:, 0] + 1 == obs[:, 1]
    return dict(end=end, terminated=(end & (obs[:, 2] == 1)).astype(np.float32),
                next_obs=np.stack([obs[:, 0] + 1, obs[:, 1], obs[:, 2], obs[:, 3]], 1),
                reward=(1 + obs[:, 0] + 10 * obs[:, 2]).astype(np.float32))


def check_stored_steps(learner, agent, num_envs: int) -> np.ndarray:
    """Checks a driver's buffer (no wrap) against the scripted truth; returns the ends per row.

    Stored flags and next observations must be the env's own (the final
    observation at an episode end, not the reset one), and the n-step sample
    of every row must equal the reference walk over its env's own steps.
    """
    size = int(agent.buffer.size)
    data = jax.tree.map(lambda x: np.asarray(x)[:size], agent.buffer.data)
    tr = data.transition
    want = truth(tr.obs)
    assert want["end"].any() and (want["end"] & (want["terminated"] == 0)).any()
    np.testing.assert_array_equal(data.ended, want["end"].astype(np.float32))
    np.testing.assert_array_equal(tr.terminated, want["terminated"])
    np.testing.assert_array_equal(tr.next_obs, want["next_obs"])
    np.testing.assert_array_equal(tr.reward, want["reward"])
    per_env = [[dict(obs=tr.obs[r], action=tr.action[r], reward=tr.reward[r],
                     terminated=want["terminated"][r], next_obs=want["next_obs"][r],
                     end=bool(want["end"][r])) for r in range(e, size, num_envs)]
               for e in range(num_envs)]
    gamma = float(agent.train_state.hparams.gamma)
    check_samples(learner.sample_at(agent, jnp.arange(size)),
                  [reference_nstep(per_env[r % num_envs], r // num_envs, N, gamma)
                   for r in range(size)])
    return want["end"]


DRIVER_CONFIG = dict(num_envs=E, n_step=N, buffer_size=300, warmup_steps=12, **SMALL)


def test_compiled_driver_episode_ends_reset_noise_and_cut_windows():
    config = DDPGConfig(total_steps=300, **DRIVER_CONFIG)
    loop = make_loop(config, ScriptEnv())
    learn = jax.jit(loop.learn)
    state = jax.jit(loop.warmup)(jax.jit(loop.init)(jax.random.PRNGKey(0)))
    ended = 0
    for _ in range(20):
        before = state.agent.noise_state
        state, _ = learn(state, 1)
        pos = int(state.agent.buffer.insert_pos)
        obs = np.asarray(state.agent.buffer.data.transition.obs[pos - E:pos])
        done = truth(obs)["end"]
        ended += int(done.sum())
        # The noise process and the scale restart exactly where an episode ended.
        x = np.asarray(state.agent.noise_state.x)
        assert np.all(x[done] == 0.0) and np.all(x[~done] != 0.0)
        scale, scale0 = np.asarray(state.agent.noise_state.scale), np.asarray(before.scale)
        assert np.all(scale[done] != scale0[done])
        np.testing.assert_array_equal(scale[~done], scale0[~done])
    assert ended >= 5
    check_stored_steps(loop.learner, state.agent, E)


def test_host_driver_episode_ends_redraw_scales_and_cut_windows():
    """Two runs, one vector step apart: the scales change exactly where the last step ended."""
    learner = make_learner(DDPGConfig(total_steps=60, **DRIVER_CONFIG), 4, np.array([-1.0]),
                           np.array([1.0]), batched=False)
    runs = [ddpg_jax.train(DDPGConfig(total_steps=steps, **DRIVER_CONFIG), GymScriptEnv,
                           log=None) for steps in (60 - E, 60)]
    agents = [r.final_state.agent for r in runs]
    ends = check_stored_steps(learner, agents[1], E)
    done = ends[-E:]
    assert done.any() and not done.all(), "pick a length where the last step ends some episodes"
    scale0, scale = (np.asarray(a.noise_state.scale) for a in agents)
    assert np.all(scale[done] != scale0[done])
    np.testing.assert_array_equal(scale[~done], scale0[~done])

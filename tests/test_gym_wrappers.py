"""The gymnasium path with the user's own ids and wrappers.

* ``module:EnvId`` ids (as ``gymnasium.make`` accepts them) for training and evaluation;
* the advice for unbounded action spaces, checked by following it;
* wrapper state in checkpoints: known stateful wrappers round-trip exactly, unknown ones
  make the checkpoint inexact and the resumed run warns once;
* ``NormalizeObservation`` / ``NormalizeReward`` in the factory: an interrupted and
  resumed run ends with the same statistics as an uninterrupted one, bit for bit, and
  evaluation normalises with the training statistics, frozen.
"""

from __future__ import annotations

import json
import textwrap
import uuid
import warnings

import gymnasium as gym
import numpy as np
import pytest

from ddpg_jax import DDPGConfig, train
from ddpg_jax.checkpoints import format as ckpt
from ddpg_jax.drivers.run_options import RunOptions
from ddpg_jax.envs import gymnasium_state as gym_state
from ddpg_jax.envs.core import EnvSpecError
from ddpg_jax.envs.gymnasium_check import check_env, env_factory

SMALL = dict(hidden_sizes=(16, 16), batch_size=16, buffer_size=1000, warmup_steps=100,
             eval_episodes=2)


pytestmark = pytest.mark.usefixtures("module_compile_cache")


# --------------------------------------------------------------------------- module:EnvId
@pytest.fixture
def env_module(tmp_path, monkeypatch):
    """A module written at test time, on sys.path, that registers one env when imported."""
    name = f"ddpg_jax_user_envs_{uuid.uuid4().hex[:8]}"
    env_id = f"UserPendulum{name[-8:]}-v0"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        import gymnasium as gym

        from gymnasium.envs.classic_control.pendulum import PendulumEnv as Pendulum

        gym.register({env_id!r}, entry_point=__name__ + ":Pendulum", max_episode_steps=100)
        gym.register("{env_id[:-3]}Other-v0", entry_point=__name__ + ":make")

        def make():
            return gym.make("Pendulum-v1")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, env_id
    for key in (env_id, f"{env_id[:-3]}Other-v0"):
        gym.registry.pop(key, None)


def test_module_colon_id_imports_the_module_and_trains_and_evaluates(env_module, tmp_path,
                                                                     capsys):
    from ddpg_jax.cli.main import main

    module, env_id = env_module
    full = f"{module}:{env_id}"
    assert env_id not in gym.registry  # not registered until the module is imported
    spec = check_env(env_factory(full), repr(full))
    assert env_id in gym.registry and spec.obs_dim == 3
    out = tmp_path / "run"
    code = main(["train", "--env", full, "--total-steps", "300", "--warmup-steps", "100",
                 "--batch-size", "16", "--hidden-sizes", "16,16", "--eval-every", "300",
                 "--eval-episodes", "1", "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads((out / "config.json").read_text())["env_id"] == full
    code = main(["evaluate", "--checkpoint", str(out), "--episodes", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "eval return mean" in captured.out


def test_module_colon_id_errors_name_the_module_and_what_is_accepted(env_module):
    module, env_id = env_module
    with pytest.raises(EnvSpecError) as info:
        env_factory(f"no_such_module_{uuid.uuid4().hex[:6]}:{env_id}")
    msg = str(info.value)
    assert "cannot be imported" in msg and "No module named" in msg and "module:EnvId" in msg
    with pytest.raises(EnvSpecError) as info:
        env_factory(f"{module}:NotThere-v0")
    msg = str(info.value)
    assert f"module {module!r} was imported but 'NotThere-v0' is not registered" in msg
    assert env_id in msg and f"{env_id[:-3]}Other-v0" in msg  # the ids it does register
    for bad in (":Pendulum-v1", f"{module}:", "a:b:c"):
        with pytest.raises(EnvSpecError, match="module:EnvId"):
            env_factory(bad)
    with pytest.raises(EnvSpecError, match="Did you mean: Pendulum-v1"):
        env_factory("Pendulum-v2")
    # A plain registered id still works, and so does a module:id for an id registered already.
    assert check_env(env_factory("gymnasium.envs.classic_control:Pendulum-v1")).obs_dim == 3


# --------------------------------------------------------------------------- unbounded actions
class UnboundedEnv(gym.Env):
    """Force control with an unbounded action space; records the actions it receives."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def __init__(self):
        self.actions = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.actions.append(np.array(action))
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), -float(np.sum(action ** 2)), \
            False, False, {}


def test_unbounded_action_space_advice_is_one_that_works():
    with pytest.raises(EnvSpecError) as info:
        check_env(UnboundedEnv)
    msg = str(info.value)
    assert "TransformAction" in msg and "np.clip" in msg and "gymnasium.spaces.Box" in msg
    # What the message says does not help, does not: ClipAction declares (-inf, inf) itself,
    # RescaleAction refuses unbounded components.
    with pytest.raises(EnvSpecError, match="unbounded"):
        check_env(lambda: gym.wrappers.ClipAction(UnboundedEnv()))
    with pytest.raises((ValueError, AssertionError)):  # AssertionError before gymnasium 1.4
        gym.wrappers.RescaleAction(UnboundedEnv(), -1.0, 1.0)
    # The recipe of the message, followed literally, passes the check and trains.
    low, high = np.array([-3.0, 0.0], np.float32), np.array([3.0, 1.0], np.float32)
    made = []

    def factory():
        env = UnboundedEnv()
        made.append(env)
        return gym.wrappers.TimeLimit(gym.wrappers.TransformAction(
            env, lambda a: np.clip(a, low, high), gym.spaces.Box(low, high, (2,), np.float32)),
            50)

    spec = check_env(factory)
    np.testing.assert_array_equal(spec.action_low, low)
    np.testing.assert_array_equal(spec.action_high, high)
    train(DDPGConfig(total_steps=150, eval_every=0, **SMALL), factory, log=None)
    actions = np.concatenate([np.stack(e.actions) for e in made if e.actions])
    assert len(actions) >= 150 and np.all(actions >= low) and np.all(actions <= high)


# --------------------------------------------------------------------------- wrapper state
def _pendulum():
    return gym.make("Pendulum-v1")


class CountingWrapper(gym.Wrapper):
    """A wrapper ddpg_jax does not know, with state that changes every step."""

    def __init__(self, env):
        super().__init__(env)
        self.count = 0

    def step(self, action):
        self.count += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward + 1e-3 * self.count, terminated, truncated, info


class HookedCountingWrapper(CountingWrapper):
    """The same, saying what its state is."""

    def checkpoint_state(self):
        return {"count": self.count}

    def restore_state(self, state):
        self.count = state["count"]


STATEFUL = {
    "normalize": lambda: gym.wrappers.NormalizeReward(
        gym.wrappers.NormalizeObservation(_pendulum()), gamma=0.9),
    "episode_statistics": lambda: gym.wrappers.RecordEpisodeStatistics(_pendulum()),
    "time_aware": lambda: gym.wrappers.TimeAwareObservation(_pendulum()),
    "delay": lambda: gym.wrappers.DelayObservation(_pendulum(), 3),
    "frame_stack": lambda: gym.wrappers.FlattenObservation(
        gym.wrappers.FrameStackObservation(_pendulum(), 3)),
    "sticky": lambda: gym.wrappers.StickyAction(_pendulum(), 0.3, (1, 3)),
    "transforms": lambda: gym.wrappers.ClipReward(gym.wrappers.RescaleAction(
        gym.wrappers.TransformObservation(_pendulum(), lambda o: 2 * o, None),
        np.full(1, -1.0, np.float32), np.full(1, 1.0, np.float32)), -5, 0),
    "user_hooks": lambda: HookedCountingWrapper(_pendulum()),
}


def _random_actions(env, rng, n):
    return [rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            for _ in range(n)]


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_wrapper_state_round_trips_exactly(name):
    make = STATEFUL[name]
    a, b = make(), make()
    a.reset(seed=3)
    b.reset(seed=99)
    rng = np.random.default_rng(0)
    for action in _random_actions(a, rng, 230):  # across a time limit and a reset
        if any(a.step(action)[2:4]):
            a.reset()
    snap = json.loads(json.dumps(snapshot := gym_state.snapshot(a)))  # as in a checkpoint
    assert snapshot["exact"] and snap["inexact"] == []
    assert gym_state.restore(b, snap)
    for t, action in enumerate(_random_actions(a, rng, 300)):
        ra, rb = a.step(action), b.step(action)
        assert np.array_equal(ra[0], rb[0]) and ra[1] == rb[1] and ra[2:4] == rb[2:4], t
        if ra[2] or ra[3]:
            assert np.array_equal(a.reset()[0], b.reset()[0])


def test_unknown_wrapper_makes_the_snapshot_inexact_and_is_named():
    env = gym.wrappers.NormalizeObservation(CountingWrapper(_pendulum()))
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.array([0.5], np.float32))
    snap = json.loads(json.dumps(gym_state.snapshot(env)))
    assert not snap["exact"] and snap["episode"]
    assert len(snap["inexact"]) == 1 and "CountingWrapper" in snap["inexact"][0]
    assert "checkpoint_state()" in snap["inexact"][0]
    # The restore keeps what it can (the normalisation statistics) and asks for a reset.
    fresh = gym.wrappers.NormalizeObservation(CountingWrapper(_pendulum()))
    fresh.reset(seed=1)
    assert not gym_state.restore(fresh, snap)
    np.testing.assert_array_equal(fresh.obs_rms.mean, env.obs_rms.mean)
    assert fresh.obs_rms.count == env.obs_rms.count
    # Another wrapper chain than the checkpoint's is refused, not half-restored.
    other = gym.wrappers.ClipReward(_pendulum(), -1, 1)
    other.reset(seed=1)
    assert not gym_state.restore(other, snap)


def test_copy_statistics_freezes_the_target():
    src = STATEFUL["normalize"]()
    src.reset(seed=0)
    for action in _random_actions(src, np.random.default_rng(1), 50):
        src.step(action)
    dst = STATEFUL["normalize"]()
    assert gym_state.copy_statistics(src, dst) == 2
    mean, count = src.env.obs_rms.mean.copy(), src.env.obs_rms.count
    dst.reset(seed=5)
    for action in _random_actions(dst, np.random.default_rng(2), 20):
        dst.step(action)
    np.testing.assert_array_equal(dst.env.obs_rms.mean, mean)
    assert dst.env.obs_rms.count == count == src.env.obs_rms.count
    assert dst.return_rms.var == src.return_rms.var and not dst.update_running_mean
    assert src.update_running_mean and src.env.update_running_mean
    # The same from a checkpoint's snapshot (for evaluating a saved policy).
    saved = json.loads(json.dumps(gym_state.snapshot(src)))
    loaded = STATEFUL["normalize"]()
    assert gym_state.load_statistics(loaded, saved) == 2
    assert np.array_equal(loaded.env.obs_rms.var, src.env.obs_rms.var)
    assert loaded.env.obs_rms.count == src.env.obs_rms.count and not loaded.env.update_running_mean
    assert gym_state.load_statistics(_pendulum(), saved) == 0  # other wrappers: nothing


# --------------------------------------------------------------------------- normalised runs
def _normalized():
    return gym.wrappers.NormalizeReward(gym.wrappers.NormalizeObservation(
        gym.make("Pendulum-v1")), gamma=0.99)


class _Watch:
    """A factory that records its envs, and an ``on_evaluation`` that checks the eval envs."""

    def __init__(self):
        self.made: list[gym.Env] = []
        self.seen: set[int] = set()
        self.checked = 0

    def factory(self):
        env = _normalized()
        self.made.append(env)
        return env

    def training_env(self):
        """Sub-env 0 of the training envs: made right after the env ``check_env`` made."""
        assert self.made[0].env.obs_rms.count == 1e-4  # check_env's: never reset
        return self.made[1]

    def on_evaluation(self, record):
        train_env = self.training_env()
        evals = [e for e in self.made if not e.update_running_mean and id(e) not in self.seen]
        assert len(evals) == SMALL["eval_episodes"]
        for e in evals:
            self.seen.add(id(e))
            assert not e.env.update_running_mean
            # Frozen: the counts equal the training env's, so nothing was added while the
            # evaluation episodes (200 steps each) ran.
            assert e.env.obs_rms.count == train_env.env.obs_rms.count
            np.testing.assert_array_equal(e.env.obs_rms.mean, train_env.env.obs_rms.mean)
            np.testing.assert_array_equal(e.env.obs_rms.var, train_env.env.obs_rms.var)
            assert e.return_rms.var == train_env.return_rms.var
            assert e.return_rms.count == train_env.return_rms.count
        self.checked += 1


def _wrapper_states(run_dir) -> list:
    meta = ckpt.open_checkpoint(ckpt.latest(ckpt.checkpoint_dir(run_dir))).meta
    return [env["wrappers"] for env in meta["envs"]]


def _arrays(run_dir) -> dict[str, np.ndarray]:
    c = ckpt.open_checkpoint(ckpt.latest(ckpt.checkpoint_dir(run_dir)))
    arrays = {f"state/{k}": v for k, v in ckpt.load_flat(c, "state").items()}
    arrays.update({f"buffer/{k}": v for k, v in ckpt.load_flat(c, "buffer").items()})
    return arrays


def test_normalization_wrappers_resume_exactly_and_evaluate_frozen(tmp_path):
    # 2 envs, 300 steps each (across Pendulum's time limit of 200), evaluated at 200, 400
    # and 600 env steps; the second run stops at 260 (each env mid-episode) and resumes.
    config = DDPGConfig(total_steps=600, eval_every=200, num_envs=2, **SMALL)
    options = RunOptions(checkpoint_every=200)
    full_watch = _Watch()
    full = train(config, full_watch.factory, run_dir=tmp_path / "full", options=options,
                 log=None, on_evaluation=full_watch.on_evaluation)
    assert full_watch.checked == 3
    train_env = full_watch.training_env()
    assert train_env.env.obs_rms.count > 250  # the statistics really moved

    steps = []
    stopped = train(config, _Watch().factory, run_dir=tmp_path / "resumed", options=options,
                    log=None, on_progress=steps.append, should_stop=lambda: steps[-1:] == [260])
    assert stopped.interrupted and stopped.checkpoint.name == "step_000000000260"  # mid-episode
    watch = _Watch()
    with warnings.catch_warnings():
        warnings.simplefilter("error", gym_state.InexactResumeWarning)
        resumed = train(config, watch.factory, run_dir=tmp_path / "resumed", options=options,
                        log=None, on_evaluation=watch.on_evaluation,
                        resume_from=stopped.checkpoint)
    assert watch.checked == 2  # at 400 and 600
    # The wrapper statistics at the end: live objects and checkpoints, bit for bit.
    mine = watch.training_env()
    pairs = ((mine.env.obs_rms, train_env.env.obs_rms), (mine.return_rms, train_env.return_rms))
    for a, b in pairs:
        assert np.array_equal(a.mean, b.mean) and np.array_equal(a.var, b.var)
        assert a.count == b.count
    assert np.array_equal(mine.discounted_reward, train_env.discounted_reward)
    assert _wrapper_states(tmp_path / "resumed") == _wrapper_states(tmp_path / "full")
    stats = _wrapper_states(tmp_path / "full")[0]
    assert [w["type"].rsplit(".", 1)[-1] for w in stats[:2]] == ["NormalizeReward",
                                                                 "NormalizeObservation"]
    # Everything else as well: arrays and evaluations.
    a, b = _arrays(tmp_path / "full"), _arrays(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert [r["eval_returns"] for r in resumed.evaluations] == [
        r["eval_returns"] for r in full.evaluations]


def test_unknown_wrapper_makes_a_resumed_run_warn_once(tmp_path):
    config = DDPGConfig(total_steps=300, eval_every=0, num_envs=2, **SMALL)

    def factory():
        return CountingWrapper(gym.make("Pendulum-v1"))

    first = train(config.replace(total_steps=200), factory, run_dir=tmp_path, log=None)
    meta = ckpt.open_checkpoint(first.checkpoint).meta
    assert [env["exact"] for env in meta["envs"]] == [False, False]
    assert "CountingWrapper" in meta["envs"][0]["inexact"][0]
    with pytest.warns(gym_state.InexactResumeWarning) as record:
        second = train(config, factory, run_dir=tmp_path, log=None,
                       resume_from=first.checkpoint)
    assert len(record) == 1  # once, for both sub-envs
    assert record[0].filename == __file__  # attributed to the caller of train
    msg = str(record[0].message)
    assert "env 0:" in msg and "env 1:" in msg and "CountingWrapper" in msg
    assert "not be identical" in msg and "start anew" in msg
    assert not second.interrupted

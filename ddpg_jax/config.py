"""Run configuration: every setting declared once, its presets and its validation.

Each field of :class:`DDPGConfig` is declared in one place with its default,
its group (network, algorithm, exploration, loop, evaluation), a one-line
description, the values it accepts and whether it is *traced*:

* static fields fix shapes and loop lengths (sizes, hidden layers, counts);
  changing one means compiling a new program;
* traced fields (learning rates, gamma, tau, noise scales, weight decays, reward
  scale) only enter the computation as numbers: they are copied into
  :class:`ddpg_jax.agent.state.HParams` inside the :class:`~ddpg_jax.agent.state.TrainState`,
  so a batch of states with different values runs under ``jax.vmap`` with no
  code change.

:data:`TRACED_FIELDS`, ``HParams``, the command-line flags and their help
text are all derived from these declarations.
"""

from __future__ import annotations

import dataclasses
import difflib
import fractions
import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

NOISE_KINDS = ("gaussian", "ou")
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "silu", "leaky_relu")
WEIGHT_INITS = ("lecun_normal", "fan_in_uniform")
UPDATE_SCHEDULES = ("step", "episode")
CRITICS = ("scalar", "c51")
#: jax's names of matmul precisions (``jax.default_matmul_precision``): "default" keeps jax's
#: own setting; "bfloat16" = "default", "tensorfloat32" = "high", "float32" = "highest".
MATMUL_PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")
GROUPS = ("network", "algorithm", "exploration", "loop", "evaluation")


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def _finite(x: float) -> bool:
    return math.isfinite(x)


# Range checks: (predicate, accepted values in words).
_POSITIVE_INT = (lambda v: v > 0, "an integer > 0")
_NONNEG_INT = (lambda v: v >= 0, "an integer >= 0")
_POSITIVE = (lambda v: v > 0 and _finite(v), "a finite number > 0")
_NONNEG = (lambda v: v >= 0 and _finite(v), "a finite number >= 0")
_WIDTHS = (lambda v: all(h > 0 for h in v),
           "integers > 0, e.g. 512,256,128, or none (empty) for hidden_sizes")


def _choice(options: tuple[str, ...]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in options, " | ".join(options))


def setting(default: Any, group: str, doc: str, check: tuple[Callable[[Any], bool], str],
            *, traced: bool = False) -> Any:
    """Declares one config field: default, group, description, accepted values, traced or not."""
    assert group in GROUPS, group
    return dataclasses.field(default=default, metadata={
        "group": group, "doc": doc, "check": check[0], "accepted": check[1], "traced": traced})


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """All settings of a DDPG/TD3 run (see :func:`describe` for each field's meaning).

    The defaults are a modern DDPG (Adam 1e-3, 256x256 ReLU networks, batch
    256, tau 0.005, Gaussian exploration 0.1) that solves Pendulum-v1 within
    20k steps. :func:`preset` gives Lillicrap et al. (2015)'s ``"paper"``
    settings, Fujimoto et al. (2018)'s ``"ourddpg"`` and ``"td3-2018"`` (the paper's
    settings and loop), ``"td3"`` (its authors' current code) and FastTD3's
    ``"accelerator"``.
    Settings are grouped by concern (``config.network``, ``config.algorithm``,
    ``config.exploration``, ``config.loop``, ``config.evaluation``) so that a
    module can take only the group it reads.
    """

    # ---------------------------------------------------------------- loop
    total_steps: int = setting(
        20_000, "loop", "environment steps in the whole run, summed over parallel envs "
        "(warm-up included)", _POSITIVE_INT)
    seed: int = setting(0, "loop", "seed of the run's PRNG key and of the environments",
                        _NONNEG_INT)
    num_envs: int = setting(1, "loop", "parallel environments stepped together", _POSITIVE_INT)
    # ---------------------------------------------------------------- algorithm
    buffer_size: int = setting(1_000_000, "algorithm", "replay capacity in transitions",
                               _POSITIVE_INT)
    batch_size: int = setting(256, "algorithm", "transitions per gradient step", _POSITIVE_INT)
    updates_per_env_step: float = setting(
        1.0, "algorithm", "gradient steps per environment step, counted over all parallel "
        "envs; with num_envs > 1 a fraction gives a few per vector step (1024 envs and "
        "2 per vector step: 2/1024). Times num_envs it must be a whole number", _POSITIVE)
    update_schedule: str = setting(
        "step", "algorithm", "when the gradient steps run: step (after every vector step of "
        "the learning phase) or episode (the TD3 authors' 2018 loop: the same number per env "
        "step, run together when an episode ends, from the first episode on, warm-up "
        "included, on batches drawn with replacement from the rows stored; TD3's delay counts "
        "within each burst, the actor moving on its 1st, 3rd, ... step)",
        _choice(UPDATE_SCHEDULES))
    n_step: int = setting(
        1, "algorithm", "n-step returns: rewards of up to n consecutive steps of one env's "
        "episode, discounted and summed, bootstrapped from the last one's next observation "
        "(1: the paper's one-step target)", _POSITIVE_INT)
    gamma: float = setting(0.99, "algorithm", "discount factor",
                           (lambda v: 0.0 <= v < 1.0, "a number in [0, 1)"), traced=True)
    tau: float = setting(0.005, "algorithm", "Polyak rate of the target networks",
                         (lambda v: 0.0 < v <= 1.0, "a number in (0, 1]"), traced=True)
    actor_lr: float = setting(1e-3, "algorithm", "Adam learning rate of the actor", _POSITIVE,
                              traced=True)
    critic_lr: float = setting(1e-3, "algorithm", "Adam learning rate of the critic", _POSITIVE,
                               traced=True)
    critic_weight_decay: float = setting(
        0.0, "algorithm", "L2 penalty on the critic's parameters, added to the gradient before "
        "Adam (coupled, as the paper's 1e-2)", _NONNEG, traced=True)
    actor_adamw_decay: float = setting(
        0.0, "algorithm", "decoupled weight decay of the actor (AdamW, as PyTorch's and optax's "
        "adamw: each step also subtracts actor_lr * this * params, outside Adam; FastTD3: 0.1); "
        "0: plain Adam, and no decay term in the compiled program (a sweep over it turns the "
        "term on)", _NONNEG, traced=True)
    critic_adamw_decay: float = setting(
        0.0, "algorithm", "decoupled weight decay of the critic (AdamW: each step also subtracts "
        "critic_lr * this * params, outside Adam; FastTD3: 0.1); 0: plain Adam, as for the "
        "actor. Not together with critic_weight_decay, the coupled L2 term", _NONNEG,
        traced=True)
    max_grad_norm: float = setting(0.0, "algorithm",
                                   "global-norm gradient clipping (0: none)", _NONNEG)
    # ---------------------------------------------------------------- network
    hidden_sizes: tuple[int, ...] = setting(
        (256, 256), "network", "hidden layer widths of actor and critic (unless "
        "actor_hidden_sizes or critic_hidden_sizes give their own)",
        (lambda v: len(v) > 0 and all(h > 0 for h in v), "one or more integers > 0, e.g. 256,256"))
    actor_hidden_sizes: tuple[int, ...] = setting(
        (), "network", "the actor's hidden layer widths (empty: hidden_sizes; FastTD3: "
        "512,256,128)", _WIDTHS)
    critic_hidden_sizes: tuple[int, ...] = setting(
        (), "network", "the critic's hidden layer widths (empty: hidden_sizes; FastTD3: "
        "1024,512,256)", _WIDTHS)
    activation: str = setting("relu", "network", "hidden activation", _choice(ACTIVATIONS))
    final_layer_init: float = setting(
        0.0, "network", "if > 0, last-layer weights and biases from U(-x, x) (the paper's 3e-3); "
        "0 keeps weight_init for the last layer", _NONNEG)
    weight_init: str = setting(
        "lecun_normal", "network", "initialisation of weights and biases: lecun_normal (flax's "
        "default, zero biases) or fan_in_uniform (U(-1/sqrt(fan_in), 1/sqrt(fan_in)): Lillicrap "
        "et al.'s hidden layers and PyTorch's nn.Linear)", _choice(WEIGHT_INITS))
    critic_action_layer: int = setting(
        0, "network", "hidden layer whose input receives the action (0: with the observation, "
        "as TD3; 1: the second layer, as Lillicrap et al.)",
        (lambda v: v >= 0, "a hidden layer index >= 0"))
    num_critics: int = setting(
        1, "network", "critics trained on the same target, which takes their minimum (1: DDPG, "
        "2: TD3's clipped double Q)", _POSITIVE_INT)
    critic: str = setting(
        "scalar", "network", "what each critic outputs: scalar (one value Q(s, a)) or c51 (logits "
        "of a categorical distribution over num_atoms fixed returns from v_min to v_max, trained "
        "by cross-entropy on the projected n-step target, as FastTD3)", _choice(CRITICS))
    num_atoms: int = setting(
        101, "network", "atoms of the c51 critic's support (FastTD3: 101); unused by the scalar "
        "critic", (lambda v: v >= 2, "an integer >= 2"))
    matmul_precision: str = setting(
        "default", "network", "precision of float32 matrix products in the compiled programs: "
        "default keeps jax's (on a GPU that is TF32, whose drift from highest after 20 TD3 "
        "updates at batch 256 was 0.56% of the actor's parameters, relative norm, on an "
        "H200); highest for full float32 products, to compare runs across machines",
        _choice(MATMUL_PRECISIONS))
    # ---------------------------------------------------------------- algorithm (TD3)
    policy_delay: int = setting(
        1, "algorithm", "critic updates per actor and target update (1: DDPG, 2: TD3)",
        _POSITIVE_INT)
    target_noise: float = setting(
        0.0, "algorithm", "std of the Gaussian noise on the target action in action half-ranges "
        "(TD3's target smoothing, 0.2; 0: none)", _NONNEG, traced=True)
    target_noise_clip: float = setting(
        0.5, "algorithm", "the target noise is clipped to +- this many half-ranges (TD3: 0.5)",
        _NONNEG, traced=True)
    v_min: float = setting(
        -250.0, "algorithm", "lowest return on the c51 critic's support (FastTD3's default; "
        "its Playground tasks use -10); unused by the scalar critic",
        (_finite, "a finite number < v_max"))
    v_max: float = setting(
        250.0, "algorithm", "highest return on the c51 critic's support (FastTD3's default; "
        "its Playground tasks use 10); unused by the scalar critic",
        (_finite, "a finite number > v_min"))
    obs_norm: bool = setting(
        False, "algorithm", "normalise observations with running statistics kept in the train "
        "state (frozen during evaluation and within each update)",
        (lambda v: True, "true | false"))
    reward_scale: float = setting(1.0, "algorithm",
                                  "rewards are multiplied by this in the critic target",
                                  _POSITIVE, traced=True)
    # ---------------------------------------------------------------- exploration
    warmup_steps: int = setting(
        1_000, "exploration", "environment steps with uniform random actions before learning "
        "starts (at least batch_size with update_schedule step)", _NONNEG_INT)
    noise: str = setting("gaussian", "exploration",
                         "exploration noise: gaussian or ou (Ornstein-Uhlenbeck)",
                         _choice(NOISE_KINDS))
    noise_scale: float = setting(
        0.1, "exploration", "std of the Gaussian noise, or sigma of the OU process, in action "
        "half-ranges (high - low) / 2", _NONNEG, traced=True)
    noise_scale_max: float = setting(
        0.0, "exploration", "if > 0: each env draws its own noise scale uniformly from "
        "[noise_scale, noise_scale_max] at the start of each of its episodes (per-env "
        "exploration for many parallel envs); 0: every env uses noise_scale", _NONNEG)
    ou_theta: float = setting(0.15, "exploration", "OU mean-reversion rate", _POSITIVE)
    ou_dt: float = setting(1.0, "exploration", "OU time step", _POSITIVE)
    # ---------------------------------------------------------------- evaluation
    eval_every: int = setting(
        5_000, "evaluation", "environment steps between deterministic evaluations, counted from "
        "the start of the run, after the warm-up (0: only at the end)", _NONNEG_INT)
    eval_episodes: int = setting(10, "evaluation", "episodes per evaluation", _POSITIVE_INT)
    # ---------------------------------------------------------------- renamed
    # Earlier spellings of updates_per_env_step, accepted from Python, config files,
    # checkpoints and the command line, and translated with a one-line notice.
    updates_per_step: dataclasses.InitVar[int | None] = None
    updates_per_vector_step: dataclasses.InitVar[int | None] = None

    def __post_init__(self, updates_per_step: int | None,
                      updates_per_vector_step: int | None) -> None:
        if updates_per_step is None and updates_per_vector_step is None:
            return
        value = _translate_update_counts(self, updates_per_step, updates_per_vector_step)
        object.__setattr__(self, "updates_per_env_step", value)

    # ------------------------------------------------------------------ checks
    def validate(self) -> DDPGConfig:
        """Checks every field and returns ``self``.

        A config is checked once: each entry point (``train``, ``make_learner``,
        ``make_train``, ...) validates what it is given, and a config already checked
        (the same frozen object) returns at once.

        Raises:
          ConfigError: naming the field, the value given and what is accepted.
        """
        if self.__dict__.get("_checked"):
            return self
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _FIELD_TYPES[f.name])
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not f.metadata["check"](value):
                raise ConfigError(f"{f.name} = {value!r} is out of range; accepted: "
                                  f"{f.metadata['accepted']}.")
        self._check_combinations()
        object.__setattr__(self, "_checked", True)  # not a field: equality and hash ignore it
        return self

    def _check_combinations(self) -> None:
        if self.ou_theta * self.ou_dt > 1.0:
            raise ConfigError(
                f"ou_theta * ou_dt = {self.ou_theta} * {self.ou_dt} > 1 makes the OU process "
                "overshoot its mean; accepted: ou_theta * ou_dt <= 1.")
        if self.critic_action_layer >= len(self.critic_widths):
            raise ConfigError(
                f"critic_action_layer = {self.critic_action_layer!r} is out of range; accepted: "
                f"an integer in [0, {len(self.critic_widths) - 1}] (a hidden layer index of "
                "the critic).")
        if self.v_min >= self.v_max:
            raise ConfigError(
                f"v_min {self.v_min!r} >= v_max {self.v_max!r}: the c51 critic's support runs "
                "from v_min to v_max; accepted: v_min < v_max.")
        if self.critic_weight_decay > 0 and self.critic_adamw_decay > 0:
            raise ConfigError(
                f"critic_weight_decay {self.critic_weight_decay} (coupled L2, through Adam) and "
                f"critic_adamw_decay {self.critic_adamw_decay} (decoupled, AdamW) both decay "
                "the critic; accepted: at most one of them > 0.")
        per_vector = self.updates_per_env_step * self.num_envs
        if per_vector < 1 - 1e-9 or abs(per_vector - round(per_vector)) > 1e-9 * per_vector:
            raise ConfigError(
                f"updates_per_env_step {self.updates_per_env_step!r} with num_envs "
                f"{self.num_envs} is {per_vector:.6g} gradient steps per vector step; accepted: "
                f"a whole number k >= 1 of them, that is updates_per_env_step = k/"
                f"{self.num_envs} (e.g. {1 / self.num_envs!r} for one per vector step).")
        if 0 < self.noise_scale_max < self.noise_scale:
            raise ConfigError(
                f"noise_scale_max {self.noise_scale_max} < noise_scale {self.noise_scale}: the "
                "per-env scales are drawn from [noise_scale, noise_scale_max]; accepted: 0 (off) "
                "or noise_scale_max >= noise_scale.")
        if self.num_envs > self.buffer_size:
            raise ConfigError(
                f"num_envs {self.num_envs} > buffer_size {self.buffer_size}: one vector step "
                "would overwrite more than the buffer holds; accepted: num_envs <= buffer_size "
                "(the buffer size is a total over all envs).")
        if self.n_step > 1 and self.buffer_size % self.num_envs:
            raise ConfigError(
                f"n_step {self.n_step} needs buffer_size ({self.buffer_size}) to be a multiple "
                f"of num_envs ({self.num_envs}), so that each env's steps stay num_envs rows "
                f"apart across the ring buffer's wrap; accepted: e.g. buffer_size "
                f"{self.buffer_size - self.buffer_size % self.num_envs}.")
        if self.n_step * self.num_envs > self.buffer_size:
            raise ConfigError(
                f"n_step {self.n_step} x num_envs {self.num_envs} > buffer_size "
                f"{self.buffer_size}: one n-step window would not fit in the buffer; accepted: "
                "n_step * num_envs <= buffer_size.")
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size {self.batch_size} > buffer_size {self.buffer_size}; "
                              "accepted: batch_size <= buffer_size.")
        if self.warmup_steps >= self.total_steps:
            raise ConfigError(f"warmup_steps {self.warmup_steps} >= total_steps "
                              f"{self.total_steps}; accepted: warmup_steps < total_steps.")
        if (self.update_schedule == "step"
                and max(self.warmup_steps, self.num_envs) < self.batch_size):
            # The episode schedule (the 2018 loop) samples with replacement from whatever is
            # stored, as the authors' buffer did, so it accepts a smaller warm-up.
            raise ConfigError(
                f"warmup_steps {self.warmup_steps} < batch_size {self.batch_size}: the first "
                "update would sample from fewer transitions than a batch; accepted: "
                "warmup_steps >= batch_size (or update_schedule episode, the TD3 authors' "
                "2018 loop, which samples with replacement from the rows stored).")
        if self.vector_steps <= self.warmup_vector_steps:
            raise ConfigError(
                f"warmup_steps {self.warmup_steps} leaves no learning steps in total_steps "
                f"{self.total_steps} with num_envs {self.num_envs}; accepted: warmup_steps < "
                "total_steps - num_envs.")

    # ------------------------------------------------------------ conversions
    def replace(self, **changes: Any) -> DDPGConfig:
        """Returns a copy with ``changes`` applied (unknown names are refused)."""
        _check_names(changes)
        if any(n in changes for n in RENAMED_FIELDS) and "updates_per_env_step" not in changes:
            # An earlier spelling replaces the count: translated from the default.
            changes = {**changes, "updates_per_env_step": 1.0}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON's types (widths as lists); :meth:`from_dict` reads it back."""
        d = dataclasses.asdict(self)
        for name in _TUPLE_FIELDS:
            d[name] = list(d[name])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DDPGConfig:
        _check_names(d)
        d = dict(d)
        for name in _TUPLE_FIELDS:
            if isinstance(d.get(name), list):
                d[name] = tuple(d[name])
        return cls(**d)

    # ------------------------------------------------------------ groups
    def group(self, name: str) -> Settings:
        """The fields of one group (``network``, ``algorithm``, ...) as a read-only record."""
        if name not in GROUPS:
            raise ConfigError(f"unknown settings group {name!r}; accepted: {' | '.join(GROUPS)}.")
        return Settings(name, {n: getattr(self, n) for n in FIELDS_BY_GROUP[name]})

    network = property(lambda self: self.group("network"))
    algorithm = property(lambda self: self.group("algorithm"))
    exploration = property(lambda self: self.group("exploration"))
    loop = property(lambda self: self.group("loop"))
    evaluation = property(lambda self: self.group("evaluation"))

    @property
    def actor_widths(self) -> tuple[int, ...]:
        """The actor's hidden layer widths: ``actor_hidden_sizes``, or ``hidden_sizes``."""
        return self.actor_hidden_sizes or self.hidden_sizes

    @property
    def critic_widths(self) -> tuple[int, ...]:
        """The critic's hidden layer widths: ``critic_hidden_sizes``, or ``hidden_sizes``."""
        return self.critic_hidden_sizes or self.hidden_sizes

    @property
    def vector_steps(self) -> int:
        """Steps of the vector env (each advances ``num_envs`` environments)."""
        return self.total_steps // self.num_envs

    @property
    def updates_per_vector(self) -> int:
        """Gradient steps per vector step: ``updates_per_env_step * num_envs`` (a whole number)."""
        return int(round(self.updates_per_env_step * self.num_envs))

    @property
    def warmup_vector_steps(self) -> int:
        return -(-self.warmup_steps // self.num_envs)


class Settings(Mapping[str, Any]):
    """A read-only view of one group of a config: ``settings.hidden_sizes``, ``dict(settings)``."""

    def __init__(self, group: str, values: dict[str, Any]):
        object.__setattr__(self, "_group", group)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the {self._group} settings have no field {name!r}; they "
                                 f"hold {', '.join(self._values)}.") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only; use DDPGConfig.replace")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Settings[{self._group}]({inner})"


_FIELDS = dataclasses.fields(DDPGConfig)
_FIELD_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str, "bool": bool,
             "tuple[int, ...]": tuple}[f.type]
    for f in _FIELDS
}
FIELD_NAMES = tuple(_FIELD_TYPES)
_TUPLE_FIELDS = tuple(n for n, kind in _FIELD_TYPES.items() if kind is tuple)
#: Earlier field names still accepted (and translated with a notice): old name -> new name.
RENAMED_FIELDS = {"updates_per_step": "updates_per_env_step",
                  "updates_per_vector_step": "updates_per_env_step"}
#: Fields that are copied into ``TrainState.hparams`` and may differ across a vmapped batch.
TRACED_FIELDS = tuple(f.name for f in _FIELDS if f.metadata["traced"])
#: Traced fields whose term is in the compiled program only when the config's value is > 0
#: (so that 0 compiles exactly the program without it); a sweep needs the config's value > 0.
SWITCHED_FIELDS = ("actor_adamw_decay", "critic_adamw_decay")
FIELDS_BY_GROUP: dict[str, tuple[str, ...]] = {
    g: tuple(f.name for f in _FIELDS if f.metadata["group"] == g) for g in GROUPS}


def describe(name: str) -> dict[str, Any]:
    """One field's declaration: ``group``, ``doc``, ``default``, ``accepted``, ``traced``."""
    _check_names({name: None})
    if name in RENAMED_FIELDS:
        raise ConfigError(f"{name} is now {RENAMED_FIELDS[name]}; accepted: the config fields "
                          f"{', '.join(FIELD_NAMES)}.")
    f = next(f for f in _FIELDS if f.name == name)
    return {"group": f.metadata["group"], "doc": f.metadata["doc"], "default": f.default,
            "accepted": f.metadata["accepted"], "traced": f.metadata["traced"]}


def _translate_update_counts(config: DDPGConfig, per_step: int | None,
                             per_vector_step: int | None) -> float:
    """``updates_per_env_step`` from the earlier ``updates_per_step`` /
    ``updates_per_vector_step`` (0 meaning unset), with a one-line notice.

    Raises:
      ConfigError: when both are set, or either is given with ``updates_per_env_step``.
    """
    given = {n: v for n, v in (("updates_per_step", per_step),
                               ("updates_per_vector_step", per_vector_step)) if v is not None}
    for name, value in given.items():
        _check_type(name, value, int)
    if per_vector_step and per_step not in (None, 1):
        raise ConfigError(
            f"updates_per_vector_step {per_vector_step} and updates_per_step {per_step} both "
            "set the number of gradient steps; accepted: updates_per_env_step alone (gradient "
            "steps per env step, e.g. updates_per_vector_step / num_envs).")
    if config.updates_per_env_step != 1.0:
        raise ConfigError(
            f"{' and '.join(given)} given with updates_per_env_step "
            f"{config.updates_per_env_step!r}; accepted: updates_per_env_step alone (the "
            "others are its earlier spellings).")
    if per_vector_step:
        value, was = per_vector_step / config.num_envs, f"updates_per_vector_step={per_vector_step}"
        new = f"{per_vector_step}/{config.num_envs}" if config.num_envs > 1 else f"{value!r}"
    elif per_step is not None and per_step > 0:
        value, was, new = float(per_step), f"updates_per_step={per_step}", f"{float(per_step)!r}"
    else:
        raise ConfigError(
            f"{', '.join(f'{n}={v!r}' for n, v in given.items())} sets no gradient steps; "
            "accepted: updates_per_env_step, a number > 0 (gradient steps per env step).")
    warnings.warn(f"{was} is now written updates_per_env_step={new} (gradient steps per env "
                  "step, over all envs); translated.", FutureWarning, stacklevel=5)
    return value


def _check_names(d: Mapping[str, Any]) -> None:
    for name in d:
        if name not in _FIELD_TYPES and name not in RENAMED_FIELDS:
            close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown config field {name!r}.{hint} Accepted fields: {', '.join(FIELD_NAMES)}."
            )


def _check_type(name: str, value: Any, kind: type) -> None:
    ok: bool
    if kind is int:
        # numpy integers (e.g. from a sweep grid) are integers too; bools are not.
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    elif kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_))
    elif kind is tuple:
        ok = isinstance(value, tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
    else:
        ok = isinstance(value, kind)
    if not ok:
        accepted = {int: "an integer", float: "a number", str: "a string",
                    bool: "True or False",
                    tuple: "a tuple of integers, e.g. (256, 256)"}[kind]
        raise ConfigError(
            f"{name} = {value!r} has type {type(value).__name__}; accepted: {accepted}."
        )


def field_type(name: str) -> type:
    """The Python type of field ``name``: int, float, str, bool or tuple (of ints).

    Raises:
      ConfigError: for an unknown field.
    """
    _check_names({name: None})
    return int if name in RENAMED_FIELDS else _FIELD_TYPES[name]


def check_field(name: str, value: Any) -> None:
    """Checks one field's value: its type, then its range, with :meth:`DDPGConfig.validate`'s
    messages (the checks across fields aside).

    Raises:
      ConfigError: for an unknown field, or a value of the wrong type or out of range.
    """
    _check_type(name, value, field_type(name))
    if name in RENAMED_FIELDS:
        if not _NONNEG_INT[0](value):
            raise ConfigError(f"{name} = {value!r} is out of range; accepted: "
                              f"{_NONNEG_INT[1]}.")
        return
    f = DDPGConfig.__dataclass_fields__[name]
    if not f.metadata["check"](value):
        raise ConfigError(f"{name} = {value!r} is out of range; accepted: "
                          f"{f.metadata['accepted']}.")


def parse_field(name: str, text: str) -> Any:
    """Parses a command-line string into the type of field ``name``.

    Raises:
      ConfigError: for unknown fields or text that is not of the field's type.
    """
    kind = field_type(name)
    try:
        if kind is int:
            value = float(text) if any(c in text for c in ".eE") else int(text)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                value = int(value)
            return value
        if kind is float:
            return float(fractions.Fraction(text.strip())) if "/" in text else float(text)
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError

        if kind is tuple:
            return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
        return text
    except (ValueError, ZeroDivisionError):
        accepted = {int: "an integer", float: "a number or a fraction a/b", bool: "true | false",
                    tuple: "comma-separated integers, e.g. 256,256"}[kind]
        raise ConfigError(f"{name} = {text!r} cannot be read; accepted: {accepted}.") from None


PRESETS: dict[str, DDPGConfig] = {
    "default": DDPGConfig(),
    # Lillicrap et al. 2015, Section 7 (supplementary): low-dimensional settings,
    # including the fan-in uniform initialisation of the hidden layers and the action
    # entering the critic at its second hidden layer.
    "paper": DDPGConfig(
        hidden_sizes=(400, 300),
        weight_init="fan_in_uniform",
        critic_action_layer=1,
        actor_lr=1e-4,
        critic_lr=1e-3,
        critic_weight_decay=1e-2,
        gamma=0.99,
        tau=0.001,
        batch_size=64,
        buffer_size=1_000_000,
        noise="ou",
        noise_scale=0.2,
        ou_theta=0.15,
        ou_dt=1.0,
        final_layer_init=3e-3,
        warmup_steps=1_000,
    ),
}

# The TD3 authors' repository, github.com/sfujim/TD3: the paper's code (the camera-ready
# commit, 2018) and its current master (TD3.py and main.py; CleanRL's td3_continuous_action.py
# and Stable-Baselines3's TD3 use the same settings).
TD3_REPO = "https://github.com/sfujim/TD3"
TD3_2018_COMMIT = "bc98e6260e4e35e1a2afc1c78b6925251dd0a1e9"  # 2018-06-09, "Camera-ready cleanup"
TD3_CURRENT_COMMIT = "34770ccdcb51df6f6c7d85c1ba7e40d71b940d16"  # master, 2023-07-14

# "Our DDPG" of Fujimoto et al. 2018, Appendix C, with the 2018 loop of the authors' main.py
# (commit TD3_2018_COMMIT): 400-300 networks, Adam 1e-3 for both, batch 100, tau 0.005,
# N(0, 0.1) exploration, one critic, no weight decay, and training in bursts at episode
# ends (update_schedule="episode"; see DDPGConfig.update_schedule). The paper starts with
# 1000 random steps (10000 for HalfCheetah and Ant: pass warmup_steps=10_000 there).
# Layers are initialised as PyTorch's nn.Linear, which the authors' code uses: with flax's
# default, larger initialisation the actor ran into the tanh bounds within a few thousand
# updates on Hopper-v5 and stayed there (see docs/results.md, MuJoCo at 200k steps).
# Until 2026-12-05 this preset trained after every step (update_schedule="step").
PRESETS["ourddpg"] = DDPGConfig(
    hidden_sizes=(400, 300),
    weight_init="fan_in_uniform",
    actor_lr=1e-3,
    critic_lr=1e-3,
    batch_size=100,
    tau=0.005,
    gamma=0.99,
    noise="gaussian",
    noise_scale=0.1,
    warmup_steps=1_000,
    update_schedule="episode",
)
# TD3 as the 2018 paper ran it (Fujimoto et al. 2018, Sec. 6.1 and Appendix C; TD3.py and
# main.py at commit TD3_2018_COMMIT): "Our DDPG"'s settings plus two critics, target
# smoothing N(0, 0.2) clipped to 0.5, and policy delay 2 counted within each burst
# (``for it in range(iterations): ... if it % policy_freq == 0``), in the same 2018 loop.
# These were the values of the "td3" preset until 2026-12-05, which trained after every
# step: preset("td3-2018", update_schedule="step") is that preset exactly.
PRESETS["td3-2018"] = PRESETS["ourddpg"].replace(
    num_critics=2, policy_delay=2, target_noise=0.2, target_noise_clip=0.5)
# TD3 as its authors' current code runs it (TD3.py and main.py of TD3_REPO at commit
# TD3_CURRENT_COMMIT, master; the same settings as CleanRL's td3_continuous_action.py and
# Stable-Baselines3's TD3): 256-256 ReLU networks initialised as PyTorch's nn.Linear, Adam
# 3e-4 for both, batch 256, 25000 random steps (start_timesteps), then one gradient step
# per env step, the actor and targets moving on every 2nd critic update counted over the
# run (total_it % policy_freq == 0), exploration N(0, 0.1), target noise 0.2 clipped to 0.5,
# tau 0.005, gamma 0.99, 1e6 steps (max_timesteps).
PRESETS["td3"] = DDPGConfig(
    total_steps=1_000_000,
    hidden_sizes=(256, 256),
    weight_init="fan_in_uniform",
    actor_lr=3e-4,
    critic_lr=3e-4,
    batch_size=256,
    buffer_size=1_000_000,
    tau=0.005,
    gamma=0.99,
    noise="gaussian",
    noise_scale=0.1,
    warmup_steps=25_000,
    update_schedule="step",
    updates_per_env_step=1.0,
    num_critics=2,
    policy_delay=2,
    target_noise=0.2,
    target_noise_clip=0.5,
)

# The "accelerator" preset until 2026-12-05, kept (not a preset) so that the benchmarks
# whose recorded figures used it keep their configuration: TD3 for many parallel envs with
# the FastTD3 settings this library then had: 1024 envs, 2 gradient steps per vector step on
# batches of 32768, per-env noise scales in [0.1, 0.4], 3-step returns, target smoothing
# 0.1 clipped to 0.5, Adam 3e-4, tau 0.1, gamma 0.97, observation normalisation, 1024-512-256
# layers for both nets (flax's init), 1024 buffer rows per env, a warm-up of one batch.
ACCELERATOR_BEFORE_FASTTD3 = DDPGConfig(
    num_envs=1024, updates_per_env_step=2 / 1024, batch_size=32768, buffer_size=1024 * 1024,
    n_step=3, noise="gaussian", noise_scale=0.1, noise_scale_max=0.4, target_noise=0.1,
    target_noise_clip=0.5, actor_lr=3e-4, critic_lr=3e-4, tau=0.1, gamma=0.97, obs_norm=True,
    hidden_sizes=(1024, 512, 256), weight_init="lecun_normal", warmup_steps=32768,
    total_steps=10_240_000, eval_every=1_024_000, num_critics=2, policy_delay=2,
    update_schedule="step")


def _fasttd3_accelerator() -> DDPGConfig:
    """FastTD3 (Seo et al. 2025) for Playground's DM Control tasks, as its CheetahRun example
    config (fast_td3/hyperparams.py and train.py at commit 229ed59; docs/fasttd3.md lists
    every setting with its source line and what still differs).

    This is ``PRESETS["accelerator"]`` (since 2026-12-05, with the c51 critic's fields;
    the earlier values are :data:`ACCELERATOR_BEFORE_FASTTD3`).
    """
    return DDPGConfig(
        num_envs=1024, updates_per_env_step=2 / 1024, batch_size=32768,
        buffer_size=1024 * 10240, n_step=3, gamma=0.97, tau=0.1,
        actor_lr=3e-4, critic_lr=3e-4, actor_adamw_decay=0.1, critic_adamw_decay=0.1,
        hidden_sizes=(1024, 512, 256), actor_hidden_sizes=(512, 256, 128),
        critic_hidden_sizes=(1024, 512, 256), activation="relu", weight_init="fan_in_uniform",
        final_layer_init=0.0, critic_action_layer=0, num_critics=2, policy_delay=2,
        critic="c51", num_atoms=101, v_min=-500.0, v_max=500.0,
        target_noise=0.1, target_noise_clip=0.5, noise="gaussian", noise_scale=0.1,
        noise_scale_max=0.4, obs_norm=True, reward_scale=1.0, max_grad_norm=0.0,
        warmup_steps=32768, total_steps=1024 * 150_000, eval_every=1024 * 5000,
        eval_episodes=10,
    )


PRESETS["accelerator"] = _fasttd3_accelerator()


class PresetChangedWarning(FutureWarning):
    """A preset name whose values changed: what it means now, and how to get the old values."""


#: Presets whose values changed: name -> (date, what it is now, how to get the old values
#: in Python, the same on the command line). A run's saved config.json holds every field,
#: so checkpoints and resumed runs keep the values they were made with.
CHANGED_PRESETS: dict[str, tuple[str, str, str, str]] = {
    "td3": ("2026-12-05", "TD3 as its authors' current code (256-256, Adam 3e-4, batch 256, "
            "25000 random steps)",
            'preset("td3-2018", update_schedule="step")',
            "--preset td3-2018 --update-schedule step"),
    "ourddpg": ("2026-12-05", "Our DDPG in the 2018 loop (update_schedule episode: bursts of "
                "gradient steps at episode ends)",
                'preset("ourddpg", update_schedule="step")',
                "--preset ourddpg --update-schedule step"),
}


def preset_changed_message(name: str) -> str | None:
    """The notice for a preset whose values changed (see :data:`CHANGED_PRESETS`), or None."""
    if name not in CHANGED_PRESETS:
        return None
    date, now, python, cli = CHANGED_PRESETS[name]
    return (f"preset {name!r} changed its values on {date}: it is now {now}. The earlier "
            f"{name} is {python} in Python, {cli} on the command line.")


def preset(name: str, **overrides: Any) -> DDPGConfig:
    """Returns the named preset with ``overrides`` applied.

    A preset whose values changed (``td3``, ``ourddpg``: see :data:`CHANGED_PRESETS`)
    also warns with a :class:`PresetChangedWarning` that says how to get its old values.

    Raises:
      ConfigError: for an unknown preset name or field.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; accepted: {' | '.join(PRESETS)}.")
    message = preset_changed_message(name)
    # Every field given (a run's own config.json) leaves nothing of the preset to change.
    if message is not None and not set(FIELD_NAMES) <= set(overrides):
        warnings.warn(message, PresetChangedWarning, stacklevel=2)
    return PRESETS[name].replace(**overrides)

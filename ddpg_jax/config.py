"""Run configuration: a frozen dataclass, its presets and its validation.

Fields fall in two groups. *Static* fields fix shapes and loop lengths
(sizes, hidden layers, counts); changing one means compiling a new program.
*Traced* fields (learning rates, gamma, tau, noise scale, weight decay) only
enter the computation as numbers: they are copied into
:class:`ddpg_jax.types.HParams` inside the :class:`~ddpg_jax.types.TrainState`,
so a batch of states with different values can be run under ``jax.vmap``
without any code change.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from typing import Any, Mapping

import numpy as np

NOISE_KINDS = ("gaussian", "ou")
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "silu", "leaky_relu")
WEIGHT_INITS = ("lecun_normal", "fan_in_uniform")

#: Fields that are copied into ``TrainState.hparams`` and may differ across a vmapped batch.
TRACED_FIELDS = (
    "actor_lr",
    "critic_lr",
    "gamma",
    "tau",
    "noise_scale",
    "critic_weight_decay",
    "target_noise",
    "target_noise_clip",
    "reward_scale",
)


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """All settings of a DDPG run.

    The defaults are a modern DDPG (Adam 1e-3, 256x256 ReLU networks, batch
    256, tau 0.005, Gaussian exploration 0.1) that solves Pendulum-v1 within
    20k steps. :func:`preset` ``"paper"`` gives Lillicrap et al. (2015)'s
    low-dimensional settings.

    Attributes:
      total_steps: environment steps in the whole run, summed over parallel envs
        (warm-up included).
      seed: seed of the run's PRNG key and of the environments.
      num_envs: parallel environments stepped together.
      buffer_size: replay capacity in transitions.
      batch_size: transitions per gradient step.
      warmup_steps: environment steps taken with uniform random actions before
        learning starts (must be at least ``batch_size``).
      updates_per_step: gradient steps per environment step.
      gamma: discount factor in [0, 1).
      tau: Polyak rate of the target networks in (0, 1].
      actor_lr: Adam learning rate of the actor.
      critic_lr: Adam learning rate of the critic.
      critic_weight_decay: L2 penalty coefficient on the critic's parameters
        (the paper's 1e-2), added to the gradient before Adam.
      max_grad_norm: global-norm gradient clipping; 0 disables it.
      hidden_sizes: hidden layer widths, shared by actor and critic.
      activation: hidden activation, one of ``ACTIVATIONS``.
      final_layer_init: if > 0, last-layer weights and biases are drawn from
        U(-final_layer_init, final_layer_init) (the paper uses 3e-3); 0 keeps
        ``weight_init`` for the last layer too.
      weight_init: initialisation of the layers' weights and biases, one of
        ``WEIGHT_INITS``: ``"lecun_normal"`` (flax's default: lecun-normal
        weights, zero biases) or ``"fan_in_uniform"`` (weights and biases from
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)): Lillicrap et al.'s hidden layers and
        PyTorch's ``nn.Linear`` default, which the TD3 authors' code uses).
      critic_action_layer: the hidden layer whose input receives the action
        (0: concatenated with the observation, as in the TD3 paper; 1: the
        second hidden layer, as in Lillicrap et al.).
      num_critics: critics trained on the same target; the target takes the
        minimum over them (1 is DDPG, 2 is TD3's clipped double Q).
      policy_delay: critic updates per actor and target update (1 is DDPG, 2 is TD3).
      target_noise: standard deviation of the Gaussian noise added to the target
        action, in units of the action half-range (TD3's target policy
        smoothing, 0.2 in the paper; 0 disables it).
      target_noise_clip: the target noise is clipped to +- this many half-ranges
        (0.5 in TD3).
      obs_norm: normalise observations with running statistics kept in the
        train state (frozen during evaluation and within each update).
      reward_scale: rewards are multiplied by this in the critic target.
      noise: exploration noise, ``"gaussian"`` or ``"ou"`` (Ornstein-Uhlenbeck).
      noise_scale: standard deviation of the Gaussian noise, or sigma of the OU
        process, in units of the action half-range ``(high - low) / 2``.
      ou_theta: OU mean-reversion rate.
      ou_dt: OU time step.
      eval_every: environment steps between deterministic evaluations
        (0: evaluate only at the end).
      eval_episodes: episodes per evaluation.
    """

    total_steps: int = 20_000
    seed: int = 0
    num_envs: int = 1
    buffer_size: int = 1_000_000
    batch_size: int = 256
    warmup_steps: int = 1_000
    updates_per_step: int = 1
    gamma: float = 0.99
    tau: float = 0.005
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    critic_weight_decay: float = 0.0
    max_grad_norm: float = 0.0
    hidden_sizes: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    final_layer_init: float = 0.0
    weight_init: str = "lecun_normal"
    critic_action_layer: int = 0
    num_critics: int = 1
    policy_delay: int = 1
    target_noise: float = 0.0
    target_noise_clip: float = 0.5
    obs_norm: bool = False
    reward_scale: float = 1.0
    noise: str = "gaussian"
    noise_scale: float = 0.1
    ou_theta: float = 0.15
    ou_dt: float = 1.0
    eval_every: int = 5_000
    eval_episodes: int = 10

    # ------------------------------------------------------------------ checks
    def validate(self) -> "DDPGConfig":
        """Checks every field and returns ``self``.

        Raises:
          ConfigError: naming the field, the value given and what is accepted.
        """
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _FIELD_TYPES[f.name])

        def need(ok: bool, name: str, accepted: str) -> None:
            if not ok:
                raise ConfigError(
                    f"{name} = {getattr(self, name)!r} is out of range; accepted: {accepted}."
                )

        for name in ("total_steps", "num_envs", "buffer_size", "batch_size",
                     "updates_per_step", "eval_episodes", "num_critics", "policy_delay"):
            need(getattr(self, name) > 0, name, "an integer > 0")
        need(self.seed >= 0, "seed", "an integer >= 0")
        need(self.warmup_steps >= 0, "warmup_steps", "an integer >= 0")
        need(self.eval_every >= 0, "eval_every", "an integer >= 0 (0: only at the end)")
        need(0.0 <= self.gamma < 1.0, "gamma", "a number in [0, 1)")
        need(0.0 < self.tau <= 1.0, "tau", "a number in (0, 1]")
        for name in ("actor_lr", "critic_lr"):
            need(0.0 < getattr(self, name) and math.isfinite(getattr(self, name)),
                 name, "a finite number > 0")
        for name in ("critic_weight_decay", "max_grad_norm", "final_layer_init",
                     "noise_scale", "target_noise", "target_noise_clip"):
            need(getattr(self, name) >= 0.0 and math.isfinite(getattr(self, name)),
                 name, "a finite number >= 0")
        need(self.reward_scale > 0.0 and math.isfinite(self.reward_scale), "reward_scale",
             "a finite number > 0")
        need(0.0 < self.ou_theta and math.isfinite(self.ou_theta), "ou_theta", "a finite number > 0")
        need(0.0 < self.ou_dt and math.isfinite(self.ou_dt), "ou_dt", "a finite number > 0")
        if self.ou_theta * self.ou_dt > 1.0:
            raise ConfigError(
                f"ou_theta * ou_dt = {self.ou_theta} * {self.ou_dt} > 1 makes the OU process "
                "overshoot its mean; accepted: ou_theta * ou_dt <= 1."
            )
        need(len(self.hidden_sizes) > 0 and all(h > 0 for h in self.hidden_sizes),
             "hidden_sizes", "one or more integers > 0, e.g. 256,256")
        need(self.activation in ACTIVATIONS, "activation", " | ".join(ACTIVATIONS))
        need(self.weight_init in WEIGHT_INITS, "weight_init", " | ".join(WEIGHT_INITS))
        need(0 <= self.critic_action_layer < len(self.hidden_sizes), "critic_action_layer",
             f"an integer in [0, {len(self.hidden_sizes) - 1}] (a hidden layer index)")
        need(self.noise in NOISE_KINDS, "noise", " | ".join(NOISE_KINDS))
        if self.batch_size > self.buffer_size:
            raise ConfigError(
                f"batch_size {self.batch_size} > buffer_size {self.buffer_size}; "
                "accepted: batch_size <= buffer_size."
            )
        if self.warmup_steps >= self.total_steps:
            raise ConfigError(
                f"warmup_steps {self.warmup_steps} >= total_steps {self.total_steps}; "
                "accepted: warmup_steps < total_steps."
            )
        if max(self.warmup_steps, self.num_envs) < self.batch_size:
            raise ConfigError(
                f"warmup_steps {self.warmup_steps} < batch_size {self.batch_size}: the first "
                "update would sample from fewer transitions than a batch; accepted: "
                "warmup_steps >= batch_size."
            )
        return self

    # ------------------------------------------------------------ conversions
    def replace(self, **changes: Any) -> "DDPGConfig":
        """Returns a copy with ``changes`` applied (unknown names are refused)."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DDPGConfig":
        _check_names(d)
        d = dict(d)
        if "hidden_sizes" in d and isinstance(d["hidden_sizes"], list):
            d["hidden_sizes"] = tuple(d["hidden_sizes"])
        return cls(**d)

    @property
    def vector_steps(self) -> int:
        """Steps of the vector env (each advances ``num_envs`` environments)."""
        return self.total_steps // self.num_envs

    @property
    def warmup_vector_steps(self) -> int:
        return -(-self.warmup_steps // self.num_envs)


_FIELD_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str, "bool": bool,
             "tuple[int, ...]": tuple}[f.type]
    for f in dataclasses.fields(DDPGConfig)
}
FIELD_NAMES = tuple(_FIELD_TYPES)


def _check_names(d: Mapping[str, Any]) -> None:
    for name in d:
        if name not in _FIELD_TYPES:
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


def parse_field(name: str, text: str) -> Any:
    """Parses a command-line string into the type of field ``name``.

    Raises:
      ConfigError: for unknown fields or text that is not of the field's type.
    """
    _check_names({name: None})
    kind = _FIELD_TYPES[name]
    try:
        if kind is int:
            value = float(text) if any(c in text for c in ".eE") else int(text)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                value = int(value)
            return value
        if kind is float:
            return float(text)
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
    except ValueError:
        accepted = {int: "an integer", float: "a number", bool: "true | false",
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

# "Our DDPG" of Fujimoto et al. 2018, Appendix C: 400-300 networks, Adam 1e-3 for
# both, batch 100, tau 0.005, N(0, 0.1) exploration, one critic, no weight decay.
# The paper starts with 1000 random steps (10000 for HalfCheetah and Ant). Layers are
# initialised as PyTorch's nn.Linear, which the authors' code uses: with flax's
# default, larger initialisation the actor ran into the tanh bounds within a few
# thousand updates on Hopper-v5 and stayed there (see the README's MuJoCo results).
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
)
# TD3 (Fujimoto et al. 2018, Sec. 6.1 and Appendix C): the same settings plus two
# critics, target smoothing N(0, 0.2) clipped to 0.5, and policy delay 2.
PRESETS["td3"] = PRESETS["ourddpg"].replace(
    num_critics=2, policy_delay=2, target_noise=0.2, target_noise_clip=0.5)


def preset(name: str, **overrides: Any) -> DDPGConfig:
    """Returns the named preset with ``overrides`` applied.

    Raises:
      ConfigError: for an unknown preset name or field.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; accepted: {' | '.join(PRESETS)}.")
    return PRESETS[name].replace(**overrides)

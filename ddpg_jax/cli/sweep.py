"""``train --sweep``: checking a grid of traced-field values, and training it as one program.

Every setting of the grid x ``--num-seeds`` trains in one compiled program over a built-in
JAX env (the jax backend); the results per setting go to the run's summary.json. A sweep
writes no checkpoints and cannot be resumed.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ddpg_jax.cli.run_dirs import write_json
from ddpg_jax.cli.usage import UsageError, field_flag, flag_fields
from ddpg_jax.config import (
    FIELD_NAMES,
    TRACED_FIELDS,
    ConfigError,
    DDPGConfig,
    check_field,
    parse_field,
)
from ddpg_jax.records.versions import versions

if TYPE_CHECKING:
    from ddpg_jax.cli.config_file import ConfigFile


# ---------------------------------------------------------------------------- the grid
def sweep_grid(args: argparse.Namespace, file: ConfigFile | None, backend: str,
               config: DDPGConfig) -> dict[str, list[float]] | None:
    """The checked grid of --sweep (or of the --config file), or None for a single run."""
    if args.sweep:
        grid, where = sweep_flags(args.sweep), "--sweep"
    elif file is not None and file.sweep is not None:
        grid, where = file.sweep, f"--config {file.path}: sweep"
    else:
        return None
    if backend != "jax":
        raise UsageError(
            f"{where} needs --backend jax: a sweep trains every setting x seed in one compiled "
            f"program over a built-in JAX env; the {backend} backend trains one setting per "
            "process.")
    checked = check_grid(grid, config, where)
    both = [n for n in checked if n in flag_fields(args)] if args.sweep else []
    if both:
        raise UsageError(f"{field_flag(both[0])} and --sweep {both[0]}=... both set "
                         f"{both[0]}; accepted: one of them.")
    if args.checkpoint_every is not None or args.keep_checkpoints is not None \
            or args.no_buffer_in_checkpoint:
        raise UsageError("--checkpoint-every, --keep-checkpoints and --no-buffer-in-checkpoint do "
                         "not apply to a sweep: it runs as one compiled program and writes no "
                         "checkpoints (it cannot be resumed; re-run it with --config "
                         "RUN_DIR/config.json).")
    return checked


def sweep_flags(items: Sequence[str]) -> dict[str, list[str]]:
    """``["actor_lr=1e-3,3e-3", ...]`` as ``{"actor_lr": ["1e-3", "3e-3"], ...}``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        listed = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name or not listed:
            raise UsageError(f"--sweep {item!r} is not valid; accepted: FIELD=V1,V2[,...], e.g. "
                             "--sweep actor_lr=1e-4,1e-3 (repeat --sweep for a grid over "
                             "several fields).")
        if name in grid:
            raise UsageError(f"--sweep {name} is given twice; accepted: each field once (repeat "
                             "--sweep only for other fields).")
        grid[name] = listed
    return grid


def check_grid(grid: dict[str, Any], base: DDPGConfig, where: str) -> dict[str, list[float]]:
    """A sweep grid with every value parsed and validated; refuses static or unknown fields."""
    checked: dict[str, list[float]] = {}
    for name, values in grid.items():
        if name not in FIELD_NAMES:
            close = difflib.get_close_matches(str(name), TRACED_FIELDS, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise UsageError(f"{where} {name}: unknown field {str(name)!r}.{hint} Accepted: the "
                             f"traced fields {', '.join(TRACED_FIELDS)}.")
        if name not in TRACED_FIELDS:
            raise UsageError(
                f"{where} {name}: {name} is a static field (it fixes shapes, loop lengths or the "
                "program's structure), so it cannot be swept in one compiled program; accepted: "
                f"the traced fields {', '.join(TRACED_FIELDS)}. Train other values of {name} as "
                "separate runs.")
        if not isinstance(values, list) or not values:
            raise UsageError(f"{where} {name}: {values!r} is not valid; accepted: a non-empty "
                             "list of numbers.")
        checked[name] = [_grid_value(name, v, base, where) for v in values]
    return checked


def _grid_value(name: str, v: Any, base: DDPGConfig, where: str) -> float:
    try:
        value = parse_field(name, v) if isinstance(v, str) else v
        check_field(name, value)
        base.replace(**{name: value}).validate()
    except ConfigError as e:
        raise ConfigError(f"{where} {name}: {e}") from None
    return float(value)


# ---------------------------------------------------------------------------- the run
def run_sweep(plan: Any, quiet: bool, tensorboard: Any = None, wandb: Any = None) -> int:
    """Trains every setting of the grid x num_seeds in one program; results to summary.json.

    ``plan`` is the train command's checked plan (``ddpg_jax.cli.main._RunPlan``) with a grid;
    ``tensorboard`` (a :class:`~ddpg_jax.records.writers.RunLog`) and ``wandb`` (a
    :class:`~ddpg_jax.records.writers.WandbLog`), when given, receive each setting's curve.
    """
    import jax

    from ddpg_jax.drivers.compile_cache import compile_cache
    from ddpg_jax.drivers.dispatch import jax_env
    from ddpg_jax.drivers.multi import sweep

    config, grid, num_seeds = plan.config, plan.sweep or {}, plan.num_seeds
    devices = jax.devices()
    if not quiet:
        _announce(plan, grid, devices)
    env, params, _ = jax_env(plan.env_id, None)
    t0 = time.perf_counter()
    try:
        # The same compilation cache as a training run (its matmul precision is applied by
        # make_train, which the sweep is built on).
        with compile_cache(plan.options.compile_cache):
            settings, timed = sweep(config, env, params, grid=grid, num_seeds=num_seeds)
    except KeyboardInterrupt:
        print(f"ddpg-jax: interrupted; a sweep is one compiled program and cannot be resumed "
              f"({plan.out} holds only its config.json). Re-run it with: ddpg-jax train --config "
              f"{shlex.quote(str(plan.out / 'config.json'))} --out NEW_DIR", flush=True)
        return 130
    wall = time.perf_counter() - t0
    entries, steps = _entries(settings, timed.output.metrics)
    s = _summary(plan, grid, entries, wall, timed, devices)
    labels = [_setting_label(e["setting"], ",") for e in entries]
    for writer in (tensorboard, wandb):
        if writer is not None:
            writer.sweep(labels, steps, [e["eval_return_mean"] for e in entries])
    if wandb is not None:
        wandb.summary(s)
    write_json(plan.out / "summary.json", s)
    _report(plan, s, quiet)
    return 0


def _announce(plan: Any, grid: dict[str, list[float]], devices: list[Any]) -> None:
    import math

    count, num_seeds = math.prod(len(v) for v in grid.values()), plan.num_seeds
    print(f"compiling {count} setting(s) x {num_seeds} seed(s) = {count * num_seeds} run(s) "
          f"of {plan.config.total_steps} steps as one program on {len(devices)} "
          f"{devices[0].platform} device(s); a sweep shows no progress bar and writes no "
          "checkpoints...", flush=True)


def _finite_or_none(x: Any) -> float | None:
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


def _setting_label(setting: dict[str, float], sep: str = " ") -> str:
    return sep.join(f"{k}={v:g}" for k, v in setting.items())


def _entries(settings: Sequence[dict[str, Any]],
             metrics: dict[str, Any]) -> tuple[list[dict[str, Any]], list[int]]:
    """One summary entry per setting, and the evaluation steps."""
    import numpy as np

    returns = np.asarray(metrics["eval_returns"], np.float64)  # [settings, seeds, points, eps]
    steps = [int(s) for s in np.asarray(metrics["env_steps"]).reshape(-1, returns.shape[2])[0]]
    entries = []
    for i, setting in enumerate(settings):
        final = returns[i, :, -1, :]
        entries.append({
            "setting": {k: float(v) for k, v in setting.items()},
            "final_eval_return_per_seed": [_finite_or_none(x) for x in final.mean(axis=-1)],
            "final_eval_return_mean": _finite_or_none(final.mean()),
            "final_eval_return_std": _finite_or_none(final.std()),
            "eval_steps": steps,
            "eval_return_mean": [_finite_or_none(x) for x in returns[i].mean(axis=(0, 2))],
        })
    return entries, steps


def _summary(plan: Any, grid: dict[str, list[float]], entries: list[dict[str, Any]],
             wall: float, timed: Any, devices: list[Any]) -> dict[str, Any]:
    """summary.json of a sweep; ``best_setting`` indexes ``sweep`` (None if all diverged)."""
    config, num_seeds = plan.config, plan.num_seeds
    ranked = [i for i in range(len(entries)) if entries[i]["final_eval_return_mean"] is not None]
    best = max(ranked, key=lambda i: entries[i]["final_eval_return_mean"]) if ranked else None
    runs = len(entries) * num_seeds
    return {"env_id": plan.env_id, "backend": "jax", "preset": plan.preset, "seed": config.seed,
            "num_seeds": num_seeds, "num_settings": len(entries),
            "total_steps": config.total_steps, "eval_episodes": config.eval_episodes,
            "grid": grid, "sweep": entries, "best_setting": best, "wall_time_s": wall,
            "compile_time_s": timed.compile_time_s, "run_time_s": timed.run_time_s,
            "steps_per_second": runs * config.total_steps / max(wall, 1e-9),
            "devices": [str(d) for d in devices], "versions": versions()}


def _report(plan: Any, s: dict[str, Any], quiet: bool) -> None:
    """Prints each setting's result (unless quiet) and the sweep's result line."""
    entries, best = s["sweep"], s["best_setting"]
    if not quiet:
        for e in entries:
            per_seed = ", ".join("nan" if x is None else f"{x:.1f}"
                                 for x in e["final_eval_return_per_seed"])
            mean = e["final_eval_return_mean"]
            print(f"  {_setting_label(e['setting'])}: final eval return "
                  f"{'nan' if mean is None else f'{mean:.1f}'} (per seed: {per_seed})")
    best_text = (f"best {_setting_label(entries[best]['setting'])} with final eval return "
                 f"{entries[best]['final_eval_return_mean']:.1f}" if best is not None
                 else "every setting diverged")
    print(f"{plan.env_id} sweep of {s['num_settings']} setting(s) x {s['num_seeds']} seed(s) "
          f"from seed {s['seed']}: {best_text}; {s['num_settings'] * s['num_seeds']} x "
          f"{s['total_steps']} steps in {s['wall_time_s']:.1f} s (compile "
          f"{s['compile_time_s']:.1f} s, {s['steps_per_second']:.0f} steps/s); results per "
          f"setting in {plan.out / 'summary.json'}")

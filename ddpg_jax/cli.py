"""The ``ddpg-jax`` command."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import difflib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Sequence

from ddpg_jax.config import FIELD_NAMES, PRESETS, ConfigError, DDPGConfig, parse_field, preset
from ddpg_jax.envcheck import EnvSpecError

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input; printed as one paragraph, exit code 2."""


def versions() -> dict[str, str]:
    """Versions of the interpreter and the libraries a run depends on."""
    import chex
    import flax
    import gymnasium
    import jax
    import jaxlib
    import numpy
    import optax

    from ddpg_jax import __version__

    return {
        "ddpg_jax": __version__,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "chex": chex.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
    }


def _field_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddpg-jax", description="Functional DDPG in JAX: train on gymnasium environments.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    tr = sub.add_parser(
        "train", help="train a policy",
        description="Train DDPG. Every DDPGConfig field can be set as --field-name VALUE "
                    "(hidden sizes as comma-separated integers, e.g. --hidden-sizes 256,256).")
    tr.add_argument("--env", required=True, metavar="ENV_ID", help="gymnasium environment id")
    tr.add_argument("--preset", default="default", metavar="NAME",
                    help=f"starting settings: {' | '.join(PRESETS)} (default: default)")
    tr.add_argument("--out", default=None, metavar="DIR",
                    help="run directory for config.json and summary.json "
                         "(default: runs/ENV_ID-PRESET-seedSEED-TIMESTAMP); must not hold an "
                         "earlier run")
    tr.add_argument("--quiet", action="store_true", help="print only the final result line")
    tr.add_argument("--backend", default="gymnasium", metavar="NAME",
                    help="gymnasium (host loop over gymnasium envs, default) | jax (the whole "
                         "run as one compiled program over a built-in JAX env)")
    tr.add_argument("--num-seeds", default="1", metavar="N",
                    help="jax backend: independent seeds trained at once (default 1)")
    fields = tr.add_argument_group("config fields")
    defaults = DDPGConfig()
    for f in dataclasses.fields(DDPGConfig):
        default = getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        fields.add_argument(_field_flag(f.name), dest=f"cfg_{f.name}", default=None,
                            metavar="VALUE", help=f"(default preset: {shown})")
    return parser


def _config_from_args(args: argparse.Namespace) -> DDPGConfig:
    overrides: dict[str, Any] = {}
    for name in FIELD_NAMES:
        text = getattr(args, f"cfg_{name}")
        if text is not None:
            overrides[name] = parse_field(name, text)
    return preset(args.preset, **overrides).validate()


def _unknown_args_error(unknown: list[str]) -> UsageError:
    flags = [a for a in unknown if a.startswith("-")]
    if not flags:
        return UsageError(f"unexpected argument(s) {' '.join(unknown)}; every value must follow "
                          "its --field-name.")
    name = flags[0].lstrip("-").replace("-", "_").split("=")[0]
    known = [*FIELD_NAMES, "env", "preset", "out", "quiet", "backend", "num_seeds"]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {_field_flag(close[0])}?" if close else ""
    return UsageError(
        f"unknown option {flags[0]!r}.{hint} Accepted: --env, --preset, --out, --quiet, "
        "--backend, --num-seeds and the "
        f"config fields {', '.join(_field_flag(n) for n in FIELD_NAMES)}."
    )


def _prepare_out_dir(out: str | None, env_id: str, config: DDPGConfig, preset_name: str) -> Path:
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        safe_env = env_id.replace("/", "_").replace(":", "_")
        out = os.path.join("runs", f"{safe_env}-{preset_name}-seed{config.seed}-{stamp}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out!r} exists and is not a directory; accepted: a new or "
                         "empty directory.")
    if path.is_dir() and any(path.iterdir()):
        raise UsageError(f"--out {out!r} already holds files (an earlier run?); refusing to "
                         "overwrite them. Accepted: a new or empty directory.")
    return path


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    # Write then rename, so a crash never leaves a half-written file behind.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


BACKENDS = ("gymnasium", "jax")


def _num_seeds(args: argparse.Namespace) -> int:
    try:
        n = int(args.num_seeds)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--num-seeds {args.num_seeds!r} is not valid; accepted: an integer >= 1.")
    if n > 1 and args.backend != "jax":
        raise UsageError(f"--num-seeds {n} needs --backend jax; the gymnasium backend trains one "
                         "seed per process.")
    return n


def _cmd_train(args: argparse.Namespace) -> int:
    if args.backend not in BACKENDS:
        raise UsageError(f"--backend {args.backend!r} is not known; accepted: "
                         f"{' | '.join(BACKENDS)}.")
    num_seeds = _num_seeds(args)
    config = _config_from_args(args)
    if args.backend == "jax":
        return _cmd_train_jax(args, config, num_seeds)
    from ddpg_jax.envcheck import check_env, env_factory

    # Environment checks before any directory is made or anything is traced.
    check_env(env_factory(args.env), repr(args.env))
    out = _prepare_out_dir(args.out, args.env, config, args.preset)

    from ddpg_jax.train import train

    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", {"env_id": args.env, "preset": args.preset,
                                      "backend": "gymnasium", "config": config.to_dict()})
    eval_log = (out / "evaluations.jsonl").open("a")

    def on_eval(record: dict[str, Any]) -> None:
        eval_log.write(json.dumps(record) + "\n")
        eval_log.flush()

    try:
        result = train(config, args.env, log=None if args.quiet else print,
                       on_evaluation=on_eval)
    finally:
        eval_log.close()
    summary = {**result.summary, "preset": args.preset, "backend": "gymnasium",
               "evaluations": [{k: r[k] for k in ("env_steps", "eval_return_mean",
                                                  "eval_return_std")}
                               for r in result.evaluations],
               "versions": versions()}
    _write_json(out / "summary.json", summary)
    s = result.summary
    print(f"{s['env_id']} seed {s['seed']}: final eval return {s['final_eval_return_mean']:.1f} "
          f"+- {s['final_eval_return_std']:.1f} over {s['eval_episodes']} episodes; "
          f"{s['total_steps']} steps in {s['wall_time_s']:.1f} s "
          f"({s['steps_per_second']:.0f} steps/s); run saved in {out}")
    return 0


def _jax_env(env_id: str):
    from ddpg_jax.envs import make, registered_envs

    try:
        return make(env_id)
    except ValueError:
        raise EnvSpecError(
            f"unknown JAX environment id {env_id!r} for --backend jax; accepted: "
            f"{' | '.join(registered_envs())} (or use --backend gymnasium for any gymnasium id)."
        ) from None


def _cmd_train_jax(args: argparse.Namespace, config: DDPGConfig, num_seeds: int) -> int:
    env, env_params = _jax_env(args.env)
    from ddpg_jax.train.jax_loop import make_schedule

    make_schedule(config)  # loop-length errors before any directory is made
    out = _prepare_out_dir(args.out, args.env, config, args.preset)

    import time

    import jax
    import numpy as np

    from ddpg_jax.train.multi import run_seeds

    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", {"env_id": args.env, "preset": args.preset,
                                      "backend": "jax", "num_seeds": num_seeds,
                                      "config": config.to_dict()})
    if not args.quiet:
        print(f"compiling {num_seeds} run(s) of {config.total_steps} steps on "
              f"{len(jax.devices())} {jax.devices()[0].platform} device(s)...")
    t0 = time.perf_counter()
    timed = run_seeds(config, env, env_params, num_seeds=num_seeds)
    wall = time.perf_counter() - t0
    m = timed.output.metrics
    steps = [int(x) for x in m["env_steps"][0]]
    with (out / "evaluations.jsonl").open("w") as f:
        for i, step in enumerate(steps):
            record = {"env_steps": step,
                      "eval_return_mean_per_seed": [float(x) for x in m["eval_return_mean"][:, i]],
                      "eval_return_mean": float(np.mean(m["eval_returns"][:, i])),
                      "eval_return_std": float(np.std(m["eval_returns"][:, i]))}
            for name in ("critic_loss", "actor_loss", "q_mean"):
                record[name] = float(np.mean(m[name][:, i]))
            f.write(json.dumps(record) + "\n")
            if not args.quiet:
                print(f"step {step:>8d}  eval return {record['eval_return_mean']:9.2f} "
                      f"+- {record['eval_return_std']:7.2f} (all seeds)")
    final = m["eval_returns"][:, -1]  # [num_seeds, eval_episodes]
    total_steps = steps[-1]
    summary = {
        "env_id": args.env, "seed": config.seed, "num_seeds": num_seeds, "backend": "jax",
        "preset": args.preset, "total_steps": total_steps,
        "final_eval_return_mean": float(np.mean(final)),
        "final_eval_return_std": float(np.std(final)),
        "final_eval_return_per_seed": [float(x) for x in np.mean(final, axis=1)],
        "final_eval_return_std_across_seeds": float(np.std(np.mean(final, axis=1))),
        "eval_episodes": config.eval_episodes,
        "wall_time_s": wall, "compile_time_s": timed.compile_time_s,
        "run_time_s": timed.run_time_s,
        "steps_per_second": num_seeds * total_steps / wall,
        "steps_per_second_excluding_compile": num_seeds * total_steps / timed.run_time_s,
        "devices": [str(d) for d in jax.devices()],
        "evaluations": [{"env_steps": s_, "eval_return_mean": float(np.mean(m["eval_returns"][:, i]))}
                        for i, s_ in enumerate(steps)],
        "versions": versions(),
    }
    _write_json(out / "summary.json", summary)
    per_seed = ", ".join(f"{x:.1f}" for x in summary["final_eval_return_per_seed"])
    print(f"{args.env} {num_seeds} seed(s) from seed {config.seed}: final eval return "
          f"{summary['final_eval_return_mean']:.1f} +- {summary['final_eval_return_std']:.1f} "
          f"(per seed: {per_seed}); {num_seeds} x {total_steps} steps in {wall:.1f} s "
          f"(compile {timed.compile_time_s:.1f} s, {summary['steps_per_second']:.0f} steps/s); "
          f"run saved in {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    try:
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        if unknown:
            raise _unknown_args_error(unknown)
        if args.command == "train":
            return _cmd_train(args)
        raise UsageError(f"unknown command {args.command!r}")
    except (UsageError, ConfigError, EnvSpecError) as e:
        print(f"ddpg-jax: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def entry_point() -> None:
    sys.exit(main())

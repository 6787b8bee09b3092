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
    known = [*FIELD_NAMES, "env", "preset", "out", "quiet"]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {_field_flag(close[0])}?" if close else ""
    return UsageError(
        f"unknown option {flags[0]!r}.{hint} Accepted: --env, --preset, --out, --quiet and the "
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


def _cmd_train(args: argparse.Namespace) -> int:
    from ddpg_jax.envcheck import check_env, env_factory

    config = _config_from_args(args)
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

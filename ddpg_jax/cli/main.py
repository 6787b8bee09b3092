"""The ``ddpg-jax`` command: its arguments, the train, evaluate, plot and export commands.

Reading a ``--config`` file is in :mod:`ddpg_jax.cli.config_file`, the ``--sweep`` command in
:mod:`ddpg_jax.cli.sweep`, run directories in :mod:`ddpg_jax.cli.run_dirs`.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import shlex
import shutil
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ddpg_jax.agent.nonfinite import NonFiniteError
from ddpg_jax.checkpoints.format import Checkpoint, CheckpointError, open_checkpoint
from ddpg_jax.checkpoints.resume import open_for_resume
from ddpg_jax.cli.config_file import ConfigFile, load_config_file
from ddpg_jax.cli.run_dirs import (
    SavedRun,
    locate_resume,
    prepare_out_dir,
    read_saved_run,
    write_json,
)
from ddpg_jax.cli.sweep import run_sweep, sweep_grid
from ddpg_jax.cli.usage import BACKENDS, EXIT_USAGE, UsageError, field_flag, flag_fields
from ddpg_jax.config import (
    FIELD_NAMES,
    GROUPS,
    PRESETS,
    RENAMED_FIELDS,
    TRACED_FIELDS,
    ConfigError,
    DDPGConfig,
    check_field,
    describe,
    parse_field,
    preset,
)
from ddpg_jax.drivers.run_options import RunOptions, RunOptionsError, StopSignals
from ddpg_jax.envs.core import EnvSpecError
from ddpg_jax.records.versions import versions
from ddpg_jax.records.writers import (
    TENSORBOARD_HINT,
    WANDB_HINT,
    LoggerError,
    MissingExtraError,
    tensorboard_available,
    wandb_available,
)

#: Exit code of a run stopped by non-finite values (bad input exits with EXIT_USAGE).
EXIT_NONFINITE = 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddpg-jax", description="Functional DDPG in JAX: train on gymnasium environments.")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the versions of ddpg-jax, jax and flax on one line and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_plot_parser(sub)
    _add_export_parser(sub)
    return parser


def _add_train_parser(sub: Any) -> None:
    tr = sub.add_parser(
        "train", help="train a policy", allow_abbrev=False,
        description="Train DDPG. Every DDPGConfig field can be set as --field-name VALUE "
                    "(hidden sizes as comma-separated integers, e.g. --hidden-sizes 256,256). "
                    "Precedence, whatever the order on the line: command-line flags, then the "
                    "--config file, then the preset, then the defaults.")
    tr.add_argument("--env", default=None, metavar="ENV_ID",
                    help="gymnasium environment id; with --backend jax a JAX env spec: "
                         "Pendulum-v1 | MountainCarContinuous-v0 | playground:TASK | brax:NAME "
                         "| gymnax:NAME | module:function (required unless --resume, or given "
                         "by --config)")
    tr.add_argument("--preset", default=None, metavar="NAME",
                    help=f"starting settings: {' | '.join(PRESETS)} (default: default)")
    tr.add_argument("--out", default=None, metavar="DIR",
                    help="run directory for config.json and summary.json "
                         "(default: runs/ENV_ID-PRESET-seedSEED-TIMESTAMP); must not hold an "
                         "earlier run")
    tr.add_argument("--quiet", action="store_true",
                    help="print only the final result line (no progress bar)")
    tr.add_argument("--backend", default=None, metavar="NAME",
                    help="gymnasium (host loop over gymnasium envs, default) | jax (the whole "
                         "run as compiled chunks over a JAX env)")
    tr.add_argument("--num-seeds", default=None, metavar="N",
                    help="jax backend: independent seeds trained at once (default 1)")
    tr.add_argument("--config", default=None, metavar="FILE",
                    help="settings from a JSON or YAML file (.json, .yaml, .yml): a mapping of "
                         "config fields, optionally with env_id, preset, backend, num_seeds, "
                         "sweep and run_options; or a run's own config.json, to re-run it "
                         "(ddpg-jax train --config runs/A/config.json --out runs/B). Flags "
                         "given on the command line override the file's values, before or "
                         "after --config")
    tr.add_argument("--sweep", action="append", default=None, metavar="FIELD=V1,V2[,...]",
                    help="jax backend only: train every listed value of a traced field; repeat "
                         "for a grid over several fields (every setting x --num-seeds in one "
                         "compiled program, the same seeds for every setting). Sweepable: "
                         f"{', '.join(TRACED_FIELDS)}. Each setting's results go to "
                         "summary.json; a sweep writes no checkpoints and cannot be resumed")
    _add_run_management_args(tr)
    _add_config_field_args(tr)


def _add_run_management_args(tr: argparse.ArgumentParser) -> None:
    rm = tr.add_argument_group("run management (not part of the config)")
    rm.add_argument("--resume", default=None, metavar="DIR",
                    help="continue the run in DIR (a run directory, or one of its checkpoints); "
                         "the config is read from it, --total-steps may extend it")
    rm.add_argument("--checkpoint-every", default=None, metavar="N",
                    help="environment steps between checkpoints (default: at every evaluation "
                         "point, i.e. every --eval-every steps and at the end; 0: only at the "
                         "end and on interruption)")
    rm.add_argument("--keep-checkpoints", default=None, metavar="K",
                    help="most recent checkpoints kept, besides the best one (default 3)")
    rm.add_argument("--no-buffer-in-checkpoint", action="store_true",
                    help="leave the replay buffer out of checkpoints (smaller; a resumed run "
                         "then refills it with a new warm-up and is not exact)")
    rm.add_argument("--tensorboard", action="store_true",
                    help="also write TensorBoard events to DIR/tensorboard "
                         "(pip install 'ddpg-jax[tensorboard]')")
    rm.add_argument("--compile-cache", default=None, metavar="DIR|off",
                    help="folder of jax's persistent compilation cache, so that launching the "
                         "same program again skips compiling; off: no cache (default: "
                         "$DDPG_JAX_CACHE_DIR, else $XDG_CACHE_HOME/ddpg_jax/jax or "
                         "~/.cache/ddpg_jax/jax)")
    rm.add_argument("--wandb", default=None, metavar="PROJECT",
                    help="also log the config, the evaluation and training records and the "
                         "summary to this Weights & Biases project (pip install "
                         "'ddpg-jax[wandb]'); WANDB_MODE=offline logs locally, to upload later "
                         "with wandb sync")


def _add_config_field_args(tr: argparse.ArgumentParser) -> None:
    """One --field-name VALUE flag per config field, in one argument group per field group."""
    groups = {g: tr.add_argument_group(f"config fields: {g}") for g in GROUPS}
    for name in FIELD_NAMES:
        d = describe(name)
        default = d["default"]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        traced = "; traced: sweepable in one program" if d["traced"] else ""
        groups[d["group"]].add_argument(
            field_flag(name), dest=f"cfg_{name}", default=None, metavar="VALUE",
            help=f"{d['doc']} (default: {shown}; accepted: {d['accepted']}{traced})".replace(
                "%", "%%"))
    for old in RENAMED_FIELDS:  # earlier spellings: translated with a notice
        tr.add_argument(field_flag(old), dest=f"cfg_{old}", default=None,
                        help=argparse.SUPPRESS)


def _add_evaluate_parser(sub: Any) -> None:
    ev = sub.add_parser(
        "evaluate", help="evaluate a saved policy", allow_abbrev=False,
        description="Run deterministic episodes with the policy of a checkpoint and print the "
                    "mean and standard deviation of their returns.")
    ev.add_argument("--checkpoint", required=True, metavar="DIR",
                    help="a checkpoint directory, or a run directory (its latest checkpoint, "
                         "or the best with --select best)")
    ev.add_argument("--select", default="latest", choices=("latest", "best"),
                    help="which checkpoint of a run directory (default: latest)")
    ev.add_argument("--episodes", default=None, metavar="N",
                    help="episodes per seed (default: the run's --eval-episodes)")
    ev.add_argument("--env", default=None, metavar="ENV_ID",
                    help="env to evaluate on (default: the run's): a gymnasium id, or a JAX "
                         "env spec such as playground:TASK")
    ev.add_argument("--seed", default=None, metavar="S",
                    help="seed of the first episode (default: the run's evaluation seed)")
    ev.add_argument("--video", default=None, metavar="DIR",
                    help="record every episode as a video in DIR "
                         "(pip install 'ddpg-jax[video]')")


def _add_plot_parser(sub: Any) -> None:
    pl = sub.add_parser(
        "plot", help="plot learning curves of runs", allow_abbrev=False,
        description="Draw evaluation return against environment steps for one or more run "
                    "directories; runs with the same env and config (seed aside) are shown as "
                    "the mean over seeds with a min-max band.")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("--out", default="curves.png", metavar="FILE",
                    help="image file to write (default: curves.png)")
    pl.add_argument("--title", default=None, help="figure title")


def _add_export_parser(sub: Any) -> None:
    ex = sub.add_parser(
        "export", help="export a saved policy as a jax.export file", allow_abbrev=False,
        description="Serialise the deterministic policy of a checkpoint (observation "
                    "normalisation and action bounds inside) with jax.export, for CPU and CUDA "
                    "and any batch size, to FILE, with its description in FILE.json. Load it "
                    "with ddpg_jax.load_policy(FILE), which needs neither gymnasium nor the env.")
    ex.add_argument("--checkpoint", required=True, metavar="DIR",
                    help="a checkpoint directory, or a run directory (its latest checkpoint, "
                         "or the best with --select best)")
    ex.add_argument("--out", required=True, metavar="FILE",
                    help="file to write (and FILE.json beside it); refused if either exists "
                         "unless --force")
    ex.add_argument("--select", default="latest", choices=("latest", "best"),
                    help="which checkpoint of a run directory (default: latest)")
    ex.add_argument("--seed-index", default=None, metavar="I",
                    help="which seed of a multi-seed (jax backend) checkpoint (default 0)")
    ex.add_argument("--force", action="store_true",
                    help="replace an existing FILE and FILE.json")


def version_line() -> str:
    """``ddpg-jax X.Y.Z (jax A.B.C, flax D.E.F)``."""
    import flax
    import jax

    from ddpg_jax.version import __version__

    return f"ddpg-jax {__version__} (jax {jax.__version__}, flax {flax.__version__})"


def _config_from_args(args: argparse.Namespace, file: ConfigFile | None = None,
                      preset_name: str | None = None) -> DDPGConfig:
    """The preset, under the file's fields, under the flags' fields; validated."""
    flags = flag_fields(args)
    preset_name = preset_name or args.preset or "default"
    if file is None:
        return preset(preset_name, **flags).validate()
    for name, value in flags.items():  # a bad flag is named as a flag, not as the file's
        check_field(name, value)
    try:
        return preset(preset_name, **{**file.fields, **flags}).validate()
    except ConfigError as e:
        where = f"{file.path} with the command-line flags" if flags else file.path
        raise ConfigError(f"--config {where}: {e}") from None


def _wandb_project(args: argparse.Namespace) -> str | None:
    if args.wandb is None:
        return None
    if not args.wandb.strip():
        raise UsageError("--wandb needs a project name; accepted: --wandb PROJECT.")
    if not wandb_available():
        raise MissingExtraError(f"--wandb {args.wandb} needs the wandb package, which is not "
                                f"installed: {WANDB_HINT}. Nothing was started.")
    return args.wandb


def _unknown_args_error(unknown: list[str]) -> UsageError:
    flags = [a for a in unknown if a.startswith("-")]
    if not flags:
        return UsageError(f"unexpected argument(s) {' '.join(unknown)}; every value must follow "
                          "its --field-name.")
    name = flags[0].lstrip("-").replace("-", "_").split("=")[0]
    known = [*FIELD_NAMES, *TRAIN_OPTIONS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {field_flag(close[0])}?" if close else ""
    return UsageError(
        f"unknown option {flags[0]!r}.{hint} Accepted: "
        f"{', '.join(field_flag(n) for n in TRAIN_OPTIONS)} and the "
        f"config fields {', '.join(field_flag(n) for n in FIELD_NAMES)}."
    )


TRAIN_OPTIONS = ("env", "preset", "out", "quiet", "backend", "num_seeds", "config", "sweep",
                 "resume", "checkpoint_every", "keep_checkpoints", "no_buffer_in_checkpoint",
                 "tensorboard", "compile_cache", "wandb")


def _num_seeds(text: str | None, backend: str) -> int:
    if text is None:
        return 1
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--num-seeds {text!r} is not valid; accepted: an integer >= 1.")
    if n > 1 and backend != "jax":
        raise UsageError(f"--num-seeds {n} needs --backend jax; the gymnasium backend trains one "
                         "seed per process.")
    return n


def _int_option(flag: str, text: str | None, minimum: int) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"{flag} {text!r} is not valid; accepted: an integer >= {minimum}.")
    return value


def _run_options(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> RunOptions:
    """Run-management options from the command line, over a resumed run's saved ones."""
    base = RunOptions.from_dict(saved or {})
    every = _int_option("--checkpoint-every", args.checkpoint_every, 0)
    keep = _int_option("--keep-checkpoints", args.keep_checkpoints, 1)
    options = dataclasses.replace(
        base,
        checkpoint_every=base.checkpoint_every if every is None else every,
        keep_checkpoints=base.keep_checkpoints if keep is None else keep,
        buffer_in_checkpoint=base.buffer_in_checkpoint and not args.no_buffer_in_checkpoint,
        tensorboard=base.tensorboard or args.tensorboard,
        progress=not args.quiet,
        # Where this machine keeps compiled programs: not saved with the run, never resumed.
        compile_cache=args.compile_cache,
    )
    try:
        options.validate()
    except RunOptionsError as e:
        raise UsageError(str(e)) from None
    if options.tensorboard and not tensorboard_available():
        raise UsageError(f"--tensorboard needs the tensorboard package: {TENSORBOARD_HINT}.")
    return options


@dataclasses.dataclass
class _RunPlan:
    """Everything a training command has checked before it creates or changes files."""

    out: Path
    env_id: str
    preset: str
    backend: str
    num_seeds: int
    config: DDPGConfig
    options: RunOptions
    resume: Checkpoint | None = None
    sweep: dict[str, list[float]] | None = None  # traced field -> values (a grid)
    wandb: str | None = None  # Weights & Biases project


def _new_plan(args: argparse.Namespace) -> _RunPlan:
    file = load_config_file(args.config) if args.config is not None else None
    env_id = args.env if args.env is not None else (file.env_id if file else None)
    if env_id is None:
        raise UsageError("train needs --env ENV_ID (or --resume DIR to continue a run, or "
                         "--config FILE with an env_id).")
    backend = args.backend or (file.backend if file else None) or "gymnasium"
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r} is not known; accepted: "
                         f"{' | '.join(BACKENDS)}.")
    if args.num_seeds is None and file is not None and file.num_seeds is not None:
        num_seeds = file.num_seeds
        if num_seeds > 1 and backend != "jax":
            raise UsageError(f"--config {file.path}: num_seeds = {num_seeds} needs the jax "
                             f"backend, and the backend is {backend}; the gymnasium backend "
                             "trains one seed per process.")
    else:
        num_seeds = _num_seeds(args.num_seeds, backend)
    preset_name = args.preset or (file.preset if file else None) or "default"
    if (file is not None and file.run_file and args.preset is not None
            and args.preset != (file.preset or "default")):
        raise UsageError(
            f"--preset {args.preset} cannot apply to --config {file.path}: a run's config.json "
            f"lists every field (that run started from preset {file.preset or 'default'}), so "
            "another preset would change only the name. Accepted: the fields to change as "
            "flags, or a file with only the fields you mean to set.")
    config = _config_from_args(args, file, preset_name)
    grid = sweep_grid(args, file, backend, config)
    options = _run_options(args, file.run_options if file else None)
    _check_env(backend, env_id, config)
    out = prepare_out_dir(args.out, env_id, config, preset_name)
    return _RunPlan(out, env_id, preset_name, backend, num_seeds, config, options, sweep=grid)


def _check_env(backend: str, env_id: str, config: DDPGConfig) -> None:
    """Environment and loop-length checks, before any directory is made or anything is traced."""
    if backend == "jax":
        from ddpg_jax.drivers.dispatch import jax_env
        from ddpg_jax.envs.core import env_spec

        env, params, _ = jax_env(env_id, None)
        env_spec(env, params)
    else:
        from ddpg_jax.envs.gymnasium_check import check_env, env_factory

        check_env(env_factory(env_id), repr(env_id))


def _resume_plan(args: argparse.Namespace) -> _RunPlan:
    run_dir, ckpt_path = locate_resume(args.resume)
    if args.out is not None:
        raise UsageError(f"--out cannot be combined with --resume: the resumed run continues in "
                         f"its own directory, {run_dir}.")
    saved = read_saved_run(run_dir)
    conflicts, total = _resume_conflicts(args, saved)
    if conflicts:
        raise UsageError(
            f"--resume continues the run in {run_dir} with its saved settings, and these options "
            f"differ from them: {'; '.join(conflicts)}. Accepted with --resume: the run's own "
            "values, --total-steps to extend the run, and the run-management options.")
    config = saved.config.replace(total_steps=total).validate()
    options = _run_options(args, saved.run_options)
    checkpoint = _resume_checkpoint(run_dir, ckpt_path, saved, config)
    if config.total_steps <= checkpoint.step:
        raise UsageError(
            f"the run in {run_dir} already reached {checkpoint.step} environment steps "
            f"(total_steps {config.total_steps}); to extend it pass --total-steps N with "
            f"N > {checkpoint.step}.")
    _check_env(saved.backend, saved.env_id, config)
    return _RunPlan(run_dir, saved.env_id, saved.preset, saved.backend, saved.num_seeds, config,
                    options, checkpoint)


def _resume_conflicts(args: argparse.Namespace, saved: SavedRun) -> tuple[list[str], int]:
    """The options that differ from the saved run's settings, and the new total_steps."""
    conflicts = []
    if args.env is not None and args.env != saved.env_id:
        conflicts.append(f"--env {args.env} (the run's: {saved.env_id})")
    if args.backend is not None and args.backend != saved.backend:
        conflicts.append(f"--backend {args.backend} (the run's: {saved.backend})")
    if args.preset is not None and args.preset != saved.preset:
        conflicts.append(f"--preset {args.preset} (the run's: {saved.preset})")
    if args.num_seeds is not None and _num_seeds(args.num_seeds, saved.backend) != saved.num_seeds:
        conflicts.append(f"--num-seeds {args.num_seeds} (the run's: {saved.num_seeds})")
    base, total = saved.config, saved.config.total_steps
    for name in (*FIELD_NAMES, *RENAMED_FIELDS):
        text = getattr(args, f"cfg_{name}")
        if text is None:
            continue
        value = parse_field(name, text)
        if name in RENAMED_FIELDS:
            new = RENAMED_FIELDS[name]
            if base.replace(**{name: value}).updates_per_env_step != base.updates_per_env_step:
                conflicts.append(f"{field_flag(name)} {text} (the run's: {new} "
                                 f"{getattr(base, new)})")
        elif name == "total_steps":
            total = value
        elif value != getattr(base, name):
            conflicts.append(f"{field_flag(name)} {text} (the run's: {getattr(base, name)})")
    return conflicts, total


def _resume_checkpoint(run_dir: Path, ckpt_path: Path | None, saved: SavedRun,
                       config: DDPGConfig) -> Checkpoint:
    """The checkpoint to resume from (the run's latest unless given), checked against the run."""
    from ddpg_jax.checkpoints.format import checkpoint_dir, latest, list_checkpoints

    ckpt_path = ckpt_path or latest(checkpoint_dir(run_dir))
    if ckpt_path is None:
        raise UsageError(f"run directory {run_dir} has no checkpoint to resume from.")
    backend, total = saved.backend, config.total_steps
    try:
        checkpoint = open_checkpoint(ckpt_path)
        open_for_resume(checkpoint, backend=backend, env_id=saved.env_id,
                        num_seeds=saved.num_seeds if backend == "jax" else None,
                        config=config.replace(total_steps=max(total, checkpoint.step + 1)))
    except (CheckpointError, ConfigError, KeyError, TypeError) as e:
        others = [p for _, p in list_checkpoints(checkpoint_dir(run_dir)) if p != Path(ckpt_path)]
        hint = (f" The other checkpoints are left as they were; to resume from the newest "
                f"earlier one, pass --resume {others[-1]}." if others else "")
        message = str(e) if not isinstance(e, (KeyError, TypeError)) else (
            f"checkpoint {ckpt_path} has unreadable metadata ({e}).")
        raise CheckpointError(f"{message}{hint}") from None
    return checkpoint


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume is not None:
        if args.config is not None:
            raise UsageError(f"--config cannot be combined with --resume: the resumed run's "
                             f"settings come from {args.resume}. To train its settings anew, "
                             f"use --config {args.resume}/config.json --out NEW_DIR.")
        if args.sweep:
            raise UsageError("--sweep cannot be combined with --resume: sweeps are not "
                             "resumable (one compiled program, no checkpoints).")
    wandb = _wandb_project(args)
    plan = _resume_plan(args) if args.resume is not None else _new_plan(args)
    plan.wandb = wandb
    return _execute(plan, args.quiet)


def _open_wandb(plan: _RunPlan, info: dict[str, Any]):
    """Creates the run directory and opens the wandb run (if asked); if wandb cannot start, a
    new run directory is removed again."""
    from ddpg_jax.records.writers import WandbLog

    out = plan.out
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if plan.wandb is None:
        return None
    try:
        return WandbLog(plan.wandb, out, out.name, info)
    except LoggerError:
        if plan.resume is None:  # the directory was new or empty: leave it so
            if created:
                shutil.rmtree(out, ignore_errors=True)
            else:
                for child in out.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def _execute(plan: _RunPlan, quiet: bool) -> int:
    """Runs a checked plan: writes config.json, trains with wandb (if asked) and signals.

    The metric files, TensorBoard events and the progress bar come from ``plan.options``
    through ``ddpg_jax.train``, as for a call from Python.
    """
    from ddpg_jax.records.writers import RunLog, bar_shown

    out, config = plan.out, plan.config
    info: dict[str, Any] = {"env_id": plan.env_id, "preset": plan.preset, "backend": plan.backend,
                            "config": config.to_dict()}
    if plan.backend == "jax":
        info["num_seeds"] = plan.num_seeds
    if plan.sweep is not None:
        info["sweep"] = plan.sweep
    info["run_options"] = {k: v for k, v in plan.options.to_dict().items()
                           if k not in ("progress", "compile_cache")}
    wandb = _open_wandb(plan, info)
    try:
        write_json(out / "config.json", info)
        if plan.sweep is not None:
            tensorboard = RunLog(out, tensorboard=True) if plan.options.tensorboard else None
            try:
                return run_sweep(plan, quiet, tensorboard, wandb)
            finally:
                if tensorboard is not None:
                    tensorboard.close()
        say = None if quiet else print
        if say is not None and plan.resume is not None:
            say(f"resuming {out} from {plan.resume.path.name} ({plan.resume.step} env steps) "
                f"up to {config.total_steps} env steps")
        elif say is not None and bar_shown(plan.options.progress) and plan.backend != "jax":
            # On a terminal, say what the first seconds are spent on (the jax backend says
            # "compiling" below).
            say(f"compiling and warming up ({config.warmup_steps} random steps)...")
        with StopSignals() as signals:
            return _train(plan, say, signals, wandb)
    finally:
        if wandb is not None:
            wandb.close()


def _interrupted(plan: _RunPlan, signals: StopSignals, steps: int, checkpoint: Path | None) -> int:
    name = signal.Signals(signals.signum).name if signals.signum else "a stop request"
    where = (f"checkpoint saved in {checkpoint}" if checkpoint is not None
             else "no checkpoint was written")
    print(f"ddpg-jax: interrupted by {name} at env step {steps}; {where}. Resume with: "
          f"ddpg-jax train --resume {shlex.quote(str(plan.out))}", flush=True)
    return 128 + signals.signum if signals.signum else 1


def _train(plan: _RunPlan, say, signals: StopSignals, wandb) -> int:
    import jax

    from ddpg_jax.drivers.dispatch import train

    config, num_seeds = plan.config, plan.num_seeds
    if say is not None and plan.backend == "jax":
        say(f"compiling {num_seeds} run(s) of {config.total_steps} steps on "
            f"{len(jax.devices())} {jax.devices()[0].platform} device(s)...")
    result = train(config, plan.env_id, backend=plan.backend, num_seeds=num_seeds, log=say,
                   on_evaluation=wandb.evaluation if wandb is not None else None,
                   on_chunk=wandb.chunk if wandb is not None else None, should_stop=signals,
                   run_dir=plan.out, options=plan.options, resume_from=plan.resume,
                   preset=plan.preset)
    if result.interrupted:
        return _interrupted(plan, signals, result.env_steps, result.checkpoint)
    s = {**result.summary, "preset": plan.preset,
         "evaluations": [{k: r[k] for k in ("env_steps", "eval_return_mean", "eval_return_std")}
                         for r in result.evaluations],
         "devices": [str(d) for d in jax.devices()], "versions": versions()}
    write_json(plan.out / "summary.json", s)
    if wandb is not None:
        wandb.summary({k: v for k, v in s.items() if k != "evaluations"})
    per_seed = ", ".join(f"{x:.1f}" for x in s["final_eval_return_per_seed"])
    seeds = (f"{num_seeds} seed(s) from seed {config.seed}" if plan.backend == "jax"
             else f"seed {config.seed}")
    compile_text = (f"compile {s['compile_time_s']:.1f} s, " if plan.backend == "jax" else "")
    print(f"{plan.env_id} {seeds}: final eval return {s['final_eval_return_mean']:.1f} "
          f"+- {s['final_eval_return_std']:.1f} over {s['eval_episodes']} episodes"
          f"{f' (per seed: {per_seed})' if num_seeds > 1 else ''}; {num_seeds} x "
          f"{s['total_steps']} steps in {s['wall_time_s']:.1f} s ({compile_text}"
          f"{s['steps_per_second']:.0f} steps/s); run saved in {plan.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from ddpg_jax.policy.evaluate import (
        VIDEO_HINT,
        evaluate_checkpoint,
        video_available,
    )
    from ddpg_jax.policy.load import load_policy

    episodes = _int_option("--episodes", args.episodes, 1)
    seed = _int_option("--seed", args.seed, 0)
    if args.video is not None and not video_available():
        raise UsageError(f"--video records with gymnasium's RecordVideo, which needs moviepy: "
                         f"{VIDEO_HINT}.")
    policy = load_policy(args.checkpoint, args.env, args.select)
    returns = evaluate_checkpoint(policy, episodes, seed, args.video)
    every = np.concatenate(returns)
    ck = policy.checkpoint
    if len(returns) > 1:
        for i, r in enumerate(returns):
            print(f"  seed {i}: eval return mean {np.mean(r):.2f} std {np.std(r):.2f}")
    print(f"{policy.env_id}, checkpoint {ck.path} ({ck.step} env steps): eval return mean "
          f"{np.mean(every):.2f} std {np.std(every):.2f} over {every.size} episodes")
    if args.video is not None:
        print(f"videos written to {args.video}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from ddpg_jax.records.plot import RunDirError, plot_runs

    try:
        path = plot_runs(args.run_dirs, args.out, args.title)
    except RunDirError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {path} ({len(args.run_dirs)} run director{'y' if len(args.run_dirs) == 1 else 'ies'})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ddpg_jax.policy.export import export_checkpoint

    seed_index = _int_option("--seed-index", args.seed_index, 0)
    out, meta = export_checkpoint(args.checkpoint, args.out, which=args.select,
                                  seed_index=seed_index or 0, force=args.force)
    src = meta["source"]
    print(f"exported the policy of {src['checkpoint']} ({src['step']} env steps, seed "
          f"{src['seed_index']}) for {', '.join(meta['platforms'])} to {out} "
          f"({meta['size']} bytes; description in {out}.json)")
    return 0


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "plot": _cmd_plot,
            "export": _cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    with warnings.catch_warnings():
        warnings.showwarning = _notice
        return _main(argv)


def _notice(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """The library's notices (an earlier setting name translated, ...) as one line on stderr."""
    print(f"ddpg-jax: note: {_one_paragraph(Exception(str(message)))}"
          if issubclass(category, FutureWarning) else
          warnings.formatwarning(message, category, *_, **__).rstrip(), file=sys.stderr)


def _main(argv: Sequence[str] | None) -> int:
    parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    try:
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        if unknown:
            if args.command == "train":
                raise _unknown_args_error(unknown)
            raise UsageError(f"unknown argument(s) {' '.join(unknown)} for {args.command}; see "
                             f"ddpg-jax {args.command} --help.")
        if args.command not in COMMANDS:
            raise UsageError(f"unknown command {args.command!r}")
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, EnvSpecError, CheckpointError, MissingExtraError,
            LoggerError) as e:
        print(f"ddpg-jax: error: {_one_paragraph(e)}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteError as e:
        print(f"ddpg-jax: error: {_one_paragraph(e)}", file=sys.stderr)
        return EXIT_NONFINITE


def _one_paragraph(e: Exception) -> str:
    return " ".join(str(e).split())


def entry_point() -> None:
    sys.exit(main())

"""``train --config FILE``: reading and checking a JSON or YAML settings file.

A file is either a flat mapping of config fields (optionally with the run settings env_id,
preset, backend, num_seeds, sweep and run_options), or a run's own config.json, with every
field under ``config``. Everything is checked before any work starts; a bad file is refused
with a :class:`~ddpg_jax.cli.usage.UsageError` (or a ConfigError for a field), naming the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ddpg_jax.cli.usage import BACKENDS, UsageError
from ddpg_jax.config import (
    FIELD_NAMES,
    PRESETS,
    RENAMED_FIELDS,
    ConfigError,
    check_field,
    field_type,
    parse_field,
)
from ddpg_jax.drivers.run_options import RunOptions, RunOptionsError
from ddpg_jax.records.writers import MissingExtraError

#: Keys of a run's config.json besides the config fields.
RUN_FILE_KEYS = ("env_id", "preset", "backend", "num_seeds", "config", "sweep", "run_options")
#: Keys of ``run_options`` (``progress`` is accepted but not kept).
RUN_OPTION_KEYS = ("checkpoint_every", "keep_checkpoints", "buffer_in_checkpoint", "tensorboard",
                   "progress")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


@dataclasses.dataclass
class ConfigFile:
    """A checked --config file: config fields and run settings, each None when absent."""

    path: str
    run_file: bool  # a run's config.json (every field under "config")
    fields: dict[str, Any]
    env_id: str | None = None
    preset: str | None = None
    backend: str | None = None
    num_seeds: int | None = None
    sweep: dict[str, Any] | None = None
    run_options: dict[str, Any] | None = None


def load_config_file(path: str) -> ConfigFile:
    """Reads and checks a --config file; refuses it (UsageError/ConfigError) before any work."""
    data = _read_mapping(path)
    run_file = "config" in data
    raw = _run_file_fields(path, data) if run_file else _flat_file_fields(path, data)
    file = ConfigFile(path, run_file, {name: _file_field(path, name, value)
                                       for name, value in raw.items()})
    _check_run_settings(path, data, file)
    return file


# ---------------------------------------------------------------------------- reading
def _read_mapping(path: str) -> dict[Any, Any]:
    """The file's contents, parsed by its suffix; refused unless a mapping."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise UsageError(f"--config {path}: unknown file type {suffix or '(no extension)'!r}; "
                         "accepted: a JSON (.json) or YAML (.yaml, .yml) file.")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(f"--config {path} cannot be read ({reason}); accepted: a readable "
                         "JSON or YAML file.") from None
    data = _parse_json(path, text) if suffix == ".json" else _parse_yaml(path, text)
    if not isinstance(data, dict):
        raise UsageError(
            f"--config {path} holds {_kind(data)}; accepted: a mapping of config fields (e.g. "
            '{"actor_lr": 0.001, "hidden_sizes": [64, 64]}) or a run\'s config.json.')
    return data


def _parse_json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise UsageError(f"--config {path} is not valid JSON ({e}).") from None


def _parse_yaml(path: str, text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise MissingExtraError(f"--config {path}: reading YAML needs PyYAML (pip install "
                                "pyyaml); or give a .json file.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"--config {path} is not valid YAML ({e}).") from None


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing",
            bool: "a boolean"}.get(type(value), f"a {type(value).__name__}")


# ---------------------------------------------------------------------------- keys and fields
def _run_file_fields(path: str, data: dict[Any, Any]) -> dict[Any, Any]:
    """A run's config.json: its keys checked; the raw fields under 'config'."""
    for key in data:
        if key not in RUN_FILE_KEYS:
            raise _unknown_key(path, key, RUN_FILE_KEYS,
                               f"those of a run's config.json, {', '.join(RUN_FILE_KEYS)} "
                               "(the config fields go under 'config')")
    raw = data["config"]
    if not isinstance(raw, dict):
        raise UsageError(f"--config {path}: 'config' holds {_kind(raw)}; accepted: a mapping "
                         "of config fields.")
    for key in raw:
        if key not in FIELD_NAMES and key not in RENAMED_FIELDS:
            raise _unknown_key(path, key, FIELD_NAMES,
                               f"under 'config', the config fields {', '.join(FIELD_NAMES)}")
    return raw


def _flat_file_fields(path: str, data: dict[Any, Any]) -> dict[Any, Any]:
    """A flat file: its keys checked; the raw config fields among them."""
    run_keys = [k for k in RUN_FILE_KEYS if k != "config"]
    for key in data:
        if key not in FIELD_NAMES and key not in RENAMED_FIELDS and key not in run_keys:
            raise _unknown_key(path, key, [*FIELD_NAMES, *run_keys],
                               f"the config fields {', '.join(FIELD_NAMES)}; and "
                               f"{', '.join(run_keys)}")
    return {k: v for k, v in data.items() if k in FIELD_NAMES or k in RENAMED_FIELDS}


def _unknown_key(path: str, key: Any, accepted: Sequence[str], what: str) -> UsageError:
    close = difflib.get_close_matches(str(key), accepted, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UsageError(f"--config {path}: unknown key {str(key)!r}.{hint} Accepted keys: {what}.")


def _file_field(path: str, name: str, value: Any) -> Any:
    """A field's value from a file, coerced where unambiguous (YAML's "1e-3" strings, lists)."""
    kind = field_type(name)
    try:
        if isinstance(value, str) and kind is not str:
            value = parse_field(name, value)
        elif kind is tuple and isinstance(value, list):
            value = tuple(value)
        elif kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        check_field(name, value)
    except ConfigError as e:
        raise ConfigError(f"--config {path}: {e}") from None
    return value


# ---------------------------------------------------------------------------- run settings
def _bad(path: str, data: dict[Any, Any], key: str, accepted: str) -> UsageError:
    return UsageError(f"--config {path}: {key} = {data[key]!r} is not valid; accepted: "
                      f"{accepted}.")


def _check_run_settings(path: str, data: dict[Any, Any], file: ConfigFile) -> None:
    """Checks env_id, preset, backend, num_seeds, run_options and sweep into ``file``."""
    if data.get("env_id") is not None:
        if not isinstance(data["env_id"], str) or not data["env_id"]:
            raise _bad(path, data, "env_id", "an environment id (a string, e.g. Pendulum-v1)")
        file.env_id = data["env_id"]
    if data.get("preset") is not None:
        if data["preset"] not in PRESETS:
            raise _bad(path, data, "preset", " | ".join(PRESETS))
        file.preset = data["preset"]
    if data.get("backend") is not None:
        if data["backend"] not in BACKENDS:
            raise _bad(path, data, "backend", " | ".join(BACKENDS))
        file.backend = data["backend"]
    if data.get("num_seeds") is not None:
        n = data["num_seeds"]
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _bad(path, data, "num_seeds", "an integer >= 1")
        file.num_seeds = n
    if data.get("run_options") is not None:
        file.run_options = _run_options_entry(path, data)
    if data.get("sweep") is not None:
        if not isinstance(data["sweep"], dict) or not data["sweep"]:
            raise _bad(path, data, "sweep", "a mapping of traced fields to lists of values, "
                                            'e.g. {"actor_lr": [0.0001, 0.001]}')
        file.sweep = dict(data["sweep"])


def _run_options_entry(path: str, data: dict[Any, Any]) -> dict[str, Any]:
    """The file's checked run_options, without ``progress``."""
    opts = data["run_options"]
    if not isinstance(opts, dict):
        raise _bad(path, data, "run_options", "a mapping of " + ", ".join(RUN_OPTION_KEYS[:-1]))
    for key in opts:
        if key not in RUN_OPTION_KEYS:
            raise _unknown_key(path, key, RUN_OPTION_KEYS,
                               f"under 'run_options', {', '.join(RUN_OPTION_KEYS[:-1])}")
    for key in ("buffer_in_checkpoint", "tensorboard"):
        if key in opts and not isinstance(opts[key], bool):
            raise UsageError(f"--config {path}: run_options.{key} = {opts[key]!r} is not "
                             "valid; accepted: true | false.")
    try:
        RunOptions.from_dict(opts).validate()
    except (RunOptionsError, TypeError) as e:
        raise UsageError(f"--config {path}: run_options: {e}") from None
    return {k: v for k, v in opts.items() if k != "progress"}

"""What the ``ddpg-jax`` command's modules share: its usage error, exit code and flag names."""

from __future__ import annotations

import argparse
from typing import Any

from ddpg_jax.config import FIELD_NAMES, RENAMED_FIELDS, parse_field

#: Exit code of bad command-line input (a usage error, a bad config or env, ...).
EXIT_USAGE = 2
#: Accepted values of ``train --backend``.
BACKENDS = ("gymnasium", "jax")


class UsageError(Exception):
    """Bad command-line input; printed as one paragraph, exit code 2."""


def field_flag(name: str) -> str:
    """The flag of a config field: ``actor_lr`` -> ``--actor-lr``."""
    return "--" + name.replace("_", "-")


def flag_fields(args: argparse.Namespace) -> dict[str, Any]:
    """Config fields given as flags, parsed (not yet range-checked)."""
    return {name: parse_field(name, getattr(args, f"cfg_{name}"))
            for name in (*FIELD_NAMES, *RENAMED_FIELDS) if getattr(args, f"cfg_{name}") is not None}

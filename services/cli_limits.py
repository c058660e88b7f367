"""The per-key limits of `seqserve keys create` and `keys list` (shared/auth/limits.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from seqserve.shared.auth.limits import PRIORITIES, parse_priority, parse_rate
from seqserve.shared.db.models import ApiKey

LIMITS_HEADER = "RATE_LIMIT\tINPUTS_PER_MINUTE\tMAX_PRIORITY"


def add_limit_arguments(create: argparse.ArgumentParser) -> None:
    default = "default: SEQSERVE_RATE_LIMIT_"
    create.add_argument("--rate-limit", metavar="N/s|N/min", help=f"job submissions per window; 0: unlimited ({default}DEFAULT)")
    create.add_argument("--inputs-per-minute", type=int, metavar="N",
                        help=f"inputs per minute over all jobs; 0: unlimited ({default}INPUTS_PER_MINUTE)")
    create.add_argument("--max-priority", metavar="|".join(PRIORITIES),
                        help=f"highest priority the key may submit ({default}MAX_PRIORITY)")


def check_limit_arguments(args: argparse.Namespace) -> None:
    """ValueError naming the option and what it accepts."""
    parsers: list[tuple[str, str | None, Callable[[str], object]]] = [
        ("--rate-limit", args.rate_limit, parse_rate), ("--max-priority", args.max_priority, parse_priority)]
    for option, value, parse in parsers:
        if value is not None:
            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"{option}: {exc}") from exc


def limits_columns(key: ApiKey) -> list[str]:
    """A key's own limits for `keys list`; 'default' where the settings' default applies."""
    own = (key.rate_limit, key.inputs_per_minute, key.max_priority)
    return ["default" if value is None else str(value) for value in own]

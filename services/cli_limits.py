"""The per-key limits of `seqserve keys create`, `keys limits` and `keys list` (shared/auth/limits.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from seqserve.shared.auth.limits import LIMIT_FIELDS, PRIORITIES, parse_priority, parse_rate
from seqserve.shared.db.models import ApiKey

LIMITS_HEADER = "RATE_LIMIT\tINPUTS_PER_MINUTE\tMAX_PRIORITY"


def add_limit_arguments(parser: argparse.ArgumentParser, allow_default: bool = False) -> None:
    """The three limit options; with `allow_default` each also takes 'default' (back to the setting)."""
    default = "default: SEQSERVE_RATE_LIMIT_"
    also = "|default" if allow_default else ""
    parser.add_argument("--rate-limit", metavar=f"N/s|N/min{also}",
                        help=f"job submissions per window; 0: unlimited ({default}DEFAULT)")
    parser.add_argument("--inputs-per-minute", type=str if allow_default else int, metavar=f"N{also}",
                        help=f"inputs per minute over all jobs; 0: unlimited ({default}INPUTS_PER_MINUTE)")
    parser.add_argument("--max-priority", metavar="|".join(PRIORITIES) + also,
                        help=f"highest priority the key may submit ({default}MAX_PRIORITY)")


def limit_changes(args: argparse.Namespace) -> dict[str, object]:
    """The options given to `keys limits`, 'default' as None; ValueError when none is given."""
    changes: dict[str, object] = {field: None if value == "default" else value for field in LIMIT_FIELDS
                                  if (value := getattr(args, field)) is not None}
    if not changes:
        raise ValueError("give at least one of --rate-limit, --inputs-per-minute, --max-priority")
    check_limit_arguments(argparse.Namespace(rate_limit=changes.get("rate_limit"),
                                             max_priority=changes.get("max_priority")))
    if isinstance(inputs := changes.get("inputs_per_minute"), str):
        if not inputs.isdecimal():
            raise ValueError(f"--inputs-per-minute: '{inputs}' is not a whole number or 'default'")
        changes["inputs_per_minute"] = int(inputs)
    return changes


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

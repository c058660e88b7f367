"""`seqserve keys create` with limits and `keys list` showing them (services/cli_limits.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _seqserve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seqserve.services.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_keys_create_stores_limits_and_list_shows_them(db: str, stack_env: dict[str, str]) -> None:
    from seqserve.shared.auth.limits import KeyLimits
    from seqserve.shared.auth.service import verify
    from seqserve.shared.db.session import session_scope

    created = _seqserve(["keys", "create", "--name", "bulk", "--team", "red", "--scopes", "jobs:write",
                         "--rate-limit", "5/s", "--inputs-per-minute", "600", "--max-priority", "normal"], stack_env)
    assert created.returncode == 0, created.stderr
    with session_scope() as session:
        principal = verify(session, created.stdout.splitlines()[-1])
    assert principal is not None and principal.limits == KeyLimits("5/s", 600, "normal")
    plain = _seqserve(["keys", "create", "--name", "plain", "--team", "red", "--scopes", "jobs:read"], stack_env)
    assert plain.returncode == 0, plain.stderr
    listed = _seqserve(["keys", "list"], stack_env).stdout.splitlines()
    assert listed[0].endswith("\tRATE_LIMIT\tINPUTS_PER_MINUTE\tMAX_PRIORITY")
    rows = {line.split("\t")[0]: line.split("\t")[-3:] for line in listed[1:]}
    assert rows["bulk"] == ["5/s", "600", "normal"] and rows["plain"] == ["default", "default", "default"]


@pytest.mark.parametrize(("option", "value", "named"), [
    ("--rate-limit", "5/hour", "--rate-limit"), ("--rate-limit", "0/s", "--rate-limit"),
    ("--max-priority", "urgent", "--max-priority"), ("--inputs-per-minute", "-1", "inputs_per_minute"),
])
def test_keys_create_refuses_a_bad_limit_in_one_line(db: str, stack_env: dict[str, str], option: str, value: str,
                                                     named: str) -> None:
    refused = _seqserve(["keys", "create", "--name", "bad", "--team", "red", "--scopes", "jobs:write", option, value],
                        stack_env)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith(f"seqserve keys create: error: {named}")
    assert _seqserve(["keys", "list"], stack_env).stdout.count("\n") == 2  # the header and the stack's key: none stored

"""The `seqserve` command's contract: subcommands parse, data download verifies files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from seqserve.services.cli import build_parser, main, parse_overrides
from seqserve.shared.config import reset_settings
from tests.conftest import DATA_DIR


@pytest.mark.parametrize(
    "argv",
    [["db", "upgrade"], ["api", "--host", "0.0.0.0", "--port", "8001"], ["worker"], ["trainer"], ["beat"],
     ["up"], ["train", "--task", "tag", "--preset", "full", "--set", "epochs=3"], ["data", "download", "ptb"]],
)
def test_subcommands_parse(argv: list[str]) -> None:
    assert callable(build_parser().parse_args(argv).func)


def test_unknown_task_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--task", "summarize"])


def test_overrides_are_json_or_strings() -> None:
    assert parse_overrides(["epochs=3", "cell=gru", "lr=0.001", "train_file=a/b.tsv"]) == {
        "epochs": 3, "cell": "gru", "lr": 0.001, "train_file": "a/b.tsv"}
    with pytest.raises(SystemExit):
        parse_overrides(["novalue"])


def test_data_download_verifies_present_files(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SEQSERVE_DATA_DIR", str(DATA_DIR))
    reset_settings()
    assert main(["data", "download", "sst2"]) == 0
    assert "6 files verified" in capsys.readouterr().out
    assert main(["data", "download", "nope"]) == 1
    assert "unknown datasets" in capsys.readouterr().err
    reset_settings()


def test_solo_pool_refuses_more_than_one_process() -> None:
    with pytest.raises(SystemExit, match="solo pool runs one job at a time; concurrency 2"):
        main(["worker", "--pool", "solo", "--concurrency", "2"])
    with pytest.raises(SystemExit):  # argparse: not a pool we run
        build_parser().parse_args(["worker", "--pool", "threads"])


@pytest.mark.parametrize(
    ("pair", "key"),
    [("epochs=1000000000000", "epochs"), ("__class__=1", "__class__"), ("epochz=3", "epochz"),
     ('epochs="5"', "epochs"), ("epochs=true", "epochs"), ("cell=transformer", "cell")],
)
def test_train_refuses_a_bad_override_in_one_line_before_any_run(
    pair: str, key: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import seqserve.services.trainer.service as service

    def no_run(*_: object, **__: object) -> None:
        raise AssertionError("a refused override must not create or train a run")

    monkeypatch.setattr(service, "train_and_register", no_run)
    assert main(["train", "--task", "classify", "--set", pair]) == 2  # argparse's usage-error code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seqserve train: error: ") and f"'{key}'" in err


def _seqserve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seqserve.services.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_keys_create_list_revoke_as_commands(db: str, stack_env: dict[str, str]) -> None:
    from seqserve.shared.auth.service import verify
    from seqserve.shared.db.session import session_scope

    created = _seqserve(["keys", "create", "--name", "ci", "--team", "red", "--scopes", "jobs:read,jobs:write",
                         "--expires", "30"], stack_env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.splitlines()[-1]
    assert secret.startswith("sk_") and len(secret) > 40
    with session_scope() as session:
        principal = verify(session, secret)
    assert principal is not None and principal.team == "red" and principal.scopes == {"jobs:read", "jobs:write"}
    assert _seqserve(["keys", "create", "--name", "ci", "--team", "red", "--scopes", "admin"], stack_env).returncode == 2
    bad = _seqserve(["keys", "create", "--name", "x", "--team", "red", "--scopes", "root"], stack_env)
    assert bad.returncode == 2 and "root" in bad.stderr
    listed = _seqserve(["keys", "list"], stack_env)
    assert listed.returncode == 0 and "ci\tred\tjobs:read,jobs:write" in listed.stdout
    assert secret not in listed.stdout and secret[:11] in listed.stdout
    assert _seqserve(["keys", "revoke", "ci"], stack_env).returncode == 0
    with session_scope() as session:
        assert verify(session, secret) is None
    assert _seqserve(["keys", "revoke", "nobody"], stack_env).returncode == 1


def test_keys_limits_changes_only_the_options_given(db: str, stack_env: dict[str, str]) -> None:
    from seqserve.shared.auth import repository as keys_repo
    from seqserve.shared.db.session import session_scope

    created = _seqserve(["keys", "create", "--name", "bulk", "--team", "red", "--scopes", "jobs:write",
                         "--rate-limit", "5/s", "--max-priority", "low"], stack_env)
    assert created.returncode == 0, created.stderr
    changed = _seqserve(["keys", "limits", "bulk", "--inputs-per-minute", "600", "--max-priority", "default"], stack_env)
    assert changed.returncode == 0, changed.stderr
    assert "5/s\t600\tdefault" in changed.stdout
    with session_scope() as session:
        key = keys_repo.by_name(session, "bulk")
        assert key is not None and (key.rate_limit, key.inputs_per_minute, key.max_priority) == ("5/s", 600, None)
    for args, words in ((["bulk"], "at least one"), (["bulk", "--rate-limit", "5/hour"], "--rate-limit"),
                        (["bulk", "--inputs-per-minute", "many"], "--inputs-per-minute"),
                        (["bulk", "--max-priority", "urgent"], "--max-priority"), (["nobody", "--rate-limit", "0"], "nobody")):
        refused = _seqserve(["keys", "limits", *args], stack_env)
        assert refused.returncode == 2 and words in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr

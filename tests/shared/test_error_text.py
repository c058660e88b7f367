"""A failed job's error names what went wrong, never the server's directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.error_text import public_error_text


def test_a_missing_checkpoint_keeps_its_file_name_and_loses_its_directories(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        load_checkpoint(tmp_path / "models" / "v3" / "model.pt", None)
    text = public_error_text(caught.value)
    assert text == "FileNotFoundError: checkpoint not found: model.pt"


@pytest.mark.parametrize(("message", "expected"), [
    ("cannot read /a/b/c.onnx or /d/e.pt", "ValueError: cannot read c.onnx or e.pt"),
    ("ratio 1/2 and a/b/c stay", "ValueError: ratio 1/2 and a/b/c stay"),  # not absolute paths
    ("url http://host/x/y kept? no dirs", "ValueError: url http://host/x/y kept? no dirs"),
])
def test_only_absolute_paths_are_cut(message: str, expected: str) -> None:
    assert public_error_text(ValueError(message)) == expected

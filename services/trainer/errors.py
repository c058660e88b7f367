"""Errors the trainer raises for bad input data."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file is missing, undecodable or malformed; the message names file and line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line

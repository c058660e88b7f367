"""JSON for the database's JSON columns and the batch output files: orjson, with the standard
library for what orjson would get wrong or refuses.

A tag chunk's result (512 sentences, 312 kB of JSON) took 5.3 ms to encode and 18.7 ms to
decode with the standard library, 0.5 and 1.8 ms with orjson (docs/benchmarks/batches.md,
2026-12-07): the corpus worker encodes each chunk's result once, the batch driver decodes it
to append the output files, and the API decodes every job row it reads.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

# orjson reads an integer past 64 bits as a float; such a number has 20 digits or more. A run of
# 19 digits anywhere (in a string too) sends the text to the standard library instead: exact,
# and never the case for the floats results hold (17 significant digits at most). Found by
# mapping every digit to 0 and looking for nineteen 0s, both in C: 0.24 ms for a 322 kB tag
# result, where the regex [0-9]{19} took 2.7-3.6 ms, more than orjson's decode of it (2.75 ms;
# the batch driver decodes every chunk's result, docs/benchmarks/batches.md, 2026-12-08).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def dumps(value: Any) -> str:
    """Compact JSON. What orjson refuses (integers past 64 bits, keys that are not strings, lone
    surrogates) is encoded by the standard library, which raises as it did before for what it
    refuses too. NaN and infinities become null (the standard library wrote NaN, which Postgres's
    jsonb refuses)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def dumps_line(value: Any) -> bytes:
    """One JSON Lines line, UTF-8, non-ASCII kept as is."""
    try:
        return orjson.dumps(value) + b"\n"
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def float32_list(values: np.ndarray) -> list[Any]:
    """A float32 array (any shape) as nested lists of Python floats that print as the shortest
    decimals reading back to the same float32: 0.98765433, where `tolist()`'s widened doubles
    print 0.9876543283462524. The values are the model's, to the bit, and a 512-sentence tag
    result is a quarter less JSON (418 -> 316 kB; each result is encoded, stored, decoded and
    written to output files). orjson's numpy path does the printing in C; NaN and infinities
    become None, as `dumps` writes them."""
    return orjson.loads(orjson.dumps(np.ascontiguousarray(values, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY))


def loads(data: str | bytes) -> Any:
    """The value, as the standard library reads it: orjson, unless the text holds a long digit
    run or something orjson refuses (a lone surrogate's escape, which SQLite's text may hold)."""
    if _has_long_digit_run(data):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # its value, or its own error for text that is not JSON


def _has_long_digit_run(data: str | bytes) -> bool:
    """Whether 19 ASCII digits follow one another somewhere in `data`. Text is looked at as
    UTF-8, where no other character has a byte that is an ASCII digit (surrogatepass: a lone
    surrogate, which SQLite's text may hold, is bytes over 0x7f as well)."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return _LONG_DIGIT_RUN in raw.translate(_DIGITS_TO_ZERO)

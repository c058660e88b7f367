from __future__ import annotations

import pytest

from seqserve.shared.registry.refs import InvalidModelRef, ModelRef, parse_model_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sst2", ModelRef("sst2", "production", None)),
        ("sst2@staging", ModelRef("sst2", "staging", None)),
        ("sst2:7", ModelRef("sst2", None, 7)),
        ("my.model-v2_x:12", ModelRef("my.model-v2_x", None, 12)),
    ],
)
def test_parse_valid_refs(text: str, expected: ModelRef) -> None:
    assert parse_model_ref(text) == expected


@pytest.mark.parametrize("text", ["", "sst2:", "sst2:0", "sst2:x", "sst2@", "a b", "sst2@x:1", "-lead"])
def test_parse_invalid_refs(text: str) -> None:
    with pytest.raises(InvalidModelRef, match="not a model reference"):
        parse_model_ref(text)

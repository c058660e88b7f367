"""shared/json_codec.py: orjson where it reads and writes what the standard library would, the
standard library where it would not."""

from __future__ import annotations

import json

import pytest
import torch

from seqserve.shared import json_codec


def test_a_tag_result_round_trips_as_the_standard_library_reads_it() -> None:
    result = [{"tokens": ["Zaman", ":", "naïve", "日本"], "tags": ["PROPN", "PUNCT", "ADJ", "PROPN"],
               "probabilities": [0.9987654328346252, 1e-05, 0.5, 0.30000001192092896]}]
    text = json_codec.dumps(result)
    assert json.loads(text) == result and json_codec.loads(text) == result
    assert json_codec.loads(text.encode()) == result  # psycopg hands the loader bytes
    line = json_codec.dumps_line({"custom_id": "é", "result": result})
    assert line.endswith(b"\n") and "é".encode() in line and json.loads(line) == {"custom_id": "é", "result": result}


def test_integers_past_64_bits_stay_exact_both_ways() -> None:
    big = {"seed": 2**70, "neg": -(2**65), "fits": 2**63 - 1}
    text = json_codec.dumps(big)  # orjson refuses these: the standard library writes them
    assert json_codec.loads(text) == big and json_codec.loads(text.encode()) == big
    assert isinstance(json_codec.loads(text)["seed"], int)  # orjson alone would read 1.18e21
    assert json_codec.loads('{"id": "12345678901234567890123"}') == {"id": "12345678901234567890123"}


def test_what_neither_codec_takes_raises_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate cannot be UTF-8, in a line as before
        json_codec.dumps_line({"custom_id": "\ud800"})
    assert json_codec.dumps({1: "a"}) == '{"1":"a"}'  # non-str keys: the standard library's way
    assert json_codec.dumps([float("nan"), float("inf")]) == "[null,null]"  # jsonb refuses NaN
    assert json_codec.loads('["\\ud800"]') == ["\ud800"]  # orjson refuses the escape: read as before
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads("{not json")


def test_float32_values_print_shortest_and_read_back_to_the_same_bits() -> None:
    values = torch.softmax(torch.randn(64, 17, generator=torch.Generator().manual_seed(3)), dim=-1)
    got = json_codec.float32_list(values.numpy())
    assert torch.equal(torch.tensor(got, dtype=torch.float32), values)  # the model's values, to the bit
    widened = json_codec.dumps(values.tolist())
    assert len(json_codec.dumps(got)) < 0.7 * len(widened)
    assert json_codec.float32_list(values[:, :0].numpy()) == [[] for _ in range(64)]  # an empty sentence's row
    assert json_codec.float32_list(values.T.numpy())[0][:2] == got[0][:1] + got[1][:1]  # a strided view
    assert json_codec.float32_list(torch.tensor([float("nan"), float("inf")]).numpy()) == [None, None]


@pytest.mark.parametrize(("text", "long"), [
    ("1234567890123456789", True), ("x" + "9" * 19 + "x", True), ('{"a": 123456789012345678}', False),
    ("0.123456789012345678", False), ("1,2345678901234567890", True), ("1,234567890123456789", False),
    ("\uff11" * 19, False),  # fullwidth digits are not ASCII digits, as for [0-9] before
    ("\ud800" + "1" * 19, True), ("\ud800" + "1" * 18, False), ("", False),
])
def test_a_run_of_19_ascii_digits_is_found_wherever_it_is(text: str, long: bool) -> None:
    assert json_codec._has_long_digit_run(text) is long
    assert json_codec._has_long_digit_run(text.encode("utf-8", "surrogatepass")) is long

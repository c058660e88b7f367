"""Corpus formats: JSONL, CoNLL-U and plain text read one input at a time, with line numbers,
and CoNLL-U written back (the real UD EWT dev file round-trips byte for byte)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from seqserve.shared.batches.formats import Item, Limits, Malformed, Position, conllu_sentence, read

LIMITS = Limits(max_input_chars=2000, tokens_allowed=True)


def _read(content: bytes, file_format: str, limits: Limits = LIMITS, start: Position | None = None) -> list:
    return list(read(io.BytesIO(content), file_format, limits, start))


def test_ewt_dev_round_trips_through_conllu_byte_for_byte(data_dir: Path) -> None:
    original = gzip.decompress((data_dir / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz").read_bytes())
    items = _read(original, "conllu")
    assert all(isinstance(item, Item) for item in items) and len(items) > 2000
    rebuilt = []
    for item in items:
        # The sentence's own UPOS as the "result": the output must then be the input itself.
        upos = [line.split("\t")[3] for line in item.block if line.split("\t")[0].isdigit()]
        assert len(upos) == len(item.input)
        rebuilt.append(conllu_sentence(item, {"tokens": item.input, "tags": upos}))
    assert "".join(rebuilt).encode() == original
    assert items[0].custom_id.startswith("weblog-")  # its sent_id
    # Multiword token lines (359) and empty nodes (4) are in the blocks, not among the inputs.
    assert sum(1 for item in items for line in item.block
               if not line.startswith("#") and "-" in line.split("\t")[0]) == 359


def test_conllu_fills_upos_and_keeps_multiword_tokens_empty_nodes_and_misc() -> None:
    sentence = ("# sent_id = s1\n# text = I can't go\n1\tI\tI\t_\t_\t_\t0\troot\t_\t_\n"
                "2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\n2\tca\tcan\t_\t_\t_\t_\t_\t_\tSpaceAfter=No\n"
                "3\tn't\tnot\t_\t_\t_\t_\t_\t_\t_\n3.1\tgo\t_\t_\t_\t_\t_\t_\t_\t_\n4\tgo\tgo\t_\t_\t_\t_\t_\t_\t_\n\n")
    (item,) = _read(sentence.encode(), "conllu")
    assert item.input == ["I", "ca", "n't", "go"] and item.custom_id == "s1"
    out = conllu_sentence(item, {"tokens": item.input, "tags": ["PRON", "AUX", "PART", "VERB"]})
    expected = (sentence.replace("1\tI\tI\t_", "1\tI\tI\tPRON").replace("2\tca\tcan\t_", "2\tca\tcan\tAUX")
                .replace("3\tn't\tnot\t_", "3\tn't\tnot\tPART").replace("4\tgo\tgo\t_", "4\tgo\tgo\tVERB"))
    assert out == expected


def test_conllu_malformed_sentences_name_their_line_and_others_go_on() -> None:
    content = b"1\tA\t_\t_\t_\t_\t_\t_\t_\t_\n\n1\tB\t_\t_\n\n# only a comment\n\nx\tC\t_\t_\t_\t_\t_\t_\t_\t_\n\n" \
              b"1\tD\t_\t_\t_\t_\t_\t_\t_\t_\n"
    entries = _read(content, "conllu")
    assert [type(entry).__name__ for entry in entries] == ["Item", "Malformed", "Malformed", "Malformed", "Item"]
    assert [(e.line, e.custom_id) for e in entries if isinstance(e, Malformed)] == [(3, "2"), (5, "3"), (7, "4")]
    assert "10 tab-separated columns" in entries[1].message and "no word lines" in entries[2].message
    assert entries[-1].custom_id == "5" and entries[-1].index == 1  # sentence number; input index


def test_conllu_ids_forms_and_bytes_a_word_line_may_not_hold() -> None:
    word = "{}\t{}\t_\t_\t_\t_\t_\t_\t_\t_\n\n"
    content = b"".join(word.format(*cells).encode() for cells in (
        ("01", "a"), ("\u0661", "b"), ("1", " c"), ("1", "d\x00e"), ("1", "f"))) + b"1\tg\xff\t_\n\n"
    entries = _read(content, "conllu")
    messages = [entry.message for entry in entries if isinstance(entry, Malformed)]
    assert messages == ["ID '01' is not N, N-M or N.M", "ID '\u0661' is not N, N-M or N.M",  # ASCII digits only
                        "FORM is empty or has surrounding whitespace",
                        "text must not contain a NUL character (at position 1)", "line is not UTF-8"]
    assert [entry.input for entry in entries if isinstance(entry, Item)] == [["f"]]
    too_long = _read(word.format("1", "x" * 30).encode() + word.format("1", "y").encode(), "conllu", Limits(20, True))
    assert isinstance(too_long[0], Malformed) and "30 characters; at most 20" in too_long[0].message
    assert isinstance(too_long[1], Item) and too_long[1].index == 0


def test_conllu_read_on_from_a_position_gives_the_rest_as_read_from_the_start(data_dir: Path) -> None:
    # Blank lines of spaces and CRLF line ends between sentences: the driver resumes reading
    # mid-file at every step, and each entry must keep its index, line, offset and number.
    original = gzip.decompress((data_dir / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz").read_bytes())
    sentences = original.split(b"\n\n")
    head, tail = b"\n\n".join(sentences[:30]) + b"\n\n", b"\r\n \t\r\n".join(sentences[30:60]) + b"\n\n"
    content = head + b"1\tbad\n\n" + tail
    entries = _read(content, "conllu")
    assert sum(isinstance(entry, Malformed) for entry in entries) == 1
    items = [entry for entry in entries if isinstance(entry, Item)]
    for item in (items[3], items[len(items) // 2], items[-1]):
        rest = [entry for entry in _read(content, "conllu", start=item.position) if isinstance(entry, Item)]
        assert rest == items[item.index:]
        assert content[item.offset:].startswith(item.block[0].encode())


def test_jsonl_lines_with_their_numbers_and_resuming_from_a_position() -> None:
    content = (b'{"custom_id": "a", "input": "hello"}\n\n{"custom_id": "b", "input": ["x", "y"]}\n'
               b'{"custom_id": "c", "input": "fine", "extra": 1}\n[1]\n{"custom_id": "d", "input": "\\u0000"}\n'
               b'{"custom_id": "e", "input": "last"}\n')
    entries = _read(content, "jsonl")
    assert [(type(e).__name__, e.line) for e in entries] == [
        ("Item", 1), ("Item", 3), ("Malformed", 4), ("Malformed", 5), ("Malformed", 6), ("Item", 7)]
    assert entries[1].input == ["x", "y"] and entries[5].index == 2
    assert "unknown keys ['extra']" in entries[2].message and entries[2].custom_id == "c"
    assert "NUL" in entries[4].message
    resumed = _read(content, "jsonl", start=entries[5].position)
    assert resumed == [entries[5]]


def test_tokens_are_only_for_tag_and_inputs_have_bounds() -> None:
    untokenized = Limits(max_input_chars=10, tokens_allowed=False)
    entries = _read(b'{"custom_id": "a", "input": ["x"]}\n{"custom_id": "b", "input": "' + b"w" * 11 + b'"}\n',
                    "jsonl", untokenized)
    assert "list of tokens is for tag" in entries[0].message and "at most 10" in entries[1].message
    assert "custom_id" in _read(b'{"custom_id": 5, "input": "x"}\n', "jsonl")[0].message
    assert "surrounding whitespace" in _read(b'{"custom_id": "a", "input": [" x"]}\n', "jsonl")[0].message


def test_text_lines_are_inputs_named_by_line_number() -> None:
    entries = _read(b"first\n\n  \nbad \xff byte\r\nlast", "text")
    assert [(type(e).__name__, e.custom_id) for e in entries] == [("Item", "1"), ("Malformed", "4"), ("Item", "5")]
    assert entries[2].input == "last" and entries[1].message == "line is not UTF-8"


@pytest.mark.parametrize("file_format", ["jsonl", "text", "conllu"])
def test_empty_files_hold_no_inputs(file_format: str) -> None:
    assert _read(b"", file_format) == []

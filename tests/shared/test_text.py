from __future__ import annotations

from pathlib import Path

import pytest

from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import PAD, UNK, Vocab


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("It's great!", "it 's great !"),
        ("I can't believe it isn't butter.", "i ca n't believe it is n't butter ."),
        ('"Wow," she said -- it cost $1,000.', "`` wow , '' she said -- it cost $ 1,000 ."),
        ("Mr. Smith's film (2002) was... meh", "mr. smith 's film ( 2002 ) was ... meh"),
        ("Great movie. Loved it.", "great movie . loved it ."),
        ("The players' union, the '70s", "the players ' union , the '70s"),
        ("\u201cFine\u201d \u2014 really\u2026 you\u2019re sure?", "`` fine '' -- really ... you 're sure ?"),
        ("  ", ""),
    ],
)
def test_tokenize_matches_sst_style(raw: str, expected: str) -> None:
    assert tokenize(raw) == expected.split()


def test_tokenize_maps_ptb_bracket_words() -> None:
    assert tokenize("a -lrb- small -rrb- film") == ["a", "(", "small", ")", "film"]


def test_tokenize_is_idempotent_on_sst_text(data_dir: Path) -> None:
    # Training text goes through the same function as user text, so it must survive unchanged.
    rows = (data_dir / "sst2" / "glue" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [row.split("\t")[0] for row in rows]
    unchanged = sum(tokenize(s) == s.split() for s in sentences)
    assert unchanged / len(sentences) >= 0.99


def test_vocab_orders_by_frequency_then_token() -> None:
    vocab = Vocab.build([["b", "a", "c"], ["a", "c"], ["a"]])
    assert vocab.to_list() == [PAD, UNK, "a", "c", "b"]
    assert vocab.encode(["a", "zzz", "b"]) == [2, 1, 4]
    assert len(vocab) == 5


def test_vocab_min_freq_and_max_size() -> None:
    lists = [["x", "x", "x", "y", "y", "z"]]
    assert Vocab.build(lists, min_freq=2).to_list() == [PAD, UNK, "x", "y"]
    assert Vocab.build(lists, max_size=3).to_list() == [PAD, UNK, "x"]


def test_vocab_round_trips_through_list() -> None:
    vocab = Vocab.build([["hello", "world", "hello"]])
    assert Vocab.from_list(vocab.to_list()) == vocab
    assert vocab.pad_id == 0 and vocab.unk_id == 1


def test_vocab_rejects_lists_without_specials() -> None:
    with pytest.raises(ValueError):
        Vocab.from_list(["a", "b"])


def test_cached_word_splits_never_leak_between_calls() -> None:
    first = tokenize("It's a film, isn't it?")
    first.append("mutated")
    assert tokenize("It's a film, isn't it?") == ["it", "'s", "a", "film", ",", "is", "n't", "it", "?"]
    # The same word splits by each call's own settings.
    assert tokenize("'tis 'great'", ptb_quotes=False) == ["'tis", "'", "great", "'"]
    assert tokenize("'tis 'great'") == ["'tis", "`", "great", "'"]


def test_long_words_split_the_same_without_the_cache() -> None:
    word = "x" * 60 + "n't"  # longer than the cached words
    assert tokenize(f"{word} {word}.") == ["x" * 60, "n't", "x" * 60, "n't", "."]

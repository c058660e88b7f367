from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.tagger import (
    SequenceTagger,
    TaggerConfig,
    TokenEncoder,
    pad_characters,
    tagging_loss,
    token_mask,
)
from seqserve.shared.text.vocab import Vocab

VOCAB, CHARS, TAGS = 30, 12, 5


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """words [4, 7], chars [4, 7, 6], lengths [4], tags [4, 7] with ragged words and sentences."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [7, 3, 1, 5]
    words = [torch.randint(2, VOCAB, (n,), generator=gen).tolist() for n in lengths]
    chars = [
        [
            torch.randint(
                2, CHARS, (int(torch.randint(1, 7, (1,), generator=gen)),), generator=gen
            ).tolist()
            for _ in range(n)
        ]
        for n in lengths
    ]
    tags = [torch.randint(0, TAGS, (n,), generator=gen).tolist() for n in lengths]
    word_ids, length_tensor = pad_sequences(words, pad_id=0)
    tag_ids, _ = pad_sequences(tags, pad_id=0)
    return word_ids, pad_characters(chars, pad_id=0), length_tensor, tag_ids


def _model(**kwargs: object) -> SequenceTagger:
    torch.manual_seed(0)
    fields = {
        "vocab_size": VOCAB,
        "num_tags": TAGS,
        "char_vocab_size": CHARS,
        "embedding_dim": 12,
        "char_embedding_dim": 6,
        "char_hidden_size": 5,
        "hidden_size": 10,
        "num_layers": 1,
    } | kwargs
    return SequenceTagger(TaggerConfig(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_layers", "char_hidden_size"), [(1, 5), (2, 0)])
def test_output_shape_for_every_cell(
    cell: str, bidirectional: bool, num_layers: int, char_hidden_size: int
) -> None:
    model = _model(
        cell=cell, bidirectional=bidirectional, num_layers=num_layers, char_hidden_size=char_hidden_size
    ).eval()
    words, chars, lengths, _ = _batch()
    logits = model(words, chars, lengths)
    assert logits.shape == (4, 7, TAGS)
    assert torch.isfinite(logits).all()
    assert (model.chars is None) == (char_hidden_size == 0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_extra_padding_does_not_change_the_loss(cell: str) -> None:
    model = _model(cell=cell).eval()
    words, chars, lengths, tags = _batch()
    loss = tagging_loss(model(words, chars, lengths), tags, lengths)
    # Pad columns appended to words and tags, and to the char dimension as well.
    wide_words = torch.cat([words, torch.zeros(4, 5, dtype=torch.long)], dim=1)
    wide_tags = torch.cat([tags, torch.full((4, 5), 3, dtype=torch.long)], dim=1)
    wide_chars = torch.zeros(4, 12, 9, dtype=torch.long)
    wide_chars[:, :7, :6] = chars
    wide_logits = model(wide_words, wide_chars, lengths)
    assert wide_logits.shape == (4, 12, TAGS)
    assert torch.equal(tagging_loss(wide_logits, wide_tags, lengths), loss)


def test_loss_averages_over_real_tokens_only() -> None:
    logits = torch.zeros(2, 3, TAGS)
    logits[0, 0, 1] = 10.0  # right and confident; everything else uniform
    tags = torch.tensor([[1, 0, 0], [2, 4, 4]])
    lengths = torch.tensor([1, 2])
    expected = (torch.log1p(torch.tensor(4 * torch.e**-10.0)) + 2 * torch.log(torch.tensor(5.0))) / 3
    assert tagging_loss(logits, tags, lengths).item() == pytest.approx(expected.item(), rel=1e-5)
    assert token_mask(lengths, 3).tolist() == [[True, False, False], [True, True, False]]


def test_char_features_tell_unknown_words_apart() -> None:
    words = torch.tensor([[1, 1]])  # both <unk>
    chars = torch.tensor([[[2, 3, 4], [5, 6, 0]]])
    lengths = torch.tensor([2])
    with_chars = _model(bidirectional=False).eval()(words, chars, lengths)
    # Unidirectional and left to right, so position 0 sees only its own word either way.
    swapped = _model(bidirectional=False).eval()(words, chars[:, [1, 0]], lengths)
    assert not torch.allclose(with_chars[0, 0], swapped[0, 0])
    without = _model(bidirectional=False, char_hidden_size=0).eval()
    assert torch.equal(
        without(words, chars, lengths)[0, 0], without(words, chars[:, [1, 0]], lengths)[0, 0]
    )


def test_row_order_does_not_change_logits() -> None:
    model = _model().eval()
    words, chars, lengths, _ = _batch()
    perm = torch.tensor([2, 0, 3, 1])
    expected = model(words, chars, lengths)[perm]
    assert torch.allclose(model(words[perm], chars[perm], lengths[perm]), expected, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_overfits_a_tiny_batch(cell: str) -> None:
    words, chars, lengths, tags = _batch(seed=1)
    model = _model(cell=cell, dropout=0.0, hidden_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(150):
        loss = tagging_loss(model(words, chars, lengths), tags, lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    real = token_mask(lengths, words.size(1))
    assert loss.item() < 0.05
    assert torch.equal(model(words, chars, lengths).argmax(-1)[real], tags[real])


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model(num_layers=2).eval()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "task": "tag",
        "model_config": dataclasses.asdict(model.config),
        "state_dict": model.state_dict(),
    }
    sha256, _ = save_checkpoint(tmp_path / "tagger.pt", payload)
    loaded = load_checkpoint(tmp_path / "tagger.pt", sha256)
    restored = SequenceTagger(TaggerConfig(**loaded["model_config"]))
    restored.load_state_dict(loaded["state_dict"])
    words, chars, lengths, _ = _batch()
    assert torch.equal(restored.eval()(words, chars, lengths), model(words, chars, lengths))


def test_config_is_frozen_and_validated() -> None:
    config = TaggerConfig(vocab_size=10, num_tags=3, char_vocab_size=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 3  # type: ignore[misc]
    assert TaggerConfig(**dataclasses.asdict(config)) == config
    for bad in ({"dropout": 1.0}, {"num_tags": 1}, {"char_hidden_size": -1}, {"char_vocab_size": 2}):
        with pytest.raises(ValueError):
            TaggerConfig(**({"vocab_size": 10, "num_tags": 3, "char_vocab_size": 5} | bad))  # type: ignore[arg-type]
    assert TaggerConfig(vocab_size=10, num_tags=3, char_hidden_size=0).token_feature_size == 100


def test_pad_characters_pads_words_and_sentences() -> None:
    chars = pad_characters([[[5, 6, 7], [8]], [[9, 9]]], pad_id=0)
    assert chars.tolist() == [[[5, 6, 7], [8, 0, 0]], [[9, 9, 0], [0, 0, 0]]]
    with pytest.raises(ValueError):
        pad_characters([[[5], []]], pad_id=0)
    with pytest.raises(ValueError):
        pad_characters([[]], pad_id=0)


def test_token_encoder_lowercases_words_but_not_chars() -> None:
    words = Vocab.build([["the", "cat"]])
    chars = Vocab.build([list("TheCat")])
    encoder = TokenEncoder(words, chars, lowercase_words=True, max_word_chars=4)
    word_ids, char_ids = encoder.encode(["The", "Catalogue"])
    assert word_ids == [words.encode(["the"])[0], words.unk_id]
    assert chars.decode(char_ids[0]) == ["T", "h", "e"]
    assert encoder.clip("Catalogue") == "Caue"  # head and tail survive: case and suffix
    assert len(char_ids[1]) == 4
    assert TokenEncoder.from_payload(encoder.to_payload()) == encoder
    cased = TokenEncoder(words, chars, lowercase_words=False)
    assert cased.encode(["The"])[0] == [words.unk_id]

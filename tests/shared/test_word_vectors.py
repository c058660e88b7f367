"""WordVectors' subword vectors are gensim's, computed with torch alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import FastText
from gensim.models.fasttext import ft_ngram_hashes

from seqserve.shared.nn.word_vectors import WordVectors, WordVectorsConfig, char_ngrams, fnv1a

SENTENCES = [["the", "mice", "ran", "from", "the", "rats"], ["horses", "ran", "über", "the", "hills"]] * 20


@pytest.mark.parametrize("word", ["mice", "über", "naïveté", "a", "unseenword"])
def test_ngram_hashes_match_gensim(word: str) -> None:
    assert [fnv1a(g) % 997 for g in char_ngrams(word, 3, 6)] == list(ft_ngram_hashes(word, 3, 6, 997))


def test_subword_vector_of_an_unseen_word_is_gensims() -> None:
    model = FastText(SENTENCES, vector_size=8, min_count=1, bucket=500, epochs=1, workers=1, seed=1)
    vectors = WordVectors(WordVectorsConfig(vocab_size=2, dim=8, bucket=500))
    with torch.no_grad():
        vectors.ngrams.weight.copy_(torch.from_numpy(model.wv.vectors_ngrams))  # type: ignore[union-attr]
    for word in ("mousetrap", "überall"):
        mine = vectors.subword_vector(word)
        assert mine is not None
        np.testing.assert_allclose(mine.detach().numpy(), model.wv[word], rtol=1e-5, atol=1e-6)


def test_word2vec_tables_have_no_subword_vectors() -> None:
    assert WordVectors(WordVectorsConfig(vocab_size=2, dim=4)).subword_vector("mice") is None


def test_config_refuses_inverted_ngram_range() -> None:
    with pytest.raises(ValueError, match="min_n"):
        WordVectorsConfig(vocab_size=2, dim=4, min_n=5, max_n=3)

"""The params each job kind accepts: validated by the API before anything is stored, and
again (the same models) by the worker's handler template, which runs on defaults filled in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class JobParams(BaseModel):
    # Unknown keys are refused, not ignored: a typo must not silently change nothing. Strict:
    # "5" or true for an integer is a client bug to report, not to coerce.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ClassifyParams(JobParams):
    pass


class TagParams(JobParams):
    pass


class ScoreParams(JobParams):
    pass


class GenerateParams(JobParams):
    """`generate` without params samples up to 30 words at temperature 1.0 from the full
    distribution (no top-k or top-p cut), so each call continues differently; `temperature: 0`
    is greedy and repeatable, and `seed` makes sampling repeatable."""

    max_tokens: int = Field(30, ge=1, le=200, description="Words to generate after the prompt.")
    temperature: float = Field(
        1.0, ge=0.0, le=5.0, description="Softmax temperature; the default 1.0 samples from the model's distribution "
                                         "(another continuation each call unless `seed`); 0 means greedy decoding.")
    top_k: int = Field(0, ge=0, le=1000, description="Sample from the k likeliest words; 0 = off.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass; 1 = off.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Makes sampling repeatable.")
    next_word_top_k: int = Field(0, ge=0, le=100, description="Also return the k likeliest next words.")


class TranslateParams(JobParams):
    """`translate` runs a beam search of 4 by default. The translation is lowercased and
    Moses-tokenized, like the Multi30k text the model learnt from (`ein hund rennt durch das gras .`);
    join it back with a Moses detokenizer (sacremoses: `MosesDetokenizer(lang="de").detokenize(tokens)`)
    and recase it if needed."""

    beam_size: int = Field(4, ge=1, le=16, description="1 means greedy decoding.")
    max_tokens: int = Field(80, ge=1, le=256, description="Longest output, in tokens.")
    length_penalty: float = Field(1.0, ge=0.0, le=2.0, description="Beam scores divide by length**alpha.")


class EmbedParams(JobParams):
    """`embed`: one vector per input. At `level="word"` each input is one word; at "sentence"
    each input is a text, pooled as the mean of its word vectors or, for models with a
    sentence encoder (the classifier's and tagger's BiLSTM), that encoder's features."""

    level: Literal["word", "sentence"] = Field("word", description="Each input is one word, or a sentence.")
    pooling: Literal["mean", "encoder"] = Field(
        "mean", description="Sentence vectors: mean of word vectors, or the model's BiLSTM encoding.")
    normalize: bool = Field(False, description="Scale every vector to unit L2 norm.")


class SimilarParams(JobParams):
    """`similar`: cosine similarity over the model's embedding table. Per `mode`, each input is
    a word (its top-k neighbours), a pair "w1 w2" (their cosine) or a triple "a b c" (the top-k
    neighbours of a - b + c, the three excluded)."""

    mode: Literal["neighbours", "similarity", "analogy"] = Field(
        "neighbours", description="What each input is: a word, a word pair, or an analogy triple a b c.")
    k: int = Field(10, ge=1, le=100, description="Neighbours per input.")
    include_self: bool = Field(False, description="Neighbours: list the query word itself (first, at cosine 1).")

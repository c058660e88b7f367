"""Translation handler: preprocess -> batched beam search -> postprocess over a list of texts."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import torch

from seqserve.services.worker.handlers.base import StagedHandler
from seqserve.shared.jobs.params import TranslateParams
from seqserve.shared.nn.decoding import Hypothesis, beam_search_scored
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.seq2seq import Seq2Seq, Seq2SeqConfig
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab

# The training text escapes these the way the Moses tokenizer does ("man &apos;s").
_MOSES_ESCAPES = str.maketrans(
    {"&": "&amp;", "|": "&#124;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;", "[": "&#91;", "]": "&#93;"}
)
# seqserve.shared.text.tokenize writes double quotes PTB-style and opening single quotes as a backtick.
_PTB_QUOTES = {"``": '"', "''": '"', "`": "'"}


def to_corpus_tokens(text: str) -> list[str]:
    """Raw English -> tokens spelled like Multi30k's lowercased Moses-tokenized source side."""
    tokens: list[str] = []
    for token in tokenize(text):
        if token == "n't" and tokens:
            # PTB splits "isn't" as "is n't"; Moses as "isn 't".
            tokens[-1] += "n"
            token = "'t"
        tokens.append(_PTB_QUOTES.get(token, token))
    return [token.translate(_MOSES_ESCAPES) for token in tokens]


@dataclass(frozen=True)
class _Prepared:
    encoded: list[list[int]]  # source ids per input (empty for an input with no tokens)
    order: list[int]  # input indices with tokens, longest first


class TranslateHandler(StagedHandler):
    task = "translate"
    batch_size = 32  # sentences per beam search; each holds batch_size * beam_size hypotheses

    def __init__(self, model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, device: torch.device) -> None:
        config = model.config
        if (config.src_vocab_size, config.tgt_vocab_size) != (len(src_vocab), len(tgt_vocab)):
            raise ValueError(
                f"model vocab sizes {config.src_vocab_size}/{config.tgt_vocab_size} differ from "
                f"the checkpoint's vocabularies {len(src_vocab)}/{len(tgt_vocab)}"
            )
        self.model = model.to(device).eval()
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.device = device
        # Seconds spent in each stage by the last run(), for the worker to export as metrics.
        self.stage_seconds: dict[str, float] = {}

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], device: torch.device) -> TranslateHandler:
        cls.check_task(payload)
        model = Seq2Seq(Seq2SeqConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        return cls(model, Vocab.from_list(payload["src_vocab"]), Vocab.from_list(payload["tgt_vocab"]), device)

    def run(self, inputs: list[str], params: dict[str, Any], kind: str = "translate") -> list[dict[str, Any]]:
        """Translate every input (batched beam search); results come back in input order."""
        if kind != "translate":
            raise ValueError(f"a translate model cannot serve job kind {kind!r}")
        # The API already validated them; this fills defaults for direct callers and refuses typos.
        settings = TranslateParams.model_validate(params)
        if not inputs:
            return []
        self.stage_seconds = {}
        with self._timed("preprocess"):
            prepared = self.preprocess(inputs)
        with self._timed("infer"):
            hypotheses = self.infer(prepared, settings)
        with self._timed("postprocess"):
            return self.postprocess(hypotheses, len(inputs))

    def preprocess(self, inputs: list[str]) -> _Prepared:
        encoded = [self.src_vocab.encode(to_corpus_tokens(text)) for text in inputs]
        # Longest first, so each batch pads as little as possible.
        order = sorted((i for i in range(len(encoded)) if encoded[i]), key=lambda i: -len(encoded[i]))
        return _Prepared(encoded, order)

    def infer(self, prepared: _Prepared, settings: TranslateParams) -> dict[int, Hypothesis]:
        """Best hypothesis per input index that has tokens."""
        best: dict[int, Hypothesis] = {}
        for start in range(0, len(prepared.order), self.batch_size):
            indices = prepared.order[start : start + self.batch_size]
            src, lengths = pad_sequences([prepared.encoded[i] for i in indices], self.model.config.pad_id)
            hypotheses = beam_search_scored(
                self.model, src.to(self.device), lengths,
                settings.beam_size, settings.max_tokens, settings.length_penalty,
            )
            best.update(zip(indices, hypotheses, strict=True))
        return best

    def postprocess(self, hypotheses: dict[int, Hypothesis], count: int) -> list[dict[str, Any]]:
        results = []
        for index in range(count):
            if index not in hypotheses:  # nothing to translate: empty or whitespace-only text
                results.append({"translation": "", "tokens": [], "score": 0.0})
                continue
            hypothesis = hypotheses[index]
            tokens = [html.unescape(token) for token in self.tgt_vocab.decode(hypothesis.tokens)]
            results.append({"translation": " ".join(tokens), "tokens": tokens, "score": hypothesis.score})
        return results

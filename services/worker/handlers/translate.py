"""Translation handler: preprocess -> batched beam search -> postprocess over a list of texts."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from seqserve.services.worker.handlers.base import StagedHandler, rows_per_pass
from seqserve.services.worker.handlers.vectors import WordTable
from seqserve.shared.config import Settings
from seqserve.shared.jobs.params import TranslateParams
from seqserve.shared.nn.decoding import Hypothesis, beam_search_scored
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.seq2seq import Seq2Seq, Seq2SeqConfig
from seqserve.shared.text.corpus_tokens import to_corpus_tokens
from seqserve.shared.text.vocab import Vocab


@dataclass(frozen=True)
class _Prepared:
    encoded: list[list[int]]  # source ids per input (empty for an input with no tokens)
    order: list[int]  # input indices with tokens, longest first


class TranslateHandler(StagedHandler[TranslateParams, _Prepared, dict[int, Hypothesis]]):
    task = "translate"
    step_events = True  # event_sink gets each decode step

    def __init__(
        self, model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, device: torch.device | str, rows_per_pass: int
    ) -> None:
        config = model.config
        if (config.src_vocab_size, config.tgt_vocab_size) != (len(src_vocab), len(tgt_vocab)):
            raise ValueError(
                f"model vocab sizes {config.src_vocab_size}/{config.tgt_vocab_size} differ from "
                f"the checkpoint's vocabularies {len(src_vocab)}/{len(tgt_vocab)}"
            )
        super().__init__(device)
        self.model = model.to(self.device).eval()
        # What beam search drives: the module, or its ONNX graphs (services/worker/backends.py).
        self.decoder: nn.Module = self.model
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        # Sentences per beam search; each holds rows_per_pass * beam_size hypotheses.
        self.rows_per_pass = rows_per_pass

    @classmethod
    def from_checkpoint(
        cls, payload: dict[str, Any], device: torch.device | str, settings: Settings | None = None
    ) -> TranslateHandler:
        model = cls.load_model(payload, Seq2Seq, Seq2SeqConfig)
        rows = rows_per_pass(cls.task, torch.device(device), settings)
        src_vocab, tgt_vocab = Vocab.from_list(payload["src_vocab"]), Vocab.from_list(payload["tgt_vocab"])
        return cls(model, src_vocab, tgt_vocab, device, rows)

    def word_table(self) -> WordTable:
        """The source side's embedding (the one the `embed` / `similar` kinds of a translator read)."""
        return WordTable(self.src_vocab, self.model.src_embedding.weight.detach(), tokenize=to_corpus_tokens)

    def preprocess(self, inputs: list[str], params: TranslateParams) -> _Prepared:
        encoded = [self.src_vocab.encode(to_corpus_tokens(text)) for text in inputs]
        # Longest first, so each batch pads as little as possible.
        order = sorted((i for i in range(len(encoded)) if encoded[i]), key=lambda i: -len(encoded[i]))
        return _Prepared(encoded, order)

    def infer(self, prepared: _Prepared, params: TranslateParams) -> dict[int, Hypothesis]:
        """Best hypothesis per input index that has tokens."""
        best: dict[int, Hypothesis] = {}
        for start in range(0, len(prepared.order), self.rows_per_pass):
            indices = prepared.order[start : start + self.rows_per_pass]
            src, lengths = pad_sequences([prepared.encoded[i] for i in indices], self.model.config.pad_id)
            hypotheses = beam_search_scored(
                cast(Seq2Seq, self.decoder), src.to(self.device), lengths,
                params.beam_size, params.max_tokens, params.length_penalty,
            )
            best.update(zip(indices, hypotheses, strict=True))
            if self.event_sink is not None:  # each finished chunk's sentences, as they finish
                self.event_sink.sentences({i: self._tokens(h)[1] for i, h in zip(indices, hypotheses, strict=True)})
        return best

    def postprocess(
        self, hypotheses: dict[int, Hypothesis], prepared: _Prepared, params: TranslateParams
    ) -> list[dict[str, Any]]:
        results = []
        for index in range(len(prepared.encoded)):
            if index not in hypotheses:  # nothing to translate: empty or whitespace-only text
                results.append({"translation": "", "tokens": [], "score": 0.0})
                continue
            hypothesis = hypotheses[index]
            tokens, translation = self._tokens(hypothesis)
            results.append({"translation": translation, "tokens": tokens, "score": hypothesis.score})
        return results

    def _tokens(self, hypothesis: Hypothesis) -> tuple[list[str], str]:
        """The hypothesis's target tokens, unescaped, and the translation they spell."""
        tokens = [html.unescape(token) for token in self.tgt_vocab.decode(hypothesis.tokens)]
        return tokens, " ".join(tokens)

"""Language-model handler: kind "generate" continues each prompt, kind "score" rates each text.

Every text is read as a sentence that starts after "<eos>", the boundary the model saw
between sentences in training, so the first word is conditioned on that boundary too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seqserve.services.worker.handlers.base import StagedHandler
from seqserve.services.worker.handlers.vectors import WordTable
from seqserve.services.worker.model_calls import LanguageModelCalls, TorchLanguageModelCalls
from seqserve.shared.config import Settings
from seqserve.shared.jobs.params import GenerateParams, ScoreParams
from seqserve.shared.nn.language_model import EOS, LanguageModelConfig, RNNLanguageModel
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.sampling import sample_next
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab

# PTB writes every number as "N"; user prompts write digits.
_NUMBER = re.compile(r"[+-]?(\d+([.,:/]\d+)*|[.,]\d+)(st|nd|rd|th|s)?")
# Scoring materialises [rows, steps, vocab] logits; this caps one forward pass (fp32 ~64 MiB).
_SCORE_LOGITS_PER_PASS = 1 << 24


@dataclass(frozen=True)
class _Prompts:
    """A generate batch, rows longest first."""

    words: list[list[str]]  # per input: the prompt as vocabulary tokens
    tokens: Tensor  # [B, T] long: <eos> + prompt
    lengths: Tensor  # [B] long, on CPU
    order: list[int]  # order[row] = input index
    generator: torch.Generator | None  # one per job: the same seed and inputs give the same samples


@dataclass(frozen=True)
class _Texts:
    """A score batch, rows longest first: <eos> w_1 .. w_n predicts w_1 .. w_n <eos>."""

    targets: list[list[str]]  # per input: its words + <eos>
    tokens: Tensor  # [B, T] long
    target_ids: Tensor  # [B, T] long, aligned with tokens step by step
    lengths: Tensor  # [B] long, on CPU
    order: list[int]  # order[row] = input index


@dataclass(frozen=True)
class _Continuations:
    first_logits: Tensor  # [B, V] after each prompt (CPU)
    ids: Tensor  # [B, max_tokens] generated (CPU)


_Params = GenerateParams | ScoreParams
_Prepared = _Prompts | _Texts
_Raw = _Continuations | list[list[float]]  # score: per row of the sorted batch, its real steps' logprobs


class LanguageModelHandler(StagedHandler[_Params, _Prepared, _Raw]):
    """Each stage does what the kind asks: params are GenerateParams or ScoreParams."""

    task = "generate"
    step_events = True  # event_sink gets each decode step

    def __init__(self, model: RNNLanguageModel, vocab: Vocab, device: torch.device | str) -> None:
        if model.config.vocab_size != len(vocab):
            raise ValueError(f"model has {model.config.vocab_size} outputs but the vocab {len(vocab)}")
        if EOS not in vocab:
            raise ValueError(f"the vocabulary has no {EOS!r} sentence boundary")
        super().__init__(device)
        self.model = model.to(self.device).eval()
        # The model's call sites, on torch or its ONNX graph (services/worker/backends.py).
        self.calls: LanguageModelCalls = TorchLanguageModelCalls(self.model)
        self.vocab = vocab
        self.eos_id = vocab.encode([EOS])[0]
        self._number_token = "N" if "N" in vocab else None

    @classmethod
    def from_checkpoint(
        cls, payload: dict[str, Any], device: torch.device | str, settings: Settings | None = None
    ) -> LanguageModelHandler:
        """`settings` is accepted for the common interface: generate and score take a batch whole
        (a seeded sample draws for the whole batch at once; scoring bounds its own passes)."""
        model = cls.load_model(payload, RNNLanguageModel, LanguageModelConfig)
        return cls(model, Vocab.from_list(payload["vocab"]), device)

    def preprocess(self, inputs: list[str], params: _Params) -> _Prepared:
        if isinstance(params, ScoreParams):
            return self._texts(inputs)
        return self._prompts(inputs, params)

    def infer(self, prepared: _Prepared, params: _Params) -> _Raw:
        if isinstance(prepared, _Texts):
            return self._logprob_rows(prepared)
        assert isinstance(params, GenerateParams)
        return self._decode(prepared, params)

    def postprocess(self, raw: _Raw, prepared: _Prepared, params: _Params) -> list[dict[str, Any]]:
        if isinstance(prepared, _Texts):
            assert isinstance(raw, list)
            return self._scores(raw, prepared)
        assert isinstance(raw, _Continuations) and isinstance(params, GenerateParams)
        return self._continuations(raw, prepared, params)

    # --- shared preprocessing -------------------------------------------------------------

    def word_table(self) -> WordTable:
        # The input embedding (the output layer's too when the weights are tied).
        return WordTable(self.vocab, self.model.embedding.weight.detach(), tokenize=self.words)

    def words(self, text: str) -> list[str]:
        """The vocabulary tokens `text` is read as.

        Out-of-vocabulary words become <unk>; numbers become "N" and punctuation is dropped
        when the vocabulary has no such token, as in PTB, whose preprocessing did the same.
        """
        words = []
        for token in tokenize(text):
            if token in self.vocab:
                words.append(token)
            elif self._number_token is not None and _NUMBER.fullmatch(token):
                words.append(self._number_token)
            elif any(char.isalnum() for char in token):
                words.append(Vocab.UNK)
        return words

    def _sorted_batch(self, sequences: list[list[int]]) -> tuple[Tensor, Tensor, list[int]]:
        """Rows longest first (less padding): tokens [B, T], lengths [B] (CPU), order[row] = input."""
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        tokens, lengths = pad_sequences([sequences[i] for i in order], self.vocab.pad_id)
        return tokens, lengths, order

    # --- generate -------------------------------------------------------------------------

    def _prompts(self, inputs: list[str], params: GenerateParams) -> _Prompts:
        words = [self.words(text) for text in inputs]
        # Each prompt opens a sentence, so an empty prompt is just the <eos> boundary.
        tokens, lengths, order = self._sorted_batch([[self.eos_id, *self.vocab.encode(p)] for p in words])
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        return _Prompts(words, tokens, lengths, order, generator)

    def _decode(self, prompts: _Prompts, params: GenerateParams) -> _Continuations:
        """Feed the prompts, then extend all rows together one step at a time."""
        logits, state = self.calls.prompt(prompts.tokens.to(self.device), prompts.lengths)  # [B, V]
        first_logits = logits.float().cpu()
        steps = []
        for step in range(params.max_tokens):
            next_ids = sample_next(  # [B]
                logits, params.temperature, params.top_k, params.top_p, generator=prompts.generator
            )
            steps.append(next_ids)
            if self.event_sink is not None:  # rows -> input indices, as decoded
                self.event_sink.tokens(step, dict(zip(prompts.order, self.vocab.decode(next_ids.tolist()), strict=True)))
            if step + 1 < params.max_tokens:
                logits, state = self.calls.step(next_ids, state)  # [B, V]
        return _Continuations(first_logits, torch.stack(steps, dim=1).cpu())

    def _continuations(
        self, generated: _Continuations, prompts: _Prompts, params: GenerateParams
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in prompts.words]
        for row, index in enumerate(prompts.order):
            words = self.vocab.decode(generated.ids[row].tolist())
            result: dict[str, Any] = {
                "prompt_tokens": prompts.words[index], "continuation": _detokenize(words), "tokens": words,
            }
            if params.next_word_top_k > 0:
                result["next_words"] = self._top_words(generated.first_logits[row], params.next_word_top_k)
            results[index] = result
        return results

    def _top_words(self, logits: Tensor, k: int) -> list[dict[str, Any]]:
        probabilities = torch.softmax(logits, dim=-1)
        top = torch.topk(probabilities, min(k, probabilities.numel()))
        words = self.vocab.decode(top.indices.tolist())
        return [{"word": w, "probability": p} for w, p in zip(words, top.values.tolist(), strict=True)]

    # --- score ----------------------------------------------------------------------------

    def _texts(self, inputs: list[str]) -> _Texts:
        targets = [[*self.words(text), EOS] for text in inputs]
        sequences = [[self.eos_id, *self.vocab.encode(words[:-1])] for words in targets]
        tokens, lengths, order = self._sorted_batch(sequences)
        target_ids, _ = pad_sequences([self.vocab.encode(targets[i]) for i in order], self.vocab.pad_id)
        return _Texts(targets, tokens, target_ids, lengths, order)

    def _logprob_rows(self, texts: _Texts) -> list[list[float]]:
        rows: list[list[float]] = []
        for span in self._passes(texts.lengths):
            logprobs = self._logprobs(texts.tokens[span], texts.lengths[span], texts.target_ids[span])
            rows += [values[:n] for values, n in zip(logprobs.tolist(), texts.lengths[span].tolist(), strict=True)]
        return rows

    def _scores(self, rows: list[list[float]], texts: _Texts) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in texts.targets]
        for row, index in enumerate(texts.order):
            total = math.fsum(rows[row])
            results[index] = {
                "tokens": texts.targets[index],
                "token_logprobs": rows[row],
                "logprob": total,
                "perplexity": math.exp(-total / len(rows[row])),
            }
        return results

    def _passes(self, lengths: Tensor) -> Iterator[slice]:
        """Consecutive row ranges (of the longest-first batch) that fit one scoring pass each."""
        start, vocab_size = 0, len(self.vocab)
        while start < len(lengths):
            width = int(lengths[start])  # the longest row of the range sets its padded width
            rows = max(1, _SCORE_LOGITS_PER_PASS // (width * vocab_size))
            yield slice(start, start + rows)
            start += rows

    def _logprobs(self, tokens: Tensor, lengths: Tensor, targets: Tensor) -> Tensor:
        """Natural-log P(target) at every step: [B, T] on the CPU (padded steps are garbage)."""
        width = int(lengths.max())
        tokens, targets = tokens[:, :width].to(self.device), targets[:, :width].to(self.device)
        logits = self.calls.logits(tokens, lengths)  # [B, T, V]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()


def _detokenize(words: list[str]) -> str:
    """Space-joined words, one generated sentence per line."""
    sentences: list[list[str]] = [[]]
    for word in words:
        if word == EOS:
            sentences.append([])
        else:
            sentences[-1].append(word)
    return "\n".join(" ".join(sentence) for sentence in sentences)


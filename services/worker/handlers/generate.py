"""Language-model handler: kind "generate" continues each prompt, kind "score" rates each text.

Every text is read as a sentence that starts after "<eos>", the boundary the model saw
between sentences in training, so the first word is conditioned on that boundary too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from seqserve.services.worker.handlers.base import StagedHandler
from seqserve.shared.jobs.kinds import validate_params
from seqserve.shared.nn.language_model import EOS, LanguageModelConfig, RNNLanguageModel
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.sampling import sample_next
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab

KINDS = ("generate", "score")
# PTB writes every number as "N"; user prompts write digits.
_NUMBER = re.compile(r"[+-]?(\d+([.,:/]\d+)*|[.,]\d+)(st|nd|rd|th|s)?")
# Scoring materialises [rows, steps, vocab] logits; this caps one forward pass (fp32 ~64 MiB).
_SCORE_LOGITS_PER_PASS = 1 << 24


class LanguageModelHandler(StagedHandler):
    task = "generate"

    def __init__(self, model: RNNLanguageModel, vocab: Vocab, device: torch.device) -> None:
        if model.config.vocab_size != len(vocab):
            raise ValueError(f"model has {model.config.vocab_size} outputs but the vocab {len(vocab)}")
        if EOS not in vocab:
            raise ValueError(f"the vocabulary has no {EOS!r} sentence boundary")
        self.model = model.to(device).eval()
        self.vocab = vocab
        self.device = device
        self.eos_id = vocab.encode([EOS])[0]
        self._number_token = "N" if "N" in vocab else None
        # Seconds spent in each stage by the last run(), for the worker to export as metrics.
        self.stage_seconds: dict[str, float] = {}

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], device: torch.device) -> LanguageModelHandler:
        cls.check_task(payload)
        model = RNNLanguageModel(LanguageModelConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        return cls(model, Vocab.from_list(payload["vocab"]), device)

    def run(
        self, inputs: list[str], params: dict[str, Any], kind: str = "generate"
    ) -> list[dict[str, Any]]:
        """Generate from or score every input; results come back in input order."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} for task {self.task!r}; expected one of {KINDS}")
        params = validate_params(kind, params)  # refuses unknown keys, fills in defaults
        if not inputs:
            return []
        self.stage_seconds = {}
        if kind == "score":
            return self._score(inputs)
        return self._generate(inputs, params)

    # --- shared preprocessing -------------------------------------------------------------

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

    def _generate(self, inputs: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._timed("preprocess"):
            prompts = [self.words(text) for text in inputs]
            # Each prompt opens a sentence, so an empty prompt is just the <eos> boundary.
            tokens, lengths, order = self._sorted_batch([[self.eos_id, *self.vocab.encode(p)] for p in prompts])
            # One generator per job: the same seed and inputs give the same samples.
            generator = None
            if params["seed"] is not None:
                generator = torch.Generator(device=self.device).manual_seed(params["seed"])
        with self._timed("infer"):
            first_logits, generated = self._decode(tokens, lengths, params, generator)
        with self._timed("postprocess"):
            results: list[dict[str, Any]] = [{} for _ in inputs]
            for row, index in enumerate(order):
                words = self.vocab.decode(generated[row].tolist())
                result = {"prompt_tokens": prompts[index], "continuation": _detokenize(words)}
                result["tokens"] = words
                if params["next_word_top_k"] > 0:
                    result["next_words"] = self._top_words(first_logits[row], params["next_word_top_k"])
                results[index] = result
            return results

    def _decode(
        self, tokens: Tensor, lengths: Tensor, params: dict[str, Any], generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """Feed the prompts, then extend all rows together one step at a time.

        Returns the logits after each prompt [B, V] and the generated ids [B, max_tokens] (CPU).
        """
        settings = {key: params[key] for key in ("temperature", "top_k", "top_p")}
        with torch.inference_mode():
            features, state = self.model.encode(tokens.to(self.device), None, lengths)  # [B, T, D]
            last = (lengths - 1).to(self.device)
            logits = self.model.decode(features[torch.arange(len(last), device=self.device), last])
            first_logits = logits.float().cpu()
            steps = []
            for step in range(params["max_tokens"]):
                next_ids = sample_next(logits, generator=generator, **settings)  # [B]
                steps.append(next_ids)
                if step + 1 < params["max_tokens"]:
                    step_logits, state = self.model(next_ids.unsqueeze(1), state)  # [B, 1, V]
                    logits = step_logits[:, 0]
        return first_logits, torch.stack(steps, dim=1).cpu()

    def _top_words(self, logits: Tensor, k: int) -> list[dict[str, Any]]:
        probabilities = torch.softmax(logits, dim=-1)
        top = torch.topk(probabilities, min(k, probabilities.numel()))
        words = self.vocab.decode(top.indices.tolist())
        return [{"word": w, "probability": p} for w, p in zip(words, top.values.tolist(), strict=True)]

    # --- score ----------------------------------------------------------------------------

    def _score(self, inputs: list[str]) -> list[dict[str, Any]]:
        with self._timed("preprocess"):
            targets = [[*self.words(text), EOS] for text in inputs]
            # <eos> w_1 .. w_n predicts w_1 .. w_n <eos>: inputs and targets align step by step.
            sequences = [[self.eos_id, *self.vocab.encode(words[:-1])] for words in targets]
            tokens, lengths, order = self._sorted_batch(sequences)
            target_ids, _ = pad_sequences([self.vocab.encode(targets[i]) for i in order], self.vocab.pad_id)
        with self._timed("infer"):
            rows: list[list[float]] = []  # per row of the sorted batch, its real steps only
            for span in self._passes(lengths):
                logprobs = self._logprobs(tokens[span], lengths[span], target_ids[span])
                rows += [values[:n] for values, n in zip(logprobs.tolist(), lengths[span].tolist(), strict=True)]
        with self._timed("postprocess"):
            results: list[dict[str, Any]] = [{} for _ in inputs]
            for row, index in enumerate(order):
                total = math.fsum(rows[row])
                results[index] = {
                    "tokens": targets[index],
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
        with torch.inference_mode():
            logits, _ = self.model(tokens, None, lengths)  # [B, T, V]
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

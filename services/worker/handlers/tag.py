"""Sequence tagging handler: tokenize -> batched forward passes -> per-token tags and probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seqserve.services.worker.handlers.base import StagedHandler
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.tagger import SequenceTagger, TaggerConfig, TokenEncoder, pad_characters
from seqserve.shared.text.tokenize import tokenize

# TagParams (seqserve.shared.jobs.kinds) defines none; anything else is a caller bug, not something to ignore.
_ALLOWED_PARAMS: frozenset[str] = frozenset()
MAX_BATCH_SENTENCES = 64  # one forward pass per this many inputs bounds padding and memory


@dataclass(frozen=True)
class _Batch:
    words: Tensor  # [B, T] long, rows sorted by length (longest first)
    chars: Tensor  # [B, T, C] long
    lengths: Tensor  # [B] long, on CPU
    indices: list[int]  # indices[i] = input index of row i


def tag_tokens(text: str) -> list[str]:
    """Serving-time tokens: the shared tokenizer, cased and with plain quotes as in UD treebanks."""
    return tokenize(text, lowercase=False, ptb_quotes=False)


class TagHandler(StagedHandler):
    task = "tag"

    def __init__(
        self, model: SequenceTagger, encoder: TokenEncoder, tags: list[str], device: torch.device
    ) -> None:
        if model.config.num_tags != len(tags):
            raise ValueError(
                f"model has {model.config.num_tags} tags but the checkpoint lists {len(tags)}"
            )
        if model.config.vocab_size != len(encoder.words) or model.config.char_vocab_size != len(
            encoder.chars
        ):
            raise ValueError("model and checkpoint vocabularies differ in size")
        self.model = model.to(device).eval()
        self.encoder = encoder
        self.tags = list(tags)
        self.device = device
        # Seconds spent in each stage by the last run(), for the worker to export as metrics.
        self.stage_seconds: dict[str, float] = {}

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], device: torch.device) -> TagHandler:
        cls.check_task(payload)
        model = SequenceTagger(TaggerConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        return cls(model, TokenEncoder.from_payload(payload), payload["tags"], device)

    def run(self, inputs: list[str], params: dict[str, Any], kind: str = "tag") -> list[dict[str, Any]]:
        """Tag every input; results come back in input order, one dict per input."""
        if kind != "tag":
            raise ValueError(f"the tag handler serves kind 'tag', not {kind!r}")
        unknown = sorted(set(params) - _ALLOWED_PARAMS)
        if unknown:
            raise ValueError(f"unknown tag parameter(s): {', '.join(unknown)}")
        self.stage_seconds = {}
        with self._timed("preprocess"):
            tokens = [tag_tokens(text) for text in inputs]
            batches = self.preprocess(tokens)
        with self._timed("infer"):
            logits = [self.infer(batch) for batch in batches]
        with self._timed("postprocess"):
            return self.postprocess(tokens, batches, logits)

    def preprocess(self, tokens: list[list[str]]) -> list[_Batch]:
        """Inputs with tokens, longest first, in batches; empty inputs need no forward pass."""
        order = sorted((i for i, t in enumerate(tokens) if t), key=lambda i: -len(tokens[i]))
        pad_id = self.model.config.pad_id
        batches = []
        for start in range(0, len(order), MAX_BATCH_SENTENCES):
            indices = order[start : start + MAX_BATCH_SENTENCES]
            encoded = [self.encoder.encode(tokens[i]) for i in indices]
            words, lengths = pad_sequences([w for w, _ in encoded], pad_id)
            chars = pad_characters([c for _, c in encoded], self.model.config.char_pad_id)
            batches.append(_Batch(words, chars, lengths, indices))
        return batches

    def infer(self, batch: _Batch) -> Tensor:
        with torch.inference_mode():
            logits = self.model(batch.words.to(self.device), batch.chars.to(self.device), batch.lengths)
        return logits.float().cpu()  # [B, T, K]

    def postprocess(
        self, tokens: list[list[str]], batches: list[_Batch], logits: list[Tensor]
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{"tokens": [], "tags": [], "probabilities": []} for _ in tokens]
        for batch, batch_logits in zip(batches, logits, strict=True):
            best, ids = torch.softmax(batch_logits, dim=-1).max(dim=-1)  # [B, T] each
            for row, index in enumerate(batch.indices):
                n = len(tokens[index])
                results[index] = {
                    "tokens": tokens[index],
                    "tags": [self.tags[i] for i in ids[row, :n].tolist()],
                    "probabilities": best[row, :n].tolist(),
                }
        return results

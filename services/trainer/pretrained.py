"""Initialising a task's word embedding from a registered `embeddings` model
(`seqserve train --task classify|tag --set pretrained=name[:version|@alias]`).

The reference is resolved once, to a version, through the registry; the checkpoint is read
with its recorded sha256. Words both vocabularies share get the pretrained vector (as written,
else lowercased); with fastText, the other words get one from their subwords; the rest
keep their random initialisation. Copied vectors are standardised (see `_standardisation`).
The resolved `name:version` goes into the run's config (so the checkpoint and the registry
row both say which vectors the model started from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.db.session import session_scope
from seqserve.shared.nn.word_vectors import WordVectors, WordVectorsConfig
from seqserve.shared.registry.refs import parse_model_ref
from seqserve.shared.registry.service import resolve
from seqserve.shared.text.vocab import Vocab


@dataclass(frozen=True)
class PretrainedVectors:
    ref: str  # resolved: name:version
    vocab: Vocab
    model: WordVectors


def load_pretrained(ref: str) -> PretrainedVectors:
    """The embeddings version `ref` names, read with its recorded checksum."""
    with session_scope() as session:
        version = resolve(session, parse_model_ref(ref))
        task, name = version.model.task, version.model.name
        uri, sha256, number = version.checkpoint_uri, version.sha256, version.version
    if task != "embeddings":
        raise ValueError(f"pretrained: {ref!r} is a {task} model, not an embeddings model")
    payload = load_checkpoint(Path(uri), sha256)
    model = WordVectors(WordVectorsConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return PretrainedVectors(f"{name}:{number}", Vocab.from_list(payload["vocab"]), model)


def _standardisation(model: WordVectors) -> tuple[Tensor, float]:
    """(mean vector, std) of the pretrained rows. Copied vectors are centred and scaled to
    std 1, the scale of nn.Embedding's N(0, 1) rows that every task's settings were tuned
    with: fastText's rows here share a large common direction (mean norm ~1.7 of ~3) and have
    std ~0.3. Centring changes no difference between words; the scale is one number."""
    rows = model.embedding.weight[2:].detach()
    shift = rows.mean(dim=0)
    return shift, float((rows - shift).std().clamp_min(1e-8))


def initialise_embedding(embedding: nn.Embedding, vocab: Vocab, cfg: dict[str, Any]) -> dict[str, Any]:
    """Copy `cfg["pretrained"]`'s vectors into `embedding` (rows of `vocab`); record the
    lineage in `cfg` and return it with the coverage counts. No-op without `pretrained`."""
    if cfg.get("pretrained") is None:
        return {}
    source = load_pretrained(cfg["pretrained"])
    if source.model.config.dim != embedding.embedding_dim:
        raise ValueError(f"embedding_dim: {embedding.embedding_dim} differs from {source.ref}'s dim "
                         f"{source.model.config.dim}; set embedding_dim={source.model.config.dim}")
    copied = subword = 0
    shift, scale = _standardisation(source.model)
    with torch.no_grad():
        for index, word in enumerate(vocab.to_list()[2:], start=2):
            row = next((i for i in source.vocab.encode([word, word.lower()]) if i >= 2), None)
            if row is not None:
                vector: Tensor | None = source.model.embedding.weight[row]
                copied += 1
            elif (vector := source.model.subword_vector(word.lower())) is not None:
                subword += 1
            if vector is not None:
                embedding.weight[index] = (vector - shift) / scale
    if cfg["freeze_pretrained"]:
        embedding.weight.requires_grad_(False)
    cfg["pretrained_version"] = source.ref
    return {"pretrained_version": source.ref, "pretrained_copied": copied, "pretrained_subword": subword,
            "pretrained_coverage": round((copied + subword) / max(1, len(vocab) - 2), 4)}

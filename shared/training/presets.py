"""Each task's presets, as instances of its config, and the one way to apply overrides to them.

`validate_overrides` is what the API runs at submission (pydantic's error, located at the
key); `resolve_config` is what the CLI and the trainers run (a ValueError naming the key).
Both are `model_validate` of the preset's values plus the overrides. Torch-free, like configs.
"""

from __future__ import annotations

import reprlib
from typing import Any, Literal, get_args

from pydantic import ValidationError

from seqserve.shared.tasks import TASKS
from seqserve.shared.training.configs import (
    ClassifyConfig,
    EmbeddingsConfig,
    GenerateConfig,
    TagConfig,
    TrainConfig,
    TranslateConfig,
)

PresetName = Literal["quick", "full"]

# Full presets carry a 90-minute wall-clock budget: an epoch starts only if it should end
# within it, so a slow machine gets a shorter run rather than an endless one.
_BUDGET = 90.0

PRESETS: dict[str, dict[str, TrainConfig | EmbeddingsConfig]] = {
    "classify": {
        # About 80 s on 2 idle CPU cores, ~83% dev accuracy. GLUE's 67k phrase-level examples
        # beat the 6,920 sentence-level ones for the same time: on stsa.binary.train the same
        # model reached ~76-79% in 6-8 epochs (phrase labels are far more supervision per token).
        "quick": ClassifyConfig(embedding_dim=100, hidden_size=128, epochs=3, batch_size=128, lr=3e-3,
                                patience=2),
        # Same data, a wider model, more epochs with early stopping, and the dev evaluation on
        # an exponential moving average of the weights (86.12% dev, where the last-step weights
        # of the same model gave 85.89% and 84.86% on two seeds). ~70 s per epoch on 2 EPYC cores.
        "full": ClassifyConfig(embedding_dim=300, hidden_size=256, epochs=12, batch_size=64, lr=1.5e-3,
                               patience=3, ema_decay=0.999, time_budget_minutes=_BUDGET),
    },
    "tag": {
        # A 3,000-sentence slice and a small model: a couple of minutes on 2 CPU cores.
        # A small model on few steps: a high rate gets furthest in the time.
        "quick": TagConfig(max_train_examples=3000, embedding_dim=64, char_embedding_dim=32, char_hidden_size=32,
                           hidden_size=128, num_layers=1, epochs=5, lr=5e-3, patience=2),
        # Word + char BiLSTM in the style of Plank et al. (2016) and Qi et al. (2018), sized for
        # a CPU: 2 x 256 BiLSTM layers, dropout 0.33, Adam 2e-3 halved when dev stalls.
        "full": TagConfig(embedding_dim=100, char_embedding_dim=50, char_hidden_size=100, hidden_size=256,
                          num_layers=2, epochs=20, lr=2e-3, patience=4, time_budget_minutes=_BUDGET),
    },
    "generate": {
        # A 2x200 tied LSTM on the first 250k PTB training tokens (vocabulary from all of
        # train): 1-3 minutes on 2 CPU cores; dev perplexity ~390 (a smoke test, not a good model).
        "quick": GenerateConfig(max_train_tokens=250_000, embedding_dim=200, hidden_size=200, dropout=0.2,
                                epochs=2, batch_size=20, lr=1.5e-3, patience=2),
        # Zaremba et al.'s "medium" (2x650, dropout 0.5) with tied weights: 12 epochs of Adam
        # with the LR decaying linearly towards 0, within the budget. ~6.3 min per epoch with
        # bf16 autocast on an AVX512-BF16 EPYC's 2 cores (all 12 fit in 80 min: 92.9 test
        # perplexity), ~4.7 on an AMX Xeon, but ~27 min on one AVX2-only thread in float32 (no
        # bf16 there), where the budget stops it after 3 epochs at ~129. On a GPU: minutes.
        # Adam above ~2e-3 made some runs drift (cell states growing without bound on long streams).
        "full": GenerateConfig(embedding_dim=650, hidden_size=650, dropout=0.5, epochs=12, schedule="linear",
                               batch_size=32, lr=2e-3, patience=3, autocast_bf16=True,
                               time_budget_minutes=_BUDGET),
    },
    "translate": {
        # 8k pairs and a small Luong-attention GRU: ~110 s on one CPU thread, dev BLEU ~11 and
        # test BLEU ~12 (a proof of life, not a translator).
        "quick": TranslateConfig(max_train_examples=8000, attention="luong", src_embedding_dim=128,
                                 tgt_embedding_dim=128, hidden_size=256, dropout=0.2, epochs=4, lr=2e-3,
                                 patience=2),
        # Published-style attentional GRU (bentrevett/pytorch-seq2seq, nmtpytorch baselines):
        # all 29k pairs, additive attention, 256-d embeddings, 512-d states, dropout, beam 5.
        # ~285 s of one CPU thread per epoch on an AMX Xeon, ~420 s on an AVX2 EPYC, where the
        # budget allows 11 epochs: dev BLEU 32.2 (greedy), test 35.05 (beam 5).
        "full": TranslateConfig(attention="bahdanau", src_embedding_dim=256, tgt_embedding_dim=256,
                                hidden_size=512, dropout=0.4, epochs=15, lr=1e-3, patience=4,
                                time_budget_minutes=_BUDGET),
    },
    "embeddings": {
        # Timings and scores: docs/embeddings.md. Quick: the first 20k lines of each corpus (~1.8M words).
        "quick": EmbeddingsConfig(max_sentences=20_000, epochs=5, bucket=50_000),
        # All of WikiText-2 and PTB train (~3M words).
        "full": EmbeddingsConfig(epochs=10),
    },
}

# Written once here and in tasks.py; these say the two agree.
assert set(PRESETS) == set(TASKS), "every task in shared/tasks.py needs presets, and only those"
assert all(set(presets) == set(get_args(PresetName)) for presets in PRESETS.values()), "every task has every preset"


class OverrideError(ValueError):
    """An override the task's config refuses; the message names `key`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key

    @classmethod
    def from_validation(cls, exc: ValidationError, known: list[str]) -> OverrideError:
        error = exc.errors(include_url=False)[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            return cls(key, f"unknown override {key!r}; known keys: {known}")
        return cls(key, f"override {key!r}: {error['msg']} (got {reprlib.repr(error['input'])})")


def preset_config(task: str, preset: str) -> TrainConfig | EmbeddingsConfig:
    """The named preset of `task`, as its config instance."""
    if task not in PRESETS:
        raise ValueError(f"task {task!r} cannot be trained; trainable: {sorted(PRESETS)}")
    if preset not in PRESETS[task]:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS[task])}")
    return PRESETS[task][preset]


def validate_overrides(task: str, preset: str, overrides: dict[str, Any]) -> TrainConfig | EmbeddingsConfig:
    """The preset with `overrides` applied; pydantic's ValidationError locates a bad key."""
    base = preset_config(task, preset)
    return type(base).model_validate(base.model_dump() | overrides)


def resolve_config(task: str, preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings a run trains with, preset name included (what checkpoints record);
    a bad override raises OverrideError naming its key."""
    try:
        config = validate_overrides(task, preset, overrides or {})
    except ValidationError as exc:
        raise OverrideError.from_validation(exc, sorted(type(preset_config(task, preset)).model_fields)) from None
    return {"preset": preset, **config.model_dump()}

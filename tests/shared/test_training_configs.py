"""The per-task training configs: unknown keys, wrong types and out-of-bound values are
refused with the key named; presets are valid, frozen instances; nothing here needs torch."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from seqserve.shared.tasks import task_names
from seqserve.shared.training.configs import Attention, Cell, ConllColumn, LanguageModelCorpus, TrainConfig
from seqserve.shared.training.presets import PRESETS, OverrideError, resolve_config, validate_overrides

# The tasks whose configs are a TrainConfig (a recurrent model and the shared loop); the
# embeddings task's config (gensim's settings) has its own bounds, tested below.
TASKS = tuple(t for t in task_names() if isinstance(PRESETS[t]["quick"], TrainConfig))


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(
    ("override", "says"),
    [({"epochs": 1_000_000_000_000}, "less than or equal to 1000"), ({"__class__": 1}, "unknown override"),
     ({"epochz": 3}, "unknown override"), ({"model_config": {}}, "unknown override"),
     ({"preset": "full"}, "unknown override")],
)
def test_what_the_issue_found_queued_is_refused_naming_the_key(task: str, override: dict, says: str) -> None:
    key = next(iter(override))
    with pytest.raises(OverrideError, match=f"'{key}'.*{says}|{says}.*'{key}'") as caught:
        resolve_config(task, "quick", override)
    assert caught.value.key == key and "\n" not in str(caught.value)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("value", ["5", True, 5.0, None, [5]])
def test_an_int_field_takes_only_an_int(task: str, value: Any) -> None:
    with pytest.raises(OverrideError, match="'epochs'"):
        resolve_config(task, "quick", {"epochs": value})


@pytest.mark.parametrize("task", TASKS)
def test_a_float_field_takes_an_int_but_not_a_bool_or_a_string(task: str) -> None:
    resolved = resolve_config(task, "quick", {"lr": 1, "time_budget_minutes": 5})
    assert (resolved["lr"], type(resolved["lr"])) == (1.0, float)
    assert type(resolved["time_budget_minutes"]) is float
    for bad in (True, "0.1"):
        with pytest.raises(OverrideError, match="'lr'"):
            resolve_config(task, "quick", {"lr": bad})


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(
    "override",
    [{"epochs": 0}, {"patience": 0}, {"batch_size": 0}, {"batch_size": 10**6}, {"hidden_size": 10**6},
     {"num_layers": 100}, {"dropout": 1.0}, {"dropout": -0.1}, {"ema_decay": 1.0}, {"lr": -1}, {"lr": 1e6},
     {"clip": -1.0}, {"lr_factor": 1.0}, {"seed": -1}, {"seed": 2**64}, {"time_budget_minutes": 10**7},
     {"eval_batch_size": 0}, {"cell": "transformer"}, {"schedule": "cosine"}],
)
def test_bounds_and_choices_every_task_shares(task: str, override: dict) -> None:
    with pytest.raises(OverrideError, match=repr(next(iter(override)))):
        resolve_config(task, "quick", override)


@pytest.mark.parametrize(
    ("task", "override"),
    [("classify", {"max_train_examples": 0}), ("classify", {"bidirectional": 1}), ("classify", {"word_dropout": 1.0}),
     ("classify", {"train_file": ""}), ("generate", {"tie_weights": 0}),
     ("tag", {"max_word_chars": 1}), ("tag", {"column": True}), ("tag", {"column": 10**6}),
     ("tag", {"char_hidden_size": -1}), ("generate", {"max_train_tokens": 1}), ("generate", {"bptt": 10**6}),
     ("generate", {"corpus": "enwik8"}), ("translate", {"beam_size": 1000}), ("translate", {"src_lang": ""}),
     ("translate", {"label_smoothing": 1.0}), ("translate", {"attention": "dot"}),
     ("embeddings", {"dim": 0}), ("embeddings", {"bucket": 10**9}), ("embeddings", {"min_n": 0}),
     ("embeddings", {"workers": 1000}), ("embeddings", {"algorithm": "glove"}), ("embeddings", {"epochs": "5"}),
     ("embeddings", {"lr": True}), ("embeddings", {"epochz": 5}),
     ("classify", {"pretrained": "a b"}), ("tag", {"pretrained": "x" * 300}), ("tag", {"freeze_pretrained": 1})],
)
def test_task_fields_have_bounds_too(task: str, override: dict) -> None:
    with pytest.raises(OverrideError, match=repr(next(iter(override)))):
        resolve_config(task, "quick", override)


def test_the_validation_error_locates_the_key() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_overrides("tag", "quick", {"column": "pos"})
    assert [error["loc"] for error in caught.value.errors()] == [("column",)]


def test_unknown_task_or_preset_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        resolve_config("classify", "huge")
    with pytest.raises(ValueError, match="'summarize' cannot be trained"):
        resolve_config("summarize", "quick")


@pytest.mark.parametrize("task", TASKS)
def test_presets_are_frozen_valid_instances_of_one_config(task: str) -> None:
    quick, full = PRESETS[task]["quick"], PRESETS[task]["full"]
    assert type(quick) is type(full)
    for preset in (quick, full):
        assert type(preset).model_validate(preset.model_dump()) == preset
        with pytest.raises(ValidationError):
            preset.epochs = 99  # type: ignore[misc]


def test_the_named_choices_are_the_ones_the_code_accepts() -> None:
    from seqserve.services.trainer.conllu import COLUMNS
    from seqserve.services.trainer.corpora import CORPORA
    from seqserve.shared.nn.cells import CELLS
    from seqserve.shared.nn.seq2seq import ATTENTIONS

    assert set(get_args(Cell)) == set(CELLS) and set(get_args(Attention)) == set(ATTENTIONS)
    assert set(get_args(LanguageModelCorpus)) == set(CORPORA) and get_args(ConllColumn) == COLUMNS


def test_validating_overrides_does_not_load_torch() -> None:
    # The API validates overrides at submission and must stay torch-free.
    code = ("import sys; import seqserve.shared.training.schemas, seqserve.shared.training.presets; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)

"""The one list of what seqserve serves and trains. Every other list derives from it: the job
kinds and their params, the tasks the trainer and the CLI accept, the default model names,
the default batch limits, the worker's handlers and the trainer's train functions.

Handlers and trainers are named by import path (`module:attribute`), resolved by the service
that runs them: `shared/` never imports a service package.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal, get_args

from seqserve.shared.jobs.params import (
    ClassifyParams,
    EmbedParams,
    GenerateParams,
    JobParams,
    ScoreParams,
    SimilarParams,
    TagParams,
    TranslateParams,
)

TaskName = Literal["classify", "tag", "generate", "translate", "embeddings"]
JobKindName = Literal["classify", "tag", "generate", "score", "translate", "embed", "similar"]


@dataclass(frozen=True)
class JobKind:
    name: str
    params: type[JobParams]
    # Inputs per forward pass unless SEQSERVE_BATCH_MAX_INPUTS says otherwise.
    batch_max_inputs: int
    # On a CPU, rows per forward pass: the handler runs the length-sorted batch in chunks this
    # big unless SEQSERVE_CPU_CHUNK_ROWS says otherwise (measured: docs/benchmarks/cpu_chunks.md).
    # None: the kind's handler does not chunk by rows.
    cpu_chunk_rows: int | None = None
    # Inputs per job row a corpus batch becomes unless SEQSERVE_BATCH_CHUNK_INPUTS says
    # otherwise; None: batch_max_inputs (one chunk, one pass). A chunk over the batch limit runs
    # as a pass of its own: bigger passes sort more inputs by length, pad less, and pay the
    # claim and the result write fewer times (docs/benchmarks/batches.md, 2026-12-06).
    corpus_chunk_inputs: int | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kinds: tuple[JobKind, ...]
    default_model: str  # the model name a training run registers into unless told otherwise
    handler: str  # seqserve.services.worker.handlers.<module>:<class>
    trainer: str  # seqserve.services.trainer.<module>:<function>

    @property
    def kind_names(self) -> tuple[str, ...]:
        return tuple(kind.name for kind in self.kinds)


_HANDLERS = "seqserve.services.worker.handlers"
_TRAINER = "seqserve.services.trainer"

# Served by every task whose model has a word embedding table (all of them; the translator's
# is its source side), implemented once in services/worker/handlers/vectors.py. A lookup or
# a cosine top-k over the table is cheap next to an RNN pass, hence the bigger batches.
VECTOR_KINDS = (JobKind("embed", EmbedParams, 512), JobKind("similar", SimilarParams, 256))
VECTOR_KIND_NAMES = frozenset(kind.name for kind in VECTOR_KINDS)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("classify", (JobKind("classify", ClassifyParams, 256, cpu_chunk_rows=64, corpus_chunk_inputs=1024), *VECTOR_KINDS),
             "sst2-classifier", f"{_HANDLERS}.classify:ClassifyHandler", f"{_TRAINER}.classify:train_classifier"),
    TaskSpec("tag", (JobKind("tag", TagParams, 128, cpu_chunk_rows=64, corpus_chunk_inputs=512), *VECTOR_KINDS),
             "ewt-upos-tagger", f"{_HANDLERS}.tag:TagHandler", f"{_TRAINER}.tag:train_tagger"),
    TaskSpec("generate", (JobKind("generate", GenerateParams, 32), JobKind("score", ScoreParams, 64), *VECTOR_KINDS),
             "ptb-lm", f"{_HANDLERS}.generate:LanguageModelHandler", f"{_TRAINER}.generate:train_language_model"),
    TaskSpec("translate", (JobKind("translate", TranslateParams, 32, cpu_chunk_rows=32), *VECTOR_KINDS),
             "multi30k-en-de", f"{_HANDLERS}.translate:TranslateHandler", f"{_TRAINER}.translate:train_translator"),
    # Word vectors (gensim fastText) trained on unlabelled text; its first kind is `similar`.
    TaskSpec("embeddings", (VECTOR_KINDS[1], VECTOR_KINDS[0]), "wiki-ptb-fasttext",
             f"{_HANDLERS}.embeddings:EmbeddingsHandler", f"{_TRAINER}.embeddings:train_embeddings"),
)}

# kind name -> (the first task whose models serve it, the kind); a kind several tasks serve
# (embed, similar) is one JobKind, so its params and limits are the same everywhere.
JOB_KINDS: dict[str, tuple[str, JobKind]] = {kind.name: (spec.name, kind) for spec in TASKS.values()
                                             for kind in spec.kinds}

# The Literals above are for types and OpenAPI enums; they must name exactly what TASKS holds.
assert set(get_args(TaskName)) == set(TASKS), "TaskName must list exactly the tasks in TASKS"
assert set(get_args(JobKindName)) == set(JOB_KINDS), "JobKindName must list exactly the job kinds in TASKS"


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def kinds_for_task(task: str) -> list[str]:
    spec = TASKS.get(task)
    return sorted(spec.kind_names) if spec is not None else []


def default_batch_max_inputs() -> dict[str, int]:
    return {name: kind.batch_max_inputs for name, (_, kind) in JOB_KINDS.items()}


def default_batch_chunk_inputs() -> dict[str, int]:
    return {name: kind.corpus_chunk_inputs or kind.batch_max_inputs for name, (_, kind) in JOB_KINDS.items()}


def default_cpu_chunk_rows() -> dict[str, int]:
    """The kinds whose handlers chunk a batch by rows on a CPU, and their chunk sizes."""
    return {name: kind.cpu_chunk_rows for name, (_, kind) in JOB_KINDS.items() if kind.cpu_chunk_rows is not None}


def default_model_names() -> dict[str, str]:
    return {name: spec.default_model for name, spec in TASKS.items()}


def load(path: str) -> Any:
    """The object a `module:attribute` path names (a handler class, a train function)."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)

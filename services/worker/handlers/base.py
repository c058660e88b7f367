"""The one way a handler runs a batch: the kind checked against the task registry, params
validated once with the kind's pydantic model (the API's), then preprocess -> infer (under
`torch.inference_mode()`) -> postprocess, each stage timed into
`seqserve_handler_stage_seconds{kind,stage}`. A handler implements only its stages, and
`word_table` for the `embed` / `similar` kinds every task with an embedding table serves
(their stages: services/worker/handlers/vectors.py)."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
from torch import nn

from seqserve.services.worker.events import EventSink
from seqserve.services.worker.handlers.vectors import VectorStages, WordTable
from seqserve.shared import tasks
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.jobs.kinds import params_schema
from seqserve.shared.jobs.params import JobParams
from seqserve.shared.metrics import HANDLER_STAGE_SECONDS

ModuleT = TypeVar("ModuleT", bound=nn.Module)
ParamsT = TypeVar("ParamsT", bound=JobParams)
PreparedT = TypeVar("PreparedT")
RawT = TypeVar("RawT")


def rows_per_pass(kind: str, device: torch.device, settings: Settings | None = None) -> int:
    """Rows one forward pass of `kind` takes: on a CPU the kind's chunk (length-sorted chunks
    were measured faster per sentence there: docs/benchmarks/cpu_chunks.md), elsewhere the
    whole batch (the most one can hold: the batch limit, or one job larger than it).

    Independent of the batch limit on purpose: `batch_max_inputs` says how many inputs the
    worker gathers across jobs, not how a job's own inputs run (a batch limit of 1, the
    serving benchmark's naive baseline, must not make a 64-input job run one row at a time).
    `settings` defaults to the process's."""
    settings = settings if settings is not None else get_settings()
    if device.type == "cpu" and kind in settings.cpu_chunk_rows:
        return settings.cpu_chunk_rows[kind]
    return max(settings.batch_max_inputs[kind], settings.max_inputs_per_job)


class StagedHandler(ABC, Generic[ParamsT, PreparedT, RawT]):
    task: ClassVar[str]
    # Whether a run reports decode steps to `event_sink` (tokens, finished sentences): then a
    # batch's `running` event must reach its streams before the run; otherwise it travels with
    # the final status events, one Redis round trip less per batch (services/worker/runner.py).
    step_events: ClassVar[bool] = False

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)  # callers may name it: "cpu"
        # Per thread: the warm-up thread runs this same handler beside the task thread, and its
        # decode steps must not land in the events of the job the task thread is streaming.
        self._sinks = threading.local()
        # Seconds each stage took in the last run() (the histogram keeps every run's).
        self.stage_seconds: dict[str, float] = {}
        self._vector_stages: VectorStages | None = None

    @classmethod
    def check_task(cls, payload: dict[str, Any]) -> None:
        if payload.get("task") != cls.task:
            raise ValueError(f"checkpoint task is {payload.get('task')!r}, not {cls.task!r}")

    @classmethod
    def load_model(
        cls, payload: dict[str, Any], module: Callable[[Any], ModuleT], config: Callable[..., Any]
    ) -> ModuleT:
        """The checkpoint's module with its weights, once the payload's task is this handler's."""
        cls.check_task(payload)
        model = module(config(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        return model

    @property
    def event_sink(self) -> EventSink | None:
        """Set while this thread runs a batch whose jobs' events are published: decode loops
        report each step to it."""
        return getattr(self._sinks, "sink", None)

    @event_sink.setter
    def event_sink(self, sink: EventSink | None) -> None:
        self._sinks.sink = sink

    def run(self, inputs: list[str], params: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
        """One result per input, in input order. `kind` defaults to the task's first kind. A kind
        the task does not serve, or bad params, raise ValueError before any stage runs."""
        kind = kind if kind is not None else tasks.TASKS[self.task].kinds[0].name
        validated = self.validate(kind, params)
        if not inputs:
            return []
        self.stage_seconds = {}
        stages: Any = self.vector_stages() if kind in tasks.VECTOR_KIND_NAMES else self
        with self._timed(kind, "preprocess"):
            prepared = stages.preprocess(inputs, validated)
        with self._timed(kind, "infer"), torch.inference_mode():
            raw = stages.infer(prepared, validated)
        with self._timed(kind, "postprocess"):
            return cast(list[dict[str, Any]], stages.postprocess(raw, prepared, validated))

    def word_table(self) -> WordTable | None:
        """The model's word embedding table, for `embed` and `similar`; None: it has none."""
        return None

    def vector_stages(self) -> VectorStages:
        if self._vector_stages is None:
            table = self.word_table()
            if table is None:
                raise ValueError(f"model: a {self.task} model has no word embedding table")
            self._vector_stages = VectorStages(table)
        return self._vector_stages

    def validate(self, kind: str, params: dict[str, Any]) -> ParamsT:
        """The kind's params model, defaults filled in (pydantic.ValidationError is a ValueError)."""
        served = tasks.TASKS[self.task].kind_names
        if kind not in served:
            raise ValueError(f"unknown kind {kind!r} for task {self.task!r}; it serves {list(served)}")
        return cast(ParamsT, params_schema(kind).model_validate(params))

    @abstractmethod
    def preprocess(self, inputs: list[str], params: ParamsT) -> PreparedT: ...

    @abstractmethod
    def infer(self, prepared: PreparedT, params: ParamsT) -> RawT: ...

    @abstractmethod
    def postprocess(self, raw: RawT, prepared: PreparedT, params: ParamsT) -> list[dict[str, Any]]: ...

    @contextmanager
    def _timed(self, kind: str, stage: str) -> Iterator[None]:
        # No try/finally: a stage that raised is not observed (its time says nothing of the stage).
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.stage_seconds[stage] = seconds
        HANDLER_STAGE_SECONDS.labels(kind, stage).observe(seconds)

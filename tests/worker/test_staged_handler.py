"""The handler template (StagedHandler.run) on a handler without a model: what it checks before
any stage runs, and what it observes into the stage histogram."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from seqserve.services.worker.handlers import HANDLERS
from seqserve.services.worker.handlers.base import StagedHandler
from seqserve.shared.jobs.params import TranslateParams
from seqserve.shared.tasks import TASKS
from tests.processes import REPO_ROOT
from tests.worker.stage_metrics import STAGES, one_more, stage_counts


class Upper(StagedHandler[TranslateParams, list[str], list[str]]):
    """'Translates' to upper case; records what each stage saw."""

    task = "translate"

    def __init__(self, fail_in: str | None = None) -> None:
        super().__init__("cpu")
        self.calls: list[tuple[str, Any]] = []
        self.fail_in = fail_in

    def preprocess(self, inputs: list[str], params: TranslateParams) -> list[str]:
        self._call("preprocess", params)
        return inputs

    def infer(self, prepared: list[str], params: TranslateParams) -> list[str]:
        self._call("infer", torch.is_inference_mode_enabled())
        return [text.upper() for text in prepared]

    def postprocess(self, raw: list[str], prepared: list[str], params: TranslateParams) -> list[dict[str, Any]]:
        self._call("postprocess", torch.is_inference_mode_enabled())
        return [{"translation": text} for text in raw]

    def _call(self, stage: str, seen: Any) -> None:
        self.calls.append((stage, seen))
        if stage == self.fail_in:
            raise RuntimeError(f"{stage} broke")


def test_stages_run_in_order_on_validated_params_and_each_is_observed_once() -> None:
    handler, before = Upper(), stage_counts("translate")
    assert handler.run(["a dog", "ein"], {"beam_size": 2}, kind="translate") == [
        {"translation": "A DOG"}, {"translation": "EIN"},
    ]
    preprocess, infer, postprocess = handler.calls
    assert preprocess == ("preprocess", TranslateParams(beam_size=2))  # defaults filled in
    assert infer == ("infer", True) and postprocess == ("postprocess", False)  # only infer runs in inference mode
    assert stage_counts("translate") == one_more(before)
    assert set(handler.stage_seconds) == set(STAGES) and all(s >= 0 for s in handler.stage_seconds.values())
    seconds = REGISTRY.get_sample_value("seqserve_handler_stage_seconds_sum", {"kind": "translate", "stage": "infer"})
    assert seconds is not None and seconds > 0


@pytest.mark.parametrize(("kind", "params", "message"), [
    ("generate", {}, "unknown kind 'generate' for task 'translate'"),
    ("no-such-kind", {}, "unknown kind 'no-such-kind'"),
    ("translate", {"top_k": 2}, "top_k"),  # another kind's param: refused, not ignored
    ("translate", {"beam_size": 0}, "beam_size"),  # out of bounds
])
def test_a_bad_kind_or_bad_params_fail_before_any_stage(kind: str, params: dict, message: str) -> None:
    handler, before = Upper(), stage_counts("translate")
    with pytest.raises(ValueError, match=message):
        handler.run(["a dog"], params, kind=kind)
    assert handler.calls == [] and handler.stage_seconds == {}
    assert stage_counts("translate") == before


def test_the_default_kind_is_the_tasks_first_and_no_inputs_run_no_stage() -> None:
    handler, before = Upper(), stage_counts("translate")
    assert handler.run(["x"], {}) == [{"translation": "X"}]
    assert handler.run([], {"beam_size": 2}) == []
    with pytest.raises(ValueError, match="beam_size"):  # params are checked even with no inputs
        handler.run([], {"beam_size": 99})
    assert len(handler.calls) == 3 and stage_counts("translate") == one_more(before)


def test_a_stage_that_raises_is_not_observed() -> None:
    handler, before = Upper(fail_in="infer"), stage_counts("translate")
    with pytest.raises(RuntimeError, match="infer broke"):
        handler.run(["x"], {})
    assert stage_counts("translate") == [before[0] + 1, before[1], before[2]]


def test_a_prefork_child_s_stage_timings_reach_the_multiprocess_collector(tmp_path: Path) -> None:
    # The worker's inference processes write their samples to PROMETHEUS_MULTIPROC_DIR and the
    # parent's /metrics merges them; here a child process plays the inference process.
    child = "from tests.worker.test_staged_handler import Upper; Upper().run(['x'], {}, kind='translate')"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", child], env=env, cwd=REPO_ROOT, check=True, timeout=120)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    for stage in STAGES:
        labels = {"kind": "translate", "stage": stage}
        assert registry.get_sample_value("seqserve_handler_stage_seconds_count", labels) == 1
        assert registry.get_sample_value("seqserve_handler_stage_seconds_bucket", {**labels, "le": "+Inf"}) == 1


def test_every_task_has_a_staged_handler_serving_its_kinds() -> None:
    assert set(HANDLERS) == set(TASKS)
    for name, handler in HANDLERS.items():
        assert issubclass(handler, StagedHandler) and handler.task == name

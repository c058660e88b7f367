"""Training runs: what can be trained, the run rows, their schemas."""

from typing import get_args

from seqserve.shared.queueing import TRAINING_QUEUE
from seqserve.shared.tasks import default_model_names
from seqserve.shared.training.presets import PresetName

# Tasks the trainer can train, with the model name a run registers into by default.
DEFAULT_MODEL_NAMES = default_model_names()
PRESETS = get_args(PresetName)  # preset names; each task's preset configs are in presets.py
RUN_TRAINING_TASK = "seqserve.training.run"
SCHEDULED_TRAINING_TASK = "seqserve.training.scheduled"

__all__ = ["DEFAULT_MODEL_NAMES", "PRESETS", "RUN_TRAINING_TASK", "SCHEDULED_TRAINING_TASK", "TRAINING_QUEUE"]

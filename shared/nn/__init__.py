"""Model definitions (plain nn.Modules with frozen config dataclasses)."""

from seqserve.shared.nn.cells import make_rnn
from seqserve.shared.nn.classifier import ClassifierConfig, SentenceClassifier

__all__ = ["ClassifierConfig", "SentenceClassifier", "make_rnn"]

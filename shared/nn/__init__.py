"""Model definitions (plain nn.Modules with frozen config dataclasses)."""

from shared.nn.cells import make_rnn
from shared.nn.classifier import ClassifierConfig, SentenceClassifier

__all__ = ["ClassifierConfig", "SentenceClassifier", "make_rnn"]

"""Learning-curve PNGs written beside each checkpoint."""

from __future__ import annotations

from pathlib import Path

# Figure + the Agg canvas directly, not pyplot: no global backend state, no display needed,
# and safe to call from worker threads.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Train loss (with dev loss if present) and the dev metrics per epoch, as one PNG."""
    if not history:
        raise ValueError("cannot plot an empty history")
    epochs = [record["epoch"] for record in history]
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    loss_ax, metric_ax = figure.subplots(1, 2)
    loss_ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    if all("dev_loss" in r for r in history):
        loss_ax.plot(epochs, [r["dev_loss"] for r in history], marker="o", label="dev loss")
    metric_names = [k for k in history[0] if k.startswith("dev_") and k != "dev_loss"]
    for name in metric_names:
        metric_ax.plot(epochs, [r[name] for r in history], marker="o", label=name)
    for ax, title in ((loss_ax, "loss"), (metric_ax, "dev metrics")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)

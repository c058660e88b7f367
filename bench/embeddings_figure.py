"""The seed's cosine example (mice / rats / horses) and a 2-D PCA of a few word groups, with
seqserve's own vectors served by its embeddings handler; writes docs/embeddings_pca.png and
prints the markdown tables docs/embeddings.md shows.

    .venv/bin/python -m bench.embeddings_figure var/pretrain-bench/artifacts/models/wiki-ptb-fasttext/model.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seqserve.services.worker.handlers import build_handler
from seqserve.shared.checkpoint import load_checkpoint

SEED = ("mice", "rats", "horses")
GROUPS = {
    "animals": ("mice", "rats", "horses", "dogs", "cats", "cattle", "sheep", "birds"),
    "numbers": ("two", "three", "four", "five", "six", "seven", "eight", "ten"),
    "months": ("january", "february", "march", "april", "june", "july", "august", "october"),
    "royalty": ("king", "queen", "prince", "princess", "emperor", "throne", "duke", "crown"),
    "music": ("music", "song", "album", "guitar", "singer", "band", "jazz", "songs"),
}


def vectors(handler: object, words: list[str]) -> torch.Tensor:
    results = handler.run(words, {"normalize": True}, kind="embed")  # type: ignore[attr-defined]
    return torch.tensor([r["vector"] for r in results])


def cosine_table(handler: object) -> str:
    unit = vectors(handler, list(SEED))
    scores = unit @ unit.T
    lines = ["| | " + " | ".join(SEED) + " |", "|---|" + "---|" * len(SEED)]
    for word, row in zip(SEED, scores, strict=True):
        lines.append(f"| {word} | " + " | ".join(f"{s:.3f}" for s in row.tolist()) + " |")
    return "\n".join(lines)


def pca_plot(handler: object, path: Path) -> None:
    words = [w for group in GROUPS.values() for w in group]
    points = vectors(handler, words)
    centred = points - points.mean(dim=0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    xy = centred @ v[:2].T  # [N, 2]
    figure = Figure(figsize=(8, 6), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    start = 0
    for name, group in GROUPS.items():
        part = xy[start : start + len(group)]
        ax.scatter(part[:, 0], part[:, 1], label=name)
        for word, (x, y) in zip(group, part.tolist(), strict=True):
            ax.annotate(word, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        start += len(group)
    ax.set(title="seqserve fastText vectors (wiki-ptb-fasttext), PCA of unit vectors", xlabel="PC 1", ylabel="PC 2")
    ax.legend()
    ax.grid(alpha=0.3)
    figure.savefig(path, format="png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/embeddings_pca.png"))
    args = parser.parse_args()
    handler = build_handler(load_checkpoint(args.checkpoint, None), "cpu")
    print(cosine_table(handler))
    for word in SEED:
        [result] = handler.run([word], {"k": 5}, kind="similar")
        print(f"| {word} | " + ", ".join(f"{n['word']} ({n['score']:.2f})" for n in result["neighbours"]) + " |")
    pca_plot(handler, args.out)


if __name__ == "__main__":
    main()

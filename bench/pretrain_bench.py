"""What pretrained word vectors buy: classify (SST-2 dev accuracy) and tag (EWT UPOS test
accuracy) on small training slices, with and without initialising the word embedding from a
registered embeddings model, same seeds and settings otherwise.

    SEQSERVE_VAR_DIR=var/pretrain-bench .venv/bin/python -m bench.pretrain_bench --slices 1000 5000

The embeddings model is trained and registered first (preset --vectors-preset) unless the
registry at SEQSERVE_DATABASE_URL (default: SQLite under the var dir) already has one.
Rows go into docs/benchmarks/training.json and the table in training.md, like train_bench's.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from bench.train_bench import RESULTS, _key, run, write_table
from seqserve.shared.config import get_settings
from seqserve.shared.db.migrate import upgrade
from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.refs import parse_model_ref
from seqserve.shared.registry.service import RegistryError, resolve

VECTORS = "wiki-ptb-fasttext"
# The same model for both arms: the embeddings' width (100, the fastText dim), enough epochs
# for a 1k slice to converge. Only `pretrained` differs between the arms.
COMMON: dict[str, dict[str, Any]] = {
    "classify": {"embedding_dim": 100, "epochs": 8, "patience": 3},
    "tag": {"embedding_dim": 100, "epochs": 8, "patience": 3},
}


def vectors_version(preset: str) -> str:
    """`name:version` of the production embeddings model, trained and registered if missing."""
    from seqserve.services.trainer.service import train_and_register

    upgrade(get_settings().database_url)
    try:
        with session_scope() as session:
            return f"{VECTORS}:{resolve(session, parse_model_ref(VECTORS)).version}"
    except RegistryError:
        report = train_and_register("embeddings", preset, model_name=VECTORS)
        return f"{VECTORS}:{report.version}"


def record(result: dict[str, Any], note: str) -> None:
    entries = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    result["note"] = note
    entries = [e for e in entries if _key(e) != _key(result)] + [result]
    RESULTS.write_text(json.dumps(entries, indent=2))
    write_table(entries)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(COMMON), choices=list(COMMON))
    parser.add_argument("--slices", nargs="+", type=int, default=[1000, 5000])
    parser.add_argument("--vectors-preset", default="full", choices=("quick", "full"))
    parser.add_argument("--out-dir", type=Path, default=Path("var/bench-models"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None, help="a seed other than the presets' (both arms)")
    parser.add_argument("--freeze", action="store_true", help="keep the pretrained vectors fixed (freeze_pretrained)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vectors = vectors_version(args.vectors_preset)
    for task in args.tasks:
        for size in args.slices:
            for pretrained in (None, vectors):
                overrides = COMMON[task] | {"max_train_examples": size}
                overrides |= {"seed": args.seed} if args.seed is not None else {}
                overrides |= {"pretrained": pretrained} if pretrained else {}
                overrides |= {"freeze_pretrained": True} if pretrained and args.freeze else {}
                result = run(task, "quick", args.out_dir, overrides)
                tuned = "frozen" if args.freeze else "fine-tuned"
                arm = f"initialised from {vectors} ({tuned})" if pretrained else "random initialisation"
                record(result, f"pretraining comparison, {size} training examples, {arm}")
                print(json.dumps({k: result[k] for k in ("task", "value", "seconds")}), flush=True)


if __name__ == "__main__":
    main()

"""What pretrained word vectors buy: classify (SST-2 dev accuracy) and tag (EWT UPOS test
accuracy) on small training slices, with and without initialising the word embedding from a
registered embeddings model, same seeds and settings otherwise.

    SEQSERVE_VAR_DIR=var/pretrain-bench .venv/bin/python -m bench.pretrain_bench --slices 1000 5000
    SEQSERVE_VAR_DIR=var/pretrain-bench .venv/bin/python -m bench.pretrain_bench --preset full --slices 0 --epochs 4

`--slices 0` is the whole training set. `--arm` runs one arm only, so that the two arms of a
long run can go in two processes (one thread each) side by side.

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
# The full presets as they are, but at the vectors' width (classify's full preset has 300; the
# tagger's already has 100); `--epochs` may cap them so that both arms fit a session.
COMMON_FULL: dict[str, dict[str, Any]] = {"classify": {"embedding_dim": 100}, "tag": {"embedding_dim": 100}}


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
    parser.add_argument("--preset", default="quick", choices=("quick", "full"), help="the task preset both arms start from")
    parser.add_argument("--epochs", type=int, default=None, help="cap the epochs (both arms)")
    parser.add_argument("--arm", choices=("both", "random", "pretrained"), default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vectors = vectors_version(args.vectors_preset)
    for task in args.tasks:
        for size in args.slices:
            arms = {"both": (None, vectors), "random": (None,), "pretrained": (vectors,)}[args.arm]
            for pretrained in arms:
                overrides = dict((COMMON if args.preset == "quick" else COMMON_FULL)[task])
                overrides |= {"max_train_examples": size} if size else {}
                overrides |= {"epochs": args.epochs} if args.epochs else {}
                overrides |= {"seed": args.seed} if args.seed is not None else {}
                overrides |= {"pretrained": pretrained} if pretrained else {}
                overrides |= {"freeze_pretrained": True} if pretrained and args.freeze else {}
                result = run(task, args.preset, args.out_dir / (args.arm if args.arm != "both" else ""), overrides)
                tuned = "frozen" if args.freeze else "fine-tuned"
                arm = f"initialised from {vectors} ({tuned})" if pretrained else "random initialisation"
                examples = f"{size} training examples" if size else "the whole training set"
                record(result, f"pretraining comparison, {examples}, {arm}")
                print(json.dumps({k: result[k] for k in ("task", "value", "seconds")}), flush=True)


if __name__ == "__main__":
    main()

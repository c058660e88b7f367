"""In-process inference speed per backend: the same checkpoint, the same inputs, one run.

For each task's checkpoint it times the worker's handler (`run`: preprocess, model, postprocess)
on real dev sentences, with three model paths swapped in at the handler's call sites:
  torch        today's modules (packed sequences)
  dense        the dense, packed-equivalent modules (seqserve.shared.nn.dense_models) in torch
  onnxruntime  the same modules exported to ONNX, on ONNX Runtime's CPU provider
at batches of 1, 8 and 64 sentences: classify, tag, score, generate (20 tokens), translate
(encoder and one decoder step, and beam-5 decode). Each cell is the best of `--rounds`
interleaved rounds of `--seconds` each (the machine is shared: the best round is the one
least disturbed). `--threads` adds intra-op threads 1 vs 2 and 1 vs 2 processes.

    .venv/bin/python -m bench.backend_bench --checkpoint classify=var/ckpt/classify/model.pt \
        --checkpoint tag=... --checkpoint generate=... --checkpoint translate=... --threads
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.load import sample_inputs
from bench.machine import cpu_machine
from seqserve.services.worker.backends import attach_backend, attach_graphs
from seqserve.services.worker.handlers import build_handler
from seqserve.services.worker.model_calls import TorchGraph
from seqserve.shared.checkpoint import load_checkpoint, sha256_file
from seqserve.shared.config import Settings
from seqserve.shared.nn.onnx_export import GRAPHS
from tests.processes import REPO_ROOT

BACKENDS = ("torch", "dense", "onnxruntime")
BATCHES = (1, 8, 64)
DATA_DIR = REPO_ROOT.parent / "shared" / "datasets"
# (row label, task, what one call does to `batch` inputs)
Case = tuple[str, str, Callable[[Any, list[str]], Any]]


def _encode_and_step(handler: Any, inputs: list[str]) -> None:
    prepared = handler.preprocess(inputs, handler.validate("translate", {}))
    src, lengths = _padded(handler, [prepared.encoded[i] for i in prepared.order])
    with torch.inference_mode():
        memory, state = handler.decoder.encode(src, lengths)
        prev = torch.full((len(lengths),), handler.model.config.bos_id, dtype=torch.long)
        handler.decoder.decode_step(memory, state, prev)


def _padded(handler: Any, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    from seqserve.shared.nn.padding import pad_sequences

    return pad_sequences(sequences, handler.model.config.pad_id)


CASES: list[Case] = [
    ("classify", "classify", lambda h, xs: h.run(xs, {})),
    ("tag", "tag", lambda h, xs: h.run(xs, {})),
    ("score", "generate", lambda h, xs: h.run(xs, {}, "score")),
    ("generate, 20 tokens greedy", "generate", lambda h, xs: h.run(xs, {"max_tokens": 20, "temperature": 0}, "generate")),
    ("translate: encoder + 1 decoder step", "translate", _encode_and_step),
    ("translate: beam-5 decode", "translate", lambda h, xs: h.run(xs, {"beam_size": 5})),
]


def build(task: str, checkpoint: Path, backend: str, threads: int, cache: Path) -> Any:
    """The task's handler on `backend`, as a worker with `threads` intra-op threads builds it."""
    settings = Settings(device="cpu", torch_threads=threads, inference_backend="onnxruntime", onnx_cache_dir=cache)
    sha = sha256_file(checkpoint)
    handler = build_handler(load_checkpoint(checkpoint, sha), "cpu", settings)
    if backend == "dense":
        attach_graphs(handler, {name: TorchGraph(g.module) for name, g in GRAPHS[task](handler.model).items()})
    elif backend == "onnxruntime":
        if attach_backend(handler, checkpoint, sha, settings) != "onnxruntime":
            raise RuntimeError(f"{task}: the ONNX export failed (see the log)")
    return handler


def rate(call: Callable[[], Any], sentences: int, seconds: float) -> float:
    """Sentences per second over at least two calls and `seconds`."""
    call()  # warm-up (first-call allocations, ONNX Runtime's kernel selection)
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        call()
        calls += 1
    return sentences * calls / (time.perf_counter() - start)


def inputs_for(task: str, batch: int) -> list[str]:
    kind = "translate" if task == "translate" else "classify"
    sentences = sample_inputs(kind, DATA_DIR)
    return sentences[100 : 100 + batch]  # the same real sentences for every backend


def bench_backends(checkpoints: dict[str, Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    rows = []
    for label, task, call in CASES:
        if task not in checkpoints:
            continue
        handlers = {b: build(task, checkpoints[task], b, 1, args.cache) for b in BACKENDS}
        for batch in BATCHES:
            xs = inputs_for(task, batch)
            best = dict.fromkeys(BACKENDS, 0.0)
            for _ in range(args.rounds):
                for backend, handler in handlers.items():
                    measured = rate(lambda h=handler, c=call, x=xs: c(h, x), batch, args.seconds)
                    best[backend] = max(best[backend], measured)
            row = {"case": label, "batch": batch, **{b: round(v, 1) for b, v in best.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _process_rate(task: str, checkpoint: str, backend: str, threads: int, batch: int, seconds: float,
                  cache: str, start_at: float) -> float:
    torch.set_num_threads(threads)
    handler = build(task, Path(checkpoint), backend, threads, Path(cache))
    xs = inputs_for(task, batch)
    call = CASES[0][2] if task == "classify" else CASES[-1][2]
    time.sleep(max(0.0, start_at - time.time()))  # both processes measure the same seconds
    return rate(lambda: call(handler, xs), batch, seconds)


def bench_threads(checkpoints: dict[str, Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Sentences/s of one process with 1 or 2 intra-op threads, and of 2 one-thread processes."""
    rows = []
    context = multiprocessing.get_context("spawn")
    for task in ("classify", "translate"):
        if task not in checkpoints:
            continue
        for backend in ("torch", "onnxruntime"):
            for batch in (1, 64):
                row: dict[str, Any] = {"task": task, "backend": backend, "batch": batch}
                for label, processes, threads in (("1 proc x 1 thread", 1, 1), ("1 proc x 2 threads", 1, 2),
                                                  ("2 procs x 1 thread", 2, 1)):
                    start_at = time.time() + 8.0  # start-up (imports, model load) happens before
                    job = (task, str(checkpoints[task]), backend, threads, batch, args.seconds * 3, str(args.cache),
                           start_at)
                    with context.Pool(processes) as pool:
                        row[label] = round(sum(pool.starmap(_process_rate, [job] * processes)), 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", default=[], metavar="TASK=PATH", required=True)
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", action="store_true", help="also measure threads and processes")
    parser.add_argument("--cache", type=Path, default=Path("var/onnx-bench"), help="ONNX export cache")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/backends.json"))
    args = parser.parse_args()
    checkpoints = {task: Path(path) for task, _, path in (c.partition("=") for c in args.checkpoint)}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result: dict[str, Any] = {"machine": cpu_machine(), "started": started, "seconds": args.seconds,
                              "rounds": args.rounds, "backends": bench_backends(checkpoints, args)}
    if args.threads:
        result["threads"] = bench_threads(checkpoints, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

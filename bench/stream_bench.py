"""Time to first token of a streamed `generate` job against the time to the whole answer
without streaming, at 1 and 16 concurrent clients, through seqserve_client against a running
stack (results: docs/benchmarks/streaming.md):

    python -m bench.stream_bench --base http://127.0.0.1:8000 --api-key KEY --model ptb-lm \
        --concurrency 1 16 --rounds 5 --max-tokens 50

Each client submits one job per round: streamed (`client.stream`) in one pass, plain
(`client.run`, `Prefer: wait`) in the next, the same prompts and seed, so both passes decode
the same words; per pass: time to the first `token` event, to the `final` event, and to the
plain job's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from seqserve_client import AsyncClient

PROMPTS = ["the company said", "shares of the", "in new york", "the market", "analysts expect", "the bank"]


async def streamed(client: AsyncClient, model: str, prompt: str, params: dict[str, Any]) -> tuple[float, float]:
    started, first = time.perf_counter(), None
    async for event in client.stream("generate", model, [prompt], params):
        if event.event == "token" and first is None:
            first = time.perf_counter() - started
        if event.event == "final":
            assert event.data["status"] == "succeeded", event.data
    total = time.perf_counter() - started
    return (first if first is not None else total), total


async def plain(client: AsyncClient, model: str, prompt: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    await client.run("generate", model, [prompt], params)
    return time.perf_counter() - started


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


async def measure(args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    params = {"max_tokens": args.max_tokens, "seed": 7, "temperature": 1.0}
    first, whole_streamed, whole_plain = [], [], []
    async with AsyncClient(args.base, api_key=args.api_key, timeout=120) as client:
        await plain(client, args.model, "warm up", params)  # the worker loads the model once
        for _ in range(args.rounds):
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(concurrency)]
            for ttft, total in await asyncio.gather(*(streamed(client, args.model, p, params) for p in prompts)):
                first.append(ttft)
                whole_streamed.append(total)
            whole_plain += await asyncio.gather(*(plain(client, args.model, p, params) for p in prompts))
    return {
        "concurrency": concurrency, "jobs_per_pass": len(first), "max_tokens": args.max_tokens,
        "first_token_p50_ms": _p(first, 50), "first_token_p95_ms": _p(first, 95),
        "streamed_total_p50_ms": _p(whole_streamed, 50),
        "plain_total_p50_ms": _p(whole_plain, 50), "plain_total_p95_ms": _p(whole_plain, 95),
        "first_token_share_of_plain": statistics.median(first) / statistics.median(whole_plain),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", default="ptb-lm")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=50)
    args = parser.parse_args()
    for concurrency in args.concurrency:
        print(json.dumps(asyncio.run(measure(args, concurrency))), flush=True)


if __name__ == "__main__":
    main()

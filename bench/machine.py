"""What machine a benchmark ran on: sessions land on different CPUs, so every row names its own."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Instruction sets that change how fast these models run (bfloat16 autocast needs one of the last two).
_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


def cpu_model() -> str:
    """The CPU's model name and its relevant instruction sets, else the architecture."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    features = [label for flag, label in _FEATURES.items() if flag in flags]
    described = f"{platform.machine()} {name}".strip()
    return f"{described} ({', '.join(features)})" if features else described


def cpu_machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} CPUs, no GPU"

#!/usr/bin/env bash
# The GPU run in one command (bench/gpu_check.py): CUDA tests, the serving benchmark with a CUDA
# worker, a full-preset epoch per task; one table, under 8 minutes. --dry-run prints the plan.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench.gpu_check "$@"

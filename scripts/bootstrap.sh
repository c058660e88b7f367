#!/usr/bin/env bash
# Create .venv (once) and install seqserve with its test extras from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch first and pinned: a looser request lets pip choose a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install --quiet -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, celery, fastapi, sqlalchemy, alembic; print('seqserve environment ready: torch', torch.__version__)"

#!/usr/bin/env bash
# Create .venv (once) and install seqserve from this checkout: `scripts/bootstrap.sh` for
# running it, `scripts/bootstrap.sh test` for the test extras too. One pip run (torch is
# pinned in pyproject.toml: a looser request lets pip choose a multi-GB CUDA build), bytecode
# for the modules the services import rather than for every file installed, and nothing at all
# when the venv already holds this checkout's requirements. A line every 10 s says it is busy.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${1:-}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
# What the venv was installed from: the requirements, the extras and the interpreter.
stamp_of() { { cat pyproject.toml setup.py 2>/dev/null; echo "$1"; .venv/bin/python -VV; } | sha256sum | cut -d' ' -f1; }
stamp=$(stamp_of "$EXTRAS")
have=$(cat .venv/.seqserve-installed 2>/dev/null || true)
case " $have " in
  *" $stamp "*) echo "seqserve environment up to date (.venv)"; exit 0 ;;
esac
echo "installing seqserve into .venv (first time: about a minute, torch is most of it)"
started=$SECONDS
# The ticker's sleep runs in the background and is killed with it, so nothing outlives the script.
( trap 'kill $! 2>/dev/null; exit 0' TERM
  while :; do sleep 10 & wait $!; echo "  still installing ($((SECONDS - started)) s)"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
# pip's output (setuptools' build warnings, some 40 lines on every fresh install) goes to a log,
# shown whole if the install fails.
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile -e "$spec" \
    > .venv/pip-install.log 2>&1; then
  kill $ticker 2>/dev/null || true
  cat .venv/pip-install.log >&2
  echo "bootstrap: pip could not install seqserve (its output above, also in .venv/pip-install.log)" >&2
  exit 1
fi
kill $ticker 2>/dev/null || true
# Import what the services import, once, writing the bytecode pip's --no-compile left out:
# only the modules used (pip would compile all of torch's files), and once rather than in
# each process. PYTHONDONTWRITEBYTECODE is lifted for this one run: with it set (as in CI)
# every process compiled torch's modules again at each start, 9 s of CPU instead of 4.
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -c "
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
import torch
print('seqserve environment ready: torch', torch.__version__)" \
  seqserve.services.up seqserve.services.api.main seqserve.services.worker.app seqserve.services.worker.backends \
  seqserve.services.trainer.app seqserve.services.trainer.service seqserve.services.trainer.plots \
  torch.onnx onnx onnxruntime uvicorn celery.bin.celery
# A test install also satisfies a run install: keep both stamps.
if [ -n "$EXTRAS" ]; then
  echo "$stamp $(stamp_of "")" > .venv/.seqserve-installed
else
  echo "$stamp $have" | cut -d' ' -f1-3 > .venv/.seqserve-installed
fi

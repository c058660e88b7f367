#!/usr/bin/env bash
# The README's test command: install, lint and type-check (ruff, mypy), then run the whole
# suite against the real Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379), in random
# order (pytest-randomly; `-p no:randomly` turns it off). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
scripts/lint.sh
exec .venv/bin/python -m pytest "$@"

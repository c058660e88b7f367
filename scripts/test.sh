#!/usr/bin/env bash
# The README's test command: install, then run the whole suite against the real Postgres
# (127.0.0.1:5432) and Redis (127.0.0.1:6379). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"

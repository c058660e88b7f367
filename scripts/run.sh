#!/usr/bin/env bash
# The README's run command: install, then run everything on this machine (embedded default:
# SQLite + a filesystem broker under ./var, unless SEQSERVE_DATABASE_URL / SEQSERVE_BROKER_URL
# say otherwise). Trains the quick SST-2 classifier first if the registry has none.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/seqserve up "$@"

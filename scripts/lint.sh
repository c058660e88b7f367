#!/usr/bin/env bash
# ruff (lint) and mypy (types) over the code, as the README's test command runs them.
# mypy cannot follow setuptools' editable-install finder (services/ installs as
# seqserve.services), so it reads the code through a folder of links named like the package.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
links=$(mktemp -d)
trap 'rm -rf "$links"' EXIT
mkdir "$links/seqserve"
ln -s "$PWD/services" "$links/seqserve/services"
ln -s "$PWD/shared" "$links/seqserve/shared"
ln -s "$PWD/clients/python/seqserve_client" "$links/seqserve_client"
MYPYPATH="$links" .venv/bin/mypy -p seqserve.services -p seqserve.shared -p seqserve_client

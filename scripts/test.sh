#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), lints (ruff), then runs the whole test suite on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff check"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -n 2 "$@"

#!/usr/bin/env bash
# The main job: sets everything up, then runs the flagship demo headless and prints what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m workbench.demo "$@"

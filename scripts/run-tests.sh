#!/usr/bin/env bash
# Install everything into .venv, then run the linter, the type checker and the test suite.
# Usage: bash scripts/run-tests.sh [PYTEST ARGS...]
# Soak tests (long kill matrices) are excluded; run them with: -m soak
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
# train-cpu is the train extra with the CPU-only xgboost-cpu wheel.
bash scripts/setup-env.sh "gcs,s3,hf,optuna,lightgbm,catboost,sklearn,train-cpu,test"
.venv/bin/ruff check persistkit persistkit_train tests benchmarks
.venv/bin/mypy
if [ "$#" -eq 0 ]; then
    set -- -m "not soak"
fi
.venv/bin/python -m pytest "$@"

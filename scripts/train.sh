#!/usr/bin/env bash
# Install persistkit_train into .venv and run the resumable training job.
# Usage: bash scripts/train.sh --data numbers.csv [persistkit-train run options...]
# The store defaults to a local folder; re-running the same command resumes.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo_root/scripts/setup-env.sh" train
exec "$repo_root/.venv/bin/persistkit-train" run "$@"

"""Resumable XGBoost training with the persistkit library alone.

Kill this script at any moment (Ctrl-C, SIGKILL, a notebook timeout) and run it again.
Training then continues from the last checkpoint in the store instead of from round 0.
The early-stopping state is restored too, so the final booster matches an uninterrupted
run.

    pip install "persistkit[xgboost]"
    python examples/library_only_xgboost.py [STORE_URL]

STORE_URL defaults to the local folder ./persistkit-runs/xgboost-example; an hf://, gs://
or s3:// URL keeps the checkpoints when the machine goes away.
"""

from __future__ import annotations

import sys

import numpy as np
import xgboost

import persistkit.xgboost
from persistkit import CheckpointStore, Deadline


def make_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a synthetic regression problem: 20 features, a nonlinear target plus noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 20)).astype(np.float32)
    target = np.sin(features[:, 0]) * 3 + features[:, 1] * features[:, 2] + rng.normal(size=rows)
    return features, target


def main(store_url: str) -> None:
    train_x, train_y = make_data(20_000, seed=0)
    valid_x, valid_y = make_data(5_000, seed=1)
    dtrain = xgboost.DMatrix(train_x, label=train_y)
    dvalid = xgboost.DMatrix(valid_x, label=valid_y)
    params = {"objective": "reg:squarederror", "eta": 0.05, "max_depth": 6, "seed": 0}

    # Stop cleanly before a Kaggle or Colab session ends; None elsewhere (no limit).
    deadline = Deadline.from_platform()

    with CheckpointStore(store_url) as store:
        booster = persistkit.xgboost.train(
            params,
            dtrain,
            num_boost_round=2000,
            evals=[(dvalid, "valid")],
            early_stopping_rounds=50,
            verbose_eval=100,
            store=store,
            key="xgboost-example/booster",
            every_rounds=50,
            every_seconds=30,
            deadline=deadline,
        )
    # persistkit_status is "completed", or "stopped_by_deadline" when the session limit
    # came first; run the script again to continue.
    print(f"status: {booster.persistkit_status.value}")
    print(f"best iteration {booster.best_iteration}, best validation RMSE {booster.best_score:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "./persistkit-runs/xgboost-example")

"""Held-out R² on log price of LightGBM with plain digit features and with persistkit_train's.

Usage::

    python benchmarks/bench_features.py --data numberdata.csv [--seeds 42 0 1 2 3] [--json out.json]

For each split method (stratified by price quintile, grouped by six-digit prefix) and each
seed, the script holds out 20 % with :func:`persistkit_train.split.holdout_split`, fits
LightGBM on the rest and prints R² on log price of the held-out rows. Feature sets:

- ``plain30``: thirty plain digit features (the ten digits by position, the count of each
  digit 0-9, nine flags for equal adjacent digits, the digit sum), the reference point.
- ``features``: :func:`persistkit_train.features.build_features`.
- ``features+te``: the same plus out-of-fold target encoding of the six-digit prefix and
  the last four digits, with CV folds of the same kind as the split (grouped folds for
  the grouped split).

Models: LightGBM with its defaults (``default``) and a lightly tuned setting (``tuned``:
more, slower trees with row and column subsampling), both with ``random_state=0`` and one
thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import lightgbm
import numpy as np
import pandas as pd

from persistkit_train.data import load_numbers
from persistkit_train.features import OutOfFoldTargetEncoder, build_features
from persistkit_train.metrics import regression_metrics
from persistkit_train.split import cv_folds, holdout_split, prefix_groups

DEFAULT_PARAMS = {"random_state": 0, "verbose": -1, "n_jobs": 1}
TUNED_PARAMS = {
    "n_estimators": 1500,
    "learning_rate": 0.02,
    "num_leaves": 31,
    "min_child_samples": 10,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.6,
    "reg_lambda": 1.0,
    "random_state": 0,
    "verbose": -1,
    "n_jobs": 1,
}
MODELS: dict[str, dict[str, Any]] = {"default": DEFAULT_PARAMS, "tuned": TUNED_PARAMS}


def plain_digit_features(numbers: pd.Series) -> pd.DataFrame:
    digits = np.array([[int(char) for char in number] for number in numbers])
    columns = {f"digit_{i}": digits[:, i] for i in range(10)}
    columns.update({f"count_{d}": (digits == d).sum(axis=1) for d in range(10)})
    columns.update({f"same_{i}": (digits[:, i] == digits[:, i + 1]).astype(int) for i in range(9)})
    columns["digit_sum"] = digits.sum(axis=1)
    return pd.DataFrame(columns)


def feature_sets(
    frame: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray, method: str
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    plain = plain_digit_features(frame["number"])
    features = build_features(frame["number"])
    sets = {
        "plain30": (plain.iloc[train], plain.iloc[test]),
        "features": (features.iloc[train], features.iloc[test]),
    }

    train_frame = frame.iloc[train].reset_index(drop=True)
    groups = prefix_groups(train_frame["number"]) if method == "grouped" else None
    folds = cv_folds(train_frame, seed=1, groups=groups)
    encoder = OutOfFoldTargetEncoder(keys=("prefix6", "suffix4"))
    encoded_train = encoder.fit_transform(train_frame, y[train], folds)
    encoded_test = encoder.transform(frame.iloc[test].reset_index(drop=True))
    sets["features+te"] = (
        pd.concat([features.iloc[train].reset_index(drop=True), encoded_train], axis=1),
        pd.concat([features.iloc[test].reset_index(drop=True), encoded_test], axis=1),
    )
    return sets


def run(data: Path, seeds: list[int]) -> list[dict[str, object]]:
    loaded = load_numbers(data)
    frame = loaded.frame
    y = np.log(frame["price"].to_numpy())
    rows = []
    methods: tuple[Literal["stratified"], Literal["grouped"]] = ("stratified", "grouped")
    for method in methods:
        for seed in seeds:
            train, test = holdout_split(frame, method=method, seed=seed)
            for set_name, (x_train, x_test) in feature_sets(frame, y, train, test, method).items():
                for model_name, params in MODELS.items():
                    started = time.perf_counter()
                    model = lightgbm.LGBMRegressor(**params).fit(x_train, y[train])
                    predicted = np.asarray(model.predict(x_test))
                    r2 = regression_metrics(y[test], predicted)["r2_log"]
                    rows.append(
                        {
                            "split": method,
                            "seed": seed,
                            "features": set_name,
                            "columns": x_train.shape[1],
                            "model": model_name,
                            "r2_log": r2,
                            "seconds": time.perf_counter() - started,
                        }
                    )
                    print(
                        f"  {method:10} seed {seed:3} {set_name:12} {model_name:8} {r2:.4f}",
                        flush=True,
                    )
    return rows


def print_table(rows: list[dict[str, object]], seeds: list[int]) -> None:
    print()
    print(f"Held-out R² on log price, LightGBM {lightgbm.__version__}, seeds {seeds}")
    print("| split | features | columns | model | first seed | mean | min | max |")
    print("|---|---|---|---|---|---|---|---|")
    keys = dict.fromkeys((r["split"], r["features"], r["columns"], r["model"]) for r in rows)
    for split, features, columns, model in keys:
        values = [
            float(r["r2_log"])  # type: ignore[arg-type]
            for r in rows
            if (r["split"], r["features"], r["model"]) == (split, features, model)
        ]
        print(
            f"| {split} | {features} | {columns} | {model} | {values[0]:.4f} | "
            f"{statistics.mean(values):.4f} | {min(values):.4f} | {max(values):.4f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="CSV with phone_number,price")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[42], help="split seeds (default: 42)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()

    rows = run(args.data, args.seeds)
    print_table(rows, args.seeds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

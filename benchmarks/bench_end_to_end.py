"""Benchmark: end-to-end ``persistkit-train run`` with and without persistence, and a plain loop.

Three runs on the same data, side by side:

1. ``persistkit-train run --preset quick`` with a local-folder store (the default),
   started from an empty store;
2. the same with a ``memory://`` store: every stage, study and checkpoint still goes
   through persistkit, but nothing reaches a disk. The pipeline has no switch that turns
   persistence off, so this is the closest run without durable persistence;
3. a plain Optuna loop with the quick preset's trials, folds and search space per model
   (TPE, seed 42) on the same features and split, each fold training the maximum number
   of rounds with no early stopping and no pruning, then one final fit per model with
   the best parameters. It has no stacking, no report and no checkpoints.

Each run is a separate process, so import time counts in every row.

Usage: ``python benchmarks/bench_end_to_end.py --data numberdata.csv [--trials N] [--reps N]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _measure import REPO_ROOT, median, report


def plain_loop(data: str, trials: int | None) -> None:
    """Tune and fit the three models with plain Optuna and the libraries' own training."""
    import numpy as np
    import optuna

    from persistkit_train._models import suggest_params
    from persistkit_train.config import make_config
    from persistkit_train.data import load_numbers
    from persistkit_train.features import build_features
    from persistkit_train.split import cv_folds, holdout_split

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = make_config("quick", trials=trials)
    loaded = load_numbers(data)
    features = build_features(list(loaded.frame["number"])).to_numpy(dtype=np.float32)
    target = np.log(loaded.frame["price"].to_numpy(dtype=np.float64))
    train_idx, _ = holdout_split(loaded.frame, seed=config.seed)
    x, y = features[train_idx], target[train_idx]
    folds = cv_folds(len(train_idx), n_splits=config.folds, seed=config.seed)

    for model in config.models:
        def objective(trial: Any, model: str = model) -> float:
            params = suggest_params(model, trial, config)
            scores = []
            for fit_rows, valid_rows in folds:
                predicted = _fit_predict(model, params, x[fit_rows], y[fit_rows], x[valid_rows],
                                         config.max_rounds, config.seed)
                residual = y[valid_rows] - predicted
                scores.append(1 - residual.var() / y[valid_rows].var())
            return float(np.mean(scores))

        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=config.seed))
        study.optimize(objective, n_trials=config.trials)
        _fit_predict(model, suggest_params(model, optuna.trial.FixedTrial(study.best_params),
                                           config), x, y, x[:10], config.max_rounds, config.seed)


def _fit_predict(model: str, params: dict[str, Any], x: Any, y: Any, x_new: Any,
                 rounds: int, seed: int) -> Any:
    if model == "xgboost":
        import xgboost

        booster = xgboost.train({**params, "objective": "reg:squarederror", "seed": seed},
                                xgboost.DMatrix(x, label=y), num_boost_round=rounds)
        return booster.predict(xgboost.DMatrix(x_new))
    if model == "lightgbm":
        import lightgbm

        booster = lightgbm.train({**params, "objective": "regression", "seed": seed, "verbose": -1},
                                 lightgbm.Dataset(x, y), num_boost_round=rounds)
        return booster.predict(x_new)
    from catboost import CatBoostRegressor

    regressor = CatBoostRegressor(**params, iterations=rounds, random_seed=seed, verbose=False,
                                  allow_writing_files=False)
    return regressor.fit(x, y).predict(x_new)


def timed(command: list[str]) -> float:
    """Run ``command`` and return its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    subprocess.run(command, check=True, timeout=3600, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def main() -> None:
    """Run the three configurations and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="phone-number CSV")
    parser.add_argument("--trials", type=int, help="trials per model (default: the quick preset's 10)")
    parser.add_argument("--reps", type=int, default=1,
                        help="repetitions of each run, alternating between the runs (default 1)")
    parser.add_argument("--json", type=Path, help="JSON output path")
    parser.add_argument("--plain-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_child:
        plain_loop(args.data, args.trials)
        return

    started = time.monotonic()
    trials = ["--trials", str(args.trials)] if args.trials else []
    train = [sys.executable, "-m", "persistkit_train", "run", "--data", args.data,
             "--preset", "quick", "--progress", "off", *trials]
    seconds: dict[str, list[float]] = {}
    for _ in range(args.reps):
        # Each repetition starts from an empty store, in a folder of its own.
        folder = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
        try:
            local = ["--store", str(folder / "store"), "--output", str(folder / "out-local")]
            memory = ["--store", "memory://bench-e2e", "--output", str(folder / "out-memory")]
            runs = {
                "persistkit-train, local store": [*train, *local],
                "persistkit-train, memory:// store": [*train, *memory],
                "plain Optuna loop, no early stopping or pruning":
                    [sys.executable, __file__, "--data", args.data, "--plain-child", *trials],
            }
            for name, command in runs.items():
                seconds.setdefault(name, []).append(timed(command))
                print(name, seconds[name][-1], flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    baseline = median(seconds["persistkit-train, memory:// store"])
    rows = [[name, median(values), min(values), max(values),
             f"{(median(values) / baseline - 1) * 100:+.1f}%"]
            for name, values in seconds.items()]
    report("bench_end_to_end", ["run", "median wall s", "min s", "max s",
                                "against memory:// store"], rows,
           json_path=args.json, started=started,
           settings={"trials": args.trials or 10, "preset": "quick", "reps": args.reps,
                     "cwd": str(REPO_ROOT)})


if __name__ == "__main__":
    main()

"""Kill-matrix target: XGBoost, LightGBM or CatBoost training through a persistkit adapter.

Usage: ``python -m persistkit.testing.kill_targets.boosting STORE OUT LIBRARY [options]``
with LIBRARY one of ``xgboost``, ``lightgbm``, ``catboost``.

The data are a seeded synthetic regression problem, training uses one thread and early
stopping on a validation set, and the adapter checkpoints often. ``result.json`` contains
the predictions on a test set, the best iteration and score, and the evaluation
history: what a resumed run must reproduce.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from persistkit.testing.kill_targets._common import (
    RESULT_NAME,
    float_list,
    open_store,
    regression_data,
    split_rows,
    write_json_atomic,
)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="store URL")
    parser.add_argument("out", type=Path, help="output folder for result.json")
    parser.add_argument("library", choices=("xgboost", "lightgbm", "catboost"))
    parser.add_argument("--rows", type=int, default=4000, help="rows of synthetic data (default 4000)")
    parser.add_argument("--features", type=int, default=20, help="features (default 20)")
    parser.add_argument("--rounds", type=int, default=300, help="maximum boosting rounds (default 300)")
    parser.add_argument("--every-rounds", type=int, default=10,
                        help="checkpoint every N rounds; 0 checkpoints by time only (default 10)")
    parser.add_argument("--every-seconds", type=float, default=1.0,
                        help="also checkpoint every T seconds; CatBoost uses it only with "
                        "--every-rounds 0 (default 1)")
    parser.add_argument("--subsample", type=float, default=None,
                        help="row subsampling fraction; makes the resumed run approximate, and "
                        "result.json then contains only the test RMSE and the best score")
    parser.add_argument("--seed-per-iteration", action="store_true",
                        help="XGBoost: seed each round from the round number")
    return parser.parse_args(argv)


def _data(args: argparse.Namespace) -> dict[str, Any]:
    x, y = regression_data(args.rows, args.features, seed=11)
    x_train, y_train, x_rest, y_rest = split_rows(x, y, 0.6)
    x_valid, y_valid, x_test, y_test = split_rows(x_rest, y_rest, 0.5)
    return {"x_train": x_train, "y_train": y_train, "x_valid": x_valid, "y_valid": y_valid,
            "x_test": x_test, "y_test": y_test}


def _train_xgboost(args: argparse.Namespace, store: Any, data: dict[str, Any]) -> dict[str, Any]:
    import xgboost

    import persistkit.xgboost

    dtrain = xgboost.DMatrix(data["x_train"], label=data["y_train"])
    dvalid = xgboost.DMatrix(data["x_valid"], label=data["y_valid"])
    params: dict[str, Any] = {"objective": "reg:squarederror", "max_depth": 6, "eta": 0.1,
                              "nthread": 1, "seed": 0, "eval_metric": "rmse"}
    if args.subsample is not None:
        params["subsample"] = args.subsample
    if args.seed_per_iteration:
        params["seed_per_iteration"] = True
    history: dict[str, Any] = {}
    booster = persistkit.xgboost.train(
        params, dtrain, num_boost_round=args.rounds, evals=[(dvalid, "valid")],
        early_stopping_rounds=30, evals_result=history, verbose_eval=False, store=store,
        key="xgb/model",
        every_rounds=args.every_rounds or None, every_seconds=args.every_seconds,
    )
    dtest = xgboost.DMatrix(data["x_test"])
    return {
        "predictions": float_list(booster.predict(dtest)),
        "best_iteration": booster.best_iteration,
        "best_score": booster.best_score,
        "rounds": booster.num_boosted_rounds(),
        "history": history,
    }


def _train_lightgbm(args: argparse.Namespace, store: Any, data: dict[str, Any]) -> dict[str, Any]:
    import lightgbm

    import persistkit.lightgbm

    train_set = lightgbm.Dataset(data["x_train"], data["y_train"], free_raw_data=False)
    valid_set = lightgbm.Dataset(data["x_valid"], data["y_valid"], reference=train_set)
    params: dict[str, Any] = {"objective": "regression", "learning_rate": 0.1, "num_leaves": 63,
                              "num_threads": 1, "deterministic": True, "force_row_wise": True,
                              "seed": 0, "verbose": -1, "metric": "rmse"}
    if args.subsample is not None:
        params.update(bagging_fraction=args.subsample, bagging_freq=1)
    history: dict[str, Any] = {}
    booster = persistkit.lightgbm.train(
        params, train_set, num_boost_round=args.rounds, valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lightgbm.early_stopping(30, verbose=False), lightgbm.record_evaluation(history)],
        store=store, key="lgbm/model", every_rounds=args.every_rounds or None,
        every_seconds=args.every_seconds,
    )
    return {
        "predictions": float_list(booster.predict(data["x_test"])),
        "best_iteration": booster.best_iteration,
        "best_score": {name: dict(scores) for name, scores in booster.best_score.items()},
        "rounds": booster.current_iteration(),
        "history": history,
    }


def _train_catboost(args: argparse.Namespace, store: Any, data: dict[str, Any]) -> dict[str, Any]:
    from catboost import CatBoostRegressor

    import persistkit.catboost

    options: dict[str, Any] = {"iterations": args.rounds, "depth": 6, "learning_rate": 0.1,
                               "thread_count": 1, "random_seed": 0, "verbose": False,
                               "od_type": "Iter", "od_wait": 30,
                               "train_dir": str(args.out / "catboost_info")}
    if args.subsample is not None:
        options.update(bootstrap_type="Bernoulli", subsample=args.subsample)
    model = persistkit.catboost.fit(
        CatBoostRegressor(**options), data["x_train"], data["y_train"],
        eval_set=(data["x_valid"], data["y_valid"]), store=store, key="cat/model",
        every_rounds=args.every_rounds or None,
        every_seconds=None if args.every_rounds else args.every_seconds,
    )
    return {
        "predictions": float_list(model.predict(data["x_test"])),
        "best_iteration": model.get_best_iteration(),
        "best_score": model.get_best_score(),
        "rounds": model.tree_count_,
        "history": model.get_evals_result(),
    }


_TRAINERS = {"xgboost": _train_xgboost, "lightgbm": _train_lightgbm, "catboost": _train_catboost}


def main(argv: list[str] | None = None) -> int:
    """Train or resume the model and return the exit code."""

    args = _parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = _data(args)
    with open_store(args.store) as store:
        result = _TRAINERS[args.library](args, store, data)
        store.flush(timeout=120)
    if args.subsample is not None and not args.seed_per_iteration:
        # A resumed run samples other rows after the resume, so single predictions and the
        # stopping round differ. What must stay close is the quality of the model.
        errors = [p - y for p, y in zip(result["predictions"], data["y_test"], strict=True)]
        test_rmse = (sum(error * error for error in errors) / len(errors)) ** 0.5
        result = {"test_rmse": float(test_rmse), "best_score": result["best_score"]}
    write_json_atomic(args.out / RESULT_NAME, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Library-specific fits and predictions behind :mod:`persistkit_train._models`."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np

from persistkit_train._models import FitOutcome, RoundCallback, Runtime

logger = logging.getLogger(__name__)


def fit_xgboost(
    params: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    *,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None,
    early_stopping_rounds: int | None,
    key: str,
    seed: int,
    runtime: Runtime,
    on_round: RoundCallback | None,
) -> FitOutcome:
    import xgboost

    import persistkit.xgboost

    full_params = {
        "objective": "reg:squarederror",
        "eval_metric": "rmse",
        "tree_method": "hist",
        "device": runtime.devices["xgboost"],
        "nthread": runtime.threads,
        "seed": seed,
        **params,
    }
    dtrain = xgboost.DMatrix(train[0], label=train[1], nthread=runtime.threads)
    evals = []
    if valid is not None:
        evals.append((xgboost.DMatrix(valid[0], label=valid[1], nthread=runtime.threads), "valid"))
    callbacks = [_xgboost_progress(xgboost, rounds, on_round)] if on_round else []
    # A "verbosity" training parameter would also set XGBoost's global verbosity for the
    # rest of the process; the context restores it after the fit.
    with xgboost.config_context(verbosity=0):
        booster = persistkit.xgboost.train(
            full_params,
            dtrain,
            num_boost_round=rounds,
            evals=evals,
            early_stopping_rounds=early_stopping_rounds if valid is not None else None,
            callbacks=callbacks,
            verbose_eval=False,
            **runtime.checkpoint_options(key),
        )
    used_rounds = rounds
    if valid is not None and early_stopping_rounds is not None:
        used_rounds = int(booster.best_iteration) + 1
    return FitOutcome(booster, used_rounds, _stopped(booster))


def fit_lightgbm(
    params: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    *,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None,
    early_stopping_rounds: int | None,
    key: str,
    seed: int,
    runtime: Runtime,
    on_round: RoundCallback | None,
) -> FitOutcome:
    import lightgbm

    import persistkit.lightgbm

    full_params = {
        "objective": "regression",
        "metric": "rmse",
        "device_type": runtime.devices["lightgbm"],
        "num_threads": runtime.threads,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
        **params,
    }
    train_set = lightgbm.Dataset(train[0], label=train[1], free_raw_data=False)
    valid_sets = []
    callbacks: list[Any] = []
    if valid is not None:
        valid_sets.append(
            lightgbm.Dataset(valid[0], label=valid[1], reference=train_set, free_raw_data=False)
        )
        if early_stopping_rounds is not None:
            callbacks.append(lightgbm.early_stopping(early_stopping_rounds, verbose=False))
    if on_round is not None:
        callbacks.append(_lightgbm_progress(rounds, on_round))
    booster = persistkit.lightgbm.train(
        full_params,
        train_set,
        num_boost_round=rounds,
        valid_sets=valid_sets,
        valid_names=["valid"] if valid_sets else None,
        callbacks=callbacks,
        **runtime.checkpoint_options(key),
    )
    used_rounds = rounds
    if valid is not None and early_stopping_rounds is not None and booster.best_iteration > 0:
        used_rounds = int(booster.best_iteration)
    return FitOutcome(booster, used_rounds, _stopped(booster))


def fit_catboost(
    params: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    *,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None,
    early_stopping_rounds: int | None,
    key: str,
    seed: int,
    runtime: Runtime,
    on_round: RoundCallback | None,
) -> FitOutcome:
    import catboost

    import persistkit.catboost

    options: dict[str, Any] = {
        "iterations": rounds,
        "loss_function": "RMSE",
        "random_seed": seed,
        "thread_count": runtime.threads,
        "task_type": "GPU" if runtime.devices["catboost"] == "cuda" else "CPU",
        "verbose": False,
        **params,
    }
    if valid is not None and early_stopping_rounds is not None:
        options["od_type"] = "Iter"
        options["od_wait"] = early_stopping_rounds
        options["use_best_model"] = True
    fit_options: dict[str, Any] = {}
    if on_round is not None and options["task_type"] == "CPU":
        # CatBoost accepts user callbacks on the CPU only.
        fit_options["callbacks"] = [_CatBoostProgress(rounds, on_round)]
    # The snapshot needs file writing on; CatBoost's own logs go to a scratch folder
    # instead of catboost_info/ in the working directory.
    with tempfile.TemporaryDirectory(prefix="persistkit-catboost-info-") as train_dir:
        model = catboost.CatBoostRegressor(**options, train_dir=train_dir)
        model = persistkit.catboost.fit(
            model,
            train[0],
            train[1],
            eval_set=valid,
            store=runtime.store,
            key=key,
            # A round interval makes CatBoost rewrite its snapshot file after every
            # iteration, which doubled the training time of 1,000 iterations on 6,112
            # rows (benchmarks/bench_overhead.py), so CatBoost saves by time only.
            every_rounds=None,
            every_seconds=runtime.every_seconds,
            deadline=runtime.deadline,
            **fit_options,
        )
    used_rounds = int(model.tree_count_)
    return FitOutcome(model, used_rounds, _stopped(model))


def predict(model_name: str, model: Any, rounds: int, features: np.ndarray) -> np.ndarray:
    """Predict with the first ``rounds`` rounds of a fitted model."""
    if model_name == "xgboost":
        import xgboost

        matrix = xgboost.DMatrix(features)
        return np.asarray(model.predict(matrix, iteration_range=(0, rounds)), dtype=np.float64)
    if model_name == "lightgbm":
        return np.asarray(model.predict(features, num_iteration=rounds), dtype=np.float64)
    # A CatBoost model fitted with use_best_model is already cut to its best round.
    return np.asarray(model.predict(features), dtype=np.float64)


def model_to_bytes(model_name: str, model: Any) -> bytes:
    """Serialise a fitted model in its library's native format (UBJSON, text, .cbm)."""
    if model_name == "xgboost":
        return bytes(model.save_raw(raw_format="ubj"))
    if model_name == "lightgbm":
        return model.model_to_string().encode()
    # NOTE: CatBoost 1.2 saves only to a path, so the bytes go through a temporary file.
    with tempfile.TemporaryDirectory(prefix="persistkit-cbm-") as folder:
        path = os.path.join(folder, "model.cbm")
        model.save_model(path, format="cbm")
        with open(path, "rb") as stream:
            return stream.read()


def model_from_bytes(model_name: str, payload: bytes) -> Any:
    """Load a model written by :func:`model_to_bytes`."""
    if model_name == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(payload))
        return booster
    if model_name == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_str=payload.decode())
    import catboost

    with tempfile.TemporaryDirectory(prefix="persistkit-cbm-") as folder:
        path = os.path.join(folder, "model.cbm")
        with open(path, "wb") as stream:
            stream.write(payload)
        return catboost.CatBoostRegressor().load_model(path, format="cbm")


NATIVE_SUFFIXES = {"xgboost": ".ubj", "lightgbm": ".txt", "catboost": ".cbm"}


def importances(model_name: str, model: Any, n_features: int) -> np.ndarray:
    """Return the raw gain importance of each feature column."""
    values = np.zeros(n_features, dtype=np.float64)
    if model_name == "xgboost":
        for name, gain in model.get_score(importance_type="total_gain").items():
            values[int(name.lstrip("f"))] = gain
    elif model_name == "lightgbm":
        values[:] = model.feature_importance(importance_type="gain")
    else:
        values[:] = model.get_feature_importance()
    return values


def _stopped(model: Any) -> bool:
    # The adapters set persistkit_status to a RunStatus, a str enum.
    return getattr(model, "persistkit_status", None) == "stopped_by_deadline"


def _xgboost_progress(xgboost: Any, rounds: int, on_round: RoundCallback) -> Any:
    class _Progress(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            on_round(epoch + 1, rounds)
            return False

    return _Progress()


def _lightgbm_progress(rounds: int, on_round: RoundCallback) -> Any:
    def callback(env: Any) -> None:
        on_round(env.iteration + 1, rounds)

    callback.order = 100  # type: ignore[attr-defined]
    return callback


class _CatBoostProgress:
    def __init__(self, rounds: int, on_round: RoundCallback) -> None:
        self._rounds = rounds
        self._on_round = on_round

    def after_iteration(self, info: Any) -> bool:
        self._on_round(info.iteration, self._rounds)
        return True

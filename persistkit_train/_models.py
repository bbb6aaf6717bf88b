"""The three base models: search spaces, resumable fits and predictions.

Every fit goes through the persistkit adapter of its library, so a fit killed midway
continues from its last checkpoint under the key the caller passes. Models see the
features as a float32 matrix with columns named ``f0``, ``f1``, ... so that any feature
name is safe for every library; :attr:`FitOutcome.importances` maps back by position.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from persistkit_train.config import TrainConfig

logger = logging.getLogger(__name__)

# Interval saves of XGBoost and LightGBM boosters are skipped while they would take
# more than this fraction of the training time. Serialising a booster takes time
# that grows with its number of trees, so a fixed round interval gets costly for
# large models. Training slowed by up to twice the cost the cap counts, because the
# upload thread also stalls the training threads (benchmarks/bench_overhead.py), so
# 1% is what keeps the measured overhead near 2%.
CHECKPOINT_MAX_OVERHEAD = 0.01

# Called with (rounds done, rounds planned) after every boosting round.
RoundCallback = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Execution settings of the fits: device per model, threads, store and deadline."""

    store: Any
    devices: dict[str, str]
    threads: int
    deadline: Any = None
    every_rounds: int = 50
    every_seconds: float = 30.0
    max_overhead: float | None = CHECKPOINT_MAX_OVERHEAD

    def checkpoint_options(self, key: str) -> dict[str, Any]:
        """Return the checkpoint arguments of the XGBoost and LightGBM adapters for ``key``."""
        return {
            "store": self.store,
            "key": key,
            "every_rounds": self.every_rounds,
            "every_seconds": self.every_seconds,
            "max_overhead": self.max_overhead,
            "deadline": self.deadline,
        }


@dataclasses.dataclass(frozen=True)
class FitOutcome:
    """A fitted model and the number of boosting rounds its predictions use."""

    model: Any
    rounds: int
    stopped_by_deadline: bool = False


class DeadlineReached(Exception):
    """The time budget ran out; everything finished so far is checkpointed."""


def suggest_params(model_name: str, trial: Any, config: TrainConfig) -> dict[str, Any]:
    """Sample the hyperparameters of ``model_name`` for an Optuna ``trial``."""
    low, high = config.learning_rate_range
    learning_rate = trial.suggest_float("learning_rate", low, high, log=True)
    if model_name == "xgboost":
        params: dict[str, Any] = {
            "learning_rate": learning_rate,
            "max_depth": trial.suggest_int("max_depth", 3, 8),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 32.0, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
        }
        if not config.exact_resume:
            params["subsample"] = trial.suggest_float("subsample", 0.5, 1.0)
            params["colsample_bytree"] = trial.suggest_float("colsample_bytree", 0.4, 1.0)
        return params
    if model_name == "lightgbm":
        params = {
            "learning_rate": learning_rate,
            "num_leaves": trial.suggest_int("num_leaves", 8, 256, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "lambda_l1": trial.suggest_float("lambda_l1", 1e-3, 10.0, log=True),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        }
        if not config.exact_resume:
            params["feature_fraction"] = trial.suggest_float("feature_fraction", 0.4, 1.0)
            params["bagging_fraction"] = trial.suggest_float("bagging_fraction", 0.5, 1.0)
            params["bagging_freq"] = 1
        return params
    if model_name == "catboost":
        params = {
            "learning_rate": learning_rate,
            "depth": trial.suggest_int("depth", 4, 8),
            "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 1.0, 30.0, log=True),
            "random_strength": trial.suggest_float("random_strength", 1e-2, 10.0, log=True),
        }
        if config.exact_resume:
            params["bootstrap_type"] = "No"
        else:
            params["bootstrap_type"] = "Bernoulli"
            params["subsample"] = trial.suggest_float("subsample", 0.5, 1.0)
        return params
    raise ValueError(f"Unknown model {model_name!r}")


def fit_model(
    model_name: str,
    params: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    *,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None,
    early_stopping_rounds: int | None,
    key: str,
    seed: int,
    runtime: Runtime,
    on_round: RoundCallback | None = None,
) -> FitOutcome:
    """Fit ``model_name`` with ``params``, checkpointing under ``key`` in the store.

    With ``valid`` and ``early_stopping_rounds``, training stops early and the outcome
    uses the best round; otherwise it trains exactly ``rounds`` rounds.
    """
    from persistkit_train import _boosters

    fit = {
        "xgboost": _boosters.fit_xgboost,
        "lightgbm": _boosters.fit_lightgbm,
        "catboost": _boosters.fit_catboost,
    }[model_name]
    return fit(
        params,
        train,
        rounds=rounds,
        valid=valid,
        early_stopping_rounds=early_stopping_rounds,
        key=key,
        seed=seed,
        runtime=runtime,
        on_round=on_round,
    )


def predict_model(model_name: str, outcome: FitOutcome, features: np.ndarray) -> np.ndarray:
    """Predict log prices for ``features`` with the rounds recorded in ``outcome``."""
    from persistkit_train import _boosters

    return _boosters.predict(model_name, outcome.model, outcome.rounds, features)


def feature_importances(model_name: str, model: Any, n_features: int) -> np.ndarray:
    """Return the gain importance of each feature column, normalised to sum to 1."""
    from persistkit_train import _boosters

    values = _boosters.importances(model_name, model, n_features)
    total = float(values.sum())
    return values / total if total > 0 else values


def deadline_expired(deadline: Any) -> bool:
    """Return True when ``deadline`` (a persistkit.Deadline or None) has passed."""
    if deadline is None:
        return False
    # NOTE: written against the Deadline contract before its implementation landed.
    expired = deadline.expired
    return bool(expired() if callable(expired) else expired)

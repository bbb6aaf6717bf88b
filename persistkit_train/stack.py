"""Final fits, out-of-fold predictions and the stacking meta-learner.

Out-of-fold (OOF) predictions come from one fit per model and fold with the tuned
parameters and a fixed number of rounds (no early stopping on the predicted fold). Each
model's fold is committed as soon as it is predicted, so a killed stacking stage resumes
at the first missing fold. The meta-learner is chosen by cross-validation on the OOF
matrix alone; the held-out rows play no part in the choice or the weights.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from persistkit_train._boosters import NATIVE_SUFFIXES, model_from_bytes, model_to_bytes
from persistkit_train._models import (
    DeadlineReached,
    FitOutcome,
    Runtime,
    fit_model,
    predict_model,
)
from persistkit_train._progress import ProgressReporter
from persistkit_train._stages import DataSet, StageLedger, decode_array, encode_array
from persistkit_train.config import TrainConfig
from persistkit_train.i18n import _
from persistkit_train.tune import TuneResult, r2_score

logger = logging.getLogger(__name__)

META_LEARNERS = ("mean", "best-single", "non-negative-linear", "ridge")


@dataclasses.dataclass(frozen=True)
class MetaLearner:
    """A linear blend of base-model predictions: intercept + weights @ predictions."""

    kind: str
    models: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    cv_scores: dict[str, float]

    def predict(self, base_predictions: np.ndarray) -> np.ndarray:
        """Blend a (rows, models) matrix of log-price predictions."""
        return self.intercept + base_predictions @ np.asarray(self.weights)

    def to_json(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload["models"] = list(self.models)
        payload["weights"] = list(self.weights)
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> MetaLearner:
        return cls(
            kind=payload["kind"],
            models=tuple(payload["models"]),
            weights=tuple(float(weight) for weight in payload["weights"]),
            intercept=float(payload["intercept"]),
            cv_scores={name: float(score) for name, score in payload["cv_scores"].items()},
        )


def run_final_stage(
    tuned: TuneResult,
    data: DataSet,
    config: TrainConfig,
    runtime: Runtime,
    ledger: StageLedger,
    progress: ProgressReporter,
) -> FitOutcome:
    """Fit ``tuned.model`` on every training row, or reuse the committed final model."""
    stage = f"final-{tuned.model}"
    if not ledger.done(stage):
        started = time.time()
        progress.start_rounds(_("{model} final fit").format(model=tuned.model), tuned.rounds)
        outcome = fit_model(
            tuned.model,
            tuned.params,
            data.train_matrix(),
            rounds=tuned.rounds,
            valid=None,
            early_stopping_rounds=None,
            key=f"final/{tuned.model}",
            seed=config.seed,
            runtime=runtime,
            on_round=progress.round_callback,
        )
        if outcome.stopped_by_deadline:
            raise DeadlineReached(stage)
        ledger.save(
            stage,
            {
                _native_name(tuned.model): model_to_bytes(tuned.model, outcome.model),
                "fit.json": {"rounds": outcome.rounds},
            },
            started=started,
        )
    checkpoint = ledger.load(stage)
    rounds = int(checkpoint.json("fit.json")["rounds"])
    model = model_from_bytes(tuned.model, checkpoint.files[_native_name(tuned.model)])
    return FitOutcome(model, rounds)


def _native_name(model: str) -> str:
    return "model" + NATIVE_SUFFIXES[model]


def run_stack_stage(
    tuned: dict[str, TuneResult],
    data: DataSet,
    config: TrainConfig,
    runtime: Runtime,
    ledger: StageLedger,
    progress: ProgressReporter,
) -> tuple[MetaLearner, np.ndarray]:
    """Compute the OOF matrix fold by fold and choose the meta-learner on it.

    Returns:
        The meta-learner and the OOF matrix (training rows x models, log price).
    """
    if not ledger.done("stack"):
        started = time.time()
        columns = [_oof_column(tuned[model], data, config, runtime, progress) for model in tuned]
        oof = np.column_stack(columns)
        meta = choose_meta_learner(oof, data.train_matrix()[1], data.folds, tuple(tuned))
        ledger.save(
            "stack",
            {"meta.json": meta.to_json(), "oof.npy": encode_array(oof)},
            started=started,
            metrics={f"oof_r2_{name}": score for name, score in meta.cv_scores.items()},
        )
    checkpoint = ledger.load("stack")
    meta = MetaLearner.from_json(checkpoint.json("meta.json"))
    logger.info(
        "%s",
        _("Meta-learner: {kind}, weights {weights}").format(
            kind=meta.kind,
            weights=", ".join(
                f"{model} {weight:.3f}" for model, weight in zip(meta.models, meta.weights, strict=True)
            ),
        ),
    )
    return meta, decode_array(checkpoint.files["oof.npy"])


def _oof_column(
    tuned: TuneResult,
    data: DataSet,
    config: TrainConfig,
    runtime: Runtime,
    progress: ProgressReporter,
) -> np.ndarray:
    features, target = data.train_matrix()
    column = np.full(len(target), np.nan)
    for fold, (fit_rows, valid_rows) in enumerate(data.folds):
        key = f"stack/{tuned.model}/fold-{fold}"
        if runtime.store.latest_step(key) is None:
            progress.start_rounds(
                _("{model} OOF fold {fold}").format(model=tuned.model, fold=fold), tuned.rounds
            )
            outcome = fit_model(
                tuned.model,
                tuned.params,
                (features[fit_rows], target[fit_rows]),
                rounds=tuned.rounds,
                valid=None,
                early_stopping_rounds=None,
                key=f"stack/{tuned.model}/fit-{fold}",
                seed=config.seed,
                runtime=runtime,
                on_round=progress.round_callback,
            )
            if outcome.stopped_by_deadline:
                raise DeadlineReached(key)
            prediction = predict_model(tuned.model, outcome, features[valid_rows])
            runtime.store.save(key, {"oof.npy": encode_array(prediction)}, step=0)
            runtime.store.flush()
        else:
            logger.info(
                "%s",
                _("{model} out-of-fold predictions of fold {fold}: reused from the store").format(
                    model=tuned.model, fold=fold
                ),
            )
        column[valid_rows] = decode_array(runtime.store.load(key).files["oof.npy"])
    return column


def choose_meta_learner(
    oof: np.ndarray,
    target: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    models: tuple[str, ...],
) -> MetaLearner:
    """Pick the meta-learner with the best mean R² over ``folds`` of the OOF rows.

    Ties go to the simpler learner, in the order of ``META_LEARNERS``.
    """
    cv_scores: dict[str, float] = {}
    for kind in META_LEARNERS:
        scores = []
        for fit_rows, valid_rows in folds:
            weights, intercept = _fit_blend(kind, oof[fit_rows], target[fit_rows])
            prediction = intercept + oof[valid_rows] @ weights
            scores.append(r2_score(target[valid_rows], prediction))
        cv_scores[kind] = float(np.mean(scores))
    best_kind = max(META_LEARNERS, key=lambda kind: (cv_scores[kind], -META_LEARNERS.index(kind)))
    weights, intercept = _fit_blend(best_kind, oof, target)
    return MetaLearner(
        kind=best_kind,
        models=models,
        weights=tuple(float(weight) for weight in weights),
        intercept=float(intercept),
        cv_scores=cv_scores,
    )


def _fit_blend(kind: str, predictions: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Return (weights, intercept) of one blend kind fitted on OOF rows."""
    n_models = predictions.shape[1]
    if kind == "mean":
        return np.full(n_models, 1.0 / n_models), 0.0
    if kind == "best-single":
        scores = [r2_score(target, predictions[:, column]) for column in range(n_models)]
        weights = np.zeros(n_models)
        weights[int(np.argmax(scores))] = 1.0
        return weights, 0.0
    from sklearn.linear_model import LinearRegression, Ridge

    if kind == "non-negative-linear":
        regression: Any = LinearRegression(positive=True)
    else:
        regression = Ridge(alpha=1.0)
    regression.fit(predictions, target)
    return np.asarray(regression.coef_, dtype=np.float64), float(regression.intercept_)

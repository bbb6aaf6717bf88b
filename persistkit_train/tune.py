"""Hyperparameter search per model: Optuna with K-fold CV, early stopping and pruning.

The study lives in the store through :mod:`persistkit.optuna`, so a search killed at any
point resumes with the missing trials only. Each fold fit of a trial checkpoints under
the trial's own key (``persistkit.optuna.trial_key``), so a retried trial continues its
boosters instead of starting at round 0. The score is the mean R² on log price over the
validation folds; the test rows never enter the search.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import numpy as np

from persistkit_train._models import (
    DeadlineReached,
    Runtime,
    fit_model,
    predict_model,
    suggest_params,
)
from persistkit_train._progress import ProgressReporter
from persistkit_train._stages import DataSet, StageLedger
from persistkit_train.config import TrainConfig
from persistkit_train.i18n import _

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """Best hyperparameters of one model and the search history.

    ``history`` pairs the index of each COMPLETE trial, in completion order, with its
    mean CV R².
    """

    model: str
    params: dict[str, Any]
    score: float
    rounds: int
    trials_complete: int
    history: list[tuple[int, float]]


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Return the coefficient of determination of ``y_pred`` against ``y_true``."""
    residual = float(np.sum((y_true - y_pred) ** 2))
    total = float(np.sum((y_true - np.mean(y_true)) ** 2))
    return 1.0 - residual / total if total > 0 else 0.0


def progress_key(model: str) -> str:
    return f"tune/{model}/progress"


def run_tune_stage(
    model: str,
    data: DataSet,
    config: TrainConfig,
    runtime: Runtime,
    ledger: StageLedger,
    progress: ProgressReporter,
) -> TuneResult:
    """Search the hyperparameters of ``model``, or reuse the finished search.

    Raises:
        DeadlineReached: The time budget ran out before the search finished.
    """
    stage = f"tune-{model}"
    if not ledger.done(stage):
        started = time.time()
        study = _search(model, data, config, runtime, progress)
        best = study.best_trial
        # Numbered by completion order, not Optuna's trial number: a trial killed with
        # its session takes a number, and the history must not depend on kills.
        values = [trial.value for trial in study.trials if trial.state.name == "COMPLETE"]
        history = [(index, float(value)) for index, value in enumerate(values)]
        ledger.save(
            stage,
            {
                "best.json": {
                    "params": _model_params(model, best, config),
                    "score": float(best.value),
                    "rounds": int(best.user_attrs["rounds"]),
                    "trials_complete": len(history),
                    "history": history,
                }
            },
            started=started,
            metrics={"cv_r2_log": float(best.value)},
        )
    payload = ledger.load(stage).json("best.json")
    logger.info(
        "%s",
        _("{model}: best CV R² {score:.4f} after {trials} trials, {rounds} rounds").format(
            model=model,
            score=payload["score"],
            trials=payload["trials_complete"],
            rounds=payload["rounds"],
        ),
    )
    return TuneResult(
        model=model,
        params=dict(payload["params"]),
        score=float(payload["score"]),
        rounds=int(payload["rounds"]),
        trials_complete=int(payload["trials_complete"]),
        history=[(int(number), float(value)) for number, value in payload["history"]],
    )


def _search(
    model: str,
    data: DataSet,
    config: TrainConfig,
    runtime: Runtime,
    progress: ProgressReporter,
) -> Any:
    import optuna

    import persistkit.optuna

    sampler = optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=max(3, min(10, config.trials // 4))
    )
    pruner: Any = optuna.pruners.NopPruner()
    if config.pruning:
        # Pruning after the first fold: a pruned trial does not count towards
        # config.trials, so it is worth pruning only when it saves most of a trial.
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    study = persistkit.optuna.load_study(
        runtime.store, f"{model}-search", direction="maximize", sampler=sampler, pruner=pruner
    )
    done = _count_complete(study)
    progress.start_trials(model, done, config.trials)
    started = time.time()
    seconds_before = _load_seconds(runtime.store, model)

    def record_progress(study: Any, trial: Any) -> None:
        complete = _count_complete(study)
        best = _best_value(study)
        progress.trial_finished(complete, best)
        logger.info(
            "%s",
            _("{model} trial {done} of {total}: {state}, CV R² {score}, best {best}").format(
                model=model,
                done=complete,
                total=config.trials,
                state=trial.state.name,
                score="-" if trial.value is None else f"{trial.value:.4f}",
                best="-" if best is None else f"{best:.4f}",
            ),
        )
        runtime.store.save(
            progress_key(model),
            {
                "progress.json": {
                    "complete": complete,
                    "total": config.trials,
                    "best": best,
                    "seconds": seconds_before + time.time() - started,
                }
            },
            # A new step per trial, never a replaced one: a crash while replacing a step
            # on an object store could leave the key without a committed step.
            step=trial.number + 1,
        )

    objective = _CrossValidationObjective(model, data, config, runtime, progress)
    outcome = persistkit.optuna.optimize(
        study,
        objective,
        n_trials=config.trials,
        deadline=runtime.deadline,
        callbacks=[record_progress],
    )
    progress.end_trials()
    if outcome.stopped_by_deadline or _count_complete(study) < config.trials:
        raise DeadlineReached(model)
    return study


class _CrossValidationObjective:
    """Mean validation R² on log price over the CV folds of the training rows."""

    def __init__(
        self,
        model: str,
        data: DataSet,
        config: TrainConfig,
        runtime: Runtime,
        progress: ProgressReporter,
    ) -> None:
        self._model = model
        self._features, self._target = data.train_matrix()
        self._folds = data.folds
        self._config = config
        # Fits inside a trial ignore the deadline: a trial cut short would end as FAIL
        # and lose its work, while optimize() starts no trial that the remaining time
        # cannot fit.
        self._runtime = dataclasses.replace(runtime, deadline=None)
        self._progress = progress

    def __call__(self, trial: Any) -> float:
        import optuna

        import persistkit.optuna

        params = suggest_params(self._model, trial, self._config)
        trial_key = persistkit.optuna.trial_key(trial)
        fold_keys = [f"{trial_key}/fold-{fold}" for fold in range(len(self._folds))]
        scores: list[float] = []
        rounds: list[int] = []
        for fold, (fit_rows, valid_rows) in enumerate(self._folds):
            outcome = self._fit_fold(params, fit_rows, valid_rows, fold_keys[fold])
            prediction = predict_model(self._model, outcome, self._features[valid_rows])
            scores.append(r2_score(self._target[valid_rows], prediction))
            rounds.append(outcome.rounds)
            trial.report(float(np.mean(scores)), fold)
            if trial.should_prune():
                self._delete_checkpoints(fold_keys[: fold + 1])
                raise optuna.TrialPruned()
        # The trial's result goes into the journal, so its boosters are no longer needed
        # to resume. A kill before the journal commit only makes the retry refit them.
        self._delete_checkpoints(fold_keys)
        trial.set_user_attr("rounds", math.ceil(float(np.mean(rounds))))
        trial.set_user_attr("fold_scores", scores)
        return float(np.mean(scores))

    def _delete_checkpoints(self, keys: list[str]) -> None:
        store = self._runtime.store
        for key in keys:
            if store.latest_step(key) is not None:
                store.delete(key)

    def _fit_fold(
        self, params: dict[str, Any], fit_rows: np.ndarray, valid_rows: np.ndarray, key: str
    ) -> Any:
        fold = key.rsplit("-", 1)[-1]
        label = _("{model} fold {fold}").format(model=self._model, fold=fold)
        self._progress.start_rounds(label, self._config.max_rounds)
        outcome = fit_model(
            self._model,
            params,
            (self._features[fit_rows], self._target[fit_rows]),
            rounds=self._config.max_rounds,
            valid=(self._features[valid_rows], self._target[valid_rows]),
            early_stopping_rounds=self._config.early_stopping_rounds,
            key=key,
            seed=self._config.seed,
            runtime=self._runtime,
            on_round=self._progress.round_callback,
        )
        return outcome


def _model_params(model: str, trial: Any, config: TrainConfig) -> dict[str, Any]:
    """Return the parameters ``suggest_params`` built for ``trial``, fixed ones included."""
    import optuna

    fixed = optuna.trial.FixedTrial(dict(trial.params))
    return suggest_params(model, fixed, config)


def _count_complete(study: Any) -> int:
    return sum(1 for trial in study.trials if trial.state.name == "COMPLETE")


def _best_value(study: Any) -> float | None:
    values = [trial.value for trial in study.trials if trial.state.name == "COMPLETE"]
    return float(max(values)) if values else None


def _load_seconds(store: Any, model: str) -> float:
    from persistkit.errors import CheckpointNotFoundError

    try:
        return float(store.load(progress_key(model)).json("progress.json")["seconds"])
    except CheckpointNotFoundError:
        return 0.0

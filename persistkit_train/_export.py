"""Glue between the pipeline's outputs and the predictor and report modules."""

from __future__ import annotations

import logging
import pathlib
import tempfile
from typing import Any

import numpy as np

from persistkit_train._models import FitOutcome
from persistkit_train.i18n import _

logger = logging.getLogger(__name__)

MODEL_FILE = "best_model.pkl"


def build_predictor(
    finals: dict[str, FitOutcome], meta: Any, feature_columns: list[str], metadata: dict[str, Any]
) -> Any:
    """Return a PhonePricePredictor holding the final boosters and the meta-learner.

    The final fits train exactly ``FitOutcome.rounds`` rounds, so predicting with every
    round of each booster matches the evaluation.
    """
    from persistkit_train.predictor import PhonePricePredictor

    return PhonePricePredictor(
        base_models={model: finals[model].model for model in meta.models},
        feature_columns=feature_columns,
        meta_learner=meta,
        metadata=metadata,
    )


def build_results(
    data: Any,
    tuned: dict[str, Any],
    evaluation: Any,
    importances: dict[str, np.ndarray],
    summary: dict[str, Any],
    data_lines: list[str],
) -> Any:
    """Return the EvaluationResults that the report is written from."""
    from persistkit_train.report import EvaluationResults

    return EvaluationResults(
        split=summary["split"],
        y_true_log=evaluation.y_true_log,
        predictions_log=evaluation.predictions,
        ensemble_name="ensemble",
        feature_importances={
            model: dict(zip(data.feature_names, map(float, values), strict=True))
            for model, values in importances.items()
        },
        optuna_histories={model: result.history for model, result in tuned.items()},
        optuna_direction="maximize",
        config=summary,
        data_summary=data_lines,
    )


def load_predictor(*, store_url: str | None, model_path: str | None) -> Any:
    """Load the predictor from ``model_path``, or from the export of a finished run.

    Without either, the default local store is used.

    Raises:
        FileNotFoundError: The file is missing or the run in the store has no export yet.
    """
    from persistkit_train.predictor import PhonePricePredictor

    if model_path is not None:
        if not pathlib.Path(model_path).is_file():
            raise FileNotFoundError(_("Model file {path} not found.").format(path=model_path))
        return PhonePricePredictor.load(model_path)

    from persistkit import CheckpointStore
    from persistkit.errors import CheckpointNotFoundError
    from persistkit_train.cli import DEFAULT_STORE

    url = store_url or DEFAULT_STORE
    with CheckpointStore(url, background=False) as store:
        try:
            payload = store.load("stages/export").files[MODEL_FILE]
        except CheckpointNotFoundError as exc:
            raise FileNotFoundError(
                _("The store {url} has no exported model yet; finish the run with "
                  "persistkit-train run --store {url} first.").format(url=store.url)
            ) from exc
    # The store verified the SHA-256 of this file against the manifest it wrote.
    with tempfile.TemporaryDirectory(prefix="persistkit-predict-") as folder:
        path = pathlib.Path(folder) / MODEL_FILE
        path.write_bytes(payload)
        return PhonePricePredictor.load(path)

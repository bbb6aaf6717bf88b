"""Held-out evaluation and export: metrics, report, best_model.pkl and native models.

The held-out rows are used here for the first time in a run. The export stage commits
every exported file to the store under ``stages/export``. Each run writes the files to
the output folder from there, so re-running a finished run in a new session (a new Kaggle
notebook session, for example) restores them without training again.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import tempfile
import time

import numpy as np

from persistkit_train._models import FitOutcome, feature_importances, predict_model
from persistkit_train._stages import DataSet, StageLedger, decode_array, encode_array
from persistkit_train.config import TrainConfig
from persistkit_train.i18n import _
from persistkit_train.stack import MetaLearner
from persistkit_train.tune import TuneResult

logger = logging.getLogger(__name__)

ENSEMBLE = "ensemble"
# Store file names are single path parts, so "plots/residuals.png" is stored as
# "plots__residuals.png" and restored on export.
_FOLDER_SEPARATOR = "__"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Held-out log-price predictions and metrics per model and for the ensemble."""

    y_true_log: np.ndarray
    predictions: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]


def run_evaluate_stage(
    data: DataSet, finals: dict[str, FitOutcome], meta: MetaLearner, ledger: StageLedger
) -> Evaluation:
    """Predict the held-out rows with each final model and the meta-learner."""
    from persistkit_train.metrics import regression_metrics

    if not ledger.done("evaluate"):
        started = time.time()
        features, target = data.test_matrix()
        names = [*meta.models, ENSEMBLE]
        columns = [predict_model(model, finals[model], features) for model in meta.models]
        columns.append(meta.predict(np.column_stack(columns)))
        ledger.save(
            "evaluate",
            {"predictions.npy": encode_array(np.column_stack(columns)), "names.json": names},
            started=started,
        )
    checkpoint = ledger.load("evaluate")
    matrix = decode_array(checkpoint.files["predictions.npy"])
    names = list(checkpoint.json("names.json"))
    target = data.test_matrix()[1]
    predictions = {name: matrix[:, column] for column, name in enumerate(names)}
    metrics = {
        name: {key: float(value) for key, value in regression_metrics(target, pred).items()}
        for name, pred in predictions.items()
    }
    for name in names:
        logger.info(
            "%s",
            _("Held-out {name}: R² log {r2:.4f}, RMSE log {rmse:.4f}, median APE {mape:.1f}%").format(
                name=name,
                r2=metrics[name]["r2_log"],
                rmse=metrics[name]["rmse_log"],
                mape=metrics[name]["median_ape"],
            ),
        )
    return Evaluation(y_true_log=target, predictions=predictions, metrics=metrics)


def run_export_stage(
    data: DataSet,
    tuned: dict[str, TuneResult],
    finals: dict[str, FitOutcome],
    meta: MetaLearner,
    evaluation: Evaluation,
    config: TrainConfig,
    ledger: StageLedger,
    output_dir: pathlib.Path,
    lang: str,
) -> list[pathlib.Path]:
    """Write the report, best_model.pkl and native models, and return their paths."""
    if not ledger.done("export"):
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="persistkit-export-") as scratch:
            folder = pathlib.Path(scratch)
            _write_exports(folder, data, tuned, finals, meta, evaluation, config, ledger, lang)
            files = {
                _store_name(path.relative_to(folder)): path.read_bytes()
                for path in sorted(folder.rglob("*"))
                if path.is_file()
            }
        ledger.save("export", files, started=started)

    checkpoint = ledger.load("export")
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, payload in sorted(checkpoint.files.items()):
        path = output_dir / name.replace(_FOLDER_SEPARATOR, "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        written.append(path)
    logger.info("%s", _("Wrote {count} files to {folder}").format(count=len(written), folder=output_dir))
    return written


def _write_exports(
    folder: pathlib.Path,
    data: DataSet,
    tuned: dict[str, TuneResult],
    finals: dict[str, FitOutcome],
    meta: MetaLearner,
    evaluation: Evaluation,
    config: TrainConfig,
    ledger: StageLedger,
    lang: str,
) -> None:
    from persistkit_train._export import MODEL_FILE, build_predictor, build_results
    from persistkit_train.report import write_report

    summary = {
        **config.fingerprint_fields(),
        "meta_learner": meta.kind,
        "meta_weights": dict(zip(meta.models, meta.weights, strict=True)),
    }
    predictor = build_predictor(
        finals,
        meta,
        data.feature_names,
        {"held_out_metrics": evaluation.metrics, "settings": summary},
    )
    predictor.save(folder / MODEL_FILE)
    predictor.export_native(folder)

    importances = {
        model: feature_importances(model, finals[model].model, len(data.feature_names))
        for model in meta.models
    }
    data_lines = list(ledger.load("load").json("report.json")["lines"])
    results = build_results(data, tuned, evaluation, importances, summary, data_lines)
    write_report(folder, results, lang=lang)


def _store_name(relative: pathlib.PurePath) -> str:
    return _FOLDER_SEPARATOR.join(relative.parts)

"""Evaluation report of a training run: Markdown, JSON and PNG plots.

:func:`write_report` writes into ``out_dir``::

    out_dir/
    ├── report.md                     tables of metrics, importance, tuning; links the plots
    ├── report.json                   the same numbers, machine-readable
    ├── predicted_vs_actual.png       the reported model (the ensemble by default)
    ├── residuals.png
    ├── feature_importance.png        only when importances were given
    └── optimisation_history.png      only when Optuna histories were given

All metrics are computed on the held-out split by :func:`persistkit_train.metrics.regression_metrics`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from persistkit_train import _plots, i18n
from persistkit_train.i18n import _
from persistkit_train.metrics import METRIC_NAMES, regression_metrics

__all__ = ["EvaluationResults", "write_report"]

logger = logging.getLogger(__name__)

REPORT_VERSION = 1
TOP_FEATURES_IN_TABLE = 10


@dataclasses.dataclass
class EvaluationResults:
    """Held-out predictions and run facts that the report is written from.

    Attributes:
        split: Name of the held-out split, ``"stratified"`` or ``"grouped"``.
        y_true_log: Natural log of the actual prices of the test rows.
        predictions_log: Model name -> predicted log prices of the test rows, in the same
            order; include the ensemble under ``ensemble_name``.
        ensemble_name: Key of the model whose plots are drawn.
        feature_importances: Model name -> feature name -> importance (any scale).
        optuna_histories: Model name -> (trial number, objective value) of finished trials.
        optuna_direction: ``"minimize"`` or ``"maximize"``, for the best-so-far line.
        config: Short run description (preset, trials, device, seed) shown as a table.
        other_splits: Split name -> model name -> metrics, for example the grouped split
            evaluated in the same run.
        data_summary: Lines of :meth:`persistkit_train.data.DataReport.lines`.
    """

    split: str
    y_true_log: np.ndarray
    predictions_log: Mapping[str, np.ndarray]
    ensemble_name: str = "ensemble"
    feature_importances: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    optuna_histories: Mapping[str, Sequence[tuple[int, float]]] = dataclasses.field(
        default_factory=dict
    )
    optuna_direction: str = "minimize"
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    other_splits: Mapping[str, Mapping[str, Mapping[str, float]]] = dataclasses.field(
        default_factory=dict
    )
    data_summary: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not self.predictions_log:
            raise ValueError("predictions_log is empty; pass at least one model's predictions.")
        expected = len(np.asarray(self.y_true_log))
        for model, predictions in self.predictions_log.items():
            if len(np.asarray(predictions)) != expected:
                raise ValueError(
                    f"predictions_log[{model!r}] has {len(predictions)} values, "
                    f"y_true_log has {expected}."
                )
        if self.optuna_direction not in ("minimize", "maximize"):
            raise ValueError(
                f"optuna_direction must be 'minimize' or 'maximize', got {self.optuna_direction!r}."
            )

    @property
    def plotted_model(self) -> str:
        """The ensemble when present, otherwise the first model."""
        if self.ensemble_name in self.predictions_log:
            return self.ensemble_name
        return next(iter(self.predictions_log))

    def metrics(self) -> dict[str, dict[str, float]]:
        """Return model name -> held-out metrics."""
        return {
            model: regression_metrics(self.y_true_log, predictions)
            for model, predictions in self.predictions_log.items()
        }


def write_report(out_dir: Path, results: EvaluationResults, *, lang: str = "en") -> list[Path]:
    """Write report.md, report.json and the plots into ``out_dir`` and return their paths.

    Args:
        out_dir: Folder to write into; created when missing. Existing files are replaced.
        results: Held-out predictions and run facts.
        lang: Language of titles, labels and table headers (``"en"`` or ``"th"``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    i18n.activate(lang)
    _plots.configure_font()

    metrics = results.metrics()
    plots = _write_plots(out_dir, results)
    json_path = out_dir / "report.json"
    json_path.write_text(
        json.dumps(_json_document(results, metrics, plots, lang), indent=2, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(_markdown(results, metrics, plots), encoding="utf-8")
    logger.info("Wrote evaluation report to %s", out_dir)
    return [markdown_path, json_path, *plots.values()]


def _write_plots(out_dir: Path, results: EvaluationResults) -> dict[str, Path]:
    model = results.plotted_model
    y_true = np.asarray(results.y_true_log, dtype=float)
    y_pred = np.asarray(results.predictions_log[model], dtype=float)
    plots = {
        "predicted_vs_actual": _plots.plot_predicted_vs_actual(
            out_dir / "predicted_vs_actual.png", y_true, y_pred, model=model
        ),
        "residuals": _plots.plot_residuals(out_dir / "residuals.png", y_true, y_pred, model=model),
    }
    if results.feature_importances:
        plots["feature_importance"] = _plots.plot_feature_importance(
            out_dir / "feature_importance.png", results.feature_importances
        )
    histories = {model: h for model, h in results.optuna_histories.items() if len(h) > 0}
    if histories:
        plots["optimisation_history"] = _plots.plot_optimisation_history(
            out_dir / "optimisation_history.png", histories, direction=results.optuna_direction
        )
    return plots


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_document(
    results: EvaluationResults,
    metrics: Mapping[str, Mapping[str, float]],
    plots: Mapping[str, Path],
    lang: str,
) -> dict[str, Any]:
    return {
        "report_version": REPORT_VERSION,
        "lang": lang,
        "split": results.split,
        "test_rows": len(results.y_true_log),
        "ensemble": results.plotted_model,
        "metrics": {
            model: {name: _finite_or_none(value) for name, value in values.items()}
            for model, values in metrics.items()
        },
        "other_splits": {
            split: {
                model: {name: _finite_or_none(float(value)) for name, value in values.items()}
                for model, values in models.items()
            }
            for split, models in results.other_splits.items()
        },
        "feature_importance": {
            model: dict(_plots.top_features(values))
            for model, values in results.feature_importances.items()
        },
        "optuna": {
            model: _study_summary(history, results.optuna_direction)
            for model, history in results.optuna_histories.items()
        },
        "config": _json_ready(results.config),
        "data_summary": list(results.data_summary),
        "plots": {name: path.name for name, path in plots.items()},
    }


def _json_ready(value: Any) -> Any:
    """Return ``value`` with numpy scalars and arrays, paths and tuples as JSON types."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _finite_or_none(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _study_summary(history: Sequence[tuple[int, float]], direction: str) -> dict[str, Any]:
    values = [float(value) for _trial, value in history]
    best: float | None = None
    if values:
        best = min(values) if direction == "minimize" else max(values)
    return {
        "trials": len(values),
        "best_value": best,
        "history": [[int(trial), float(value)] for trial, value in history],
    }


def _markdown(
    results: EvaluationResults,
    metrics: Mapping[str, Mapping[str, float]],
    plots: Mapping[str, Path],
) -> str:
    lines = [
        "# " + _("Phone number price model: evaluation report"),
        "",
        _(
            "Held-out split: {split}, {rows} test numbers. Log metrics use the natural log of the price in baht."
        ).format(split=results.split, rows=len(results.y_true_log)),
        "",
    ]
    if results.config:
        lines += [
            "## " + _("Run"),
            "",
            *_table([_("Setting"), _("Value")], list(results.config.items())),
            "",
        ]
    if results.data_summary:
        lines += [
            "## " + _("Data"),
            "",
            *(f"- {line.strip()}" for line in results.data_summary),
            "",
        ]

    lines += ["## " + _("Held-out metrics"), "", *_metrics_table(metrics), ""]
    for split, models in results.other_splits.items():
        lines += ["## " + _("Held-out metrics, {split} split").format(split=split), ""]
        lines += [*_metrics_table(models), ""]

    lines += _plot_section(plots)
    lines += _importance_section(results.feature_importances)
    lines += _tuning_section(results.optuna_histories, results.optuna_direction)
    return "\n".join(lines).rstrip() + "\n"


def _metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    rows = [
        [model, *(_format_metric(name, values.get(name, math.nan)) for name in METRIC_NAMES)]
        for model, values in metrics.items()
    ]
    return _table([_("Model"), *METRIC_NAMES], rows)


def _format_metric(name: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if name in ("rmse_baht", "mae_baht"):
        return f"{value:,.0f}"
    if name == "median_ape":
        return f"{value:.1f} %"
    return f"{value:.4f}"


def _plot_section(plots: Mapping[str, Path]) -> list[str]:
    titles = {
        "predicted_vs_actual": _("Predicted against actual price"),
        "residuals": _("Residuals"),
        "feature_importance": _("Feature importance"),
        "optimisation_history": _("Optimisation history"),
    }
    lines = ["## " + _("Plots"), ""]
    for name, path in plots.items():
        lines += [f"![{titles[name]}]({path.name})", ""]
    return lines


def _importance_section(importances: Mapping[str, Mapping[str, float]]) -> list[str]:
    if not importances:
        return []
    lines = ["## " + _("Top features"), ""]
    for model, values in importances.items():
        top = _plots.top_features(values)[:TOP_FEATURES_IN_TABLE]
        lines += [
            f"### {model}",
            "",
            *_table([_("Feature"), _("Share")], [(n, f"{v:.3f}") for n, v in top]),
            "",
        ]
    return lines


def _tuning_section(
    histories: Mapping[str, Sequence[tuple[int, float]]], direction: str
) -> list[str]:
    if not histories:
        return []
    rows = []
    for model, history in histories.items():
        summary = _study_summary(history, direction)
        best = summary["best_value"]
        rows.append((model, str(summary["trials"]), "n/a" if best is None else f"{best:.5f}"))
    return ["## " + _("Tuning"), "", *_table([_("Model"), _("Trials"), _("Best value")], rows), ""]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines

"""PNG plots of the evaluation report, drawn with matplotlib's Agg canvas.

Figures are created with :class:`matplotlib.figure.Figure` rather than pyplot, so no
global backend or figure registry is touched and plotting works without a display.
Every title and axis label goes through :func:`persistkit_train.i18n._`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from persistkit_train import i18n
from persistkit_train.i18n import _

logger = logging.getLogger(__name__)

DPI = 110
TOP_FEATURES = 20


def configure_font() -> None:
    """Select a font that can draw Thai text, when the i18n module provides the helper."""
    configure = getattr(i18n, "configure_matplotlib_font", None)
    if configure is not None:
        configure()


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, format="png")
    logger.debug("Wrote plot %s", path)
    return path


def plot_predicted_vs_actual(
    path: Path, y_true_log: np.ndarray, y_pred_log: np.ndarray, *, model: str
) -> Path:
    """Draw predicted against actual price in baht, both on log axes, with the y = x line."""
    figure = _new_figure(6, 6)
    axes = figure.add_subplot()
    actual, predicted = np.exp(y_true_log), np.exp(y_pred_log)
    axes.scatter(actual, predicted, s=8, alpha=0.5)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="black", linewidth=1, label=_("perfect prediction"))
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(_("Actual price (baht)"))
    axes.set_ylabel(_("Predicted price (baht)"))
    axes.set_title(_("Predicted against actual price: {model}").format(model=model))
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_residuals(
    path: Path, y_true_log: np.ndarray, y_pred_log: np.ndarray, *, model: str
) -> Path:
    """Draw residuals (predicted minus actual log price) against prediction, and their histogram."""
    figure = _new_figure(10, 4.5)
    scatter_axes, histogram_axes = figure.subplots(1, 2)
    residuals = y_pred_log - y_true_log
    scatter_axes.scatter(np.exp(y_pred_log), residuals, s=8, alpha=0.5)
    scatter_axes.axhline(0.0, color="black", linewidth=1)
    scatter_axes.set_xscale("log")
    scatter_axes.set_xlabel(_("Predicted price (baht)"))
    scatter_axes.set_ylabel(_("Residual (log predicted - log actual)"))
    histogram_axes.hist(residuals, bins=40)
    histogram_axes.set_xlabel(_("Residual (log predicted - log actual)"))
    histogram_axes.set_ylabel(_("Numbers"))
    figure.suptitle(_("Residuals on the test split: {model}").format(model=model))
    return _save(figure, path)


def plot_feature_importance(path: Path, importances: Mapping[str, Mapping[str, float]]) -> Path:
    """Draw the top features of each model as horizontal bars, importance scaled to sum 1."""
    figure = _new_figure(5 * len(importances), 6)
    all_axes = np.atleast_1d(figure.subplots(1, len(importances)))
    for axes, (model, values) in zip(all_axes, importances.items(), strict=True):
        top = top_features(values)
        axes.barh([name for name, _value in reversed(top)], [v for _name, v in reversed(top)])
        axes.set_title(model)
        axes.set_xlabel(_("Share of total importance"))
    figure.suptitle(_("Feature importance (top {count})").format(count=TOP_FEATURES))
    return _save(figure, path)


def top_features(values: Mapping[str, float]) -> list[tuple[str, float]]:
    """Return the largest importances as (name, share of the total) Python floats."""
    magnitudes = {str(name): abs(float(value)) for name, value in values.items()}
    total = sum(magnitudes.values()) or 1.0
    ranked = sorted(magnitudes.items(), key=lambda item: item[1], reverse=True)
    return [(name, value / total) for name, value in ranked[:TOP_FEATURES]]


def plot_optimisation_history(
    path: Path, histories: Mapping[str, Sequence[tuple[int, float]]], *, direction: str
) -> Path:
    """Draw each study's trial values and its best value so far."""
    figure = _new_figure(5 * len(histories), 4.5)
    all_axes = np.atleast_1d(figure.subplots(1, len(histories)))
    for axes, (model, history) in zip(all_axes, histories.items(), strict=True):
        trials = np.array([trial for trial, _value in history], dtype=float)
        values = np.array([value for _trial, value in history], dtype=float)
        best = (
            np.minimum.accumulate(values)
            if direction == "minimize"
            else np.maximum.accumulate(values)
        )
        axes.scatter(trials, values, s=10, alpha=0.6, label=_("trial value"))
        axes.step(trials, best, where="post", color="black", label=_("best so far"))
        axes.set_title(model)
        axes.set_xlabel(_("Trial"))
        axes.set_ylabel(_("Objective value"))
        axes.legend(loc="best")
    figure.suptitle(_("Optimisation history"))
    return _save(figure, path)

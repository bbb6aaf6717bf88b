"""Regression metrics on log price and on price in baht.

Models are trained on the natural log of the price in baht (``numpy.log``), so the
``*_log`` metrics are on that scale; the ``*_baht`` metrics convert both sides back with
``numpy.exp``. R² on baht is dominated by the few numbers priced in the millions, so the
log-scale R² is the headline number.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRIC_NAMES", "regression_metrics"]

METRIC_NAMES = (
    "r2_log",
    "rmse_log",
    "mae_log",
    "r2_baht",
    "rmse_baht",
    "mae_baht",
    "median_ape",
)


def regression_metrics(y_true_log: np.ndarray, y_pred_log: np.ndarray) -> dict[str, float]:
    """Return the metrics in :data:`METRIC_NAMES` for predictions of log price.

    ``median_ape`` is the median of ``|predicted - actual| / actual`` in baht, in percent.

    Raises:
        ValueError: The arrays differ in length, are empty, or contain NaN or infinity.
    """
    actual_log = np.asarray(y_true_log, dtype=np.float64).ravel()
    predicted_log = np.asarray(y_pred_log, dtype=np.float64).ravel()
    if actual_log.shape != predicted_log.shape:
        raise ValueError(
            f"y_true_log has {actual_log.size} values but y_pred_log has {predicted_log.size}."
        )
    if actual_log.size == 0:
        raise ValueError("Cannot compute metrics on zero rows.")
    if not (np.isfinite(actual_log).all() and np.isfinite(predicted_log).all()):
        raise ValueError("y_true_log and y_pred_log must be finite (no NaN or infinity).")

    actual, predicted = np.exp(actual_log), np.exp(predicted_log)
    return {
        "r2_log": _r2(actual_log, predicted_log),
        "rmse_log": _rmse(actual_log, predicted_log),
        "mae_log": float(np.mean(np.abs(actual_log - predicted_log))),
        "r2_baht": _r2(actual, predicted),
        "rmse_baht": _rmse(actual, predicted),
        "mae_baht": float(np.mean(np.abs(actual - predicted))),
        "median_ape": float(np.median(np.abs(predicted - actual) / actual) * 100.0),
    }


def _r2(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Return the coefficient of determination; NaN when ``actual`` is constant."""
    total = float(np.sum((actual - actual.mean()) ** 2))
    if total == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((actual - predicted) ** 2)) / total


def _rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))

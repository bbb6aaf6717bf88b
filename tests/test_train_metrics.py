"""Tests of persistkit_train.metrics against values computed by hand and by scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score

from persistkit_train.metrics import METRIC_NAMES, regression_metrics


def test_metric_names_and_types():
    result = regression_metrics(np.log([100.0, 1000.0]), np.log([100.0, 1000.0]))
    assert tuple(result) == METRIC_NAMES
    assert all(isinstance(value, float) for value in result.values())


def test_perfect_prediction():
    y = np.log([100.0, 500.0, 2000.0])
    result = regression_metrics(y, y)
    assert result["r2_log"] == 1.0
    assert result["rmse_log"] == 0.0
    assert result["mae_baht"] == pytest.approx(0.0, abs=1e-9)
    assert result["median_ape"] == pytest.approx(0.0, abs=1e-9)


def test_values_by_hand():
    actual = np.array([100.0, 200.0, 400.0])
    predicted = np.array([110.0, 180.0, 400.0])
    result = regression_metrics(np.log(actual), np.log(predicted))
    assert result["mae_baht"] == pytest.approx(10.0)
    assert result["rmse_baht"] == pytest.approx(math.sqrt((100 + 400 + 0) / 3))
    assert result["median_ape"] == pytest.approx(10.0)  # errors 10 %, 10 %, 0 %
    assert result["r2_baht"] == pytest.approx(r2_score(actual, predicted))


def test_log_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(7, 1.5, 200)
    p = y + rng.normal(0, 0.5, 200)
    result = regression_metrics(y, p)
    assert result["r2_log"] == pytest.approx(r2_score(y, p))
    assert result["mae_log"] == pytest.approx(mean_absolute_error(y, p))
    assert result["rmse_log"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))


def test_constant_target_gives_nan_r2():
    result = regression_metrics(np.log([500.0, 500.0]), np.log([400.0, 600.0]))
    assert math.isnan(result["r2_log"])
    assert result["mae_baht"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("actual", "predicted", "message"),
    [
        ([1.0, 2.0], [1.0], "has 2 values"),
        ([], [], "zero rows"),
        ([1.0, np.nan], [1.0, 2.0], "finite"),
        ([1.0, 2.0], [1.0, np.inf], "finite"),
    ],
)
def test_invalid_input(actual, predicted, message):
    with pytest.raises(ValueError, match=message):
        regression_metrics(np.array(actual), np.array(predicted))

"""Tests of persistkit_train.report: files written, numbers in them, labels through i18n."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persistkit_train import _plots, i18n
from persistkit_train.metrics import regression_metrics
from persistkit_train.report import EvaluationResults, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_results(**overrides) -> EvaluationResults:
    rng = np.random.default_rng(0)
    y = rng.normal(7.0, 1.0, 120)
    predictions = {
        "xgboost": y + rng.normal(0, 0.5, 120),
        "lightgbm": y + rng.normal(0, 0.4, 120),
        "ensemble": y + rng.normal(0, 0.3, 120),
    }
    values: dict[str, Any] = {
        "split": "stratified",
        "y_true_log": y,
        "predictions_log": predictions,
        # Boosters return importances as numpy floats.
        "feature_importances": {
            "xgboost": {"pos_9": np.float32(5.0), "count_9": np.float32(3.0), "last4": 1.0},
            "lightgbm": {"pos_9": np.float64(2.0), "good_pairs": np.float64(8.0)},
        },
        "optuna_histories": {
            "xgboost": [(0, 0.6), (1, 0.5), (2, 0.55)],
            "lightgbm": [(0, 0.7), (1, 0.45)],
        },
        "config": {
            "preset": "quick",
            "trials": 3,
            "device": "cpu",
            "folds": np.int64(5),
            "weights": np.array([0.25, 0.75]),
            "data": Path("numbers.csv"),
            "missing": float("nan"),
        },
        "other_splits": {"grouped": {"ensemble": regression_metrics(y, y + 0.5)}},
        "data_summary": ["Read 120 rows from demo.csv."],
    }
    values.update(overrides)
    return EvaluationResults(**values)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """Write the report of make_results() once; plotting takes about a second."""
    results = make_results()
    out_dir = tmp_path_factory.mktemp("report")
    return results, out_dir, write_report(out_dir, results, lang="en")


def test_writes_all_files(full_report):
    _, out_dir, paths = full_report
    names = sorted(path.name for path in paths)
    assert names == [
        "feature_importance.png",
        "optimisation_history.png",
        "predicted_vs_actual.png",
        "report.json",
        "report.md",
        "residuals.png",
    ]
    for path in paths:
        assert path.parent == out_dir
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_json_metrics_match_metrics_module(full_report):
    results, out_dir, _ = full_report
    document = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert document["split"] == "stratified"
    assert document["test_rows"] == 120
    assert document["ensemble"] == "ensemble"
    expected = regression_metrics(results.y_true_log, results.predictions_log["lightgbm"])
    assert document["metrics"]["lightgbm"] == pytest.approx(expected)
    assert document["other_splits"]["grouped"]["ensemble"]["rmse_log"] == pytest.approx(0.5)


def test_json_tuning_and_importance(full_report):
    _, out_dir, _ = full_report
    document = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert document["optuna"]["xgboost"]["trials"] == 3
    assert document["optuna"]["xgboost"]["best_value"] == 0.5
    assert document["optuna"]["lightgbm"]["history"] == [[0, 0.7], [1, 0.45]]
    importance = document["feature_importance"]["lightgbm"]
    assert list(importance) == ["good_pairs", "pos_9"]
    assert importance["good_pairs"] == pytest.approx(0.8)
    assert document["config"] == {
        "preset": "quick",
        "trials": 3,
        "device": "cpu",
        "folds": 5,
        "weights": [0.25, 0.75],
        "data": "numbers.csv",
        "missing": None,
    }


def test_markdown_tables_and_plot_links(full_report):
    results, out_dir, _ = full_report
    text = (out_dir / "report.md").read_text(encoding="utf-8")
    r2 = regression_metrics(results.y_true_log, results.predictions_log["ensemble"])["r2_log"]
    assert text.startswith("# Phone number price model: evaluation report")
    assert "| Model | r2_log | rmse_log |" in text
    assert f"| ensemble | {r2:.4f} |" in text
    assert "## Held-out metrics, grouped split" in text
    assert "![Predicted against actual price](predicted_vs_actual.png)" in text
    assert "![Optimisation history](optimisation_history.png)" in text
    assert "| xgboost | 3 | 0.50000 |" in text
    assert "- Read 120 rows from demo.csv." in text


def test_optional_sections_left_out(tmp_path):
    results = make_results(feature_importances={}, optuna_histories={}, other_splits={})
    paths = write_report(tmp_path, results)
    assert sorted(path.name for path in paths) == [
        "predicted_vs_actual.png",
        "report.json",
        "report.md",
        "residuals.png",
    ]
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Top features" not in text
    assert "Tuning" not in text


def test_without_ensemble_plots_first_model(tmp_path):
    results = make_results(ensemble_name="stack")
    write_report(tmp_path, results)
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["ensemble"] == "xgboost"


def test_maximize_direction_best_value(tmp_path):
    write_report(tmp_path, make_results(optuna_direction="maximize"))
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["optuna"]["xgboost"]["best_value"] == 0.6


def test_constant_target_writes_null_r2(tmp_path):
    y = np.full(10, 6.0)
    write_report(tmp_path, make_results(y_true_log=y, predictions_log={"ensemble": y + 0.1}))
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["metrics"]["ensemble"]["r2_log"] is None
    assert "n/a" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_labels_and_font_through_i18n(tmp_path, monkeypatch):
    seen: list[str] = []
    font_calls: list[bool] = []

    def record(message: str) -> str:
        seen.append(message)
        return message

    monkeypatch.setattr(_plots, "_", record)
    monkeypatch.setattr("persistkit_train.report._", record)
    monkeypatch.setattr(
        i18n, "configure_matplotlib_font", lambda: font_calls.append(True), raising=False
    )
    write_report(tmp_path, make_results())
    assert "Actual price (baht)" in seen
    assert "Optimisation history" in seen
    assert "Held-out metrics" in seen
    assert font_calls == [True]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"predictions_log": {}}, "predictions_log is empty"),
        ({"predictions_log": {"ensemble": np.zeros(3)}}, "has 3 values"),
        ({"optuna_direction": "up"}, "optuna_direction"),
    ],
)
def test_invalid_results(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_results(**overrides)

"""SIGKILL persistkit-train mid-tuning and mid-stacking, resume, compare with a clean run.

Real subprocesses on the real data with a local store. The resumed run must end with the
same tuned parameters, meta-learner, held-out predictions and exported-model predictions
as the uninterrupted reference run, bit for bit.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest
from _train_runs import (
    child_environment,
    cli_command,
    committed,
    kill,
    reference_run,
    run_cli,
    stage_files,
    training_arguments,
    wait_for_key,
)

KILL_WAIT_SECONDS = 180
TUNED_STAGES = ("tune-xgboost", "tune-lightgbm", "tune-catboost")


def start_training(arguments: list[str], cwd: pathlib.Path, log_name: str) -> subprocess.Popen[str]:
    """Start a training run whose output goes to ``cwd/log_name`` for post-mortems."""
    with open(cwd / log_name, "w") as log:
        return subprocess.Popen(
            cli_command(arguments),
            cwd=cwd,
            env=child_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def test_kill_in_tuning_and_stacking_resumes_exactly(
    tmp_path: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference_store, reference_output = reference_run(tmp_path_factory)
    store, output = tmp_path / "store", tmp_path / "output"
    arguments = training_arguments(store, output)

    # Kill 1: inside the CatBoost search, once its second trial has started. The journal
    # commits step 1 when trial 0 starts, 2 when it ends and 3 when trial 1 starts.
    process = start_training(arguments, tmp_path, "first-run.log")
    wait_for_key(
        process,
        str(store),
        "optuna/catboost-search/journal",
        timeout=KILL_WAIT_SECONDS,
        min_step=3,
    )
    kill(process)
    assert committed(str(store), "stages/tune-lightgbm")
    assert not committed(str(store), "stages/tune-catboost")

    # Kill 2: inside stacking, after the first LightGBM fold's out-of-fold predictions.
    process = start_training(arguments, tmp_path, "second-run.log")
    wait_for_key(process, str(store), "stack/lightgbm/fold-0", timeout=KILL_WAIT_SECONDS)
    kill(process)
    assert committed(str(store), "stack/xgboost/fold-1")
    assert not committed(str(store), "stages/stack")

    resumed = run_cli(arguments, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "lightgbm out-of-fold predictions of fold 0: reused from the store" in resumed.stderr
    assert "Stage tune-catboost: already done, skipped" in resumed.stderr

    for stage in TUNED_STAGES:
        expected = json.loads(stage_files(str(reference_store), stage)["best.json"])
        actual = json.loads(stage_files(str(store), stage)["best.json"])
        assert actual["params"] == expected["params"], stage
        assert actual["score"] == expected["score"], stage
        assert actual["rounds"] == expected["rounds"], stage
    assert stage_files(str(store), "stack") == stage_files(str(reference_store), "stack")
    assert stage_files(str(store), "evaluate") == stage_files(str(reference_store), "evaluate")
    assert (output / "report.json").read_bytes() == (reference_output / "report.json").read_bytes()

    numbers = ["0812345678", "0899999999", "0912345678", "0861234567"]
    expected_prices = run_cli(
        ["predict", "--model", str(reference_output / "best_model.pkl"), *numbers], cwd=tmp_path
    )
    actual_prices = run_cli(
        ["predict", "--model", str(output / "best_model.pkl"), *numbers], cwd=tmp_path
    )
    assert actual_prices.returncode == 0, actual_prices.stderr
    assert actual_prices.stdout == expected_prices.stdout

"""persistkit-train end to end on the real data with a local store, plus its building blocks.

One tiny uninterrupted run (see ``_train_runs``) is shared by the end-to-end tests; the
other tests reuse its store read-only or copy it.
"""

from __future__ import annotations

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest
from _train_runs import real_data_path, reference_run, run_cli, stage_files, training_arguments

from persistkit import CheckpointStore
from persistkit_train._device import ephemeral_store_warning
from persistkit_train._fingerprint import RunFingerprint, describe_changes
from persistkit_train._stages import stage_names
from persistkit_train.cli import rerun_command
from persistkit_train.config import make_config, parse_duration
from persistkit_train.stack import choose_meta_learner

ALL_STAGES = stage_names(("xgboost", "lightgbm", "catboost"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    return reference_run(tmp_path_factory)


def test_run_exports_report_and_models(reference: tuple[pathlib.Path, pathlib.Path]) -> None:
    store, output = reference
    for name in ("best_model.pkl", "report.md", "report.json"):
        assert (output / name).is_file(), name
    assert list(output.glob("*.ubj")), "no native XGBoost model"
    assert list(output.glob("*.txt")), "no native LightGBM model"
    assert list(output.glob("*.cbm")), "no native CatBoost model"

    names = json.loads(stage_files(str(store), "evaluate")["names.json"])
    assert names == ["xgboost", "lightgbm", "catboost", "ensemble"]
    # The tiny configuration reaches about 0.78 on the default split; the full preset
    # is measured in benchmarks/README.md.
    done_line = (store.parent / "finished").read_text()
    r2 = float(done_line.split("R² on log price ")[1].split(",")[0])
    assert r2 > 0.7


def test_rerun_skips_every_stage(
    reference: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    store, _output = reference
    result = run_cli(training_arguments(store, tmp_path / "output"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ALL_STAGES:
        assert f"Stage {stage}: already done, skipped" in result.stderr
    assert "Stage tune-xgboost: running" not in result.stderr
    assert (tmp_path / "output" / "best_model.pkl").is_file()


def test_changed_setting_is_rejected(
    reference: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    store, _output = reference
    arguments = training_arguments(store, tmp_path / "output")
    arguments[arguments.index("--trials") + 1] = "4"

    result = run_cli(arguments, cwd=tmp_path)

    assert result.returncode == 2
    assert "setting trials: 3 -> 4" in result.stderr
    assert "--restart" in result.stderr
    assert not (tmp_path / "output").exists()


def test_changed_data_is_rejected(
    reference: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    store, _output = reference
    changed = tmp_path / "numberdata.csv"
    lines = real_data_path().read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",12345"
    changed.write_text("\n".join(lines) + "\n")
    arguments = training_arguments(store, tmp_path / "output")
    arguments[arguments.index("--data") + 1] = str(changed)

    result = run_cli(arguments, cwd=tmp_path)

    assert result.returncode == 2
    assert "data file: numberdata.csv (SHA-256" in result.stderr
    assert "--restart" in result.stderr


def test_restart_then_deadline_stops_cleanly(
    reference: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    arguments = training_arguments(store, tmp_path / "output")
    arguments[arguments.index("--trials") + 1] = "4"

    result = run_cli([*arguments, "--restart", "--time-budget", "0.001s"], cwd=tmp_path)

    assert result.returncode == 3, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("  persistkit-train run ")
    assert "--restart" not in last_line
    assert "Re-run the same command to continue" in result.stderr
    status = run_cli(["status", "--store", str(store)], cwd=tmp_path)
    assert "4 trials per model" in status.stdout
    assert "Next: load" in status.stdout


def test_status_of_finished_run(
    reference: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    result = run_cli(["status", "--store", str(reference[0])], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("preset quick, 3 trials per model, 2 folds, stratified split" in line for line in lines)
    for stage in ALL_STAGES:
        assert any(line.startswith(f"  {stage}: done in ") for line in lines), stage
    assert any("tune-catboost: done in" in line and "3 trials, best CV R²" in line for line in lines)
    assert any(line.startswith("Time spent: ") for line in lines)
    assert "All stages are done" in result.stdout


def test_search_progress_keeps_fallback_step(
    reference: tuple[pathlib.Path, pathlib.Path],
) -> None:
    # Each finished trial saves the progress under a new step, so a crash during a save
    # leaves the previous step readable, and retention keeps the newest two.
    with CheckpointStore(str(reference[0]), background=False) as store:
        for model in ("xgboost", "lightgbm", "catboost"):
            steps = store.steps(f"tune/{model}/progress")
            progress = store.load(f"tune/{model}/progress").json("progress.json")

            assert len(steps) == 2, model
            assert steps[0] < steps[1], model
            assert progress["complete"] == 3, model


def test_status_of_empty_store(tmp_path: pathlib.Path) -> None:
    result = run_cli(["status", "--store", str(tmp_path / "empty")], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "holds no run yet" in result.stdout


def test_predict_numbers_from_store(
    reference: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    numbers = ["0812345678", "+66 89 999 9999", "12345"]
    result = run_cli(["predict", "--store", str(reference[0]), *numbers], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("0812345678: ")
    assert lines[1].startswith("0899999999: ")
    assert "invalid number" in lines[2]


def test_predict_file_to_file(
    reference: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text("phone_number\n0812345678\n089-999-9999\nnot a number\n")
    target = tmp_path / "priced.csv"
    model = reference[1] / "best_model.pkl"

    result = run_cli(
        ["predict", "--model", str(model), "--input", str(source), "--output", str(target)],
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    with open(target, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3
    assert float(rows[0]["predicted_price"]) > 0
    assert rows[1]["normalized"] == "0899999999"
    assert rows[2]["error"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "CSV"),
        (b"number,cost\n0812345678,100\n", "phone_number"),
    ],
)
def test_bad_csv_is_rejected(tmp_path: pathlib.Path, content: bytes, problem: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_bytes(content)
    arguments = training_arguments(tmp_path / "store", tmp_path / "output")
    arguments[arguments.index("--data") + 1] = str(data)

    result = run_cli(arguments, cwd=tmp_path)

    assert result.returncode == 2
    assert "bad.csv" in result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_progress_bars_update_in_place(reference: tuple[pathlib.Path, pathlib.Path]) -> None:
    stderr = (reference[0].parent / "stderr.txt").read_text()

    # tqdm redraws the trial and round bars below the stage bar by moving the cursor up.
    assert "\x1b[A" in stderr
    assert "xgboost trials" in stderr
    assert "3/3" in stderr
    assert "best R² " in stderr
    assert "round/s" in stderr
    # Log lines print whole, above the bars.
    lines = stderr.replace("\r", "\n").splitlines()
    assert any(line.endswith("Stage export: running") for line in lines)


def test_demo_data_is_labelled_synthetic(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "demo.csv"
    result = run_cli(["demo-data", str(path), "--rows", "50"], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC" in result.stdout
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 50


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("8h30m", 30600.0), ("45m", 2700.0), ("90s", 90.0), ("2.5h", 9000.0), ("1", 3600.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "-1h", "0", "1h-5m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid duration"):
        parse_duration(text)


def test_config_presets_and_overrides() -> None:
    assert make_config("full").trials == 100
    assert make_config("quick", trials=7, folds=None).trials == 7
    with pytest.raises(ValueError, match="Unknown preset"):
        make_config("huge")
    with pytest.raises(ValueError, match="Invalid folds 1"):
        make_config("quick", folds=1)


def test_device_and_threads_not_fingerprinted() -> None:
    cpu = make_config("quick", device="cpu", threads=1)
    gpu = make_config("quick", device="cuda", threads=8)
    assert cpu.fingerprint_fields() == gpu.fingerprint_fields()
    assert make_config("quick", seed=1).fingerprint_fields() != cpu.fingerprint_fields()


def test_describe_changes_names_each_difference() -> None:
    saved = RunFingerprint({"trials": 3, "split": "stratified"}, "a" * 64, "x.csv", "1")
    current = RunFingerprint({"trials": 3, "split": "grouped"}, "b" * 64, "y.csv", "2")

    changes = describe_changes(saved, current)

    assert len(changes) == 3
    assert changes[0].startswith("data file: x.csv")
    assert changes[1] == "feature version: 1 -> 2"
    assert changes[2] == 'setting split: "stratified" -> "grouped"'


def test_rerun_command_drops_restart() -> None:
    command = rerun_command(["run", "--data", "my numbers.csv", "--restart"])
    assert command == "persistkit-train run --data 'my numbers.csv'"


def test_kaggle_local_store_warning() -> None:
    warning = ephemeral_store_warning("./persistkit-runs/default", "kaggle")
    assert warning is not None
    assert "--store hf://" in warning
    assert "gs://" in warning
    assert "s3://" in warning
    assert ephemeral_store_warning("hf://datasets/me/runs", "kaggle") is None
    assert ephemeral_store_warning("./runs", None) is None


def test_meta_learner_prefers_the_better_blend() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=400)
    good = target + rng.normal(scale=0.1, size=400)
    noise = rng.normal(size=400)
    oof = np.column_stack([noise, good])
    positions = np.arange(400)
    folds = [(positions[positions % 2 == 1], positions[positions % 2 == 0]),
             (positions[positions % 2 == 0], positions[positions % 2 == 1])]

    meta = choose_meta_learner(oof, target, folds, ("noise", "good"))

    assert meta.kind in ("best-single", "non-negative-linear", "ridge")
    assert meta.weights[1] > 0.8
    assert abs(meta.weights[0]) < 0.1
    assert meta.cv_scores[meta.kind] > meta.cv_scores["mean"]


def test_exported_model_reproduces_evaluation(
    reference: tuple[pathlib.Path, pathlib.Path],
) -> None:
    from persistkit_train._stages import decode_array
    from persistkit_train.predictor import PhonePricePredictor

    store, output = reference
    numbers = json.loads(stage_files(str(store), "load")["numbers.json"])["number"]
    test_rows = json.loads(stage_files(str(store), "split")["split.json"])["test"]
    evaluated = decode_array(stage_files(str(store), "evaluate")["predictions.npy"])
    predictor = PhonePricePredictor.load(output / "best_model.pkl")

    predicted = predictor.predict_log([numbers[row] for row in test_rows])

    np.testing.assert_allclose(predicted, evaluated[:, -1], rtol=0, atol=1e-9)

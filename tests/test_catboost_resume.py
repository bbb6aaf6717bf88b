"""Resume tests of persistkit.catboost: kills, corrupt snapshots, fingerprints, deadline."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adapter_child import KILL_POINTS, SOAK_KILL_POINTS, make_regression, run_child, run_in_process
from catboost import CatBoostError, CatBoostRegressor

import persistkit.catboost as pcat
from persistkit import CheckpointStore, Deadline
from persistkit.errors import FingerprintMismatchError, MissingDependencyError

FEATURES, TARGET = make_regression()
KEY = "cat/run"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with CheckpointStore(str(tmp_path / "store"), background=False) as local_store:
        yield local_store


@pytest.fixture(scope="module")
def reference() -> dict:
    return run_in_process("catboost")


def model(tmp_path: Path, **params: Any) -> Any:
    settings = {"iterations": 40, "depth": 3, "learning_rate": 0.5, "random_seed": 3,
                "verbose": 0, "thread_count": 1, "bootstrap_type": "Bernoulli",
                "subsample": 0.8, "early_stopping_rounds": 8,
                "train_dir": str(tmp_path / "catboost_info"), **params}
    return CatBoostRegressor(**settings)


class CountIterations:
    """CatBoost callback that records each iteration number and can stop training."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.seen: list[int] = []

    def after_iteration(self, info: Any) -> bool:
        self.seen.append(info.iteration)
        return self.stop_at is None or info.iteration < self.stop_at


def fit(store: CheckpointStore, tmp_path: Path, *, callback: Any = None,
        features: np.ndarray = FEATURES, **kwargs: Any) -> Any:
    extra = {"callbacks": [callback]} if callback is not None else {}
    params = kwargs.pop("params", {})
    return pcat.fit(model(tmp_path, **params), features[:220], TARGET[:220],
                    eval_set=(features[220:], TARGET[220:]), store=store, key=KEY,
                    every_rounds=5, **extra, **kwargs)


@pytest.mark.parametrize("kill_point", [
    *KILL_POINTS, *(pytest.param(point, marks=pytest.mark.soak) for point in SOAK_KILL_POINTS)])
def test_killed_training_resumes_exactly(tmp_path: Path, reference: dict, kill_point: str) -> None:
    assert run_child("catboost", str(tmp_path), kill_point) is None
    resumed = run_child("catboost", str(tmp_path))

    assert resumed is not None
    assert resumed["predictions"] == reference["predictions"]
    assert resumed["best_iteration"] == reference["best_iteration"]
    assert resumed["best_score"] == reference["best_score"]
    assert resumed["history"] == reference["history"]


@pytest.mark.parametrize("kill_point", ["mid", "end"])
def test_killed_timed_snapshots_resume_exactly(tmp_path: Path, reference: dict,
                                               kill_point: str) -> None:
    # Without every_rounds or a deadline a thread copies CatBoost's timed snapshots.
    options = {"every_seconds": 1, "iteration_seconds": 0.1}
    assert run_child("catboost", str(tmp_path), kill_point, options) is None
    with CheckpointStore(str(tmp_path), background=False) as killed_store:
        steps_after_kill = killed_store.steps(KEY)
    resumed = run_child("catboost", str(tmp_path), options=options)

    assert steps_after_kill, "no snapshot was copied before the kill"
    assert resumed is not None
    assert "Restored CatBoost snapshot" in resumed["log"]
    assert resumed["predictions"] == reference["predictions"]
    assert resumed["best_iteration"] == reference["best_iteration"]
    assert resumed["best_score"] == reference["best_score"]
    assert resumed["history"] == reference["history"]


def test_snapshot_thread_warns_once_per_outage(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    snapshot = tmp_path / "snapshot.cbsnapshot"
    snapshot.write_bytes(b"snapshot bytes")
    closed_store = CheckpointStore(str(tmp_path / "store"))
    closed_store.close()
    sync = pcat.SnapshotSyncCallback(store=closed_store, key=KEY, snapshot_path=str(snapshot))

    with (caplog.at_level(logging.DEBUG, logger="persistkit.catboost"),
          pcat._SnapshotWatcher(sync, poll_seconds=0.02)):
        time.sleep(0.3)

    failures = [record for record in caplog.records
                if "Copying the CatBoost snapshot" in record.getMessage()]
    assert len(failures) >= 3
    assert failures[0].levelno == logging.WARNING
    assert {record.levelno for record in failures[1:]} == {logging.DEBUG}
    assert "is closed" in failures[0].getMessage()


@pytest.mark.parametrize("interval", [{"every_rounds": 5}, {"every_seconds": 1}],
                         ids=["rounds", "seconds"])
def test_rerun_of_finished_fit_adds_no_step(store: CheckpointStore, tmp_path: Path,
                                           reference: dict, interval: dict) -> None:
    def fit_once() -> Any:
        return pcat.fit(model(tmp_path), FEATURES[:220], TARGET[:220],
                        eval_set=(FEATURES[220:], TARGET[220:]), store=store, key=KEY,
                        **interval)

    fit_once()
    steps = store.steps(KEY)
    again = fit_once()
    third = fit_once()

    assert store.steps(KEY) == steps
    assert again.predict(FEATURES[220:]).tolist() == reference["predictions"]
    assert third.predict(FEATURES[220:]).tolist() == reference["predictions"]


def test_half_written_snapshot_never_restarts_from_zero(
        store: CheckpointStore, tmp_path: Path, reference: dict,
        caplog: pytest.LogCaptureFixture) -> None:
    # Users saw CatBoost silently restart from iteration 0 on a truncated snapshot file.
    fit(store, tmp_path, callback=CountIterations(stop_at=12))
    newest = store.steps(KEY)[-1]
    step_dir = next(path for path in (tmp_path / "store" / "cat" / "run").iterdir()
                    if path.name.startswith("_step-") and path.name.endswith(f"{newest:010d}"))
    snapshot = step_dir / pcat.SNAPSHOT_FILE
    snapshot.write_bytes(snapshot.read_bytes()[: snapshot.stat().st_size // 2])

    counter = CountIterations()
    with caplog.at_level(logging.WARNING):
        resumed = fit(store, tmp_path, callback=counter)

    assert counter.seen[0] > 1
    assert counter.seen[0] <= newest + 1
    assert f"Skipping snapshot 'cat/run' step {newest}" in caplog.text
    assert "is corrupt" in caplog.text
    assert resumed.predict(FEATURES[220:]).tolist() == reference["predictions"]


def test_snapshot_disagreeing_with_state_is_skipped(
        store: CheckpointStore, tmp_path: Path, reference: dict,
        caplog: pytest.LogCaptureFixture) -> None:
    fit(store, tmp_path, callback=CountIterations(stop_at=7))
    good = store.load(KEY)
    state = good.json("state.json")
    store.save(KEY, {pcat.SNAPSHOT_FILE: good.files[pcat.SNAPSHOT_FILE][:100],
                     "state.json": state}, step=good.step + 1, metadata=good.metadata)

    counter = CountIterations()
    with caplog.at_level(logging.WARNING):
        resumed = fit(store, tmp_path, callback=counter)

    assert "does not match state.json" in caplog.text
    assert counter.seen[0] > 1
    assert resumed.predict(FEATURES[220:]).tolist() == reference["predictions"]


def test_changed_params_raise(store: CheckpointStore, tmp_path: Path) -> None:
    fit(store, tmp_path, callback=CountIterations(stop_at=7))

    with pytest.raises(FingerprintMismatchError, match="params"):
        fit(store, tmp_path, params={"depth": 4})


def test_changed_data_raise(store: CheckpointStore, tmp_path: Path) -> None:
    fit(store, tmp_path, callback=CountIterations(stop_at=7))

    with pytest.raises(FingerprintMismatchError, match="data"):
        fit(store, tmp_path, features=FEATURES * 2.0)


def test_deadline_stops_and_resumes(store: CheckpointStore, tmp_path: Path,
                                    reference: dict) -> None:
    stopped = fit(store, tmp_path, deadline=Deadline(seconds=-1))
    resumed = fit(store, tmp_path)

    assert stopped.persistkit_status is pcat.RunStatus.STOPPED_BY_DEADLINE
    assert store.steps(KEY)
    assert resumed.persistkit_status is pcat.RunStatus.COMPLETED
    assert resumed.predict(FEATURES[220:]).tolist() == reference["predictions"]
    assert resumed.get_evals_result() == reference["history"]


def test_finished_fit_restores_same_model(store: CheckpointStore, tmp_path: Path,
                                          reference: dict) -> None:
    fit(store, tmp_path)
    counter = CountIterations()
    again = fit(store, tmp_path, callback=counter)

    assert len(counter.seen) <= 1
    assert again.predict(FEATURES[220:]).tolist() == reference["predictions"]


def test_snapshot_options_are_rejected(store: CheckpointStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="snapshot_interval"):
        fit(store, tmp_path, snapshot_interval=5)


def test_disallowed_file_writing_rejected(store: CheckpointStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allow_writing_files"):
        fit(store, tmp_path, params={"allow_writing_files": False})


def fit_on_gpu(store: CheckpointStore, tmp_path: Path, **kwargs: Any) -> Any:
    return pcat.fit(model(tmp_path, task_type="GPU", bootstrap_type="Bernoulli"),
                    FEATURES[:220], TARGET[:220], eval_set=(FEATURES[220:], TARGET[220:]),
                    store=store, key=KEY, **kwargs)


def test_gpu_params_pass_through(store: CheckpointStore, tmp_path: Path,
                                 caplog: pytest.LogCaptureFixture) -> None:
    deadline = Deadline(hours=1)
    if os.environ.get("PERSISTKIT_TEST_GPU"):
        fitted = fit_on_gpu(store, tmp_path, every_seconds=1, deadline=deadline)

        assert fitted.get_params()["task_type"] == "GPU"
        assert store.steps(KEY)
        assert "deadline" in caplog.text
        return
    # Without a GPU, CatBoost's CUDA error shows that task_type reached it, and that no
    # Python callback was passed: CatBoost rejects those on the GPU before looking for one.
    with pytest.raises(CatBoostError, match=r"CUDA|GPU") as raised:
        fit_on_gpu(store, tmp_path, every_seconds=1, deadline=deadline)
    # A second attempt fails in CatBoost's CUDA manager, which the first one left set up.
    with pytest.raises(CatBoostError, match=r"(?i)cuda|gpu"):
        fit_on_gpu(store, tmp_path, every_seconds=1, deadline=deadline)

    assert "callbacks are not supported" not in str(raised.value)
    # Once per process: earlier tests may have warned already.
    warnings = [record for record in caplog.records
                if record.levelno == logging.WARNING and "the deadline" in record.getMessage()]
    assert len(warnings) <= 1


def test_round_interval_rejected_on_gpu(store: CheckpointStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass every_seconds instead"):
        fit_on_gpu(store, tmp_path, every_rounds=5)


def test_missing_library_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "catboost", None)
    monkeypatch.delitem(sys.modules, "persistkit.catboost")

    with pytest.raises(MissingDependencyError, match=r"pip install 'persistkit\[catboost\]'"):
        importlib.import_module("persistkit.catboost")


def test_every_seconds_uses_catboost_interval(store: CheckpointStore, tmp_path: Path,
                                              reference: dict) -> None:
    first = pcat.fit(model(tmp_path), FEATURES[:220], TARGET[:220],
                     eval_set=(FEATURES[220:], TARGET[220:]), store=store, key=KEY,
                     every_seconds=1)
    counter = CountIterations()
    again = pcat.fit(model(tmp_path), FEATURES[:220], TARGET[:220],
                     eval_set=(FEATURES[220:], TARGET[220:]), store=store, key=KEY,
                     every_seconds=1, callbacks=[counter])

    assert store.steps(KEY)
    assert first.predict(FEATURES[220:]).tolist() == reference["predictions"]
    assert len(counter.seen) <= 1
    assert again.predict(FEATURES[220:]).tolist() == reference["predictions"]

"""Resume tests of persistkit.xgboost: kills, early stopping, sampling, fingerprints."""

from __future__ import annotations

import importlib
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from adapter_child import KILL_POINTS, SOAK_KILL_POINTS, make_regression, run_child, run_in_process

import persistkit.xgboost as pxgb
from persistkit import CheckpointStore, Deadline
from persistkit.errors import FingerprintMismatchError, MissingDependencyError

PARAMS = {"max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 3}


@pytest.fixture
def store() -> Any:
    with CheckpointStore(f"memory://xgb-{uuid.uuid4().hex}", background=False) as memory_store:
        yield memory_store


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any, np.ndarray]:
    features, target = make_regression()
    return (xgb.DMatrix(features[:220], target[:220]), xgb.DMatrix(features[220:], target[220:]),
            features[220:])


@pytest.fixture(scope="module")
def reference() -> dict:
    return run_in_process("xgboost")


class StopAfter(xgb.callback.TrainingCallback):
    """Stop training once the booster has ``rounds`` rounds, as a kill would."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        return bool(model.num_boosted_rounds() >= self.rounds)


def train(store: CheckpointStore, data: tuple, *, params: dict | None = None,
          stop_after: int | None = None, rounds: int = 40, **kwargs: Any) -> tuple[Any, dict]:
    dtrain, dvalid, _ = data
    evals_result: dict = {}
    booster = pxgb.train(params or PARAMS, dtrain, rounds, evals=[(dvalid, "valid")],
                         early_stopping_rounds=8, evals_result=evals_result,
                         verbose_eval=False, store=store, key="xgb/run", every_rounds=5,
                         callbacks=[StopAfter(stop_after)] if stop_after else None, **kwargs)
    return booster, evals_result


@pytest.mark.parametrize("kill_point", [
    *KILL_POINTS, *(pytest.param(point, marks=pytest.mark.soak) for point in SOAK_KILL_POINTS)])
def test_killed_training_resumes_exactly(tmp_path: Path, reference: dict, kill_point: str) -> None:
    assert run_child("xgboost", str(tmp_path), kill_point) is None
    resumed = run_child("xgboost", str(tmp_path))

    assert resumed is not None
    assert resumed["predictions"] == reference["predictions"]
    assert resumed["best_iteration"] == reference["best_iteration"]
    assert resumed["best_score"] == reference["best_score"]
    assert resumed["history"] == reference["history"]
    assert resumed["rounds"] == reference["rounds"]


def test_early_stopping_patience_survives_resume(store: CheckpointStore, data: tuple) -> None:
    reference, reference_history = train(store, data)
    store.delete("xgb/run")
    best = reference.best_iteration
    # Stop 4 rounds after the best one, with 4 of the 8 rounds of patience used up.
    train(store, data, stop_after=best + 5)
    resumed, resumed_history = train(store, data)

    assert reference.num_boosted_rounds() == best + 9
    assert resumed.num_boosted_rounds() == reference.num_boosted_rounds()
    assert resumed.best_iteration == best
    assert resumed_history == reference_history

    # Plain continuation loses the patience and trains past the reference's stop.
    dtrain, dvalid, _ = data
    head = xgb.train(PARAMS, dtrain, best + 5, evals=[(dvalid, "valid")], verbose_eval=False)
    naive = xgb.train(PARAMS, dtrain, 40 - head.num_boosted_rounds(), xgb_model=head,
                      evals=[(dvalid, "valid")], early_stopping_rounds=8, verbose_eval=False)
    assert naive.num_boosted_rounds() > reference.num_boosted_rounds()


def test_round_10_resumes_after_round_5(store: CheckpointStore, data: tuple,
                                        caplog: pytest.LogCaptureFixture) -> None:
    train(store, data, stop_after=12, rounds=40)
    with caplog.at_level(logging.INFO, logger="persistkit.xgboost"):
        train(store, data)

    assert store.steps("xgb/run")[:3] == [5, 10, 12]
    assert "Resuming 'xgb/run' at round 12 of 40" in caplog.text


def test_deadline_stops_and_resumes(store: CheckpointStore, data: tuple) -> None:
    reference, reference_history = train(store, data)
    store.delete("xgb/run")

    stopped, _ = train(store, data, deadline=Deadline(seconds=-1))
    resumed, history = train(store, data)

    assert stopped.persistkit_status is pxgb.RunStatus.STOPPED_BY_DEADLINE
    assert stopped.num_boosted_rounds() == 1
    assert store.steps("xgb/run")[0] == 1
    assert resumed.persistkit_status is pxgb.RunStatus.COMPLETED
    np.testing.assert_array_equal(resumed.predict(data[1]), reference.predict(data[1]))
    assert history == reference_history


def test_finished_run_is_returned_as_is(store: CheckpointStore, data: tuple) -> None:
    first, first_history = train(store, data)
    again, again_history = train(store, data)

    assert again.num_boosted_rounds() == first.num_boosted_rounds()
    assert again.best_iteration == first.best_iteration
    assert again_history == first_history
    np.testing.assert_array_equal(again.predict(data[1]), first.predict(data[1]))


def test_subsampling_difference_is_logged(store: CheckpointStore, data: tuple,
                                          caplog: pytest.LogCaptureFixture) -> None:
    sampled = {**PARAMS, "subsample": 0.7, "colsample_bytree": 0.8}
    reference, _ = train(store, data, params=sampled)
    store.delete("xgb/run")
    train(store, data, params=sampled, stop_after=12)
    with caplog.at_level(logging.WARNING, logger="persistkit.xgboost"):
        resumed, _ = train(store, data, params=sampled)

    difference = np.abs(resumed.predict(data[1]) - reference.predict(data[1]))
    assert "sampling parameters" in caplog.text
    # Measured on this data: mean 0.39, max 1.3 (target standard deviation 2.5), and the
    # best validation RMSE 1.85 against 1.87; see the module docstring of persistkit.xgboost.
    assert 0.0 < difference.mean() < 1.0
    assert resumed.best_score == pytest.approx(reference.best_score, rel=0.1)


def test_changed_params_raise(store: CheckpointStore, data: tuple) -> None:
    train(store, data, stop_after=5)

    with pytest.raises(FingerprintMismatchError, match="params"):
        train(store, data, params={**PARAMS, "max_depth": 5})


def test_changed_data_raise(store: CheckpointStore, data: tuple) -> None:
    train(store, data, stop_after=5)
    features, target = make_regression(seed=1)
    other = (xgb.DMatrix(features[:220], target[:220]), data[1], data[2])

    with pytest.raises(FingerprintMismatchError, match="data"):
        train(store, other)


def test_gpu_params_pass_through(store: CheckpointStore, data: tuple) -> None:
    # This CPU-only XGBoost warns that it moves a "cuda" booster to the CPU; the
    # warning shows that the parameter reached XGBoost.
    with pytest.warns(UserWarning, match="GPU"):
        train(store, data, params={**PARAMS, "device": "cuda"}, stop_after=5)
    resumed, _ = train(store, data, params={**PARAMS, "device": "cpu"})

    assert resumed.num_boosted_rounds() > 5


def test_sklearn_regressor_resumes(store: CheckpointStore) -> None:
    features, target = make_regression()

    def model() -> Any:
        return xgb.XGBRegressor(n_estimators=40, max_depth=3, learning_rate=0.3, n_jobs=1,
                                early_stopping_rounds=8, random_state=3)

    fit_args = {"eval_set": [(features[220:], target[220:])], "verbose": False}
    reference = model().fit(features[:220], target[:220], **fit_args)
    stopped = pxgb.fit(model(), features[:220], target[:220], store=store, key="xgb/run",
                       every_rounds=5, deadline=Deadline(seconds=-1), **fit_args)
    resumed = pxgb.fit(model(), features[:220], target[:220], store=store, key="xgb/run",
                       every_rounds=5, **fit_args)

    assert stopped.persistkit_status is pxgb.RunStatus.STOPPED_BY_DEADLINE
    assert resumed.best_iteration == reference.best_iteration
    assert resumed.evals_result() == reference.evals_result()
    np.testing.assert_array_equal(resumed.predict(features), reference.predict(features))
    assert resumed.get_params()["n_estimators"] == 40


def test_raw_callback_recipe(store: CheckpointStore, data: tuple) -> None:
    dtrain, dvalid, _ = data
    reference = xgb.train(PARAMS, dtrain, 30, evals=[(dvalid, "valid")], verbose_eval=False)

    for stop in (12, None):
        callback = pxgb.CheckpointCallback(store=store, key="xgb/raw", every_rounds=5)
        extra = [StopAfter(stop)] if stop else []
        booster = xgb.train(PARAMS, dtrain, callback.remaining_rounds(30),
                            evals=[(dvalid, "valid")], xgb_model=callback.resume_model(),
                            verbose_eval=False, callbacks=[*extra, callback])

    assert booster.num_boosted_rounds() == 30
    np.testing.assert_array_equal(booster.predict(dvalid), reference.predict(dvalid))


def test_missing_library_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)
    monkeypatch.delitem(sys.modules, "persistkit.xgboost")

    with pytest.raises(MissingDependencyError, match=r"pip install 'persistkit\[xgboost\]'"):
        importlib.import_module("persistkit.xgboost")


def test_storage_outage_returns_booster(data: tuple, caplog: pytest.LogCaptureFixture) -> None:
    import fsspec

    from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan

    failing = FaultInjectingFileSystem(fsspec.filesystem("memory"), FaultPlan(transient_rate=1.0))
    with CheckpointStore(f"/outage-{uuid.uuid4().hex}", filesystem=failing,
                         max_attempts=1) as broken_store, caplog.at_level(logging.WARNING):
        booster, _ = train(broken_store, data)

    assert booster.num_boosted_rounds() > 5
    assert "may be missing or late" in caplog.text


def test_every_seconds_saves_by_time(store: CheckpointStore, data: tuple) -> None:
    dtrain, dvalid, _ = data
    pxgb.train(PARAMS, dtrain, 4, evals=[(dvalid, "valid")], verbose_eval=False,
               store=store, key="xgb/timed", every_seconds=1e-6)
    pxgb.train(PARAMS, dtrain, 4, evals=[(dvalid, "valid")], verbose_eval=False,
               store=store, key="xgb/final-only")

    assert store.steps("xgb/timed") == [1, 2, 3, 4]
    assert store.steps("xgb/final-only") == [4]


@pytest.mark.parametrize("options", [{"every_rounds": 0}, {"every_seconds": 0},
                                     {"every_rounds": 2.5}])
def test_invalid_policy_rejected(store: CheckpointStore, data: tuple, options: dict) -> None:
    with pytest.raises(ValueError, match="every_"):
        pxgb.train(PARAMS, data[0], 4, store=store, key="xgb/run", **options)

"""Resume tests of persistkit.lightgbm: kills, early stopping, Dataset safety, sampling."""

from __future__ import annotations

import importlib
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from adapter_child import KILL_POINTS, SOAK_KILL_POINTS, make_regression, run_child, run_in_process

import persistkit.lightgbm as plgb
from persistkit import CheckpointStore, Deadline
from persistkit.errors import FingerprintMismatchError, MissingDependencyError

PARAMS = {"objective": "regression", "num_leaves": 7, "learning_rate": 0.3, "verbosity": -1,
          "num_threads": 1, "seed": 3, "early_stopping_round": 8}
FEATURES, TARGET = make_regression()


@pytest.fixture
def store() -> Any:
    with CheckpointStore(f"memory://lgbm-{uuid.uuid4().hex}", background=False) as memory_store:
        yield memory_store


@pytest.fixture(scope="module")
def reference() -> dict:
    return run_in_process("lightgbm")


def datasets(features: np.ndarray = FEATURES, target: np.ndarray = TARGET) -> tuple[Any, Any]:
    train_set = lgb.Dataset(features[:220], target[:220], free_raw_data=False)
    return train_set, lgb.Dataset(features[220:], target[220:], reference=train_set)


def stop_after(rounds: int) -> Any:
    """Return a callback that ends training after ``rounds`` rounds, as a kill would."""
    def callback(env: Any) -> None:
        if env.iteration + 1 >= rounds:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    callback.order = 5  # type: ignore[attr-defined]
    return callback


def train(store: CheckpointStore, *, params: dict | None = None, stop: int | None = None,
          sets: tuple[Any, Any] | None = None, **kwargs: Any) -> tuple[Any, dict]:
    train_set, valid_set = sets or datasets()
    evals_result: dict = {}
    booster = plgb.train(params or PARAMS, train_set, 40, valid_sets=[valid_set],
                         evals_result=evals_result, store=store, key="lgbm/run",
                         every_rounds=5, callbacks=[stop_after(stop)] if stop else None, **kwargs)
    return booster, evals_result


@pytest.mark.parametrize("kill_point", [
    *KILL_POINTS, *(pytest.param(point, marks=pytest.mark.soak) for point in SOAK_KILL_POINTS)])
def test_killed_training_resumes_exactly(tmp_path: Path, reference: dict, kill_point: str) -> None:
    assert run_child("lightgbm", str(tmp_path), kill_point) is None
    resumed = run_child("lightgbm", str(tmp_path))

    assert resumed is not None
    assert resumed["predictions"] == reference["predictions"]
    assert resumed["best_iteration"] == reference["best_iteration"]
    assert resumed["best_score"] == reference["best_score"]
    assert resumed["history"] == reference["history"]


def test_early_stopping_state_survives_resume(store: CheckpointStore) -> None:
    reference, reference_history = train(store)
    store.delete("lgbm/run")
    best = reference.best_iteration
    train(store, stop=best + 4)
    resumed, history = train(store)

    assert len(reference_history["valid_0"]["l2"]) == best + 8
    assert resumed.best_iteration == best
    assert history == reference_history
    np.testing.assert_array_equal(resumed.predict(FEATURES), reference.predict(FEATURES))


def test_deadline_stops_and_resumes(store: CheckpointStore) -> None:
    reference, reference_history = train(store)
    store.delete("lgbm/run")

    stopped, _ = train(store, deadline=Deadline(seconds=-1))
    resumed, history = train(store)

    assert stopped.persistkit_status is plgb.RunStatus.STOPPED_BY_DEADLINE
    assert store.steps("lgbm/run")[0] == 1
    assert resumed.persistkit_status is plgb.RunStatus.COMPLETED
    assert history == reference_history
    np.testing.assert_array_equal(resumed.predict(FEATURES), reference.predict(FEATURES))


def test_validation_chunk_without_a_class(store: CheckpointStore) -> None:
    # Users reported continued multiclass training failing when a validation chunk
    # lacked a class; here class 2 is missing from the validation rows.
    labels = np.digitize(TARGET, [-1.0, 1.0])
    valid_rows = np.flatnonzero(labels[220:] != 2) + 220
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "verbosity": -1,
              "num_threads": 1, "learning_rate": 0.3}

    def sets() -> tuple[Any, Any]:
        train_set = lgb.Dataset(FEATURES[:220], labels[:220], free_raw_data=False)
        return train_set, lgb.Dataset(FEATURES[valid_rows], labels[valid_rows],
                                      reference=train_set)

    reference, _ = train(store, params=params, sets=sets())
    store.delete("lgbm/run")
    train(store, params=params, sets=sets(), stop=7)
    resumed, _ = train(store, params=params, sets=sets())

    assert set(labels[valid_rows]) == {0, 1}
    np.testing.assert_array_equal(resumed.predict(FEATURES), reference.predict(FEATURES))


def test_user_datasets_stay_untouched(store: CheckpointStore) -> None:
    train(store, stop=10)
    train_set, valid_set = datasets()
    train(store, sets=(train_set, valid_set))

    assert train_set.init_score is None
    fresh_on_used = lgb.train({**PARAMS, "early_stopping_round": 0}, train_set, 10)
    fresh_on_new = lgb.train({**PARAMS, "early_stopping_round": 0}, datasets()[0], 10)
    np.testing.assert_array_equal(fresh_on_used.predict(FEATURES), fresh_on_new.predict(FEATURES))


def test_freed_raw_data_rejected_on_resume(store: CheckpointStore) -> None:
    train(store, stop=10)
    train_set = lgb.Dataset(FEATURES[:220], TARGET[:220]).construct()
    valid_set = lgb.Dataset(FEATURES[220:], TARGET[220:], reference=train_set)

    with pytest.raises(ValueError, match="free_raw_data=False"):
        train(store, sets=(train_set, valid_set))


def test_bagging_difference_is_logged(store: CheckpointStore,
                                      caplog: pytest.LogCaptureFixture) -> None:
    bagged = {**PARAMS, "bagging_fraction": 0.7, "bagging_freq": 1}
    reference, _ = train(store, params=bagged)
    store.delete("lgbm/run")
    train(store, params=bagged, stop=5)
    with caplog.at_level(logging.WARNING, logger="persistkit.lightgbm"):
        resumed, _ = train(store, params=bagged)

    difference = np.abs(resumed.predict(FEATURES[220:]) - reference.predict(FEATURES[220:]))
    assert "sampling parameters" in caplog.text
    # Measured on this data; see the module docstring of persistkit.lightgbm.
    assert 0.0 < difference.mean() < 1.0
    assert resumed.best_score["valid_0"]["l2"] == pytest.approx(
        reference.best_score["valid_0"]["l2"], rel=0.2)


def test_record_evaluation_gets_full_history(store: CheckpointStore) -> None:
    _, reference_history = train(store)
    store.delete("lgbm/run")
    train(store, stop=6)
    recorded: dict = {}
    train_set, valid_set = datasets()
    plgb.train(PARAMS, train_set, 40, valid_sets=[valid_set], store=store, key="lgbm/run",
               every_rounds=5, callbacks=[lgb.record_evaluation(recorded)])

    assert recorded == reference_history


def test_changed_params_raise(store: CheckpointStore) -> None:
    train(store, stop=5)

    with pytest.raises(FingerprintMismatchError, match="params"):
        train(store, params={**PARAMS, "num_leaves": 15})


def test_changed_features_raise(store: CheckpointStore) -> None:
    train(store, stop=5)
    shifted = FEATURES + 1.0

    with pytest.raises(FingerprintMismatchError, match="features"):
        train(store, sets=datasets(features=shifted))


def test_gpu_params_pass_through(store: CheckpointStore) -> None:
    # Without an OpenCL device or GPU build, the error shows that the parameter arrived.
    with pytest.raises(lgb.basic.LightGBMError, match=r"OpenCL|GPU"):
        train(store, params={**PARAMS, "device_type": "gpu"})


def test_sklearn_regressor_resumes(store: CheckpointStore) -> None:
    def model() -> Any:
        return lgb.LGBMRegressor(n_estimators=40, num_leaves=7, learning_rate=0.3,
                                 verbosity=-1, n_jobs=1, random_state=3, early_stopping_round=8)

    fit_args = {"eval_X": (FEATURES[220:],), "eval_y": (TARGET[220:],)}
    reference = model().fit(FEATURES[:220], TARGET[:220], **fit_args)
    stopped = plgb.fit(model(), FEATURES[:220], TARGET[:220], store=store, key="lgbm/run",
                       every_rounds=5, deadline=Deadline(seconds=-1), **fit_args)
    resumed = plgb.fit(model(), FEATURES[:220], TARGET[:220], store=store, key="lgbm/run",
                       every_rounds=5, **fit_args)
    again = plgb.fit(model(), FEATURES[:220], TARGET[:220], store=store, key="lgbm/run",
                     every_rounds=5, **fit_args)

    assert stopped.persistkit_status is plgb.RunStatus.STOPPED_BY_DEADLINE
    for fitted in (resumed, again):
        assert fitted.best_iteration_ == reference.best_iteration_
        assert fitted.evals_result_ == reference.evals_result_
        np.testing.assert_array_equal(fitted.predict(FEATURES), reference.predict(FEATURES))
        assert fitted.get_params()["n_estimators"] == 40
        assert fitted.get_params()["early_stopping_round"] == 8


def test_missing_library_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    monkeypatch.delitem(sys.modules, "persistkit.lightgbm")

    with pytest.raises(MissingDependencyError, match=r"pip install 'persistkit\[lightgbm\]'"):
        importlib.import_module("persistkit.lightgbm")


def test_raw_callback_recipe(store: CheckpointStore) -> None:
    reference, _ = train(store)
    store.delete("lgbm/run")

    for stop in (6, None):
        callback = plgb.CheckpointCallback(
            store=store, key="lgbm/raw", every_rounds=5,
            early_stopping=plgb.EarlyStoppingState(stopping_rounds=8))
        train_set, valid_set = datasets()
        extra = [stop_after(stop)] if stop else []
        booster = lgb.train({**PARAMS, "early_stopping_round": 0}, train_set,
                            callback.remaining_rounds(40), valid_sets=[valid_set],
                            init_model=callback.resume_model(), callbacks=[*extra, callback])

    assert booster.best_iteration == reference.best_iteration
    np.testing.assert_array_equal(booster.predict(FEATURES), reference.predict(FEATURES))


def test_classifier_eval_chunk_without_a_class(store: CheckpointStore) -> None:
    labels = np.digitize(TARGET, [-1.0, 1.0])
    valid_rows = np.flatnonzero(labels[220:] != 2) + 220

    def model() -> Any:
        return lgb.LGBMClassifier(n_estimators=30, num_leaves=7, learning_rate=0.3,
                                  verbosity=-1, n_jobs=1, random_state=3)

    fit_args = {"eval_X": (FEATURES[valid_rows],), "eval_y": (labels[valid_rows],)}
    reference = model().fit(FEATURES[:220], labels[:220], **fit_args)
    plgb.fit(model(), FEATURES[:220], labels[:220], store=store, key="lgbm/classes",
             deadline=Deadline(seconds=-1), **fit_args)
    resumed = plgb.fit(model(), FEATURES[:220], labels[:220], store=store,
                       key="lgbm/classes", **fit_args)

    assert set(labels[valid_rows]) == {0, 1}
    np.testing.assert_array_equal(resumed.predict_proba(FEATURES),
                                  reference.predict_proba(FEATURES))
    assert resumed.evals_result_ == reference.evals_result_

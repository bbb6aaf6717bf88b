"""Booster checkpoints of persistkit-train's model fits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from test_checkpoint_policy import SlowSaves

from persistkit import CheckpointStore
from persistkit_train._models import Runtime, fit_model
from persistkit_train._progress import ProgressReporter

ROUNDS = 20


@pytest.fixture
def store() -> Iterator[CheckpointStore]:
    with CheckpointStore(f"memory://models-{uuid.uuid4().hex}", background=False) as memory_store:
        yield memory_store


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(300, 6)).astype(np.float32)
    return features, features[:, 0] * 2 + rng.normal(scale=0.1, size=300)


def fit(model: str, store: object, rows: tuple[np.ndarray, np.ndarray],
        **runtime_options: object) -> None:
    devices = {"xgboost": "cpu", "lightgbm": "cpu", "catboost": "cpu"}
    runtime = Runtime(store=store, devices=devices, threads=1, every_rounds=5,
                      **runtime_options)  # type: ignore[arg-type]
    fit_model(model, {"learning_rate": 0.1}, rows, rounds=ROUNDS, valid=None,
              early_stopping_rounds=None, key=f"{model}/fit", seed=0, runtime=runtime)


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_round_interval_saves_without_cap(store: CheckpointStore, rows: tuple,
                                          model: str) -> None:
    fit(model, store, rows, max_overhead=None)

    assert store.steps(f"{model}/fit") == [5, 10, 15, 20]


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_costly_saves_capped(store: CheckpointStore, rows: tuple, model: str) -> None:
    # A save of 0.2 s needs 10 s of training before the next one at the 2% cap.
    fit(model, SlowSaves(store, 0.2), rows)

    assert store.steps(f"{model}/fit") == [5, 20]


def test_catboost_saves_by_time_only(store: CheckpointStore, rows: tuple) -> None:
    # A round interval would make CatBoost write its snapshot after every iteration.
    # This fit ends long before the 30 s interval, so only the final snapshot is saved.
    fit("catboost", store, rows)

    assert len(store.steps("catboost/fit")) == 1


def test_round_callback_only_with_bars() -> None:
    # With the bars off, a fit gets no per-round callback, so CatBoost runs no Python
    # code between iterations.
    assert ProgressReporter(enabled=False).round_callback is None
    assert ProgressReporter(enabled=True).round_callback is not None


def test_xgboost_fit_keeps_global_verbosity(store: CheckpointStore, rows: tuple) -> None:
    import xgboost

    before = xgboost.get_config()["verbosity"]
    fit("xgboost", store, rows)

    assert xgboost.get_config()["verbosity"] == before

"""When the boosting adapters save: round and time intervals, and the overhead cap."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from adapter_child import make_regression

import persistkit.lightgbm as plgb
import persistkit.xgboost as pxgb
from persistkit import CheckpointStore
from persistkit._boosting import CheckpointPolicy, SaveTimer, last_save_cost
from persistkit.errors import StorageError

FEATURES, TARGET = make_regression()
ROUNDS = 40
SAVE_SECONDS = 0.2


class SlowSaves:
    """A store whose ``save`` first sleeps, like a large booster that takes long to save."""

    def __init__(self, store: CheckpointStore, seconds: float) -> None:
        self.store = store
        self.seconds = seconds

    def save(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.seconds)
        return self.store.save(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def store() -> Iterator[CheckpointStore]:
    with CheckpointStore(f"memory://policy-{uuid.uuid4().hex}", background=False) as memory_store:
        yield memory_store


def test_rounds_interval_due_on_multiples() -> None:
    policy = CheckpointPolicy(every_rounds=5)

    assert [rounds for rounds in range(1, 16) if policy.due(rounds, 0.0)] == [5, 10, 15]


def test_seconds_interval_due_after_time() -> None:
    policy = CheckpointPolicy(every_seconds=30.0)

    assert not policy.due(7, 29.9)
    assert policy.due(7, 30.0)


def test_overhead_cap_delays_costly_save() -> None:
    policy = CheckpointPolicy(every_rounds=1, max_overhead=0.02)

    # The previous save took 0.1 s, so 5 s of training must pass before the next one.
    assert not policy.due(10, 4.9, last_save_seconds=0.1)
    assert policy.due(10, 5.0, last_save_seconds=0.1)


def test_overhead_cap_needs_a_due_interval() -> None:
    policy = CheckpointPolicy(every_rounds=10, max_overhead=0.02)

    assert not policy.due(9, 100.0, last_save_seconds=0.001)
    assert policy.due(10, 100.0, last_save_seconds=0.001)


def test_no_cap_saves_whatever_the_cost() -> None:
    assert CheckpointPolicy(every_rounds=1).due(3, 0.001, last_save_seconds=10.0)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, "0.02", True, float("nan")])
def test_invalid_overhead_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="max_overhead must be a fraction between 0 and 1"):
        CheckpointPolicy(every_rounds=1, max_overhead=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 2.5, True, "5"])
def test_invalid_rounds_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="every_rounds must be a positive integer"):
        CheckpointPolicy(every_rounds=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1.0, True, "1"])
def test_invalid_seconds_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="every_seconds must be a positive number"):
        CheckpointPolicy(every_seconds=value)  # type: ignore[arg-type]


def test_numpy_intervals_accepted() -> None:
    # Values from a grid or an Optuna trial often arrive as numpy scalars.
    policy = CheckpointPolicy(every_rounds=np.int64(5), every_seconds=np.float64(30.0),
                              max_overhead=np.float64(0.02))

    assert policy.due(10, 0.0)


def test_save_cost_includes_background_commit() -> None:
    timer = SaveTimer()
    with timer.saving():
        time.sleep(0.01)
    with CheckpointStore(f"memory://policy-{uuid.uuid4().hex}") as background_store:
        background_store.save("k", {"model.bin": os.urandom(20_000_000)}, step=1)
        background_store.flush(timeout=30)
        commit_seconds = background_store.commit_cpu_seconds("k")

        cost = last_save_cost(timer, background_store, "k")

    assert timer.last_save_seconds >= 0.01
    assert commit_seconds > 0.0
    assert cost == timer.last_save_seconds + commit_seconds


class SlowRounds(xgb.callback.TrainingCallback):
    """Sleep after each XGBoost round, like a model whose rounds take long."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        time.sleep(self.seconds)
        return False


def train_xgboost(store: Any, key: str, *, rounds: int = ROUNDS, round_seconds: float = 0.0,
                  **options: Any) -> None:
    dtrain = xgb.DMatrix(FEATURES, TARGET)
    # The sleep comes before the checkpoint callback, which XGBoost runs last.
    pxgb.train({"max_depth": 2, "nthread": 1}, dtrain, rounds, verbose_eval=False,
               callbacks=[SlowRounds(round_seconds)], store=store, key=key, every_rounds=1,
               **options)


def train_lightgbm(store: Any, key: str, *, rounds: int = ROUNDS, round_seconds: float = 0.0,
                   **options: Any) -> None:
    def sleep(env: Any) -> None:
        time.sleep(round_seconds)

    train_set = lgb.Dataset(FEATURES, TARGET, free_raw_data=False)
    plgb.train({"num_leaves": 4, "num_threads": 1, "verbosity": -1}, train_set, rounds,
               callbacks=[sleep], store=store, key=key, every_rounds=1, **options)


@pytest.mark.parametrize("train", [train_xgboost, train_lightgbm], ids=["xgboost", "lightgbm"])
def test_slow_saves_skipped_under_cap(store: CheckpointStore, train: Any) -> None:
    slow_store = SlowSaves(store, SAVE_SECONDS)

    train(slow_store, "uncapped", rounds=5)
    train(slow_store, "capped", max_overhead=0.02)

    assert store.steps("uncapped") == [1, 2, 3, 4, 5]
    # After the first save took 0.2 s, the next interval save needs 10 s of training.
    # 40 rounds of this small model take far less, so only the final save follows.
    assert store.steps("capped") == [1, ROUNDS]


@pytest.mark.parametrize("train", [train_xgboost, train_lightgbm], ids=["xgboost", "lightgbm"])
def test_cheap_saves_kept_under_cap(store: CheckpointStore, train: Any) -> None:
    # Rounds of 50 ms let a save of up to 25 ms through at a cap of 50%; a save to
    # memory takes about 1 ms.
    train(store, "capped", rounds=8, round_seconds=0.05, max_overhead=0.5)

    assert store.steps("capped") == list(range(1, 9))


def fit_catboost(store: Any, key: str) -> None:
    from catboost import CatBoostRegressor

    import persistkit.catboost as pcat

    pcat.fit(CatBoostRegressor(iterations=5, verbose=False, allow_writing_files=True),
             FEATURES, TARGET, store=store, key=key, every_seconds=30)


@pytest.mark.parametrize("train", [train_xgboost, train_lightgbm, fit_catboost],
                         ids=["xgboost", "lightgbm", "catboost"])
def test_closed_store_rejected_before_training(tmp_path: Any, train: Any) -> None:
    closed_store = CheckpointStore(str(tmp_path / "store"))
    closed_store.close()

    with pytest.raises(StorageError, match=r"Cannot train 'closed': the store .* is closed"):
        train(closed_store, "closed")

    assert closed_store.closed

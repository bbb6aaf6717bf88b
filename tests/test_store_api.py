"""Public CheckpointStore API on memory:// and on a local folder."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistkit import CheckpointStore
from persistkit.errors import CheckpointNotFoundError, InvalidNameError, StorageError


@pytest.fixture(params=["memory", "local"])
def store_url(request: pytest.FixtureRequest, persistkit_store_url: str, tmp_path: Path) -> str:
    return persistkit_store_url if request.param == "memory" else str(tmp_path / "store")


@pytest.fixture(params=[True, False], ids=["background", "sync"])
def store(request: pytest.FixtureRequest, store_url: str) -> Iterator[CheckpointStore]:
    with CheckpointStore(store_url, background=request.param) as opened:
        yield opened


def test_save_load_round_trip(store: CheckpointStore) -> None:
    store.save(
        "xgb/final",
        {"model.ubj": b"\x00\x01binary", "state.json": {"round": 120, "history": [0.5, 0.31]}},
        step=120,
        metrics={"rmse": 0.31},
        metadata={"params": {"max_depth": 6}},
    )
    store.flush()

    checkpoint = store.load("xgb/final")
    assert checkpoint.key == "xgb/final"
    assert checkpoint.step == 120
    assert checkpoint.files["model.ubj"] == b"\x00\x01binary"
    assert isinstance(checkpoint.files["state.json"], bytes)
    assert checkpoint.json("state.json") == {"round": 120, "history": [0.5, 0.31]}
    assert checkpoint.object("state.json") == {"round": 120, "history": [0.5, 0.31]}
    assert checkpoint.object("model.ubj") == b"\x00\x01binary"
    assert checkpoint.metrics == {"rmse": 0.31}
    assert checkpoint.metadata == {"params": {"max_depth": 6}}


def test_steps_sort_numerically(store: CheckpointStore) -> None:
    for step in (5, 10, 100, 9):
        store.save("lgb", {"model.txt": f"step {step}".encode()}, step=step)
        store.flush()

    assert store.steps("lgb") == [5, 9, 10, 100]
    assert store.latest_step("lgb") == 100
    assert store.load("lgb").files["model.txt"] == b"step 100"
    assert store.load("lgb", step=9).files["model.txt"] == b"step 9"


def test_unknown_key_has_no_steps(store: CheckpointStore) -> None:
    assert store.steps("missing") == []
    assert store.latest_step("missing") is None
    with pytest.raises(CheckpointNotFoundError, match="'missing'"):
        store.load("missing")


def test_missing_step_raises_not_found(store: CheckpointStore) -> None:
    store.save("cat", {"model.cbm": b"m"}, step=1)
    store.flush()

    with pytest.raises(CheckpointNotFoundError, match="step 2"):
        store.load("cat", step=2)
    with pytest.raises(KeyError):
        store.load("cat", step=2)
    with pytest.raises(FileNotFoundError):
        store.load("cat", step=2)


def test_keys_lists_nested_keys(store: CheckpointStore) -> None:
    for key in ("xgb", "xgb/final", "optuna/xgb-search/trial-00012/xgb", "optuna/study"):
        store.save(key, {"a.bin": b"a"}, step=0)
    store.flush()

    assert store.keys() == sorted(
        ["xgb", "xgb/final", "optuna/xgb-search/trial-00012/xgb", "optuna/study"]
    )
    assert store.keys("optuna/") == ["optuna/study", "optuna/xgb-search/trial-00012/xgb"]
    assert store.keys("xgb/") == ["xgb/final"]
    assert store.keys("optuna/xgb") == ["optuna/xgb-search/trial-00012/xgb"]


def test_save_replaces_committed_step(store: CheckpointStore) -> None:
    store.save("k", {"a.bin": b"old", "b.bin": b"old"}, step=3)
    store.flush()
    store.save("k", {"a.bin": b"new"}, step=3)
    store.flush()

    checkpoint = store.load("k")
    assert store.steps("k") == [3]
    assert dict(checkpoint.files) == {"a.bin": b"new"}


def test_delete_one_step(store: CheckpointStore) -> None:
    for step in (1, 2, 3):
        store.save("k", {"a.bin": bytes([step])}, step=step)
        store.flush()

    store.delete("k", step=2)

    assert store.steps("k") == [1, 3]
    with pytest.raises(CheckpointNotFoundError):
        store.delete("k", step=2)


def test_delete_key_keeps_child_keys(store: CheckpointStore) -> None:
    store.save("xgb", {"a.bin": b"parent"}, step=1)
    store.save("xgb/final", {"a.bin": b"child"}, step=1)
    store.flush()

    store.delete("xgb")

    assert store.steps("xgb") == []
    assert store.keys() == ["xgb/final"]
    assert store.load("xgb/final").files["a.bin"] == b"child"


BAD_KEYS = ["", "/abs", "a//b", "..", "a/../b", "a/./b", "a\x00b", "a\nb", "a b", "a\\b", "a/", "-a", "_a"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_key_rejected(store: CheckpointStore, key: str) -> None:
    with pytest.raises(InvalidNameError) as raised:
        store.save(key, {"a.bin": b"a"}, step=0)
    assert isinstance(raised.value, ValueError)
    assert repr(key) in str(raised.value)
    with pytest.raises(InvalidNameError):
        store.load(key)


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "_manifest.json", "a\tb"])
def test_invalid_file_name_rejected(store: CheckpointStore, name: str) -> None:
    with pytest.raises(InvalidNameError) as raised:
        store.save("k", {name: b"a"}, step=0)
    assert repr(name) in str(raised.value)


@pytest.mark.parametrize("step", [-1, 1.5, "3", True, None])
def test_invalid_step_rejected(store: CheckpointStore, step: object) -> None:
    with pytest.raises(InvalidNameError, match="invalid step"):
        store.save("k", {"a.bin": b"a"}, step=step)  # type: ignore[arg-type]


def test_unserialisable_value_names_file(store: CheckpointStore) -> None:
    with pytest.raises(TypeError, match=r"'weights\.bin'"):
        store.save("k", {"weights.bin": object()}, step=0)
    with pytest.raises(TypeError, match=r"'state\.json'"):
        store.save("k", {"state.json": {"when": object()}}, step=0)


def test_save_after_close_fails(store_url: str) -> None:
    store = CheckpointStore(store_url)
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.save("k", {"a.bin": b"a"}, step=0)


def test_reopened_store_sees_checkpoints(store_url: str) -> None:
    with CheckpointStore(store_url) as first:
        first.save("k", {"a.bin": b"persisted"}, step=7, metrics={"loss": 0.5})

    with CheckpointStore(store_url) as second:
        assert second.steps("k") == [7]
        assert second.load("k").files["a.bin"] == b"persisted"


def test_plugin_fixture_store_is_isolated(persistkit_store: CheckpointStore) -> None:
    assert persistkit_store.keys() == []
    persistkit_store.save("k", {"a.bin": b"a"}, step=1)
    persistkit_store.flush()
    assert persistkit_store.keys() == ["k"]


def test_store_rejects_pickling(store: CheckpointStore) -> None:
    with pytest.raises(TypeError, match="Pass the URL instead"):
        pickle.dumps(store)


@pytest.mark.parametrize(
    ("metrics", "metadata", "message"),
    [
        ({"rmse": "low"}, None, "metric 'rmse' must be a number"),
        ({1: 0.5}, None, "metric names must be str"),
        (None, {"when": object()}, "metadata must be JSON-serialisable"),
    ],
)
def test_invalid_metrics_or_metadata_rejected(
    store: CheckpointStore, metrics: dict[object, object] | None, metadata: dict[str, object] | None, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        store.save("k", {"a.bin": b"a"}, step=0, metrics=metrics, metadata=metadata)  # type: ignore[arg-type]


def test_numpy_metrics_stored_as_numbers(store: CheckpointStore) -> None:
    numpy = pytest.importorskip("numpy")
    store.save("k", {"a.bin": b"a"}, step=0, metrics={"rmse": numpy.float32(0.5), "rounds": numpy.int64(7)})
    store.flush()
    assert store.load("k").metrics == {"rmse": 0.5, "rounds": 7}

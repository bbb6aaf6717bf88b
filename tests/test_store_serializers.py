"""Serializers: native booster formats, joblib and pickle behind allow_pickle and SHA-256."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from persistkit import CheckpointStore, Serializer, pickled, register_serializer
from persistkit._checkpoint import Checkpoint
from persistkit._manifest import Manifest
from persistkit._serializers import find_serializer
from persistkit.errors import UnsafeLoadError

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(persistkit_store_url: str) -> Iterator[CheckpointStore]:
    with CheckpointStore(persistkit_store_url, background=False) as opened:
        yield opened


def _training_data() -> tuple[Any, Any]:
    numpy = pytest.importorskip("numpy")
    generator = numpy.random.default_rng(0)
    features = generator.normal(size=(200, 4))
    target = features @ numpy.array([1.0, -2.0, 0.5, 0.0]) + generator.normal(scale=0.1, size=200)
    return features, target


def _save_and_reload(store: CheckpointStore, value: Any, name: str, **load_options: Any) -> tuple[str, Any]:
    store.save("model", {name: value}, step=1)
    checkpoint = store.load("model", **load_options)
    return checkpoint.manifest.files[name].serializer, checkpoint.object(name)


def test_xgboost_booster_round_trip(store: CheckpointStore) -> None:
    xgboost = pytest.importorskip("xgboost")
    features, target = _training_data()
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(features, label=target), num_boost_round=5)

    serializer, loaded = _save_and_reload(store, booster, "model.ubj")

    assert serializer == "xgboost-ubj"
    assert isinstance(loaded, xgboost.Booster)
    matrix = xgboost.DMatrix(features)
    assert (loaded.predict(matrix) == booster.predict(matrix)).all()
    assert store.load("model").files["model.ubj"][:1] == b"{"


def test_lightgbm_booster_round_trip(store: CheckpointStore) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    features, target = _training_data()
    dataset = lightgbm.Dataset(features, label=target)
    booster = lightgbm.train({"verbose": -1, "num_leaves": 4}, dataset, num_boost_round=5)

    serializer, loaded = _save_and_reload(store, booster, "model.txt")

    assert serializer == "lightgbm-text"
    assert isinstance(loaded, lightgbm.Booster)
    assert (loaded.predict(features) == booster.predict(features)).all()
    assert store.load("model").files["model.txt"].startswith(b"tree")


def test_catboost_model_round_trip(store: CheckpointStore, tmp_path: Path) -> None:
    catboost = pytest.importorskip("catboost")
    features, target = _training_data()
    model = catboost.CatBoostRegressor(iterations=5, depth=2, verbose=False, train_dir=str(tmp_path))
    model.fit(features, target)

    serializer, loaded = _save_and_reload(store, model, "model.cbm")

    assert serializer == "catboost-regressor-cbm"
    assert type(loaded) is catboost.CatBoostRegressor
    assert (loaded.predict(features) == model.predict(features)).all()


def test_sklearn_estimator_needs_allow_pickle(store: CheckpointStore) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    features, target = _training_data()
    estimator = linear_model.Ridge().fit(features, target)
    store.save("model", {"ridge.joblib": estimator}, step=1)

    with pytest.raises(UnsafeLoadError, match="allow_pickle=True"):
        store.load("model").object("ridge.joblib")

    checkpoint = store.load("model", allow_pickle=True)
    assert checkpoint.manifest.files["ridge.joblib"].serializer == "joblib"
    loaded = checkpoint.object("ridge.joblib")
    assert (loaded.predict(features) == estimator.predict(features)).all()


def test_pickled_value_round_trip(store: CheckpointStore) -> None:
    value = {"numbers": {1, 2, 3}, "tuple": (1, "a")}
    store.save("state", {"state.pkl": pickled(value)}, step=1)

    with pytest.raises(UnsafeLoadError):
        store.load("state").object("state.pkl")
    assert store.load("state", allow_pickle=True).object("state.pkl") == value


def test_pickle_with_wrong_hash_refused(store: CheckpointStore) -> None:
    store.save("state", {"state.pkl": pickled([1, 2])}, step=1)
    original = store.load("state", allow_pickle=True)
    tampered = Checkpoint(
        key=original.key,
        step=original.step,
        files=MappingProxyType({"state.pkl": original.files["state.pkl"] + b"."}),
        metrics=original.metrics,
        metadata=original.metadata,
        manifest=original.manifest,
        allow_pickle=True,
    )

    with pytest.raises(UnsafeLoadError, match="SHA-256"):
        tampered.object("state.pkl")


def test_custom_serializer_registered(store: CheckpointStore) -> None:
    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    register_serializer(
        Serializer(
            "test-point",
            lambda value: isinstance(value, Point),
            lambda point: f"{point.x},{point.y}".encode(),
            lambda data: Point(*map(int, data.decode().split(","))),
        )
    )
    _, loaded = _save_and_reload(store, Point(3, 4), "point.txt")
    assert (loaded.x, loaded.y) == (3, 4)


def test_manifest_without_serializer_is_rejected_on_object() -> None:
    manifest = Manifest.build(
        key="k", step=1, writer_id="w", files={"a.bin": b"a"}, serializers={"a.bin": "unknown"}
    )
    checkpoint = Checkpoint("k", 1, MappingProxyType({"a.bin": b"a"}), {}, {}, manifest)
    with pytest.raises(KeyError, match="unknown"):
        checkpoint.object("a.bin")


def test_library_types_detected_without_import() -> None:
    code = """
        import sys
        from persistkit._serializers import find_serializer
        fakes = {
            "xgboost.core": "Booster",
            "lightgbm.basic": "Booster",
            "catboost.core": "CatBoostClassifier",
            "sklearn.ensemble._forest": "RandomForestRegressor",
            "xgboost.sklearn": "XGBRegressor",
        }
        for module, name in fakes.items():
            fake = type(name, (), {"__module__": module})()
            print(find_serializer(fake, file_name="f").name)
        loaded = {"xgboost", "lightgbm", "catboost", "sklearn", "joblib"} & set(sys.modules)
        print(sorted(loaded))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=True,
    )
    assert result.stdout.split("\n")[:6] == [
        "xgboost-ubj",
        "lightgbm-text",
        "catboost-classifier-cbm",
        "joblib",
        "joblib",
        "[]",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"raw", "bytes"), (bytearray(b"raw"), "bytes"), ({"a": 1}, "json"), ([1], "json"), ("text", "json"), (None, "json")],
)
def test_builtin_serializer_choice(value: Any, expected: str) -> None:
    assert find_serializer(value, file_name="f").name == expected

"""Serializers that turn the values passed to ``save`` into bytes and back.

``CheckpointStore.save`` picks the first registered serializer whose ``accepts`` returns
True, and records its name in the manifest; ``Checkpoint.object`` uses that name to load
the value again. Built-in serializers, in the order they are tried:

======================  ===========================================  ============
name                    accepts                                      format
======================  ===========================================  ============
``bytes``               ``bytes``, ``bytearray``, ``memoryview``     raw
``pickle``              values wrapped with :func:`pickled`          pickle
``xgboost-ubj``         ``xgboost.Booster``                          UBJSON
``lightgbm-text``       ``lightgbm.Booster``                         model text
``catboost-*cbm``       CatBoost and its Classifier, Regressor and   .cbm
                        Ranker classes, one name per class
``joblib``              scikit-learn estimators and the scikit-learn joblib
                        wrappers of XGBoost and LightGBM
``json``                dict, list, str, int, float, bool, None      UTF-8 JSON
======================  ===========================================  ============

Library types are recognised by the module name of the value's class and its bases, so
checking a value never imports XGBoost, LightGBM, CatBoost or scikit-learn. Serializers
marked ``unsafe`` (pickle, joblib) execute code when loading; ``Checkpoint.object``
loads them only when the caller allows pickle and the file's SHA-256 matches the manifest.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from persistkit._compat import import_optional

__all__ = [
    "Pickled",
    "Serializer",
    "find_serializer",
    "get_serializer",
    "pickled",
    "register_serializer",
]


@dataclass(frozen=True)
class Serializer:
    """A named pair of functions that convert values of some types to bytes and back.

    Attributes:
        name: Recorded in the manifest; must stay stable across versions.
        accepts: Returns whether this serializer handles the value.
        dumps: Converts an accepted value to bytes.
        loads: Converts bytes written by ``dumps`` back to a value.
        unsafe: Loading can execute code (pickle, joblib).
    """

    name: str
    accepts: Callable[[Any], bool]
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]
    unsafe: bool = False


@dataclass(frozen=True)
class Pickled:
    """A value that the caller marked to be stored with pickle."""

    value: Any


def pickled(value: Any) -> Pickled:
    """Mark ``value`` to be stored with pickle, for objects that have no safer format.

    Loading it back requires ``load(..., allow_pickle=True)``.
    """
    return Pickled(value)


def _class_names(value: Any) -> list[tuple[str, str]]:
    """Return (module, qualified name) of the value's class and of every base class."""
    return [(cls.__module__ or "", cls.__qualname__) for cls in type(value).__mro__]


def _from_library(value: Any, library: str, class_names: tuple[str, ...] | None = None) -> bool:
    for module, name in _class_names(value):
        in_library = module == library or module.startswith(library + ".")
        if in_library and (class_names is None or name in class_names):
            return True
    return False


def _dumps_xgboost(booster: Any) -> bytes:
    return bytes(booster.save_raw(raw_format="ubj"))


def _loads_xgboost(data: bytes) -> Any:
    xgboost = import_optional("xgboost", "xgboost")
    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    return booster


def _dumps_lightgbm(booster: Any) -> bytes:
    return str(booster.model_to_string()).encode("utf-8")


def _loads_lightgbm(data: bytes) -> Any:
    lightgbm = import_optional("lightgbm", "lightgbm")
    return lightgbm.Booster(model_str=data.decode("utf-8"))


# CatBoost model class -> serializer name. A .cbm file does not record which wrapper
# class saved it, so each class gets its own name and loads back as that class.
_CATBOOST_SERIALIZERS = {
    "CatBoost": "catboost-cbm",
    "CatBoostClassifier": "catboost-classifier-cbm",
    "CatBoostRegressor": "catboost-regressor-cbm",
    "CatBoostRanker": "catboost-ranker-cbm",
}


def _is_catboost_class(value: Any, class_name: str) -> bool:
    # The most derived CatBoost class decides, so a CatBoostRegressor is not stored as
    # its base class CatBoost.
    for module, name in _class_names(value):
        in_catboost = module == "catboost" or module.startswith("catboost.")
        if in_catboost and name in _CATBOOST_SERIALIZERS:
            return name == class_name
    return False


def _dumps_catboost(model: Any) -> bytes:
    # CatBoost's save_model writes only to a path (catboost 1.2), so go through a
    # temporary file.
    with tempfile.TemporaryDirectory(prefix="persistkit-catboost-") as directory:
        path = os.path.join(directory, "model.cbm")
        model.save_model(path, format="cbm")
        with open(path, "rb") as file:
            return file.read()


def _catboost_loader(class_name: str) -> Callable[[bytes], Any]:
    def load(data: bytes) -> Any:
        catboost = import_optional("catboost", "catboost")
        model = getattr(catboost, class_name)()
        model.load_model(blob=data)
        return model

    return load


def _catboost_acceptor(class_name: str) -> Callable[[Any], bool]:
    return lambda value: _is_catboost_class(value, class_name)


def _catboost_serializers() -> list[Serializer]:
    return [
        Serializer(name, _catboost_acceptor(class_name), _dumps_catboost, _catboost_loader(class_name))
        for class_name, name in _CATBOOST_SERIALIZERS.items()
    ]


def _accepts_joblib(value: Any) -> bool:
    if _from_library(value, "sklearn"):
        return True
    return _from_library(value, "xgboost.sklearn") or _from_library(value, "lightgbm.sklearn")


def _dumps_joblib(value: Any) -> bytes:
    joblib = import_optional("joblib", "sklearn")
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


def _loads_joblib(data: bytes) -> Any:
    joblib = import_optional("joblib", "sklearn")
    return joblib.load(io.BytesIO(data))


def _accepts_json(value: Any) -> bool:
    return value is None or isinstance(value, (dict, list, str, int, float, bool))


def _dumps_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


_REGISTRY: list[Serializer] = [
    Serializer("bytes", lambda v: isinstance(v, (bytes, bytearray, memoryview)), bytes, bytes),
    Serializer(
        "pickle",
        lambda v: isinstance(v, Pickled),
        lambda v: pickle.dumps(v.value, protocol=pickle.HIGHEST_PROTOCOL),
        pickle.loads,
        unsafe=True,
    ),
    Serializer(
        "xgboost-ubj",
        lambda v: _from_library(v, "xgboost", ("Booster",)),
        _dumps_xgboost,
        _loads_xgboost,
    ),
    Serializer(
        "lightgbm-text",
        lambda v: _from_library(v, "lightgbm", ("Booster",)),
        _dumps_lightgbm,
        _loads_lightgbm,
    ),
    *_catboost_serializers(),
    Serializer("joblib", _accepts_joblib, _dumps_joblib, _loads_joblib, unsafe=True),
    Serializer("json", _accepts_json, _dumps_json, lambda data: json.loads(data.decode("utf-8"))),
]


def register_serializer(serializer: Serializer) -> None:
    """Register ``serializer`` ahead of the built-in ones, replacing one of the same name."""
    _REGISTRY[:] = [serializer] + [s for s in _REGISTRY if s.name != serializer.name]


def find_serializer(value: Any, *, file_name: str) -> Serializer:
    """Return the first registered serializer that accepts ``value``.

    Raises:
        TypeError: No serializer accepts the value; the message names the file and type.
    """
    for serializer in _REGISTRY:
        if serializer.accepts(value):
            return serializer
    raise TypeError(
        f"cannot save file {file_name!r}: no serializer accepts {type(value).__qualname__} "
        f"values. Pass bytes, a JSON-able value, a booster or estimator, wrap the value with "
        f"persistkit.pickled(), or register a Serializer"
    )


def get_serializer(name: str) -> Serializer:
    """Return the registered serializer called ``name``.

    Raises:
        KeyError: No serializer of that name is registered.
    """
    for serializer in _REGISTRY:
        if serializer.name == name:
            return serializer
    raise KeyError(f"no serializer named {name!r} is registered")

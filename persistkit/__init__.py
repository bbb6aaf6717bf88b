"""persistkit: checkpoints that let long ML jobs survive ephemeral sessions.

``import persistkit`` loads only fsspec and the standard library. Adapters live in
``persistkit.optuna``, ``persistkit.xgboost``, ``persistkit.lightgbm`` and
``persistkit.catboost`` and import their library when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from persistkit import errors

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "Deadline",
    "Retention",
    "Serializer",
    "__version__",
    "errors",
    "pickled",
    "register_serializer",
]

# Public name -> private module that defines it. Resolved on first access so that
# a half-imported optional stack never breaks ``import persistkit``.
_LAZY_NAMES = {
    "Checkpoint": "persistkit._store",
    "CheckpointStore": "persistkit._store",
    "Deadline": "persistkit._deadline",
    "Retention": "persistkit._retention",
    "Serializer": "persistkit._serializers",
    "pickled": "persistkit._serializers",
    "register_serializer": "persistkit._serializers",
}

if TYPE_CHECKING:
    from persistkit._deadline import Deadline
    from persistkit._retention import Retention
    from persistkit._serializers import Serializer, pickled, register_serializer
    from persistkit._store import Checkpoint, CheckpointStore


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'persistkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

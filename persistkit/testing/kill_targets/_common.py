"""Helpers shared by the kill-matrix target scripts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULT_NAME = "result.json"


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename.

    A target killed while writing its result leaves either the old file or the new one,
    and the next attempt writes it again.
    """
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def regression_data(rows: int, features: int, *, seed: int) -> tuple[Any, Any]:
    """Return a seeded synthetic regression problem ``(X, y)`` as float64 NumPy arrays.

    The target mixes linear terms, an interaction and a step so that boosting keeps
    improving for a few hundred rounds instead of stopping early.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = (
        x[:, 0] * 2.0
        + np.sin(x[:, 1] * 3.0)
        + x[:, 2] * x[:, 3]
        + (x[:, 4] > 0.5) * 1.5
        + rng.normal(scale=0.3, size=rows)
    )
    return x, y


def split_rows(x: Any, y: Any, fraction: float) -> tuple[Any, Any, Any, Any]:
    """Split ``(x, y)`` into a first and a second part at ``fraction`` of the rows."""
    cut = int(len(y) * fraction)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def float_list(values: Any) -> list[float]:
    """Convert an array of numbers into a list of Python floats (exact in JSON)."""
    return [float(value) for value in values]


FAULTS_ENV = "PERSISTKIT_KILLMATRIX_FAULTS"


def open_store(url: str, **options: Any) -> Any:
    """Open the target's CheckpointStore, with injected storage faults when asked for.

    When the environment variable ``PERSISTKIT_KILLMATRIX_FAULTS`` contains a JSON object of
    :class:`~persistkit.testing.faults.FaultPlan` fields, the local folder ``url`` is
    written through a :class:`~persistkit.testing.faults.FaultInjectingFileSystem` over
    fsspec's local filesystem. The store then commits the way it does on object stores
    (payload first, manifest last) and sees transient write failures and timeouts.
    """
    from persistkit import CheckpointStore

    plan_text = os.environ.get(FAULTS_ENV)
    if not plan_text:
        return CheckpointStore(url, **options)

    import fsspec

    from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan

    plan = FaultPlan(**json.loads(plan_text))
    # auto_mkdir: object stores have no directories, so the store never creates them.
    local = fsspec.filesystem("file", auto_mkdir=True)
    filesystem = FaultInjectingFileSystem(local, plan)
    return CheckpointStore(os.path.abspath(url), filesystem=filesystem, **options)

"""Shared fixtures of the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    """Return the real numberdata.csv: $PERSISTKIT_TRAIN_DATA or shared/data above the repo."""
    override = os.environ.get("PERSISTKIT_TRAIN_DATA")
    candidates = [Path(override)] if override else []
    candidates += [p / "shared/data/numberdata.csv" for p in Path(__file__).resolve().parents]
    found = [path for path in candidates if path.is_file()]
    assert found, "numberdata.csv not found; set PERSISTKIT_TRAIN_DATA to its path"
    return found[0]

"""Shared pytest set-up for persistkit's own tests.

An installed persistkit registers its fixtures through the ``pytest11`` entry point. In
a development tree that is not installed, this file loads the plugin module instead, so
the tests see the same fixtures either way.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest

_PLUGIN_MODULE = "persistkit.pytest_plugin"

if not any(entry.value == _PLUGIN_MODULE for entry in entry_points(group="pytest11")):
    pytest_plugins = [_PLUGIN_MODULE]


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    """Return the real numberdata.csv: $PERSISTKIT_TRAIN_DATA or shared/data above the repo."""
    override = os.environ.get("PERSISTKIT_TRAIN_DATA")
    candidates = [Path(override)] if override else []
    candidates += [p / "shared/data/numberdata.csv" for p in Path(__file__).resolve().parents]
    found = [path for path in candidates if path.is_file()]
    assert found, "numberdata.csv not found; set PERSISTKIT_TRAIN_DATA to its path"
    return found[0]

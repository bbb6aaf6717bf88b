"""Shared pytest set-up for persistkit's own tests.

An installed persistkit registers its fixtures through the ``pytest11`` entry point. In
a development tree that is not installed, this file loads the plugin module instead, so
the tests see the same fixtures either way.
"""

from __future__ import annotations

from importlib.metadata import entry_points

_PLUGIN_MODULE = "persistkit.pytest_plugin"

if not any(entry.value == _PLUGIN_MODULE for entry in entry_points(group="pytest11")):
    pytest_plugins = [_PLUGIN_MODULE]

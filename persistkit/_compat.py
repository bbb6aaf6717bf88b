"""Lazy imports of optional dependencies with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from persistkit.errors import MissingDependencyError


def import_optional(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is required for this feature but could not be imported ({exc}). "
            f"Install it with: pip install 'persistkit[{extra}]'"
        ) from exc

"""Command line of persistkit-train."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the persistkit-train command line and return the exit code."""
    print("persistkit-train is not implemented yet.", file=sys.stderr)
    return 2

"""Shared helpers of the benchmark scripts: machine description, tables and JSON output.

Every script prints a Markdown table and writes the same rows, plus the machine and
library versions, as JSON to ``benchmarks/results/NAME.json`` (or to ``--json PATH``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # Lets `python benchmarks/NAME.py` import the persistkit of this checkout.
    sys.path.insert(0, str(REPO_ROOT))

RESULTS_DIR = Path(__file__).resolve().parent / "results"

_LIBRARIES = ("persistkit", "fsspec", "numpy", "optuna", "xgboost", "lightgbm", "catboost",
              "huggingface_hub", "s3fs", "gcsfs")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions() -> dict[str, str]:
    """Return the versions of the libraries the benchmarks use, read from each module."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            module = __import__(name)
        except ImportError:
            continue
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def machine() -> dict[str, Any]:
    """Return the machine description recorded with every result."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def median(values: Sequence[float]) -> float:
    """Return the median of ``values``."""
    return statistics.median(values)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a Markdown table; floats are printed with three significant decimals."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines.extend("| " + " | ".join(cell(value) for value in row) + " |" for row in rows)
    return "\n".join(lines)


def report(name: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
           *, json_path: Path | None, settings: dict[str, Any], started: float,
           notes: Sequence[str] = ()) -> None:
    """Print the table with the machine line and write everything as JSON."""
    info = machine()
    print(f"## {name}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average {info['load_average_1min']}"
          f" at the end; {time.monotonic() - started:.0f} s in total")
    print(format_table(columns, rows))
    for note in notes:
        print(f"note: {note}")
    path = json_path or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "versions": library_versions(),
        "settings": settings,
        "columns": list(columns),
        "rows": [list(row) for row in rows],
        "notes": list(notes),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")

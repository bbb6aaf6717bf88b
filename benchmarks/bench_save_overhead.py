"""Measure how long ``CheckpointStore.save`` holds the training thread.

For each payload size, the script times ``save`` on a store that uploads in the
background and on one that commits synchronously (``background=False``), on the same
storage URL. Background saves are flushed between repetitions, outside the timed region,
so each timing is one save on an idle uploader. The result is printed as a table and
written as JSON.

Usage::

    python benchmarks/bench_save_overhead.py [--url URL] [--sizes 1K,1M,10M,100M]
        [--repeat 5] [--output bench_save_overhead.json]

Without ``--url`` the store is a new temporary local folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fsspec

from persistkit import CheckpointStore, __version__

_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


def parse_size(text: str) -> int:
    """Return the byte count of ``text`` such as ``"512"``, ``"1K"`` or ``"100M"``."""
    text = text.strip().upper()
    if text[-1:] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


def format_size(size: int) -> str:
    """Return ``size`` bytes as ``1 KB``, ``10 MB`` and so on (binary units)."""
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} B"


def time_saves(store: CheckpointStore, payload: bytes, repeat: int) -> list[float]:
    """Return the seconds each of ``repeat`` saves of ``payload`` held the calling thread."""
    timings = []
    for step in range(repeat):
        started = time.perf_counter()
        store.save("bench", {"payload.bin": payload}, step=step)
        timings.append(time.perf_counter() - started)
        store.flush()
    return timings


def measure(url: str, size: int, repeat: int) -> dict[str, float | int]:
    """Return the median save times, in milliseconds, for one payload size."""
    payload = os.urandom(size)
    results: dict[str, float | int] = {"size_bytes": size, "repeat": repeat}
    for mode, background in (("sync", False), ("background", True)):
        with CheckpointStore(f"{url}/{mode}-{size}", background=background, retention={"keep_last": 1}) as store:
            timings = time_saves(store, payload, repeat)
        results[f"{mode}_median_ms"] = statistics.median(timings) * 1000
        results[f"{mode}_max_ms"] = max(timings) * 1000
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="store URL to write to (default: a temporary local folder)")
    parser.add_argument("--sizes", default="1K,1M,10M,100M", help="comma-separated payload sizes")
    parser.add_argument("--repeat", type=int, default=5, help="saves per size and mode")
    parser.add_argument("--output", default="bench_save_overhead.json", help="JSON result file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="persistkit-bench-") as directory:
        url = args.url or directory
        rows = [measure(url, parse_size(size), args.repeat) for size in args.sizes.split(",")]

    print(f"{'payload':>10} {'sync median ms':>15} {'background median ms':>21} {'ratio':>7}")
    for row in rows:
        ratio = row["sync_median_ms"] / max(row["background_median_ms"], 1e-9)
        print(
            f"{format_size(int(row['size_bytes'])):>10} {row['sync_median_ms']:>15.2f} "
            f"{row['background_median_ms']:>21.2f} {ratio:>6.1f}x"
        )

    report = {
        "benchmark": "save_overhead",
        "url": "temporary local folder" if args.url is None else args.url,
        "python": platform.python_version(),
        "fsspec": fsspec.__version__,
        "persistkit": __version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "results": rows,
    }
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

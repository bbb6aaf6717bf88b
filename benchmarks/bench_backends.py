"""Save and load throughput of every storage backend, and Hub commits per checkpoint.

Starts each test server on 127.0.0.1 (see persistkit.testing.servers), saves checkpoints
of one random payload file with ``background=False`` so that the timing covers the whole
commit, loads them back with verification, and prints a table. The JSON written with
``--json`` contains the same rows. The Hub rows count commits on the Hub test server
per timed checkpoint, after a warm-up save has taken the writer lease. "hub" commits
every file inline (base64 in the commit request); "hub-lfs" uploads files of 1 MiB and
more through the LFS batch API first, closer to how huggingface.co takes large binaries.

    python benchmarks/bench_backends.py --sizes-mb 1 20 100 --json bench_backends.json

Numbers depend on the machine and on loopback; they compare backends, they do not
predict cloud throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from persistkit import CheckpointStore
from persistkit.testing import servers

BUCKET = "persistkit-bench"
ALL_BACKENDS = ("memory", "local", "moto", "seaweedfs", "gcs", "hub", "hub-lfs")
# Files from this size go through the LFS batch API on "hub-lfs".
HUB_LFS_THRESHOLD = 2**20


@dataclass(frozen=True)
class Row:
    """One measured backend and payload size."""

    backend: str
    size_mb: int
    repeats: int
    save_mb_s: float
    load_mb_s: float
    commits_per_checkpoint: float | None


def measure(
    backend: str,
    url: str,
    options: dict[str, object],
    size_mb: int,
    repeats: int,
    count_commits: Callable[[], int] | None,
) -> Row:
    payload = os.urandom(size_mb * 2**20)
    key = f"bench-{size_mb}mb"
    save_times, load_times = [], []
    with CheckpointStore(url, storage_options=options, background=False) as store:
        # A tiny first save takes the writer lease and writes the store marker, so the
        # timed saves and the commit count cover checkpoints only.
        store.save(key, {"model.bin": b"warm-up"}, step=0)
        commits_before = count_commits() if count_commits else 0
        for step in range(1, repeats + 1):
            started = time.perf_counter()
            store.save(key, {"model.bin": payload}, step=step)
            save_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            checkpoint = store.load(key)
            load_times.append(time.perf_counter() - started)
            assert checkpoint.files["model.bin"] == payload
        commits = (count_commits() - commits_before) / repeats if count_commits else None
    return Row(
        backend,
        size_mb,
        repeats,
        save_mb_s=size_mb / statistics.median(save_times),
        load_mb_s=size_mb / statistics.median(load_times),
        commits_per_checkpoint=commits,
    )


def run_backend(name: str, sizes_mb: list[int], repeats: Callable[[int], int]) -> list[Row]:
    unique = uuid.uuid4().hex[:8]
    if name in ("memory", "local"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"memory://bench-{unique}" if name == "memory" else folder
            return [measure(name, url, {}, size, repeats(size), None) for size in sizes_mb]
    starters = {
        "moto": servers.start_moto,
        "seaweedfs": servers.start_seaweedfs,
        "gcs": servers.start_fake_gcs,
        "hub": servers.start_hub_server,
        "hub-lfs": lambda: servers.start_hub_server(lfs_threshold=HUB_LFS_THRESHOLD),
    }
    server = starters[name]()
    try:
        options = dict(server.storage_options)
        count_commits = None
        if name.startswith("hub"):
            repo = f"persistkit-bench/{unique}"
            url = f"hf://datasets/{repo}/run"
            hub = server.handle

            def count_commits() -> int:
                return int(hub.commit_count(repo, repo_type="dataset"))
        else:
            import fsspec

            protocol = "gcs" if name == "gcs" else "s3"
            fsspec.filesystem(protocol, skip_instance_cache=True, **options).mkdir(BUCKET)
            url = f"{'gs' if name == 'gcs' else 's3'}://{BUCKET}/{unique}"
        return [measure(name, url, options, size, repeats(size), count_commits) for size in sizes_mb]
    finally:
        server.stop()


def print_table(rows: list[Row]) -> None:
    print(f"{'backend':<10} {'size MB':>7} {'n':>3} {'save MB/s':>10} {'load MB/s':>10} {'commits/ckpt':>13}")
    for row in rows:
        commits = "" if row.commits_per_checkpoint is None else f"{row.commits_per_checkpoint:.2f}"
        print(
            f"{row.backend:<10} {row.size_mb:>7} {row.repeats:>3} {row.save_mb_s:>10.1f} "
            f"{row.load_mb_s:>10.1f} {commits:>13}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=ALL_BACKENDS, default=list(ALL_BACKENDS))
    parser.add_argument("--sizes-mb", nargs="+", type=int, default=[1, 20, 100], help="payload sizes in MiB")
    parser.add_argument("--repeats", type=int, default=5, help="checkpoints per size up to 20 MiB; 2 above")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()

    os.environ.update(servers.client_environment())
    rows: list[Row] = []
    for backend in args.backends:
        rows += run_backend(backend, args.sizes_mb, lambda size: args.repeats if size <= 20 else 2)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Kill-matrix target: a training-like loop that saves a checkpoint of each series per step.

Usage: ``python -m persistkit.testing.kill_targets.store_loop STORE OUT [options]``.

Each step saves one checkpoint per key with a payload derived from the key and the step,
so every run saves the same bytes. Before each ``save`` the script logs its intent, and
once the checkpoint is known to be committed (``save`` returned with ``--sync``, or a
``flush()`` returned) it logs an acknowledgement. A re-run continues after the newest
committed step of each key. At the end it writes ``result.json`` with the newest
checkpoint of each key (and, with ``--sync``, every step the store contains).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from persistkit.testing._killchecks import (
    ACK_LOG_NAME,
    INTENT_LOG_NAME,
    append_log_record,
    checkpoint_digest,
)
from persistkit.testing.kill_targets._common import RESULT_NAME, open_store, write_json_atomic


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="store URL")
    parser.add_argument("out", type=Path, help="output folder for logs and result.json")
    parser.add_argument("--steps", type=int, default=30, help="steps per key (default 30)")
    parser.add_argument("--keys", type=int, default=2, help="number of keys (default 2)")
    parser.add_argument("--payload-kib", type=int, default=64,
                        help="payload size per checkpoint in KiB (default 64)")
    parser.add_argument("--pause-ms", type=float, default=20.0,
                        help="simulated training time per step in milliseconds (default 20)")
    parser.add_argument("--flush-every", type=int, default=5,
                        help="call flush() every N steps (default 5)")
    parser.add_argument("--keep-last", type=int, default=0,
                        help="retention: keep the newest N checkpoints per key; 0 keeps all")
    parser.add_argument("--sync", action="store_true",
                        help="save with background=False, so every save is committed on return")
    return parser.parse_args(argv)


def checkpoint_files(key: str, step: int, payload_bytes: int) -> dict[str, bytes]:
    """Return the files of checkpoint ``step`` of ``key``; the same on every run."""
    payload = random.Random(f"{key}/{step}").randbytes(payload_bytes)
    state = json.dumps({"key": key, "step": step}, sort_keys=True).encode("utf-8")
    return {"payload.bin": payload, "state.json": state}


def _next_step(latest: int | None) -> int:
    return 0 if latest is None else latest + 1


def main(argv: list[str] | None = None) -> int:
    """Run the save loop and return the exit code."""

    args = _parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    keys = [f"loop/series-{index}" for index in range(args.keys)]
    retention = {"keep_last": args.keep_last} if args.keep_last else None
    pending: list[tuple[str, int, str]] = []

    def acknowledge() -> None:
        for key, step, digest in pending:
            append_log_record(args.out / ACK_LOG_NAME, key, step, digest)
        pending.clear()

    with open_store(args.store, background=not args.sync, retention=retention) as store:
        start = {key: _next_step(store.latest_step(key)) for key in keys}
        for step in range(args.steps):
            for key in keys:
                if step < start[key]:
                    continue
                files = checkpoint_files(key, step, args.payload_kib * 1024)
                digest = checkpoint_digest(files)
                append_log_record(args.out / INTENT_LOG_NAME, key, step, digest)
                store.save(key, files, step=step, metrics={"loss": 1.0 / (step + 1)})
                pending.append((key, step, digest))
                if args.sync:
                    acknowledge()
            time.sleep(args.pause_ms / 1000.0)
            if (step + 1) % args.flush_every == 0:
                store.flush(timeout=120)
                acknowledge()
        store.flush(timeout=120)
        acknowledge()

        result: dict[str, dict[str, Any]] = {}
        for key in keys:
            latest = store.load(key)
            result[key] = {
                "latest_step": latest.step,
                "latest_digest": checkpoint_digest(latest.files),
                "latest_metrics": dict(latest.metrics),
            }
            # In the background the uploader coalesces queued snapshots of a key, so which
            # intermediate steps exist depends on timing; with --sync every step is committed.
            if args.sync:
                result[key]["steps"] = store.steps(key)
    write_json_atomic(args.out / RESULT_NAME, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

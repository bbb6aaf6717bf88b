"""Benchmark: training time redone after a SIGKILL, against the checkpoint interval.

For each checkpoint interval the script starts an XGBoost training run in a child
process, with persistkit checkpoints to a local folder. It SIGKILLs the child after a
seeded random delay counted from the first round. The work lost is the wall time from
the end of the newest committed round to the kill, which a resumed run repeats; before
the first commit it is the whole time since training started. The child appends every
finished round with its wall-clock time to a log, so the loss is measured, not
estimated from the interval.

Data: seeded synthetic regression, 61,120 rows (ten times the real data) and 64
features. One round took about 0.01 s on an idle 2-core machine and 0.15 to 0.5 s on
the same machine under a load average of 6; ``--round-seconds`` spreads the kills of
the round intervals accordingly.

Usage: ``python benchmarks/bench_work_lost.py [--kills 6] [--intervals 1,5,10]
[--rounds 100] [--round-seconds 0.15] [--train-default]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _measure import median, report


def child(store_url: str, log_path: Path, every_seconds: float | None, every_rounds: int | None,
          max_overhead: float | None) -> None:
    """Train until killed, logging ``{"round": n, "time": t}`` after every round."""
    import numpy as np
    import xgboost

    import persistkit.xgboost
    from persistkit import CheckpointStore

    rng = np.random.default_rng(0)
    x = rng.normal(size=(61120, 64))
    y = x[:, 0] * 2 + np.sin(x[:, 1] * 3) + x[:, 2] * x[:, 3] + rng.normal(scale=0.3, size=len(x))
    dtrain = xgboost.DMatrix(x, label=y)
    log_file = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (kept open until killed)

    class RoundLog(xgboost.callback.TrainingCallback):
        def before_training(self, model: Any) -> Any:
            log_file.write(json.dumps({"round": model.num_boosted_rounds(), "time": time.time()}) + "\n")
            return model

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            log_file.write(json.dumps({"round": model.num_boosted_rounds(), "time": time.time()}) + "\n")
            return False

    params = {"objective": "reg:squarederror", "max_depth": 6, "eta": 0.05, "seed": 0}
    with CheckpointStore(store_url) as store:
        persistkit.xgboost.train(params, dtrain, num_boost_round=100000, store=store,
                                 key="bench/xgb", every_seconds=every_seconds,
                                 every_rounds=every_rounds, max_overhead=max_overhead,
                                 callbacks=[RoundLog()])


def committed_round(store_url: str) -> int | None:
    """Return the boosting round of the newest committed checkpoint, or None."""
    from persistkit import CheckpointStore

    with CheckpointStore(store_url, background=False) as store:
        return store.latest_step("bench/xgb")


def one_kill(delay_s: float, every_seconds: float | None, every_rounds: int | None,
             max_overhead: float | None) -> dict[str, Any]:
    """Run the child, SIGKILL it after ``delay_s`` and return the measured loss."""
    folder = Path(tempfile.mkdtemp(prefix="bench-lost-"))
    try:
        store_url, log_path = str(folder / "store"), folder / "rounds.jsonl"
        command = [sys.executable, __file__, "--child", store_url, str(log_path),
                   str(every_seconds or 0), str(every_rounds or 0), str(max_overhead or 0)]
        process = subprocess.Popen(command, start_new_session=True)
        # The delay counts from the first logged round, so imports never absorb it.
        while not log_path.exists() or not log_path.read_text():
            if process.poll() is not None:
                raise RuntimeError(f"the training child exited with {process.returncode}")
            time.sleep(0.05)
        time.sleep(delay_s)
        killed_at = time.time()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)

        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.endswith("}")]
        finish_time = {record["round"]: record["time"] for record in records}
        committed = committed_round(store_url)
        start_time = records[0]["time"]
        saved_at = finish_time.get(committed, start_time) if committed is not None else start_time
        return {"delay_s": delay_s, "rounds_done": records[-1]["round"], "committed_round": committed,
                "lost_s": killed_at - saved_at, "training_s": killed_at - start_time}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6, help="kills per interval (default 6)")
    parser.add_argument("--intervals", default="1,5,10",
                        help="checkpoint intervals in seconds, comma-separated (default 1,5,10)")
    parser.add_argument("--rounds", default="100",
                        help="checkpoint intervals in rounds, comma-separated (default 100)")
    parser.add_argument("--round-seconds", type=float, default=0.15,
                        help="estimated seconds per round, which spreads the kills of the "
                        "round intervals (default 0.15, measured on a 2-core VM)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill delays (default 1)")
    parser.add_argument("--json", type=Path, help="JSON output path")
    parser.add_argument("--train-default", action="store_true",
                        help="also measure persistkit-train's booster interval: 50 rounds or "
                        "30 s, with saves capped at 1%% of the training time")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        store_url, log_path, seconds, rounds, overhead = args.child
        child(store_url, Path(log_path), float(seconds) or None, int(rounds) or None,
              float(overhead) or None)
        return

    started = time.monotonic()
    rng = random.Random(args.seed)
    settings: list[tuple[str, float | None, int | None, float | None, float]] = [
        (f"every {seconds} s", float(seconds), None, None, float(seconds))
        for seconds in args.intervals.split(",") if seconds
    ]
    settings += [(f"every {rounds} rounds", None, int(rounds), None,
                  args.round_seconds * int(rounds))
                 for rounds in args.rounds.split(",") if rounds]
    if args.train_default:
        from persistkit_train._models import CHECKPOINT_MAX_OVERHEAD

        # The cap spaces the saves of a growing model by seconds; 10 s spreads the kills
        # over 30 s.
        settings.append(("every 50 rounds or 30 s, 1% cap (persistkit-train)", 30.0, 50,
                         CHECKPOINT_MAX_OVERHEAD, 10.0))
    rows = []
    samples: dict[str, list[dict[str, Any]]] = {}
    for label, seconds, rounds, overhead, span in settings:
        # Kill moments spread over three intervals (at least 10 s) after training started.
        samples[label] = [one_kill(rng.uniform(0.5, max(3 * span, 10.0)), seconds, rounds,
                                   overhead)
                          for _ in range(args.kills)]
        lost = [sample["lost_s"] for sample in samples[label]]
        rows.append([label, len(lost), median(lost), max(lost),
                     median([sample["training_s"] for sample in samples[label]])])
        print(rows[-1], flush=True)

    report("bench_work_lost", ["checkpoint interval", "kills", "median lost s", "max lost s",
                               "median training s at kill"],
           rows, json_path=args.json, started=started,
           settings={"kills": args.kills, "seed": args.seed, "samples": samples})


if __name__ == "__main__":
    main()

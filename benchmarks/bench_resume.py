"""Benchmark: resume latency with 10 and 1,000 checkpoints in the store.

Measures, in a fresh process, the time from process start to the first new boosting
round (XGBoost) or the first new trial (Optuna). The time splits into importing the
libraries and restoring: from the end of the imports to the first new round or trial,
which covers loading and verifying the checkpoint and restoring the state. Each store is
prepared beforehand in a local folder:

- XGBoost: one key whose checkpoints are the rounds of a run saved every round, so 10
  or 1,000 committed steps (1,000 rows, 10 features, depth 3).
- Optuna: a study persisted by ``persistkit.optuna`` (random sampler, so that preparing
  1,000 trials stays fast) whose objective saves a small trial-scoped checkpoint
  (``persistkit.optuna.trial_key``), as persistkit-train does. 10 or 1,000 trials leave
  10 or 1,000 trial checkpoints plus the study's journal, whose retention keeps its
  newest 3 steps.

"0" rows are a fresh start with an empty store, for comparison.

Usage: ``python benchmarks/bench_resume.py [--reps 3] [--counts 0,10,1000]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _measure import median, report


def _xgboost_data() -> Any:
    import numpy as np
    import xgboost

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 10))
    return xgboost.DMatrix(x, label=x[:, 0] + rng.normal(scale=0.3, size=1000))


_XGB_PARAMS = {"max_depth": 3, "eta": 0.05, "nthread": 1, "seed": 0}


def prepare_xgboost(store_url: str, checkpoints: int) -> None:
    """Train ``checkpoints`` rounds, committing every round."""
    import persistkit.xgboost
    from persistkit import CheckpointStore

    with CheckpointStore(store_url, background=False) as store:
        persistkit.xgboost.train(_XGB_PARAMS, _xgboost_data(), num_boost_round=checkpoints,
                                 store=store, key="bench/xgb", every_rounds=1, verbose_eval=False)


def prepare_optuna(store_url: str, checkpoints: int) -> None:
    """Run ``checkpoints`` trials, each saving one trial-scoped checkpoint."""
    import optuna

    import persistkit.optuna
    from persistkit import CheckpointStore

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with CheckpointStore(store_url) as store:

        def objective(trial: Any) -> float:
            value = (trial.suggest_float("x", -10, 10) - 2) ** 2 + trial.suggest_int("y", 0, 10)
            store.save(persistkit.optuna.trial_key(trial, "model"), {"model.bin": b"x" * 1024},
                       step=1)
            return value

        study = persistkit.optuna.load_study(store, "bench", direction="minimize",
                                             sampler=optuna.samplers.RandomSampler(seed=0))
        persistkit.optuna.optimize(study, objective, n_trials=checkpoints)


def child(kind: str, store_url: str, log_path: Path) -> None:
    """Resume, log the import and first-progress times, and exit at the first new round or trial."""
    import os

    def mark(event: str) -> None:
        with open(log_path, "a", encoding="utf-8") as log_file:
            log_file.write(json.dumps({"event": event, "time": time.time()}) + "\n")

    if kind == "xgboost":
        import xgboost

        import persistkit.xgboost
        from persistkit import CheckpointStore

        class FirstRound(xgboost.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                mark("first")
                os._exit(0)

        data = _xgboost_data()
        mark("imported")
        store = CheckpointStore(store_url)
        persistkit.xgboost.train(_XGB_PARAMS, data, num_boost_round=100000, store=store,
                                 key="bench/xgb", callbacks=[FirstRound()], verbose_eval=False)
    else:
        import optuna

        import persistkit.optuna
        from persistkit import CheckpointStore

        def objective(trial: Any) -> float:
            mark("first")
            os._exit(0)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        mark("imported")
        store = CheckpointStore(store_url)
        study = persistkit.optuna.load_study(store, "bench", direction="minimize",
                                             sampler=optuna.samplers.RandomSampler(seed=0))
        persistkit.optuna.optimize(study, objective, n_trials=100000)


def measure(kind: str, store_url: str) -> dict[str, float]:
    """Start a resuming child and return its import and restore times in seconds."""
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "events.jsonl"
        started = time.time()
        subprocess.run([sys.executable, __file__, "--child", kind, store_url, str(log_path)],
                       check=True, timeout=600)
        events = {record["event"]: record["time"]
                  for record in map(json.loads, log_path.read_text().splitlines())}
    return {"total_s": events["first"] - started, "import_s": events["imported"] - started,
            "restore_s": events["first"] - events["imported"]}


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="resumes measured per store (default 3)")
    parser.add_argument("--counts", default="0,10,1000",
                        help="checkpoints in the store, comma-separated (default 0,10,1000)")
    parser.add_argument("--kinds", default="xgboost,optuna", help="what resumes (default both)")
    parser.add_argument("--json", type=Path, help="JSON output path")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return

    started = time.monotonic()
    rows = []
    for kind in args.kinds.split(","):
        for count in [int(part) for part in args.counts.split(",")]:
            folder = Path(tempfile.mkdtemp(prefix="bench-resume-"))
            try:
                store_url = str(folder / "store")
                prepare_started = time.perf_counter()
                if count:
                    (prepare_xgboost if kind == "xgboost" else prepare_optuna)(store_url, count)
                prepare_s = time.perf_counter() - prepare_started
                samples = []
                for rep in range(args.reps):
                    # A resume may commit (Optuna saves the new trial), so every
                    # repetition resumes from its own copy of the prepared store.
                    copy = folder / f"copy-{rep}"
                    if count:
                        shutil.copytree(store_url, copy)
                    samples.append(measure(kind, str(copy)))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            rows.append([kind, count, median([s["total_s"] for s in samples]),
                         median([s["import_s"] for s in samples]),
                         median([s["restore_s"] for s in samples]), prepare_s])
            print(rows[-1], flush=True)

    report("bench_resume", ["resumes", "checkpoints in store", "median total s",
                            "median import s", "median restore s", "store preparation s"],
           rows, json_path=args.json, started=started, settings={"reps": args.reps})


if __name__ == "__main__":
    main()

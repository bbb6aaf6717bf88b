"""Benchmark: wall-time overhead of persistkit checkpoints during boosting.

Trains XGBoost, LightGBM and CatBoost for a fixed number of rounds, with no early
stopping, so every configuration does the same work. The configurations are: no
checkpoints; persistkit checkpoints to a local folder as persistkit-train saves them
(XGBoost and LightGBM every 50 rounds or 30 s with interval saves capped at 1% of the
training time, CatBoost every 30 s); every 10 s; every 100 rounds without a cap. For
XGBoost, XGBoost's own ``TrainingCheckPoint`` writing every 100 rounds to a local folder
is measured too. The configurations alternate within each repetition, so load on the
machine affects them alike. The table reports the median of the repetitions and the overhead
against the median without checkpoints. The timed span includes the final ``flush()``
and ``close()`` of the store, which the caller waits for.

Data: seeded synthetic regression with the real data's row count (6,112) and 64 numeric
features, and the same with ten times the rows.

Usage: ``python benchmarks/bench_overhead.py [--reps 3] [--libraries xgboost,lightgbm]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _measure import median, report

from persistkit_train._models import CHECKPOINT_MAX_OVERHEAD

REAL_ROWS = 6112
FEATURES = 64
# The adapters save only at the end unless given an interval, so the default measured
# here is persistkit-train's. It saves every 50 rounds or 30 s, whichever comes first,
# and caps interval saves at 1% of the training time. CatBoost saves every 30 s.
DEFAULT_CONFIG = "persistkit-train default"
TEN_SECONDS = "persistkit / 10 s"
HUNDRED_ROUNDS = "persistkit / 100 rounds, no cap"
XGBOOST_BUILTIN = "xgboost TrainingCheckPoint / 100 rounds"
# No checkpoints, but a Python callback that does nothing: what any callback costs CatBoost.
CATBOOST_NOOP_CALLBACK = "no checkpoints, CatBoost callback that does nothing"


class _NoOpCallback:
    def after_iteration(self, info: Any) -> bool:
        return True


def make_data(rows: int, seed: int = 0) -> tuple[Any, Any]:
    """Return a seeded synthetic regression problem with ``rows`` rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    y = x[:, 0] * 2 + np.sin(x[:, 1] * 3) + x[:, 2] * x[:, 3] + rng.normal(scale=0.3, size=rows)
    return x, y


def _store(folder: Path) -> Any:
    from persistkit import CheckpointStore

    return CheckpointStore(str(folder / "store"))


def run_xgboost(config: str, x: Any, y: Any, rounds: int, folder: Path) -> int:
    """Train XGBoost once under ``config``; return the number of checkpoints written."""
    import xgboost

    params = {"objective": "reg:squarederror", "max_depth": 6, "eta": 0.1, "seed": 0}
    dtrain = xgboost.DMatrix(x, label=y)
    if config == "none":
        xgboost.train(params, dtrain, num_boost_round=rounds)
        return 0
    if config == XGBOOST_BUILTIN:
        (folder / "builtin").mkdir()
        checkpoint = xgboost.callback.TrainingCheckPoint(str(folder / "builtin"), interval=100)
        xgboost.train(params, dtrain, num_boost_round=rounds, callbacks=[checkpoint])
        return len(list((folder / "builtin").iterdir()))
    import persistkit.xgboost

    with _store(folder) as store:
        persistkit.xgboost.train(params, dtrain, num_boost_round=rounds, store=store,
                                 key="bench/xgb", **_interval(config))
        return len(store.steps("bench/xgb"))


def run_lightgbm(config: str, x: Any, y: Any, rounds: int, folder: Path) -> int:
    """Train LightGBM once under ``config``; return the number of checkpoints written."""
    import lightgbm

    params = {"objective": "regression", "num_leaves": 31, "learning_rate": 0.1, "seed": 0,
              "verbose": -1}
    train_set = lightgbm.Dataset(x, y, free_raw_data=False)
    if config == "none":
        lightgbm.train(params, train_set, num_boost_round=rounds)
        return 0
    import persistkit.lightgbm

    with _store(folder) as store:
        persistkit.lightgbm.train(params, train_set, num_boost_round=rounds, store=store,
                                  key="bench/lgbm", **_interval(config))
        return len(store.steps("bench/lgbm"))


def run_catboost(config: str, x: Any, y: Any, rounds: int, folder: Path) -> int:
    """Train CatBoost once under ``config``; return the number of checkpoints written."""
    from catboost import CatBoostRegressor

    # Every configuration writes CatBoost's training logs to the run's folder, because
    # the snapshots persistkit uses need file writing enabled.
    model = CatBoostRegressor(iterations=rounds, depth=6, learning_rate=0.1, random_seed=0,
                              verbose=False, train_dir=str(folder / "catboost_info"))
    if config == "none":
        model.fit(x, y)
        return 0
    if config == CATBOOST_NOOP_CALLBACK:
        model.fit(x, y, callbacks=[_NoOpCallback()])
        return 0
    import persistkit.catboost

    interval = _interval(config)
    interval.pop("max_overhead", None)
    if config == DEFAULT_CONFIG:
        # persistkit-train saves CatBoost by time only.
        interval["every_rounds"] = None
    with _store(folder) as store:
        persistkit.catboost.fit(model, x, y, store=store, key="bench/cat", **interval)
        return len(store.steps("bench/cat"))


def _interval(config: str) -> dict[str, Any]:
    if config == TEN_SECONDS:
        return {"every_seconds": 10.0, "every_rounds": None}
    if config == HUNDRED_ROUNDS:
        return {"every_rounds": 100, "every_seconds": None}
    if config == DEFAULT_CONFIG:
        return {"every_rounds": 50, "every_seconds": 30.0, "max_overhead": CHECKPOINT_MAX_OVERHEAD}
    raise ValueError(f"unknown configuration {config!r}")


RUNNERS: dict[str, tuple[Callable[[str, Any, Any, int, Path], int], list[str]]] = {
    "xgboost": (run_xgboost, ["none", DEFAULT_CONFIG, TEN_SECONDS, HUNDRED_ROUNDS,
                              XGBOOST_BUILTIN]),
    "lightgbm": (run_lightgbm, ["none", DEFAULT_CONFIG, TEN_SECONDS, HUNDRED_ROUNDS]),
    "catboost": (run_catboost, ["none", DEFAULT_CONFIG, TEN_SECONDS, HUNDRED_ROUNDS,
                                CATBOOST_NOOP_CALLBACK]),
}


def time_once(runner: Callable[..., int], config: str, x: Any, y: Any,
              rounds: int) -> tuple[float, float, int]:
    """Return the wall time, the CPU time and the checkpoint count of one run in a fresh folder.

    The CPU time covers every thread of this process (training threads and the store's
    upload thread), so it is less affected than wall time by other jobs on the machine.
    """
    folder = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        checkpoints = runner(config, x, y, rounds, folder)
        return time.perf_counter() - started, time.process_time() - cpu_started, checkpoints
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per configuration (default 3)")
    parser.add_argument("--libraries", default="xgboost,lightgbm,catboost",
                        help="comma-separated libraries (default all three)")
    parser.add_argument("--rounds", type=int, default=3000,
                        help="rounds at the real data's size (default 3000)")
    parser.add_argument("--rounds-10x", type=int, default=1000,
                        help="rounds at 10x the real data's size (default 1000)")
    parser.add_argument("--sizes", default="1,10", help="row multipliers of 6,112 (default 1,10)")
    parser.add_argument("--json", type=Path, help="JSON output path")
    args = parser.parse_args()
    started = time.monotonic()

    rows_out = []
    for multiplier in [int(part) for part in args.sizes.split(",")]:
        x, y = make_data(REAL_ROWS * multiplier)
        rounds = args.rounds if multiplier == 1 else args.rounds_10x
        for library in args.libraries.split(","):
            runner, configs = RUNNERS[library]
            times: dict[str, list[float]] = {config: [] for config in configs}
            cpu: dict[str, list[float]] = {config: [] for config in configs}
            counts: dict[str, list[int]] = {config: [] for config in configs}
            time_once(runner, "none", x[:500], y[:500], 5)  # warm-up: imports and thread pools
            for _ in range(args.reps):
                for config in configs:
                    wall_s, cpu_s, checkpoints = time_once(runner, config, x, y, rounds)
                    times[config].append(wall_s)
                    cpu[config].append(cpu_s)
                    counts[config].append(checkpoints)
            baseline, cpu_baseline = median(times["none"]), median(cpu["none"])
            for config in configs:
                value, cpu_value = median(times[config]), median(cpu[config])
                rows_out.append([library, f"{len(y):,}", rounds, config,
                                 int(median(counts[config])), value,
                                 min(times[config]), max(times[config]),
                                 f"{(value / baseline - 1) * 100:+.1f}%", cpu_value,
                                 f"{(cpu_value / cpu_baseline - 1) * 100:+.1f}%"])
                print(rows_out[-1], flush=True)

    report("bench_overhead",
           ["library", "rows", "rounds", "checkpoints", "saves per run", "median wall s",
            "min s", "max s",
            "wall overhead", "median CPU s", "CPU overhead"],
           rows_out, json_path=args.json, started=started,
           settings={"reps": args.reps, "features": FEATURES, "rounds": args.rounds,
                     "rounds_10x": args.rounds_10x})


if __name__ == "__main__":
    main()

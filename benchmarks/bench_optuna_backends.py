"""Benchmark: Optuna persistence cost per trial on each backend, and Hub commits per hour.

Part 1 runs the same 100-trial TPE study (seeded, objective of a few microseconds) as a
plain in-memory Optuna study and through ``persistkit.optuna`` on each backend: memory,
a local folder, S3 (moto), GCS (fake-gcs-server) and the Hub test server, all on
127.0.0.1 and started by this script. The persistence cost per trial is the difference
in wall time, ``optimize()``'s final flush included, divided by the trials. The Hub's
commit budget is raised for this part so that it measures cost, not waiting.

Part 2 measures how many commits a 100-trial study makes on the Hub test server per hour
under the default budget (100 commits per hour). To finish in about a minute it runs at
1/100 of real time: trials take 0.36 s and the budget window is 36 s, which stands for
36 s trials (100 trials an hour) and a one-hour window.

Usage: ``python benchmarks/bench_optuna_backends.py [--trials 100] [--backends memory,local]``
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _measure import report

BUCKET = "persistkit-bench-optuna"
ALL_BACKENDS = ("memory", "local", "moto", "gcs", "hub")
TIME_SCALE = 100.0


def _objective(trial: Any) -> float:
    return (trial.suggest_float("x", -10, 10) - 2) ** 2 + trial.suggest_int("y", 0, 10)


def _plain_study(trials: int) -> float:
    import optuna

    started = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(_objective, n_trials=trials)
    return time.perf_counter() - started


class _CommitCounter(logging.Handler):
    """Counts the store's "Committed key ..." log records: one per committed checkpoint."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.commits = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("Committed key"):
            self.commits += 1


def _persisted_study(url: str, options: dict[str, Any], trials: int,
                     objective: Any = _objective) -> tuple[float, int, int]:
    """Return the wall time, the saves requested and the checkpoints committed."""
    import optuna

    import persistkit.optuna
    from persistkit import CheckpointStore

    counter = _CommitCounter()
    store_logger = logging.getLogger("persistkit._store")
    store_logger.addHandler(counter)
    store_logger.setLevel(logging.INFO)
    try:
        with CheckpointStore(url, storage_options=options) as store:
            started = time.perf_counter()
            study = persistkit.optuna.load_study(store, "bench", direction="minimize",
                                                 sampler=optuna.samplers.TPESampler(seed=0))
            persistkit.optuna.optimize(study, objective, n_trials=trials)
            elapsed = time.perf_counter() - started
            # The adapter numbers its saves 1, 2, 3, ...; coalesced saves are skipped numbers.
            saves = store.latest_step("optuna/bench/journal") or 0
    finally:
        store_logger.removeHandler(counter)
    return elapsed, saves, counter.commits


def _backend_url(name: str, server: Any, unique: str, folder: str) -> tuple[str, dict[str, Any]]:
    if name == "memory":
        return f"memory://bench-{unique}", {}
    if name == "local":
        return folder, {}
    options = dict(server.storage_options)
    if name == "hub":
        return f"hf://datasets/persistkit-bench/{unique}/run", options
    import fsspec

    protocol = "gcs" if name == "gcs" else "s3"
    fsspec.filesystem(protocol, skip_instance_cache=True, **options).mkdir(BUCKET)
    return f"{'gs' if name == 'gcs' else 's3'}://{BUCKET}/{unique}", options


def _start(name: str) -> Any:
    from persistkit.testing import servers

    starters = {"moto": servers.start_moto, "gcs": servers.start_fake_gcs,
                "hub": servers.start_hub_server}
    return starters[name]() if name in starters else None


def cost_per_trial(backends: list[str], trials: int, plain_s: float) -> list[list[Any]]:
    """Return one row per backend: wall time, cost per trial and checkpoints committed."""
    rows = []
    for name in backends:
        server = _start(name)
        try:
            with tempfile.TemporaryDirectory() as folder:
                url, options = _backend_url(name, server, uuid.uuid4().hex[:8], folder)
                if name == "hub":
                    options["max_commits"] = 100000  # measure cost, not budget waits
                elapsed, saves, commits = _persisted_study(url, options, trials)
            hub_commits = ""
            if name == "hub":
                repo = url.split("/")[3] + "/" + url.split("/")[4]
                hub_commits = server.handle.commit_count(repo, repo_type="dataset")
            rows.append([name, trials, elapsed, (elapsed - plain_s) / trials * 1000, saves,
                         commits, hub_commits])
            print(rows[-1], flush=True)
        finally:
            if server is not None:
                server.stop()
    return rows


def hub_commits_per_hour(trials: int) -> list[Any]:
    """Run a study at 1/100 real time under the default Hub budget; return its row."""
    server = _start("hub")
    try:
        unique = uuid.uuid4().hex[:8]
        url = f"hf://datasets/persistkit-bench/{unique}/run"
        options = {**server.storage_options, "commit_window_s": 3600.0 / TIME_SCALE}
        trial_s = 36.0 / TIME_SCALE

        def slow_objective(trial: Any) -> float:
            time.sleep(trial_s)
            return _objective(trial)

        elapsed, saves, checkpoints = _persisted_study(url, options, trials, slow_objective)
        commits = server.handle.commit_count(f"persistkit-bench/{unique}", repo_type="dataset")
    finally:
        server.stop()
    scaled_hours = elapsed * TIME_SCALE / 3600.0
    return [trials, f"{trial_s * TIME_SCALE:.0f} s", saves, checkpoints, commits,
            commits / scaled_hours, elapsed * TIME_SCALE / 60.0]


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per study (default 100)")
    parser.add_argument("--backends", default=",".join(ALL_BACKENDS),
                        help=f"comma-separated backends (default {','.join(ALL_BACKENDS)})")
    parser.add_argument("--skip-hub-rate", action="store_true", help="skip part 2")
    parser.add_argument("--json", type=Path, help="JSON output path of part 1")
    args = parser.parse_args()

    from persistkit.testing import servers

    os.environ.update(servers.client_environment())
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.monotonic()
    _plain_study(5)  # warm-up: imports and first-call costs
    plain_s = min(_plain_study(args.trials) for _ in range(2))
    rows = [["plain Optuna (in memory)", args.trials, plain_s, 0.0, "", "", ""]]
    rows += cost_per_trial(args.backends.split(","), args.trials, plain_s)
    report("bench_optuna_backends", ["backend", "trials", "wall s", "cost per trial ms",
                                     "saves", "checkpoints committed", "Hub commits"],
           rows, json_path=args.json, started=started, settings={"trials": args.trials})

    if not args.skip_hub_rate:
        started = time.monotonic()
        row = hub_commits_per_hour(args.trials)
        json_path = args.json.with_name(args.json.stem + "_hub_rate.json") if args.json else None
        report("bench_optuna_hub_rate",
               ["trials", "trial time (scaled)", "saves", "checkpoints committed", "Hub commits",
                "Hub commits per hour", "study minutes (scaled)"],
               [row], json_path=json_path, started=started,
               settings={"time_scale": TIME_SCALE, "max_commits_per_hour": 100},
               notes=["run at 1/100 of real time: trials of 0.36 s and a 36 s budget window"])


if __name__ == "__main__":
    main()

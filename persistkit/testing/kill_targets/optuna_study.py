"""Kill-matrix target: a seeded Optuna study persisted through persistkit.optuna.

Usage: ``python -m persistkit.testing.kill_targets.optuna_study STORE OUT [options]``.

The objective is deterministic and reports intermediate values, so a median pruner prunes
some trials. A run killed and resumed any number of times must end with the same
completed and pruned trials, with the same parameters in the same order, as an
uninterrupted run. ``result.json`` lists them; trials failed by a kill are left out,
because their number depends on where the kills landed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from persistkit.testing.kill_targets._common import RESULT_NAME, open_store, write_json_atomic

_KIND_OFFSET = {"linear": 0.0, "tree": 0.5, "forest": 1.0}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="store URL")
    parser.add_argument("out", type=Path, help="output folder for result.json")
    parser.add_argument("--trials", type=int, default=12, help="COMPLETE trials wanted in total (default 12)")
    parser.add_argument("--steps", type=int, default=4,
                        help="intermediate values reported per trial (default 4)")
    parser.add_argument("--step-ms", type=float, default=25.0,
                        help="simulated work per intermediate step in milliseconds (default 25)")
    parser.add_argument("--seed", type=int, default=7, help="sampler seed (default 7)")
    return parser.parse_args(argv)


def _objective(args: argparse.Namespace) -> Any:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10.0, 10.0)
        y = trial.suggest_int("y", -5, 5)
        kind = trial.suggest_categorical("kind", list(_KIND_OFFSET))
        value = (x - 2.0) ** 2 + (y + 1) ** 2 + _KIND_OFFSET[kind]
        for step in range(args.steps):
            time.sleep(args.step_ms / 1000.0)
            # Decreases towards the final value, like a validation loss.
            trial.report(value + (args.steps - step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


def main(argv: list[str] | None = None) -> int:
    """Run or resume the study and return the exit code."""
    import optuna

    import persistkit.optuna

    args = _parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with open_store(args.store) as store:
        study = persistkit.optuna.load_study(
            store,
            "kill-study",
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=5),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        )
        persistkit.optuna.optimize(study, _objective(args), n_trials=args.trials)
        store.flush(timeout=120)

        trials = [
            {"state": trial.state.name, "params": trial.params, "value": trial.value,
             "intermediate": {str(k): v for k, v in sorted(trial.intermediate_values.items())}}
            for trial in sorted(study.trials, key=lambda trial: trial.number)
            if trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        ]
        complete = sum(trial["state"] == "COMPLETE" for trial in trials)
        write_json_atomic(args.out / RESULT_NAME, {
            "complete": complete,
            "trials": trials,
            "best_params": study.best_params,
            "best_value": study.best_value,
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

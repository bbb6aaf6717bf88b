"""Built-in targets of the kill matrix.

Each target is a script in this package that writes to a store, resumes from it when run
again, and writes its final artefacts to an output folder. :func:`builtin_targets`
describes them as :class:`~persistkit.testing.killmatrix.Target` objects: which command
to run, which artefacts must match an uninterrupted run, and how closely.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from persistkit.testing._artefacts import ArtefactRule, Tolerance
from persistkit.testing._killrun import Target, python_module_argv
from persistkit.testing.kill_targets._common import FAULTS_ENV

__all__ = ["DEFAULT_FAULTS", "FAULTS_ENV", "MATRICES", "builtin_targets", "with_faults"]

# Storage faults of the "-faults" targets: 10% of writes fail before writing, 3% succeed
# but lose their response, and 3% time out after 0.1 s. A commit is several writes and
# is retried as a whole, so higher rates make runs fail for lack of retries, not kills.
DEFAULT_FAULTS: Mapping[str, float] = {
    "transient_rate": 0.1,
    "ack_loss_rate": 0.03,
    "timeout_rate": 0.03,
    "timeout_delay": 0.1,
}
_FAULT_TARGETS = ("store-loop", "store-loop-retention", "optuna", "xgboost")

# Kills per target of the named matrices: "slice" runs in the default test suite (at
# least 30 kills), "full" is the soak matrix (at least 300 kills).
MATRICES: Mapping[str, Mapping[str, int]] = {
    "slice": {
        "store-loop": 5,
        "store-loop-sync": 3,
        "store-loop-retention": 3,
        "store-loop-faults": 3,
        "optuna": 4,
        "xgboost": 4,
        "lightgbm": 4,
        "catboost": 4,
        "catboost-timed": 2,
        "train-quick-small": 2,
    },
    "full": {
        "store-loop": 40,
        "store-loop-sync": 20,
        "store-loop-retention": 20,
        "store-loop-faults": 20,
        "store-loop-retention-faults": 10,
        "optuna": 35,
        "optuna-faults": 15,
        "xgboost": 30,
        "xgboost-faults": 10,
        "xgboost-subsample": 15,
        "lightgbm": 30,
        "catboost": 30,
        "catboost-timed": 20,
        "train-quick-small": 15,
        "train-quick": 10,
    },
}

_PACKAGE = "persistkit.testing.kill_targets"
_EXACT_RESULT = (ArtefactRule("result.json"),)

# Trial-scoped checkpoints are deleted once the trial's result is in the study journal.
_TRIAL_KEYS = r"optuna/.*/trial-\d+(/.*)?"

# XGBoost re-seeds row sampling when a booster is loaded, so a resumed run with
# subsample=0.8 draws other rows after the resume and single predictions differ by up to
# 0.2 (targets have a standard deviation of about 2). The test RMSE and best validation
# score compared instead differed by at most 0.9% over 4 rounds with 11 kills (xgboost
# 3.2.0, seed 4); 3% leaves room for other kill points.
_SUBSAMPLE_TOLERANCE = Tolerance(rtol=0.03)


def _module(name: str, *args: str) -> tuple[str, ...]:
    return python_module_argv(f"{_PACKAGE}.{name}", "{store}", "{out}", *args)


def builtin_targets(*, data_path: Path | None = None) -> dict[str, Target]:
    """Return the built-in targets by name.

    Args:
        data_path: the phone-number CSV for the ``train-quick`` targets; without it they
            are left out.
    """
    targets = [
        Target("store-loop", _module("store_loop"), _EXACT_RESULT),
        Target("store-loop-sync", _module("store_loop", "--sync", "--steps", "20"), _EXACT_RESULT),
        Target("store-loop-retention", _module("store_loop", "--keep-last", "3"), _EXACT_RESULT),
        Target("optuna", _module("optuna_study"), _EXACT_RESULT, min_delay_s=0.5,
               deletable_keys=_TRIAL_KEYS),
        Target("xgboost", _module("boosting", "xgboost"), _EXACT_RESULT, min_delay_s=0.3),
        Target("xgboost-subsample", _module("boosting", "xgboost", "--subsample", "0.8"),
               (ArtefactRule("result.json", _SUBSAMPLE_TOLERANCE),), min_delay_s=0.3),
        Target("lightgbm", _module("boosting", "lightgbm"), _EXACT_RESULT, min_delay_s=0.3),
        Target("catboost", _module("boosting", "catboost"), _EXACT_RESULT, min_delay_s=0.5),
        # Snapshots by time only, copied by persistkit's thread instead of a callback.
        # A larger problem than the other boosting targets lets CatBoost write several
        # timed snapshots (one per second) before it stops early.
        Target("catboost-timed",
               _module("boosting", "catboost", "--every-rounds", "0", "--rows", "30000",
                       "--features", "40", "--rounds", "1000"),
               _EXACT_RESULT, min_delay_s=0.5),
    ]
    if data_path is not None:
        # --exact-resume turns off row and column subsampling in the search, so a fit
        # resumed midway equals an uninterrupted one and the comparison can be exact.
        train = ("train_quick", "--data", str(data_path), "--exact-resume", "--threads", "1")
        targets += [
            Target("train-quick", _module(*train, "--preset", "quick"), _EXACT_RESULT,
                   timeout_s=1800.0, min_delay_s=2.0, deletable_keys=_TRIAL_KEYS),
            Target("train-quick-small",
                   _module(*train, "--preset", "quick", "--trials", "2", "--folds", "2",
                           "--max-rounds", "80"),
                   _EXACT_RESULT, timeout_s=600.0, min_delay_s=2.0, deletable_keys=_TRIAL_KEYS),
        ]
    targets += [
        with_faults(target, DEFAULT_FAULTS) for target in targets if target.name in _FAULT_TARGETS
    ]
    return {target.name: target for target in targets}


def with_faults(target: Target, plan: Mapping[str, float]) -> Target:
    """Return ``target`` renamed with a ``-faults`` suffix and writing through injected faults.

    Args:
        target: a built-in target (its script opens the store with ``open_store``).
        plan: fields of :class:`~persistkit.testing.faults.FaultPlan`.
    """
    env = {**target.env, FAULTS_ENV: json.dumps(dict(plan), sort_keys=True)}
    return dataclasses.replace(target, name=f"{target.name}-faults", env=env)

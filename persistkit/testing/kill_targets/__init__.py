"""Built-in targets of the kill matrix.

Each target is a script in this package that writes to a store, resumes from it when run
again, and writes its final artefacts to an output folder. :func:`builtin_targets`
describes them as :class:`~persistkit.testing.killmatrix.Target` objects: which command
to run, which artefacts must match an uninterrupted run, and how closely.
"""

from __future__ import annotations

from pathlib import Path

from persistkit.testing._artefacts import ArtefactRule, Tolerance
from persistkit.testing._killrun import Target, python_module_argv

__all__ = ["builtin_targets"]

_PACKAGE = "persistkit.testing.kill_targets"
_EXACT_RESULT = (ArtefactRule("result.json"),)


def _module(name: str, *args: str) -> tuple[str, ...]:
    return python_module_argv(f"{_PACKAGE}.{name}", "{store}", "{out}", *args)


def builtin_targets(*, data_path: Path | None = None) -> dict[str, Target]:
    """Return the built-in targets by name.

    Args:
        data_path: the phone-number CSV for the ``train-quick`` target; without it that
            target is left out.
    """
    targets = [
        Target("store-loop", _module("store_loop"), _EXACT_RESULT),
        Target("store-loop-sync", _module("store_loop", "--sync", "--steps", "20"), _EXACT_RESULT),
        Target("store-loop-retention", _module("store_loop", "--keep-last", "3"), _EXACT_RESULT),
        Target("optuna", _module("optuna_study"), _EXACT_RESULT, min_delay_s=0.5,
               deletable_keys=r"optuna/.*/trial-\d+/.*"),
        Target("xgboost", _module("boosting", "xgboost"), _EXACT_RESULT, min_delay_s=0.3),
        Target("xgboost-subsample", _module("boosting", "xgboost", "--subsample", "0.8"),
               (ArtefactRule("result.json", Tolerance(rtol=0.05, atol=0.05)),), min_delay_s=0.3),
        Target("lightgbm", _module("boosting", "lightgbm"), _EXACT_RESULT, min_delay_s=0.3),
        Target("catboost", _module("boosting", "catboost"), _EXACT_RESULT, min_delay_s=0.5),
    ]
    if data_path is not None:
        targets.append(
            Target("train-quick", _module("train_quick", "--data", str(data_path)),
                   _EXACT_RESULT, timeout_s=1800.0, min_delay_s=2.0)
        )
    return {target.name: target for target in targets}

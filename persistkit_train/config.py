"""Training configuration and the ``quick`` and ``full`` presets.

A :class:`TrainConfig` fixes everything that changes the trained models. Its
:meth:`TrainConfig.fingerprint_fields` go into the run fingerprint, so a store that was
filled with other settings is rejected instead of mixing stale stages into a new run.
Fields that only change speed or where files go (device, threads, checkpoint interval)
stay out of the fingerprint, so a run started on a GPU can finish on a CPU.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from persistkit_train.i18n import _

MODEL_NAMES = ("xgboost", "lightgbm", "catboost")
SPLIT_METHODS = ("stratified", "grouped")
DEVICES = ("auto", "cpu", "cuda")

# Fields of TrainConfig that do not change the fitted models' inputs or hyperparameter
# search, so they are left out of the run fingerprint.
_NOT_FINGERPRINTED = frozenset(
    {"device", "threads", "checkpoint_every_rounds", "checkpoint_every_seconds"}
)


def _require(condition: bool, name: str, value: object, expected: str) -> None:
    if not condition:
        raise ValueError(
            _("Invalid {name} {value!r}: expected {expected}.").format(
                name=name, value=value, expected=expected
            )
        )


def _one_of(choices: tuple[str, ...] | Mapping[str, Any]) -> str:
    return _("one of {choices}").format(choices=", ".join(choices))


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        preset: Name of the preset these settings started from.
        models: Base models of the ensemble, a subset of ``MODEL_NAMES``.
        trials: Optuna trials per model (total wanted, also after a resume).
        folds: K of the K-fold cross-validation used for tuning and stacking.
        max_rounds: Upper bound on boosting rounds of every fit.
        early_stopping_rounds: Rounds without improvement that stop a tuning fit.
        learning_rate_range: Lower and upper bound of the tuned learning rate.
        split: Held-out split method, "stratified" (price quintiles) or "grouped"
            (each six-digit prefix on one side).
        test_size: Fraction of rows held out for the final evaluation.
        seed: Seed of the split, the folds, the samplers and every model.
        exact_resume: Leave row and column subsampling out of the search, so that a
            booster resumed mid-training equals one trained without interruption.
        pruning: Stop unpromising trials early with Optuna's median pruner.
        device: "auto" (GPU when one is usable), "cpu" or "cuda".
        threads: CPU threads per model; None uses every core.
        checkpoint_every_rounds: Booster checkpoint interval in boosting rounds.
        checkpoint_every_seconds: Booster checkpoint interval in seconds.
    """

    preset: str
    models: tuple[str, ...] = MODEL_NAMES
    trials: int
    folds: int
    max_rounds: int
    early_stopping_rounds: int
    learning_rate_range: tuple[float, float]
    split: str = "stratified"
    test_size: float = 0.2
    seed: int = 42
    exact_resume: bool = False
    pruning: bool = True
    device: str = "auto"
    threads: int | None = None
    checkpoint_every_rounds: int = 50
    checkpoint_every_seconds: float = 30.0

    def __post_init__(self) -> None:
        _require(bool(self.models), "models", self.models, _("at least one model"))
        for model in self.models:
            _require(model in MODEL_NAMES, "models", model, _one_of(MODEL_NAMES))
        _require(self.trials >= 1, "trials", self.trials, _("an integer >= 1"))
        _require(self.folds >= 2, "folds", self.folds, _("an integer >= 2"))
        _require(self.max_rounds >= 1, "max_rounds", self.max_rounds, _("an integer >= 1"))
        _require(
            self.early_stopping_rounds >= 1,
            "early_stopping_rounds",
            self.early_stopping_rounds,
            _("an integer >= 1"),
        )
        low, high = self.learning_rate_range
        _require(
            0 < low <= high,
            "learning_rate_range",
            self.learning_rate_range,
            _("a pair (low, high) with 0 < low <= high"),
        )
        _require(self.split in SPLIT_METHODS, "split", self.split, _one_of(SPLIT_METHODS))
        _require(
            0 < self.test_size < 1, "test_size", self.test_size, _("a fraction between 0 and 1")
        )
        _require(self.device in DEVICES, "device", self.device, _one_of(DEVICES))
        _require(
            self.threads is None or self.threads >= 1,
            "threads",
            self.threads,
            _("None or an integer >= 1"),
        )

    def fingerprint_fields(self) -> dict[str, Any]:
        """Return the settings that change the fitted models, as JSON-ready values."""
        fields = dataclasses.asdict(self)
        for name in _NOT_FINGERPRINTED:
            del fields[name]
        fields["models"] = list(self.models)
        fields["learning_rate_range"] = list(self.learning_rate_range)
        return fields

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)


PRESETS: Mapping[str, TrainConfig] = {
    # The common Kaggle setup: 100 Optuna trials per model, 5-fold CV, slow learning rate.
    "full": TrainConfig(
        preset="full",
        trials=100,
        folds=5,
        max_rounds=3000,
        early_stopping_rounds=100,
        learning_rate_range=(0.01, 0.1),
    ),
    # The whole pipeline in minutes on a small CPU machine: fewer trials, 3 folds, a
    # faster learning rate, and booster checkpoints every 100 rounds because a lost fit
    # costs only seconds here. No pruning: a pruned trial does not count towards
    # ``trials``, and with 3 folds pruning saves too little to pay for the extra trials.
    "quick": TrainConfig(
        preset="quick",
        trials=10,
        folds=3,
        max_rounds=300,
        early_stopping_rounds=30,
        learning_rate_range=(0.05, 0.3),
        pruning=False,
        checkpoint_every_rounds=100,
    ),
}


def make_config(preset: str = "quick", **overrides: Any) -> TrainConfig:
    """Return the preset ``preset`` with every override that is not None applied.

    Raises:
        ValueError: The preset is unknown or an override is invalid.
    """
    if preset not in PRESETS:
        raise ValueError(
            _("Unknown preset {preset!r}: expected {expected}.").format(
                preset=preset, expected=_one_of(PRESETS)
            )
        )
    changes = {name: value for name, value in overrides.items() if value is not None}
    return PRESETS[preset].replace(**changes)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Convert a duration such as "8h30m", "45m", "90s" or "2.5h" to seconds.

    A bare number counts as hours.

    Raises:
        ValueError: ``text`` is not a positive duration in that form.
    """
    compact = text.strip().lower().replace(" ", "")
    try:
        seconds = float(compact) * 3600.0
    except ValueError:
        seconds = 0.0
        position = 0
        for match in _DURATION_PART.finditer(compact):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if position != len(compact) or not compact:
            seconds = -1.0
    if seconds <= 0:
        raise ValueError(
            _(
                "Invalid duration {text!r}: expected a positive time such as 8h30m, 45m or 90s."
            ).format(text=text)
        )
    return seconds

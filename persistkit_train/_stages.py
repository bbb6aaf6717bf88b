"""Stage records in the store and the three data stages: load, features and split.

Store layout of one run (keys, each with its committed steps)::

    run/fingerprint                 settings, data SHA-256, feature version
    stages/<stage>                  output of a finished stage (skip marker on re-run)
    optuna/<model>-search/...       Optuna journal and trial checkpoints (persistkit.optuna)
    tune/<model>/progress           trials done, best score, seconds spent (for status)
    final/<model>                   booster checkpoints of the final fit
    stack/<model>/fold-<k>          out-of-fold predictions of one model and fold
    stack/<model>/fit-<k>           booster checkpoints of that fold's fit

A stage's output is always decoded from the files it stored, also right after it ran,
so a resumed run computes with exactly the values an uninterrupted one used.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from persistkit.errors import StoreConflictError
from persistkit_train.config import TrainConfig
from persistkit_train.i18n import _

logger = logging.getLogger(__name__)


def stage_names(models: Sequence[str]) -> list[str]:
    """Return the stage names of a run with the base models ``models``, in order."""
    return [
        "load",
        "features",
        "split",
        *[f"tune-{model}" for model in models],
        *[f"final-{model}" for model in models],
        "stack",
        "evaluate",
        "export",
    ]


class StageLedger:
    """Reads and writes stage outputs under ``stages/<name>`` for one run fingerprint."""

    def __init__(self, store: Any, fingerprint_digest: str) -> None:
        self.store = store
        self._digest = fingerprint_digest

    def done(self, name: str) -> bool:
        return self.store.latest_step(f"stages/{name}") is not None

    def save(
        self,
        name: str,
        files: Mapping[str, Any],
        *,
        started: float,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Commit the output of stage ``name`` that started at ``started`` (time.time())."""
        metadata = {
            "fingerprint": self._digest,
            "elapsed_seconds": round(time.time() - started, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.store.save(
            f"stages/{name}", dict(files), step=0, metrics=dict(metrics or {}), metadata=metadata
        )
        # Later stages read this output back from the store, so it must be committed.
        self.store.flush()

    def load(self, name: str) -> Any:
        """Return the checkpoint of stage ``name``.

        Raises:
            StoreConflictError: The stage was written for another run fingerprint.
        """
        checkpoint = self.store.load(f"stages/{name}")
        if checkpoint.metadata.get("fingerprint") != self._digest:
            raise StoreConflictError(
                f"Stage {name!r} in {self.store.url} belongs to another run "
                f"(fingerprint {checkpoint.metadata.get('fingerprint')!r}). "
                "Re-run with --restart to compute it again."
            )
        return checkpoint


@dataclasses.dataclass(frozen=True)
class DataSet:
    """Numbers, prices, features and the held-out split of one run."""

    numbers: list[str]
    prices: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    train_idx: np.ndarray
    test_idx: np.ndarray
    # Folds over the training rows: (fit positions, validation positions) into train_idx.
    folds: list[tuple[np.ndarray, np.ndarray]]

    @property
    def log_prices(self) -> np.ndarray:
        return np.log(self.prices)

    def train_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        return self.features[self.train_idx], self.log_prices[self.train_idx]

    def test_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        return self.features[self.test_idx], self.log_prices[self.test_idx]


def run_load_stage(ledger: StageLedger, loaded: Any) -> tuple[list[str], np.ndarray]:
    """Commit the validated CSV (a ``LoadedData``), print its report, and return numbers
    and prices."""
    if not ledger.done("load"):
        started = time.time()
        frame = loaded.frame
        ledger.save(
            "load",
            {
                "numbers.json": {
                    "number": [str(number) for number in frame["number"]],
                    "price": [float(price) for price in frame["price"]],
                },
                "report.json": {"lines": list(loaded.report.lines())},
            },
            started=started,
            metrics={"rows": float(len(frame))},
        )
        for line in loaded.report.lines():
            logger.info("%s", line)
    checkpoint = ledger.load("load")
    table = checkpoint.json("numbers.json")
    return list(table["number"]), np.asarray(table["price"], dtype=np.float64)


def run_features_stage(ledger: StageLedger, numbers: list[str]) -> tuple[np.ndarray, list[str]]:
    """Build the target-free features and return them as a float32 matrix with names."""
    if not ledger.done("features"):
        from persistkit_train.features import build_features

        started = time.time()
        frame = build_features(numbers)
        matrix = frame.to_numpy(dtype=np.float32)
        ledger.save(
            "features",
            {"features.npy": encode_array(matrix), "columns.json": list(map(str, frame.columns))},
            started=started,
            metrics={"columns": float(matrix.shape[1])},
        )
    checkpoint = ledger.load("features")
    return decode_array(checkpoint.files["features.npy"]), list(checkpoint.json("columns.json"))


def run_split_stage(
    ledger: StageLedger, config: TrainConfig, numbers: list[str], prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Split off the held-out rows and the CV folds of the training rows."""
    if not ledger.done("split"):
        import pandas as pd

        from persistkit_train.split import cv_folds, holdout_split

        started = time.time()
        frame = pd.DataFrame({"number": numbers, "price": prices})
        method: Literal["stratified", "grouped"] = (
            "grouped" if config.split == "grouped" else "stratified"
        )
        train_idx, test_idx = holdout_split(
            frame, method=method, test_size=config.test_size, seed=config.seed
        )
        groups = None
        if config.split == "grouped":
            groups = np.asarray([numbers[i][:6] for i in train_idx])
        folds = cv_folds(len(train_idx), n_splits=config.folds, seed=config.seed, groups=groups)
        ledger.save(
            "split",
            {
                "split.json": {
                    "method": config.split,
                    "train": [int(i) for i in train_idx],
                    "test": [int(i) for i in test_idx],
                    "folds": [[int(i) for i in valid] for _fit, valid in folds],
                }
            },
            started=started,
            metrics={"train_rows": float(len(train_idx)), "test_rows": float(len(test_idx))},
        )
        logger.info(
            "%s",
            _("Split {method}: {train} training rows, {test} held-out rows, {folds} folds").format(
                method=config.split, train=len(train_idx), test=len(test_idx), folds=config.folds
            ),
        )
    payload = ledger.load("split").json("split.json")
    train = np.asarray(payload["train"], dtype=np.int64)
    positions = np.arange(len(train))
    folds = []
    for valid in payload["folds"]:
        valid_positions = np.asarray(valid, dtype=np.int64)
        folds.append((np.setdiff1d(positions, valid_positions), valid_positions))
    return train, np.asarray(payload["test"], dtype=np.int64), folds


def encode_array(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_array(payload: bytes) -> np.ndarray:
    return np.load(io.BytesIO(payload), allow_pickle=False)


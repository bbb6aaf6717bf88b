"""Pieces shared by the XGBoost, LightGBM and CatBoost adapters.

Each boosting checkpoint is one store step per saved round, numbered by the rounds
done so far, with two files::

    <key>/<rounds done>/
        model.ubj | model.txt | snapshot.cbsnapshot   the booster in its native format
        state.json                                    rounds, evaluation history,
                                                      early-stopping state, fingerprint

The fingerprint also goes into the manifest metadata, so a run with other parameters
or data is detected before any byte of the booster is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import numbers
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from persistkit._deadline import Deadline, RunStatus
from persistkit.errors import (
    CheckpointNotFoundError,
    FingerprintMismatchError,
    FlushError,
    StorageError,
)

if TYPE_CHECKING:
    from persistkit._store import Checkpoint, CheckpointStore

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATE_FORMAT = 1
STATUS_ATTR = "persistkit_status"

# Parameters that choose where or how verbosely training runs, not what it computes,
# so a run may resume with other values (a GPU run continued on a CPU, for example).
_PLACEMENT_PARAMS = frozenset({
    "verbosity", "verbose", "verbose_eval", "silent", "logging_level",
    "nthread", "n_jobs", "num_threads", "thread_count",
    "device", "device_type", "gpu_id", "gpu_platform_id", "gpu_device_id", "task_type",
    "devices", "train_dir", "metric_period",
})


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """When a boosting callback saves: every ``every_rounds`` rounds and/or ``every_seconds``.

    Whichever comes first triggers a save. With neither set, the callback saves only
    when training ends or the deadline stops it.

    ``max_overhead`` caps the share of training time spent saving. A save that the
    interval makes due is skipped while the training time since the previous save is
    less than that save's cost divided by ``max_overhead``. With 0.02, a save that cost
    50 ms delays the next one until 2.5 s of training have passed. The cost is the time
    the save took in the training thread (serialising the booster and queueing it) plus
    the CPU time of its commit on a background store's upload thread, which competes
    with training for the cores. Final and deadline saves are never skipped.

    Raises:
        ValueError: If an interval is not positive, or ``max_overhead`` is not in (0, 1).
    """

    every_rounds: int | None = None
    every_seconds: float | None = None
    max_overhead: float | None = None

    def __post_init__(self) -> None:
        # bool is an Integral too, but every_rounds=True is a mistake, not 1.
        if self.every_rounds is not None and (
            isinstance(self.every_rounds, bool)
            or not isinstance(self.every_rounds, numbers.Integral)
            or self.every_rounds < 1
        ):
            raise ValueError(f"every_rounds must be a positive integer, got {self.every_rounds!r}")
        if self.every_seconds is not None and not (
            _is_real(self.every_seconds) and self.every_seconds > 0
        ):
            raise ValueError(f"every_seconds must be a positive number, got {self.every_seconds!r}")
        if self.max_overhead is not None and not (
            _is_real(self.max_overhead) and 0 < self.max_overhead < 1
        ):
            raise ValueError(
                f"max_overhead must be a fraction between 0 and 1 (0.02 is 2%), "
                f"got {self.max_overhead!r}"
            )

    def due(self, rounds_done: int, seconds_since_save: float,
            last_save_seconds: float = 0.0) -> bool:
        """Return whether a checkpoint is due after ``rounds_done`` rounds.

        ``last_save_seconds`` is the cost of the previous save, used by ``max_overhead``.
        """
        by_rounds = self.every_rounds is not None and rounds_done % self.every_rounds == 0
        by_time = self.every_seconds is not None and seconds_since_save >= self.every_seconds
        if not (by_rounds or by_time):
            return False
        if self.max_overhead is None:
            return True
        return seconds_since_save * self.max_overhead >= last_save_seconds


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def params_fingerprint(params: Mapping[str, Any] | None) -> str:
    """Return a SHA-256 over the parameters that change what is trained."""
    kept = {
        str(name): value for name, value in (params or {}).items()
        if name not in _PLACEMENT_PARAMS and not callable(value)
    }
    text = json.dumps(kept, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def data_fingerprint(*arrays: Any) -> str:
    """Return a SHA-256 over array-like objects (shape, dtype and bytes of each)."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        if array is None:
            digest.update(b"none;")
            continue
        values = np.ascontiguousarray(np.asarray(array))
        if values.dtype == object:
            digest.update(repr(values.tolist()).encode())
        else:
            digest.update(f"{values.shape}{values.dtype.str};".encode())
            digest.update(values.tobytes())
    return digest.hexdigest()


def combine_fingerprints(**parts: str) -> dict[str, str]:
    """Return the fingerprint record stored in the manifest metadata."""
    return dict(sorted(parts.items()))


def check_fingerprint(key: str, step: int, saved: Mapping[str, Any] | None,
                      current: Mapping[str, str]) -> None:
    """Raise if the saved fingerprint differs from the current one.

    Only parts present on both sides are compared, because some inputs cannot always
    be hashed (a LightGBM Dataset whose raw data was freed has no ``features`` part).

    Raises:
        FingerprintMismatchError: Naming each part (params, data, features) that differs.
    """
    if saved is None:
        return
    differing = sorted(part for part in current
                       if part in saved and saved[part] != current[part])
    if differing:
        raise FingerprintMismatchError(
            f"The checkpoint {key!r} at step {step} was trained with other "
            f"{' and '.join(differing)} than this run, so continuing it would build a "
            "hybrid model. Use another key for the new run, or delete the old one with "
            f"store.delete({key!r})."
        )


def load_latest(store: CheckpointStore, key: str) -> Checkpoint | None:
    """Return the newest verified checkpoint of ``key``, or ``None`` when there is none."""
    try:
        return store.load(key)
    except CheckpointNotFoundError:
        return None


def flush_store(store: CheckpointStore, key: str) -> None:
    """Wait for pending checkpoints of a training call, logging instead of raising on failure.

    A storage outage must not turn a finished training call into an exception that
    loses the trained model, so a :class:`FlushError` is logged as a warning. The store
    keeps retrying saves that are still pending.
    """
    try:
        store.flush()
    except FlushError as exc:
        logger.warning("Checkpoints of %r may be missing or late in %s: %s", key, store.url, exc)


def mark_status(model: Any, status: RunStatus) -> Any:
    """Attach ``status`` to a returned model as ``model.persistkit_status``."""
    setattr(model, STATUS_ATTR, status)
    return model


def log_deadline_stop(store: CheckpointStore, key: str, rounds: int, deadline: Deadline) -> None:
    """Log that the deadline stopped training and how to resume."""
    logger.warning(
        "Stopped training by deadline after %d rounds (%s). The checkpoint is saved under "
        "%r in %s; run the same code again to continue from round %d.",
        rounds, deadline, key, store.url, rounds,
    )


class SaveTimer:
    """Seconds since the last save and the duration of that save, on a monotonic clock."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.last_save_seconds = 0.0

    def elapsed(self) -> float:
        """Return the seconds since construction, the last :meth:`reset` or the last save."""
        return time.monotonic() - self._last

    def reset(self) -> None:
        """Restart the measurement."""
        self._last = time.monotonic()

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """Time the save in the ``with`` block, then restart the measurement at its end."""
        started = time.monotonic()
        yield
        self._last = time.monotonic()
        self.last_save_seconds = self._last - started


def require_open(store: CheckpointStore, key: str) -> None:
    """Raise before training when ``store`` is closed, since no checkpoint could be saved.

    Raises:
        StorageError: Naming the key and the store.
    """
    if store.closed:
        raise StorageError(
            f"Cannot train {key!r}: the store {store.url} is closed, so no checkpoint "
            "could be saved. Open a new CheckpointStore, or train inside its 'with' block."
        )


def last_save_cost(timer: SaveTimer, store: CheckpointStore, key: str) -> float:
    """Return the seconds the newest save of ``key`` cost, in the training thread and in upload."""
    # NOTE: while the newest save's commit is still running, the upload part is the CPU
    # time of the commit before it, which is smaller for a growing model.
    return timer.last_save_seconds + store.commit_cpu_seconds(key)


def to_json_history(history: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """Return an evaluation history as plain dicts and lists of floats."""
    return {
        data: {metric: [_plain(score) for score in scores] for metric, scores in metrics.items()}
        for data, metrics in history.items()
    }


def _plain(score: Any) -> Any:
    if isinstance(score, (tuple, list)):
        return [float(item) for item in score]
    return float(score)

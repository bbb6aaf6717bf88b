"""Resumable CatBoost training through CatBoost's own snapshot file.

CatBoost's snapshot contains the trees, the evaluation history, the early-stopping state
and the random generator state, so a fit continued from it gives the same model as an
uninterrupted one (tested with ``subsample=0.8`` and the Bernoulli bootstrap). :func:`fit`:

1. loads the newest checkpoint of ``key`` whose SHA-256 checks pass (the store verifies
   the manifest, and the snapshot is checked again against ``state.json``), and raises
   :class:`~persistkit.errors.FingerprintMismatchError` when it was made with other
   parameters or data;
2. writes that snapshot into a fresh temporary folder, so a half-written snapshot left
   by a killed process is never read;
3. calls ``model.fit(..., save_snapshot=True, snapshot_file=<that file>)``. With
   ``every_rounds`` or a deadline, a callback copies the snapshot to the store every
   ``every_rounds`` rounds (the snapshot is then written every round) or each time
   CatBoost rewrites it (``snapshot_interval=every_seconds``), and stops between rounds
   when the deadline has passed. Otherwise a thread copies the snapshot each time
   CatBoost rewrites it, because a Python callback slows every CatBoost iteration down
   and CatBoost rejects callbacks on the GPU;
4. saves the final snapshot, so a rerun after a finished fit restores the same model.

Checkpoint layout under ``key``, one step per copy, numbered by the iteration count
where a callback reports it and counted up from the previous step otherwise::

    snapshot.cbsnapshot   CatBoost snapshot, byte for byte
    state.json            iteration count (null when unknown), tree count of a completed
                          fit (null for copies made during the fit), SHA-256 of the
                          snapshot, fingerprint
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from persistkit import _boosting
from persistkit._compat import import_optional
from persistkit._deadline import Deadline, RunStatus
from persistkit.errors import CorruptCheckpointError

catboost = import_optional("catboost", "catboost")

logger = logging.getLogger(__name__)

__all__ = ["RunStatus", "SnapshotSyncCallback", "fingerprint", "fit"]

SNAPSHOT_FILE = "snapshot.cbsnapshot"
_OWNED_FIT_PARAMS = ("save_snapshot", "snapshot_file", "snapshot_interval")
DEFAULT_SNAPSHOT_SECONDS = 600
_GPU_DEADLINE_WARNED = threading.Event()


def fingerprint(model: Any, X: Any, y: Any = None, *, eval_set: Any = None,
                sample_weight: Any = None) -> dict[str, str]:
    """Return the params and data fingerprint stored with each snapshot."""
    params = {name: value for name, value in model.get_params().items()
              if name not in ("callbacks",)}
    parts = [_data_digest(X), _data_digest(y), _data_digest(sample_weight)]
    eval_sets = eval_set if isinstance(eval_set, list) else [eval_set]
    for item in eval_sets:
        if isinstance(item, tuple):
            parts.extend(_data_digest(part) for part in item)
        else:
            parts.append(_data_digest(item))
    return _boosting.combine_fingerprints(
        params=_boosting.params_fingerprint(params),
        data=hashlib.sha256("".join(parts).encode()).hexdigest(),
    )


class SnapshotSyncCallback:
    """CatBoost callback (``after_iteration``) that copies the snapshot file to the store.

    Args:
        store: Checkpoint store.
        key: Key of the checkpoint series.
        snapshot_path: The ``snapshot_file`` given to ``fit``.
        every_rounds: Copy every this many iterations (requires ``snapshot_interval=0``).
        deadline: Stop training (CatBoost then writes a last snapshot) once it passed.
        fingerprint: Stored with each copy.
        first_step: Smallest step number to use, above any step already in the store.
    """

    def __init__(self, *, store: Any, key: str, snapshot_path: str,
                 every_rounds: int | None = None, deadline: Deadline | None = None,
                 fingerprint: Mapping[str, str] | None = None, first_step: int = 1) -> None:
        self.store = store
        self.key = key
        self.snapshot_path = snapshot_path
        self.every_rounds = every_rounds
        self.deadline = deadline
        self.fingerprint = dict(fingerprint or {})
        self.status = RunStatus.COMPLETED
        # None while no callback reports iterations (the snapshot watcher copies then).
        self.iterations: int | None = None
        # Tree count of the fitted model, set for the copy made after a completed fit.
        self.final_trees: int | None = None
        self.first_iteration: int | None = None
        self._next_step = first_step
        self._synced_signature: tuple[int, int] | None = None

    def after_iteration(self, info: Any) -> bool:
        self.iterations = int(info.iteration)
        if self.first_iteration is None:
            self.first_iteration = self.iterations
        if self.every_rounds is None or self.iterations % self.every_rounds == 0:
            self.sync()
        if self.deadline is not None and self.deadline.expired():
            self.status = RunStatus.STOPPED_BY_DEADLINE
            return False
        return True

    def mark_synced(self) -> None:
        """Treat the snapshot file as it is now as already copied (it came from the store)."""
        stat = os.stat(self.snapshot_path)
        self._synced_signature = (stat.st_mtime_ns, stat.st_size)

    def sync(self) -> bool:
        """Copy the snapshot file to the store if it changed; return whether it did."""
        try:
            stat = os.stat(self.snapshot_path)
        except FileNotFoundError:
            return False
        signature = (stat.st_mtime_ns, stat.st_size)
        if signature == self._synced_signature:
            return False
        with open(self.snapshot_path, "rb") as snapshot_file:
            snapshot = snapshot_file.read()
        step = max(self.iterations or 0, self._next_step)
        state = {
            "format": _boosting.STATE_FORMAT,
            "library": f"catboost {catboost.__version__}",
            "iterations": self.iterations,
            "final_trees": self.final_trees,
            "snapshot_sha256": hashlib.sha256(snapshot).hexdigest(),
            "snapshot_size": len(snapshot),
            "fingerprint": self.fingerprint,
        }
        self.store.save(self.key, {SNAPSHOT_FILE: snapshot, _boosting.STATE_FILE: state},
                        step=step, metadata={"fingerprint": self.fingerprint})
        self._synced_signature = signature
        self._next_step = step + 1
        return True


class _SnapshotWatcher:
    """Thread that copies CatBoost's snapshot file to the store each time CatBoost replaces it.

    Used in place of :class:`SnapshotSyncCallback` when nothing must run between
    iterations, for two reasons. Any Python callback slows CatBoost down: a callback that
    did nothing added 8.5% to 3,000 iterations on 6,112 rows x 64 features (CatBoost
    1.2.10, 2 CPU cores, ``benchmarks/bench_overhead.py``). And CatBoost rejects Python callbacks with ``task_type="GPU"``.
    CatBoost 1.2.10 writes each snapshot to a temporary file and renames it over the
    previous one, so the file read here is always complete.
    """

    def __init__(self, sync: SnapshotSyncCallback, poll_seconds: float) -> None:
        self._sync = sync
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"persistkit-catboost {sync.key}")

    def __enter__(self) -> _SnapshotWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self._poll_seconds):
            try:
                self._sync.sync()
            except Exception as exc:
                # The copy after fit() returns runs in the caller's thread and raises.
                failures += 1
                logger.log(logging.WARNING if failures == 1 else logging.DEBUG,
                           "Copying the CatBoost snapshot of %r to %s failed (%d in a row), "
                           "trying again every %.1f s: %s", self._sync.key,
                           self._sync.store.url, failures, self._poll_seconds, exc)
            else:
                failures = 0


def fit(model: Any, X: Any, y: Any = None, *, store: Any, key: str,
        every_rounds: int | None = None, every_seconds: float | None = None,
        deadline: Deadline | None = None, **fit_params: Any) -> Any:
    """Fit a CatBoost model (``CatBoostRegressor``, ``CatBoostClassifier``, ``CatBoost``)
    resumably; other keyword arguments go to ``model.fit``.

    Args:
        model: The CatBoost model; its parameters are part of the fingerprint.
        X: Training features, or a ``Pool``.
        y: Labels, unless ``X`` is a ``Pool``.
        store: Checkpoint store.
        key: Key of the snapshot series.
        every_rounds: Copy the snapshot to the store every this many iterations. This
            makes CatBoost rewrite its snapshot file after every iteration, whose cost
            grows with the number of trees: it doubled the time of 1,000 iterations on
            6,112 rows x 64 features (``benchmarks/bench_overhead.py``). Prefer
            ``every_seconds`` for long fits.
        every_seconds: Let CatBoost write its snapshot this often and copy each one;
            600 s (CatBoost's default) when neither option is given.
        deadline: Stop between iterations once it passed. Not checked with
            ``task_type="GPU"``, where CatBoost runs no Python callbacks.
        **fit_params: ``eval_set``, ``sample_weight``, ``cat_features``, ``callbacks``...

    Returns:
        ``model``, fitted, with ``persistkit_status`` set to a :class:`RunStatus`.

    Raises:
        FingerprintMismatchError: If ``key`` contains a snapshot of other params or data.
        ValueError: If ``fit_params`` sets a snapshot option, which this function owns.
    """
    _boosting.require_open(store, key)
    owned = sorted(set(_OWNED_FIT_PARAMS) & set(fit_params))
    if owned:
        raise ValueError(f"persistkit.catboost.fit manages {owned} itself; remove them.")
    _boosting.CheckpointPolicy(every_rounds, every_seconds)
    if every_rounds is not None and _on_gpu(model):
        raise ValueError(
            "every_rounds needs a CatBoost callback, and CatBoost does not run Python "
            "callbacks with task_type='GPU'; pass every_seconds instead."
        )
    if model.get_params().get("allow_writing_files") is False:
        raise ValueError(
            "persistkit.catboost.fit needs CatBoost's snapshot file, but the model has "
            "allow_writing_files=False; remove that option (set train_dir to choose where "
            "CatBoost writes its other files)."
        )
    current = fingerprint(model, X, y, eval_set=fit_params.get("eval_set"),
                          sample_weight=fit_params.get("sample_weight"))

    folder = tempfile.mkdtemp(prefix="persistkit-catboost-")
    try:
        snapshot_path = os.path.join(folder, SNAPSHOT_FILE)
        restored = _restore_snapshot(store, key, current, snapshot_path)
        restored_step = None if restored is None else restored[0]
        sync = SnapshotSyncCallback(
            store=store, key=key, snapshot_path=snapshot_path, every_rounds=every_rounds,
            deadline=deadline, fingerprint=current, first_step=(restored_step or 0) + 1)
        if restored_step is not None:
            sync.mark_synced()
        # CatBoost counts snapshot_interval in whole seconds, and 0 means every iteration.
        interval = 0 if every_rounds is not None else max(
            1, int(every_seconds or DEFAULT_SNAPSHOT_SECONDS))
        user_callbacks = list(fit_params.pop("callbacks", None) or [])
        snapshot_options = {"save_snapshot": True, "snapshot_file": snapshot_path,
                            "snapshot_interval": interval}
        if _needs_callback(model, every_rounds, deadline):
            model.fit(X, y, callbacks=[*user_callbacks, sync], **snapshot_options, **fit_params)
        else:
            with _SnapshotWatcher(sync, poll_seconds=min(1.0, interval / 2)):
                model.fit(X, y, callbacks=user_callbacks or None, **snapshot_options,
                          **fit_params)
        _save_final_snapshot(model, sync, restored)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    _boosting.flush_store(store, key)
    if sync.status is RunStatus.STOPPED_BY_DEADLINE and deadline is not None:
        _boosting.log_deadline_stop(store, key, sync.iterations or 0, deadline)
    return _boosting.mark_status(model, sync.status)


def _on_gpu(model: Any) -> bool:
    return str(model.get_params().get("task_type", "CPU")).upper() == "GPU"


def _needs_callback(model: Any, every_rounds: int | None, deadline: Deadline | None) -> bool:
    """Return whether the fit needs :class:`SnapshotSyncCallback` between iterations."""
    if every_rounds is not None:
        return True
    if deadline is None:
        return False
    if _on_gpu(model):
        # A search fits hundreds of models, so this warning is logged once per process.
        level = logging.DEBUG if _GPU_DEADLINE_WARNED.is_set() else logging.WARNING
        _GPU_DEADLINE_WARNED.set()
        logger.log(level, "CatBoost does not run Python callbacks with task_type='GPU', so "
                   "the deadline (%s) is not checked during GPU fits; snapshots are still "
                   "saved as CatBoost writes them.", deadline)
        return False
    return True


def _save_final_snapshot(model: Any, sync: SnapshotSyncCallback,
                         restored: tuple[int, dict[str, Any]] | None) -> None:
    """Copy the snapshot CatBoost wrote last, unless the fit only restored a finished one.

    CatBoost rewrites the snapshot at the end of every fit, with other bytes even when a
    restored finished fit trained no iteration. Without this check, each rerun of a
    finished fit would store one more copy of the same model.
    """
    trees = int(model.tree_count_)
    if restored is not None and restored[1].get("final_trees") == trees:
        logger.debug("CatBoost snapshot %r step %d already contains this finished fit (%d trees)",
                     sync.key, restored[0], trees)
        return
    if sync.status is RunStatus.COMPLETED:
        sync.final_trees = trees
    sync.sync()


def _restore_snapshot(store: Any, key: str, current: Mapping[str, str],
                      path: str) -> tuple[int, dict[str, Any]] | None:
    """Write the newest verified snapshot of ``key`` to ``path``.

    Returns:
        The step and ``state.json`` of that snapshot, or ``None`` when there is none.
    """
    for step in reversed(store.steps(key)):
        try:
            checkpoint = store.load(key, step=step)
        except CorruptCheckpointError as exc:
            logger.warning("Skipping snapshot %r step %d: %s", key, step, exc)
            continue
        state = checkpoint.json(_boosting.STATE_FILE)
        _boosting.check_fingerprint(key, step, checkpoint.metadata.get("fingerprint")
                                    or state.get("fingerprint"), current)
        snapshot = bytes(checkpoint.files[SNAPSHOT_FILE])
        if (len(snapshot) != state["snapshot_size"]
                or hashlib.sha256(snapshot).hexdigest() != state["snapshot_sha256"]):
            logger.warning("Skipping snapshot %r step %d: its SHA-256 does not match "
                           "state.json", key, step)
            continue
        with open(path, "wb") as snapshot_file:
            snapshot_file.write(snapshot)
        iterations = state["iterations"]
        logger.info("Restored CatBoost snapshot %r step %d%s", key, step,
                    "" if iterations is None else f" ({iterations} iterations)")
        return step, state
    return None


def _data_digest(data: Any) -> str:
    if data is None:
        return "none"
    if isinstance(data, catboost.Pool):
        return _boosting.data_fingerprint(
            [data.num_row(), data.num_col()], data.get_label(), data.get_weight())
    if hasattr(data, "to_numpy") and hasattr(data, "columns"):
        import pandas as pd

        hashed = pd.util.hash_pandas_object(data, index=False).to_numpy()
        return _boosting.data_fingerprint(hashed, list(map(str, data.columns)))
    if hasattr(data, "to_numpy"):
        return _boosting.data_fingerprint(data.to_numpy())
    return _boosting.data_fingerprint(data)

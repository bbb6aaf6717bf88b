"""CheckpointStore: save, verify and load checkpoints under one storage URL.

``save`` serialises in the calling thread, so the snapshot is consistent, and hands the
bytes to a background uploader (or commits at once with ``background=False``). A commit
acquires the key's writer lease, builds the manifest, picks the steps retention drops,
and lets the storage write the step atomically. :mod:`persistkit._layout` draws the
files it produces. ``load`` verifies sizes and SHA-256 and falls back to the newest step
that verifies.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fsspec import AbstractFileSystem

from persistkit._checkpoint import Checkpoint
from persistkit._exit import register_for_exit, unregister_for_exit
from persistkit._layout import (
    MANIFEST_NAME,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    STORE_MARKER_NAME,
    validate_file_name,
    validate_key,
    validate_step,
)
from persistkit._lease import HeldLeases, LeaseWrite
from persistkit._manifest import Manifest, check_json_value, normalize_metrics, utc_now_iso
from persistkit._reader import StoreReader
from persistkit._retention import Retention, select_steps_to_delete
from persistkit._serializers import find_serializer
from persistkit._storage import open_storage
from persistkit._upload import BackgroundUploader, UploadJob
from persistkit._urls import redact_text
from persistkit.errors import (
    CheckpointNotFoundError,
    PersistkitError,
    StorageError,
    StoreConflictError,
)

__all__ = ["Checkpoint", "CheckpointStore", "Retention"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING_BYTES = 256 * 2**20


def default_writer_id() -> str:
    """Return ``host:pid:random`` — unique per store object, free of credentials."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class _Snapshot:
    key: str
    step: int
    files: Mapping[str, bytes]
    serializers: Mapping[str, str]
    metrics: Mapping[str, Any]
    metadata: Mapping[str, Any]
    retention: Retention | None
    # Fixed at save time so that every attempt of the commit writes the same manifest
    # bytes, by which a retry recognises a commit that already succeeded.
    created_at: str

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


class CheckpointStore(StoreReader):
    """Checkpoints of named keys under one storage URL.

    Args:
        url: A local path, ``file://``, ``memory://``, ``s3://``, ``gs://``, ``hf://`` or
            any fsspec URL.
        storage_options: Passed to the fsspec filesystem (credentials, endpoints).
        background: Upload in a background thread; with False, ``save`` returns after
            the commit.
        max_pending_bytes: Cap on serialised bytes waiting for upload.
        retention: Default retention policy for every key; ``save`` may override it.
        writer_id: Recorded in leases and manifests; defaults to ``host:pid:random``.
        lease_ttl: Seconds a writer lease stays valid without renewal; None picks the
            storage's default (300 s, or 900 s on the Hub). The store renews it on each
            save and, except on the Hub, while idle. See :mod:`persistkit._lease`.
        max_attempts: Upload attempts per checkpoint before it counts as failed.
        retry_delay: Seconds before the first retry of a failed upload; each further
            retry doubles it, up to 30 s.
        filesystem: An fsspec filesystem instance to use; ``url`` is then the root path
            inside it.
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        background: bool = True,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        retention: Retention | Mapping[str, Any] | None = None,
        writer_id: str | None = None,
        lease_ttl: float | None = None,
        max_attempts: int = 10,
        retry_delay: float = 0.5,
        filesystem: AbstractFileSystem | None = None,
    ) -> None:
        super().__init__(open_storage(url, storage_options, filesystem=filesystem))
        self.retention = Retention.coerce(retention)
        self.writer_id = writer_id or default_writer_id()
        self.lease_ttl = self.storage.default_lease_ttl if lease_ttl is None else lease_ttl
        self._leases = HeldLeases(self.storage, owner=self.writer_id, ttl=self.lease_ttl)
        self._metrics_cache: dict[str, dict[int, Mapping[str, Any]]] = {}
        # Step paths per key that retention dropped but could not delete completely.
        self._undeleted: dict[str, set[str]] = {}
        self._write_lock = threading.RLock()
        self._marker_checked = False
        self._closed = False
        self._uploader: BackgroundUploader | None = None
        if background:
            self._uploader = BackgroundUploader(
                name=self.url,
                max_pending_bytes=max_pending_bytes,
                max_attempts=max_attempts,
                initial_backoff=retry_delay,
                # Renewing an idle lease on the Hub would cost a commit per key.
                idle_callback=None if self.storage.commits_carry_leases else self._renew_leases,
                idle_interval=max(1.0, self.lease_ttl / 3),
            )
        register_for_exit(self)

    def __repr__(self) -> str:
        return f"CheckpointStore({self.url!r})"

    def __reduce__(self) -> Any:
        # A copy in another process would share this writer's leases and lose its queue.
        raise TypeError(
            f"CheckpointStore({self.url!r}) cannot be pickled: it owns an upload thread and "
            "writer leases. Pass the URL instead and open a store in the other process"
        )

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def save(
        self,
        key: str,
        files: Mapping[str, Any],
        *,
        step: int,
        metrics: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        retention: Retention | Mapping[str, Any] | None = None,
    ) -> None:
        """Serialise ``files`` and commit them as checkpoint ``step`` of ``key``.

        Returns once the files are serialised, and the commit runs in the background.
        A store opened with ``background=False`` commits inside ``save`` instead, so its
        errors raise from ``save`` itself, without retries. Saving a step that is already
        committed replaces it.

        Args:
            key: A '/'-separated key such as ``"xgb/final"``.
            files: File name to bytes, a JSON-able value, or an object with a registered
                serializer (boosters, scikit-learn estimators, :func:`persistkit.pickled`).
            step: The step number, an int >= 0.
            metrics: Numbers recorded in the manifest; retention ranks by them.
            metadata: JSON-able data recorded in the manifest.
            retention: Retention for this key, overriding the store's default.

        Raises:
            InvalidNameError: The key, a file name or the step is invalid.
            TypeError: A value cannot be serialised, or metrics or metadata are not JSON.
            StorageError: With ``background=False``, the commit failed.
            LeaseHeldError: With ``background=False``, another writer holds the key.
        """
        snapshot = self._serialise(key, files, step, metrics, metadata, retention)
        if self._closed:
            raise StorageError(f"cannot save key {key!r} step {step}: the store {self.url} is closed")
        if self._uploader is None:
            self._commit(snapshot)
            return
        job = UploadJob(snapshot.key, snapshot.step, snapshot.size, lambda: self._commit(snapshot))
        self._uploader.submit(job)

    def _serialise(
        self,
        key: str,
        files: Mapping[str, Any],
        step: int,
        metrics: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        retention: Retention | Mapping[str, Any] | None,
    ) -> _Snapshot:
        validate_key(key)
        validate_step(step)
        if not isinstance(files, Mapping) or not files:
            raise TypeError(f"files must be a non-empty mapping of file name to value, got {files!r}")
        normalized_metrics = normalize_metrics(metrics or {})
        check_json_value(normalized_metrics, what="metrics")
        check_json_value(dict(metadata or {}), what="metadata")

        payload: dict[str, bytes] = {}
        serializers: dict[str, str] = {}
        for name, value in files.items():
            validate_file_name(name)
            serializer = find_serializer(value, file_name=name)
            try:
                payload[name] = bytes(serializer.dumps(value))
            except (TypeError, ValueError) as exc:
                raise TypeError(f"cannot serialise file {name!r} with {serializer.name}: {exc}") from exc
            serializers[name] = serializer.name
        return _Snapshot(
            key=key,
            step=step,
            files=payload,
            serializers=serializers,
            metrics=normalized_metrics,
            metadata=dict(metadata or {}),
            retention=Retention.coerce(retention) or self.retention,
            created_at=utc_now_iso(),
        )

    def _commit(self, snapshot: _Snapshot) -> None:
        with self._write_lock:
            try:
                self._commit_locked(snapshot)
            except PersistkitError:
                raise
            except OSError as exc:
                raise StorageError(
                    f"saving key {snapshot.key!r} step {snapshot.step} to {self.url} failed: "
                    f"{redact_text(str(exc)) or type(exc).__name__}"
                ) from exc

    def _commit_locked(self, snapshot: _Snapshot) -> None:
        self._ensure_marker()
        manifest = Manifest.build(
            key=snapshot.key,
            step=snapshot.step,
            writer_id=self.writer_id,
            files=snapshot.files,
            serializers=snapshot.serializers,
            metrics=snapshot.metrics,
            metadata=snapshot.metadata,
            created_at=snapshot.created_at,
        )
        dropped: list[int] = []
        if snapshot.retention is not None and snapshot.retention.deletes_anything:
            # Computed from the steps that are stored, not from what this store committed,
            # so that a step whose delete failed on an earlier save is dropped now.
            known = self._stored_metrics(snapshot.key)
            candidates = {**known, snapshot.step: snapshot.metrics}
            dropped = select_steps_to_delete(snapshot.retention, candidates)

        step_path = self._step_path(snapshot.key, snapshot.step)
        delete_paths = [self._step_path(snapshot.key, step) for step in dropped]
        # A delete that failed after removing the manifest leaves a step that is no longer
        # listed as committed, so it is retried from this record instead.
        leftovers = self._undeleted.get(snapshot.key, set()) - {step_path, *delete_paths}
        delete_paths.extend(sorted(leftovers))
        if self.storage.commits_carry_leases:
            self._commit_carrying_lease(snapshot, manifest.encode(), delete_paths)
        else:
            # NOTE: the lease is checked here, not again before the manifest is written.
            # An upload that outlasts half the lease TTL can let another writer take over.
            self._acquire_lease(snapshot.key)
            self.storage.commit_checkpoint(step_path, snapshot.files, MANIFEST_NAME, manifest.encode(), delete_paths)
            self._record_undeleted(snapshot.key, delete_paths)

        self._metrics_cache.setdefault(snapshot.key, {})[snapshot.step] = snapshot.metrics
        logger.info(
            "Committed key %r step %d to %s (%d files, %d bytes)%s",
            snapshot.key,
            snapshot.step,
            self.url,
            len(snapshot.files),
            snapshot.size,
            f"; retention dropped steps {dropped}" if dropped else "",
        )

    def _commit_carrying_lease(self, snapshot: _Snapshot, manifest: bytes, delete_paths: list[str]) -> None:
        """Commit the checkpoint and the lease write in one commit fenced on the key's folder.

        A conflict means that someone changed the key's folder since this store last
        read the head: a writer that took over, or the last commits of a holder whose
        lease has expired since. The lease is then read again and the commit retried
        once on the new head, or LeaseHeldError raised.
        """
        for attempt in (1, 2):
            lease_write = self._acquire_lease(snapshot.key)
            lease_files = lease_write.files if lease_write is not None else {}
            lease_deletes = lease_write.deletes if lease_write is not None else []
            try:
                self.storage.commit_checkpoint(
                    self._step_path(snapshot.key, snapshot.step),
                    snapshot.files,
                    MANIFEST_NAME,
                    manifest,
                    [*delete_paths, *lease_deletes],
                    extra_files=lease_files,
                )
            except StoreConflictError as error:
                self._metrics_cache.pop(snapshot.key, None)
                if attempt == 2:
                    raise
                logger.info("Checking the lease on key %r in %s again after a conflict: %s", snapshot.key, self.url, error)
                continue
            if lease_write is not None:
                self._leases.confirm(snapshot.key, lease_write)
            return

    def _record_undeleted(self, key: str, delete_paths: list[str]) -> None:
        """Record which of ``delete_paths`` still exist, so that the next save of ``key`` retries them."""
        try:
            undeleted = {path for path in delete_paths if self.storage.exists(path)}
        except OSError as exc:
            logger.warning(
                "Could not check the retention deletes of key %r in %s: %s. The next save retries them",
                key,
                self.url,
                redact_text(str(exc)),
            )
            undeleted = set(delete_paths)
        if undeleted:
            self._undeleted[key] = undeleted
        else:
            self._undeleted.pop(key, None)

    def _ensure_marker(self) -> None:
        if self._marker_checked:
            return
        marker = (
            f'{{"format": "{STORE_FORMAT}", "version": {STORE_FORMAT_VERSION}}}\n'.encode()
        )
        if not self.storage.create_exclusive(STORE_MARKER_NAME, marker):
            version = self.format_version()
            if version is not None and version > STORE_FORMAT_VERSION:
                raise StoreConflictError(
                    f"the store {self.url} has format version {version}, newer than this "
                    f"persistkit supports ({STORE_FORMAT_VERSION}); upgrade persistkit"
                )
        self._marker_checked = True

    def _acquire_lease(self, key: str) -> LeaseWrite | None:
        """Acquire or renew the lease on ``key`` and clean up after a previous writer.

        Returns the lease write that the checkpoint commit must carry where the storage
        commits leases with checkpoints, else None.
        """
        lease_write, newly_held = self._leases.acquire(key)
        if newly_held:
            self._remove_partial_writes(key)
        return lease_write

    def _renew_leases(self) -> None:
        with self._write_lock:
            self._leases.renew()

    def _remove_partial_writes(self, key: str) -> None:
        # Only the lease holder may remove partial writes: another holder could still be
        # uploading into them.
        for name in self.partial_writes(key):
            logger.warning(
                "Removing %s of key %r in %s, a partial write left by an interrupted writer",
                name,
                key,
                self.url,
            )
            self.storage.delete_tree(f"{key}/{name}")

    def _stored_metrics(self, key: str) -> dict[int, Mapping[str, Any]]:
        """Return the metrics of each committed step of ``key``, from a fresh listing.

        Metrics of steps read before are cached; the listing itself is not.
        """
        cached = self._metrics_cache.get(key, {})
        known: dict[int, Mapping[str, Any]] = {}
        for step in self.steps(key):
            if step not in cached:
                try:
                    cached[step] = self.read_manifest(key, step).metrics
                except (PersistkitError, OSError):
                    cached[step] = {}
            known[step] = cached[step]
        self._metrics_cache[key] = known
        return known

    def delete(self, key: str, step: int | None = None) -> None:
        """Delete checkpoint ``step`` of ``key``, or every checkpoint of ``key``.

        Pending background saves are flushed first, so that none of them recreates a
        deleted step. Keys below ``key`` (``"xgb/final"`` below ``"xgb"``) are kept.

        Raises:
            InvalidNameError: The key or step is invalid.
            CheckpointNotFoundError: ``step`` is given and not committed.
            LeaseHeldError: Another writer holds the key.
            FlushError: A pending save failed.
        """
        validate_key(key)
        if step is not None:
            validate_step(step)
        self.flush()
        with self._write_lock:
            # On the Hub this only checks that no other writer holds the key: writing the
            # lease would cost a commit of its own.
            self._acquire_lease(key)
            if step is not None:
                if step not in self.steps(key):
                    raise CheckpointNotFoundError(
                        f"key {key!r} in {self.url} has no committed step {step}; "
                        f"committed steps: {self.steps(key)}"
                    )
                self.storage.delete_tree(self._step_path(key, step))
                self._metrics_cache.get(key, {}).pop(step, None)
            else:
                for name in self.storage.list_dir(key):
                    if name.startswith("_") and name != "_lease":
                        self.storage.delete_tree(f"{key}/{name}")
                self._metrics_cache.pop(key, None)
        logger.info("Deleted key %r %s in %s", key, "every step" if step is None else f"step {step}", self.url)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; a closed store rejects saves."""
        return self._closed

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every pending save is committed.

        Saves of keys that another writer holds are not waited for. They make this
        raise, stay queued, and are committed once that writer's lease expires or is
        released.

        Args:
            timeout: Seconds to wait at most; None waits until the queue is empty.

        Raises:
            FlushError: A save failed or was dropped since the last flush, a save waits
                for another writer's lease, or the timeout passed first.
        """
        if self._uploader is not None:
            self._uploader.flush(timeout)

    def commit_cpu_seconds(self, key: str) -> float:
        """Return the CPU time the background upload thread spent on the newest commit of ``key``.

        The boosting adapters add it to the time a save takes in the training thread
        when they cap the share of training time spent saving. A store opened with
        ``background=False`` commits inside :meth:`save`, so this returns 0.0 there, as
        it does before the first commit of ``key``.
        """
        return 0.0 if self._uploader is None else self._uploader.commit_cpu_seconds(key)

    def close(self, *, timeout: float | None = None) -> None:
        """Flush pending saves, release this writer's leases and close the storage.

        A save that waits for another writer's lease is waited for until that lease
        expires, within ``timeout``. It is not saved if the holder renews the lease
        first, because the holder is then still running.

        Raises:
            FlushError: A pending save failed or was not saved; the store is closed
                either way.
        """
        if self._closed:
            return
        self._closed = True
        unregister_for_exit(self)
        try:
            if self._uploader is not None:
                self._uploader.close(timeout)
        finally:
            self._release_leases()
            self.storage.close()

    def _release_leases(self) -> None:
        with self._write_lock:
            self._leases.release()

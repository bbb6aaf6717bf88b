"""Background uploads: the training thread serialises, one worker thread commits.

The uploader keeps a queue of serialised snapshots and one daemon thread that commits
them in order. Its contracts:

- Bounded memory. Queued plus in-flight payload bytes stay under ``max_pending_bytes``.
  While uploads succeed, ``submit`` waits for room, which only paces the training thread
  to the storage bandwidth. During an outage (the last attempt failed) it never waits:
  it drops the oldest queued snapshots to make room and records each drop as a failure.
  A snapshot larger than the cap is accepted when nothing else is pending, so memory can
  reach the in-flight snapshot plus the newest one when those alone exceed the cap.
- Coalescing. A snapshot of a key replaces a queued, not yet started snapshot of the same
  key. A snapshot that is waiting to retry is abandoned once a newer one of its key is
  queued.
- Retries. Errors that :func:`is_transient` accepts are retried with exponential backoff
  and jitter, up to ``max_attempts`` attempts; each retry is logged as a late save.
- Failures never reach the training thread directly: they are logged and raised from the
  next :meth:`BackgroundUploader.flush`.

The flush at interpreter exit and on SIGTERM lives in :mod:`persistkit._exit`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from persistkit._urls import redact_text
from persistkit.errors import FlushError, PersistkitError, StorageError

__all__ = ["BackgroundUploader", "UploadJob", "is_transient"]

logger = logging.getLogger(__name__)


def is_transient(error: BaseException) -> bool:
    """Return whether retrying could fix ``error``: timeouts, connection and I/O errors.

    A StorageError that wraps a provider error is judged by that error. Other errors that
    persistkit raises on purpose (conflicts, invalid names), missing files, existing files
    and permission errors are permanent.
    """
    if isinstance(error, StorageError) and error.__cause__ is not None:
        return is_transient(error.__cause__)
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    if isinstance(error, PersistkitError):
        return isinstance(error, StorageError) and not isinstance(error, FlushError)
    if isinstance(error, (FileNotFoundError, FileExistsError, PermissionError)):
        return False
    return isinstance(error, OSError)


def _describe_error(error: BaseException) -> str:
    # The store wraps provider errors in StorageError with the key and step, which the
    # log line already names; show the underlying error instead.
    if isinstance(error, StorageError) and error.__cause__ is not None:
        error = error.__cause__
    return redact_text(f"{type(error).__name__}: {error}")


@dataclass
class UploadJob:
    """One serialised snapshot waiting to be committed."""

    key: str
    step: int
    size: int
    commit: Callable[[], None]
    submitted_at: float = field(default_factory=time.monotonic)

    def describe(self) -> str:
        """Return ``key 'xgb/final' step 120`` for messages."""
        return f"key {self.key!r} step {self.step}"


@dataclass(frozen=True)
class _Failure:
    job: UploadJob
    error: BaseException | None
    reason: str


class BackgroundUploader:
    """A queue of snapshots committed in order by one daemon thread.

    Args:
        name: Shown in the thread name and log messages (the redacted store URL).
        max_pending_bytes: Cap on queued plus in-flight payload bytes.
        max_attempts: Attempts per snapshot before it counts as failed.
        initial_backoff: Seconds before the first retry; each retry doubles it.
        max_backoff: Upper bound of the delay between two attempts, in seconds.
        idle_callback: Called from the worker about every ``idle_interval`` seconds while
            the queue is empty (lease renewal); its errors are logged.
        idle_interval: Seconds between two idle callbacks.
    """

    def __init__(
        self,
        *,
        name: str,
        max_pending_bytes: int,
        max_attempts: int = 10,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        idle_callback: Callable[[], None] | None = None,
        idle_interval: float = 60.0,
    ) -> None:
        if max_pending_bytes < 1:
            raise ValueError(f"max_pending_bytes must be >= 1, got {max_pending_bytes!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self.name = name
        self.max_pending_bytes = max_pending_bytes
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._idle_callback = idle_callback
        self._idle_interval = idle_interval

        # RLock, so that a SIGTERM handler running flush() in the main thread while the
        # main thread is inside submit() does not deadlock.
        self._condition = threading.Condition(threading.RLock())
        self._queue: list[UploadJob] = []
        self._in_flight: UploadJob | None = None
        self._pending_bytes = 0
        self._failures: list[_Failure] = []
        self._consecutive_failures = 0
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"persistkit-upload {name}", daemon=True
        )
        self._thread.start()

    @property
    def pending_bytes(self) -> int:
        """Payload bytes queued or being uploaded."""
        with self._condition:
            return self._pending_bytes

    def submit(self, job: UploadJob) -> None:
        """Queue ``job``, replacing a queued snapshot of the same key.

        Raises:
            StorageError: The uploader is closed.
        """
        with self._condition:
            if self._closed:
                raise StorageError(f"cannot save {job.describe()}: the store {self.name} is closed")
            for index, queued in enumerate(self._queue):
                if queued.key == job.key:
                    logger.debug("Replaced queued %s with step %d", queued.describe(), job.step)
                    self._queue[index] = job
                    self._pending_bytes += job.size - queued.size
                    self._condition.notify_all()
                    return
            self._make_room(job)
            self._queue.append(job)
            self._pending_bytes += job.size
            self._condition.notify_all()

    def _make_room(self, job: UploadJob) -> None:
        while self._pending_bytes + job.size > self.max_pending_bytes and (
            self._queue or self._in_flight is not None
        ):
            if self._consecutive_failures == 0:
                self._condition.wait(timeout=1.0)
                continue
            if not self._queue:
                return
            dropped = self._queue.pop(0)
            self._pending_bytes -= dropped.size
            reason = (
                f"dropped while the storage was failing, to keep pending uploads under "
                f"max_pending_bytes={self.max_pending_bytes}"
            )
            logger.error("Dropped the unsaved snapshot %s of %s: %s", dropped.describe(), self.name, reason)
            self._failures.append(_Failure(dropped, None, reason))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued snapshot is committed or has failed.

        Args:
            timeout: Seconds to wait at most; None waits until the queue is empty.

        Raises:
            FlushError: A snapshot failed or was dropped since the last flush, or the
                timeout passed with snapshots still pending.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._queue or self._in_flight is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    pending = [job.describe() for job in self._pending_jobs()]
                    raise FlushError(
                        f"flush of {self.name} timed out after {timeout} s with "
                        f"{len(pending)} saves pending ({', '.join(pending)}); "
                        f"{self._last_error_text()}the saves continue in the background"
                    )
                self._condition.wait(timeout=remaining)
            failures, self._failures = self._failures, []
        if failures:
            details = "; ".join(f"{f.job.describe()}: {f.reason}" for f in failures)
            last_error = next((f.error for f in reversed(failures) if f.error is not None), None)
            raise FlushError(
                f"{len(failures)} saves to {self.name} failed: {details}. Check the storage "
                "and save again"
            ) from last_error

    def _pending_jobs(self) -> list[UploadJob]:
        jobs = list(self._queue)
        if self._in_flight is not None:
            jobs.insert(0, self._in_flight)
        return jobs

    def _last_error_text(self) -> str:
        for failure in reversed(self._failures):
            return f"last failure: {failure.reason}; "
        return ""

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the worker thread; the uploader accepts no more snapshots.

        Raises:
            FlushError: As :meth:`flush`; the worker is stopped either way.
        """
        try:
            self.flush(timeout)
        finally:
            with self._condition:
                self._closed = True
                self._condition.notify_all()
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                self._commit_with_retries(job)
            finally:
                with self._condition:
                    self._in_flight = None
                    self._pending_bytes -= job.size
                    self._condition.notify_all()

    def _next_job(self) -> UploadJob | None:
        with self._condition:
            while not self._queue:
                if self._closed:
                    return None
                if not self._condition.wait(timeout=self._idle_interval):
                    self._run_idle_callback()
            job = self._queue.pop(0)
            self._in_flight = job
            return job

    def _run_idle_callback(self) -> None:
        if self._idle_callback is None:
            return
        try:
            self._idle_callback()
        except Exception as exc:
            logger.warning("Background task of %s failed: %s", self.name, redact_text(str(exc)))

    def _commit_with_retries(self, job: UploadJob) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                job.commit()
            except Exception as exc:
                if not self._handle_failure(job, exc, attempt):
                    return
                continue
            self._record_success(job, attempt)
            return

    def _record_success(self, job: UploadJob, attempt: int) -> None:
        with self._condition:
            self._consecutive_failures = 0
        if attempt > 1:
            logger.warning(
                "Saved %s to %s late: %.1f s after save() returned, on attempt %d",
                job.describe(),
                self.name,
                time.monotonic() - job.submitted_at,
                attempt,
            )

    def _handle_failure(self, job: UploadJob, error: Exception, attempt: int) -> bool:
        """Log a failed attempt; return whether to try again after the backoff."""
        message = _describe_error(error)
        with self._condition:
            self._consecutive_failures += 1
            self._condition.notify_all()
        if not is_transient(error) or attempt >= self.max_attempts:
            reason = f"failed after {attempt} attempts: {message}"
            logger.error("Could not save %s to %s: %s", job.describe(), self.name, reason)
            with self._condition:
                self._failures.append(_Failure(job, error, reason))
            return False

        delay = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.0)
        logger.warning(
            "Save of %s to %s is late: attempt %d failed (%s); retrying in %.1f s",
            job.describe(),
            self.name,
            attempt,
            message,
            delay,
        )
        if self._wait_unless_superseded(job, delay):
            logger.warning(
                "Abandoned the late save of %s to %s: a newer snapshot of the key is queued",
                job.describe(),
                self.name,
            )
            return False
        return True

    def _wait_unless_superseded(self, job: UploadJob, delay: float) -> bool:
        deadline = time.monotonic() + delay
        with self._condition:
            while True:
                if any(queued.key == job.key for queued in self._queue):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(timeout=remaining)

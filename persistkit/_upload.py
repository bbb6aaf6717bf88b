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
- Waiting for leases. A snapshot whose key another writer holds (``LeaseHeldError`` with
  a ``retry_at`` time) waits aside without holding up other keys, with one WARNING per
  key, and is tried again at ``retry_at``. A newer snapshot of the key replaces it.
  :meth:`BackgroundUploader.flush` raises while such snapshots wait and keeps them;
  :meth:`BackgroundUploader.close` first waits for leases that expire without renewal.
- Failures never reach the training thread directly: they are logged and raised from the
  next :meth:`BackgroundUploader.flush`.

The flush at interpreter exit and on SIGTERM lives in :mod:`persistkit._exit`, the jobs
and the classification of their errors in :mod:`persistkit._upload_jobs`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from persistkit._lease import format_time
from persistkit._upload_jobs import Failure, LeaseWait, UploadJob, describe_error, is_transient
from persistkit._urls import redact_text
from persistkit.errors import FlushError, LeaseHeldError, StorageError

__all__ = ["BackgroundUploader", "UploadJob", "is_transient"]

logger = logging.getLogger(__name__)


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
        self._failures: list[Failure] = []
        self._blocked: dict[str, LeaseWait] = {}
        self._warned_blocked: set[str] = set()
        self._consecutive_failures = 0
        self._commit_cpu_seconds: dict[str, float] = {}
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
            blocked = self._blocked.get(job.key)
            if blocked is not None:
                logger.debug("Replaced %s, which waits for a lease, with step %d", blocked.job.describe(), job.step)
                self._pending_bytes += job.size - blocked.job.size
                blocked.job = job
                self._condition.notify_all()
                return
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
        while self._pending_bytes + job.size > self.max_pending_bytes:
            uploading = bool(self._queue) or self._in_flight is not None
            if uploading and self._consecutive_failures == 0:
                self._condition.wait(timeout=1.0)
                continue
            if self._queue:
                dropped = self._queue.pop(0)
                cause = "the storage was failing"
            elif self._blocked:
                # Snapshots waiting for a lease free no memory by themselves.
                dropped = self._blocked.pop(next(iter(self._blocked))).job
                cause = "it waited for another writer's lease"
            else:
                return
            self._pending_bytes -= dropped.size
            reason = (
                f"dropped while {cause}, to keep pending uploads under "
                f"max_pending_bytes={self.max_pending_bytes}"
            )
            logger.error("Dropped the unsaved snapshot %s of %s: %s", dropped.describe(), self.name, reason)
            self._failures.append(Failure(dropped, None, reason))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued snapshot is committed or has failed.

        Snapshots that wait for another writer's lease are not waited for: they make
        this raise and stay queued.

        Args:
            timeout: Seconds to wait at most; None waits until the queue is empty.

        Raises:
            FlushError: A snapshot failed or was dropped since the last flush, snapshots
                wait for another writer's lease, or the timeout passed with snapshots
                still pending.
        """
        self._wait_until_idle(timeout, wait_for_leases=False)
        self._raise_failures(
            blocked_outcome="they stay queued and are tried again when the lease expires or is released"
        )

    def _wait_until_idle(self, timeout: float | None, *, wait_for_leases: bool) -> None:
        """Wait until nothing is queued or in flight, and with ``wait_for_leases`` until
        no snapshot waits for a lease that is due to expire without having been renewed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        # The expiry of each blocking lease when the wait began: a lease renewed since
        # then belongs to a live writer and could block the wait forever.
        expiries: dict[str, float] = {}
        with self._condition:
            while self._queue or self._in_flight is not None or (
                wait_for_leases and self._has_expiring_lease(expiries)
            ):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    pending = [job.describe() for job in self._pending_jobs()]
                    raise FlushError(
                        f"flush of {self.name} timed out after {timeout} s with "
                        f"{len(pending)} saves pending ({', '.join(pending)}); "
                        f"{self._last_error_text()}the saves continue in the background"
                    )
                self._condition.wait(timeout=remaining)

    def _has_expiring_lease(self, expiries: dict[str, float]) -> bool:
        for key, blocked in self._blocked.items():
            if blocked.expires_at <= expiries.setdefault(key, blocked.expires_at):
                return True
        return False

    def _raise_failures(self, *, blocked_outcome: str) -> None:
        with self._condition:
            failures, self._failures = self._failures, []
            blocked = list(self._blocked.values())
        problems: list[str] = []
        if failures:
            details = "; ".join(f"{f.job.describe()}: {f.reason}" for f in failures)
            problems.append(f"{len(failures)} saves to {self.name} failed: {details}. Check the storage and save again")
        if blocked:
            details = "; ".join(item.describe() for item in blocked)
            problems.append(
                f"{len(blocked)} saves to {self.name} wait for another writer's lease, so "
                f"{blocked_outcome}: {details}"
            )
        if problems:
            last_error = next((f.error for f in reversed(failures) if f.error is not None), None)
            if last_error is None and blocked:
                last_error = blocked[-1].error
            raise FlushError(". ".join(problems)) from last_error

    def _pending_jobs(self) -> list[UploadJob]:
        jobs = list(self._queue)
        if self._in_flight is not None:
            jobs.insert(0, self._in_flight)
        return jobs + [blocked.job for blocked in self._blocked.values()]

    def _last_error_text(self) -> str:
        for failure in reversed(self._failures):
            return f"last failure: {failure.reason}; "
        return ""

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the worker thread; the uploader accepts no more snapshots.

        Snapshots that wait for another writer's lease are waited for until that lease
        expires, unless its holder renews it first. Those still waiting then are not saved.

        Raises:
            FlushError: As :meth:`flush`; the worker is stopped either way.
        """
        try:
            self._wait_until_idle(timeout, wait_for_leases=True)
            self._raise_failures(blocked_outcome="they were not saved")
        finally:
            with self._condition:
                self._closed = True
                for blocked in self._blocked.values():
                    logger.error("Did not save %s to %s: %s", blocked.job.describe(), self.name, blocked.error)
                self._pending_bytes -= sum(blocked.job.size for blocked in self._blocked.values())
                self._blocked.clear()
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
            next_idle = time.monotonic() + self._idle_interval
            while True:
                job = self._queue.pop(0) if self._queue else self._pop_due_blocked()
                if job is not None:
                    self._in_flight = job
                    return job
                if self._closed:
                    return None
                now = time.monotonic()
                if now >= next_idle:
                    self._run_idle_callback()
                    next_idle = now + self._idle_interval
                    continue
                wait_s = next_idle - now
                if self._blocked:
                    earliest = min(blocked.retry_at for blocked in self._blocked.values())
                    wait_s = min(wait_s, max(0.0, earliest - time.time()))
                self._condition.wait(timeout=wait_s)

    def _pop_due_blocked(self) -> UploadJob | None:
        now = time.time()
        for key, blocked in self._blocked.items():
            if blocked.retry_at <= now:
                del self._blocked[key]
                return blocked.job
        return None

    def _run_idle_callback(self) -> None:
        if self._idle_callback is None:
            return
        try:
            self._idle_callback()
        except Exception as exc:
            logger.warning("Background task of %s failed: %s", self.name, redact_text(str(exc)))

    def commit_cpu_seconds(self, key: str) -> float:
        """Return the CPU time this thread spent on the newest successful commit of ``key``.

        Failed attempts before it are included; 0.0 when nothing of ``key`` was committed.
        """
        with self._condition:
            return self._commit_cpu_seconds.get(key, 0.0)

    def _commit_with_retries(self, job: UploadJob) -> None:
        cpu_started = time.thread_time()
        for attempt in range(1, self.max_attempts + 1):
            try:
                job.commit()
            except LeaseHeldError as exc:
                if exc.retry_at is not None:
                    self._wait_for_lease(job, exc, exc.retry_at)
                    return
                if not self._handle_failure(job, exc, attempt):
                    return
            except Exception as exc:
                if not self._handle_failure(job, exc, attempt):
                    return
                continue
            else:
                with self._condition:
                    self._commit_cpu_seconds[job.key] = time.thread_time() - cpu_started
                self._record_success(job, attempt)
                return

    def _wait_for_lease(self, job: UploadJob, error: LeaseHeldError, retry_at: float) -> None:
        """Set ``job`` aside until ``retry_at``, unless a newer snapshot superseded it."""
        with self._condition:
            if any(queued.key == job.key for queued in self._queue):
                return
            # The worker subtracts the in-flight job's size when this returns.
            self._pending_bytes += job.size
            self._blocked[job.key] = LeaseWait(job, error, retry_at)
            first = job.key not in self._warned_blocked
            self._warned_blocked.add(job.key)
            self._condition.notify_all()
        if first:
            logger.warning(
                "Save of %s to %s waits for another writer's lease: %s. The save stays "
                "queued and is tried again when the lease expires or is released",
                job.describe(),
                self.name,
                error,
            )
        else:
            logger.debug("Save of %s still waits for a lease; next try at %s", job.describe(), format_time(retry_at))

    def _record_success(self, job: UploadJob, attempt: int) -> None:
        with self._condition:
            self._consecutive_failures = 0
            if job.key in self._warned_blocked:
                self._warned_blocked.discard(job.key)
                logger.warning(
                    "Saved %s to %s after waiting %.1f s for another writer's lease",
                    job.describe(),
                    self.name,
                    time.monotonic() - job.submitted_at,
                )
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
        message = describe_error(error)
        with self._condition:
            self._consecutive_failures += 1
            self._condition.notify_all()
        if not is_transient(error) or attempt >= self.max_attempts:
            reason = f"failed after {attempt} attempts: {message}"
            logger.error("Could not save %s to %s: %s", job.describe(), self.name, reason)
            with self._condition:
                self._failures.append(Failure(job, error, reason))
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

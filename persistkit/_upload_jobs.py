"""Upload jobs of the background uploader and how their errors are classified."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from persistkit._urls import redact_text
from persistkit.errors import FlushError, LeaseHeldError, PersistkitError, StorageError

__all__ = ["Failure", "LeaseWait", "UploadJob", "describe_error", "is_transient"]


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


def describe_error(error: BaseException) -> str:
    """Return ``Type: message`` of ``error`` with credentials removed."""
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
class Failure:
    """A snapshot that was not saved, and why."""

    job: UploadJob
    error: BaseException | None
    reason: str


@dataclass
class LeaseWait:
    """A snapshot waiting for another writer's lease on its key."""

    job: UploadJob
    error: LeaseHeldError
    retry_at: float  # Unix time

    @property
    def expires_at(self) -> float:
        """Unix time at which the blocking lease expires, or ``retry_at`` when unknown."""
        return self.error.expires_at if self.error.expires_at is not None else self.retry_at

    def describe(self) -> str:
        """Return the snapshot and the lease error, for messages."""
        return f"{self.job.describe()}: {self.error}"

"""Exceptions raised by persistkit.

Every public error derives from :class:`PersistkitError`. Leaves also derive from
the builtin exception a caller would naturally catch, so ``except ValueError``
or ``except FileNotFoundError`` keeps working::

    PersistkitError
    ├── InvalidNameError (ValueError)         bad key or file name
    ├── CheckpointNotFoundError (FileNotFoundError, KeyError)
    ├── CorruptCheckpointError (ValueError)   size or SHA-256 mismatch, bad manifest
    ├── UnsafeLoadError (ValueError)          pickle payload refused
    ├── StoreConflictError (RuntimeError)
    │   └── LeaseHeldError                    another writer holds the key
    ├── FingerprintMismatchError (ValueError) saved state belongs to other params or data
    ├── StorageError (OSError)                backend I/O failed
    │   └── FlushError                        background uploads did not finish or failed
    └── MissingDependencyError (ImportError)  an optional extra is not installed

Messages name the value that failed and say what to do next. They never contain
credentials: URLs go through :func:`persistkit._urls.redact_url` first.
"""

from __future__ import annotations

__all__ = [
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "FingerprintMismatchError",
    "FlushError",
    "InvalidNameError",
    "LeaseHeldError",
    "MissingDependencyError",
    "PersistkitError",
    "StorageError",
    "StoreConflictError",
    "UnsafeLoadError",
]


class PersistkitError(Exception):
    """Base class of every error raised on purpose by persistkit."""


class InvalidNameError(PersistkitError, ValueError):
    """A checkpoint key or file name is empty, absolute, or contains ``..`` or control characters."""


class CheckpointNotFoundError(PersistkitError, FileNotFoundError, KeyError):
    """No committed checkpoint exists for the requested key or step."""

    def __str__(self) -> str:
        # KeyError.__str__ would quote the whole message.
        return str(self.args[0]) if self.args else ""


class CorruptCheckpointError(PersistkitError, ValueError):
    """A checkpoint failed verification: missing file, size or SHA-256 mismatch, or bad manifest."""


class UnsafeLoadError(PersistkitError, ValueError):
    """A pickle or joblib payload was not loaded because it was not allowed or not verified."""


class StoreConflictError(PersistkitError, RuntimeError):
    """The store is in a state written by another run or writer."""


class LeaseHeldError(StoreConflictError):
    """Another writer holds an unexpired lease on the key.

    Attributes:
        expires_at: Unix time at which the holder's lease expires, when known.
        retry_at: Unix time at which trying again may succeed (the lease expires, or the
            next check for its release is due); None when retrying cannot help because
            another writer took this writer's lease over.
    """

    def __init__(
        self, message: str, *, expires_at: float | None = None, retry_at: float | None = None
    ) -> None:
        super().__init__(message)
        self.expires_at = expires_at
        self.retry_at = retry_at


class FingerprintMismatchError(PersistkitError, ValueError):
    """Saved state was produced with other parameters or data than the current run."""


class StorageError(PersistkitError, OSError):
    """Reading from or writing to the storage backend failed."""


class FlushError(StorageError):
    """Background uploads did not complete within the timeout or failed permanently."""


class MissingDependencyError(PersistkitError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

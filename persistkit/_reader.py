"""Read-only access to a checkpoint store: listing, verification and loading.

:class:`StoreReader` takes no lease and starts no thread, so the CLI and tests can
inspect a store while a writer is running. ``CheckpointStore`` extends it with writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from types import MappingProxyType

from persistkit._checkpoint import Checkpoint
from persistkit._layout import (
    MANIFEST_NAME,
    STAGING_PREFIX,
    STORE_MARKER_NAME,
    is_key_part,
    parse_step_dir,
    step_dir_name,
    validate_key,
    validate_step,
)
from persistkit._manifest import Manifest
from persistkit._storage import Storage
from persistkit.errors import CheckpointNotFoundError, CorruptCheckpointError

__all__ = ["StepReport", "StoreReader"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepReport:
    """The result of verifying one committed step."""

    key: str
    step: int
    error: str | None

    @property
    def ok(self) -> bool:
        """Whether the step verified."""
        return self.error is None


class StoreReader:
    """Read-only view of the checkpoints under one Storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @property
    def url(self) -> str:
        """The store URL with credentials removed, safe to log."""
        return self.storage.url

    @staticmethod
    def _step_path(key: str, step: int) -> str:
        return f"{key}/{step_dir_name(step)}"

    def format_version(self) -> int | None:
        """Return the version in the store's format marker, or None when there is none."""
        try:
            raw = json.loads(self.storage.read_bytes(STORE_MARKER_NAME))
            return int(raw["version"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptCheckpointError(
                f"the store marker {STORE_MARKER_NAME} in {self.url} is unreadable: {exc}"
            ) from exc

    def steps(self, key: str) -> list[int]:
        """Return the committed steps of ``key`` in ascending order.

        A step counts as committed when its manifest exists; the manifest is not
        verified here.
        """
        validate_key(key)
        found = []
        for name in self.storage.list_dir(key):
            step = parse_step_dir(name)
            if step is not None and self.storage.exists(f"{key}/{name}/{MANIFEST_NAME}"):
                found.append(step)
        return sorted(found)

    def latest_step(self, key: str) -> int | None:
        """Return the newest committed step of ``key``, or None when there is none."""
        steps = self.steps(key)
        return steps[-1] if steps else None

    def keys(self, prefix: str = "") -> list[str]:
        """Return every key with at least one committed step that starts with ``prefix``."""
        return [key for key in self.key_paths(prefix) if self.steps(key)]

    def key_paths(self, prefix: str = "") -> list[str]:
        """Return every directory starting with ``prefix`` that contains persistkit entries.

        Unlike :meth:`keys`, this includes keys that have only partial writes or a lease.
        """
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if base:
            validate_key(base)
        found: list[str] = []
        self._collect_key_paths(base, found)
        return sorted(key for key in found if key.startswith(prefix))

    def _collect_key_paths(self, path: str, found: list[str]) -> None:
        names = self.storage.list_dir(path)
        if path and any(name.startswith("_") for name in names):
            found.append(path)
        for name in names:
            if is_key_part(name):
                self._collect_key_paths(f"{path}/{name}" if path else name, found)

    def partial_writes(self, key: str) -> list[str]:
        """Return the names of the key's staging directories and steps without a manifest."""
        partial = []
        for name in self.storage.list_dir(key):
            if name.startswith(STAGING_PREFIX) or (parse_step_dir(name) is not None and not self.storage.exists(
                f"{key}/{name}/{MANIFEST_NAME}"
            )):
                partial.append(name)
        return partial

    def read_manifest(self, key: str, step: int) -> Manifest:
        """Return the parsed manifest of committed step ``step`` of ``key``.

        Raises:
            CheckpointNotFoundError: The step has no manifest.
            CorruptCheckpointError: The manifest is unreadable or names another key or step.
        """
        where = f"key {key!r} step {step} in {self.url}"
        try:
            data = self.storage.read_bytes(f"{self._step_path(key, step)}/{MANIFEST_NAME}")
        except FileNotFoundError:
            raise CheckpointNotFoundError(f"no committed checkpoint for {where}") from None
        manifest = Manifest.decode(data, where=where)
        if manifest.key != key or manifest.step != step:
            raise CorruptCheckpointError(
                f"the manifest of {where} names key {manifest.key!r} step {manifest.step}"
            )
        return manifest

    def _read_verified(self, key: str, step: int, *, allow_pickle: bool) -> Checkpoint:
        manifest = self.read_manifest(key, step)
        files = {}
        for name, entry in manifest.files.items():
            try:
                data = self.storage.read_bytes(f"{self._step_path(key, step)}/{name}")
            except FileNotFoundError:
                raise CorruptCheckpointError(f"file {name!r} listed in the manifest is missing") from None
            entry.check(name, data)
            files[name] = data
        return Checkpoint(
            key=key,
            step=step,
            files=MappingProxyType(files),
            metrics=manifest.metrics,
            metadata=manifest.metadata,
            manifest=manifest,
            allow_pickle=allow_pickle,
        )

    def load(self, key: str, *, step: int | None = None, allow_pickle: bool = False) -> Checkpoint:
        """Return the newest committed checkpoint of ``key`` that verifies, or step ``step``.

        Without ``step``, a step that fails verification is skipped with a WARNING that
        names it and the step loaded instead.

        Args:
            key: The checkpoint key.
            step: Load this step instead of the newest.
            allow_pickle: Let :meth:`Checkpoint.object` load pickle and joblib payloads.

        Raises:
            InvalidNameError: The key or step is invalid.
            CheckpointNotFoundError: The key has no committed checkpoint, or not ``step``.
            CorruptCheckpointError: ``step`` was given and fails verification, or no
                committed step of the key verifies.
        """
        validate_key(key)
        if step is not None:
            validate_step(step)
            try:
                return self._read_verified(key, step, allow_pickle=allow_pickle)
            except CorruptCheckpointError as exc:
                raise CorruptCheckpointError(
                    f"checkpoint key {key!r} step {step} in {self.url} is corrupt: {exc}; "
                    f"load another step (committed: {self.steps(key)}) or delete this one"
                ) from exc

        steps = self.steps(key)
        if not steps:
            raise CheckpointNotFoundError(
                f"no committed checkpoint for key {key!r} in {self.url}; "
                f"check the key and the URL, or call flush() after save()"
            )
        failures: list[tuple[int, CorruptCheckpointError]] = []
        for candidate in reversed(steps):
            try:
                checkpoint = self._read_verified(key, candidate, allow_pickle=allow_pickle)
            except CorruptCheckpointError as exc:
                failures.append((candidate, exc))
                continue
            except CheckpointNotFoundError:
                continue  # deleted by retention since steps() listed it
            for failed_step, error in failures:
                logger.warning(
                    "Checkpoint key %r step %d in %s failed verification (%s); loaded step %d instead",
                    key,
                    failed_step,
                    self.url,
                    error,
                    candidate,
                )
            return checkpoint
        details = "; ".join(f"step {failed}: {error}" for failed, error in failures)
        raise CorruptCheckpointError(
            f"no committed checkpoint of key {key!r} in {self.url} verifies ({details})"
        )

    def verify(self, key: str, step: int) -> StepReport:
        """Check one committed step's manifest, file sizes and SHA-256."""
        try:
            self._read_verified(key, step, allow_pickle=False)
        except (CorruptCheckpointError, CheckpointNotFoundError) as exc:
            return StepReport(key, step, str(exc))
        return StepReport(key, step, None)

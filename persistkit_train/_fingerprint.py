"""Run fingerprint: the settings and data that a store's stages were computed from.

The fingerprint is saved once per store under ``run/fingerprint``. Every later run with
the same store compares its own fingerprint with the saved one and stops with
:class:`RunMismatchError` when anything differs, so stale stages are never reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

from persistkit.errors import CheckpointNotFoundError, FingerprintMismatchError
from persistkit_train.i18n import _

logger = logging.getLogger(__name__)

FINGERPRINT_KEY = "run/fingerprint"
# Version of the store layout written by this module and the stages.
LAYOUT_VERSION = 1


class RunMismatchError(FingerprintMismatchError):
    """The store contains a run made with other settings or another data file."""


@dataclasses.dataclass(frozen=True)
class RunFingerprint:
    """Settings, data checksum and feature version of one run."""

    config: dict[str, Any]
    data_sha256: str
    data_name: str
    feature_version: str
    layout_version: int = LAYOUT_VERSION

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> RunFingerprint:
        return cls(**payload)

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON form; stage checkpoints record it."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def hash_file(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_changes(saved: RunFingerprint, current: RunFingerprint) -> list[str]:
    """List each difference between two fingerprints as one user-facing line."""
    changes: list[str] = []
    if saved.data_sha256 != current.data_sha256:
        changes.append(
            _("data file: {old_name} (SHA-256 {old}) -> {new_name} (SHA-256 {new})").format(
                old_name=saved.data_name,
                old=saved.data_sha256[:12],
                new_name=current.data_name,
                new=current.data_sha256[:12],
            )
        )
    if saved.feature_version != current.feature_version:
        changes.append(
            _("feature version: {old} -> {new}").format(
                old=saved.feature_version, new=current.feature_version
            )
        )
    if saved.layout_version != current.layout_version:
        changes.append(
            _("store layout version: {old} -> {new}").format(
                old=saved.layout_version, new=current.layout_version
            )
        )
    for name in sorted(set(saved.config) | set(current.config)):
        old = saved.config.get(name, "-")
        new = current.config.get(name, "-")
        if old != new:
            changes.append(
                _("setting {name}: {old} -> {new}").format(
                    name=name, old=json.dumps(old), new=json.dumps(new)
                )
            )
    return changes


def load_fingerprint(store: Any) -> RunFingerprint | None:
    """Return the fingerprint saved in ``store``, or None for an empty store."""
    try:
        checkpoint = store.load(FINGERPRINT_KEY)
    except CheckpointNotFoundError:
        return None
    return RunFingerprint.from_json(checkpoint.json("fingerprint.json"))


def claim_store(store: Any, current: RunFingerprint, *, restart: bool) -> bool:
    """Bind ``store`` to the run ``current`` and return True when earlier work is reused.

    An empty store, or any store when ``restart`` is set, is cleared and gets the new
    fingerprint.

    Raises:
        RunMismatchError: The store contains a run with another fingerprint and ``restart``
            is False. The message lists every change and how to proceed.
    """
    saved = load_fingerprint(store)
    if saved is not None and not restart:
        changes = describe_changes(saved, current)
        if not changes:
            return True
        raise RunMismatchError(
            _(
                "The store {url} holds a run made with other settings or data:\n"
                "  {changes}\n"
                "Re-run with --restart to delete that run and start over, or pass another "
                "--store to keep it."
            ).format(url=store.url, changes="\n  ".join(changes))
        )

    existing = store.keys()
    if existing:
        logger.info("Deleting %d keys of the previous run in %s", len(existing), store.url)
        for key in existing:
            store.delete(key)
    store.save(FINGERPRINT_KEY, {"fingerprint.json": current.to_json()}, step=0)
    store.flush()
    return False

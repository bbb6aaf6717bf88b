"""Checkpoint manifests: what a committed step contains and how to verify it.

A manifest is UTF-8 JSON, written as the last file of a step directory. Its presence
commits the step. Example::

    {
      "format_version": 1,
      "key": "xgb/final",
      "step": 120,
      "created_at": "2026-12-04T21:03:11.402Z",
      "writer_id": "kaggle-7f3c:4211:9b1e02aa",
      "files": {
        "model.ubj": {"size": 2031733, "sha256": "5f0c...", "serializer": "xgboost-ubj"}
      },
      "metrics": {"rmse": 0.31},
      "metadata": {"n_rounds": 120}
    }

persistkit writes no URL and no storage option into a manifest. Metrics and metadata are
stored as the caller passes them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from persistkit._layout import validate_file_name
from persistkit.errors import CorruptCheckpointError, InvalidNameError

__all__ = ["MANIFEST_FORMAT_VERSION", "FileEntry", "Manifest", "sha256_hex", "utc_now_iso"]

MANIFEST_FORMAT_VERSION = 1


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def utc_now_iso() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class FileEntry:
    """Size, SHA-256 and serializer name of one payload file."""

    size: int
    sha256: str
    serializer: str

    def check(self, name: str, data: bytes) -> None:
        """Raise CorruptCheckpointError unless ``data`` has this entry's size and SHA-256."""
        if len(data) != self.size:
            raise CorruptCheckpointError(
                f"file {name!r} has {len(data)} bytes, the manifest records {self.size}"
            )
        actual = sha256_hex(data)
        if actual != self.sha256:
            raise CorruptCheckpointError(
                f"file {name!r} has SHA-256 {actual}, the manifest records {self.sha256}"
            )


@dataclass(frozen=True)
class Manifest:
    """Parsed contents of ``_manifest.json``."""

    key: str
    step: int
    writer_id: str
    files: Mapping[str, FileEntry]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now_iso)
    format_version: int = MANIFEST_FORMAT_VERSION

    @classmethod
    def build(
        cls,
        *,
        key: str,
        step: int,
        writer_id: str,
        files: Mapping[str, bytes],
        serializers: Mapping[str, str],
        metrics: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_at: str | None = None,
    ) -> Manifest:
        """Hash ``files`` and return the manifest that describes them."""
        entries = {
            name: FileEntry(size=len(data), sha256=sha256_hex(data), serializer=serializers[name])
            for name, data in files.items()
        }
        return cls(
            key=key,
            step=step,
            writer_id=writer_id,
            files=_frozen(entries),
            metrics=_frozen(metrics or {}),
            metadata=_frozen(metadata or {}),
            created_at=created_at or utc_now_iso(),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the manifest as plain JSON-able data."""
        return {
            "format_version": self.format_version,
            "key": self.key,
            "step": self.step,
            "created_at": self.created_at,
            "writer_id": self.writer_id,
            "files": {
                name: {"size": entry.size, "sha256": entry.sha256, "serializer": entry.serializer}
                for name, entry in sorted(self.files.items())
            },
            "metrics": dict(self.metrics),
            "metadata": dict(self.metadata),
        }

    def encode(self) -> bytes:
        """Return the manifest as indented UTF-8 JSON."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n").encode("utf-8")

    @classmethod
    def decode(cls, data: bytes, *, where: str) -> Manifest:
        """Parse manifest bytes, or raise CorruptCheckpointError naming ``where``.

        Args:
            data: The raw contents of ``_manifest.json``.
            where: A description of the step, such as ``"key 'xgb/final' step 120"``,
                used in error messages.
        """
        try:
            raw = json.loads(data.decode("utf-8"))
            return cls._from_json(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CorruptCheckpointError(f"unreadable manifest for {where}: {exc}") from exc

    @classmethod
    def _from_json(cls, raw: Any) -> Manifest:
        if not isinstance(raw, dict):
            raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
        version = raw["format_version"]
        if version != MANIFEST_FORMAT_VERSION:
            raise ValueError(
                f"manifest format_version {version!r} is not supported by this persistkit "
                f"(supports {MANIFEST_FORMAT_VERSION}); upgrade persistkit"
            )
        files = {}
        for name, entry in raw["files"].items():
            try:
                validate_file_name(name)
            except InvalidNameError as exc:
                raise ValueError(str(exc)) from exc
            files[name] = FileEntry(
                size=int(entry["size"]),
                sha256=str(entry["sha256"]),
                serializer=str(entry["serializer"]),
            )
        return cls(
            key=str(raw["key"]),
            step=int(raw["step"]),
            writer_id=str(raw["writer_id"]),
            files=_frozen(files),
            metrics=_frozen(raw.get("metrics") or {}),
            metadata=_frozen(raw.get("metadata") or {}),
            created_at=str(raw["created_at"]),
            format_version=version,
        )


def check_json_value(value: Any, *, what: str) -> None:
    """Raise TypeError unless ``value`` encodes as JSON; the message names ``what``.

    NaN and infinity are accepted because Python's json module writes and reads them,
    and a metric such as a diverged loss may be NaN.
    """
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from exc


def normalize_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int | None]:
    """Return ``metrics`` with NumPy scalars converted to Python numbers.

    Raises:
        TypeError: A name is not a str, or a value is not a number or None.
    """
    normalized: dict[str, float | int | None] = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"metric names must be str, got {name!r}")
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TypeError(f"metric {name!r} must be a number or None, got {value!r}")
        normalized[name] = value
    return normalized

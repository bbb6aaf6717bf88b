"""The Checkpoint value returned by ``CheckpointStore.load``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from persistkit._manifest import Manifest, sha256_hex
from persistkit._serializers import get_serializer
from persistkit.errors import CorruptCheckpointError, UnsafeLoadError

__all__ = ["Checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """One committed, verified checkpoint of a key.

    Attributes:
        key: The checkpoint key, such as ``"xgb/final"``.
        step: The step it was saved at.
        files: File name to raw bytes, exactly as saved.
        metrics: The metrics passed to ``save``.
        metadata: The metadata passed to ``save``.
        manifest: The parsed manifest, with sizes, SHA-256 and serializer names.
        allow_pickle: Whether :meth:`object` may load pickle and joblib payloads.
    """

    key: str
    step: int
    files: Mapping[str, bytes]
    metrics: Mapping[str, Any]
    metadata: Mapping[str, Any]
    manifest: Manifest
    allow_pickle: bool = False

    def _data(self, name: str) -> bytes:
        try:
            return self.files[name]
        except KeyError:
            raise KeyError(
                f"checkpoint {self.key!r} step {self.step} has no file {name!r}; "
                f"it has {sorted(self.files)}"
            ) from None

    def json(self, name: str) -> Any:
        """Return the file ``name`` parsed as JSON.

        Raises:
            KeyError: The checkpoint has no such file.
            CorruptCheckpointError: The file is not valid UTF-8 JSON.
        """
        data = self._data(name)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptCheckpointError(
                f"file {name!r} of checkpoint {self.key!r} step {self.step} is not JSON: {exc}"
            ) from exc

    def object(self, name: str) -> Any:
        """Return the file ``name`` loaded with the serializer recorded in the manifest.

        Boosters come back as boosters and JSON as Python values. Pickle and joblib
        payloads load only when the store's ``load`` was called with
        ``allow_pickle=True``, and only after their SHA-256 matches the manifest again.

        Raises:
            KeyError: The checkpoint has no such file, or its serializer is not registered.
            UnsafeLoadError: The file is a pickle or joblib payload and loading it is not
                allowed, or its SHA-256 does not match the manifest.
        """
        data = self._data(name)
        entry = self.manifest.files[name]
        serializer = get_serializer(entry.serializer)
        if serializer.unsafe:
            where = f"file {name!r} of checkpoint {self.key!r} step {self.step}"
            if not self.allow_pickle:
                raise UnsafeLoadError(
                    f"{where} is a {entry.serializer} payload, and loading it can run "
                    "arbitrary code; pass allow_pickle=True to load() if you trust this store"
                )
            if sha256_hex(data) != entry.sha256:
                raise UnsafeLoadError(
                    f"{where} does not match the SHA-256 in its manifest; refusing to unpickle it"
                )
        return serializer.loads(data)

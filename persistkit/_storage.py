"""Storage backends and the one place where a URL picks its commit strategy.

Each kind of storage makes a checkpoint visible atomically in its own way:

- :class:`LocalStorage` (plain paths and ``file://``) writes every file into a staging
  directory next to the target step directory, fsyncs it, and renames it into place. A
  rename within one directory is atomic on POSIX file systems, and staging next to the
  target keeps it on the same volume.
- :class:`ObjectStorage` (``memory://``, ``s3://``, ``gs://`` and other fsspec URLs) has no
  rename, so it uploads the payload files first and the manifest last, with a create-only
  write where the filesystem supports one. Readers treat a step without a manifest as
  absent.
- ``hf://`` is handled by ``persistkit._hub.HubStorage``, which groups payload, manifest
  and retention deletes into one Hub commit.

Paths passed to a Storage are ``/``-joined and relative to its root.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from persistkit._layout import MANIFEST_NAME, STAGING_PREFIX
from persistkit._urls import redact_text, redact_url
from persistkit.errors import MissingDependencyError, StorageError, StoreConflictError

__all__ = ["LocalStorage", "ObjectStorage", "Storage", "open_storage"]

logger = logging.getLogger(__name__)


class Storage(abc.ABC):
    """One kind of storage under a root; paths are '/'-joined and relative to the root."""

    url: str
    """The root URL with credentials removed, safe to log."""

    commits_carry_leases = False
    """Whether writer leases ride in checkpoint commits instead of separate writes."""

    default_lease_ttl = 300.0
    """Seconds a writer lease lasts unless the store is given ``lease_ttl``."""

    @abc.abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """Return the contents of ``path``; raise FileNotFoundError when it is absent."""

    @abc.abstractmethod
    def list_dir(self, path: str) -> list[str]:
        """Return the child names of ``path`` from a fresh listing; [] when it is absent."""

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """Return whether a file or directory exists at ``path``."""

    @abc.abstractmethod
    def commit_checkpoint(
        self,
        step_path: str,
        files: Mapping[str, bytes],
        manifest_name: str,
        manifest: bytes,
        delete_paths: Sequence[str],
        *,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        """Write a step directory so that readers see all of it or none of it.

        ``delete_paths`` (retention) are removed only after the commit succeeded, or in
        the same atomic operation where the storage has one. Local and object storage
        log a failed delete as a WARNING and do not raise, because the checkpoint is
        committed by then. When the step already contains a manifest with exactly
        ``manifest``, an earlier attempt committed it: the step is left untouched and
        only ``delete_paths`` are removed. ``extra_files`` (path
        relative to the root, to contents) are written with the checkpoint; only
        storage with ``commits_carry_leases`` needs to accept them.
        """

    @abc.abstractmethod
    def delete_tree(self, path: str) -> None:
        """Remove the file or directory tree at ``path``; do nothing when it is absent."""

    def delete_many(self, paths: Sequence[str]) -> None:
        """Remove each of ``paths`` as :meth:`delete_tree` does; Hub storage commits once."""
        for path in paths:
            self.delete_tree(path)

    @abc.abstractmethod
    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Write ``data`` to ``path`` unless it exists; return False when it already existed."""

    @abc.abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path``, replacing any previous contents."""

    def close(self) -> None:  # noqa: B027 - optional hook, most storages hold nothing
        """Release connections or threads held by the storage."""


def _join(*parts: str) -> str:
    """Join path parts with single slashes, keeping a leading slash of the first part."""
    joined = "/".join(part.strip("/") for part in parts if part.strip("/"))
    return "/" + joined if parts and parts[0].startswith("/") else joined


class LocalStorage(Storage):
    """A folder on a local file system; commits by renaming a staging directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        self.url = self.root

    def _local(self, path: str) -> str:
        return os.path.join(self.root, *[part for part in path.split("/") if part])

    def read_bytes(self, path: str) -> bytes:
        with open(self._local(path), "rb") as file:
            return file.read()

    def list_dir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._local(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, path: str) -> bool:
        return os.path.exists(self._local(path))

    def commit_checkpoint(
        self,
        step_path: str,
        files: Mapping[str, bytes],
        manifest_name: str,
        manifest: bytes,
        delete_paths: Sequence[str],
        *,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        _reject_extra_files(self, extra_files)
        if _contains_bytes(self, _join(step_path, manifest_name), manifest):
            # A retry of a commit that already succeeded: replacing the step again would
            # open a window in which it is missing. Finish the retention deletes only.
            if delete_paths:
                _check_sizes(self, step_path, files, lambda path: os.path.getsize(self._local(path)))
            _delete_after_commit(self, delete_paths)
            return
        target = self._local(step_path)
        parent, name = os.path.split(target)
        os.makedirs(parent, exist_ok=True)
        staging = os.path.join(parent, f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:12]}")
        os.mkdir(staging)
        for file_name, data in files.items():
            _write_synced(os.path.join(staging, file_name), data)
        _write_synced(os.path.join(staging, manifest_name), manifest)
        _fsync_dir(staging)

        replaced = None
        if os.path.exists(target):
            # Move the old step aside under a staging name, which readers ignore, so that
            # the new directory can take its name. A crash in between loses the replaced
            # step but never exposes a partial one.
            replaced = os.path.join(parent, f"{STAGING_PREFIX}replaced-{uuid.uuid4().hex[:12]}")
            os.rename(target, replaced)
        os.rename(staging, target)
        _fsync_dir(parent)

        if replaced is not None:
            _remove_local_tree(replaced)
        if delete_paths:
            _check_sizes(self, step_path, files, lambda path: os.path.getsize(self._local(path)))
        _delete_after_commit(self, delete_paths)

    def delete_tree(self, path: str) -> None:
        target = self._local(path)
        if os.path.isdir(target) and not os.path.islink(target):
            # Rename first, so that a crash during the removal leaves a staging directory
            # that readers ignore instead of a step with some files missing.
            parent = os.path.dirname(target)
            doomed = os.path.join(parent, f"{STAGING_PREFIX}deleting-{uuid.uuid4().hex[:12]}")
            os.rename(target, doomed)
            target = doomed
        _remove_local_tree(target)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        # Write a private file first and hard-link it into place: link() fails when the
        # target exists, and the target never appears with partial contents.
        target = self._local(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = f"{os.path.dirname(target)}/{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        _write_synced(temporary, data)
        try:
            os.link(temporary, target)
        except FileExistsError:
            return False
        finally:
            os.unlink(temporary)
        _fsync_dir(os.path.dirname(target))
        return True

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self._local(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = f"{os.path.dirname(target)}/{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        _write_synced(temporary, data)
        os.replace(temporary, target)
        _fsync_dir(os.path.dirname(target))


def _reject_extra_files(storage: Storage, extra_files: Mapping[str, bytes] | None) -> None:
    if extra_files:
        raise TypeError(
            f"{type(storage).__name__} does not commit extra files with a checkpoint, got "
            f"{sorted(extra_files)}; write them with write_bytes instead"
        )


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_local_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        for entry in os.listdir(path):
            _remove_local_tree(os.path.join(path, entry))
        os.rmdir(path)
    elif os.path.lexists(path):
        os.unlink(path)


class ObjectStorage(Storage):
    """An fsspec filesystem without atomic rename; commits by writing the manifest last."""

    def __init__(self, fs: AbstractFileSystem, root: str, *, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = redact_url(url)

    def _full(self, path: str) -> str:
        return _join(self.root, path) if path else self.root

    def read_bytes(self, path: str) -> bytes:
        data = self.fs.cat_file(self._full(path))
        return bytes(data)

    def list_dir(self, path: str) -> list[str]:
        full = self._full(path)
        self.fs.invalidate_cache(full)
        try:
            entries = self.fs.ls(full, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        prefix = self.fs._strip_protocol(full).rstrip("/") + "/"
        names = set()
        for entry in entries:
            entry_path = self.fs._strip_protocol(str(entry)).rstrip("/")
            if entry_path.startswith(prefix):
                names.add(entry_path[len(prefix) :].split("/", 1)[0])
        names.discard("")
        return sorted(names)

    def exists(self, path: str) -> bool:
        full = self._full(path)
        self.fs.invalidate_cache(full)
        return bool(self.fs.exists(full))

    def commit_checkpoint(
        self,
        step_path: str,
        files: Mapping[str, bytes],
        manifest_name: str,
        manifest: bytes,
        delete_paths: Sequence[str],
        *,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        _reject_extra_files(self, extra_files)
        manifest_path = _join(step_path, manifest_name)
        if _contains_bytes(self, manifest_path, manifest):
            # A retry of a commit that already succeeded (its response was lost, or a
            # retention delete failed): the step stays as it is, committed.
            if delete_paths:
                _check_sizes(self, step_path, files, lambda path: int(self.fs.size(self._full(path))))
            _delete_after_commit(self, delete_paths)
            return
        if self.exists(manifest_path):
            # Replacing a committed step: remove its manifest first so that readers never
            # pair the old manifest with new payload files.
            self.fs.rm_file(self._full(manifest_path))
        for file_name, data in files.items():
            self.fs.pipe_file(self._full(_join(step_path, file_name)), data)
        if not self.create_exclusive(manifest_path, manifest) and not _contains_bytes(
            self, manifest_path, manifest
        ):
            raise StoreConflictError(
                f"another writer committed {step_path!r} in {self.url} at the same time; "
                "check that only one process writes this key"
            )
        if delete_paths:
            _check_sizes(self, step_path, files, lambda path: int(self.fs.size(self._full(path))))
        _delete_after_commit(self, delete_paths)

    def delete_tree(self, path: str) -> None:
        full = self._full(path)
        self.fs.invalidate_cache(full)
        # Remove a step's manifest before its payload, so that a crash during the
        # removal leaves an uncommitted step rather than a committed one with files missing.
        manifest = _join(full, MANIFEST_NAME)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isfile(manifest):
                self.fs.rm_file(manifest)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(full, recursive=True)
        # S3 stores with a directory tree behind them (SeaweedFS) keep listing an emptied
        # prefix until its "dir/" key is deleted too; elsewhere that key does not exist.
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(full.rstrip("/") + "/")

    def create_exclusive(self, path: str, data: bytes) -> bool:
        full = self._full(path)
        try:
            self.fs.pipe_file(full, data, mode="create")
        except FileExistsError:
            return False
        except TypeError:
            # NOTE: a filesystem whose pipe_file has no ``mode`` argument gets a check and
            # a write, which two writers racing within one request time can both pass.
            if self.exists(path):
                return False
            self.fs.pipe_file(full, data)
        except (ConnectionError, TimeoutError):
            raise
        except OSError:
            # Some S3-compatible stores (SeaweedFS) reject a second create-only write with
            # EINVAL instead of 412. An object at the path then means "already existed".
            if self.exists(path):
                return False
            raise
        return True

    def write_bytes(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(self._full(path), data)


def _contains_bytes(storage: Storage, path: str, data: bytes) -> bool:
    """Return whether ``path`` contains exactly ``data``.

    A manifest with the bytes that this commit would write means that an earlier attempt
    of the same commit succeeded even if its response was lost: the store builds the
    manifest once per save, with the writer id and creation time in it.
    """
    try:
        return storage.read_bytes(path) == data
    except FileNotFoundError:
        return False


def _delete_after_commit(storage: Storage, delete_paths: Sequence[str]) -> None:
    """Delete the steps that retention dropped; log a WARNING for each that fails.

    The checkpoint is committed by now, so a failed delete must not fail the save. The
    step stays committed, and the store drops it on the key's next save, because it
    computes retention from the steps that are stored.
    """
    for path in delete_paths:
        try:
            storage.delete_tree(path)
        except OSError as exc:
            logger.warning(
                "Retention could not delete %s in %s: %s. The next save of that key "
                "tries again",
                path,
                storage.url,
                redact_text(f"{type(exc).__name__}: {exc}"),
            )


def _check_sizes(
    storage: Storage, step_path: str, files: Mapping[str, bytes], size_of: Callable[[str], int]
) -> None:
    """Raise StorageError unless every file of a new step has the size that was written.

    Retention deletes older steps only after this check, so a write that the storage
    silently truncated never leaves the truncated step as the only one.
    """
    for name, data in files.items():
        stored = size_of(_join(step_path, name))
        if stored != len(data):
            raise StorageError(
                f"file {name!r} of {step_path!r} in {storage.url} has {stored} bytes after "
                f"the commit, {len(data)} were written; retention deleted nothing"
            )


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://") or url.startswith("local://")


def open_storage(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    filesystem: AbstractFileSystem | None = None,
) -> Storage:
    """Return the Storage for ``url``, choosing the commit strategy by its kind.

    Args:
        url: A local path, ``file://`` URL, ``hf://`` URL or any fsspec URL.
        storage_options: Keyword arguments for the fsspec filesystem (or HubStorage).
        filesystem: An fsspec filesystem instance to use instead of resolving the URL's
            protocol; ``url`` is then the root path inside it.

    Raises:
        MissingDependencyError: The URL needs an optional package that is not installed.
        StorageError: The URL's protocol is unknown to fsspec.
    """
    options = dict(storage_options or {})
    if filesystem is not None:
        root = filesystem._strip_protocol(url)
        return ObjectStorage(filesystem, str(root), url=url)
    if url.startswith("hf://"):
        return _open_hub_storage(url, options)
    if _is_local(url):
        return LocalStorage(fsspec.core.strip_protocol(url) if "://" in url else url)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise MissingDependencyError(
            f"cannot open {redact_url(url)}: {redact_text(str(exc))}. Install the extra "
            "for this protocol, for example pip install 'persistkit[s3]' or 'persistkit[gcs]'"
        ) from exc
    except ValueError as exc:
        raise StorageError(
            f"cannot open {redact_url(url)}: {redact_text(str(exc))}. Use a local path or "
            "an fsspec URL such as memory://run, s3://bucket/prefix or gs://bucket/prefix"
        ) from exc
    return ObjectStorage(fs, root, url=url)


def _open_hub_storage(url: str, options: dict[str, Any]) -> Storage:
    try:
        from persistkit._hub import HubStorage  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        if isinstance(exc, MissingDependencyError) or exc.name not in (None, "persistkit._hub"):
            raise
        raise MissingDependencyError(
            f"cannot open {redact_url(url)}: this persistkit build has no Hugging Face Hub "
            "backend (module persistkit._hub is missing); use a local path, memory://, "
            "s3:// or gs:// instead"
        ) from exc
    storage: Storage = HubStorage(url, storage_options=options)
    return storage

"""In-memory repositories behind :mod:`persistkit.testing.hub_server`.

Each repository is a linear chain of commits on one branch, ``main``. A commit contains a
full snapshot of the tree (path -> :class:`BlobEntry`), so any commit of the chain can be
read back by its id. Blob contents are stored once, keyed by their git blob id; LFS
objects are keyed by their SHA-256. Every method here runs under the server's lock.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field

DEFAULT_BRANCH = "main"
LFS_POINTER_SIZE = 134  # Size of a git LFS pointer file for a SHA-256 oid and a short size.


class HubRequestError(Exception):
    """A request that the server rejects with an HTTP error status and ``X-Error-Code``."""

    def __init__(self, status: int, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers: dict[str, str] = {}
        self.body: dict[str, str] = {}


def git_blob_id(data: bytes) -> str:
    """Return the git object id (SHA-1 of ``blob <size>\\0<data>``) of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class BlobEntry:
    """One file of a tree: its git blob id, its size and, for LFS files, its SHA-256."""

    blob_id: str
    size: int
    lfs_sha256: str | None = None


@dataclass(frozen=True)
class Commit:
    """One commit of a repository's ``main`` branch."""

    commit_id: str
    parent_id: str | None
    title: str
    message: str
    created_at: float
    tree: dict[str, BlobEntry]


@dataclass
class Repository:
    """A Hub repository: its commit chain on ``main``, its blobs and its LFS objects."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: float
    commits: list[Commit] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    commit_times: deque[float] = field(default_factory=deque)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def resolve(self, revision: str) -> Commit:
        """Return the commit named by ``revision``: ``main`` or a full commit id."""
        if revision == DEFAULT_BRANCH:
            return self.head
        for commit in self.commits:
            if commit.commit_id == revision:
                return commit
        raise HubRequestError(
            404, f"Invalid rev id: {revision}", error_code="RevisionNotFound"
        )

    def read(self, entry: BlobEntry) -> bytes:
        if entry.lfs_sha256 is not None:
            return self.lfs_objects[entry.lfs_sha256]
        return self.blobs[entry.blob_id]

    def add_commit(self, title: str, message: str, tree: dict[str, BlobEntry]) -> Commit:
        """Append a commit with ``tree`` on top of the current head and return it."""
        parent_id = self.commits[-1].commit_id if self.commits else None
        now = time.time()
        seed = f"{self.repo_type}/{self.repo_id}\n{parent_id}\n{len(self.commits)}\n{now}\n{title}"
        commit_id = hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()
        commit = Commit(commit_id, parent_id, title, message, now, tree)
        self.commits.append(commit)
        return commit


def list_children(tree: dict[str, BlobEntry], folder: str) -> tuple[list[str], list[str]]:
    """Return the immediate (files, folders) of ``folder`` in ``tree``, as full paths.

    Raises:
        HubRequestError: 404 ``EntryNotFound`` when ``folder`` is neither the root nor a folder.
    """
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    files: set[str] = set()
    folders: set[str] = set()
    for path in tree:
        if not path.startswith(prefix):
            continue
        head, sep, _ = path[len(prefix) :].partition("/")
        (folders if sep else files).add(prefix + head)
    if prefix and not files and not folders:
        raise HubRequestError(
            404, f"{folder} does not exist on {DEFAULT_BRANCH}", error_code="EntryNotFound"
        )
    return sorted(files), sorted(folders)


def is_folder(tree: dict[str, BlobEntry], path: str) -> bool:
    """Return whether ``path`` names a folder (a prefix of at least one file) in ``tree``."""
    prefix = path.strip("/") + "/"
    return any(name.startswith(prefix) for name in tree)


def folder_id(tree: dict[str, BlobEntry], path: str) -> str:
    """Return a stable id for the folder ``path``, derived from the entries below it."""
    prefix = path.strip("/") + "/"
    digest = hashlib.sha1(usedforsecurity=False)
    for name in sorted(tree):
        if name.startswith(prefix):
            digest.update(f"{name}\0{tree[name].blob_id}\n".encode())
    return digest.hexdigest()

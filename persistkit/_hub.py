"""Hugging Face Hub storage: one Hub commit per checkpoint.

Writing through ``HfFileSystem`` makes one commit per file, and the Hub limits commits per
repository per hour. :class:`HubStorage` instead sends each checkpoint (payload files,
manifest and the retention deletes it causes) as a single ``create_commit``, so a
checkpoint is visible completely or not at all, and it paces its commits with a
:class:`~persistkit._hub_budget.CommitBudget` kept in the repository.

URLs name a repository and an optional folder inside it::

    hf://datasets/<namespace>/<repo>[/<folder>...]
    hf://spaces/<namespace>/<repo>[/<folder>...]
    hf://<namespace>/<repo>[/<folder>...]            a model repository

Every commit names its parent commit. When another writer committed in between, the Hub
answers 412; HubStorage then reads the new head and retries only when the folder the
commit writes into is unchanged between the two heads, and raises
:class:`~persistkit.errors.StoreConflictError` otherwise. Across commits, the store's
writer lease (checked before each commit) keeps two writers off the same key.

The token comes from ``HF_TOKEN`` or the huggingface_hub login; storage options never
carry it, because they may end up in logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from persistkit._compat import import_optional
from persistkit._hub_budget import BUDGET_LEDGER_PATH, CommitBudget, CommitLedger
from persistkit._storage import Storage
from persistkit._urls import redact_text, redact_url
from persistkit.errors import StorageError, StoreConflictError

__all__ = ["HubLocation", "HubOptions", "HubStorage", "parse_hub_url"]

logger = logging.getLogger(__name__)

_REPO_TYPE_PREFIXES = {"datasets": "dataset", "spaces": "space", "models": "model"}
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class HubLocation:
    """A folder inside a Hub repository, parsed from an ``hf://`` URL."""

    repo_type: str
    repo_id: str
    folder: str

    def path_in_repo(self, path: str) -> str:
        return "/".join(part for part in (self.folder, path.strip("/")) if part)


def parse_hub_url(url: str) -> HubLocation:
    """Parse ``hf://[datasets/|spaces/|models/]<namespace>/<repo>[/<folder>]``.

    Raises:
        ValueError: The URL has no namespace and repository name, or names a revision.
    """
    if not url.startswith("hf://"):
        raise ValueError(f"expected an hf:// URL, got {redact_url(url)!r}")
    parts = [part for part in url[len("hf://") :].split("/") if part]
    repo_type = "model"
    if parts and parts[0] in _REPO_TYPE_PREFIXES:
        repo_type = _REPO_TYPE_PREFIXES[parts.pop(0)]
    if len(parts) < 2:
        raise ValueError(
            f"invalid Hub URL {redact_url(url)!r}: expected "
            "hf://datasets/<namespace>/<repo>/<folder> or hf://<namespace>/<repo>/<folder>"
        )
    if "@" in parts[1]:
        raise ValueError(
            f"invalid Hub URL {redact_url(url)!r}: revisions are not supported, "
            "checkpoints are always committed to the main branch; remove '@...'"
        )
    return HubLocation(repo_type, f"{parts[0]}/{parts[1]}", "/".join(parts[2:]))


@dataclass(frozen=True)
class HubOptions:
    """Storage options of an ``hf://`` store.

    Attributes:
        endpoint: Hub base URL; None uses huggingface_hub's default (``HF_ENDPOINT``).
        max_commits: Commits per ``commit_window_s`` that persistkit allows itself per
            repository. The Hub's limit is not published; users report 429 responses
            beyond about 128 per hour, so the default leaves room for other tools.
        commit_window_s: Length of the budget window in seconds.
        private: Visibility of a repository that persistkit creates.
        max_wait_s: Longest single wait for the budget or a 429 retry hint, in seconds.
        max_attempts: Commit attempts after 429, 412 or server errors before giving up.
    """

    endpoint: str | None = None
    max_commits: int = 100
    commit_window_s: float = 3600.0
    private: bool = True
    max_wait_s: float = 3600.0
    max_attempts: int = 20

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> HubOptions:
        """Build options from ``storage_options``, rejecting unknown keys and tokens.

        Raises:
            ValueError: An option is unknown, is a token, or has an invalid value.
        """
        options = dict(options or {})
        if "token" in options:
            raise ValueError(
                "storage_options for hf:// do not take 'token', because options may be "
                "logged; set the HF_TOKEN environment variable or run 'hf auth login'"
            )
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown storage_options for hf://: {unknown}; expected some of {sorted(known)}"
            )
        return cls(**options)

    def __post_init__(self) -> None:
        CommitBudget(self.max_commits, self.commit_window_s)  # validates both
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        if not self.max_wait_s > 0:
            raise ValueError(f"max_wait_s must be > 0 seconds, got {self.max_wait_s!r}")

    @property
    def budget(self) -> CommitBudget:
        return CommitBudget(self.max_commits, self.commit_window_s)


class HubStorage(Storage):
    """A folder of a Hub repository; commits each checkpoint as one Hub commit.

    Args:
        url: ``hf://`` URL of the folder; see :func:`parse_hub_url`.
        storage_options: Keys of :class:`HubOptions`.

    Attributes:
        commits_made: Commits this object created, for measurements.
    """

    def __init__(self, url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
        self.location = parse_hub_url(url)
        self.options = HubOptions.from_mapping(storage_options)
        self.url = redact_url(url)
        self._hub = import_optional("huggingface_hub", "hf")
        self._api = self._hub.HfApi(endpoint=self.options.endpoint, library_name="persistkit")
        self._lock = threading.RLock()
        self._head: str | None = None
        self._ledger = CommitLedger()
        self._clock: Callable[[], float] = time.time
        self._sleep: Callable[[float], None] = time.sleep
        self.commits_made = 0

    def __repr__(self) -> str:
        return f"HubStorage({self.url!r})"

    # -- reading ----------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        full = self.location.path_in_repo(path)
        try:
            return self._read_repo_file(full, "main")
        except FileNotFoundError:
            raise FileNotFoundError(f"{full!r} not found in {self.url}") from None

    def list_dir(self, path: str) -> list[str]:
        full = self.location.path_in_repo(path)
        try:
            entries = list(
                self._api.list_repo_tree(
                    self.location.repo_id, full or None, repo_type=self.location.repo_type
                )
            )
        except self._hub.utils.HfHubHTTPError as error:
            if _status(error) == 404:
                return []
            raise self._storage_error(f"listing {full!r}", error) from error
        return sorted(entry.path.rsplit("/", 1)[-1] for entry in entries)

    def exists(self, path: str) -> bool:
        return bool(self._paths_info([self.location.path_in_repo(path)], "main"))

    def _paths_info(self, paths: list[str], revision: str) -> dict[str, Any]:
        """Return path -> RepoFile or RepoFolder for the paths that exist at ``revision``."""
        try:
            infos = self._api.get_paths_info(
                self.location.repo_id, paths, repo_type=self.location.repo_type, revision=revision
            )
        except self._hub.utils.HfHubHTTPError as error:
            if _status(error) == 404:
                return {}
            raise self._storage_error(f"reading the state of {paths}", error) from error
        return {info.path: info for info in infos}

    # -- writing ----------------------------------------------------------------------

    def commit_checkpoint(
        self,
        step_path: str,
        files: Mapping[str, bytes],
        manifest_name: str,
        manifest: bytes,
        delete_paths: Sequence[str],
    ) -> None:
        hub = self._hub
        step_full = self.location.path_in_repo(step_path)
        additions = [hub.CommitOperationAdd(f"{step_full}/{name}", data) for name, data in files.items()]
        # The manifest goes last, as on object stores; in one commit the order only
        # matters for readers of the NDJSON.
        additions.append(hub.CommitOperationAdd(f"{step_full}/{manifest_name}", manifest))
        delete_full = [self.location.path_in_repo(path) for path in delete_paths]
        fence = step_full.rsplit("/", 1)[0] if "/" in step_full else ""

        def operations(head: str) -> list[Any]:
            existing = self._paths_info(delete_full, head) if delete_full else {}
            deletions = [
                hub.CommitOperationDelete(path, is_folder=isinstance(info, hub.hf_api.RepoFolder))
                for path, info in existing.items()
            ]
            return [*additions, *deletions]

        self._commit(operations, f"persistkit: checkpoint {step_full}", fence=fence)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        full = self.location.path_in_repo(path)

        def operations(head: str) -> list[Any] | None:
            if self._paths_info([full], head):
                return None
            return [self._hub.CommitOperationAdd(full, data)]

        return self._commit(operations, f"persistkit: create {full}", fence=None)

    def write_bytes(self, path: str, data: bytes) -> None:
        full = self.location.path_in_repo(path)
        operation = self._hub.CommitOperationAdd(full, data)
        self._commit(lambda head: [operation], f"persistkit: write {full}", fence=full)

    def delete_tree(self, path: str) -> None:
        full = self.location.path_in_repo(path)

        def operations(head: str) -> list[Any] | None:
            info = self._paths_info([full], head).get(full)
            if info is None:
                return None
            is_folder = isinstance(info, self._hub.hf_api.RepoFolder)
            return [self._hub.CommitOperationDelete(full, is_folder=is_folder)]

        self._commit(operations, f"persistkit: delete {full}", fence=full)

    # -- commits ----------------------------------------------------------------------

    def _commit(
        self,
        build: Callable[[str], list[Any] | None],
        message: str,
        *,
        fence: str | None,
    ) -> bool:
        """Commit the operations ``build(head)`` returns, within the budget and fenced.

        ``build`` runs again after each 412, against the new head; when it returns None
        nothing is committed and this returns False. ``fence`` is a path whose content
        must not change between the parent commit and a new head for a retry to go on.

        Raises:
            StoreConflictError: Another writer changed ``fence`` concurrently.
            StorageError: The commit failed after ``max_attempts`` attempts.
        """
        with self._lock:
            head = self._head or self._refresh_head()
            for attempt in range(1, self.options.max_attempts + 1):
                operations = build(head)
                if operations is None:
                    return False
                self._wait_for_budget()
                try:
                    self._send_commit(operations, message, head)
                    return True
                except self._hub.utils.HfHubHTTPError as error:
                    head = self._handle_commit_error(error, message, head, fence, attempt)
            raise StorageError(
                f"{message} in {self.url} failed after {self.options.max_attempts} attempts "
                "(rate limits or concurrent commits); try again later"
            )

    def _send_commit(self, operations: list[Any], message: str, head: str) -> None:
        budget = self.options.budget
        ledger = self._ledger.recorded(budget, self._clock())
        ledger_operation = self._hub.CommitOperationAdd(BUDGET_LEDGER_PATH, ledger.serialize())
        info = self._api.create_commit(
            self.location.repo_id,
            [*operations, ledger_operation],
            commit_message=message,
            repo_type=self.location.repo_type,
            parent_commit=head,
        )
        # Count the commit from the moment it returned: the server counts it from when
        # it arrived, so this errs on the side of waiting longer.
        self._ledger = self._ledger.recorded(budget, self._clock())
        self._head = info.oid
        self.commits_made += 1
        logger.debug("%s: commit %s in %s", message, info.oid, self.url)

    def _handle_commit_error(
        self, error: Exception, message: str, head: str, fence: str | None, attempt: int
    ) -> str:
        """Wait or refresh after a failed commit and return the head to retry on."""
        status = _status(error)
        if status == 412:
            new_head = self._refresh_head()
            if fence is not None and self._changed(fence, head, new_head):
                raise StoreConflictError(
                    f"another writer changed {fence!r} in {self.url} between commits "
                    f"{head[:12]} and {new_head[:12]}; make sure only one process writes "
                    "this key, or use separate keys per writer"
                ) from error
            logger.info("%s: the head of %s moved to %s; retrying", message, self.url, new_head[:12])
            return new_head
        if status == 429:
            wait_s = min(_retry_after(error) or 2.0**attempt, self.options.max_wait_s)
            logger.warning(
                "%s: %s rate-limited the commit (429); retrying in %.1f s (attempt %d of %d)",
                message,
                self.url,
                wait_s,
                attempt,
                self.options.max_attempts,
            )
            self._sleep(wait_s)
            return self._refresh_head()
        if status in _TRANSIENT_STATUSES and attempt < self.options.max_attempts:
            wait_s = min(2.0 ** (attempt - 1), 30.0)
            logger.warning("%s: server error %s from %s; retrying in %.1f s", message, status, self.url, wait_s)
            self._sleep(wait_s)
            return self._refresh_head()
        raise self._storage_error(message, error) from error

    def _changed(self, path: str, old_head: str, new_head: str) -> bool:
        before = self._paths_info([path], old_head).get(path)
        after = self._paths_info([path], new_head).get(path)
        return _object_id(before) != _object_id(after)

    def _wait_for_budget(self) -> None:
        wait_s = self._ledger.wait_s(self.options.budget, self._clock())
        if wait_s <= 0:
            return
        if wait_s > self.options.max_wait_s:
            raise StorageError(
                f"the commit budget of {self.url} ({self.options.max_commits} commits per "
                f"{self.options.commit_window_s:g} s) frees a slot in {wait_s:.0f} s, more "
                f"than max_wait_s={self.options.max_wait_s:g}; raise max_commits or save less often"
            )
        logger.info(
            "Commit budget of %s used (%d per %g s); waiting %.1f s",
            self.url,
            self.options.max_commits,
            self.options.commit_window_s,
            wait_s,
        )
        self._sleep(wait_s)

    def _refresh_head(self) -> str:
        """Read the head commit and the budget ledger; create the repository if missing."""
        hub = self._hub
        try:
            info = self._api.repo_info(self.location.repo_id, repo_type=self.location.repo_type)
        except hub.utils.RepositoryNotFoundError:
            self._create_repository()
            info = self._api.repo_info(self.location.repo_id, repo_type=self.location.repo_type)
        except hub.utils.HfHubHTTPError as error:
            raise self._storage_error("reading the repository head", error) from error
        self._head = str(info.sha)
        try:
            self._ledger = CommitLedger.parse(self._read_repo_file(BUDGET_LEDGER_PATH, self._head))
        except FileNotFoundError:
            self._ledger = CommitLedger()
        return self._head

    def _create_repository(self) -> None:
        logger.info(
            "Creating %s %s repository %s on the Hub",
            "private" if self.options.private else "public",
            self.location.repo_type,
            self.location.repo_id,
        )
        try:
            self._api.create_repo(
                self.location.repo_id,
                repo_type=self.location.repo_type,
                private=self.options.private,
                exist_ok=True,
            )
        except self._hub.utils.HfHubHTTPError as error:
            raise self._storage_error("creating the repository", error) from error

    def _read_repo_file(self, path_in_repo: str, revision: str) -> bytes:
        url = self._hub.hf_hub_url(
            self.location.repo_id,
            path_in_repo,
            repo_type=self.location.repo_type,
            revision=revision,
            endpoint=self._api.endpoint,
        )
        utils = self._hub.utils
        headers = utils.build_hf_headers(library_name="persistkit")
        response = utils.get_session().get(url, headers=headers, follow_redirects=True)
        if response.status_code == 404:
            raise FileNotFoundError(path_in_repo)
        try:
            utils.hf_raise_for_status(response)
        except utils.HfHubHTTPError as error:
            raise self._storage_error(f"reading {path_in_repo!r}", error) from error
        return bytes(response.content)

    def _storage_error(self, action: str, error: Exception) -> StorageError:
        status = _status(error)
        detail = redact_text(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        return StorageError(f"{action} in {self.url} failed (HTTP {status}): {detail}")


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(error: Exception) -> float | None:
    """Return the server's retry hint in seconds from ``Retry-After`` or ``RateLimit``."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    ratelimit = headers.get("RateLimit") or ""
    for part in ratelimit.split(";"):
        name, _, number = part.strip().partition("=")
        if name == "t" and number.isdigit():
            return float(number)
    return None


def _object_id(info: Any) -> str | None:
    if info is None:
        return None
    return getattr(info, "blob_id", None) or getattr(info, "tree_id", None)

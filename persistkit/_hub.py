"""Hugging Face Hub storage: one Hub commit per checkpoint.

Writing through ``HfFileSystem`` makes one commit per file, and the Hub limits commits per
repository per hour. :class:`HubStorage` instead sends each checkpoint (payload files,
manifest and the retention deletes it causes) as a single ``create_commit``, so a
checkpoint is visible completely or not at all, and it paces its commits with a
:class:`~persistkit._hub_budget.CommitBudget` kept in the repository. A commit call
waits while the budget is used up. Meanwhile the store's background uploader replaces
queued snapshots of a key with newer ones, so checkpoints that arrive faster than the
budget allows are coalesced rather than queued without bound.

NOTE: the store's writer leases also cost commits: one to acquire a key, one to release
it, and one renewal per held key every half lease TTL. With many keys (one per Optuna
trial, say) they can use more of the budget than the checkpoints do.

URLs and storage options are parsed in :mod:`persistkit._hub_options`.

Every commit names its parent commit. When another writer committed in between, the Hub
responds with 412; HubStorage then reads the new head and retries only when the folder the
commit writes into is unchanged between the two heads, and raises
:class:`~persistkit.errors.StoreConflictError` otherwise. Across commits, the store's
writer lease (checked before each commit) keeps two writers off the same key.

The token comes from ``HF_TOKEN`` or the huggingface_hub login; storage options never
carry it, because they may end up in logs.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from persistkit._compat import import_optional
from persistkit._hub_budget import BUDGET_LEDGER_PATH, CommitLedger
from persistkit._hub_options import HubLocation, HubOptions, parse_hub_url
from persistkit._storage import Storage
from persistkit._urls import redact_text, redact_url
from persistkit.errors import StorageError, StoreConflictError

__all__ = ["HubLocation", "HubOptions", "HubStorage", "parse_hub_url"]

logger = logging.getLogger(__name__)

_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


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
        self._utils = import_optional("huggingface_hub.utils", "hf")
        self._folder_type = import_optional("huggingface_hub.hf_api", "hf").RepoFolder
        self._transport_errors = _transport_error_types()
        self._sent_ledger: bytes | None = None
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
        except self._utils.HfHubHTTPError as error:
            if _status(error) == 404:
                return []
            raise self._storage_error(f"listing {full!r}", error) from error
        except self._transport_errors as error:
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
        except self._utils.HfHubHTTPError as error:
            if _status(error) == 404:
                return {}
            raise self._storage_error(f"reading the state of {paths}", error) from error
        except self._transport_errors as error:
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
        # The manifest goes last, as on object stores; in one commit the order only
        # matters for readers of the NDJSON.
        contents = {f"{step_full}/{name}": data for name, data in files.items()}
        contents[f"{step_full}/{manifest_name}"] = manifest
        delete_full = [self.location.path_in_repo(path) for path in delete_paths]
        fence = step_full.rsplit("/", 1)[0] if "/" in step_full else ""

        def operations(head: str) -> list[Any]:
            # Fresh operations per attempt: huggingface_hub caches on each operation
            # whether the file already exists upstream, which a retry must not reuse.
            additions = [hub.CommitOperationAdd(path, data) for path, data in contents.items()]
            existing = self._paths_info(delete_full, head) if delete_full else {}
            deletions = [
                hub.CommitOperationDelete(path, is_folder=isinstance(info, self._folder_type))
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
        self._commit(
            lambda head: [self._hub.CommitOperationAdd(full, data)], f"persistkit: write {full}", fence=full
        )

    def delete_tree(self, path: str) -> None:
        full = self.location.path_in_repo(path)

        def operations(head: str) -> list[Any] | None:
            info = self._paths_info([full], head).get(full)
            if info is None:
                return None
            is_folder = isinstance(info, self._folder_type)
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
                except self._utils.HfHubHTTPError as error:
                    head = self._handle_commit_error(error, message, head, fence, attempt)
                except self._transport_errors as error:
                    # The connection failed, possibly after the Hub applied the commit.
                    if self._sent_commit_landed():
                        logger.info("%s: the response was lost but the commit is in %s", message, self.url)
                        return True
                    raise self._storage_error(message, error) from error
            raise StorageError(
                f"{message} in {self.url} failed after {self.options.max_attempts} attempts "
                "(rate limits or concurrent commits); try again later"
            )

    def _send_commit(self, operations: list[Any], message: str, head: str) -> None:
        budget = self.options.budget
        ledger = self._ledger.recorded(budget, self._clock())
        # The ledger names the time of this attempt, so it identifies the commit if the
        # response gets lost.
        self._sent_ledger = ledger.serialize()
        ledger_operation = self._hub.CommitOperationAdd(BUDGET_LEDGER_PATH, self._sent_ledger)
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

    def _sent_commit_landed(self) -> bool:
        """Return whether the last commit sent is the head, judged by its ledger file."""
        sent = self._sent_ledger
        self._refresh_head()
        if sent is None or self._head is None:
            return False
        info = self._paths_info([BUDGET_LEDGER_PATH], self._head).get(BUDGET_LEDGER_PATH)
        landed = info is not None and info.blob_id == _git_blob_id(sent)
        if landed:
            self.commits_made += 1
        return landed

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
        try:
            info = self._api.repo_info(self.location.repo_id, repo_type=self.location.repo_type)
        except self._utils.RepositoryNotFoundError:
            self._create_repository()
            info = self._api.repo_info(self.location.repo_id, repo_type=self.location.repo_type)
        except (self._utils.HfHubHTTPError, *self._transport_errors) as error:
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
                # A Space needs an SDK; "static" serves files and runs no code.
                space_sdk="static" if self.location.repo_type == "space" else None,
            )
        except (self._utils.HfHubHTTPError, *self._transport_errors) as error:
            raise self._storage_error("creating the repository", error) from error

    def _read_repo_file(self, path_in_repo: str, revision: str) -> bytes:
        url = self._hub.hf_hub_url(
            self.location.repo_id,
            path_in_repo,
            repo_type=self.location.repo_type,
            revision=revision,
            endpoint=self._api.endpoint,
        )
        utils = self._utils
        headers = utils.build_hf_headers(library_name="persistkit")
        try:
            response = utils.get_session().get(url, headers=headers, follow_redirects=True)
        except self._transport_errors as error:
            raise self._storage_error(f"reading {path_in_repo!r}", error) from error
        if response.status_code == 404:
            raise FileNotFoundError(path_in_repo)
        try:
            utils.hf_raise_for_status(response)
        except utils.HfHubHTTPError as error:
            raise self._storage_error(f"reading {path_in_repo!r}", error) from error
        return bytes(response.content)

    def _storage_error(self, action: str, error: Exception) -> StorageError:
        status = _status(error)
        reason = f"HTTP {status}" if status is not None else type(error).__name__
        text = str(error).strip()
        detail = redact_text(text.splitlines()[0]) if text else "no details"
        return StorageError(f"{action} in {self.url} failed ({reason}): {detail}")


def _transport_error_types() -> tuple[type[Exception], ...]:
    """Return the connection error base classes of the HTTP library huggingface_hub uses."""
    # huggingface_hub 2.x uses httpx2, 1.x httpx and 0.x requests; none of their
    # connection errors derive from OSError, which the store treats as retryable.
    for module_name, class_name in (("httpx2", "TransportError"), ("httpx", "TransportError")):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return (getattr(module, class_name),)
    requests = import_optional("requests", "hf")
    return (requests.RequestException,)


def _git_blob_id(data: bytes) -> str:
    """Return the git object id of a file with contents ``data``, as Hub listings show it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


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

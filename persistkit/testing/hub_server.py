"""A Hugging Face Hub compatible HTTP server for tests, built on the standard library.

No Hub server can run outside huggingface.co, so this one implements the part of the Hub
HTTP API that ``huggingface_hub`` uses to create repositories, commit files and read them
back. Point a client at it with ``endpoint=server.endpoint``::

    with HubTestServer(commit_quota=20, quota_window_s=3.0) as server:
        api = huggingface_hub.HfApi(endpoint=server.endpoint, token="test")
        api.create_repo("user/repo", repo_type="dataset", private=True)

Routes (``{t}`` is ``model``, ``dataset`` or ``space``; ``{p}`` is the URL prefix of the
repository type: empty for models, ``datasets/`` or ``spaces/``)::

    POST   /api/repos/create                       create (409 when it exists)
    DELETE /api/repos/delete                       delete
    GET    /api/whoami-v2                          the configured user
    GET    /api/{t}s/{repo}[/revision/{rev}]       repo info: sha, private, siblings
    POST   /api/{t}s/{repo}/preupload/{rev}        uploadMode per file (see lfs_threshold)
    POST   /api/{t}s/{repo}/commit/{rev}           NDJSON: header, file, lfsFile,
                                                   deletedFile, deletedFolder
    GET    /api/{t}s/{repo}/tree/{rev}[/{path}]    listing, ?recursive=true
    POST   /api/{t}s/{repo}/paths-info/{rev}       form field ``paths``, repeated
    GET    /api/{t}s/{repo}/commits/{rev}          newest first
    HEAD   /{p}{repo}/resolve/{rev}/{path}         X-Repo-Commit, ETag, Content-Length
    GET    /{p}{repo}/resolve/{rev}/{path}         the same, with Range support
    POST   /{p}{repo}.git/info/lfs/objects/batch   git LFS batch API, basic transfer
    PUT    /_lfs/{t}/{repo}/{oid}                  upload target given by the batch API

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``)
as the Hub does, so the client raises its usual exceptions. A commit whose
``parentCommit`` is not the branch head gets 412. With ``commit_quota`` set, a repository
accepts that many commits per ``quota_window_s`` seconds, in a sliding window (the Hub's
limit is per hour). Beyond that it responds with 429 and ``Retry-After`` and ``RateLimit``
headers.

Not served: Xet storage, branches other than ``main``, tags, pull requests, pagination
(every listing fits in one page), and permissions beyond one optional bearer token. Set
``HF_HUB_DISABLE_XET=1`` in the client, or leave ``lfs_threshold`` at None so that every
file is committed inline as ``uploadMode: "regular"``.

The protocol was written against huggingface_hub 2.4.0; :data:`HUGGINGFACE_HUB_VERSIONS`
is the range of client versions it is tested with.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from http.server import ThreadingHTTPServer

from persistkit.testing._hub_handler import _HubRequestHandler
from persistkit.testing._hub_repos import HubRequestError, Repository

__all__ = ["HUGGINGFACE_HUB_VERSIONS", "HubServerStats", "HubTestServer", "client_version_supported"]

logger = logging.getLogger(__name__)

HUGGINGFACE_HUB_VERSIONS = (">=2.4", "<3")
"""Range of huggingface_hub versions whose requests this server handles correctly."""

def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def client_version_supported(version: str | None = None) -> bool:
    """Return whether ``version`` (default: the installed huggingface_hub) is in the tested range."""
    if version is None:
        import huggingface_hub

        version = huggingface_hub.__version__
    lower, upper = (_parse_version(bound) for bound in HUGGINGFACE_HUB_VERSIONS)
    return lower <= _parse_version(version) < upper


class HubServerStats:
    """Counters of what the server accepted and rejected, for assertions in tests."""

    def __init__(self) -> None:
        self.commits = 0
        self.rejected_rate_limit = 0
        self.rejected_stale_parent = 0
        self.requests = 0


class HubTestServer:
    """An in-memory Hub on ``127.0.0.1``, served from a background thread.

    Args:
        port: TCP port; 0 picks a free one.
        commit_quota: Commits a repository accepts per ``quota_window_s``; None for no limit.
        quota_window_s: Length of the quota window in seconds (a simulated hour in tests).
        lfs_threshold: Files of at least this many bytes get ``uploadMode: "lfs"`` and go
            through the LFS batch API; None commits every file inline.
        token: When set, every request must send ``Authorization: Bearer <token>``.
        user: Name returned by whoami and used as the namespace of repositories created
            without one.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        commit_quota: int | None = None,
        quota_window_s: float = 3600.0,
        lfs_threshold: int | None = None,
        token: str | None = None,
        user: str = "persistkit-test",
    ) -> None:
        if commit_quota is not None and commit_quota < 1:
            raise ValueError(f"commit_quota must be None or >= 1, got {commit_quota!r}")
        if quota_window_s <= 0:
            raise ValueError(f"quota_window_s must be > 0, got {quota_window_s!r}")
        self.commit_quota = commit_quota
        self.quota_window_s = quota_window_s
        self.lfs_threshold = lfs_threshold
        self.token = token
        self.user = user
        self.stats = HubServerStats()
        # Commits still to be applied with their response lost: the server closes the
        # connection instead of responding, as when an acknowledgement gets lost.
        self.drop_commit_responses = 0
        self.lock = threading.Lock()
        self.repositories: dict[tuple[str, str], Repository] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _HubRequestHandler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        """Base URL to pass as ``endpoint=`` to huggingface_hub."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubTestServer:
        """Start serving in a daemon thread and return self."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"hub-test-server-{self.port}", daemon=True
        )
        self._thread.start()
        logger.info("Hub test server listening on %s", self.endpoint)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        logger.info("Hub test server on %s stopped", self.endpoint)

    def __enter__(self) -> HubTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def commit_count(self, repo_id: str, *, repo_type: str = "model") -> int:
        """Return the number of commits in ``repo_id`` after the initial one."""
        with self.lock:
            repo = self.repositories.get((repo_type, repo_id))
            return 0 if repo is None else len(repo.commits) - 1

    def commit_titles(self, repo_id: str, *, repo_type: str = "model") -> list[str]:
        """Return the titles of the commits of ``repo_id``, oldest first."""
        with self.lock:
            return [commit.title for commit in self.get_repository(repo_type, repo_id).commits]

    def get_repository(self, repo_type: str, repo_id: str) -> Repository:
        repo = self.repositories.get((repo_type, repo_id))
        if repo is None:
            raise HubRequestError(
                404, f"Repository not found: {repo_type} {repo_id}", error_code="RepoNotFound"
            )
        return repo

    def check_quota(self, repo: Repository) -> None:
        """Raise 429 when ``repo`` has used its commit quota for the current window."""
        if self.commit_quota is None:
            return
        now = time.monotonic()
        while repo.commit_times and repo.commit_times[0] <= now - self.quota_window_s:
            repo.commit_times.popleft()
        if len(repo.commit_times) < self.commit_quota:
            return
        self.stats.rejected_rate_limit += 1
        wait_s = max(1, math.ceil(repo.commit_times[0] + self.quota_window_s - now))
        error = HubRequestError(
            429,
            f"You have exceeded the rate limit of {self.commit_quota} commits per "
            f"{self.quota_window_s:g} s for {repo.repo_id}. Retry after {wait_s} s.",
        )
        error.headers = {
            "Retry-After": str(wait_s),
            "RateLimit": f'"commits";r=0;t={wait_s}',
            "RateLimit-Policy": f'"fixed window";"commits";q={self.commit_quota};'
            f"w={math.ceil(self.quota_window_s)}",
        }
        raise error

    def record_commit(self, repo: Repository) -> None:
        repo.commit_times.append(time.monotonic())
        self.stats.commits += 1



def main(argv: list[str] | None = None) -> int:
    """Serve a Hub test server on 127.0.0.1 until interrupted (``python -m`` entry point)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m persistkit.testing.hub_server",
        description="Serve an in-memory Hugging Face Hub test server on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--commit-quota", type=int, default=None, help="commits per window and repository")
    parser.add_argument("--quota-window", type=float, default=3600.0, help="quota window in seconds")
    parser.add_argument("--lfs-threshold", type=int, default=None, help="bytes from which files go through LFS")
    args = parser.parse_args(argv)

    server = HubTestServer(
        port=args.port,
        commit_quota=args.commit_quota,
        quota_window_s=args.quota_window,
        lfs_threshold=args.lfs_threshold,
    )
    print(f"Hub test server on {server.endpoint}; pass it as endpoint= (Ctrl-C stops it)", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

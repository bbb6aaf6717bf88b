"""HTTP request handler of :class:`persistkit.testing.hub_server.HubTestServer`.

Parses requests, routes them, and turns :class:`HubRequestError` into Hub-style error
responses. State lives in the server object and is only touched under its lock.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import logging
import re
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from persistkit.testing import _hub_repos as repos
from persistkit.testing._hub_repos import (
    LFS_POINTER_SIZE,
    BlobEntry,
    HubRequestError,
    Repository,
    git_blob_id,
)

if TYPE_CHECKING:
    from persistkit.testing.hub_server import HubTestServer

logger = logging.getLogger("persistkit.testing.hub_server")

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_ROUTE = re.compile(
    r"/api/(models|datasets|spaces)/([^/]+)/([^/]+)"
    r"(?:/(tree|commits|paths-info|preupload|commit|revision)/([^/]+)(?:/(.*))?)?"
)
_RESOLVE_ROUTE = re.compile(r"/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)")
_LFS_BATCH_ROUTE = re.compile(
    r"/(?:(datasets|spaces)/)?([^/]+)/([^/]+)\.git/info/lfs/objects/batch"
)
_LFS_UPLOAD_ROUTE = re.compile(r"/_lfs/(model|dataset|space)/([^/]+)/([^/]+)/([0-9a-f]{64})")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_INITIAL_ATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _url_repo_type(prefix: str | None) -> str:
    return "model" if prefix is None else _REPO_TYPES[prefix]


class _HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "persistkit-hub-test-server"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK add about 40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def hub(self) -> HubTestServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ---------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        try:
            body = self._read_body()
            self._check_token()
            with self.hub.lock:
                self.hub.stats.requests += 1
                self._route(method, url.path, body)
        except HubRequestError as error:
            self._send_error(error)
        except (ValueError, KeyError, TypeError) as error:
            self._send_error(HubRequestError(400, f"Bad request: {error}"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            # The client went away in the middle of the body, so nothing of it is applied.
            self.close_connection = True
            raise HubRequestError(400, f"Incomplete body: {len(body)} of {length} bytes")
        return body

    def _check_token(self) -> None:
        if self.hub.token is None:
            return
        if self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            raise HubRequestError(401, "Invalid credentials in Authorization header")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def _send_error(self, error: HubRequestError) -> None:
        # 412 and 429 are what tests of conflicts and rate limits look for; the others
        # (mostly 404 for absent paths) are routine.
        level = logging.INFO if error.status in (412, 429) else logging.DEBUG
        logger.log(level, "%s %s -> %d %s", self.command, self.path, error.status, error.message)
        headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
        if error.error_code is not None:
            headers["X-Error-Code"] = error.error_code
        headers.update(error.headers)
        body = {"error": error.message, **error.body}
        self._send(error.status, json.dumps(body).encode(), headers)

    def _route(self, method: str, path: str, body: bytes) -> None:
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(json.loads(body))
        if path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo(json.loads(body))
        if path == "/api/whoami-v2" and method == "GET":
            return self._send_json({"type": "user", "name": self.hub.user, "orgs": []})
        if match := _API_ROUTE.fullmatch(path):
            return self._route_api(method, match, body)
        if (match := _RESOLVE_ROUTE.fullmatch(path)) and method in ("GET", "HEAD"):
            prefix, namespace, name, revision, file_path = match.groups()
            repo = self.hub.get_repository(_url_repo_type(prefix), f"{namespace}/{name}")
            return self._resolve(repo, unquote(revision), unquote(file_path))
        if (match := _LFS_BATCH_ROUTE.fullmatch(path)) and method == "POST":
            prefix, namespace, name = match.groups()
            repo = self.hub.get_repository(_url_repo_type(prefix), f"{namespace}/{name}")
            return self._lfs_batch(repo, json.loads(body))
        if (match := _LFS_UPLOAD_ROUTE.fullmatch(path)) and method == "PUT":
            repo_type, namespace, name, oid = match.groups()
            return self._lfs_upload(self.hub.get_repository(repo_type, f"{namespace}/{name}"), oid, body)
        raise HubRequestError(404, f"No route for {method} {path}")

    def _route_api(self, method: str, match: re.Match[str], body: bytes) -> None:
        plural, namespace, name, action, revision, rest = match.groups()
        repo = self.hub.get_repository(_REPO_TYPES[plural], f"{namespace}/{name}")
        revision = unquote(revision) if revision else repos.DEFAULT_BRANCH
        if action in (None, "revision") and method == "GET":
            return self._repo_info(repo, revision)
        if action == "tree" and method == "GET":
            return self._tree(repo, revision, unquote(rest or ""))
        if action == "commits" and method == "GET":
            return self._commits(repo, revision)
        if action == "paths-info" and method == "POST":
            return self._paths_info(repo, revision, parse_qs(body.decode()))
        if action == "preupload" and method == "POST":
            return self._preupload(repo, revision, json.loads(body))
        if action == "commit" and method == "POST":
            return self._commit(repo, revision, body)
        raise HubRequestError(404, f"No route for {method} {self.path}")

    # -- repositories -----------------------------------------------------------------

    def _create_repo(self, payload: dict[str, Any]) -> None:
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIXES:
            raise HubRequestError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self._base_url()}/{_URL_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.hub.repositories:
            error = HubRequestError(409, f"You already created this {repo_type} repo")
            error.body = {"url": url}
            raise error
        private = payload.get("visibility", "private" if payload.get("private") else "public")
        repo = Repository(repo_type, repo_id, private == "private", created_at=self._now())
        repo.blobs[git_blob_id(_INITIAL_ATTRIBUTES)] = _INITIAL_ATTRIBUTES
        entry = BlobEntry(git_blob_id(_INITIAL_ATTRIBUTES), len(_INITIAL_ATTRIBUTES))
        repo.add_commit("initial commit", "", {".gitattributes": entry})
        self.hub.repositories[(repo_type, repo_id)] = repo
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, payload: dict[str, Any]) -> None:
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        self.hub.get_repository(repo_type, repo_id)
        del self.hub.repositories[(repo_type, repo_id)]
        self._send_json({})

    def _repo_info(self, repo: Repository, revision: str) -> None:
        commit = repo.resolve(revision)
        self._send_json(
            {
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.commit_id,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "createdAt": _iso(repo.created_at),
                "lastModified": _iso(commit.created_at),
                "siblings": [{"rfilename": path} for path in sorted(commit.tree)],
            }
        )

    # -- reading ----------------------------------------------------------------------

    def _file_info(self, path: str, entry: BlobEntry) -> dict[str, Any]:
        info: dict[str, Any] = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
        if entry.lfs_sha256 is not None:
            info["lfs"] = {"oid": entry.lfs_sha256, "size": entry.size, "pointerSize": LFS_POINTER_SIZE}
        return info

    def _folder_info(self, tree: dict[str, BlobEntry], path: str) -> dict[str, Any]:
        return {"type": "directory", "oid": repos.folder_id(tree, path), "path": path}

    def _tree(self, repo: Repository, revision: str, folder: str) -> None:
        tree = repo.resolve(revision).tree
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        pending = [folder]
        entries: list[dict[str, Any]] = []
        while pending:
            files, folders = repos.list_children(tree, pending.pop())
            entries += [self._folder_info(tree, path) for path in folders]
            entries += [self._file_info(path, tree[path]) for path in files]
            if recursive:
                pending += folders
        self._send_json(entries)

    def _paths_info(self, repo: Repository, revision: str, form: dict[str, list[str]]) -> None:
        tree = repo.resolve(revision).tree
        found = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in tree:
                found.append(self._file_info(path, tree[path]))
            elif repos.is_folder(tree, path):
                found.append(self._folder_info(tree, path))
        self._send_json(found)

    def _commits(self, repo: Repository, revision: str) -> None:
        head = repo.resolve(revision)
        chain = repo.commits[: repo.commits.index(head) + 1]
        self._send_json(
            [
                {
                    "id": commit.commit_id,
                    "authors": [{"user": self.hub.user}],
                    "date": _iso(commit.created_at),
                    "title": commit.title,
                    "message": commit.message,
                }
                for commit in reversed(chain)
            ]
        )

    def _resolve(self, repo: Repository, revision: str, path: str) -> None:
        commit = repo.resolve(revision)
        entry = commit.tree.get(path)
        if entry is None:
            raise HubRequestError(404, f"Entry not found: {path}", error_code="EntryNotFound")
        data = repo.read(entry)
        etag = entry.lfs_sha256 or entry.blob_id
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": commit.commit_id,
        }
        if entry.lfs_sha256 is not None:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(entry.size)
        status = 200
        range_match = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if range_match and data:
            first, last = self._byte_range(range_match, len(data))
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            data = data[first : last + 1]
            status = 206
        self._send(status, data, headers)

    def _byte_range(self, match: re.Match[str], size: int) -> tuple[int, int]:
        start, end = match.groups()
        if not start:  # "bytes=-N": the last N bytes
            return max(0, size - int(end)), size - 1
        first, last = int(start), min(int(end) if end else size - 1, size - 1)
        if first >= size or first > last:
            raise HubRequestError(416, f"Range not satisfiable: {match.group(0)} of {size} bytes")
        return first, last

    # -- writing ----------------------------------------------------------------------

    def _preupload(self, repo: Repository, revision: str, payload: dict[str, Any]) -> None:
        tree = repo.resolve(revision).tree
        threshold = self.hub.lfs_threshold
        files = []
        for item in payload["files"]:
            lfs = threshold is not None and item["size"] >= threshold
            existing = tree.get(item["path"])
            oid = None if existing is None else existing.lfs_sha256 or existing.blob_id
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        self._send_json({"files": files, "commitOid": repo.resolve(revision).commit_id})

    def _commit(self, repo: Repository, revision: str, body: bytes) -> None:
        if revision != repos.DEFAULT_BRANCH:
            raise HubRequestError(
                404, f"Commits are only served on {repos.DEFAULT_BRANCH}", error_code="RevisionNotFound"
            )

        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubRequestError(400, "The first NDJSON line of a commit must be the header")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent is not None and parent != repo.head.commit_id:
            self.hub.stats.rejected_stale_parent += 1
            raise HubRequestError(
                412,
                f"A commit has happened since {parent}: the head of {revision} is "
                f"{repo.head.commit_id}. Please refresh and try again.",
            )
        self.hub.check_quota(repo)

        tree = dict(repo.head.tree)
        blobs: dict[str, bytes] = {}
        for line in lines[1:]:
            self._apply_operation(repo, tree, blobs, line["key"], line["value"])

        repo.blobs.update(blobs)
        commit = repo.add_commit(header.get("summary", ""), header.get("description", ""), tree)
        self.hub.record_commit(repo)
        if self.hub.drop_commit_responses > 0:
            self.hub.drop_commit_responses -= 1
            self.close_connection = True
            logger.info("Dropped the response to commit %s of %s", commit.commit_id, repo.repo_id)
            return

        url = f"{self._base_url()}/{_URL_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{commit.commit_id}"
        self._send_json({"success": True, "commitOid": commit.commit_id, "commitUrl": url, "hookOutput": ""})

    def _apply_operation(
        self,
        repo: Repository,
        tree: dict[str, BlobEntry],
        blobs: dict[str, bytes],
        key: str,
        value: dict[str, Any],
    ) -> None:
        path = value["path"].strip("/")
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubRequestError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
            data = base64.b64decode(value["content"])
            blob_id = git_blob_id(data)
            blobs[blob_id] = data
            tree[path] = BlobEntry(blob_id, len(data))
        elif key == "lfsFile":
            lfs_data = repo.lfs_objects.get(value["oid"])
            if lfs_data is None:
                raise HubRequestError(400, f"LFS object {value['oid']} of {path} was not uploaded")
            pointer = f"oid sha256:{value['oid']}\nsize {len(lfs_data)}\n".encode()
            tree[path] = BlobEntry(git_blob_id(pointer), len(lfs_data), lfs_sha256=value["oid"])
        elif key == "deletedFile":
            if tree.pop(path, None) is None:
                raise HubRequestError(
                    404, f"A file with this name doesn't exist: {path}", error_code="EntryNotFound"
                )
        elif key == "deletedFolder":
            doomed = [name for name in tree if name.startswith(path + "/")]
            if not doomed:
                raise HubRequestError(
                    404, f"A folder with this name doesn't exist: {path}", error_code="EntryNotFound"
                )
            for name in doomed:
                del tree[name]
        else:
            raise HubRequestError(400, f"Unknown commit operation {key!r}")

    def _lfs_batch(self, repo: Repository, payload: dict[str, Any]) -> None:
        if payload.get("operation") != "upload":
            raise HubRequestError(400, "Only the LFS upload operation is served")
        objects = []
        for item in payload["objects"]:
            entry: dict[str, Any] = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in repo.lfs_objects:
                href = f"{self._base_url()}/_lfs/{repo.repo_type}/{repo.repo_id}/{item['oid']}"
                entry["actions"] = {"upload": {"href": href, "header": {}}}
            objects.append(entry)
        self._send_json({"transfer": "basic", "objects": objects})

    def _lfs_upload(self, repo: Repository, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubRequestError(400, f"LFS upload does not match its oid {oid}")
        repo.lfs_objects[oid] = body
        self._send(200, b"")

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.hub.endpoint.split('//', 1)[1]}"

    def _now(self) -> float:
        return time.time()

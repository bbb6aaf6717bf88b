"""The Hub test server, driven by the real huggingface_hub client."""

from __future__ import annotations

import http.client
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistkit.testing import servers
from persistkit.testing.hub_server import (
    HUGGINGFACE_HUB_VERSIONS,
    HubTestServer,
    client_version_supported,
)

huggingface_hub = pytest.importorskip("huggingface_hub")
utils = pytest.importorskip("huggingface_hub.utils")
hub_errors = pytest.importorskip("huggingface_hub.errors")

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def hub_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in servers.client_environment(str(tmp_path / "hf-cache")).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def server() -> Iterator[HubTestServer]:
    hub = HubTestServer(lfs_threshold=4096).start()
    yield hub
    hub.stop()


@pytest.fixture
def api(server: HubTestServer) -> object:
    return huggingface_hub.HfApi(endpoint=server.endpoint)


@pytest.fixture
def repo(api: huggingface_hub.HfApi) -> str:
    repo_id = f"persistkit-test/r-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, repo_type="dataset", private=True)
    return repo_id


def add(path: str, data: bytes) -> object:
    return huggingface_hub.CommitOperationAdd(path, data)


def test_installed_client_in_tested_range() -> None:
    assert client_version_supported(), (huggingface_hub.__version__, HUGGINGFACE_HUB_VERSIONS)
    assert client_version_supported("2.4.0")
    assert not client_version_supported("1.9.3")
    assert not client_version_supported("3.0.0")


# huggingface_hub 2.4.0 itself passes data= for the LFS upload, which httpx2 deprecates.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_commit_and_read_back(api: huggingface_hub.HfApi, repo: str, server: HubTestServer) -> None:
    big = os.urandom(10_000)  # above lfs_threshold: goes through the LFS batch API
    info = api.create_commit(
        repo, [add("a/small.txt", b"hello"), add("a/big.bin", big)], commit_message="two", repo_type="dataset"
    )

    assert api.repo_info(repo, repo_type="dataset").sha == info.oid
    listing = {entry.path: entry for entry in api.list_repo_tree(repo, "a", repo_type="dataset")}
    assert sorted(listing) == ["a/big.bin", "a/small.txt"]
    assert listing["a/big.bin"].lfs is not None
    assert listing["a/small.txt"].lfs is None
    path = huggingface_hub.hf_hub_download(
        repo, "a/big.bin", repo_type="dataset", endpoint=server.endpoint
    )
    assert Path(path).read_bytes() == big
    commits = api.list_repo_commits(repo, repo_type="dataset")
    assert [commit.title for commit in commits] == ["two", "initial commit"]


def test_filesystem_reads_with_range(server: HubTestServer, api: huggingface_hub.HfApi, repo: str) -> None:
    data = bytes(range(256)) * 8
    api.create_commit(repo, [add("x/data.bin", data)], commit_message="m", repo_type="dataset")
    filesystem = huggingface_hub.HfFileSystem(endpoint=server.endpoint)

    assert filesystem.ls(f"datasets/{repo}/x", detail=False) == [f"datasets/{repo}/x/data.bin"]
    with filesystem.open(f"datasets/{repo}/x/data.bin", "rb", block_size=64) as handle:
        handle.seek(1000)
        assert handle.read(24) == data[1000:1024]


def test_paths_info_and_folder_delete(api: huggingface_hub.HfApi, repo: str) -> None:
    api.create_commit(
        repo, [add("d/one.txt", b"1"), add("d/e/two.txt", b"2"), add("top.txt", b"t")],
        commit_message="m", repo_type="dataset",
    )  # fmt: skip
    infos = api.get_paths_info(repo, ["d", "top.txt", "missing"], repo_type="dataset")
    assert sorted((type(info).__name__, info.path) for info in infos) == [
        ("RepoFile", "top.txt"),
        ("RepoFolder", "d"),
    ]

    api.create_commit(
        repo, [huggingface_hub.CommitOperationDelete("d/", is_folder=True)], commit_message="rm", repo_type="dataset"
    )
    remaining = [entry.path for entry in api.list_repo_tree(repo, repo_type="dataset", recursive=True)]
    assert sorted(remaining) == [".gitattributes", "top.txt"]


def test_stale_parent_commit_gets_412(api: huggingface_hub.HfApi, repo: str, server: HubTestServer) -> None:
    parent = api.repo_info(repo, repo_type="dataset").sha
    api.create_commit(repo, [add("one", b"1")], commit_message="m", repo_type="dataset", parent_commit=parent)

    with pytest.raises(utils.HfHubHTTPError) as error:
        api.create_commit(repo, [add("two", b"2")], commit_message="m", repo_type="dataset", parent_commit=parent)

    assert error.value.response.status_code == 412
    assert server.stats.rejected_stale_parent == 1
    assert not api.file_exists(repo, "two", repo_type="dataset")


def test_quota_answers_429_with_retry_hint() -> None:
    with HubTestServer(commit_quota=1, quota_window_s=30.0) as hub:
        api = huggingface_hub.HfApi(endpoint=hub.endpoint)
        api.create_repo("u/q", repo_type="model")
        api.create_commit("u/q", [add("a", b"1")], commit_message="m")

        with pytest.raises(utils.HfHubHTTPError) as error:
            api.create_commit("u/q", [add("b", b"2")], commit_message="m")

        response = error.value.response
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 30
        assert "Retry after" in str(error.value)
        assert hub.stats.rejected_rate_limit == 1


def test_errors_carry_hub_error_codes(api: huggingface_hub.HfApi, repo: str) -> None:
    with pytest.raises(utils.RepositoryNotFoundError):
        api.repo_info("persistkit-test/absent", repo_type="dataset")
    with pytest.raises(utils.RevisionNotFoundError):
        api.repo_info(repo, repo_type="dataset", revision="f" * 40)
    with pytest.raises(hub_errors.RemoteEntryNotFoundError):
        list(api.list_repo_tree(repo, "no/such/folder", repo_type="dataset"))
    assert not api.file_exists(repo, "nothing.txt", repo_type="dataset")


def test_create_existing_repo_conflicts(api: huggingface_hub.HfApi, repo: str) -> None:
    with pytest.raises(utils.HfHubHTTPError) as error:
        api.create_repo(repo, repo_type="dataset")
    assert error.value.response.status_code == 409
    api.create_repo(repo, repo_type="dataset", exist_ok=True)


def test_incomplete_commit_body_is_not_applied(server: HubTestServer, api: huggingface_hub.HfApi, repo: str) -> None:
    head = api.repo_info(repo, repo_type="dataset").sha
    lines = [
        {"key": "header", "value": {"summary": "cut", "parentCommit": head}},
        {"key": "file", "value": {"path": "cut.txt", "content": "aGVsbG8=", "encoding": "base64"}},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        # A writer killed mid-upload: the declared length is never sent in full.
        connection.putrequest("POST", f"/api/datasets/{repo}/commit/main")
        connection.putheader("Content-Type", "application/x-ndjson")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        connection.send(body[: len(body) // 2])
        connection.sock.shutdown(2)  # type: ignore[union-attr]
    finally:
        connection.close()

    assert api.repo_info(repo, repo_type="dataset").sha == head
    assert not api.file_exists(repo, "cut.txt", repo_type="dataset")


def test_bearer_token_enforced() -> None:
    with HubTestServer(token="right-token") as hub:
        with pytest.raises(utils.HfHubHTTPError) as error:
            huggingface_hub.HfApi(endpoint=hub.endpoint, token="wrong-token").create_repo("u/t")
        assert error.value.response.status_code == 401
        huggingface_hub.HfApi(endpoint=hub.endpoint, token="right-token").create_repo("u/t")


def test_command_line_server_serves_until_interrupted() -> None:
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "persistkit.testing.hub_server", "--commit-quota", "3"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        endpoint = line.split()[4].rstrip(";")
        assert endpoint.startswith("http://127.0.0.1:")
        huggingface_hub.HfApi(endpoint=endpoint).create_repo("u/cli")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()

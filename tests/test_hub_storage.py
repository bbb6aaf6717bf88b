"""HubStorage against the Hub test server: commit budget, 429 back-off, fencing."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from persistkit import CheckpointStore
from persistkit._hub import HubStorage, parse_hub_url
from persistkit._hub_budget import BUDGET_LEDGER_PATH, CommitBudget, CommitLedger
from persistkit.errors import MissingDependencyError, StorageError, StoreConflictError
from persistkit.testing import servers
from persistkit.testing.hub_server import HubTestServer

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def hub_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in servers.client_environment(str(tmp_path_factory.mktemp("hf"))).items():
        monkeypatch.setenv(name, value)


def start_server(**options: object) -> HubTestServer:
    return HubTestServer(**options).start()  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[HubTestServer]:
    hub = start_server()
    yield hub
    hub.stop()


def repo_name() -> str:
    return f"persistkit-test/repo-{uuid.uuid4().hex[:10]}"


class SleepRecorder:
    """Stands in for time.sleep: records each wait, then really waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def run_checkpoints_under_quota(checkpoints: int, keys: list[str], quota: int, window_s: float) -> None:
    """Save ``checkpoints`` steps round-robin over ``keys`` against a Hub with a commit quota."""
    hub = start_server(commit_quota=quota, quota_window_s=window_s)
    repo = repo_name()
    options = {"endpoint": hub.endpoint, "max_commits": quota, "commit_window_s": window_s}
    last_step: dict[str, int] = {}
    try:
        with CheckpointStore(f"hf://datasets/{repo}/run", storage_options=options) as store:
            for index in range(checkpoints):
                key, step = keys[index % len(keys)], index // len(keys)
                store.save(key, {"model.bin": f"{key}-{step}".encode()}, step=step)
                last_step[key] = step
                time.sleep(0.01)
            store.flush(timeout=120)

            for key, step in last_step.items():
                assert store.latest_step(key) == step
                assert store.load(key).files["model.bin"] == f"{key}-{step}".encode()

        titles = hub.commit_titles(repo, repo_type="dataset")
        checkpoint_titles = [title for title in titles if title.startswith("persistkit: checkpoint")]
        assert hub.stats.rejected_rate_limit == 0
        assert len(checkpoint_titles) == len(set(checkpoint_titles))
        assert len(checkpoint_titles) < checkpoints
        assert hub.commit_count(repo, repo_type="dataset") <= checkpoints
    finally:
        hub.stop()


def test_two_hundred_checkpoints_under_quota() -> None:
    run_checkpoints_under_quota(200, ["xgb", "lgb", "cat", "stack"], quota=20, window_s=2.0)


@pytest.mark.soak
def test_thousand_checkpoints_many_keys_under_quota() -> None:
    keys = [f"trial-{index:02d}" for index in range(12)]
    run_checkpoints_under_quota(1000, keys, quota=20, window_s=1.0)


def test_rate_limit_backs_off_with_retry_after() -> None:
    hub = start_server(commit_quota=2, quota_window_s=1.0)
    try:
        storage = HubStorage(
            f"hf://{repo_name()}/ckpt", storage_options={"endpoint": hub.endpoint}
        )
        recorder = SleepRecorder()
        storage._sleep = recorder
        for index in range(5):
            storage.write_bytes(f"file-{index}.txt", b"x")

        assert hub.stats.rejected_rate_limit >= 1
        assert recorder.waits
        assert all(wait >= 1.0 for wait in recorder.waits)
        assert sorted(storage.list_dir("")) == [f"file-{index}.txt" for index in range(5)]
    finally:
        hub.stop()


def test_budget_survives_restart() -> None:
    hub = start_server(commit_quota=3, quota_window_s=3.0)
    url = f"hf://datasets/{repo_name()}/run"
    options = {"endpoint": hub.endpoint, "max_commits": 3, "commit_window_s": 3.0}
    try:
        first = HubStorage(url, storage_options=options)
        for index in range(3):
            first.write_bytes(f"a-{index}", b"1")

        restarted = HubStorage(url, storage_options=options)
        recorder = SleepRecorder()
        restarted._sleep = recorder
        restarted.write_bytes("after-restart", b"2")

        assert len(recorder.waits) == 1
        assert 0 < recorder.waits[0] <= 3.0
        assert hub.stats.rejected_rate_limit == 0
        ledger = CommitLedger.parse(restarted._read_repo_file(BUDGET_LEDGER_PATH, "main"))
        assert len(ledger.commits) >= 1
    finally:
        hub.stop()


def test_checkpoint_is_one_commit(server: HubTestServer) -> None:
    repo = repo_name()
    storage = HubStorage(f"hf://datasets/{repo}/run", storage_options={"endpoint": server.endpoint})
    storage.commit_checkpoint("k/_step-1", {"a.bin": b"a"}, "_manifest.json", b"{}", [])
    before = server.commit_count(repo, repo_type="dataset")

    storage.commit_checkpoint(
        "k/_step-2", {"a.bin": b"a2", "b.bin": b"b2"}, "_manifest.json", b"{}", ["k/_step-1"]
    )

    assert server.commit_count(repo, repo_type="dataset") == before + 1
    assert storage.list_dir("k") == ["_step-2"]
    assert storage.list_dir("k/_step-2") == ["_manifest.json", "a.bin", "b.bin"]


def test_stale_writer_of_same_key_is_rejected(server: HubTestServer) -> None:
    url = f"hf://datasets/{repo_name()}/run"
    options = {"endpoint": server.endpoint}
    first = HubStorage(url, storage_options=options)
    second = HubStorage(url, storage_options=options)
    first.write_bytes("marker", b"1")
    second.write_bytes("other", b"1")  # second has now read a head commit
    first.commit_checkpoint("k/_step-1", {"a.bin": b"a"}, "_manifest.json", b"{}", [])

    with pytest.raises(StoreConflictError, match="another writer changed 'run/k'"):
        second.commit_checkpoint("k/_step-2", {"a.bin": b"b"}, "_manifest.json", b"{}", [])

    second.commit_checkpoint("j/_step-1", {"a.bin": b"j"}, "_manifest.json", b"{}", [])
    assert server.stats.rejected_stale_parent >= 2
    assert first.list_dir("") == ["j", "k", "marker", "other"]
    assert first.list_dir("k") == ["_step-1"]


def test_create_exclusive_is_fenced(server: HubTestServer) -> None:
    url = f"hf://{repo_name()}/run"
    options = {"endpoint": server.endpoint}
    first = HubStorage(url, storage_options=options)
    second = HubStorage(url, storage_options=options)
    second.write_bytes("seen", b"1")
    assert first.create_exclusive("lease/1.json", b"first")
    assert not second.create_exclusive("lease/1.json", b"second")
    assert second.read_bytes("lease/1.json") == b"first"


def test_missing_repository_created_private(server: HubTestServer) -> None:
    repo = repo_name()
    storage = HubStorage(f"hf://spaces/{repo}", storage_options={"endpoint": server.endpoint})
    assert storage.list_dir("") == []
    assert not storage.exists("x")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("x")

    storage.write_bytes("x", b"1")

    assert server.repositories[("space", repo)].private is True
    assert storage.read_bytes("x") == b"1"


def test_token_option_rejected() -> None:
    with pytest.raises(ValueError, match="HF_TOKEN") as error:
        HubStorage("hf://a/b", storage_options={"token": "hf_secret_value"})
    assert "hf_secret_value" not in str(error.value)


def test_unknown_option_rejected() -> None:
    with pytest.raises(ValueError, match="max_commit"):
        HubStorage("hf://a/b", storage_options={"max_commit": 3})


@pytest.mark.parametrize(
    ("url", "repo_type", "repo_id", "folder"),
    [
        ("hf://datasets/user/repo/run/a", "dataset", "user/repo", "run/a"),
        ("hf://spaces/user/repo", "space", "user/repo", ""),
        ("hf://models/user/repo/x", "model", "user/repo", "x"),
        ("hf://user/repo/x", "model", "user/repo", "x"),
    ],
)
def test_parse_hub_url(url: str, repo_type: str, repo_id: str, folder: str) -> None:
    location = parse_hub_url(url)
    assert location.repo_type == repo_type
    assert location.repo_id == repo_id
    assert location.folder == folder


@pytest.mark.parametrize("url", ["hf://datasets/user", "hf://user/repo@dev/x", "s3://b/k"])
def test_parse_hub_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        parse_hub_url(url)


def test_ledger_waits_for_oldest_slot() -> None:
    budget = CommitBudget(max_commits=3, window_s=10.0)
    ledger = CommitLedger((100.0, 101.0, 102.0))
    assert ledger.wait_s(budget, now=103.0) == pytest.approx(7.0)
    assert ledger.wait_s(budget, now=110.5) == 0.0
    assert ledger.recorded(budget, 111.5).commits == (102.0, 111.5)


def test_ledger_parse_round_trip_and_garbage() -> None:
    ledger = CommitLedger((1.5, 2.5))
    assert CommitLedger.parse(ledger.serialize()) == ledger
    assert CommitLedger.parse(b"not json") == CommitLedger()
    assert CommitLedger.parse(None) == CommitLedger()


@pytest.mark.parametrize(("max_commits", "window_s"), [(0, 1.0), (3, 0.0), (True, 1.0)])
def test_budget_validates(max_commits: int, window_s: float) -> None:
    with pytest.raises((ValueError, TypeError)):
        CommitBudget(max_commits=max_commits, window_s=window_s)


def test_unreachable_hub_raises_storage_error() -> None:
    with HubTestServer() as hub:
        endpoint = hub.endpoint
    storage = HubStorage("hf://datasets/u/r/run", storage_options={"endpoint": endpoint})

    with pytest.raises(StorageError, match="hf://datasets/u/r/run"):
        storage.read_bytes("x")
    with pytest.raises(StorageError):
        storage.exists("x")
    with pytest.raises(StorageError):
        storage.write_bytes("x", b"1")


def test_lost_commit_response_counts_as_committed(server: HubTestServer) -> None:
    repo = repo_name()
    storage = HubStorage(f"hf://datasets/{repo}/run", storage_options={"endpoint": server.endpoint})
    storage.write_bytes("first", b"1")
    server.drop_commit_responses = 1

    storage.commit_checkpoint("k/_step-1", {"a.bin": b"a"}, "_manifest.json", b"{}", [])

    assert server.drop_commit_responses == 0
    assert server.commit_titles(repo, repo_type="dataset")[-1] == "persistkit: checkpoint run/k/_step-1"
    storage.commit_checkpoint("k/_step-2", {"a.bin": b"b"}, "_manifest.json", b"{}", [])
    assert storage.list_dir("k") == ["_step-1", "_step-2"]
    assert storage.commits_made == 3


def test_missing_client_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(MissingDependencyError, match=r"persistkit\[hf\]"):
        HubStorage("hf://datasets/u/r")

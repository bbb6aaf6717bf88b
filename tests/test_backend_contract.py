"""One contract suite for every storage backend, run unchanged over each of them.

Backends: memory://, a local folder, S3 on moto and on SeaweedFS, GCS on
fake-gcs-server, and the Hub on persistkit's Hub test server. The servers are started
once per session on 127.0.0.1 and stopped by PID; each test gets its own bucket prefix
or Hub repository.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from persistkit import CheckpointStore
from persistkit._layout import MANIFEST_NAME, step_dir_name
from persistkit._serializers import pickled
from persistkit.cli import main as cli_main
from persistkit.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    LeaseHeldError,
    UnsafeLoadError,
)
from persistkit.testing import servers

# gcsfs reads this when it is imported, before any fixture runs; without it every call
# to fake-gcs-server waits 60 s for a gRPC probe.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
BUCKET = "persistkit-contract"
SUBPROCESS_TIMEOUT_S = 120


@dataclass
class Backend:
    """A store location on one backend, unique to one test."""

    name: str
    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def store(self, **options: Any) -> CheckpointStore:
        options.setdefault("background", False)
        return CheckpointStore(self.url, storage_options=self.storage_options, **options)

    def cli_options(self) -> list[str]:
        pairs = []
        for name, value in self.storage_options.items():
            pairs += ["--storage-option", f"{name}={json.dumps(value)}"]
        return pairs


@pytest.fixture(scope="module", autouse=True)
def client_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        cache = str(tmp_path_factory.mktemp("hf-cache"))
        for name, value in servers.client_environment(cache).items():
            patch.setenv(name, value)
        yield


def _object_store_server(start: Any, protocol: str) -> Iterator[servers.RunningServer]:
    server = start()
    try:
        import fsspec

        filesystem = fsspec.filesystem(protocol, skip_instance_cache=True, **server.storage_options)
        filesystem.mkdir(BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[servers.RunningServer]:
    yield from _object_store_server(servers.start_moto, "s3")


@pytest.fixture(scope="session")
def seaweedfs_server() -> Iterator[servers.RunningServer]:
    yield from _object_store_server(servers.start_seaweedfs, "s3")


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[servers.RunningServer]:
    yield from _object_store_server(servers.start_fake_gcs, "gcs")


@pytest.fixture(scope="session")
def hub_server() -> Iterator[servers.RunningServer]:
    server = servers.start_hub_server()
    yield server
    server.stop()


SERVER_BACKENDS = ["moto", "seaweedfs", "gcs", "hub"]
ALL_BACKENDS = [
    "memory",
    "local",
    *(pytest.param(name, marks=pytest.mark.servers) for name in SERVER_BACKENDS),
]
KILLABLE_BACKENDS = ALL_BACKENDS[1:]


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    unique = uuid.uuid4().hex[:12]
    if name == "memory":
        return Backend(name, f"memory://contract-{unique}")
    if name == "local":
        return Backend(name, str(tmp_path / "store"))
    if name == "hub":
        server = request.getfixturevalue("hub_server")
        return Backend(
            name,
            f"hf://datasets/persistkit-test/contract-{unique}/run",
            dict(server.storage_options),
            secrets=(os.environ["HF_TOKEN"],),
        )
    server = request.getfixturevalue(f"{name}_server")
    protocol = "gs" if name == "gcs" else "s3"
    options = dict(server.storage_options)
    return Backend(
        name, f"{protocol}://{BUCKET}/{unique}", options, secrets=(servers.TEST_SECRET_KEY,)
    )


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


@pytest.fixture(params=KILLABLE_BACKENDS)
def killable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


def step_file(key: str, step: int, name: str) -> str:
    return f"{key}/{step_dir_name(step)}/{name}"


# -- save and load --------------------------------------------------------------------


def test_save_load_round_trip(backend: Backend) -> None:
    payload = os.urandom(50_000)
    with backend.store() as store:
        store.save(
            "xgb/final",
            {"model.bin": payload, "state.json": {"round": 7}},
            step=7,
            metrics={"rmse": 0.5},
            metadata={"note": "first"},
        )
        store.save("xgb/final", {"model.bin": b"v10", "state.json": {"round": 10}}, step=10)

    with backend.store() as reopened:
        assert reopened.keys() == ["xgb/final"]
        assert reopened.steps("xgb/final") == [7, 10]
        assert reopened.latest_step("xgb/final") == 10
        older = reopened.load("xgb/final", step=7)
        assert older.files["model.bin"] == payload
        assert older.json("state.json") == {"round": 7}
        assert older.metrics == {"rmse": 0.5}
        assert older.metadata == {"note": "first"}
        assert reopened.load("xgb/final").files["model.bin"] == b"v10"


def test_background_saves_are_loadable_after_flush(backend: Backend) -> None:
    with backend.store(background=True) as store:
        for step in range(5):
            store.save("lgb", {"model.txt": f"tree {step}".encode()}, step=step)
        store.flush(timeout=60)
        assert store.latest_step("lgb") == 4
        assert store.load("lgb").files["model.txt"] == b"tree 4"


def test_missing_key_raises_not_found(backend: Backend) -> None:
    with backend.store() as store, pytest.raises(CheckpointNotFoundError, match="no-such-key"):
        store.load("no-such-key")


# -- integrity ------------------------------------------------------------------------


def test_load_falls_back_from_corrupt_step(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with backend.store() as store:
        store.save("cat", {"model.cbm": b"good"}, step=1)
        store.save("cat", {"model.cbm": b"newer"}, step=2)
        store.storage.write_bytes(step_file("cat", 2, "model.cbm"), b"BAD!!")

        with caplog.at_level(logging.WARNING, logger="persistkit"):
            checkpoint = store.load("cat")

        assert checkpoint.step == 1
        assert checkpoint.files["model.cbm"] == b"good"
        assert "step 2" in caplog.text
        with pytest.raises(CorruptCheckpointError):
            store.load("cat", step=2)


def test_retention_keeps_last_steps(backend: Backend) -> None:
    with backend.store(retention={"keep_last": 2}) as store:
        for step in range(1, 5):
            store.save("tuning", {"state.json": {"step": step}}, step=step)
        assert store.steps("tuning") == [3, 4]
        assert store.load("tuning").json("state.json") == {"step": 4}


def test_step_without_manifest_is_invisible(backend: Backend) -> None:
    with backend.store() as store:
        store.save("xgb", {"model.bin": b"one"}, step=1)
        # The state a writer killed after its payload upload leaves on object stores.
        store.storage.write_bytes(step_file("xgb", 2, "model.bin"), b"partial")

        assert store.steps("xgb") == [1]
        assert store.load("xgb").step == 1
        assert store.partial_writes("xgb") == [step_dir_name(2)]

    assert cli_main(["gc", backend.url, *backend.cli_options()]) == 0
    with backend.store() as store:
        assert store.partial_writes("xgb") == []
        assert store.steps("xgb") == [1]


# -- writers --------------------------------------------------------------------------


def test_second_writer_gets_lease_error(backend: Backend) -> None:
    with backend.store(writer_id="writer-a") as first:
        first.save("shared", {"a.bin": b"a"}, step=1)
        second = backend.store(writer_id="writer-b")
        try:
            with pytest.raises(LeaseHeldError, match="writer-a"):
                second.save("shared", {"a.bin": b"b"}, step=2)
            second.save("other", {"a.bin": b"b"}, step=1)
            assert second.steps("other") == [1]
        finally:
            second.close()
        assert first.steps("shared") == [1]


def test_concurrent_writers_on_separate_keys(backend: Backend) -> None:
    errors: list[BaseException] = []

    def write(key: str) -> None:
        try:
            with backend.store(writer_id=f"writer-{key}") as store:
                for step in range(1, 5):
                    store.save(key, {"model.bin": f"{key}-{step}".encode()}, step=step)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(key,)) for key in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with backend.store() as store:
        for key in ("left", "right"):
            assert store.steps(key) == [1, 2, 3, 4]
            assert store.load(key).files["model.bin"] == f"{key}-4".encode()


# -- safety ---------------------------------------------------------------------------


def test_pickle_needs_permission_and_checksum(backend: Backend) -> None:
    with backend.store() as store:
        store.save("sk", {"model.pkl": pickled({"alpha": 0.1})}, step=1)

        with pytest.raises(UnsafeLoadError):
            store.load("sk").object("model.pkl")
        assert store.load("sk", allow_pickle=True).object("model.pkl") == {"alpha": 0.1}

        import pickle

        store.storage.write_bytes(step_file("sk", 1, "model.pkl"), pickle.dumps({"alpha": 9.9}))
        with pytest.raises(CorruptCheckpointError):
            store.load("sk", step=1, allow_pickle=True)


def test_secrets_stay_out_of_logs_and_manifests(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), backend.store() as store:
        store.save("xgb", {"model.bin": b"m"}, step=1, metadata={"run": "r1"})
        manifest = store.storage.read_bytes(step_file("xgb", 1, MANIFEST_NAME))
        with pytest.raises(CheckpointNotFoundError) as missing:
            store.load("absent")
        texts = [caplog.text, manifest.decode(), store.url, repr(store), str(missing.value)]

    for secret in backend.secrets:
        for text in texts:
            assert secret not in text


# -- kill during commit ----------------------------------------------------------------

# A writer that commits step 1, then dies while committing step 2 (12 files of 1 MiB).
# In mode "timed" the test kills it after a delay. In mode "mid-payload" it sends
# SIGKILL to itself just before writing part06.bin of step 2, with half of the payload
# already stored.
_WRITER_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import persistkit._storage as storage_module
    from persistkit import CheckpointStore

    url, options, mode = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    store = CheckpointStore(url, storage_options=options, background=False)
    store.save("job", {"model.bin": b"first"}, step=1)
    print("committed", flush=True)

    def die_before(path):
        if "part06.bin" in str(path) and "0000000002" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)

    if mode == "mid-payload" and hasattr(store.storage, "fs"):
        pipe_file = store.storage.fs.pipe_file
        def pipe_file_or_die(path, *args, **kwargs):
            die_before(path)
            return pipe_file(path, *args, **kwargs)
        store.storage.fs.pipe_file = pipe_file_or_die
    elif mode == "mid-payload":
        write_synced = storage_module._write_synced
        def write_or_die(path, data):
            die_before(path)
            return write_synced(path, data)
        storage_module._write_synced = write_or_die

    files = {f"part{i:02d}.bin": os.urandom(2**20) for i in range(12)}
    print("uploading", flush=True)
    store.save("job", files, step=2)
    print("done", flush=True)
    """
)


def run_gc(backend: Backend) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "persistkit", "gc", backend.url, *backend.cli_options()],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=True,
    )
    return completed.stdout


def kill_writer(backend: Backend, mode: str, delay_s: float) -> int:
    """Run the writer script until it dies; return its exit code."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER_SCRIPT, backend.url, json.dumps(backend.storage_options), mode],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "committed"
        assert writer.stdout.readline().strip() == "uploading"
        if mode == "timed":
            time.sleep(delay_s)
            writer.send_signal(signal.SIGKILL)
        return writer.wait(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=SUBPROCESS_TIMEOUT_S)
        if writer.stdout is not None:
            writer.stdout.close()


@pytest.mark.parametrize("delay_s", [0.2])
def test_kill_during_commit_keeps_previous(killable_backend: Backend, delay_s: float) -> None:
    backend = killable_backend
    kill_writer(backend, "timed", delay_s)

    with backend.store(writer_id="reader") as store:
        steps = store.steps("job")
        assert steps[0] == 1
        assert set(steps) <= {1, 2}
        assert store.load("job", step=1).files["model.bin"] == b"first"
        assert store.load("job").step == steps[-1]

        run_gc(backend)
        assert store.partial_writes("job") == []
        assert store.steps("job") == steps


@pytest.mark.parametrize(
    "backend_name", ["local", *(pytest.param(name, marks=pytest.mark.servers) for name in SERVER_BACKENDS[:3])]
)
def test_kill_mid_payload_leaves_partial_for_gc(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = make_backend(backend_name, request, tmp_path)

    assert kill_writer(backend, "mid-payload", 0.0) == -signal.SIGKILL

    with backend.store(writer_id="reader") as store:
        assert store.steps("job") == [1]
        assert store.load("job").files["model.bin"] == b"first"
        assert len(store.partial_writes("job")) == 1

        output = run_gc(backend)

        assert "removed 1 partial writes" in output
        assert store.partial_writes("job") == []
        assert store.steps("job") == [1]


# -- visibility across processes and writers --------------------------------------------

_SAVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from persistkit import CheckpointStore
    url, options = sys.argv[1], json.loads(sys.argv[2])
    with CheckpointStore(url, storage_options=options, background=False) as store:
        store.save("seen", {"model.bin": b"from another process"}, step=3)
    """
)


def test_listing_sees_other_process_writes(killable_backend: Backend) -> None:
    backend = killable_backend
    with backend.store(writer_id="observer") as store:
        assert store.steps("seen") == []
        assert store.keys() == []

        subprocess.run(
            [sys.executable, "-c", _SAVE_SCRIPT, backend.url, json.dumps(backend.storage_options)],
            cwd=REPO_ROOT,
            check=True,
            timeout=SUBPROCESS_TIMEOUT_S,
        )

        assert store.keys() == ["seen"]
        assert store.steps("seen") == [3]
        assert store.load("seen").files["model.bin"] == b"from another process"


def test_create_exclusive_writes_once(backend: Backend) -> None:
    with backend.store() as store:
        assert store.storage.create_exclusive("fence/claim.json", b"first")
        assert not store.storage.create_exclusive("fence/claim.json", b"second")
        assert store.storage.read_bytes("fence/claim.json") == b"first"


def test_create_exclusive_race_has_one_winner(backend: Backend) -> None:
    with backend.store() as store:
        barrier = threading.Barrier(6)
        results: dict[int, bool] = {}

        def claim(index: int) -> None:
            barrier.wait(timeout=30)
            results[index] = store.storage.create_exclusive("race/claim.json", f"{index}".encode())

        threads = [threading.Thread(target=claim, args=(index,)) for index in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        winners = [index for index, created in results.items() if created]
        assert len(results) == 6
        assert len(winners) == 1
        assert store.storage.read_bytes("race/claim.json") == f"{winners[0]}".encode()

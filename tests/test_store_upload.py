"""Background uploads: non-blocking saves, coalescing, memory cap, retries, flush, exit."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from persistkit import CheckpointStore
from persistkit.errors import FlushError, LeaseHeldError, StorageError
from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan

REPO_ROOT = Path(__file__).resolve().parents[1]


class GatedFileSystem(FaultInjectingFileSystem):
    """A memory filesystem whose payload writes wait until the test opens the gate."""

    def __init__(self, target: Any) -> None:
        super().__init__(target, FaultPlan())
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if "_step-" in path:
            self.waiting.set()
            assert self.gate.wait(timeout=10), "test never opened the gate"
        super().pipe_file(path, value, mode=mode, **kwargs)


@pytest.fixture
def root(persistkit_store_url: str) -> str:
    return str(fsspec.core.url_to_fs(persistkit_store_url)[1])


@pytest.fixture
def memory() -> Any:
    return fsspec.filesystem("memory")


@pytest.fixture
def gated(memory: Any) -> Iterator[GatedFileSystem]:
    filesystem = GatedFileSystem(memory)
    yield filesystem
    filesystem.gate.set()


def test_save_returns_before_upload(root: str, gated: GatedFileSystem) -> None:
    store = CheckpointStore(root, filesystem=gated)
    started = time.monotonic()
    store.save("k", {"a.bin": b"a" * 1000}, step=1)
    assert time.monotonic() - started < 1.0
    assert gated.waiting.wait(timeout=5)
    assert store.steps("k") == []

    gated.gate.set()
    store.flush(timeout=10)
    assert store.steps("k") == [1]
    store.close()


def test_commit_cpu_time_recorded(root: str, memory: Any) -> None:
    with CheckpointStore(root, filesystem=memory) as store:
        assert store.commit_cpu_seconds("k") == 0.0

        # Hashing and copying 20 MB takes CPU time on the upload thread.
        store.save("k", {"a.bin": os.urandom(20_000_000)}, step=1)
        store.flush(timeout=30)

        assert store.commit_cpu_seconds("k") > 0.0
        assert store.commit_cpu_seconds("other") == 0.0


def test_commit_cpu_time_zero_without_background(root: str, memory: Any) -> None:
    with CheckpointStore(root, filesystem=memory, background=False) as store:
        store.save("k", {"a.bin": os.urandom(1_000_000)}, step=1)

        assert store.commit_cpu_seconds("k") == 0.0


def test_queued_snapshots_of_a_key_coalesce(root: str, gated: GatedFileSystem) -> None:
    store = CheckpointStore(root, filesystem=gated)
    store.save("k", {"a.bin": b"1"}, step=1)
    assert gated.waiting.wait(timeout=5)
    for step in (2, 3, 4):
        store.save("k", {"a.bin": str(step).encode()}, step=step)
    store.save("other", {"a.bin": b"o"}, step=1)

    gated.gate.set()
    store.flush(timeout=10)
    assert store.steps("k") == [1, 4]
    assert store.load("k").files["a.bin"] == b"4"
    assert store.steps("other") == [1]
    store.close()


def test_memory_cap_paces_saves(root: str, gated: GatedFileSystem) -> None:
    store = CheckpointStore(root, filesystem=gated, max_pending_bytes=150)
    store.save("a", {"a.bin": b"a" * 100}, step=1)
    assert gated.waiting.wait(timeout=5)

    second = threading.Thread(target=store.save, args=("b", {"b.bin": b"b" * 100}), kwargs={"step": 1})
    second.start()
    second.join(timeout=0.3)
    assert second.is_alive(), "save should wait while pending bytes exceed the cap"
    assert store._uploader is not None
    assert store._uploader.pending_bytes == 100

    gated.gate.set()
    second.join(timeout=10)
    assert not second.is_alive()
    store.flush(timeout=10)
    assert store.keys() == ["a", "b"]
    store.close()


def test_outage_never_blocks_and_fails_on_flush(
    root: str, memory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FaultInjectingFileSystem(memory, FaultPlan(transient_rate=1.0))
    store = CheckpointStore(
        root, filesystem=failing, max_pending_bytes=150, max_attempts=3, retry_delay=0.05
    )
    with caplog.at_level(logging.WARNING, logger="persistkit"):
        started = time.monotonic()
        for index, key in enumerate(["a", "b", "c", "d"]):
            store.save(key, {"x.bin": b"x" * 100}, step=index)
            time.sleep(0.02)
        save_seconds = time.monotonic() - started

        with pytest.raises(FlushError) as raised:
            store.flush(timeout=10)

    assert save_seconds < 1.0
    message = str(raised.value)
    assert "failed after 3 attempts" in message
    assert "dropped" in message
    assert isinstance(raised.value.__cause__, StorageError)
    assert isinstance(raised.value.__cause__.__cause__, ConnectionError)
    assert any("is late" in record.getMessage() for record in caplog.records)
    store.close()


def test_transient_failures_are_retried(root: str, memory: Any) -> None:
    flaky = FaultInjectingFileSystem(memory, FaultPlan(transient_rate=0.3, ack_loss_rate=0.1, seed=3))
    store = CheckpointStore(root, filesystem=flaky, retry_delay=0.001)
    for step in range(20):
        store.save(f"k{step % 4}", {"a.bin": bytes([step])}, step=step)
        store.flush(timeout=30)
    store.close()

    injected = [record for record in flaky.write_log if record.fault is not None]
    assert injected, "the plan should have injected faults"
    with CheckpointStore(root, filesystem=memory, background=False) as reader:
        assert [reader.latest_step(f"k{index}") for index in range(4)] == [16, 17, 18, 19]


def test_flush_timeout_raises_and_save_continues(root: str, gated: GatedFileSystem) -> None:
    store = CheckpointStore(root, filesystem=gated)
    store.save("k", {"a.bin": b"a"}, step=1)
    with pytest.raises(FlushError, match="timed out"):
        store.flush(timeout=0.2)

    gated.gate.set()
    store.flush(timeout=10)
    assert store.steps("k") == [1]
    store.close()


def test_permanent_error_not_retried(root: str, memory: Any) -> None:
    # A writer whose lease another writer took over must not retry: the other is live.
    store = CheckpointStore(root, filesystem=memory, max_attempts=5, retry_delay=5.0, lease_ttl=0.2)
    store.save("k", {"a.bin": b"first"}, step=1)
    store.flush(timeout=10)
    time.sleep(0.3)
    successor = CheckpointStore(root, filesystem=memory, background=False)
    successor.save("k", {"a.bin": b"successor"}, step=2)
    store.save("k", {"a.bin": b"stale"}, step=3)

    started = time.monotonic()
    with pytest.raises(FlushError, match="failed after 1 attempts") as raised:
        store.flush(timeout=10)
    assert time.monotonic() - started < 4.0
    assert isinstance(raised.value.__cause__, LeaseHeldError)
    assert "took over" in str(raised.value)
    assert successor.steps("k") == [1, 2]
    store.close()
    successor.close()


def _run_child(code: str, tmp_path: Path, *, sigterm_after_line: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "store")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        if sigterm_after_line is not None:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.strip() == sigterm_after_line, line
            process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


SLOW_CHILD = """
    import sys, time, fsspec
    from persistkit import CheckpointStore
    from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan
    local = fsspec.filesystem("file", auto_mkdir=True)
    slow = FaultInjectingFileSystem(local, FaultPlan(write_delay=0.3))
    store = CheckpointStore(sys.argv[1], filesystem=slow)
    store.save("k", {"a.bin": b"saved before exit"}, step=5)
    print("saved", flush=True)
    {ending}
"""


def test_interpreter_exit_flushes(tmp_path: Path) -> None:
    result = _run_child(SLOW_CHILD.replace("{ending}", "pass"), tmp_path)
    assert result.returncode == 0, result.stderr

    with CheckpointStore(str(tmp_path / "store"), background=False) as reader:
        assert reader.steps("k") == [5]


def test_sigterm_flushes_then_terminates(tmp_path: Path) -> None:
    result = _run_child(SLOW_CHILD.replace("{ending}", "time.sleep(30)"), tmp_path, sigterm_after_line="saved")
    assert result.returncode == -signal.SIGTERM, result.stderr

    with CheckpointStore(str(tmp_path / "store"), background=False) as reader:
        assert reader.steps("k") == [5]

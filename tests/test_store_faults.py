"""Long runs through the fault-injecting filesystem: every checkpoint still commits."""

from __future__ import annotations

import logging
from typing import Any

import fsspec
import pytest

from persistkit import CheckpointStore
from persistkit._upload import is_transient
from persistkit.errors import CorruptCheckpointError, FlushError, LeaseHeldError, StorageError
from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan, InjectedCrash


@pytest.fixture
def root(persistkit_store_url: str) -> str:
    return str(fsspec.core.url_to_fs(persistkit_store_url)[1])


@pytest.fixture
def memory() -> Any:
    return fsspec.filesystem("memory")


def test_200_checkpoints_commit_through_faults(root: str, memory: Any, caplog: pytest.LogCaptureFixture) -> None:
    plan = FaultPlan(transient_rate=0.2, ack_loss_rate=0.05, timeout_rate=0.05, timeout_delay=0.001, seed=20)
    faulty = FaultInjectingFileSystem(memory, plan)
    store = CheckpointStore(root, filesystem=faulty, retry_delay=0.001, max_attempts=30)

    with caplog.at_level(logging.WARNING, logger="persistkit"):
        for step in range(200):
            store.save("run", {"state.bin": step.to_bytes(4, "big") * 64}, step=step, metrics={"step": step})
            store.flush(timeout=60)
    store.close()

    faults = [record.fault for record in faulty.write_log if record.fault is not None]
    assert faults.count("transient") > 20
    assert faults.count("timeout") > 3
    assert faults.count("ack-loss") > 3
    assert any("is late" in record.getMessage() for record in caplog.records)
    with CheckpointStore(root, filesystem=memory, background=False) as reader:
        assert reader.steps("run") == list(range(200))
        for step in (0, 99, 199):
            assert reader.verify("run", step).ok
        assert reader.load("run").files["state.bin"] == (199).to_bytes(4, "big") * 64


def test_read_faults_surface_as_errors(root: str, memory: Any) -> None:
    with CheckpointStore(root, filesystem=memory, background=False) as writer:
        writer.save("k", {"a.bin": b"a"}, step=1)
    flaky_reads = FaultInjectingFileSystem(memory, FaultPlan(read_transient_rate=1.0))
    reader = CheckpointStore(root, filesystem=flaky_reads, background=False)

    with pytest.raises(ConnectionError):
        reader.load("k")
    reader.close()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionError("reset"), True),
        (TimeoutError("slow"), True),
        (OSError(5, "I/O error"), True),
        (FileNotFoundError("gone"), False),
        (PermissionError("denied"), False),
        (LeaseHeldError("held"), False),
        (CorruptCheckpointError("bad"), False),
        (FlushError("late"), False),
        (ValueError("bug"), False),
        (InjectedCrash("dead"), False),
    ],
)
def test_transient_error_classification(error: BaseException, expected: bool) -> None:
    assert is_transient(error) is expected


def test_wrapped_error_classified_by_cause() -> None:
    for cause, expected in ((ConnectionError("reset"), True), (PermissionError("denied"), False)):
        wrapped = StorageError("saving failed")
        wrapped.__cause__ = cause
        assert is_transient(wrapped) is expected

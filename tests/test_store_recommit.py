"""Retried commits and failed retention deletes never lose a committed checkpoint."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import fsspec
import pytest

from persistkit import CheckpointStore
from persistkit._storage import LocalStorage
from persistkit.errors import FlushError
from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan

STEP_1 = "_step-0000000001"


@pytest.fixture
def root(persistkit_store_url: str) -> str:
    return str(fsspec.core.url_to_fs(persistkit_store_url)[1])


@pytest.fixture
def memory() -> Any:
    return fsspec.filesystem("memory")


class ManifestResponseLost(FaultInjectingFileSystem):
    """Lose the response of step 1's first manifest write, then fail its payload writes."""

    def _draw_fault(self, index: int, path: str) -> str | None:
        manifest = f"{STEP_1}/_manifest.json"
        if manifest in path and not any(record.path == path for record in self.write_log):
            return "ack-loss"
        manifest_written = any(manifest in record.path for record in self.write_log)
        if manifest_written and f"{STEP_1}/model.bin" in path:
            return "transient"
        return None


class RetentionDeleteResponseLost(FaultInjectingFileSystem):
    """Lose the response of retention deleting step 0, then fail step 1's payload writes."""

    def _draw_fault(self, index: int, path: str) -> str | None:
        delete_failed = any(record.fault == "ack-loss" for record in self.write_log)
        step_1_committed = any(f"{STEP_1}/_manifest" in record.path for record in self.write_log)
        if step_1_committed and not delete_failed and "_step-0000000000/model.bin" in path:
            return "ack-loss"
        if delete_failed and f"{STEP_1}/model.bin" in path:
            return "transient"
        return None


class FirstDeleteFails(FaultInjectingFileSystem):
    """Fail the first rm_file with a ConnectionError before it removes anything."""

    failed_once = False

    def rm_file(self, path: str) -> None:
        if not self.failed_once:
            self.failed_once = True
            raise ConnectionError(f"injected failure of rm_file {path}")
        super().rm_file(path)


class TruncatesStep1Payload(FaultInjectingFileSystem):
    """Store step 1's payload without its last byte, as a storage that truncates silently."""

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if f"{STEP_1}/model.bin" in path:
            value = value[:-1]
        super().pipe_file(path, value, mode=mode, **kwargs)


def test_retry_after_truncated_payload(root: str, memory: Any) -> None:
    faulty = TruncatesStep1Payload(memory, FaultPlan())
    store = CheckpointStore(
        root, filesystem=faulty, max_attempts=3, retry_delay=0.001, retention={"keep_last": 1}
    )
    store.save("k", {"model.bin": b"step0"}, step=0)
    store.flush(timeout=30)
    store.save("k", {"model.bin": b"step1"}, step=1)
    with pytest.raises(FlushError):
        store.flush(timeout=30)

    assert 0 in store.steps("k")
    assert store.load("k", step=0).files["model.bin"] == b"step0"
    store.close()


def test_retry_after_lost_manifest_response(root: str, memory: Any) -> None:
    faulty = ManifestResponseLost(memory, FaultPlan())
    store = CheckpointStore(root, filesystem=faulty, max_attempts=3, retry_delay=0.001)
    store.save("k", {"model.bin": b"step0"}, step=0)
    store.flush(timeout=30)
    store.save("k", {"model.bin": b"step1"}, step=1)
    store.flush(timeout=30)

    manifest_removals = [
        record for record in faulty.write_log if record.operation == "rm_file" and STEP_1 in record.path
    ]
    assert manifest_removals == []
    assert store.steps("k") == [0, 1]
    assert store.load("k").files["model.bin"] == b"step1"
    store.close()


def test_retry_after_lost_delete_response(root: str, memory: Any) -> None:
    faulty = RetentionDeleteResponseLost(memory, FaultPlan())
    store = CheckpointStore(
        root, filesystem=faulty, max_attempts=3, retry_delay=0.001, retention={"keep_last": 1}
    )
    store.save("k", {"model.bin": b"step0"}, step=0)
    store.flush(timeout=30)
    store.save("k", {"model.bin": b"step1"}, step=1)
    store.flush(timeout=30)

    assert any(record.fault == "ack-loss" for record in faulty.write_log)
    assert store.steps("k") == [1]
    assert store.load("k").files["model.bin"] == b"step1"
    store.close()


def test_failed_delete_retried_on_next_save(
    root: str, memory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    faulty = FirstDeleteFails(memory, FaultPlan())
    store = CheckpointStore(root, filesystem=faulty, background=False, retention={"keep_last": 1})
    store.save("k", {"model.bin": b"0"}, step=0)

    with caplog.at_level(logging.WARNING, logger="persistkit"):
        store.save("k", {"model.bin": b"1"}, step=1)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("k/_step-0000000000" in message for message in warnings)
    assert store.steps("k") == [0, 1]

    store.save("k", {"model.bin": b"2"}, step=2)
    assert store.steps("k") == [2]
    store.close()


class PayloadDeleteFailsOnce(FaultInjectingFileSystem):
    """Fail the first removal of step 0's payload, after its manifest was removed."""

    def _draw_fault(self, index: int, path: str) -> str | None:
        failed = any(record.fault is not None for record in self.write_log)
        step_1_committed = any(f"{STEP_1}/_manifest" in record.path for record in self.write_log)
        if step_1_committed and not failed and "_step-0000000000/model.bin" in path:
            return "transient"
        return None


def test_half_deleted_step_removed_next_save(root: str, memory: Any) -> None:
    faulty = PayloadDeleteFailsOnce(memory, FaultPlan())
    store = CheckpointStore(root, filesystem=faulty, background=False, retention={"keep_last": 1})
    store.save("k", {"model.bin": b"0"}, step=0)
    store.save("k", {"model.bin": b"1"}, step=1)
    assert store.steps("k") == [1]
    assert memory.exists(f"{root}/k/_step-0000000000/model.bin")

    store.save("k", {"model.bin": b"2"}, step=2)

    assert store.steps("k") == [2]
    assert not memory.exists(f"{root}/k/_step-0000000000/model.bin")
    store.close()


def test_local_recommit_keeps_step_directory(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    storage.commit_checkpoint("k/step", {"model.bin": b"1"}, "_manifest.json", b"{}", [])
    before = os.stat(tmp_path / "k" / "step").st_ino

    storage.commit_checkpoint("k/step", {"model.bin": b"1"}, "_manifest.json", b"{}", [])

    assert os.stat(tmp_path / "k" / "step").st_ino == before


def test_local_failed_delete_keeps_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A local file system cannot be made to fail one delete, so LocalStorage.delete_tree
    # is patched to fail its first call.
    original = LocalStorage.delete_tree
    calls: list[str] = []

    def fail_first(self: LocalStorage, path: str) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise PermissionError(f"injected failure of delete_tree {path}")
        original(self, path)

    monkeypatch.setattr(LocalStorage, "delete_tree", fail_first)
    store = CheckpointStore(str(tmp_path), background=False, retention={"keep_last": 1})
    store.save("k", {"model.bin": b"0"}, step=0)
    with caplog.at_level(logging.WARNING, logger="persistkit"):
        store.save("k", {"model.bin": b"1"}, step=1)

    assert any("Retention could not delete" in record.getMessage() for record in caplog.records)
    assert store.steps("k") == [0, 1]
    store.save("k", {"model.bin": b"2"}, step=2)
    assert store.steps("k") == [2]
    store.close()

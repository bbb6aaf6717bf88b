"""Verification on load, fallback to the newest verified step, and partial writes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from persistkit import CheckpointStore
from persistkit._layout import MANIFEST_NAME, step_dir_name
from persistkit.errors import CheckpointNotFoundError, CorruptCheckpointError


def _save_steps(store: CheckpointStore, key: str, steps: list[int]) -> None:
    for step in steps:
        store.save(key, {"model.bin": f"payload {step}".encode() * 10}, step=step)


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[CheckpointStore]:
    with CheckpointStore(str(tmp_path / "store"), background=False) as store:
        yield store


def _step_file(store: CheckpointStore, key: str, step: int, name: str) -> Path:
    return Path(store.url, key, step_dir_name(step), name)


def test_truncated_file_falls_back_with_warning(
    local_store: CheckpointStore, caplog: pytest.LogCaptureFixture
) -> None:
    _save_steps(local_store, "k", [1, 2, 3])
    path = _step_file(local_store, "k", 3, "model.bin")
    path.write_bytes(path.read_bytes()[:-4])

    with caplog.at_level(logging.WARNING, logger="persistkit"):
        checkpoint = local_store.load("k")

    assert checkpoint.step == 2
    assert checkpoint.files["model.bin"] == b"payload 2" * 10
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("step 3" in message and "step 2" in message for message in messages), messages


def test_flipped_byte_detected_by_sha256(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1, 2])
    path = _step_file(local_store, "k", 2, "model.bin")
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))

    assert local_store.load("k").step == 1
    with pytest.raises(CorruptCheckpointError, match="SHA-256"):
        local_store.load("k", step=2)


def test_explicit_corrupt_step_raises(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1, 2])
    _step_file(local_store, "k", 2, "model.bin").unlink()

    with pytest.raises(CorruptCheckpointError, match=r"step 2.*missing") as raised:
        local_store.load("k", step=2)
    assert isinstance(raised.value, ValueError)


def test_unreadable_manifest_falls_back(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1, 2])
    _step_file(local_store, "k", 2, MANIFEST_NAME).write_text("{not json")

    assert local_store.load("k").step == 1
    with pytest.raises(CorruptCheckpointError, match="unreadable manifest"):
        local_store.load("k", step=2)


def test_manifest_of_other_step_is_corrupt(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1, 2])
    manifest = json.loads(_step_file(local_store, "k", 1, MANIFEST_NAME).read_text())
    _step_file(local_store, "k", 2, MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(CorruptCheckpointError, match="names key 'k' step 1"):
        local_store.load("k", step=2)


def test_every_step_corrupt_raises(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1, 2])
    for step in (1, 2):
        _step_file(local_store, "k", step, "model.bin").write_bytes(b"")

    with pytest.raises(CorruptCheckpointError, match="no committed checkpoint of key 'k'"):
        local_store.load("k")


def test_manifest_records_sizes_and_hashes(local_store: CheckpointStore) -> None:
    local_store.save("k", {"a.bin": b"abc", "b.json": [1, 2]}, step=4, metrics={"auc": 0.9})
    manifest = json.loads(_step_file(local_store, "k", 4, MANIFEST_NAME).read_text())

    assert manifest["format_version"] == 1
    assert manifest["key"] == "k"
    assert manifest["step"] == 4
    assert manifest["writer_id"] == local_store.writer_id
    assert manifest["created_at"].endswith("Z")
    assert manifest["files"]["a.bin"] == {
        "size": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "serializer": "bytes",
    }
    assert manifest["files"]["b.json"]["serializer"] == "json"
    assert manifest["metrics"] == {"auc": 0.9}


def test_store_marker_written(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1])
    marker = json.loads(Path(local_store.url, "_persistkit_store.json").read_text())
    assert marker == {"format": "persistkit-store", "version": 1}


def test_object_store_step_without_manifest_is_invisible(persistkit_store_url: str) -> None:
    store = CheckpointStore(persistkit_store_url, background=False)
    _save_steps(store, "k", [1])
    fs, root = fsspec.core.url_to_fs(persistkit_store_url)
    fs.pipe_file(f"{root}/k/{step_dir_name(2)}/model.bin", b"partial upload")

    assert store.steps("k") == [1]
    assert store.load("k").step == 1
    assert store.partial_writes("k") == [step_dir_name(2)]


def test_local_staging_directory_is_invisible(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1])
    staging = Path(local_store.url, "k", "_staging-_step-0000000002-abc")
    staging.mkdir()
    (staging / "model.bin").write_bytes(b"partial")
    (staging / MANIFEST_NAME).write_text("{}")

    assert local_store.steps("k") == [1]
    assert local_store.partial_writes("k") == [staging.name]


def test_writer_removes_stale_partial_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = str(tmp_path / "store")
    first = CheckpointStore(url, background=False)
    _save_steps(first, "k", [1])
    first.close()
    stale = Path(url, "k", "_staging-_step-0000000002-abc")
    stale.mkdir()

    second = CheckpointStore(url, background=False)
    with caplog.at_level(logging.WARNING, logger="persistkit"):
        _save_steps(second, "k", [2])

    assert not stale.exists()
    assert any("partial write" in record.getMessage() for record in caplog.records)
    assert second.steps("k") == [1, 2]
    second.close()


def test_local_commit_leaves_no_staging(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1, 2])
    local_store.save("k", {"model.bin": b"replacement"}, step=2)

    names = sorted(os.listdir(Path(local_store.url, "k")))
    assert names == ["_lease", step_dir_name(1), step_dir_name(2)]


def test_load_of_unknown_step_is_not_found(local_store: CheckpointStore) -> None:
    _save_steps(local_store, "k", [1])
    with pytest.raises(CheckpointNotFoundError):
        local_store.load("k", step=7)

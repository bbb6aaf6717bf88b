"""Writer leases: a second writer is detected, takes over only after expiry."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from persistkit import CheckpointStore
from persistkit._lease import WriterLease
from persistkit._storage import LocalStorage
from persistkit.errors import LeaseHeldError, StoreConflictError


def _save(store: CheckpointStore, key: str, step: int) -> None:
    store.save(key, {"a.bin": f"{store.writer_id} {step}".encode()}, step=step)


def test_second_writer_rejected(persistkit_store_url: str) -> None:
    first = CheckpointStore(persistkit_store_url, background=False, writer_id="writer-one")
    second = CheckpointStore(persistkit_store_url, background=False, writer_id="writer-two")
    _save(first, "k", 1)

    with pytest.raises(LeaseHeldError, match="'writer-one'") as raised:
        _save(second, "k", 2)

    assert isinstance(raised.value, StoreConflictError)
    assert first.steps("k") == [1]
    first.close()
    second.close()


def test_writers_of_different_keys_coexist(persistkit_store_url: str) -> None:
    with (
        CheckpointStore(persistkit_store_url, background=False) as first,
        CheckpointStore(persistkit_store_url, background=False) as second,
    ):
        _save(first, "trial-0", 1)
        _save(second, "trial-1", 1)
        assert first.keys() == ["trial-0", "trial-1"]


def test_expired_lease_taken_over(persistkit_store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    first = CheckpointStore(persistkit_store_url, background=False, writer_id="old", lease_ttl=0.2)
    second = CheckpointStore(persistkit_store_url, background=False, writer_id="new", lease_ttl=60)
    _save(first, "k", 1)
    time.sleep(0.3)

    with caplog.at_level(logging.WARNING, logger="persistkit"):
        _save(second, "k", 2)
    assert any("Taking over" in record.getMessage() for record in caplog.records)

    with pytest.raises(LeaseHeldError, match="took over"):
        _save(first, "k", 3)
    assert second.steps("k") == [1, 2]
    second.close()
    first.close()


def test_close_releases_lease(persistkit_store_url: str) -> None:
    with CheckpointStore(persistkit_store_url, background=False, writer_id="first") as first:
        _save(first, "k", 1)
    with CheckpointStore(persistkit_store_url, background=False, writer_id="second") as second:
        _save(second, "k", 2)
        assert second.steps("k") == [1, 2]


def test_same_writer_id_resumes_at_once(persistkit_store_url: str) -> None:
    first = CheckpointStore(persistkit_store_url, background=False, writer_id="job-42")
    _save(first, "k", 1)
    # The first store is abandoned without close(), as after a crash.
    second = CheckpointStore(persistkit_store_url, background=False, writer_id="job-42")
    _save(second, "k", 2)
    assert second.steps("k") == [1, 2]
    second.close()


def test_lease_of_dead_local_process_taken_over(tmp_path: Path) -> None:
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait(timeout=30)
    lease_dir = tmp_path / "store" / "k" / "_lease"
    lease_dir.mkdir(parents=True)
    record = {
        "owner": "crashed",
        "host": socket.gethostname(),
        "pid": dead_pid.pid,
        "acquired_at": time.time(),
        "expires_at": time.time() + 3600,
    }
    (lease_dir / "0000000001.json").write_text(json.dumps(record))

    with CheckpointStore(str(tmp_path / "store"), background=False) as store:
        _save(store, "k", 1)
        assert store.steps("k") == [1]


def test_lease_renewed_by_saves(persistkit_store_url: str) -> None:
    first = CheckpointStore(persistkit_store_url, background=False, writer_id="first", lease_ttl=1.0)
    second = CheckpointStore(persistkit_store_url, background=False, writer_id="second")
    _save(first, "k", 1)
    time.sleep(0.6)
    _save(first, "k", 2)  # renews: less than half of the TTL was left
    time.sleep(0.6)

    with pytest.raises(LeaseHeldError):
        _save(second, "k", 3)
    first.close()
    second.close()


def test_concurrent_acquisition_has_one_winner(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path / "store"))
    leases = [WriterLease(storage, "k", owner=f"writer-{index}", ttl=60) for index in range(8)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(leases))

    def acquire(lease: WriterLease) -> None:
        barrier.wait()
        try:
            lease.ensure()
            outcomes.append("won")
        except LeaseHeldError:
            outcomes.append("lost")

    threads = [threading.Thread(target=acquire, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert outcomes.count("won") == 1
    assert outcomes.count("lost") == 7


def test_unreadable_lease_counts_as_expired(tmp_path: Path) -> None:
    lease_dir = tmp_path / "store" / "k" / "_lease"
    lease_dir.mkdir(parents=True)
    (lease_dir / "0000000001.json").write_text("{truncated")

    with CheckpointStore(str(tmp_path / "store"), background=False) as store:
        _save(store, "k", 1)
        assert store.steps("k") == [1]

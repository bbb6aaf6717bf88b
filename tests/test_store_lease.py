"""Writer leases: a second writer is detected, takes over only after expiry."""

from __future__ import annotations

import json
import logging
import os
import signal
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
from persistkit.errors import FlushError, LeaseHeldError, StoreConflictError


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


# -- a crashed writer on another host -------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]

# Saves step 0 of key "k" as if on host "crashed-host", then dies without closing the
# store, as a Kaggle session does when it is killed: its lease stays until it expires.
CRASHED_WRITER = """
import os, signal, socket, sys
socket.gethostname = lambda: "crashed-host"
from persistkit import CheckpointStore
store = CheckpointStore(sys.argv[1], background=False, writer_id=sys.argv[2], lease_ttl=float(sys.argv[3]))
store.save("k", {"a.bin": b"crashed session"}, step=0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def run_crashed_writer(store_dir: Path, ttl: float) -> float:
    """Run the crashed writer in a subprocess; return the expiry time of its lease."""
    completed = subprocess.run(
        [sys.executable, "-c", CRASHED_WRITER, str(store_dir), "old-session", str(ttl)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == -signal.SIGKILL, completed.stderr
    lease = WriterLease(LocalStorage(str(store_dir)), "k", owner="reader", ttl=0).current()
    assert lease is not None
    assert lease.host == "crashed-host"
    return lease.expires_at


def test_resume_waits_for_crashed_lease(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store_dir = tmp_path / "store"
    expires_at = run_crashed_writer(store_dir, ttl=4.0)
    store = CheckpointStore(str(store_dir), writer_id="new-session")

    with caplog.at_level(logging.WARNING, logger="persistkit"):
        for step in (1, 2, 3):
            _save(store, "k", step)
            time.sleep(0.2)
        assert time.time() < expires_at, "the test machine was too slow for this lease TTL"
        with pytest.raises(FlushError, match="stay queued") as raised:
            store.flush(timeout=10)
        store.close(timeout=30)

    message = str(raised.value)
    assert "'old-session'" in message
    assert "host crashed-host" in message
    assert "pid " in message
    assert "until " in message
    waits = [record for record in caplog.records if "waits for another writer's lease" in record.getMessage()]
    assert len(waits) == 1
    assert waits[0].levelno == logging.WARNING
    assert "key 'k'" in waits[0].getMessage()
    assert "old-session" in waits[0].getMessage()
    assert time.time() >= expires_at
    with CheckpointStore(str(store_dir), background=False) as reader:
        assert reader.steps("k") == [0, 3]
        assert reader.load("k").files["a.bin"] == b"new-session 3"


def test_sync_save_names_holder_and_remedy(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    run_crashed_writer(store_dir, ttl=600.0)

    with (
        CheckpointStore(str(store_dir), background=False) as store,
        pytest.raises(LeaseHeldError) as raised,
    ):
        _save(store, "k", 1)

    message = str(raised.value)
    assert "writer 'old-session' (host crashed-host, pid " in message
    assert "until 20" in message
    assert "writer_id='old-session'" in message
    assert raised.value.expires_at is not None
    assert raised.value.retry_at is not None


def test_waiting_save_runs_after_release(persistkit_store_url: str) -> None:
    holder = CheckpointStore(persistkit_store_url, background=False, writer_id="holder")
    _save(holder, "k", 1)
    waiting = CheckpointStore(persistkit_store_url, writer_id="waiting", lease_ttl=10.0)
    _save(waiting, "k", 2)
    _save(waiting, "other", 1)
    deadline = time.monotonic() + 10
    while waiting.steps("other") != [1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting.steps("other") == [1], "a waiting key must not hold up other keys"

    holder.close()
    started = time.monotonic()
    waiting.close(timeout=30)

    assert time.monotonic() - started < 5.0
    with CheckpointStore(persistkit_store_url, background=False) as reader:
        assert reader.steps("k") == [1, 2]


def test_close_gives_up_on_live_holder(persistkit_store_url: str) -> None:
    # The holder renews its lease while idle, so it is alive: the waiting save is dropped.
    holder = CheckpointStore(persistkit_store_url, writer_id="live", lease_ttl=1.5)
    _save(holder, "k", 1)
    holder.flush(timeout=10)
    waiting = CheckpointStore(persistkit_store_url, writer_id="waiting", lease_ttl=10.0)
    _save(waiting, "k", 2)

    started = time.monotonic()
    with pytest.raises(FlushError, match="were not saved"):
        waiting.close(timeout=30)

    assert time.monotonic() - started < 10.0
    assert holder.steps("k") == [1]
    holder.close()


def test_second_store_in_process_named(persistkit_store_url: str) -> None:
    first = CheckpointStore(persistkit_store_url, background=False, writer_id="first")
    second = CheckpointStore(persistkit_store_url, background=False, writer_id="second")
    _save(first, "k", 1)

    with pytest.raises(LeaseHeldError) as raised:
        _save(second, "k", 2)

    message = str(raised.value)
    assert "another CheckpointStore in this process" in message
    assert "'first'" in message
    assert "use one CheckpointStore object" in message
    first.close()
    second.close()


def test_default_lease_ttl(persistkit_store_url: str) -> None:
    with CheckpointStore(persistkit_store_url, background=False) as store:
        assert store.lease_ttl == 300.0
    with CheckpointStore(persistkit_store_url, background=False, lease_ttl=42.0) as store:
        assert store.lease_ttl == 42.0


def test_waiting_save_dropped_at_memory_cap(persistkit_store_url: str) -> None:
    holder = CheckpointStore(persistkit_store_url, background=False, writer_id="holder")
    _save(holder, "k", 1)
    waiting = CheckpointStore(persistkit_store_url, writer_id="waiting", max_pending_bytes=150)
    waiting.save("k", {"a.bin": b"k" * 100}, step=2)
    with pytest.raises(FlushError, match="wait for another writer's lease"):
        waiting.flush(timeout=10)

    waiting.save("other", {"a.bin": b"o" * 100}, step=1)

    with pytest.raises(FlushError, match="dropped while it waited for another writer's lease"):
        waiting.flush(timeout=10)
    assert waiting.steps("other") == [1]
    assert waiting._uploader is not None
    assert waiting._uploader.pending_bytes == 0
    waiting.close()
    holder.close()

"""Writer leases: at most one process writes a key at a time.

Each key has a ``_lease/`` directory of numbered generations::

    <key>/_lease/0000000001.json   {"owner": "host:pid:id", "host": ..., "pid": ...,
    <key>/_lease/0000000002.json    "expires_at": 1796425391.2, "acquired_at": ...}

The highest generation is the current lease. A writer acquires a key by creating the
next generation with a create-only write, so when two writers race for the same
generation exactly one of them wins. It may do so when the key has no lease, when the
current lease is its own, when that lease has expired, or when its owner is a process on
this host that no longer runs. A holder renews by rewriting its own generation. Before
each commit it checks that no newer generation exists. If one does, another writer took
over, and the holder gets :class:`LeaseHeldError` instead of interleaving its
checkpoints with the new owner's.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass

from persistkit._layout import LEASE_DIR
from persistkit._storage import Storage
from persistkit.errors import LeaseHeldError

__all__ = ["LeaseInfo", "WriterLease"]

logger = logging.getLogger(__name__)

_GENERATION_DIGITS = 10


@dataclass(frozen=True)
class LeaseInfo:
    """One lease generation as stored."""

    generation: int
    owner: str
    host: str
    pid: int
    expires_at: float

    def is_expired(self, now: float) -> bool:
        """Return whether the lease expired before ``now`` (seconds since the epoch)."""
        return now >= self.expires_at

    def owner_is_dead_local_process(self) -> bool:
        """Return whether the owner ran on this host under a PID that no longer exists."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _generation_name(generation: int) -> str:
    return f"{generation:0{_GENERATION_DIGITS}d}.json"


class WriterLease:
    """The lease of one writer on one key of a store.

    Args:
        storage: The store's storage.
        key_path: The key's directory, relative to the storage root.
        owner: The writer id recorded in the lease.
        ttl: Seconds a lease stays valid after it was written.
    """

    def __init__(self, storage: Storage, key_path: str, *, owner: str, ttl: float) -> None:
        self.storage = storage
        self.key = key_path
        self.owner = owner
        self.ttl = ttl
        self.generation: int | None = None
        self.expires_at = 0.0

    @property
    def _dir(self) -> str:
        return f"{self.key}/{LEASE_DIR}"

    def _read(self, generation: int) -> LeaseInfo | None:
        try:
            raw = json.loads(self.storage.read_bytes(f"{self._dir}/{_generation_name(generation)}"))
            return LeaseInfo(
                generation=generation,
                owner=str(raw["owner"]),
                host=str(raw.get("host", "")),
                pid=int(raw.get("pid", 0)),
                expires_at=float(raw["expires_at"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # A lease that cannot be parsed protects nothing; treat it as expired.
            return LeaseInfo(generation, owner="<unreadable>", host="", pid=0, expires_at=0.0)

    def _generations(self) -> list[int]:
        names = self.storage.list_dir(self._dir)
        return sorted(int(name[:-5]) for name in names if name.endswith(".json") and name[:-5].isdigit())

    def current(self) -> LeaseInfo | None:
        """Return the newest lease generation of the key, or None when there is none."""
        generations = self._generations()
        return self._read(generations[-1]) if generations else None

    def _payload(self, now: float) -> bytes:
        record = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now,
            "expires_at": now + self.ttl,
        }
        return json.dumps(record).encode("utf-8")

    def ensure(self) -> None:
        """Acquire the lease, or renew it when less than half of its time remains.

        Raises:
            LeaseHeldError: Another writer holds an unexpired lease, or took this
                writer's lease over.
        """
        now = time.time()
        current = self.current()
        if self.generation is not None and current is not None:
            if current.generation != self.generation:
                self.generation = None
                raise LeaseHeldError(
                    f"writer {current.owner!r} took over key {self.key!r} in {self.storage.url} "
                    f"after this writer's lease expired; stop this writer or delete the lease "
                    f"directory {self._dir!r} if that writer is gone"
                )
            if self.expires_at - now > self.ttl / 2:
                return
            self._write(self.generation, now)
            return
        self._acquire(current, now)

    def _acquire(self, current: LeaseInfo | None, now: float) -> None:
        if current is not None and current.owner != self.owner:
            stale = current.is_expired(now) or current.owner_is_dead_local_process()
            if not stale:
                raise LeaseHeldError(
                    f"key {self.key!r} in {self.storage.url} is being written by "
                    f"{current.owner!r} until {time.ctime(current.expires_at)}; stop that "
                    f"writer, wait for its lease to expire, or use another key"
                )
            logger.warning(
                "Taking over key %r in %s from writer %r, whose lease is stale",
                self.key,
                self.storage.url,
                current.owner,
            )
        generation = 1 if current is None else current.generation + 1
        created = self.storage.create_exclusive(
            f"{self._dir}/{_generation_name(generation)}", self._payload(now)
        )
        if not created and not self._is_own(generation):
            raise LeaseHeldError(
                f"another writer acquired key {self.key!r} in {self.storage.url} at the same "
                "time as this one; only one process may write a key"
            )
        self.generation = generation
        self.expires_at = now + self.ttl
        if current is not None:
            self.storage.delete_tree(f"{self._dir}/{_generation_name(current.generation)}")

    def _is_own(self, generation: int) -> bool:
        # A retried create whose first response was lost finds its own lease in place.
        info = self._read(generation)
        return info is not None and info.owner == self.owner

    def _write(self, generation: int, now: float) -> None:
        self.storage.write_bytes(f"{self._dir}/{_generation_name(generation)}", self._payload(now))
        self.expires_at = now + self.ttl

    def release(self) -> None:
        """Delete this writer's lease so that another writer can start at once."""
        if self.generation is None:
            return
        current = self.current()
        if current is not None and current.generation == self.generation:
            self.storage.delete_tree(f"{self._dir}/{_generation_name(self.generation)}")
        self.generation = None

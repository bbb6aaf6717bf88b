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

A writer blocked by another writer's lease gets :class:`LeaseHeldError` with the
holder's expiry and a ``retry_at`` time. That time is the expiry, or sooner when the
next check for a released lease is due (every tenth of the TTL, between 1 and 30
seconds). The store's background uploader keeps such saves queued until then instead
of dropping them.

Lease lifetimes (``lease_ttl``), chosen per kind of storage:

- Local folders and object stores: 300 s. The store renews a held lease when a save
  finds less than half of it left and, from its upload thread, while idle. Each renewal
  is one small write per held key. A shorter TTL would shorten the time a crashed
  writer on another host blocks a resumed run, but that block now only delays saves.
  It would also renew more often per key, and the lease is checked only when a commit
  starts, so an upload that outlasts the remaining TTL lets another writer in.
- Hugging Face Hub: 900 s. Every lease write there is a commit, and the Hub limits
  commits per repository and hour. So the acquisition or renewal rides in the
  checkpoint's own commit, which is fenced by its parent commit, and an idle store
  renews nothing: a lease lapses 900 s after the key's last save. A lapsed lease that
  nobody took over is renewed by the next save. If another writer took it over, that
  save raises ``LeaseHeldError`` rather than interleaving. Releases at ``close`` go
  into one commit for all keys.
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
from persistkit._urls import redact_text
from persistkit.errors import LeaseHeldError, PersistkitError

__all__ = ["DEFAULT_LEASE_TTL", "HUB_LEASE_TTL", "HeldLeases", "LeaseInfo", "LeaseWrite", "WriterLease"]

logger = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = 300.0
HUB_LEASE_TTL = 900.0
_MIN_POLL_S = 1.0
_MAX_POLL_S = 30.0
_GENERATION_DIGITS = 10


def format_time(moment: float) -> str:
    """Return a Unix time as ``2026-12-04 22:05:31 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))


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

    def is_this_process(self) -> bool:
        """Return whether the lease was written by another store object in this process."""
        return self.host == socket.gethostname() and self.pid == os.getpid()

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

    def describe(self) -> str:
        """Return ``writer 'id' (host h, pid 12) until 2026-12-04 22:05:31 UTC``."""
        return (
            f"writer {self.owner!r} (host {self.host or 'unknown'}, pid {self.pid}) "
            f"until {format_time(self.expires_at)}"
        )


@dataclass(frozen=True)
class LeaseWrite:
    """Lease changes that ride in a checkpoint commit (Hub storage).

    Attributes:
        generation: The generation that is this writer's lease once the commit lands.
        files: Lease files to write, by path relative to the storage root.
        deletes: Older lease generations to delete in the same commit.
        expires_at: Expiry recorded in ``files``.
    """

    generation: int
    files: dict[str, bytes]
    deletes: list[str]
    expires_at: float


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

    @property
    def poll_interval(self) -> float:
        """Seconds between two checks whether a blocking lease was released."""
        return min(_MAX_POLL_S, max(_MIN_POLL_S, self.ttl / 10))

    def _path(self, generation: int) -> str:
        return f"{self._dir}/{_generation_name(generation)}"

    def _read(self, generation: int) -> LeaseInfo | None:
        try:
            raw = json.loads(self.storage.read_bytes(self._path(generation)))
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
            self._check_not_taken_over(current)
            if self.expires_at - now > self.ttl / 2:
                return
            self._write(current.generation, now)
            return
        self._acquire(current, now)

    def prepare_commit(self) -> LeaseWrite:
        """Return the lease write that acquires or renews this lease in a commit.

        For storage that commits leases with the checkpoint (the Hub), whose commits
        fail when the key's folder changed since the lease was read. Call
        :meth:`confirm` once the commit has landed.

        Raises:
            LeaseHeldError: As :meth:`ensure`.
        """
        now = time.time()
        current = self.current()
        if self.generation is not None and current is not None:
            self._check_not_taken_over(current)
        self._check_free(current, now)
        deletes: list[str] = []
        if current is not None and current.owner == self.owner:
            generation = current.generation
        else:
            generation = 1 if current is None else current.generation + 1
            if current is not None:
                deletes.append(self._path(current.generation))
        return LeaseWrite(generation, {self._path(generation): self._payload(now)}, deletes, now + self.ttl)

    def confirm(self, write: LeaseWrite) -> None:
        """Record that the commit carrying ``write`` has landed."""
        self.generation = write.generation
        self.expires_at = write.expires_at

    def _check_not_taken_over(self, current: LeaseInfo) -> None:
        if current.generation == self.generation:
            return
        self.generation = None
        raise LeaseHeldError(
            f"{current.describe()} took over key {self.key!r} in {self.storage.url} after "
            f"this writer's lease expired, so this writer stopped writing the key. Stop one "
            f"of the two writers; if {current.owner!r} is gone, its lease expires at "
            f"{format_time(current.expires_at)}",
            expires_at=current.expires_at,
        )

    def _check_free(self, current: LeaseInfo | None, now: float) -> None:
        """Raise LeaseHeldError unless ``current`` is absent, this writer's, or stale."""
        if current is None or current.owner == self.owner:
            return
        if current.is_expired(now) or current.owner_is_dead_local_process():
            logger.warning(
                "Taking over key %r in %s from %s, whose lease is stale",
                self.key,
                self.storage.url,
                current.describe(),
            )
            return
        retry_at = min(current.expires_at, now + self.poll_interval)
        if current.is_this_process():
            raise LeaseHeldError(
                f"key {self.key!r} in {self.storage.url} is held by another CheckpointStore "
                f"in this process (writer {current.owner!r}) until "
                f"{format_time(current.expires_at)}. Close that store before writing the key "
                "with this one, or use one CheckpointStore object for both",
                expires_at=current.expires_at,
                retry_at=retry_at,
            )
        raise LeaseHeldError(
            f"key {self.key!r} in {self.storage.url} is held by {current.describe()}. "
            "If that writer is still running, stop it or write another key. If it crashed, "
            "the key can be written once its lease expires (background saves wait for "
            f"that), or at once by opening this store with writer_id={current.owner!r}",
            expires_at=current.expires_at,
            retry_at=retry_at,
        )

    def _acquire(self, current: LeaseInfo | None, now: float) -> None:
        self._check_free(current, now)
        generation = 1 if current is None else current.generation + 1
        created = self.storage.create_exclusive(self._path(generation), self._payload(now))
        if not created and not self._is_own(generation):
            raise LeaseHeldError(
                f"another writer acquired key {self.key!r} in {self.storage.url} at the same "
                "time as this one; only one process may write a key",
                retry_at=now + self.poll_interval,
            )
        self.generation = generation
        self.expires_at = now + self.ttl
        if current is not None:
            self.storage.delete_tree(self._path(current.generation))

    def _is_own(self, generation: int) -> bool:
        # A retried create whose first response was lost finds its own lease in place.
        info = self._read(generation)
        return info is not None and info.owner == self.owner

    def _write(self, generation: int, now: float) -> None:
        self.storage.write_bytes(self._path(generation), self._payload(now))
        self.expires_at = now + self.ttl

    def own_path(self) -> str | None:
        """Return the path of this writer's lease file while it is the current lease."""
        if self.generation is None:
            return None
        current = self.current()
        if current is None or current.generation != self.generation:
            return None
        return self._path(self.generation)

    def release(self) -> None:
        """Delete this writer's lease so that another writer can start at once."""
        path = self.own_path()
        if path is not None:
            self.storage.delete_tree(path)
        self.generation = None


class HeldLeases:
    """The leases of one writer on the keys of a store, acquired when a key is written.

    Args:
        storage: The store's storage.
        owner: The writer id recorded in the leases.
        ttl: Seconds a lease stays valid after it was written.
    """

    def __init__(self, storage: Storage, *, owner: str, ttl: float) -> None:
        self.storage = storage
        self.owner = owner
        self.ttl = ttl
        self._leases: dict[str, WriterLease] = {}

    def acquire(self, key: str) -> tuple[LeaseWrite | None, bool]:
        """Acquire or renew the lease on ``key``.

        Returns:
            The lease write that the checkpoint commit must carry where the storage
            commits leases with checkpoints (else None), and whether this writer did
            not hold the key before.

        Raises:
            LeaseHeldError: Another writer holds the key or took it over.
        """
        lease = self._leases.get(key)
        if lease is None:
            lease = WriterLease(self.storage, key, owner=self.owner, ttl=self.ttl)
        newly_held = lease.generation is None
        lease_write = None
        if self.storage.commits_carry_leases:
            lease_write = lease.prepare_commit()
        else:
            lease.ensure()
        self._leases[key] = lease
        return lease_write, newly_held

    def confirm(self, key: str, write: LeaseWrite) -> None:
        """Record that the commit carrying ``write`` for ``key`` has landed."""
        self._leases[key].confirm(write)

    def renew(self) -> None:
        """Renew every held lease that has less than half of its time left.

        Raises:
            LeaseHeldError: Another writer took one of the leases over.
        """
        for lease in list(self._leases.values()):
            if lease.generation is not None:
                lease.ensure()

    def release(self) -> None:
        """Delete every lease this writer holds, logging the ones that fail."""
        paths: list[str] = []
        for lease in self._leases.values():
            try:
                path = lease.own_path()
            except (PersistkitError, OSError) as error:
                self._log_release_failure(lease.key, error)
                continue
            if path is not None:
                paths.append(path)
        try:
            # One commit for every lease on the Hub, one delete per lease elsewhere.
            self.storage.delete_many(paths)
        except (PersistkitError, OSError) as error:
            self._log_release_failure(", ".join(self._leases), error)
        self._leases.clear()

    def _log_release_failure(self, keys: str, error: Exception) -> None:
        logger.warning(
            "Could not release the lease on key %s in %s: %s; it expires after %g s",
            keys,
            self.storage.url,
            redact_text(str(error)),
            self.ttl,
        )

"""An fsspec filesystem wrapper that injects storage faults, for tests.

:class:`FaultInjectingFileSystem` forwards every call to a target filesystem and, per
:class:`FaultPlan`, makes write operations (``pipe_file``, ``rm_file`` and each file
that ``rm`` removes) fail the way remote storage fails:

- transient errors: ``ConnectionError`` before the write happens;
- lost acknowledgements: the write happens, then ``ConnectionError`` is raised;
- timeouts: ``TimeoutError`` after an optional delay, before the write happens;
- a crash at a chosen write: :class:`InjectedCrash` is raised before or after that
  write, and every later call raises it too, as if the process had died there.

After a crash every call raises ``InjectedCrash``, so retries cannot revive the
simulated process: a background uploader records the failure and nothing more reaches
the target. Every attempted write is recorded in ``write_log`` so a
test can tell in which phase a crash hit (payload, manifest, retention delete)::

    fs = FaultInjectingFileSystem(fsspec.filesystem("memory"), FaultPlan(transient_rate=0.2))
    store = CheckpointStore("/run", filesystem=fs)
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from fsspec import AbstractFileSystem

__all__ = ["FaultInjectingFileSystem", "FaultPlan", "InjectedCrash", "WriteRecord"]


class InjectedCrash(Exception):
    """The simulated death of the writing process at a planned write."""


@dataclass(frozen=True)
class FaultPlan:
    """Which faults a :class:`FaultInjectingFileSystem` injects into write operations.

    Attributes:
        transient_rate: Probability that a write raises ConnectionError without writing.
        ack_loss_rate: Probability that a write succeeds but raises ConnectionError.
        timeout_rate: Probability that a write raises TimeoutError without writing.
        timeout_delay: Seconds to sleep before raising an injected TimeoutError.
        write_delay: Seconds to sleep before every write, to simulate a slow link.
        read_transient_rate: Probability that a read (cat_file) raises ConnectionError.
        crash_at_write: 1-based index of the write at which to raise InjectedCrash, or None.
        crash_at_path: Raise InjectedCrash at the first write whose path contains this
            text, or None.
        crash_moment: Crash ``"before"`` or ``"after"`` performing that write.
        seed: Seed of the random generator that draws the faults.
    """

    transient_rate: float = 0.0
    ack_loss_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_delay: float = 0.0
    write_delay: float = 0.0
    read_transient_rate: float = 0.0
    crash_at_write: int | None = None
    crash_at_path: str | None = None
    crash_moment: Literal["before", "after"] = "before"
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (self.transient_rate, self.ack_loss_rate, self.timeout_rate, self.read_transient_rate)
        if any(not 0.0 <= rate <= 1.0 for rate in rates):
            raise ValueError(f"fault rates must be between 0 and 1, got {rates}")
        if self.transient_rate + self.ack_loss_rate + self.timeout_rate > 1.0:
            raise ValueError("transient_rate + ack_loss_rate + timeout_rate must not exceed 1")
        if self.crash_moment not in ("before", "after"):
            raise ValueError(f"crash_moment must be 'before' or 'after', got {self.crash_moment!r}")


@dataclass(frozen=True)
class WriteRecord:
    """One attempted write: its 1-based index, operation, path and what was injected."""

    index: int
    operation: Literal["pipe_file", "rm_file"]
    path: str
    fault: str | None


class FaultInjectingFileSystem(AbstractFileSystem):
    """Forward calls to ``target`` and inject the faults of ``plan`` into writes.

    Args:
        target: The filesystem that stores the data, for example a memory filesystem.
        plan: The faults to inject.
    """

    protocol = "faulty"
    cachable = False

    def __init__(self, target: AbstractFileSystem, plan: FaultPlan | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.plan = plan or FaultPlan()
        self.write_log: list[WriteRecord] = []
        self.crashed = False
        self._random = random.Random(self.plan.seed)
        self._lock = threading.Lock()

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        text = str(path)
        if text.startswith("faulty://"):
            text = text[len("faulty://") :]
        return text.rstrip("/") or "/"

    def _check_alive(self) -> None:
        if self.crashed:
            raise InjectedCrash("the simulated process already crashed")

    def _draw_fault(self, index: int, path: str) -> str | None:
        plan = self.plan
        at_path = plan.crash_at_path is not None and plan.crash_at_path in path
        if plan.crash_at_write == index or at_path:
            return f"crash-{plan.crash_moment}"
        draw = self._random.random()
        for name, rate in (
            ("transient", plan.transient_rate),
            ("ack-loss", plan.ack_loss_rate),
            ("timeout", plan.timeout_rate),
        ):
            if draw < rate:
                return name
            draw -= rate
        return None

    def _write(self, operation: Literal["pipe_file", "rm_file"], path: str, perform: Any) -> None:
        if self.plan.write_delay:
            time.sleep(self.plan.write_delay)
        with self._lock:
            self._check_alive()
            index = len(self.write_log) + 1
            fault = self._draw_fault(index, path)
            self.write_log.append(WriteRecord(index, operation, path, fault))
            if fault in ("crash-before", "crash-after"):
                self.crashed = True
                if fault == "crash-after":
                    # The write's own outcome (FileExistsError from a create-only write,
                    # say) never reaches a process that died right after sending it.
                    with contextlib.suppress(Exception):
                        perform()
                raise InjectedCrash(f"simulated crash at write {index} ({operation} {path})")
        if fault == "transient":
            raise ConnectionError(f"injected transient failure of {operation} {path}")
        if fault == "timeout":
            time.sleep(self.plan.timeout_delay)
            raise TimeoutError(f"injected timeout of {operation} {path}")
        perform()
        if fault == "ack-loss":
            raise ConnectionError(f"injected lost response after {operation} {path}")

    # Writes.

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self._write("pipe_file", path, lambda: self.target.pipe_file(path, value, mode=mode, **kwargs))

    def rm_file(self, path: str) -> None:
        self._write("rm_file", path, lambda: self.target.rm_file(path))

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        self._check_alive()
        if not self.target.exists(path):
            raise FileNotFoundError(path)
        files = sorted(self.target.find(path)) if recursive else [path]
        for file in files:
            self.rm_file(file)
        if recursive and self.target.exists(path):
            self.target.rm(path, recursive=True)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._check_alive()
        self.target.mkdir(path, create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._check_alive()
        self.target.makedirs(path, exist_ok=exist_ok)

    # Reads.

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        self._check_alive()
        if self.plan.read_transient_rate and self._random.random() < self.plan.read_transient_rate:
            raise ConnectionError(f"injected transient failure of cat_file {path}")
        return bytes(self.target.cat_file(path, start=start, end=end, **kwargs))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        self._check_alive()
        kwargs.pop("refresh", None)
        return self.target.ls(path, detail=detail, **kwargs)

    def info(self, path: str, **kwargs: Any) -> Any:
        self._check_alive()
        return self.target.info(path, **kwargs)

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, **kwargs: Any) -> Any:
        self._check_alive()
        return self.target.find(path, maxdepth=maxdepth, withdirs=withdirs, **kwargs)

    def invalidate_cache(self, path: str | None = None) -> None:
        self.target.invalidate_cache(path)

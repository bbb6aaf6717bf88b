"""Session deadlines, so that long jobs stop cleanly before the platform kills them.

A :class:`Deadline` is a wall-clock instant (``time.time()`` seconds). The adapters ask
it two questions between units of work: is there time left (:meth:`Deadline.remaining`)
and has it passed (:meth:`Deadline.expired`). When they stop early they report
:attr:`RunStatus.STOPPED_BY_DEADLINE`.

:meth:`Deadline.from_platform` detects Kaggle and Colab and derives the end of the
session as follows:

1. Platform: Kaggle when ``KAGGLE_KERNEL_RUN_TYPE`` or ``KAGGLE_URL_BASE`` is set;
   Colab when ``COLAB_RELEASE_TAG`` or ``COLAB_GPU`` is set or ``google.colab`` is
   importable. Anything else returns ``None`` (no deadline).
2. Session length: 12 hours on both, the documented cap for Kaggle CPU and GPU
   sessions and the maximum VM lifetime of free Colab runtimes (9 hours for Kaggle TPU
   sessions, recognised by ``TPU_NAME``). Pass ``session_hours`` for other tiers.
3. Session start: the start time of process 1, read from ``/proc/1/stat`` (start time in
   clock ticks since boot) plus ``btime`` in ``/proc/stat``. Both platforms run each
   session in a fresh container, so process 1 starts with the session. When ``/proc``
   cannot be read, the start time of the current process is used, and failing that the
   moment this module was imported. Both fallbacks start the clock late (a restarted
   kernel looks like a new session), so the margin matters more there. The log names
   the source used.
4. Safety margin: ``margin_seconds`` (15 minutes by default) is subtracted so that the
   last checkpoint, its upload and the resume instructions fit before the kill.

NOTE: the environment variables, the process-1 rule and the session lengths come from
the platforms' documentation and common knowledge; they were not checked on a live
Kaggle or Colab session, so pass ``session_hours`` or an explicit deadline when unsure.
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import math
import os
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)

__all__ = ["Deadline", "RunStatus"]

DEFAULT_MARGIN_SECONDS = 15 * 60
KAGGLE_SESSION_HOURS = 12.0
KAGGLE_TPU_SESSION_HOURS = 9.0
COLAB_SESSION_HOURS = 12.0

_IMPORT_TIME = time.time()


class RunStatus(str, enum.Enum):
    """Outcome of a training call or a search."""

    COMPLETED = "completed"
    """Every requested round or trial ran, or early stopping ended the run."""

    STOPPED_BY_DEADLINE = "stopped_by_deadline"
    """The deadline left too little time. The state is checkpointed, and a rerun resumes."""


class Deadline:
    """A wall-clock instant after which no new unit of work should start.

    Give exactly one of ``hours``, ``seconds`` (both counted from now) or ``until``
    (seconds since the epoch, as returned by ``time.time()``).

    Args:
        hours: Time budget from now, in hours.
        seconds: Time budget from now, in seconds.
        until: Absolute end, in seconds since the epoch.
        source: Where the end came from, for logs ("explicit" unless a platform set it).

    Raises:
        ValueError: If not exactly one of ``hours``, ``seconds`` and ``until`` is given,
            or the value is not a finite number.
    """

    __slots__ = ("_end", "_source")

    def __init__(
        self,
        *,
        hours: float | None = None,
        seconds: float | None = None,
        until: float | None = None,
        source: str = "explicit",
    ) -> None:
        given = {name: value for name, value in
                 (("hours", hours), ("seconds", seconds), ("until", until)) if value is not None}
        if len(given) != 1:
            raise ValueError(
                "Deadline needs exactly one of hours=, seconds= or until=; "
                f"got {sorted(given) or 'none'}"
            )
        name, value = next(iter(given.items()))
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"Deadline {name}= must be a finite number, got {value!r}")

        now = time.time()
        if hours is not None:
            self._end = now + float(hours) * 3600.0
        elif seconds is not None:
            self._end = now + float(seconds)
        else:
            self._end = float(value)
        self._source = source

    @classmethod
    def from_platform(
        cls,
        *,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
        session_hours: float | None = None,
        environ: Mapping[str, str] | None = None,
        proc_root: str = "/proc",
    ) -> Deadline | None:
        """Derive the deadline of the current Kaggle or Colab session.

        See the module docstring for how the platform, the session length and the
        session start are found.

        Args:
            margin_seconds: Safety margin subtracted from the session end.
            session_hours: Session length to assume instead of the platform default.
            environ: Environment to inspect; ``os.environ`` by default.
            proc_root: Root of the proc file system; tests point it at a fake tree.

        Returns:
            The deadline, or ``None`` when no known platform is detected.
        """
        env = os.environ if environ is None else environ
        platform = _detect_platform(env)
        if platform is None:
            return None

        if session_hours is None:
            session_hours = _default_session_hours(platform, env)
        start, start_source = _session_start(proc_root)
        end = start + session_hours * 3600.0 - margin_seconds
        deadline = cls(until=end, source=f"{platform} session")
        logger.info(
            "Detected %s: session started at %s (from %s), %.1f h long, margin %.0f s; "
            "%.0f s left",
            platform, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start)),
            start_source, session_hours, margin_seconds, deadline.remaining(),
        )
        return deadline

    @property
    def until(self) -> float:
        """End of the budget, in seconds since the epoch."""
        return self._end

    @property
    def source(self) -> str:
        """Where the end came from: "explicit", "kaggle session" or "colab session"."""
        return self._source

    def remaining(self) -> float:
        """Return the seconds left before the deadline, never below zero."""
        return max(0.0, self._end - time.time())

    def expired(self) -> bool:
        """Return whether the deadline has passed."""
        return time.time() >= self._end

    def allows(self, seconds: float) -> bool:
        """Return whether a unit of work expected to take ``seconds`` fits in the time left."""
        return not self.expired() and seconds <= self.remaining()

    def __getstate__(self) -> tuple[float, str]:
        return (self._end, self._source)

    def __setstate__(self, state: tuple[float, str]) -> None:
        self._end, self._source = state

    def __repr__(self) -> str:
        end = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._end))
        return f"Deadline(until={end!r}, source={self._source!r})"


def _detect_platform(env: Mapping[str, str]) -> str | None:
    if "KAGGLE_KERNEL_RUN_TYPE" in env or "KAGGLE_URL_BASE" in env:
        return "kaggle"
    if "COLAB_RELEASE_TAG" in env or "COLAB_GPU" in env:
        return "colab"
    try:
        if importlib.util.find_spec("google.colab") is not None:
            return "colab"
    except (ImportError, ValueError):
        # find_spec imports the parent package "google", which may be absent or broken.
        pass
    return None


def _default_session_hours(platform: str, env: Mapping[str, str]) -> float:
    if platform == "kaggle":
        return KAGGLE_TPU_SESSION_HOURS if "TPU_NAME" in env else KAGGLE_SESSION_HOURS
    return COLAB_SESSION_HOURS


def _session_start(proc_root: str) -> tuple[float, str]:
    """Return the session start (epoch seconds) and a description of where it came from."""
    for pid, label in (("1", "process 1 start time"), ("self", "current process start time")):
        start = _process_start_time(proc_root, pid)
        if start is not None:
            return start, label
    return _IMPORT_TIME, "persistkit import time"


def _process_start_time(proc_root: str, pid: str) -> float | None:
    try:
        with open(os.path.join(proc_root, pid, "stat"), encoding="ascii") as stat_file:
            stat = stat_file.read()
        with open(os.path.join(proc_root, "stat"), encoding="ascii") as system_file:
            system_stat = system_file.read()
    except OSError:
        return None

    # The command name (field 2) is in parentheses and may contain spaces, so the
    # fields are counted from the last ')'. starttime is field 22 of the whole line.
    fields_after_name = stat.rsplit(")", 1)[-1].split()
    boot_times = [line.split()[1] for line in system_stat.splitlines() if line.startswith("btime ")]
    if len(fields_after_name) < 20 or not boot_times:
        return None
    try:
        ticks = int(fields_after_name[19])
        boot_time = int(boot_times[0])
        ticks_per_second = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return None
    return boot_time + ticks / ticks_per_second

"""The kill-matrix loop: run a target, SIGKILL it at seeded moments, re-run, check, compare.

One *round* starts from an empty store and output folder. The harness starts the target,
kills its whole process group after a delay drawn from a seeded random generator, checks
the store, and starts the target again, until an attempt completes. The completed round's
artefacts are then compared with those of a reference run that was never killed. Rounds
repeat until the requested number of kills is reached.

The seed fixes where each kill lands relative to the reference run (its first commit and
its duration), not the program state at that moment, which also depends on machine load.
A failing schedule replays with the same ``--seed``, or with the exact ``--delays`` it
printed, and reproduces most reliably on the machine it failed on.

Layout of the work folder::

    WORKDIR/TARGET/reference/{store,out,attempt-000.log}
    WORKDIR/TARGET/round-000/{store,out,attempt-000.log,attempt-001.log,...}
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from persistkit.testing._artefacts import ArtefactRule, compare_artefacts
from persistkit.testing._killchecks import (
    StoreCheck,
    StoreSnapshot,
    check_store,
    describe_snapshot,
    has_commit,
)

__all__ = ["Attempt", "KillMatrix", "MatrixResult", "RoundResult", "Target"]

logger = logging.getLogger(__name__)

# Folder that contains the ``persistkit`` package. Target subprocesses get it on their
# PYTHONPATH, so they import the same code as the harness even when it is not installed.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

# Rounds in a row that end before any kill after which the matrix stops: the target then
# finishes faster than the kill window, and more rounds would not reach the kill count.
_MAX_ROUNDS_WITHOUT_KILL = 5

# Share of kills drawn before the reference run's first commit, and how often the
# reference run's store is polled to find that moment, in seconds.
_BEFORE_FIRST_COMMIT_SHARE = 0.25
_PROBE_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Target:
    """A command the kill matrix runs, kills and re-runs.

    Attributes:
        name: short name used in folder names, reports and seeds.
        argv: the command. ``{store}`` is replaced by the store URL and ``{out}`` by the
            output folder, where the target writes its artefacts and optional logs.
        artefacts: which output files must match the reference run, and how.
        timeout_s: seconds one attempt may run before it counts as hung.
        min_delay_s: earliest kill after start, in seconds (for example to skip imports).
        deletable_keys: regular expression of keys the target may delete as a whole.
        rewritable_keys: regular expression of keys whose steps the target may save again
            with other contents.
        env: extra environment variables for the command.
        max_attempts: attempts per round before the round fails as making no progress.
    """

    name: str
    argv: tuple[str, ...]
    artefacts: tuple[ArtefactRule, ...]
    timeout_s: float = 600.0
    min_delay_s: float = 0.0
    deletable_keys: str | None = None
    rewritable_keys: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    max_attempts: int = 40

    def command(self, *, store_url: str, output_dir: Path) -> list[str]:
        """Return ``argv`` with the placeholders filled in."""
        return [part.format(store=store_url, out=output_dir) for part in self.argv]


@dataclass(frozen=True)
class Attempt:
    """One start of the target within a round."""

    index: int
    delay_s: float | None  # planned kill delay; None when the attempt runs to completion
    killed: bool
    exit_code: int | None
    duration_s: float
    store_summary: str
    problems: tuple[str, ...]
    log_path: Path


@dataclass(frozen=True)
class RoundResult:
    """One round: attempts from an empty store until the target completed, then the comparison."""

    index: int
    attempts: tuple[Attempt, ...]
    comparison_problems: tuple[str, ...]
    completed: bool

    @property
    def kills(self) -> int:
        """Number of attempts that were killed."""
        return sum(attempt.killed for attempt in self.attempts)

    @property
    def problems(self) -> list[str]:
        """Every problem of the round, each prefixed with the attempt it belongs to."""
        found = [
            f"round {self.index} attempt {attempt.index}: {problem}"
            for attempt in self.attempts
            for problem in attempt.problems
        ]
        found.extend(f"round {self.index} final artefacts: {p}" for p in self.comparison_problems)
        if not self.completed:
            found.append(f"round {self.index}: the target never completed; see its attempt logs.")
        return found


@dataclass(frozen=True)
class MatrixResult:
    """The result of a kill matrix on one target."""

    target: str
    seed: int
    reference_duration_s: float
    rounds: tuple[RoundResult, ...]
    reference_problems: tuple[str, ...] = ()
    duration_s: float = 0.0

    @property
    def kills(self) -> int:
        """Total number of kills over all rounds."""
        return sum(round_.kills for round_ in self.rounds)

    @property
    def problems(self) -> list[str]:
        """Every problem found, the reference run's first."""
        found = [f"reference run: {problem}" for problem in self.reference_problems]
        for round_ in self.rounds:
            found.extend(round_.problems)
        return found

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def delays(self) -> list[float]:
        """The kill delays of every killed attempt, in order, for replaying with ``--delays``."""
        return [
            attempt.delay_s
            for round_ in self.rounds
            for attempt in round_.attempts
            if attempt.killed and attempt.delay_s is not None
        ]


StoreUrlFactory = Callable[[Path], str]


def local_store_url(run_dir: Path) -> str:
    """Return the default store URL of a run: a local folder inside the run folder."""
    return str(run_dir / "store")


@dataclass
class KillMatrix:
    """Runs the kill matrix of one target.

    Args:
        target: what to run.
        workdir: folder for stores, outputs and logs (see the module docstring).
        seed: seed of the kill delays.
        kills: minimum number of kills; rounds repeat until it is reached.
        max_kills_per_round: after this many kills a round's next attempt runs to completion.
        delays: explicit kill delays in seconds, used in order before seeded ones (replay).
        store_url: makes the store URL of a run from its folder; local folder by default.
        storage_options: passed to the store when the harness inspects it.
    """

    target: Target
    workdir: Path
    seed: int = 0
    kills: int = 10
    max_kills_per_round: int = 5
    delays: Sequence[float] = ()
    store_url: StoreUrlFactory = local_store_url
    storage_options: Mapping[str, object] | None = None

    def run(self) -> MatrixResult:
        """Run the reference, then rounds of kills until ``kills`` is reached."""
        started = time.monotonic()
        rng = random.Random(f"{self.seed}/{self.target.name}")
        replay = list(self.delays)

        reference_dir = self.workdir / self.target.name / "reference"
        first_commit: list[float] = []
        reference = self._run_attempt(reference_dir, 0, delay_s=None, first_commit=first_commit)
        reference_check = self._check(reference_dir, {})
        reference_problems = list(reference.problems) + list(reference_check.problems)
        if reference.exit_code != 0 and not reference.problems:
            reference_problems.append(
                f"the uninterrupted run exited with {reference.exit_code}; see {reference.log_path}."
            )
            return MatrixResult(self.target.name, self.seed, reference.duration_s, (),
                                tuple(reference_problems), time.monotonic() - started)
        windows = _kill_windows(self.target.min_delay_s, first_commit, reference.duration_s)
        logger.info("kill matrix %s: reference run took %.2f s, first commit after %s s",
                    self.target.name, reference.duration_s,
                    f"{first_commit[0]:.2f}" if first_commit else "-")

        rounds: list[RoundResult] = []
        total_kills = 0
        rounds_without_kill = 0
        while total_kills < self.kills and rounds_without_kill < _MAX_ROUNDS_WITHOUT_KILL:
            round_ = self._run_round(len(rounds), rng, replay, windows, reference_dir / "out")
            rounds.append(round_)
            total_kills += round_.kills
            rounds_without_kill = 0 if round_.kills else rounds_without_kill + 1
            if not round_.completed:
                break
            if not round_.kills:
                # A whole run from an empty store finished before its kill, so the machine
                # is faster now than during the reference run: scale the windows to it.
                windows = windows.scaled(round_.attempts[0].duration_s / reference.duration_s)
        return MatrixResult(self.target.name, self.seed, reference.duration_s, tuple(rounds),
                            tuple(reference_problems), time.monotonic() - started)

    def _run_round(
        self,
        index: int,
        rng: random.Random,
        replay: list[float],
        windows: _KillWindows,
        reference_out: Path,
    ) -> RoundResult:
        run_dir = self.workdir / self.target.name / f"round-{index:03d}"
        attempts: list[Attempt] = []
        snapshot: StoreSnapshot = {}
        kills = 0
        completed = False
        for attempt_index in range(self.target.max_attempts):
            delay: float | None = None
            if kills < self.max_kills_per_round:
                delay = replay.pop(0) if replay else windows.draw(rng)
            attempt = self._run_attempt(run_dir, attempt_index, delay_s=delay)
            check = self._check(run_dir, snapshot)
            snapshot = check.snapshot
            attempt = _with_check(attempt, check.problems, describe_snapshot(snapshot))
            attempts.append(attempt)
            kills += attempt.killed
            if not attempt.killed:
                completed = attempt.exit_code == 0
                break
        comparison: list[str] = []
        if completed:
            comparison = compare_artefacts(reference_out, run_dir / "out", self.target.artefacts)
        return RoundResult(index, tuple(attempts), tuple(comparison), completed)

    def _check(self, run_dir: Path, previous: StoreSnapshot) -> StoreCheck:
        return check_store(
            self.store_url(run_dir),
            output_dir=run_dir / "out",
            previous=previous,
            deletable_keys=self.target.deletable_keys,
            rewritable_keys=self.target.rewritable_keys,
            storage_options=self.storage_options,
        )

    def _run_attempt(
        self,
        run_dir: Path,
        index: int,
        *,
        delay_s: float | None,
        first_commit: list[float] | None = None,
    ) -> Attempt:
        output_dir = run_dir / "out"
        output_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / f"attempt-{index:03d}.log"
        command = self.target.command(store_url=self.store_url(run_dir), output_dir=output_dir)
        env = _child_environment(self.target.env)

        started = time.monotonic()
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            probe = None
            if first_commit is not None:
                url, options = self.store_url(run_dir), self.storage_options
                probe = _CommitProbe(lambda: has_commit(url, options), started, first_commit)
            killed, exit_code, problems = _wait_or_kill(
                process, delay_s, self.target.timeout_s, probe
            )
        duration = time.monotonic() - started
        if not killed and exit_code != 0 and not problems:
            problems.append(f"the target exited with {exit_code}; see {log_path}: {_tail(log_path)}")
        logger.debug("%s attempt %d: delay %s killed %s exit %s in %.2f s",
                     run_dir, index, delay_s, killed, exit_code, duration)
        return Attempt(index, delay_s, killed, exit_code, duration, "", tuple(problems), log_path)


@dataclass
class _CommitProbe:
    """Records in ``found`` the seconds from ``started`` to the store's first commit."""

    has_commit: Callable[[], bool]
    started: float
    found: list[float]

    def check(self) -> None:
        if not self.found and self.has_commit():
            self.found.append(time.monotonic() - self.started)


@dataclass(frozen=True)
class _KillWindows:
    """Kill delays: a share before the first commit of the reference run, the rest after."""

    before: tuple[float, float]
    after: tuple[float, float]
    before_share: float

    def draw(self, rng: random.Random) -> float:
        window = self.before if rng.random() < self.before_share else self.after
        return rng.uniform(*window)

    def scaled(self, factor: float) -> _KillWindows:
        before = (self.before[0] * factor, self.before[1] * factor)
        after = (self.after[0] * factor, self.after[1] * factor)
        return _KillWindows(before, after, self.before_share)


def _kill_windows(min_delay: float, first_commit: list[float], duration: float) -> _KillWindows:
    end = max(duration, min_delay)
    if not first_commit or not min_delay < first_commit[0] < end:
        return _KillWindows((min_delay, end), (min_delay, end), 0.0)
    # Most of a run before its first commit is start-up (imports, data loading), where
    # every kill is alike, so only a quarter of the kills land there.
    return _KillWindows((min_delay, first_commit[0]), (first_commit[0], end), _BEFORE_FIRST_COMMIT_SHARE)


def _wait_or_kill(
    process: subprocess.Popen[bytes],
    delay_s: float | None,
    timeout_s: float,
    probe: _CommitProbe | None = None,
) -> tuple[bool, int | None, list[str]]:
    """Wait for ``process``; SIGKILL its process group after ``delay_s`` or ``timeout_s``."""
    wait_s = timeout_s if delay_s is None else min(delay_s, timeout_s)
    deadline = time.monotonic() + wait_s
    interval = _PROBE_INTERVAL_S if probe is not None else wait_s
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            exit_code = process.wait(timeout=min(interval, remaining))
        except subprocess.TimeoutExpired:
            if probe is not None:
                probe.check()
            continue
        if probe is not None:
            probe.check()
        return False, exit_code, []
    _kill_group(process)
    if process.returncode != -signal.SIGKILL:
        # It exited on its own between the last wait and the kill.
        return False, process.returncode, []
    if delay_s is not None and delay_s <= timeout_s:
        return True, process.returncode, []
    return False, process.returncode, [f"the target did not finish within {timeout_s:.0f} s."]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The target runs in its own session, so its process group id is its pid; killing the
    # group also ends worker processes it started.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    python_path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + python_path if python_path else "")
    env.update(extra)
    return env


def _with_check(attempt: Attempt, problems: Sequence[str], summary: str) -> Attempt:
    return Attempt(attempt.index, attempt.delay_s, attempt.killed, attempt.exit_code,
                   attempt.duration_s, summary, attempt.problems + tuple(problems),
                   attempt.log_path)


def _tail(path: Path, characters: int = 1500) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    return text[-characters:]


def python_module_argv(module: str, *args: str) -> tuple[str, ...]:
    """Return the argv that runs ``python -m module args...`` with this interpreter."""
    return (sys.executable, "-m", module, *args)

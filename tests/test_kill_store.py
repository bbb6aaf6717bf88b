"""Kill tests: a writer dies at random points and the store stays consistent.

Local folder: a helper process that has already imported persistkit forks one writer
per round. The writer saves checkpoints of one key in a loop, with retention keeping the
last three, and is SIGKILLed after a random delay. After each kill, ``persistkit verify``
must pass, and ``load`` must return the newest committed step byte for byte: the newest
step known to be committed (reported by a writer, or seen after the previous kill), or
the one after it when the kill came between the commit and the report.

Object store: the same loop runs in this process on ``memory://`` through the
fault-injecting filesystem, which crashes the writer at a random write: in the payload,
just before or just after the manifest, or during retention deletes.

The default run kills 50 local writers and crashes 100 object-store writers; ``-m soak``
runs 500 more of each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from persistkit import CheckpointStore
from persistkit._reader import StoreReader
from persistkit._storage import LocalStorage
from persistkit.cli import main as persistkit_main
from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan, InjectedCrash

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = "model/checkpoints"
DEFAULT_KILLS = 50
DEFAULT_CRASHES = 100
SOAK_KILLS = 500

PAYLOAD_CODE = """
def payload(step):
    rng = random.Random(step)
    return {
        f"part{index}.bin": rng.randbytes(rng.choice((1024, 16 * 1024, 200 * 1024)))
        for index in range(1 + step % 3)
    }
"""
namespace: dict[str, Any] = {"random": random}
exec(PAYLOAD_CODE, namespace)
payload = namespace["payload"]

# Reads "run STORE PROGRESS MODE" and "reap PID" lines on stdin. "run" forks a writer
# and prints its PID; "reap" waits for that writer and prints its wait status. Forking
# from a process that has already imported persistkit keeps each round short.
FORK_SERVER = (
    "import os, random, sys\n"
    "from persistkit import CheckpointStore\n"
    + PAYLOAD_CODE
    + textwrap.dedent(
        """
        def write_forever(store_dir, progress_path, mode):
            progress = os.open(progress_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            store = CheckpointStore(
                store_dir, background=(mode == "background"), retention={"keep_last": 3}
            )
            latest = store.latest_step("model/checkpoints")
            step = 0 if latest is None else latest + 1
            while True:
                store.save("model/checkpoints", payload(step), step=step, metrics={"step": step})
                store.flush()
                os.write(progress, f"{step}\\n".encode())
                step += 1

        for line in sys.stdin:
            command, *arguments = line.split()
            if command == "run":
                pid = os.fork()
                if pid == 0:
                    try:
                        write_forever(*arguments)
                    finally:
                        os._exit(1)
                print(pid, flush=True)
            elif command == "reap":
                print(os.waitpid(int(arguments[0]), 0)[1], flush=True)
        """
    )
)


class ForkServer:
    """The helper process that forks writers; stopped by PID at teardown."""

    def __init__(self, log_path: Path) -> None:
        # The writers' log (takeovers, removed partial writes) goes to a file, kept for
        # reading when a test fails.
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )

    def _request(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        assert reply, "the fork server exited"
        return reply.strip()

    def start_writer(self, store_dir: Path, progress: Path, mode: str) -> int:
        return int(self._request(f"run {store_dir} {progress} {mode}"))

    def reap(self, pid: int) -> int:
        return int(self._request(f"reap {pid}"))

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


@pytest.fixture
def fork_server(tmp_path: Path) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path / "writers.log")
    yield server
    server.stop()


def _reported_steps(progress: Path) -> list[int]:
    if not progress.exists():
        return []
    return [int(line) for line in progress.read_text().split()]


def _check_after_kill(store_dir: Path, known_committed: int) -> int:
    """Verify the store and return its newest step (-1 when empty).

    ``known_committed`` is the newest step known to be committed before this round: the
    last step a writer reported, or the newest step seen after the previous kill.
    """
    assert persistkit_main(["verify", str(store_dir)]) == 0
    reader = StoreReader(LocalStorage(str(store_dir)))
    latest = reader.latest_step(KEY)
    latest = -1 if latest is None else latest
    assert known_committed <= latest <= known_committed + 1
    if latest >= 0:
        checkpoint = reader.load(KEY)
        assert checkpoint.step == latest
        assert dict(checkpoint.files) == payload(latest)
    return latest


def _run_local_kills(fork_server: ForkServer, tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    store_dir = tmp_path / "store"
    progress = tmp_path / "progress.log"
    latest = -1
    for round_index in range(kills):
        mode = "background" if round_index % 2 else "sync"
        pid = fork_server.start_writer(store_dir, progress, mode)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        status = fork_server.reap(pid)
        assert os.WIFSIGNALED(status), status
        assert os.WTERMSIG(status) == signal.SIGKILL

        reported = _reported_steps(progress)
        latest = _check_after_kill(store_dir, max([latest, *reported[-1:]]))
    assert latest > kills // 2, "writers should commit checkpoints between kills"

    # Retention deletes run after the commit, so kills between the two can leave more
    # than three steps; the next completed save removes the extra ones.
    with CheckpointStore(str(store_dir), background=False, retention={"keep_last": 3}) as store:
        store.save(KEY, payload(latest + 1), step=latest + 1)
        assert store.steps(KEY) == [latest - 1, latest, latest + 1]
        assert store.partial_writes(KEY) == []


def test_sigkill_local_writer(fork_server: ForkServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # capsys keeps the verify command's output out of the test report.
    _run_local_kills(fork_server, tmp_path, DEFAULT_KILLS, seed=1)


@pytest.mark.soak
def test_sigkill_local_writer_soak(fork_server: ForkServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run_local_kills(fork_server, tmp_path, SOAK_KILLS, seed=2)


def _crash_phase(faulty: FaultInjectingFileSystem) -> str:
    record = faulty.write_log[-1]
    moment = "after" if record.fault == "crash-after" else "before"
    if "_lease" in record.path:
        return "lease"
    if record.operation == "rm_file":
        return "delete"
    if record.path.endswith("_manifest.json"):
        return f"manifest-{moment}"
    if "_step-" in record.path:
        return "payload"
    return "marker"


def _manifest_landed(faulty: FaultInjectingFileSystem, step_dir: str) -> bool:
    return any(
        record.operation == "pipe_file"
        and record.path.endswith(f"{step_dir}/_manifest.json")
        and record.fault in (None, "crash-after", "ack-loss")
        for record in faulty.write_log
    )


def _run_object_crashes(root: str, crashes: int, seed: int) -> set[str]:
    memory = fsspec.filesystem("memory")
    rng = random.Random(seed)
    phases: set[str] = set()
    for round_index in range(crashes):
        plan = FaultPlan(
            crash_at_write=rng.randint(1, 40),
            crash_moment=rng.choice(("before", "after")),
            seed=round_index,
        )
        faulty = FaultInjectingFileSystem(memory, plan)
        # A restarted job keeps its writer id, so it resumes the key at once.
        store = CheckpointStore(
            root, filesystem=faulty, background=False, retention={"keep_last": 2}, writer_id="job"
        )
        with CheckpointStore(root, filesystem=memory, background=False) as plain:
            latest = plain.latest_step(KEY)
        step = 0 if latest is None else latest + 1
        last_returned = latest
        with pytest.raises(InjectedCrash):
            while True:
                store.save(KEY, payload(step), step=step)
                last_returned = step
                step += 1
        phases.add(_crash_phase(faulty))
        _check_object_store(memory, root, faulty, step, last_returned)
    return phases


def _check_object_store(
    memory: Any, root: str, faulty: FaultInjectingFileSystem, crashed_step: int, last_returned: int | None
) -> None:
    with CheckpointStore(root, filesystem=memory, background=False) as reader:
        for key_step in reader.steps(KEY):
            report = reader.verify(KEY, key_step)
            assert report.ok, report.error
        committed = _manifest_landed(faulty, f"_step-{crashed_step:010d}")
        expected = crashed_step if committed else last_returned
        assert reader.latest_step(KEY) == expected
        if expected is not None:
            assert dict(reader.load(KEY).files) == payload(expected)


def test_crash_object_store_writer(persistkit_store_url: str) -> None:
    root = str(fsspec.core.url_to_fs(persistkit_store_url)[1])
    phases = _run_object_crashes(root, DEFAULT_CRASHES, seed=3)
    assert {"payload", "manifest-before", "manifest-after", "delete"} <= phases, phases


@pytest.mark.soak
def test_crash_object_store_writer_soak(persistkit_store_url: str) -> None:
    root = str(fsspec.core.url_to_fs(persistkit_store_url)[1])
    phases = _run_object_crashes(root, SOAK_KILLS, seed=4)
    assert {"payload", "manifest-before", "manifest-after", "delete", "lease"} <= phases, phases

"""Helpers for the persistkit-train end-to-end tests: CLI subprocesses and a shared run.

The tests train on the real data set with a tiny configuration: 3 trials per model,
2 folds, at most 60 rounds, one thread and no subsampling. One run takes 10 to 30 seconds
on a 2-core machine, and its results are deterministic.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest

from persistkit import CheckpointStore

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN_TIMEOUT_SECONDS = 240
TINY_SETTINGS = (
    "--preset", "quick",
    "--trials", "3",
    "--folds", "2",
    "--max-rounds", "60",
    "--threads", "1",
    "--exact-resume",
    "--checkpoint-every", "10",
    "--device", "cpu",
)


def real_data_path() -> pathlib.Path:
    """Return the path of the real numberdata.csv next to the repository.

    ``PERSISTKIT_TRAIN_DATA`` overrides the search of ``shared/data`` in the parent
    folders of the repository.
    """
    override = os.environ.get("PERSISTKIT_TRAIN_DATA")
    if override:
        return pathlib.Path(override)
    for folder in REPO_ROOT.parents:
        candidate = folder / "shared" / "data" / "numberdata.csv"
        if candidate.is_file():
            return candidate
    pytest.fail("numberdata.csv not found in ../shared/data; set PERSISTKIT_TRAIN_DATA")


def child_environment() -> dict[str, str]:
    """Return the environment of CLI subprocesses: packages import from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if part
    )
    for name in ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", "COLAB_RELEASE_TAG", "COLAB_GPU"):
        env.pop(name, None)
    return env


def cli_command(arguments: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "persistkit_train", *arguments]


def run_cli(
    arguments: Sequence[str],
    *,
    cwd: pathlib.Path,
    env: dict[str, str] | None = None,
    timeout: float = RUN_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """Run persistkit-train to completion and return its exit code and output."""
    return subprocess.run(
        cli_command(arguments),
        cwd=cwd,
        env=env or child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def training_arguments(
    store: pathlib.Path, output: pathlib.Path, *, progress: str = "off"
) -> list[str]:
    """Return the arguments of a tiny training run on the real data."""
    return [
        "run",
        "--data", str(real_data_path()),
        "--store", str(store),
        "--output", str(output),
        "--progress", progress,
        *TINY_SETTINGS,
    ]


def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """Return (store, output folder) of one uninterrupted tiny run, shared by all tests.

    The run happens once per pytest session; later calls find its marker file.
    """
    folder = tmp_path_factory.getbasetemp() / "train-reference"
    store, output = folder / "store", folder / "output"
    marker = folder / "finished"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        # Progress bars on, so that the bar test can read this run's stderr.
        result = run_cli(training_arguments(store, output, progress="on"), cwd=folder)
        assert result.returncode == 0, result.stderr[-4000:]
        (folder / "stderr.txt").write_text(result.stderr)
        marker.write_text(result.stdout)
    return store, output


def wait_for_key(
    process: subprocess.Popen[str],
    store_url: str,
    key: str,
    *,
    timeout: float,
    min_step: int = 0,
) -> None:
    """Wait until ``key`` has a committed step >= ``min_step`` while ``process`` runs."""
    finish = time.monotonic() + timeout
    with CheckpointStore(store_url, background=False) as store:
        while time.monotonic() < finish:
            step = store.latest_step(key)
            if step is not None and step >= min_step:
                return
            if process.poll() is not None:
                pytest.fail(f"training exited with {process.returncode} before {key!r} appeared")
            time.sleep(0.02)
    process.kill()
    pytest.fail(f"{key!r} did not appear within {timeout} s")


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL ``process`` and reap it."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def committed(store_url: str, key: str) -> bool:
    with CheckpointStore(store_url, background=False) as store:
        return store.latest_step(key) is not None


def stage_files(store_url: str, stage: str) -> dict[str, bytes]:
    """Return the files of a finished stage as raw bytes."""
    with CheckpointStore(store_url, background=False) as store:
        return dict(store.load(f"stages/{stage}").files)

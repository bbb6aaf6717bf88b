"""Tests of persistkit.Deadline: explicit budgets and platform detection."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest

from persistkit import Deadline
from persistkit._deadline import DEFAULT_MARGIN_SECONDS, RunStatus

TICKS = os.sysconf("SC_CLK_TCK")


def write_proc(root: Path, *, boot_time: int, start_ticks: int, pid: str = "1") -> None:
    """Write the two /proc files that the session start is read from."""
    (root / pid).mkdir(parents=True)
    fields = ["S"] + ["0"] * 18 + [str(start_ticks)] + ["0"] * 10
    (root / pid / "stat").write_text(f"1 (my init (x)) {' '.join(fields)}\n")
    (root / "stat").write_text(f"cpu  1 2 3\nbtime {boot_time}\nprocesses 10\n")


def test_hours_seconds_until_agree() -> None:
    now = time.time()
    by_hours = Deadline(hours=2)
    by_seconds = Deadline(seconds=7200)
    by_until = Deadline(until=now + 7200)

    assert by_hours.until == pytest.approx(now + 7200, abs=1.0)
    assert by_seconds.until == pytest.approx(now + 7200, abs=1.0)
    assert by_until.until == now + 7200
    assert by_hours.source == "explicit"


@pytest.mark.parametrize("kwargs", [{}, {"hours": 1, "seconds": 5}, {"seconds": float("nan")},
                                    {"until": "tomorrow"}])
def test_invalid_arguments_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="Deadline"):
        Deadline(**kwargs)


def test_remaining_expired_allows() -> None:
    future = Deadline(seconds=100)
    past = Deadline(seconds=-1)

    assert 99 < future.remaining() <= 100
    assert not future.expired()
    assert future.allows(50)
    assert not future.allows(150)
    assert past.remaining() == 0.0
    assert past.expired()
    assert not past.allows(0)


def test_survives_pickling() -> None:
    deadline = Deadline(seconds=60)
    copy = pickle.loads(pickle.dumps(deadline))

    assert copy.until == deadline.until
    assert copy.source == deadline.source


def test_run_status_values_are_strings() -> None:
    assert RunStatus.STOPPED_BY_DEADLINE == "stopped_by_deadline"
    assert RunStatus("completed") is RunStatus.COMPLETED


def test_no_platform_returns_none(tmp_path: Path) -> None:
    assert Deadline.from_platform(environ={}, proc_root=str(tmp_path)) is None


def test_kaggle_uses_process_1_start(tmp_path: Path) -> None:
    boot = int(time.time()) - 10_000
    write_proc(tmp_path, boot_time=boot, start_ticks=3000 * TICKS)
    session_start = boot + 3000

    deadline = Deadline.from_platform(environ={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"},
                                      proc_root=str(tmp_path))

    assert deadline is not None
    assert deadline.until == pytest.approx(session_start + 12 * 3600 - DEFAULT_MARGIN_SECONDS)
    assert deadline.source == "kaggle session"


def test_kaggle_tpu_session_is_9_hours(tmp_path: Path) -> None:
    boot = int(time.time()) - 100
    write_proc(tmp_path, boot_time=boot, start_ticks=0)

    deadline = Deadline.from_platform(environ={"KAGGLE_URL_BASE": "x", "TPU_NAME": "t"},
                                      proc_root=str(tmp_path), margin_seconds=0)

    assert deadline is not None
    assert deadline.until == pytest.approx(boot + 9 * 3600)


def test_colab_with_explicit_length(tmp_path: Path) -> None:
    boot = int(time.time()) - 100
    write_proc(tmp_path, boot_time=boot, start_ticks=50 * TICKS)

    deadline = Deadline.from_platform(environ={"COLAB_RELEASE_TAG": "r"},
                                      proc_root=str(tmp_path), session_hours=24,
                                      margin_seconds=600)

    assert deadline is not None
    assert deadline.until == pytest.approx(boot + 50 + 24 * 3600 - 600)
    assert deadline.source == "colab session"


def test_unreadable_proc_falls_back_to_import_time(tmp_path: Path) -> None:
    from persistkit import _deadline

    deadline = Deadline.from_platform(environ={"COLAB_GPU": "1"},
                                      proc_root=str(tmp_path / "missing"), margin_seconds=0)

    assert deadline is not None
    assert deadline.until == pytest.approx(_deadline._IMPORT_TIME + 12 * 3600)


def test_real_proc_gives_past_session_start() -> None:
    deadline = Deadline.from_platform(environ={"KAGGLE_KERNEL_RUN_TYPE": "Batch"},
                                      margin_seconds=0)

    assert deadline is not None
    assert deadline.until <= time.time() + 12 * 3600

"""Tests that the persistkit-train command line prints messages in the chosen language.

Each test starts the real command line in a subprocess (``python -m persistkit_train``),
so argument parsing, language selection, logging set-up and error printing all run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
THAI_LETTER = re.compile("[\u0e01-\u0e2e]")
LANGUAGE_VARIABLES = ("PERSISTKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
# A data file whose header lacks the phone_number column that `run` expects.
BAD_CSV = "number,price\n0812345678,1500\n0899999999,25000\n"


def run_cli(
    *arguments: str, cwd: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in LANGUAGE_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(environment or {})
    return subprocess.run(
        [sys.executable, "-m", "persistkit_train", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def run_training(data: Path, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Start `run` on ``data`` with a store under ``tmp_path``."""
    return run_cli(
        "run", "--data", str(data), "--store", str(tmp_path / "store"), *options, cwd=tmp_path
    )


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    return path


def test_status_in_thai(tmp_path: Path) -> None:
    store = tmp_path / "store"

    result = run_cli("status", "--store", str(store), "--lang", "th", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "ยังไม่มีการรัน" in result.stdout
    assert str(store) in result.stdout
    assert "holds no run" not in result.stdout


def test_status_in_english(tmp_path: Path) -> None:
    store = tmp_path / "store"

    result = run_cli("status", "--store", str(store), "--lang", "en", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "holds no run yet" in result.stdout
    assert str(store) in result.stdout
    assert not THAI_LETTER.search(result.stdout + result.stderr)


def test_run_bad_csv_in_thai(tmp_path: Path, bad_csv: Path) -> None:
    result = run_training(bad_csv, tmp_path, "--lang", "th")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ข้อผิดพลาด" in result.stderr
    assert str(bad_csv) in result.stderr
    assert "ไม่พบคอลัมน์ 'phone_number'" in result.stderr
    assert "missing column" not in result.stderr


def test_run_bad_csv_in_english(tmp_path: Path, bad_csv: Path) -> None:
    result = run_training(bad_csv, tmp_path, "--lang", "en")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(bad_csv) in result.stderr
    assert "missing column 'phone_number'" in result.stderr
    assert not THAI_LETTER.search(result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"PERSISTKIT_LANG": "th", "LANG": "en_US.UTF-8"}, "th"),
        ({"LANG": "th_TH.UTF-8"}, "th"),
        ({"PERSISTKIT_LANG": "en", "LANG": "th_TH.UTF-8"}, "en"),
    ],
)
def test_status_language_from_environment(
    tmp_path: Path, environment: dict[str, str], expected: str
) -> None:
    result = run_cli(
        "status", "--store", str(tmp_path / "store"), cwd=tmp_path, environment=environment
    )

    assert result.returncode == 0, result.stderr
    assert bool(THAI_LETTER.search(result.stdout)) == (expected == "th")


def test_lang_option_beats_environment(tmp_path: Path) -> None:
    result = run_cli(
        "status",
        "--store",
        str(tmp_path / "store"),
        "--lang",
        "en",
        cwd=tmp_path,
        environment={"PERSISTKIT_LANG": "th", "LANG": "th_TH.UTF-8"},
    )

    assert result.returncode == 0, result.stderr
    assert "holds no run yet" in result.stdout


@pytest.mark.parametrize(
    ("option", "thai_text", "english_text"),
    [
        (("--trials", "0"), "ค่า trials ไม่ถูกต้อง (0)", "Invalid trials 0"),
        (("--time-budget", "soon"), "ระยะเวลา 'soon' ไม่ถูกต้อง", "Invalid duration 'soon'"),
    ],
    ids=["trials", "time-budget"],
)
def test_run_bad_setting_in_thai(
    tmp_path: Path, bad_csv: Path, option: tuple[str, str], thai_text: str, english_text: str
) -> None:
    result = run_training(bad_csv, tmp_path, *option, "--lang", "th")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert thai_text in result.stderr
    assert english_text not in result.stderr


def test_run_workbook_named_in_thai(tmp_path: Path) -> None:
    # The file kind comes from a table built at import time, before --lang is applied.
    workbook = tmp_path / "prices.csv"
    workbook.write_bytes(b"PK\x03\x04" + bytes(64))

    result = run_training(workbook, tmp_path, "--lang", "th")

    assert result.returncode == 2
    assert "ไฟล์ ZIP" in result.stderr
    assert "ZIP archive" not in result.stderr

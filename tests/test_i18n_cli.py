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
    result = run_cli(
        "run",
        "--data",
        str(bad_csv),
        "--store",
        str(tmp_path / "store"),
        "--lang",
        "th",
        cwd=tmp_path,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ข้อผิดพลาด" in result.stderr
    assert str(bad_csv) in result.stderr
    assert "ไม่พบคอลัมน์ 'phone_number'" in result.stderr
    assert "missing column" not in result.stderr


def test_run_bad_csv_in_english(tmp_path: Path, bad_csv: Path) -> None:
    result = run_cli(
        "run",
        "--data",
        str(bad_csv),
        "--store",
        str(tmp_path / "store"),
        "--lang",
        "en",
        cwd=tmp_path,
    )

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

"""The persistkit command: ls, show, verify, pull and gc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from persistkit import CheckpointStore
from persistkit._layout import step_dir_name
from persistkit.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store_dir(tmp_path: Path) -> str:
    url = str(tmp_path / "store")
    with CheckpointStore(url, background=False) as store:
        store.save("xgb/final", {"model.ubj": b"m1", "state.json": {"round": 1}}, step=1, metrics={"rmse": 0.5})
        store.save("xgb/final", {"model.ubj": b"m2", "state.json": {"round": 2}}, step=2, metrics={"rmse": 0.4})
        store.save("optuna/study", {"journal.log": b"{}\n"}, step=7)
    return url


def test_ls_lists_keys(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", store_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["optuna/study\tsteps=1\tlatest=7", "xgb/final\tsteps=2\tlatest=2"]


def test_ls_lists_steps_of_key(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", store_dir, "xgb/final"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "2"]
    assert lines[1].endswith('{"rmse": 0.4}')


def test_show_prints_manifest(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store_dir, "xgb/final", "--step", "1"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["step"] == 1
    assert manifest["metrics"] == {"rmse": 0.5}
    assert set(manifest["files"]) == {"model.ubj", "state.json"}


def test_show_defaults_to_newest(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store_dir, "xgb/final"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2


def test_verify_passes_on_intact_store(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", store_dir]) == 0
    assert "verified 3 checkpoints in 2 keys: 0 corrupt" in capsys.readouterr().out


def test_verify_fails_on_corrupt_checkpoint(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    Path(store_dir, "xgb", "final", step_dir_name(1), "model.ubj").write_bytes(b"mX")

    assert main(["verify", store_dir]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT\txgb/final\tstep 1" in out
    assert "1 corrupt" in out
    assert main(["verify", store_dir, "optuna/study"]) == 0


def test_pull_writes_verified_files(store_dir: str, tmp_path: Path) -> None:
    dest = tmp_path / "pulled"
    assert main(["pull", store_dir, "xgb/final", str(dest), "--step", "1"]) == 0
    assert (dest / "model.ubj").read_bytes() == b"m1"
    assert json.loads((dest / "state.json").read_text()) == {"round": 1}
    assert json.loads((dest / "_manifest.json").read_text())["step"] == 1


def test_pull_of_missing_key_fails(store_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", store_dir, "nope", str(tmp_path / "out")]) == 2
    assert "no committed checkpoint for key 'nope'" in capsys.readouterr().err


def test_gc_removes_partial_writes(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    staging = Path(store_dir, "xgb", "final", "_staging-_step-0000000003-abc")
    staging.mkdir()
    orphan = Path(store_dir, "lost", step_dir_name(1))
    orphan.mkdir(parents=True)
    (orphan / "model.bin").write_bytes(b"partial")

    assert main(["gc", store_dir, "--dry-run"]) == 0
    assert "would remove 2 partial writes" in capsys.readouterr().out
    assert staging.exists()

    assert main(["gc", store_dir]) == 0
    assert "removed 2 partial writes" in capsys.readouterr().out
    assert not staging.exists()
    assert not orphan.exists()
    assert main(["verify", store_dir]) == 0


def test_gc_skips_keys_with_live_writer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(tmp_path / "store")
    writer = CheckpointStore(url, background=False)
    writer.save("k", {"a.bin": b"a"}, step=1)
    staging = Path(url, "k", "_staging-_step-0000000002-abc")
    staging.mkdir()

    assert main(["gc", url]) == 0
    assert "skipped\tk" in capsys.readouterr().out
    assert staging.exists()
    assert main(["gc", url, "--force"]) == 0
    assert not staging.exists()
    writer.close()


def test_memory_url_with_storage_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "memory://cli-empty-store", "--storage-option", "skip_instance_cache=true"]) == 0
    assert capsys.readouterr().out == ""


def test_invalid_key_reports_error(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store_dir, "../etc"]) == 2
    assert "invalid checkpoint key '../etc'" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "persistkit", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0
    for command in ("ls", "show", "verify", "pull", "gc"):
        assert command in result.stdout


def test_ls_marks_unreadable_manifest(store_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    Path(store_dir, "xgb", "final", step_dir_name(1), "_manifest.json").write_text("{broken")

    assert main(["ls", store_dir, "xgb/final"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1\tCORRUPT\tunreadable manifest")
    assert lines[1].startswith("2\t")


def test_kill_matrix_subcommand_lists_targets(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["kill-matrix", "--list"])

    output = capsys.readouterr().out
    assert status == 0
    assert "store-loop" in output


def test_help_names_kill_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])

    assert "kill-matrix" in capsys.readouterr().out

"""The pytest plugin, loaded the way the pytest11 entry point loads it, in a fresh project."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

USER_TESTS = """
    from persistkit import CheckpointStore


    def test_first_store_starts_empty(persistkit_store):
        assert isinstance(persistkit_store, CheckpointStore)
        assert persistkit_store.keys() == []
        persistkit_store.save("model", {"weights.bin": b"first"}, step=1)
        persistkit_store.flush()
        assert persistkit_store.latest_step("model") == 1


    def test_second_store_is_isolated(persistkit_store, persistkit_store_url):
        assert persistkit_store_url.startswith("memory://")
        assert persistkit_store.keys() == []


    def test_sync_store_commits_in_save(persistkit_sync_store):
        persistkit_sync_store.save("model", {"weights.bin": b"sync"}, step=3)
        assert persistkit_sync_store.steps("model") == [3]
"""


def test_plugin_fixtures_in_user_project(tmp_path: Path) -> None:
    (tmp_path / "test_user_pipeline.py").write_text(textwrap.dedent(USER_TESTS))
    # -p imports the plugin module by name, as pytest does for a pytest11 entry point.
    # Autoloading is off so that an installed persistkit's entry point does not register
    # the same module a second time.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "persistkit.pytest_plugin", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout

"""pytest fixtures that give each test its own in-memory checkpoint store.

Installed packages register this module through the ``pytest11`` entry point, so the
fixtures are available in any project that has persistkit installed:

.. code-block:: python

    def test_training_resumes(persistkit_store):
        persistkit_store.save("model", {"weights.bin": b"..."}, step=1)
        persistkit_store.flush()
        assert persistkit_store.latest_step("model") == 1

Each test gets a unique ``memory://`` root that is removed when the test ends, so tests
never see each other's checkpoints and need no cloud credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fsspec
import pytest

from persistkit._store import CheckpointStore

__all__ = ["persistkit_store", "persistkit_store_url", "persistkit_sync_store"]


@pytest.fixture
def persistkit_store_url() -> Iterator[str]:
    """A ``memory://`` URL unique to this test; its contents are removed afterwards."""
    url = f"memory://persistkit-test-{uuid.uuid4().hex}"
    yield url
    filesystem, root = fsspec.core.url_to_fs(url)
    if filesystem.exists(root):
        filesystem.rm(root, recursive=True)


@pytest.fixture
def persistkit_store(persistkit_store_url: str) -> Iterator[CheckpointStore]:
    """A CheckpointStore on this test's ``memory://`` URL, uploading in the background.

    The store is flushed and closed after the test, so a failed background save fails
    the test at teardown.
    """
    store = CheckpointStore(persistkit_store_url)
    yield store
    store.close()


@pytest.fixture
def persistkit_sync_store(persistkit_store_url: str) -> Iterator[CheckpointStore]:
    """A CheckpointStore on this test's ``memory://`` URL that commits inside ``save``."""
    store = CheckpointStore(persistkit_store_url, background=False)
    yield store
    store.close()

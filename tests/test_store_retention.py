"""Retention: keep last N and best K, never the only verified step, never before commit."""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
import pytest

from persistkit import CheckpointStore, Retention
from persistkit._retention import select_steps_to_delete
from persistkit.errors import StorageError
from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan, InjectedCrash


@pytest.fixture
def store(persistkit_store_url: str) -> Iterator[CheckpointStore]:
    with CheckpointStore(persistkit_store_url, background=False) as opened:
        yield opened


def test_keep_last_n(store: CheckpointStore) -> None:
    for step in range(6):
        store.save("k", {"a.bin": bytes([step])}, step=step, retention=Retention(keep_last=2))
    assert store.steps("k") == [4, 5]


def test_store_default_retention(persistkit_store_url: str) -> None:
    with CheckpointStore(persistkit_store_url, background=False, retention={"keep_last": 3}) as store:
        for step in range(5):
            store.save("k", {"a.bin": b"a"}, step=step)
        assert store.steps("k") == [2, 3, 4]


def test_keep_best_by_min_metric(store: CheckpointStore) -> None:
    losses = {1: 0.9, 2: 0.2, 3: 0.5, 4: 0.1, 5: 0.7, 6: 0.8}
    policy = Retention(keep_last=1, keep_best=2, metric="loss", mode="min")
    for step, loss in losses.items():
        store.save("k", {"a.bin": b"a"}, step=step, metrics={"loss": loss}, retention=policy)
    assert store.steps("k") == [2, 4, 6]


def test_keep_best_by_max_metric(store: CheckpointStore) -> None:
    scores = {1: 0.6, 2: 0.9, 3: 0.5, 4: 0.7}
    policy = Retention(keep_best=1, metric="auc", mode="max")
    for step, auc in scores.items():
        store.save("k", {"a.bin": b"a"}, step=step, metrics={"auc": auc}, retention=policy)
    # The newest step is always kept in addition to the best one.
    assert store.steps("k") == [2, 4]


def test_steps_without_metric_never_count_as_best() -> None:
    metrics = {1: {}, 2: {"loss": float("nan")}, 3: {"loss": 0.5}, 4: {"loss": None}, 5: {}}
    policy = Retention(keep_best=1, metric="loss")
    assert select_steps_to_delete(policy, metrics) == [1, 2, 4]


def test_no_policy_deletes_nothing() -> None:
    assert select_steps_to_delete(Retention(), {1: {}, 2: {}}) == []


def test_newest_step_always_kept() -> None:
    policy = Retention(keep_best=1, metric="loss", mode="min")
    assert select_steps_to_delete(policy, {1: {"loss": 0.1}, 2: {"loss": 0.9}}) == []


@pytest.mark.parametrize(
    "options",
    [
        {"keep_last": 0},
        {"keep_best": -1},
        {"keep_best": 1},
        {"keep_best": 1, "metric": "loss", "mode": "lowest"},
    ],
)
def test_invalid_policy_rejected(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Retention(**options)  # type: ignore[arg-type]


def test_failed_commit_deletes_nothing(persistkit_store_url: str) -> None:
    memory = fsspec.filesystem("memory")
    root = fsspec.core.url_to_fs(persistkit_store_url)[1]
    writer = CheckpointStore(root, filesystem=memory, background=False)
    for step in (1, 2):
        writer.save("k", {"a.bin": b"a"}, step=step)
    writer.close()

    # Every write of the next commit fails permanently: the manifest never lands.
    faulty = FaultInjectingFileSystem(memory, FaultPlan(transient_rate=1.0))
    store = CheckpointStore(root, filesystem=faulty, background=False, retention={"keep_last": 1})
    with pytest.raises(StorageError):
        store.save("k", {"a.bin": b"b"}, step=3)

    reader = CheckpointStore(root, filesystem=memory, background=False)
    assert reader.steps("k") == [1, 2]
    reader.close()


def test_crash_before_manifest_keeps_old_steps(persistkit_store_url: str) -> None:
    memory = fsspec.filesystem("memory")
    root = fsspec.core.url_to_fs(persistkit_store_url)[1]
    with CheckpointStore(root, filesystem=memory, background=False) as writer:
        writer.save("k", {"a.bin": b"one"}, step=1)

    faulty = FaultInjectingFileSystem(memory, FaultPlan(crash_at_path="_manifest.json"))
    store = CheckpointStore(root, filesystem=faulty, background=False, retention={"keep_last": 1})
    with pytest.raises(InjectedCrash):
        store.save("k", {"a.bin": b"two"}, step=2)
    assert faulty.write_log[-2].path.endswith("a.bin")
    assert faulty.write_log[-1].path.endswith("_manifest.json")

    with CheckpointStore(root, filesystem=memory, background=False) as reader:
        assert reader.steps("k") == [1]
        assert reader.load("k").files["a.bin"] == b"one"


def test_only_verified_step_survives_retention(store: CheckpointStore) -> None:
    policy = Retention(keep_best=1, metric="loss")
    store.save("k", {"a.bin": b"a"}, step=1, metrics={"loss": 0.1}, retention=policy)
    store.save("k", {"a.bin": b"b"}, step=2, metrics={"loss": 0.5}, retention=policy)
    store.save("k", {"a.bin": b"c"}, step=3, metrics={"loss": 0.9}, retention=policy)

    assert store.steps("k") == [1, 3]
    assert store.load("k").step == 3


class TruncatingFileSystem(FaultInjectingFileSystem):
    """Silently stores only half of every payload file of step 3."""

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: object) -> None:
        if "_step-0000000003/" in path and not path.endswith("_manifest.json"):
            value = value[: len(value) // 2]
        super().pipe_file(path, value, mode=mode, **kwargs)


def test_truncated_commit_deletes_nothing(persistkit_store_url: str) -> None:
    memory = fsspec.filesystem("memory")
    root = fsspec.core.url_to_fs(persistkit_store_url)[1]
    truncating = TruncatingFileSystem(memory, FaultPlan())
    store = CheckpointStore(root, filesystem=truncating, background=False, retention={"keep_last": 1})
    store.save("k", {"a.bin": b"one" * 10}, step=1)
    store.save("k", {"a.bin": b"two" * 10}, step=2)

    with pytest.raises(StorageError, match="retention deleted nothing"):
        store.save("k", {"a.bin": b"three" * 10}, step=3)

    assert store.steps("k") == [2, 3]
    assert store.load("k").step == 2
    store.close()

"""Store invariants checked after every kill of a kill-matrix target.

After the harness has SIGKILLed a target it inspects the target's store from outside:

1. ``persistkit verify URL`` exits 0 (every committed checkpoint verifies).
2. Every checkpoint that ``steps()`` lists loads with ``load(key, step=...)``: a listed
   checkpoint that fails verification is an uncommitted checkpoint made visible.
3. No committed checkpoint is lost. A checkpoint seen after an earlier kill, or
   acknowledged by the target, may disappear only when a newer step of the same key
   is committed (retention), or when its whole key matches the target's
   ``deletable_keys`` pattern. A committed checkpoint never changes its contents.
4. When the target records what it meant to save (an intent log), every visible
   checkpoint has exactly the contents of one of those saves.

A target that knows when a checkpoint is committed (``save`` returned with
``background=False``, or ``flush()`` returned) may append it to an acknowledgement log.
A target that knows what it saves may append each checkpoint to the intent log before
calling ``save``. Both are JSON lines ``{"key": ..., "step": ..., "digest": ...}`` in the output folder;
:func:`checkpoint_digest` computes the digest the same way on both sides.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from persistkit._reader import StoreReader
from persistkit._storage import open_storage
from persistkit.errors import PersistkitError

__all__ = [
    "ACK_LOG_NAME",
    "INTENT_LOG_NAME",
    "StoreSnapshot",
    "append_log_record",
    "check_store",
    "checkpoint_digest",
    "has_commit",
    "read_log_records",
]

logger = logging.getLogger(__name__)

ACK_LOG_NAME = "killmatrix-acks.jsonl"
INTENT_LOG_NAME = "killmatrix-intents.jsonl"

# {key: {step: digest}}
StoreSnapshot = dict[str, dict[int, str]]


def checkpoint_digest(files: Mapping[str, bytes]) -> str:
    """Return a SHA-256 over the file names and contents of one checkpoint."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def append_log_record(path: Path, key: str, step: int, digest: str) -> None:
    """Append one record to an acknowledgement or intent log and fsync it.

    The fsync makes the record survive a SIGKILL that follows immediately.
    """
    line = json.dumps({"key": key, "step": step, "digest": digest}, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as log_file:
        log_file.write(line)
        log_file.flush()
        os.fsync(log_file.fileno())


def read_log_records(path: Path) -> list[tuple[str, int, str]]:
    """Read ``(key, step, digest)`` records; a torn last line (killed mid-write) is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        records.append((str(record["key"]), int(record["step"]), str(record["digest"])))
    return records


@dataclass(frozen=True)
class StoreCheck:
    """Outcome of one inspection of a store: what is committed and what is wrong."""

    snapshot: StoreSnapshot
    problems: tuple[str, ...] = field(default_factory=tuple)


def check_store(
    url: str,
    *,
    output_dir: Path,
    previous: StoreSnapshot,
    deletable_keys: str | None = None,
    rewritable_keys: str | None = None,
    storage_options: Mapping[str, object] | None = None,
    verify_timeout_s: float = 300.0,
) -> StoreCheck:
    """Inspect the store at ``url`` after a kill and return its snapshot and any problems.

    Args:
        url: the store URL the target wrote to.
        output_dir: the target's output folder, which may hold the acknowledgement and
            intent logs.
        previous: the snapshot taken after the previous kill of the same run.
        deletable_keys: regular expression of keys the target may delete as a whole,
            for example trial-scoped checkpoints removed once their trial is complete.
        rewritable_keys: regular expression of keys whose steps the target may save
            again with other contents, such as a progress record kept at step 0.
        storage_options: passed to the store; needed for object stores.
        verify_timeout_s: seconds after which ``persistkit verify`` counts as failed.
    """
    problems = list(_run_verify(url, verify_timeout_s))
    snapshot, load_problems = _snapshot_store(url, storage_options)
    problems.extend(load_problems)

    deletable = re.compile(deletable_keys) if deletable_keys else None
    rewritable = re.compile(rewritable_keys) if rewritable_keys else None
    problems.extend(
        _lost_or_changed(previous, snapshot, deletable, rewritable, "seen after the previous kill")
    )

    acknowledged: StoreSnapshot = {}
    for key, step, digest in read_log_records(output_dir / ACK_LOG_NAME):
        acknowledged.setdefault(key, {})[step] = digest
    problems.extend(
        _lost_or_changed(acknowledged, snapshot, deletable, rewritable, "acknowledged by the target")
    )

    problems.extend(_unintended(snapshot, output_dir / INTENT_LOG_NAME))
    return StoreCheck(snapshot=snapshot, problems=tuple(problems))


def _run_verify(url: str, timeout_s: float) -> list[str]:
    command = [sys.executable, "-m", "persistkit", "verify", url]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return [f"`persistkit verify {url}` timed out after {timeout_s:.0f} s."]
    if completed.returncode == 0:
        return []
    output = (completed.stdout + completed.stderr).strip()[-2000:]
    return [f"`persistkit verify {url}` exited with {completed.returncode}: {output}"]


def _open_reader(url: str, storage_options: Mapping[str, object] | None) -> StoreReader:
    return StoreReader(open_storage(url, storage_options))


def has_commit(url: str, storage_options: Mapping[str, object] | None = None) -> bool:
    """Return whether the store at ``url`` contains at least one committed checkpoint."""
    reader = _open_reader(url, storage_options)
    try:
        return bool(reader.keys())
    finally:
        reader.storage.close()


def _snapshot_store(
    url: str, storage_options: Mapping[str, object] | None
) -> tuple[StoreSnapshot, list[str]]:
    snapshot: StoreSnapshot = {}
    problems: list[str] = []
    # A reader takes no lease and starts no thread, unlike a CheckpointStore.
    reader = _open_reader(url, storage_options)
    try:
        keys = reader.keys()
        for key in keys:
            steps = reader.steps(key)
            snapshot[key] = {}
            for step in steps:
                try:
                    checkpoint = reader.load(key, step=step)
                except PersistkitError as exc:
                    problems.append(
                        f"checkpoint {key!r} step {step} is listed as committed but does not "
                        f"load: {type(exc).__name__}: {exc}"
                    )
                    continue
                snapshot[key][step] = checkpoint_digest(checkpoint.files)
    finally:
        reader.storage.close()
    return snapshot, problems


def _lost_or_changed(
    earlier: StoreSnapshot,
    current: StoreSnapshot,
    deletable: re.Pattern[str] | None,
    rewritable: re.Pattern[str] | None,
    source: str,
) -> list[str]:
    problems = []
    for key, steps in earlier.items():
        current_steps = current.get(key, {})
        if not current_steps:
            if steps and not (deletable and deletable.fullmatch(key)):
                problems.append(
                    f"key {key!r} lost every checkpoint; steps {sorted(steps)} were {source}."
                )
            continue
        newest = max(current_steps)
        for step, digest in steps.items():
            if step not in current_steps:
                if step > newest:
                    problems.append(
                        f"checkpoint {key!r} step {step} was {source} but is gone, and the "
                        f"newest committed step is {newest}."
                    )
                continue
            if current_steps[step] != digest and not (rewritable and rewritable.fullmatch(key)):
                problems.append(
                    f"checkpoint {key!r} step {step} changed its contents after it was {source}."
                )
    return problems


def _unintended(snapshot: StoreSnapshot, intent_log: Path) -> list[str]:
    records = read_log_records(intent_log)
    if not records:
        return []
    intended: dict[tuple[str, int], set[str]] = {}
    for key, step, digest in records:
        intended.setdefault((key, step), set()).add(digest)
    problems = []
    for key, steps in snapshot.items():
        for step, digest in steps.items():
            if digest not in intended.get((key, step), set()):
                problems.append(
                    f"checkpoint {key!r} step {step} is visible with contents the target "
                    "never saved."
                )
    return problems


def describe_snapshot(snapshot: StoreSnapshot) -> str:
    """Return a one-line summary such as ``"a: 3 steps (latest 7); b: 1 step (latest 2)"``."""
    parts = []
    for key in sorted(snapshot):
        steps: Sequence[int] = sorted(snapshot[key])
        latest = steps[-1] if steps else None
        parts.append(f"{key}: {len(steps)} steps (latest {latest})")
    return "; ".join(parts) or "empty"

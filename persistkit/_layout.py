"""On-disk layout of a checkpoint store, and validation of keys and file names.

The same layout is used on every kind of storage; ``<root>`` is the store URL::

    <root>/
    ├── _persistkit_store.json            format marker: {"format": "persistkit-store", "version": 1}
    └── xgb/                              one directory per key part ("xgb/final")
        └── final/
            ├── _lease/                   writer leases, see persistkit._lease
            │   └── 0000000003.json       the highest generation is the current lease
            ├── _step-0000000100/         committed step 100
            │   ├── model.ubj             payload files, names chosen by the caller
            │   └── _manifest.json        written last; without it the step does not exist
            ├── _step-0000000120/
            │   └── ...
            └── _staging-0000000130-3f2a9c/   local disk only: renamed to _step-... on commit

Key parts and file names start with a letter or digit, so every name that persistkit
reserves starts with ``_`` and can never collide with a caller's key or file. Readers list
only ``_step-*`` directories that contain ``_manifest.json``. A ``_step-*`` directory
without a manifest (an object-store upload that was interrupted) and every
``_staging-*`` directory are partial writes: readers ignore them, the writer that holds
the key's lease removes them, and ``persistkit gc`` removes them for keys nobody holds.

Step numbers are zero-padded to ten digits so that names sort in step order; larger
steps get more digits and still parse.
"""

from __future__ import annotations

import re

from persistkit.errors import InvalidNameError

__all__ = [
    "LEASE_DIR",
    "MANIFEST_NAME",
    "STAGING_PREFIX",
    "STEP_PREFIX",
    "STORE_MARKER_NAME",
    "is_key_part",
    "parse_step_dir",
    "step_dir_name",
    "validate_file_name",
    "validate_key",
    "validate_step",
]

STORE_MARKER_NAME = "_persistkit_store.json"
STORE_FORMAT = "persistkit-store"
STORE_FORMAT_VERSION = 1
STEP_PREFIX = "_step-"
STAGING_PREFIX = "_staging-"
MANIFEST_NAME = "_manifest.json"
LEASE_DIR = "_lease"
STEP_DIGITS = 10

_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STEP_DIR = re.compile(re.escape(STEP_PREFIX) + r"([0-9]+)")


def is_key_part(name: str) -> bool:
    """Return whether ``name`` is a valid key part or file name."""
    return _NAME_PART.fullmatch(name) is not None and name not in (".", "..")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged, or raise InvalidNameError when it is not a valid key.

    A key is one or more parts joined by ``/``; each part starts with a letter or digit
    followed by letters, digits, ``.``, ``_`` or ``-``. That excludes empty parts, ``..``,
    absolute paths, backslashes, whitespace and control characters.
    """
    if not isinstance(key, str):
        raise InvalidNameError(f"checkpoint key must be a str, got {type(key).__name__}: {key!r}")
    parts = key.split("/")
    if not key or not all(is_key_part(part) for part in parts):
        raise InvalidNameError(
            f"invalid checkpoint key {key!r}: expected '/'-separated parts that each match "
            "[A-Za-z0-9][A-Za-z0-9._-]*, such as 'xgb/final'"
        )
    return key


def validate_file_name(name: str) -> str:
    """Return ``name`` unchanged, or raise InvalidNameError when it is not a valid file name."""
    if not isinstance(name, str) or not is_key_part(name):
        raise InvalidNameError(
            f"invalid checkpoint file name {name!r}: expected one part matching "
            "[A-Za-z0-9][A-Za-z0-9._-]*, such as 'model.ubj'"
        )
    return name


def validate_step(step: object) -> int:
    """Return ``step`` as an int, or raise InvalidNameError when it is not an int >= 0."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InvalidNameError(f"invalid step {step!r}: expected an int >= 0")
    return step


def step_dir_name(step: int) -> str:
    """Return the directory name of ``step``, zero-padded so that names sort by step."""
    return f"{STEP_PREFIX}{step:0{STEP_DIGITS}d}"


def parse_step_dir(name: str) -> int | None:
    """Return the step encoded in a ``_step-*`` directory name, or None for other names."""
    match = _STEP_DIR.fullmatch(name)
    return int(match.group(1)) if match else None

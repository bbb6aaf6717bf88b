"""Comparison of the final artefacts of an interrupted run with those of a reference run.

A target writes its results (predictions, trial parameters, metrics) as files in its
output folder. Each :class:`ArtefactRule` selects files by glob pattern and states how
they must match: byte for byte (the exact paths), or as JSON documents whose numbers may
differ within a :class:`Tolerance` (the approximate paths, such as boosting with
subsampling, whose continuation after a resume is not bit-identical).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ArtefactRule", "Tolerance", "compare_artefacts"]

# How many differing JSON values one artefact reports before it stops listing them.
_MAX_REPORTED_DIFFERENCES = 5


@dataclass(frozen=True)
class Tolerance:
    """Allowed difference between two numbers: ``|a - b| <= atol + rtol * |b|``."""

    rtol: float = 0.0
    atol: float = 0.0

    def __post_init__(self) -> None:
        if self.rtol < 0 or self.atol < 0:
            raise ValueError(
                f"Tolerance(rtol={self.rtol!r}, atol={self.atol!r}) is invalid: "
                "both must be zero or positive."
            )

    def accepts(self, candidate: float, reference: float) -> bool:
        """Return whether ``candidate`` is within this tolerance of ``reference``."""
        if math.isnan(candidate) or math.isnan(reference):
            return math.isnan(candidate) and math.isnan(reference)
        return abs(candidate - reference) <= self.atol + self.rtol * abs(reference)


@dataclass(frozen=True)
class ArtefactRule:
    """Files of a target's output folder and how they must match the reference run.

    Attributes:
        pattern: glob pattern relative to the output folder, such as ``"result.json"``.
        tolerance: None for byte-identical files. Otherwise both files are parsed as
            JSON, and numbers may differ within this tolerance. Strings, keys, list
            lengths and booleans must still be equal.
    """

    pattern: str
    tolerance: Tolerance | None = None

    @property
    def exact(self) -> bool:
        """Whether the files must be byte-identical."""
        return self.tolerance is None


def compare_artefacts(
    reference_dir: Path, candidate_dir: Path, rules: Iterable[ArtefactRule]
) -> list[str]:
    """Compare the artefacts selected by ``rules`` and return one message per mismatch.

    An empty list means every selected file matched. A rule that selects no file in
    ``reference_dir`` is a mismatch too, so a target that stopped writing its results
    cannot pass by comparing nothing.
    """
    problems: list[str] = []
    for rule in rules:
        reference_files = sorted(path for path in reference_dir.glob(rule.pattern) if path.is_file())
        if not reference_files:
            problems.append(
                f"artefact pattern {rule.pattern!r} matched no file in the reference run "
                f"({reference_dir}); the target did not write its results."
            )
            continue
        for reference_file in reference_files:
            relative = reference_file.relative_to(reference_dir)
            problems.extend(_compare_file(reference_file, candidate_dir / relative, rule))
    return problems


def _compare_file(reference_file: Path, candidate_file: Path, rule: ArtefactRule) -> list[str]:
    if not candidate_file.is_file():
        return [f"artefact {candidate_file} is missing; the reference run wrote {reference_file}."]

    reference_bytes = reference_file.read_bytes()
    candidate_bytes = candidate_file.read_bytes()
    if rule.tolerance is None and reference_bytes == candidate_bytes:
        return []

    try:
        reference = json.loads(reference_bytes)
        candidate = json.loads(candidate_bytes)
    except ValueError:
        if rule.tolerance is not None:
            return [f"artefact {candidate_file} is not JSON, so tolerance {rule.tolerance} cannot apply."]
        return [f"artefact {candidate_file} differs from {reference_file} (not JSON, bytes differ)."]

    tolerance = rule.tolerance or Tolerance()
    differences = list(_json_differences(candidate, reference, tolerance, "$"))
    if not differences and rule.tolerance is None:
        # Same JSON values but other bytes (key order, spacing): still not identical.
        return [f"artefact {candidate_file} has the reference's JSON values but other bytes."]
    if not differences:
        return []

    kind = "exactly" if rule.tolerance is None else f"within {tolerance}"
    shown = "; ".join(differences[:_MAX_REPORTED_DIFFERENCES])
    more = len(differences) - _MAX_REPORTED_DIFFERENCES
    suffix = f"; and {more} more" if more > 0 else ""
    return [
        f"artefact {candidate_file} does not match the reference {kind}: "
        f"{len(differences)} differing values: {shown}{suffix}."
    ]


def _json_differences(candidate: Any, reference: Any, tolerance: Tolerance, path: str) -> Iterator[str]:
    if _is_number(candidate) and _is_number(reference):
        if not tolerance.accepts(float(candidate), float(reference)):
            yield f"{path}: {candidate!r} != {reference!r}"
        return
    if isinstance(reference, dict) and isinstance(candidate, dict):
        if set(reference) != set(candidate):
            missing = sorted(set(reference) - set(candidate))
            extra = sorted(set(candidate) - set(reference))
            yield f"{path}: keys differ (missing {missing}, extra {extra})"
            return
        for name in reference:
            yield from _json_differences(candidate[name], reference[name], tolerance, f"{path}.{name}")
        return
    if isinstance(reference, list) and isinstance(candidate, list):
        if len(reference) != len(candidate):
            yield f"{path}: length {len(candidate)} != {len(reference)}"
            return
        for index, (item, expected) in enumerate(zip(candidate, reference, strict=True)):
            yield from _json_differences(item, expected, tolerance, f"{path}[{index}]")
        return
    if candidate != reference or type(candidate) is not type(reference):
        yield f"{path}: {_short(candidate)} != {_short(reference)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

"""Text table and JSON form of kill-matrix results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from persistkit.testing._killrun import MatrixResult

__all__ = ["format_table", "result_to_json"]

_COLUMNS = ("target", "seed", "rounds", "kills", "attempts", "reference s", "total s", "result")


def format_table(results: Sequence[MatrixResult]) -> str:
    """Return a Markdown table with one row per target and a total row."""
    rows = [
        (
            result.target,
            str(result.seed),
            str(len(result.rounds)),
            str(result.kills),
            str(sum(len(round_.attempts) for round_ in result.rounds)),
            f"{result.reference_duration_s:.1f}",
            f"{result.duration_s:.1f}",
            "ok" if result.ok else f"FAIL ({len(result.problems)})",
        )
        for result in results
    ]
    failed = sum(not result.ok for result in results)
    rows.append((
        "total", "", str(sum(len(r.rounds) for r in results)),
        str(sum(r.kills for r in results)),
        str(sum(len(round_.attempts) for r in results for round_ in r.rounds)),
        "", f"{sum(r.duration_s for r in results):.1f}",
        "ok" if not failed else f"{failed} targets failed",
    ))
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def result_to_json(result: MatrixResult) -> dict[str, Any]:
    """Return a JSON-able dict with every attempt of ``result``."""
    return {
        "target": result.target,
        "seed": result.seed,
        "kills": result.kills,
        "ok": result.ok,
        "reference_duration_s": result.reference_duration_s,
        "duration_s": result.duration_s,
        "problems": result.problems,
        "rounds": [
            {
                "index": round_.index,
                "completed": round_.completed,
                "comparison_problems": list(round_.comparison_problems),
                "attempts": [
                    {
                        "index": attempt.index,
                        "delay_s": attempt.delay_s,
                        "killed": attempt.killed,
                        "exit_code": attempt.exit_code,
                        "duration_s": attempt.duration_s,
                        "store": attempt.store_summary,
                        "problems": list(attempt.problems),
                        "log": str(attempt.log_path),
                    }
                    for attempt in round_.attempts
                ],
            }
            for round_ in result.rounds
        ],
    }

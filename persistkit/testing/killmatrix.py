"""Kill matrix: SIGKILL a job at random moments, re-run it, and prove nothing was lost.

The harness runs a target command in a subprocess, kills its process group at seeded
random moments, and re-runs it until it completes. After every kill it checks the store:
``persistkit verify`` passes, no committed checkpoint is lost, and no checkpoint is
visible that was not committed. At the end of each round it compares the target's final
artefacts with those of an uninterrupted run: byte for byte for the exact paths, within a
stated tolerance for the approximate ones.

Command line (also ``persistkit kill-matrix``)::

    python -m persistkit.testing.killmatrix --target store-loop --kills 20 --seed 1
    python -m persistkit.testing.killmatrix --command "python train.py --store {store} \\
        --out {out}" --exact "result.json" --kills 10

A failing run prints the seed and kill delays that replay it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from persistkit.testing._artefacts import ArtefactRule, Tolerance, compare_artefacts
from persistkit.testing._killchecks import (
    ACK_LOG_NAME,
    INTENT_LOG_NAME,
    append_log_record,
    check_store,
    checkpoint_digest,
    read_log_records,
)
from persistkit.testing._killreport import format_table, result_to_json
from persistkit.testing._killrun import (
    Attempt,
    KillMatrix,
    MatrixResult,
    RoundResult,
    Target,
    local_store_url,
    python_module_argv,
)
from persistkit.testing.kill_targets import MATRICES, builtin_targets

__all__ = [
    "ACK_LOG_NAME",
    "INTENT_LOG_NAME",
    "ArtefactRule",
    "Attempt",
    "KillMatrix",
    "MatrixResult",
    "RoundResult",
    "Target",
    "Tolerance",
    "append_log_record",
    "check_store",
    "checkpoint_digest",
    "compare_artefacts",
    "format_table",
    "local_store_url",
    "main",
    "python_module_argv",
    "read_log_records",
    "result_to_json",
]


def _parse_approx(text: str) -> ArtefactRule:
    pattern, _, numbers = text.partition(":")
    parts = numbers.split(":") if numbers else []
    if not pattern or not 1 <= len(parts) <= 2:
        raise argparse.ArgumentTypeError(
            f"invalid --approx value {text!r}: expected GLOB:RTOL or GLOB:RTOL:ATOL, "
            "for example 'result.json:1e-6'."
        )
    try:
        tolerance = Tolerance(rtol=float(parts[0]), atol=float(parts[1]) if len(parts) == 2 else 0.0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid --approx value {text!r}: {exc}") from exc
    return ArtefactRule(pattern, tolerance)


def _parse_delays(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"invalid --delays value {text!r}: expected seconds separated by commas, such as 0.5,1.25."
        ) from exc


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the kill-matrix command line."""
    parser = argparse.ArgumentParser(
        prog="python -m persistkit.testing.killmatrix",
        description="SIGKILL a job at seeded random moments, re-run it until it completes, "
        "check the store after every kill and compare the final artefacts with an "
        "uninterrupted run. Exit code 1 when any check fails.",
    )
    _add_target_options(parser.add_argument_group("targets"))
    _add_kill_options(parser.add_argument_group("kills"))

    output = parser.add_argument_group("output")
    output.add_argument("--workdir", type=Path,
                        help="folder for stores, outputs and logs (default: a new temporary folder)")
    output.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    output.add_argument("-v", "--verbose", action="store_true", help="log every attempt")
    return parser


def _add_target_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--target", action="append", default=[],
                       help="built-in target to run (repeatable); see --list")
    group.add_argument("--matrix", choices=("slice", "full"),
                       help="run a named set of built-in targets, each with its own kill count: "
                       "slice (at least 30 kills, as in the default tests) or full (at least "
                       "300); with --target, only those targets of the set")
    group.add_argument("--list", action="store_true", help="list the built-in targets and exit")
    group.add_argument("--data", type=Path, help="phone-number CSV for the train-quick targets")

    group.add_argument("--command", help="your own target command; {store} and {out} are "
                       "replaced by the store URL and the output folder")
    group.add_argument("--exact", action="append", default=[], metavar="GLOB",
                       help="with --command: output files that must be byte-identical")
    group.add_argument("--approx", action="append", default=[], type=_parse_approx,
                       metavar="GLOB:RTOL[:ATOL]",
                       help="with --command: JSON output files whose numbers may differ "
                       "within the relative and absolute tolerance")
    group.add_argument("--deletable-keys", metavar="REGEX",
                       help="with --command: keys the job may delete as a whole")
    group.add_argument("--rewritable-keys", metavar="REGEX",
                       help="with --command: keys whose steps the job may save again with "
                       "other contents")


def _add_kill_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--kills", type=int, default=10,
                       help="minimum kills per target (default 10; --matrix sets its own)")
    group.add_argument("--seed", type=int, default=0, help="seed of the kill delays (default 0)")
    group.add_argument("--delays", type=_parse_delays, default=[],
                       help="explicit kill delays in seconds, comma-separated, used before "
                       "seeded ones")
    group.add_argument("--max-kills-per-round", type=int, default=5,
                       help="kills before a round runs to completion (default 5)")
    group.add_argument("--min-delay", type=float,
                       help="earliest kill after start in seconds (default: the target's own)")
    group.add_argument("--timeout", type=float,
                       help="seconds one attempt may run (default: the target's own)")


def _selected_targets(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Target]:
    available = builtin_targets(data_path=args.data)
    targets = []
    # With --matrix, --target picks some of the matrix's targets; alone it names them all.
    names = list(args.target) or (list(MATRICES[args.matrix]) if args.matrix else [])
    for name in names:
        if name not in available:
            hint = " (it needs --data)" if name == "train-quick" else ""
            parser.error(f"unknown target {name!r}{hint}; choose from {', '.join(available)}.")
        targets.append(available[name])
    if args.command:
        rules = [ArtefactRule(pattern) for pattern in args.exact] + list(args.approx)
        if not rules:
            parser.error("--command needs at least one --exact or --approx artefact to compare.")
        targets.append(Target("command", tuple(shlex.split(args.command)), tuple(rules),
                              deletable_keys=args.deletable_keys,
                              rewritable_keys=args.rewritable_keys))
    if not targets:
        parser.error("nothing to run: give --target NAME, --matrix NAME or --command CMD "
                     "(see --list).")
    return targets


def _with_overrides(target: Target, args: argparse.Namespace) -> Target:
    changes: dict[str, float] = {}
    if args.min_delay is not None:
        changes["min_delay_s"] = args.min_delay
    if args.timeout is not None:
        changes["timeout_s"] = args.timeout
    if not changes:
        return target
    import dataclasses

    return dataclasses.replace(target, **changes)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the kill-matrix command line and return the exit code (0 when every check passed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for name, target in builtin_targets(data_path=args.data or Path("DATA.csv")).items():
            faults = " (with injected storage faults)" if target.env else ""
            print(f"{name:28} {shlex.join(target.argv[1:])}{faults}")
        return 0
    if args.kills < 1 or args.max_kills_per_round < 1:
        parser.error("--kills and --max-kills-per-round must be at least 1.")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="killmatrix-"))
    results: list[MatrixResult] = []
    for target in _selected_targets(args, parser):
        kills = args.kills
        if args.matrix and target.name in MATRICES[args.matrix]:
            kills = MATRICES[args.matrix][target.name]
        matrix = KillMatrix(_with_overrides(target, args), workdir, seed=args.seed,
                            kills=kills, max_kills_per_round=args.max_kills_per_round,
                            delays=args.delays)
        result = matrix.run()
        results.append(result)
        for problem in result.problems:
            print(f"FAIL {result.target}: {problem}", file=sys.stderr)
        if not result.ok:
            delays = ",".join(f"{delay:.3f}" for delay in result.delays)
            print(f"replay {result.target}: the same options with --seed {result.seed}, "
                  f"or exactly with --delays {delays}", file=sys.stderr)

    print(format_table(results))
    print(f"work folder: {workdir}")
    if args.json:
        args.json.write_text(json.dumps([result_to_json(r) for r in results], indent=1) + "\n",
                             encoding="utf-8")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

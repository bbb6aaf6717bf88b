"""The ``persistkit`` command: inspect, verify, download and clean up a checkpoint store.

Usage::

    persistkit ls URL [KEY]                 keys, or the steps of one key
    persistkit show URL KEY [--step N]      a checkpoint's manifest as JSON
    persistkit verify URL [KEY]             check every checkpoint; exit status 1 if any is corrupt
    persistkit pull URL KEY DEST [--step N] write a verified checkpoint's files into DEST
    persistkit gc URL [--dry-run] [--force] remove partial writes of keys no writer holds

Exit status: 0 on success, 1 when ``verify`` finds a corrupt checkpoint, 2 on errors.
Each subcommand is one entry in ``COMMANDS``; a new one adds a ``Command`` there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from persistkit._lease import WriterLease
from persistkit._reader import StoreReader
from persistkit._storage import open_storage
from persistkit._urls import redact_text
from persistkit.errors import CorruptCheckpointError, PersistkitError

__all__ = ["COMMANDS", "Command", "main"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CORRUPT = 1
EXIT_ERROR = 2


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, help line, argument set-up and handler."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _parse_storage_options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SystemExit(f"persistkit: invalid --storage-option {name!r}: expected KEY=VALUE")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return options


def _open_reader(args: argparse.Namespace) -> StoreReader:
    return StoreReader(open_storage(args.url, _parse_storage_options(args.storage_option)))


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="store URL: a local path, memory://, s3://, gs://, hf://, ...")


def _add_key_step(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", help="checkpoint key, such as xgb/final")
    parser.add_argument("--step", type=int, default=None, help="step to use (default: newest that verifies)")


def _add_ls_arguments(parser: argparse.ArgumentParser) -> None:
    _add_url(parser)
    parser.add_argument("key", nargs="?", help="list the steps of this key instead of the keys")


def _run_ls(args: argparse.Namespace) -> int:
    reader = _open_reader(args)
    if args.key is None:
        committed_keys = reader.keys()
        for key in committed_keys:
            steps = reader.steps(key)
            print(f"{key}\tsteps={len(steps)}\tlatest={steps[-1] if steps else '-'}")
        return EXIT_OK
    for step in reader.steps(args.key):
        try:
            manifest = reader.read_manifest(args.key, step)
        except CorruptCheckpointError as exc:
            print(f"{step}\tCORRUPT\t{exc}")
            continue
        size = sum(entry.size for entry in manifest.files.values())
        metrics = json.dumps(dict(manifest.metrics), sort_keys=True)
        print(f"{step}\t{manifest.created_at}\t{size} bytes\t{metrics}")
    return EXIT_OK


def _add_show_arguments(parser: argparse.ArgumentParser) -> None:
    _add_url(parser)
    _add_key_step(parser)


def _run_show(args: argparse.Namespace) -> int:
    reader = _open_reader(args)
    step = args.step if args.step is not None else reader.load(args.key).step
    print(json.dumps(reader.read_manifest(args.key, step).to_json(), indent=2))
    return EXIT_OK


def _add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    _add_url(parser)
    parser.add_argument("key", nargs="?", help="verify only this key (default: every key)")


def _run_verify(args: argparse.Namespace) -> int:
    reader = _open_reader(args)
    keys = [args.key] if args.key else reader.keys()
    checked = corrupt = 0
    for key in keys:
        for step in reader.steps(key):
            report = reader.verify(key, step)
            checked += 1
            if not report.ok:
                corrupt += 1
                print(f"CORRUPT\t{key}\tstep {step}\t{report.error}")
        partial = reader.partial_writes(key)
        if partial:
            print(f"partial\t{key}\t{len(partial)} partial writes (ignored; remove with gc)")
    print(f"verified {checked} checkpoints in {len(keys)} keys: {corrupt} corrupt")
    return EXIT_CORRUPT if corrupt else EXIT_OK


def _add_pull_arguments(parser: argparse.ArgumentParser) -> None:
    _add_url(parser)
    _add_key_step(parser)
    parser.add_argument("dest", help="local folder to write the files into (created if missing)")


def _run_pull(args: argparse.Namespace) -> int:
    checkpoint = _open_reader(args).load(args.key, step=args.step)
    os.makedirs(args.dest, exist_ok=True)
    for name, data in checkpoint.files.items():
        with open(os.path.join(args.dest, name), "wb") as file:
            file.write(data)
    with open(os.path.join(args.dest, "_manifest.json"), "wb") as file:
        file.write(checkpoint.manifest.encode())
    print(f"wrote {len(checkpoint.files)} files of {args.key} step {checkpoint.step} to {args.dest}")
    return EXIT_OK


def _add_gc_arguments(parser: argparse.ArgumentParser) -> None:
    _add_url(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    parser.add_argument(
        "--force",
        action="store_true",
        help="also clean keys whose writer lease is still valid (only when that writer is gone)",
    )


def _run_gc(args: argparse.Namespace) -> int:
    reader = _open_reader(args)
    removed = skipped = 0
    for key in reader.key_paths():
        partial = reader.partial_writes(key)
        if not partial:
            continue
        lease = WriterLease(reader.storage, key, owner="persistkit-gc", ttl=0.0).current()
        lease_is_live = lease is not None and not (
            lease.is_expired(time.time()) or lease.owner_is_dead_local_process()
        )
        if lease is not None and lease_is_live and not args.force:
            print(f"skipped\t{key}\twriter {lease.owner!r} holds the lease; its partial writes may be in progress")
            skipped += 1
            continue
        for name in partial:
            print(f"{'would remove' if args.dry_run else 'removed'}\t{key}/{name}")
            if not args.dry_run:
                reader.storage.delete_tree(f"{key}/{name}")
                logger.info("Removed partial write %s/%s from %s", key, name, reader.url)
            removed += 1
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {removed} partial writes; skipped {skipped} keys with a live writer")
    return EXIT_OK


COMMANDS: list[Command] = [
    Command("ls", "list keys, or the steps of one key", _add_ls_arguments, _run_ls),
    Command("show", "print a checkpoint's manifest as JSON", _add_show_arguments, _run_show),
    Command("verify", "check sizes and SHA-256 of every checkpoint", _add_verify_arguments, _run_verify),
    Command("pull", "write a verified checkpoint's files into a folder", _add_pull_arguments, _run_pull),
    Command("gc", "remove partial writes left by interrupted writers", _add_gc_arguments, _run_gc),
]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(prog="persistkit", description="Inspect a persistkit checkpoint store.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log INFO (-v) or DEBUG (-vv)")
    parser.epilog = (
        f"{KILL_MATRIX_COMMAND}: SIGKILL a job at random moments and check that it resumes "
        f"(see 'persistkit {KILL_MATRIX_COMMAND} --help')"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        subparser.add_argument(
            "--storage-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="fsspec storage option; VALUE is parsed as JSON when it can be (repeatable)",
        )
        command.add_arguments(subparser)
        subparser.set_defaults(handler=command.run)
    return parser


KILL_MATRIX_COMMAND = "kill-matrix"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``persistkit`` command and return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [KILL_MATRIX_COMMAND]:
        # The kill matrix has its own parser and options; it is imported only when asked for.
        from persistkit.testing import killmatrix

        return killmatrix.main(arguments[1:])
    args = build_parser().parse_args(arguments)
    level = logging.WARNING
    if args.verbose == 1:
        level = logging.INFO
    elif args.verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        status: int = args.handler(args)
    except (PersistkitError, OSError) as exc:
        print(f"persistkit {args.command}: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    return status

"""Implementations of the persistkit-train subcommands, behind :mod:`persistkit_train.cli`.

Only this module configures logging handlers: log records print through ``tqdm.write``
so that they appear above the progress bars instead of breaking them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from persistkit_train.cli import EXIT_DEADLINE, EXIT_FAILED, EXIT_INVALID, EXIT_OK, rerun_command
from persistkit_train.i18n import _, format_baht

logger = logging.getLogger(__name__)


class _TqdmHandler(logging.Handler):
    """Writes log records above the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_logging(*, verbose: bool) -> None:
    """Send persistkit and persistkit_train log records to stderr through tqdm."""
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # The library logs every commit at INFO; users see it with --verbose only.
    logging.getLogger("persistkit").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("persistkit_train").setLevel(logging.DEBUG if verbose else logging.INFO)


def run_command(args: argparse.Namespace, arguments: Sequence[str], lang: str) -> int:
    """Run the subcommand in ``args`` and return the exit code."""
    from persistkit.errors import FingerprintMismatchError, PersistkitError

    configure_logging(verbose=args.verbose)
    try:
        if args.command == "run":
            return _run(args, arguments, lang)
        if args.command == "status":
            return _status(args)
        if args.command == "predict":
            return _predict(args)
        return _demo_data(args)
    except FingerprintMismatchError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:
        # DataError, invalid settings and invalid numbers all derive from ValueError.
        print(_("Error: {message}").format(message=exc), file=sys.stderr)
        return EXIT_INVALID
    except (PersistkitError, OSError) as exc:
        print(_("Error: {message}").format(message=exc), file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace, arguments: Sequence[str], lang: str) -> int:
    from persistkit_train._progress import ProgressReporter
    from persistkit_train.config import make_config
    from persistkit_train.pipeline import run_training

    config = make_config(
        args.preset,
        trials=args.trials,
        folds=args.folds,
        max_rounds=args.max_rounds,
        threads=args.threads,
        split=args.split,
        exact_resume=args.exact_resume,
        device=args.device,
        checkpoint_every_rounds=args.checkpoint_every,
    )
    _route_optuna_logging()
    outcome = run_training(
        data_path=args.data,
        store_url=args.store,
        config=config,
        output_dir=args.output,
        restart=args.restart,
        deadline=_make_deadline(args.time_budget),
        progress=ProgressReporter(enabled=_progress_enabled(args.progress)),
        lang=lang,
    )
    if not outcome.completed:
        print(
            _("Stopped by the time budget during stage {stage}; all finished work is saved in "
              "the store. Re-run the same command to continue:\n  {command}").format(
                stage=outcome.stopped_at, command=rerun_command(arguments)
            ),
            file=sys.stderr,
        )
        return EXIT_DEADLINE
    assert outcome.metrics is not None
    ensemble = outcome.metrics["ensemble"]
    print(
        _("Done. Held-out ensemble: R² on log price {r2:.4f}, median absolute percentage "
          "error {mape:.1f}%. Files in {folder}").format(
            r2=ensemble["r2_log"], mape=ensemble["median_ape"], folder=args.output
        )
    )
    return EXIT_OK


def _make_deadline(time_budget: str | None) -> Any:
    from persistkit import Deadline
    from persistkit_train.config import parse_duration

    if time_budget is not None:
        return Deadline(hours=parse_duration(time_budget) / 3600.0)
    return Deadline.from_platform()


def _progress_enabled(choice: str) -> bool:
    if choice != "auto":
        return choice == "on"
    from persistkit_train._device import detect_platform

    return sys.stderr.isatty() or detect_platform() is not None


def _route_optuna_logging() -> None:
    # Optuna installs its own stderr handler, which would print between the bars.
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _status(args: argparse.Namespace) -> int:
    from persistkit import CheckpointStore
    from persistkit_train._status import status_lines

    with CheckpointStore(args.store, background=False) as store:
        for line in status_lines(store):
            print(line)
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    from persistkit_train._export import load_predictor

    if not args.numbers and args.input is None:
        raise ValueError(_("Give phone numbers to price, or --input CSV --output CSV."))
    if args.input is not None and args.output is None:
        raise ValueError(_("--input needs --output, the CSV file to write the prices to."))
    predictor = load_predictor(store_url=args.store, model_path=args.model)
    if args.input is not None:
        _predict_file(predictor, args.input, args.output, args.column)
    if args.numbers:
        frame = predictor.predict_frame(list(args.numbers))
        for row in frame.to_dict("records"):
            print(_format_prediction(row))
    return EXIT_OK


def _predict_file(predictor: Any, input_path: str, output_path: str, column: str) -> None:
    import pandas as pd

    from persistkit_train.data import DataError

    try:
        table = pd.read_csv(input_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(
            _("Cannot read {path} as CSV: {error}").format(path=input_path, error=exc)
        ) from exc
    if column not in table.columns:
        raise DataError(
            _("{path} has no column {column!r}; its columns are {columns}. Pass --column.").format(
                path=input_path, column=column, columns=", ".join(map(str, table.columns))
            )
        )
    frame = predictor.predict_frame(list(table[column]))
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    frame.to_csv(output_path, index=False)
    print(_("Wrote {rows} prices to {path}").format(rows=len(frame), path=output_path))


def _format_prediction(row: dict[str, Any]) -> str:
    error = row.get("error")
    if isinstance(error, str) and error:
        return _("{number}: invalid number ({error})").format(number=row["number"], error=error)
    return _("{number}: {price}").format(
        number=row["normalized"], price=format_baht(float(row["predicted_price"]))
    )


def _demo_data(args: argparse.Namespace) -> int:
    from persistkit_train.synthetic import write_demo_data

    write_demo_data(args.path, rows=args.rows, seed=args.seed)
    print(
        _("Wrote {rows} rows of SYNTHETIC data (made-up numbers and prices, for trying the "
          "pipeline only) to {path}").format(rows=args.rows, path=args.path)
    )
    return EXIT_OK

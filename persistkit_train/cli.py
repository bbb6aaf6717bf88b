"""Command line of persistkit-train: run, status, predict and demo-data.

Exit codes: 0 success, 1 failure, 2 invalid input (arguments, data file, a store that
contains another run), 3 stopped by the time budget (re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from persistkit_train import i18n
from persistkit_train.i18n import _

logger = logging.getLogger(__name__)

DEFAULT_STORE = "./persistkit-runs/default"
DEFAULT_OUTPUT = "./persistkit-output"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_DEADLINE = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the persistkit-train command line and return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    language_parser = argparse.ArgumentParser(add_help=False)
    language_parser.add_argument("--lang")
    known, _rest = language_parser.parse_known_args(arguments)
    lang = i18n.activate(known.lang)

    args = build_parser().parse_args(arguments)
    from persistkit_train._commands import run_command

    return run_command(args, arguments, lang)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; help text is in the active language."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--lang", choices=("th", "en"), help=_("language of messages and the report (th or en)")
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help=_("also show debug log lines")
    )
    parser = argparse.ArgumentParser(
        prog="persistkit-train",
        description=_(
            "Train, resume and use the Thai phone-number price ensemble "
            "(Optuna-tuned XGBoost, LightGBM and CatBoost, stacked)."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(commands, common)

    status = commands.add_parser(
        "status", parents=[common], help=_("show the progress of the run in a store")
    )
    status.add_argument("--store", default=DEFAULT_STORE, help=_("store URL or local folder"))

    predict = commands.add_parser(
        "predict", parents=[common], help=_("price phone numbers with a trained model")
    )
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--store", help=_("store URL of a finished run"))
    source.add_argument("--model", help=_("path of an exported best_model.pkl"))
    predict.add_argument("numbers", nargs="*", help=_("phone numbers to price"))
    predict.add_argument("--input", help=_("CSV file with a phone_number column to price"))
    predict.add_argument("--output", help=_("CSV file to write the prices to (with --input)"))
    predict.add_argument(
        "--column", default="phone_number", help=_("phone number column of --input")
    )

    demo = commands.add_parser(
        "demo-data",
        parents=[common],
        help=_("write a synthetic data set (made-up prices) to try the pipeline"),
    )
    demo.add_argument("path", help=_("CSV file to write"))
    demo.add_argument("--rows", type=int, default=2000, help=_("number of rows"))
    demo.add_argument("--seed", type=int, default=0, help=_("random seed"))
    return parser


def _add_run_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run", parents=[common], help=_("train the ensemble, or resume a run in the same store")
    )
    run.add_argument("--data", required=True, help=_("CSV file with phone_number and price"))
    run.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help=_("store URL: a local folder, hf://, gs://, s3:// (default: {default})").format(
            default=DEFAULT_STORE
        ),
    )
    run.add_argument(
        "--preset",
        choices=("quick", "full"),
        default="quick",
        help=_("quick: minutes on a CPU; full: 100 trials per model (default: quick)"),
    )
    run.add_argument(
        "--time-budget",
        help=_("stop cleanly after this long, e.g. 8h30m, 45m (default: the Kaggle or "
               "Colab session limit when detected, else none)"),
    )
    run.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help=_("auto: GPU when present (default); cpu; cuda: require a GPU"),
    )
    run.add_argument("--trials", type=int, help=_("Optuna trials per model (overrides preset)"))
    run.add_argument("--folds", type=int, help=_("cross-validation folds (overrides preset)"))
    run.add_argument(
        "--max-rounds", type=int, help=_("maximum boosting rounds per fit (overrides preset)")
    )
    run.add_argument("--threads", type=int, help=_("CPU threads per model (default: all cores)"))
    run.add_argument(
        "--split",
        choices=("stratified", "grouped"),
        help=_("held-out split: stratified by price quintile (default) or grouped by the "
               "first six digits"),
    )
    run.add_argument(
        "--exact-resume",
        action="store_true",
        default=None,
        help=_("search without row and column subsampling, so a fit resumed midway equals "
               "an uninterrupted one"),
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        help=_("save XGBoost and LightGBM boosters every this many rounds (default: 50 for "
               "full, 100 for quick); every booster, CatBoost included, is also saved "
               "every 30 s"),
    )
    run.add_argument(
        "--output", default=DEFAULT_OUTPUT, help=_("folder for the report and exported models")
    )
    run.add_argument(
        "--restart", action="store_true", help=_("delete the run in the store and start over")
    )
    run.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help=_("progress bars: auto shows them on a terminal and in notebooks"),
    )


def rerun_command(arguments: Sequence[str]) -> str:
    """Return the command that resumes a run: the same arguments without --restart."""
    kept = [argument for argument in arguments if argument != "--restart"]
    return shlex.join(["persistkit-train", *kept])

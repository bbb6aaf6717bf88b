"""Kill-matrix target: ``persistkit-train run`` on the phone-number data.

Usage: ``python -m persistkit.testing.kill_targets.train_quick STORE OUT --data CSV
[--exact-resume] [-- extra persistkit-train options]``.

Runs the whole pipeline in this process, so a SIGKILL of the process kills training.
Then it reads from the store what a resumed run must reproduce: the held-out predictions
of every model and of the ensemble, and the COMPLETE Optuna trials of every study with
their parameters and values in trial order. ``result.json`` contains both.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from persistkit.testing.kill_targets._common import RESULT_NAME, float_list, write_json_atomic

_EVALUATE_KEY = "stages/evaluate"


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="store URL")
    parser.add_argument("out", type=Path, help="output folder for result.json")
    parser.add_argument("--data", required=True, help="phone-number CSV")
    return parser.parse_known_args(argv)


def _studies(store: Any) -> dict[str, list[dict[str, Any]]]:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from persistkit.optuna import JOURNAL_FILE

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies: dict[str, list[dict[str, Any]]] = {}
    journal_keys = [key for key in store.keys() if key.endswith("/journal")]  # noqa: SIM118
    for key in journal_keys:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, JOURNAL_FILE)
            Path(path).write_bytes(store.load(key).files[JOURNAL_FILE])
            storage = JournalStorage(JournalFileBackend(path))
            for name in optuna.get_all_study_names(storage):
                study = optuna.load_study(study_name=name, storage=storage)
                studies[name] = [
                    {"params": trial.params, "value": trial.value}
                    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
                ]
    return studies


def main(argv: list[str] | None = None) -> int:
    """Run or resume the pipeline, then write the artefacts to compare."""
    from persistkit import CheckpointStore
    from persistkit_train import cli
    from persistkit_train._stages import decode_array

    args, extra = _parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = ["run", "--data", args.data, "--store", args.store,
               "--output", str(args.out / "export"), "--progress", "off", *extra]
    exit_code = cli.main(command)
    if exit_code != 0:
        return int(exit_code)

    with CheckpointStore(args.store, background=False) as store:
        evaluation = store.load(_EVALUATE_KEY)
        matrix = decode_array(evaluation.files["predictions.npy"])
        names = list(evaluation.json("names.json"))
        result = {
            "predictions": {name: float_list(matrix[:, column]) for column, name in enumerate(names)},
            "studies": _studies(store),
        }
    write_json_atomic(args.out / RESULT_NAME, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The training run: every stage in order, each skipped when the store already has it.

Stages: load -> features -> split -> tune-<model> (one per model) -> final-<model> ->
stack -> evaluate -> export. :func:`run_training` binds the store to the run
fingerprint first (see :mod:`persistkit_train._fingerprint`), so a store filled with
other settings or data is rejected before any stage runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from persistkit_train._device import (
    describe_devices,
    detect_platform,
    ephemeral_store_warning,
    resolve_devices,
)
from persistkit_train._fingerprint import RunFingerprint, claim_store, hash_file
from persistkit_train._models import DeadlineReached, FitOutcome, Runtime, deadline_expired
from persistkit_train._progress import ProgressReporter
from persistkit_train._stages import (
    DataSet,
    StageLedger,
    run_features_stage,
    run_load_stage,
    run_split_stage,
    stage_names,
)
from persistkit_train.config import TrainConfig
from persistkit_train.i18n import _

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """Result of one :func:`run_training` call.

    Attributes:
        completed: False when the time budget stopped the run; re-running resumes it.
        stopped_at: The stage that was running when the budget ran out.
        metrics: Held-out metrics per model and for "ensemble" (completed runs only).
        files: Exported files (report, best_model.pkl, native models).
    """

    completed: bool
    stopped_at: str | None = None
    metrics: dict[str, dict[str, float]] | None = None
    files: tuple[pathlib.Path, ...] = ()


def run_training(
    *,
    data_path: str | os.PathLike[str],
    store_url: str,
    config: TrainConfig,
    output_dir: str | os.PathLike[str],
    restart: bool = False,
    deadline: Any = None,
    progress: ProgressReporter | None = None,
    storage_options: Mapping[str, Any] | None = None,
    lang: str = "en",
) -> RunOutcome:
    """Run or resume the whole pipeline with the store at ``store_url``.

    Raises:
        persistkit_train._fingerprint.RunMismatchError: The store contains a run with other
            settings or data and ``restart`` is False.
        persistkit_train.data.DataError: The CSV is empty, not CSV or lacks a column.
    """
    from persistkit import CheckpointStore
    from persistkit_train.data import load_numbers
    from persistkit_train.features import FEATURE_VERSION

    progress = progress or ProgressReporter()
    warning = ephemeral_store_warning(store_url, detect_platform())
    if warning is not None:
        logger.warning("%s", warning)

    # Validate the CSV before the store is bound to its checksum, so that a file that
    # fails to load never blocks the corrected file with a fingerprint mismatch.
    data_path = os.fspath(data_path)
    loaded = load_numbers(data_path)
    fingerprint = RunFingerprint(
        config=config.fingerprint_fields(),
        data_sha256=hash_file(data_path),
        data_name=os.path.basename(data_path),
        feature_version=str(FEATURE_VERSION),
    )
    # Two steps per key: the newest, and one to fall back to if the newest fails to verify.
    retention = {"keep_last": 2}
    with CheckpointStore(
        store_url, storage_options=storage_options, retention=retention
    ) as store:
        resumed = claim_store(store, fingerprint, restart=restart)
        if resumed:
            logger.info("%s", _("Resuming the run in {url}").format(url=store.url))
        else:
            logger.info("%s", _("Starting a new run in {url}").format(url=store.url))
        devices = resolve_devices(config.device)
        logger.info("%s", describe_devices(devices))
        runtime = Runtime(
            store=store,
            devices=devices,
            threads=config.threads or os.cpu_count() or 1,
            deadline=deadline,
            every_rounds=config.checkpoint_every_rounds,
            every_seconds=config.checkpoint_every_seconds,
        )
        runner = _StageRunner(StageLedger(store, fingerprint.digest), config, runtime, progress)
        try:
            outcome = runner.run(loaded, pathlib.Path(output_dir), lang)
        except DeadlineReached:
            store.flush()
            return RunOutcome(completed=False, stopped_at=runner.current_stage)
        finally:
            progress.close()
        store.flush()
        return outcome


class _StageRunner:
    """Runs the stages in order and keeps their decoded outputs."""

    def __init__(
        self,
        ledger: StageLedger,
        config: TrainConfig,
        runtime: Runtime,
        progress: ProgressReporter,
    ) -> None:
        self.ledger = ledger
        self.config = config
        self.runtime = runtime
        self.progress = progress
        self.names = stage_names(config.models)
        self.current_stage: str | None = None

    def enter(self, name: str) -> None:
        """Mark stage ``name`` as running; stop first if the time budget is spent."""
        self.current_stage = name
        if deadline_expired(self.runtime.deadline):
            raise DeadlineReached(name)
        self.progress.stage(self.names.index(name) + 1, len(self.names), name)
        if self.ledger.done(name):
            logger.info("%s", _("Stage {name}: already done, skipped").format(name=name))
        else:
            logger.info("%s", _("Stage {name}: running").format(name=name))

    def run(self, loaded: Any, output_dir: pathlib.Path, lang: str) -> RunOutcome:
        from persistkit_train.evaluate import run_evaluate_stage, run_export_stage
        from persistkit_train.stack import run_final_stage, run_stack_stage
        from persistkit_train.tune import run_tune_stage

        data = self._data(loaded)

        tuned = {}
        for model in self.config.models:
            self.enter(f"tune-{model}")
            tuned[model] = run_tune_stage(
                model, data, self.config, self.runtime, self.ledger, self.progress
            )
        finals: dict[str, FitOutcome] = {}
        for model in self.config.models:
            self.enter(f"final-{model}")
            finals[model] = run_final_stage(
                tuned[model], data, self.config, self.runtime, self.ledger, self.progress
            )
        self.enter("stack")
        meta, _oof = run_stack_stage(
            tuned, data, self.config, self.runtime, self.ledger, self.progress
        )
        self.enter("evaluate")
        evaluation = run_evaluate_stage(data, finals, meta, self.ledger)
        self.enter("export")
        files = run_export_stage(
            data, tuned, finals, meta, evaluation, self.config, self.ledger, output_dir, lang
        )
        self.progress.stage(len(self.names) + 1, len(self.names), _("done"))
        return RunOutcome(completed=True, metrics=evaluation.metrics, files=tuple(files))

    def _data(self, loaded: Any) -> DataSet:
        self.enter("load")
        numbers, prices = run_load_stage(self.ledger, loaded)
        self.enter("features")
        features, names = run_features_stage(self.ledger, numbers)
        self.enter("split")
        train_idx, test_idx, folds = run_split_stage(self.ledger, self.config, numbers, prices)
        return DataSet(
            numbers=numbers,
            prices=prices,
            features=features,
            feature_names=names,
            train_idx=train_idx,
            test_idx=test_idx,
            folds=folds,
        )

"""Optuna studies that survive the end of a session.

The study lives in a standard Optuna journal file (``JournalStorage`` over
``JournalFileBackend``) in a local temporary folder. At every trial boundary, and also
just after a trial is created, the journal and the sampler's random state are saved
together as one checkpoint under ``optuna/<study name>/journal`` (the newest three are
kept)::

    optuna/<study name>/journal/<step>/
        journal.log     the Optuna journal, one JSON operation per line
        sampler.json    random generator states of the sampler (no pickle)

:func:`load_study` pulls the newest checkpoint into a fresh local file and cuts a torn
last record. It marks trials left RUNNING by a dead session as FAIL, with the user
attribute ``fail_reason``, and puts the saved random state back into the sampler that
the caller passes. :func:`optimize` then runs trials until ``n_trials`` are COMPLETE in total.

Determinism: the sampler state saved with a RUNNING trial is the state from before that
trial was proposed. So the first trial after a resume draws the same parameters as the
interrupted one, and every later trial matches an uninterrupted run. This holds for
samplers whose proposals depend only on their random state and the finished trials
(``TPESampler`` and ``RandomSampler`` are tested). Samplers that mix the trial number
into their seed, such as ``CmaEsSampler``, propose other values after an interrupted
trial, because the retried trial gets a new number.

Trial-scoped checkpoints: :func:`trial_key` returns a key that the retried trial shares
with the interrupted one, so an objective that checkpoints a booster under it continues
that booster.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import statistics
import tempfile
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from persistkit import _boosting
from persistkit._compat import import_optional
from persistkit._deadline import Deadline, RunStatus
from persistkit._sampler_state import capture_sampler_state, repair_journal, restore_sampler_state
from persistkit.errors import CheckpointNotFoundError

if TYPE_CHECKING:
    import optuna as optuna_module

    from persistkit._store import CheckpointStore

logger = logging.getLogger(__name__)

__all__ = [
    "FAIL_REASON_ATTR",
    "OptimizeResult",
    "RunStatus",
    "StudyCheckpointCallback",
    "load_study",
    "optimize",
    "trial_key",
]

# Each journal checkpoint contains the whole journal, so older ones are redundant. A few
# are kept so that load can fall back when the newest fails verification.
JOURNAL_RETENTION = {"keep_last": 3}
JOURNAL_FILE = "journal.log"
SAMPLER_FILE = "sampler.json"
FAIL_REASON_ATTR = "fail_reason"
DEAD_SESSION_REASON = "left RUNNING by a session that ended; retried as a new trial"


@dataclasses.dataclass(frozen=True)
class OptimizeResult:
    """Outcome of :func:`optimize`.

    Attributes:
        status: ``RunStatus.COMPLETED`` or ``RunStatus.STOPPED_BY_DEADLINE``.
        n_complete: COMPLETE trials in the study when the call returned.
        n_trials: The total number of COMPLETE trials that was requested.
        n_run: Trials this call ran, whatever their final state.
    """

    status: RunStatus
    n_complete: int
    n_trials: int
    n_run: int

    @property
    def stopped_by_deadline(self) -> bool:
        """Whether the deadline ended the call before ``n_trials`` were complete."""
        return self.status is RunStatus.STOPPED_BY_DEADLINE


@dataclasses.dataclass
class _PersistedStudy:
    store: CheckpointStore
    key: str
    prefix: str
    journal_path: str
    next_step: int


_PERSISTED: weakref.WeakKeyDictionary[Any, _PersistedStudy] = weakref.WeakKeyDictionary()


def load_study(
    store: CheckpointStore,
    study_name: str,
    *,
    direction: str | None = None,
    directions: Sequence[str] | None = None,
    sampler: optuna_module.samplers.BaseSampler | None = None,
    pruner: optuna_module.pruners.BasePruner | None = None,
    key_prefix: str | None = None,
) -> optuna_module.Study:
    """Create a study, or resume the one saved in ``store`` under ``study_name``.

    Pass the same sampler (class and options, seed included) every time: its random
    state is restored from the checkpoint.

    Args:
        store: The checkpoint store that contains the study.
        study_name: Optuna study name; also names the keys.
        direction: ``"minimize"`` or ``"maximize"`` for a single objective.
        directions: Directions of a multi-objective study.
        sampler: The sampler; Optuna's default when ``None``.
        pruner: The pruner; Optuna's default when ``None``.
        key_prefix: Key under which the journal and trial keys live;
            ``"optuna/<study_name>"`` by default.

    Returns:
        The study, backed by a local journal that :func:`optimize` checkpoints.

    Raises:
        ValueError: If the saved sampler state does not fit ``sampler``.
        persistkit.errors.MissingDependencyError: If Optuna is not installed.
    """
    optuna = import_optional("optuna", "optuna")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    prefix = key_prefix or f"optuna/{study_name}"
    key = f"{prefix}/journal"
    journal_bytes, sampler_state, last_step = _pull_checkpoint(store, key)

    folder = tempfile.mkdtemp(prefix="persistkit-optuna-")
    journal_path = os.path.join(folder, JOURNAL_FILE)
    with open(journal_path, "wb") as journal_file:
        journal_file.write(journal_bytes)
    storage = JournalStorage(JournalFileBackend(journal_path))
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction,
        directions=directions, sampler=sampler, pruner=pruner, load_if_exists=True,
    )
    weakref.finalize(study, shutil.rmtree, folder, True)

    if sampler_state is not None:
        restore_sampler_state(study.sampler, sampler_state)
    persisted = _PersistedStudy(store, key, prefix, journal_path, last_step + 1)
    _PERSISTED[study] = persisted

    failed = _fail_stale_trials(study)
    if failed:
        _commit(persisted, sampler_state or capture_sampler_state(study.sampler))
    logger.info(
        "Loaded study %r from %s (key %r): %d trials, %d COMPLETE",
        study_name, store.url, key, len(study.trials), _count_complete(study),
    )
    return study


def optimize(
    study: optuna_module.Study,
    objective: Callable[[optuna_module.Trial], float | Sequence[float]],
    *,
    n_trials: int,
    deadline: Deadline | None = None,
    catch: Iterable[type[Exception]] = (),
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
) -> OptimizeResult:
    """Run trials until the study contains ``n_trials`` COMPLETE trials in total.

    Pruned trials and trials that raised keep their state and do not count. Before each
    trial the deadline must leave at least the mean duration of the COMPLETE trials.
    The journal is checkpointed after each trial is created and after it ends, and the
    store is flushed before returning.

    Args:
        study: A study returned by :func:`load_study`.
        objective: The objective, as for ``Study.optimize``.
        n_trials: Total COMPLETE trials wanted, counting those of earlier sessions.
        deadline: Stop before a trial that would not finish in time.
        catch: Exception types that mark the trial FAIL and let the search go on. Any
            other exception marks it FAIL, is checkpointed and propagates. NOTE: an
            objective that always raises a caught exception never reaches ``n_trials``
            COMPLETE trials, so this loop then runs until the deadline or forever.
        callbacks: Called as ``callback(study, frozen_trial)`` after each trial.

    Returns:
        The status and trial counts; test ``result.stopped_by_deadline``.

    Raises:
        ValueError: If ``study`` did not come from :func:`load_study`, or ``n_trials`` < 0.
    """
    persisted = _persisted(study)
    if n_trials < 0:
        raise ValueError(f"n_trials must be >= 0, got {n_trials}")
    catch = tuple(catch)

    status, n_run = RunStatus.COMPLETED, 0
    while _count_complete(study) < n_trials:
        expected = _expected_trial_seconds(study)
        if deadline is not None and not deadline.allows(expected):
            status = RunStatus.STOPPED_BY_DEADLINE
            break
        frozen = _run_one_trial(study, persisted, objective, catch)
        n_run += 1
        for callback in callbacks:
            callback(study, frozen)

    _boosting.flush_store(persisted.store, persisted.key)
    n_complete = _count_complete(study)
    if status is RunStatus.STOPPED_BY_DEADLINE:
        logger.warning(
            "Stopped study %r by deadline with %d of %d trials COMPLETE (next trial "
            "expected to take %.0f s, %.0f s left). The journal is saved under %r; run "
            "the same code again to continue.",
            study.study_name, n_complete, n_trials, expected,
            deadline.remaining() if deadline else 0.0, persisted.key,
        )
    return OptimizeResult(status=status, n_complete=n_complete, n_trials=n_trials, n_run=n_run)


def trial_key(trial: optuna_module.Trial | optuna_module.trial.FrozenTrial, name: str = "",
              *, study: optuna_module.Study | None = None) -> str:
    """Return the checkpoint key of a trial, shared by a retried trial and the one it replaces.

    The key is ``<prefix>/trial-<slot>[/<name>]`` where the slot counts the trials
    before this one, not counting trials failed because their session ended. A trial
    interrupted by a kill and its retry therefore get the same key.

    Args:
        trial: The running trial (or a frozen trial together with ``study``).
        name: Optional last key part, such as ``"xgb"``.
        study: The study, needed only for a ``FrozenTrial``.

    Raises:
        ValueError: If the study did not come from :func:`load_study`.
    """
    study = study if study is not None else trial.study  # type: ignore[union-attr]
    persisted = _persisted(study)
    slot = trial.number - sum(
        1 for other in study.get_trials(deepcopy=False)
        if other.number < trial.number
        and other.user_attrs.get(FAIL_REASON_ATTR) == DEAD_SESSION_REASON
    )
    key = f"{persisted.prefix}/trial-{slot:05d}"
    return f"{key}/{name}" if name else key


class StudyCheckpointCallback:
    """Optuna study callback that checkpoints a study after each trial.

    For callers who run ``study.optimize`` themselves on a study from
    :func:`load_study`. It saves at the end of each trial only, so a trial killed
    mid-way is not in the checkpoint and is simply proposed again on resume.

    Args:
        deadline: Call ``study.stop()`` once fewer seconds remain than the mean
            duration of the COMPLETE trials.
    """

    def __init__(self, *, deadline: Deadline | None = None) -> None:
        self.deadline = deadline
        self.status = RunStatus.COMPLETED

    def __call__(self, study: optuna_module.Study, trial: Any) -> None:
        persisted = _persisted(study)
        _commit(persisted, capture_sampler_state(study.sampler))
        if self.deadline is not None and not self.deadline.allows(_expected_trial_seconds(study)):
            self.status = RunStatus.STOPPED_BY_DEADLINE
            logger.warning(
                "Stopping study %r by deadline; the journal is saved under %r, run the "
                "same code again to continue.", study.study_name, persisted.key,
            )
            study.stop()


def _run_one_trial(study: Any, persisted: _PersistedStudy, objective: Callable[[Any], Any],
                   catch: tuple[type[Exception], ...]) -> Any:
    from optuna.trial import TrialState

    # The state before ask() is saved with the RUNNING trial, so a resume replays it.
    state_before = capture_sampler_state(study.sampler)
    trial = study.ask()
    _commit(persisted, state_before)

    try:
        value = objective(trial)
    except Exception as exc:
        if _is_pruned(exc):
            frozen = study.tell(trial, state=TrialState.PRUNED)
        else:
            frozen = study.tell(trial, state=TrialState.FAIL)
            _commit(persisted, capture_sampler_state(study.sampler))
            if not isinstance(exc, catch):
                raise
            logger.warning("Trial %d failed and is kept as FAIL: %r", trial.number, exc)
            return frozen
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        _commit(persisted, capture_sampler_state(study.sampler))
        raise
    else:
        frozen = study.tell(trial, value)
    _commit(persisted, capture_sampler_state(study.sampler))
    return frozen


def _is_pruned(exc: BaseException) -> bool:
    from optuna.exceptions import TrialPruned

    return isinstance(exc, TrialPruned)


def _commit(persisted: _PersistedStudy, sampler_state: dict[str, Any]) -> None:
    with open(persisted.journal_path, "rb") as journal_file:
        journal = journal_file.read()
    persisted.store.save(
        persisted.key,
        {JOURNAL_FILE: journal, SAMPLER_FILE: sampler_state},
        step=persisted.next_step,
        retention=JOURNAL_RETENTION,
    )
    persisted.next_step += 1


def _pull_checkpoint(store: CheckpointStore, key: str) -> tuple[bytes, dict[str, Any] | None, int]:
    try:
        checkpoint = store.load(key)
    except CheckpointNotFoundError:
        return b"", None, 0

    journal, removed = repair_journal(bytes(checkpoint.files[JOURNAL_FILE]))
    if removed:
        logger.warning(
            "Cut a torn last record (%d bytes) from the journal of %r at step %d",
            removed, key, checkpoint.step,
        )
    return journal, checkpoint.json(SAMPLER_FILE), checkpoint.step


def _fail_stale_trials(study: Any) -> list[int]:
    from optuna.trial import TrialState

    storage = study._storage
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR, DEAD_SESSION_REASON)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if stale:
        logger.warning(
            "Marked trials %s FAIL: they were left RUNNING by a session that ended",
            [trial.number for trial in stale],
        )
    return [trial.number for trial in stale]


def _count_complete(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _expected_trial_seconds(study: Any) -> float:
    from optuna.trial import TrialState

    durations = [
        trial.duration.total_seconds()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.duration is not None
    ]
    return statistics.fmean(durations) if durations else 0.0


def _persisted(study: Any) -> _PersistedStudy:
    persisted = _PERSISTED.get(study)
    if persisted is None:
        raise ValueError(
            f"Study {getattr(study, 'study_name', study)!r} was not loaded through "
            "persistkit.optuna.load_study, so it has no checkpoint store; load it with "
            "persistkit.optuna.load_study(store, name, ...)."
        )
    return persisted

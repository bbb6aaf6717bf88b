"""Resumable XGBoost training.

:func:`train` has the signature of ``xgboost.train`` plus ``store``, ``key``,
``every_rounds``, ``every_seconds``, ``max_overhead`` and ``deadline``. It saves the full
booster (UBJSON), the number of rounds done, the evaluation history and the
early-stopping state, and
when run again with the same parameters and data it trains only the missing rounds.
The returned booster has the ``best_iteration``, ``best_score`` and ``evals_result`` of
an uninterrupted run, and ``booster.persistkit_status`` is
``RunStatus.STOPPED_BY_DEADLINE`` when the deadline stopped it.

Exactness: without sampling randomness (``subsample``, ``colsample_by*`` and
``sampling_method`` at their defaults) a resumed run gives the same predictions as an
uninterrupted one. With sampling, XGBoost re-seeds its generator from ``seed`` when the
booster is loaded, so the rounds after the resume draw other rows and columns, and a
warning is logged before resuming. Measured with the data of tests/adapter_child.py
(220 training rows, target standard deviation 2.5, ``subsample`` 0.7 or 0.8, resumed at
round 5 or 12 of a run that early-stops near round 20): validation predictions differ
by 0.34 to 0.51 on average and by up to 1.7, and the best validation RMSE by up to 3.4%
in either direction. Another ``seed`` changes the same uninterrupted run more: by 0.56
to 0.68 on average and the best RMSE by up to 9%. A run resumed after its last round
differs by nothing. ``seed_per_iteration=True``
does not make the resume exact in XGBoost 3.2.

The :class:`CheckpointCallback` is the raw ``TrainingCallback`` for callers of
``xgboost.train``; see its docstring for the resume recipe. The scikit-learn models
(``XGBRegressor``, ``XGBClassifier``) train through :func:`fit`.
"""

from __future__ import annotations

import collections
import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from persistkit import _boosting
from persistkit._compat import import_optional
from persistkit._deadline import Deadline, RunStatus

xgb = import_optional("xgboost", "xgboost")

logger = logging.getLogger(__name__)

__all__ = ["CheckpointCallback", "RunStatus", "fingerprint", "fit", "train"]

MODEL_FILE = "model.ubj"
_SAMPLING_PARAMS = {"subsample": 1.0, "colsample_bytree": 1.0, "colsample_bylevel": 1.0,
                    "colsample_bynode": 1.0}


def fingerprint(params: Mapping[str, Any], dtrain: Any) -> dict[str, str]:
    """Return the params and data fingerprint stored with each checkpoint."""
    data = _boosting.data_fingerprint(
        [dtrain.num_row(), dtrain.num_col()], dtrain.get_label(), dtrain.get_weight()
    )
    return _boosting.combine_fingerprints(
        params=_boosting.params_fingerprint(params), data=data
    )


class CheckpointCallback(xgb.callback.TrainingCallback):  # type: ignore[name-defined]
    """XGBoost ``TrainingCallback`` that checkpoints the booster and its training state.

    Put it last in ``callbacks`` so that the early-stopping state it saves already
    includes the current round. To resume with plain ``xgboost.train``::

        es = xgboost.callback.EarlyStopping(rounds=50)
        cb = CheckpointCallback(store=store, key="xgb/run", every_rounds=50,
                                early_stopping=es)
        booster = xgboost.train(params, dtrain, cb.remaining_rounds(1000),
                                evals=evals, xgb_model=cb.resume_model(),
                                callbacks=[es, cb])

    Args:
        store: Checkpoint store.
        key: Key of the checkpoint series.
        every_rounds: Save every this many rounds.
        every_seconds: Save when this many seconds passed since the last save.
        max_overhead: Skip interval saves that would take more than this fraction of
            the training time (0.02 is 2%); see :class:`CheckpointPolicy`.
        deadline: Save and stop training once the deadline has passed.
        early_stopping: The ``EarlyStopping`` callback whose state is saved and restored.
        fingerprint: Value of :func:`fingerprint`; checked against the checkpoint.
    """

    def __init__(self, *, store: Any, key: str, every_rounds: int | None = None,
                 every_seconds: float | None = None, max_overhead: float | None = None,
                 deadline: Deadline | None = None,
                 early_stopping: Any | None = None,
                 fingerprint: Mapping[str, str] | None = None) -> None:
        super().__init__()
        _boosting.require_open(store, key)
        self.store = store
        self.key = key
        self.policy = _boosting.CheckpointPolicy(every_rounds, every_seconds, max_overhead)
        self.deadline = deadline
        self.early_stopping = early_stopping
        self.fingerprint = dict(fingerprint or {})
        self.status = RunStatus.COMPLETED
        self._timer = _boosting.SaveTimer()
        self._saved_rounds: int | None = None
        self._model: Any = None
        self._history: Any = None
        self._loaded: tuple[Any, dict[str, Any]] | bool | None = False
        self._pending_history: dict[str, Any] | None = None

    # -- resume ------------------------------------------------------------------

    def load(self) -> tuple[Any, dict[str, Any]] | None:
        """Return ``(booster, state)`` from the newest checkpoint, or ``None``.

        Raises:
            FingerprintMismatchError: If the checkpoint has another fingerprint.
        """
        if self._loaded is False:
            checkpoint = _boosting.load_latest(self.store, self.key)
            if checkpoint is None:
                self._loaded = None
            else:
                state = checkpoint.json(_boosting.STATE_FILE)
                _boosting.check_fingerprint(self.key, checkpoint.step,
                                            state.get("fingerprint"), self.fingerprint)
                booster = xgb.Booster(model_file=bytearray(checkpoint.files[MODEL_FILE]))
                self._loaded = (booster, state)
                self._saved_rounds = int(state["rounds"])
        return self._loaded if self._loaded else None  # type: ignore[return-value]

    def resume_model(self) -> Any | None:
        """Return the checkpointed booster, or ``None``; restores early-stopping state."""
        loaded = self.load()
        if loaded is None:
            return None
        booster, state = loaded
        restore_early_stopping(self.early_stopping, state.get("early_stopping"))
        self._pending_history = state["history"]
        return booster

    def remaining_rounds(self, num_boost_round: int) -> int:
        """Return the rounds still to train out of ``num_boost_round``, 0 when done."""
        loaded = self.load()
        if loaded is None:
            return num_boost_round
        return 0 if is_complete(loaded[1], num_boost_round) else (
            num_boost_round - int(loaded[1]["rounds"]))

    # -- TrainingCallback ----------------------------------------------------------

    def before_training(self, model: Any) -> Any:
        self._timer.reset()
        return model

    def before_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self._history = evals_log
        if self._pending_history is not None:
            _restore_history(evals_log, self._pending_history)
            self._pending_history = None
        return False

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self._model, self._history = model, evals_log
        rounds = model.num_boosted_rounds()
        if self.deadline is not None and self.deadline.expired():
            self.status = RunStatus.STOPPED_BY_DEADLINE
            return True
        if self.policy.due(rounds, self._timer.elapsed(),
                           _boosting.last_save_cost(self._timer, self.store, self.key)):
            self.save(model, evals_log)
        return False

    def after_training(self, model: Any) -> Any:
        # An EarlyStopping(save_best=True) before this callback returns a cut copy;
        # the full booster trained in place is the one seen in after_iteration.
        full_model = self._model if self._model is not None else model
        self._catch_up_early_stopping(full_model)
        if self._saved_rounds != full_model.num_boosted_rounds():
            self.save(full_model, self._history)
        if self.status is RunStatus.STOPPED_BY_DEADLINE and self.deadline is not None:
            _boosting.flush_store(self.store, self.key)
            _boosting.log_deadline_stop(self.store, self.key,
                                        self._model.num_boosted_rounds(), self.deadline)
        return model

    def _catch_up_early_stopping(self, model: Any) -> None:
        """Apply the last round to the early stopping if a callback stopped training first.

        XGBoost stops calling callbacks after the first one that returns True, so when an
        earlier callback ended training, EarlyStopping missed the last round and the
        saved state would be one round behind.
        """
        es = self.early_stopping
        if es is None or not self._history:
            return
        rounds = model.num_boosted_rounds()
        seen = [len(scores) for metrics in es.stopping_history.values()
                for scores in metrics.values()]
        if seen and seen[0] == rounds - 1:
            es.after_iteration(model, rounds - 1 - es.starting_round, self._history)

    def save(self, model: Any, evals_log: Any) -> None:
        """Save ``model`` with the history and early-stopping state as one checkpoint."""
        with self._timer.saving():
            rounds = model.num_boosted_rounds()
            state = {
                "format": _boosting.STATE_FORMAT,
                "library": f"xgboost {xgb.__version__}",
                "rounds": rounds,
                "history": _boosting.to_json_history(evals_log or {}),
                "early_stopping": capture_early_stopping(self.early_stopping),
                "best_iteration": model.attr("best_iteration"),
                "best_score": model.attr("best_score"),
                "fingerprint": self.fingerprint,
            }
            self.store.save(
                self.key,
                {MODEL_FILE: bytes(model.save_raw("ubj")), _boosting.STATE_FILE: state},
                step=rounds,
                metadata={"fingerprint": self.fingerprint, "rounds": rounds},
            )
        self._saved_rounds = rounds


def train(params: Mapping[str, Any], dtrain: Any, num_boost_round: int = 10, *,
          store: Any, key: str, evals: Sequence[tuple[Any, str]] | None = None,
          obj: Callable[..., Any] | None = None, maximize: bool | None = None,
          early_stopping_rounds: int | None = None,
          evals_result: dict[str, Any] | None = None, verbose_eval: bool | int = True,
          callbacks: Sequence[Any] | None = None,
          custom_metric: Callable[..., Any] | None = None,
          every_rounds: int | None = None, every_seconds: float | None = None,
        max_overhead: float | None = None,
          deadline: Deadline | None = None) -> Any:
    """Train like ``xgboost.train``, resuming from and saving to ``store`` under ``key``.

    Returns:
        The booster, with ``persistkit_status`` set to a :class:`RunStatus`.

    Raises:
        FingerprintMismatchError: If ``key`` contains a run with other params or data.
    """
    evals = list(evals or [])
    es = (xgb.callback.EarlyStopping(rounds=early_stopping_rounds, maximize=maximize)
          if early_stopping_rounds else None)
    checkpoint = CheckpointCallback(
        store=store, key=key, every_rounds=every_rounds, every_seconds=every_seconds,
        max_overhead=max_overhead,
        deadline=deadline, early_stopping=es, fingerprint=fingerprint(params, dtrain))
    loaded = checkpoint.load()

    if loaded is not None and is_complete(loaded[1], num_boost_round):
        booster, state = loaded
        logger.info("Checkpoint %r contains a finished run (%d rounds); returning it.",
                    key, state["rounds"])
        if evals_result is not None:
            evals_result.update(copy.deepcopy(state["history"]))
        return _boosting.mark_status(booster, RunStatus.COMPLETED)

    start = 0
    model_file = None
    if loaded is not None:
        booster, state = loaded
        start = int(state["rounds"])
        model_file = bytearray(booster.save_raw("ubj"))
        _log_resume(key, start, num_boost_round, params)

    user_callbacks = list(callbacks or [])
    if verbose_eval:
        period = 1 if verbose_eval is True else int(verbose_eval)
        user_callbacks.append(xgb.callback.EvaluationMonitor(period=period))
    all_callbacks = [*user_callbacks, *([es] if es else []), checkpoint]
    container = xgb.callback.CallbackContainer(
        all_callbacks, metric=custom_metric, output_margin=callable(obj))

    bst = xgb.Booster(params, [dtrain] + [d for d, _ in evals], model_file=model_file)
    if loaded is not None:
        _restore_history(container.history, loaded[1]["history"])
        restore_early_stopping(es, loaded[1].get("early_stopping"))

    bst = container.before_training(bst)
    if es is not None:
        # Epochs below are absolute round numbers, so no offset for continuation.
        es.starting_round = 0
    for i in range(start, num_boost_round):
        if container.before_iteration(bst, i, dtrain, evals):
            break
        bst.update(dtrain, iteration=i, fobj=obj)
        if container.after_iteration(bst, i, dtrain, evals):
            break
    bst = container.after_training(bst)

    if evals_result is not None:
        evals_result.update(container.history)
    _boosting.flush_store(store, key)
    return _boosting.mark_status(bst.reset(), checkpoint.status)


def fit(model: Any, X: Any, y: Any, *, store: Any, key: str,
        every_rounds: int | None = None, every_seconds: float | None = None,
        max_overhead: float | None = None,
        deadline: Deadline | None = None, **fit_params: Any) -> Any:
    """Fit an XGBoost scikit-learn model (``XGBRegressor``, ``XGBClassifier``) resumably.

    The model's own ``n_estimators``, ``early_stopping_rounds`` and ``eval_metric``
    apply. Other keyword arguments go to ``model.fit`` (``eval_set``, ``sample_weight``).
    The model's parameters are restored after the call.

    Returns:
        ``model``, fitted, with ``persistkit_status`` set.
    """
    import numpy as np

    params = model.get_params()
    user_callbacks = list(params.get("callbacks") or [])
    es_rounds = params.get("early_stopping_rounds")
    n_total = params.get("n_estimators") or 100
    es = xgb.callback.EarlyStopping(rounds=es_rounds) if es_rounds else None
    data = _boosting.data_fingerprint(np.asarray(X), np.asarray(y),
                                      fit_params.get("sample_weight"))
    checkpoint = CheckpointCallback(
        store=store, key=key, every_rounds=every_rounds, every_seconds=every_seconds,
        max_overhead=max_overhead,
        deadline=deadline, early_stopping=es, fingerprint=_boosting.combine_fingerprints(
            params=_boosting.params_fingerprint(params), data=data))

    resumed = checkpoint.resume_model()
    remaining = checkpoint.remaining_rounds(n_total)
    if resumed is not None:
        _log_resume(key, resumed.num_boosted_rounds(), n_total, params)
    # The early stopping runs as an explicit callback so that its state can be restored.
    model.set_params(callbacks=[*user_callbacks, *([es] if es else []), checkpoint],
                     n_estimators=remaining, early_stopping_rounds=None)
    try:
        model.fit(X, y, xgb_model=resumed, **fit_params)
    finally:
        model.set_params(callbacks=params.get("callbacks"), n_estimators=params.get("n_estimators"),
                         early_stopping_rounds=es_rounds)
    _boosting.flush_store(store, key)
    return _boosting.mark_status(model, checkpoint.status)


def is_complete(state: Mapping[str, Any], num_boost_round: int) -> bool:
    """Return whether a saved state already reached the round limit or early-stopped."""
    if int(state["rounds"]) >= num_boost_round:
        return True
    es_state = state.get("early_stopping")
    if not es_state:
        return False
    return bool(es_state["current_rounds"] >= es_state["rounds"])


def capture_early_stopping(es: Any) -> dict[str, Any] | None:
    """Return the state of an ``EarlyStopping`` callback as JSON, or ``None``."""
    if es is None or not es.stopping_history:
        return None
    return {
        "rounds": es.rounds,
        "current_rounds": es.current_rounds,
        "maximize": es.maximize,
        "stopping_history": _boosting.to_json_history(es.stopping_history),
        "best_scores": _boosting.to_json_history(es.best_scores),
    }


def restore_early_stopping(es: Any, state: Mapping[str, Any] | None) -> None:
    """Put a state from :func:`capture_early_stopping` back into ``es``."""
    if es is None or not state:
        return
    es.current_rounds = int(state["current_rounds"])
    es.maximize = state["maximize"]
    es.stopping_history = copy.deepcopy(state["stopping_history"])
    es.best_scores = copy.deepcopy(state["best_scores"])


def _restore_history(target: Any, saved: Mapping[str, Mapping[str, list[Any]]]) -> None:
    """Put the saved rounds in front of whatever ``target`` already holds."""
    for data, metrics in saved.items():
        data_log = target.setdefault(data, collections.OrderedDict())
        for metric, scores in metrics.items():
            data_log[metric] = list(scores) + list(data_log.get(metric, []))


def _log_resume(key: str, rounds: int, num_boost_round: int, params: Mapping[str, Any]) -> None:
    sampling = {name: params[name] for name, default in _SAMPLING_PARAMS.items()
                if name in params and params[name] is not None and params[name] != default}
    if sampling:
        logger.warning(
            "Resuming %r at round %d of %d with sampling parameters %s: XGBoost re-seeds its "
            "generator on resume, so later rounds sample other rows or columns than an "
            "uninterrupted run; predictions change, in tests less than with another seed.",
            key, rounds, num_boost_round, sampling)
    else:
        logger.info("Resuming %r at round %d of %d", key, rounds, num_boost_round)

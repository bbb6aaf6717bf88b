"""Resumable LightGBM training.

:func:`train` has the signature of ``lightgbm.train`` plus ``store``, ``key``,
``every_rounds``, ``every_seconds``, ``max_overhead`` and ``deadline``. It saves the full
booster (model text), the rounds done, the evaluation history and the early-stopping
state. A rerun with the same parameters and data trains only the missing rounds and
returns a booster with the ``best_iteration`` and ``best_score`` of an uninterrupted run.
The full history goes into ``evals_result`` and into any ``lightgbm.record_evaluation``
callback.

Early stopping (``early_stopping_round`` and its aliases, or a
``lightgbm.early_stopping`` callback) is run by :class:`CheckpointCallback` itself with
LightGBM's rules, because LightGBM's own callback starts from scratch when training is
continued.

The caller's ``Dataset`` objects are never constructed or modified: training runs on
copies, because continuing from a model stores the model's predictions as
``init_score`` in the training data, which would leak into a later fresh fit. The
copies need the raw data, so pass ``free_raw_data=False`` if the Dataset was
constructed before.

Exactness: without ``bagging_fraction``/``bagging_freq``, ``feature_fraction`` or
``feature_fraction_bynode`` below 1, the resumed booster predicts like an uninterrupted
one. With them, LightGBM re-seeds its generators when training continues, so later
rounds sample other rows or features, and a warning is logged before resuming.
Measured with the data of tests/adapter_child.py: 220 training rows, target standard
deviation 2.5, resumed at round 5 of a run that early-stops near round 22. There
``bagging_fraction=0.7`` changed validation predictions by 0.44 on average (max 1.14)
and the best validation l2 by +3%; ``feature_fraction=0.7`` by 0.31 (max 0.96) and -3%.
Another ``seed`` changes the uninterrupted run by 0.36 to 0.48 on average (max 1.06
to 1.30) and the best l2 by up to 14%.
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
from persistkit._lgbm_state import EarlyStoppingState, dataset_fingerprint, split_early_stopping

lgb = import_optional("lightgbm", "lightgbm")

logger = logging.getLogger(__name__)

__all__ = ["CheckpointCallback", "EarlyStoppingState", "RunStatus", "fit", "train"]

MODEL_FILE = "model.txt"
_ES_PARAM_NAMES = ("early_stopping_round", "early_stopping_rounds", "n_iter_no_change")
_SAMPLING_PARAMS = ("bagging_fraction", "subsample", "feature_fraction", "colsample_bytree",
                    "feature_fraction_bynode", "colsample_bynode")


class CheckpointCallback:
    """LightGBM callback that checkpoints the booster, history and early-stopping state.

    It runs after LightGBM's own callbacks (``order = 40``). When it is given
    ``early_stopping``, it applies the rule itself and raises
    ``lightgbm.callback.EarlyStopException`` the way LightGBM does. :func:`train` sets it
    up; callers of ``lightgbm.train`` resume like this (without LightGBM's own early
    stopping, and knowing that ``init_model`` writes an ``init_score`` into the Dataset)::

        cb = CheckpointCallback(store=store, key="lgbm/run", every_rounds=50,
                                early_stopping=EarlyStoppingState(stopping_rounds=50))
        booster = lightgbm.train(params, train_set, cb.remaining_rounds(1000),
                                 valid_sets=[valid_set], init_model=cb.resume_model(),
                                 callbacks=[cb])

    Args:
        store: Checkpoint store.
        key: Key of the checkpoint series.
        every_rounds: Save every this many rounds.
        every_seconds: Save when this many seconds passed since the last save.
        max_overhead: Skip interval saves that would take more than this fraction of
            the training time (0.02 is 2%); see :class:`CheckpointPolicy`.
        deadline: Save and stop once the deadline has passed.
        early_stopping: Early-stopping rule and state.
        fingerprint: Params and data fingerprint checked against the checkpoint.
    """

    order = 40
    before_iteration = False

    def __init__(self, *, store: Any, key: str, every_rounds: int | None = None,
                 every_seconds: float | None = None, max_overhead: float | None = None,
                 deadline: Deadline | None = None,
                 early_stopping: EarlyStoppingState | None = None,
                 fingerprint: Mapping[str, str] | None = None) -> None:
        _boosting.require_open(store, key)
        self.store = store
        self.key = key
        self.policy = _boosting.CheckpointPolicy(every_rounds, every_seconds, max_overhead)
        self.deadline = deadline
        self.early_stopping = early_stopping
        self.fingerprint = dict(fingerprint or {})
        self.status = RunStatus.COMPLETED
        self.history: dict[str, dict[str, list[float]]] = collections.OrderedDict()
        self.model: Any = None
        self.saved_rounds = 0
        self._timer = _boosting.SaveTimer()
        self._loaded: tuple[Any, dict[str, Any]] | bool | None = False

    def load(self, *, step: int | None = None, fresh: bool = False
             ) -> tuple[Any, dict[str, Any]] | None:
        """Return ``(booster, state)`` from the newest checkpoint, or ``None``.

        The first call reads the store and later calls return the same result, unless
        ``step`` picks another checkpoint or ``fresh=True`` drops it (train from round 0).

        Raises:
            FingerprintMismatchError: If the checkpoint has another fingerprint.
        """
        if fresh:
            self._loaded = None
            self.history = collections.OrderedDict()
            if self.early_stopping is not None:
                self.early_stopping.reset()
        if self._loaded is False or step is not None:
            checkpoint = (_boosting.load_latest(self.store, self.key) if step is None
                          else self.store.load(self.key, step=step))
            self._loaded = None
            if checkpoint is not None:
                state = checkpoint.json(_boosting.STATE_FILE)
                _boosting.check_fingerprint(self.key, checkpoint.step,
                                            state.get("fingerprint"), self.fingerprint)
                booster = lgb.Booster(model_str=checkpoint.files[MODEL_FILE].decode())
                self._loaded = (booster, state)
                self.history = copy.deepcopy(state["history"])
                if self.early_stopping is not None and state.get("early_stopping"):
                    self.early_stopping.restore(state["early_stopping"])
        return self._loaded if self._loaded else None  # type: ignore[return-value]

    def resume_model(self) -> Any | None:
        """Return the checkpointed booster, or ``None`` when there is no checkpoint."""
        loaded = self.load()
        return None if loaded is None else loaded[0]

    def remaining_rounds(self, num_boost_round: int) -> int:
        """Return the rounds still to train out of ``num_boost_round``, 0 when done."""
        loaded = self.load()
        if loaded is None:
            return num_boost_round
        if is_complete(loaded[1], num_boost_round):
            return 0
        return num_boost_round - int(loaded[1]["rounds"])

    def __call__(self, env: Any) -> None:
        self.model = env.model
        if env.iteration == env.begin_iteration:
            self._timer.reset()
        for data_name, metric, value, *_ in env.evaluation_result_list or []:
            self.history.setdefault(data_name, collections.OrderedDict()).setdefault(
                metric, []).append(value)

        stop = None
        if self.early_stopping is not None:
            stop = self.early_stopping.update(env)
        rounds = env.iteration + 1
        out_of_time = self.deadline is not None and self.deadline.expired()
        last = rounds >= env.end_iteration
        due = self.policy.due(rounds, self._timer.elapsed(),
                              _boosting.last_save_cost(self._timer, self.store, self.key))
        if stop is not None or out_of_time or last or due:
            self.save(env.model, rounds)
        if stop is not None:
            raise stop
        if out_of_time and not last:
            self.status = RunStatus.STOPPED_BY_DEADLINE
            raise self._deadline_stop(env)

    def save(self, model: Any, rounds: int) -> None:
        """Save ``model`` after ``rounds`` rounds with history and early-stopping state."""
        es = self.early_stopping
        with self._timer.saving():
            state = {
                "format": _boosting.STATE_FORMAT,
                "library": f"lightgbm {lgb.__version__}",
                "rounds": rounds,
                "history": self.history,
                "early_stopping": es.capture() if es is not None else None,
                "fingerprint": self.fingerprint,
            }
            self.store.save(
                self.key,
                {MODEL_FILE: model.model_to_string(num_iteration=-1).encode(),
                 _boosting.STATE_FILE: state},
                step=rounds,
                metadata={"fingerprint": self.fingerprint, "rounds": rounds},
            )
        self.saved_rounds = rounds

    def _deadline_stop(self, env: Any) -> Exception:
        es = self.early_stopping
        if es is not None and es.enabled and es.best_score_list:
            return lgb.callback.EarlyStopException(es.best_iter[0], es.best_score_list[0])
        # best_iteration -1 makes lightgbm.train report 0, as when early stopping is off.
        return lgb.callback.EarlyStopException(-1, env.evaluation_result_list or [])


def train(params: Mapping[str, Any], train_set: Any, num_boost_round: int = 100, *,
          store: Any, key: str, valid_sets: Sequence[Any] | None = None,
          valid_names: Sequence[str] | None = None, feval: Any = None,
          callbacks: Sequence[Callable[..., Any]] | None = None,
          evals_result: dict[str, Any] | None = None,
          every_rounds: int | None = None, every_seconds: float | None = None,
        max_overhead: float | None = None,
          deadline: Deadline | None = None) -> Any:
    """Train like ``lightgbm.train``, resuming from and saving to ``store`` under ``key``.

    Returns:
        The booster, with ``persistkit_status`` set to a :class:`RunStatus`.

    Raises:
        FingerprintMismatchError: If ``key`` contains a run with other params or data.
        ValueError: If a Dataset's raw data was freed and it must be copied.
    """
    params, callbacks_list, es = split_early_stopping(dict(params), list(callbacks or []))
    valid_sets = list(valid_sets or [])
    checkpoint = CheckpointCallback(
        store=store, key=key, every_rounds=every_rounds, every_seconds=every_seconds,
        max_overhead=max_overhead,
        deadline=deadline, early_stopping=es,
        fingerprint=dataset_fingerprint(params, train_set))
    loaded = checkpoint.load()

    if loaded is not None and is_complete(loaded[1], num_boost_round):
        logger.info("Checkpoint %r contains a finished run (%d rounds); returning it.",
                    key, loaded[1]["rounds"])
        booster = _finished_booster(loaded[0], loaded[1])
        _publish_history(checkpoint.history, _recorders(callbacks_list), evals_result)
        return _boosting.mark_status(booster, RunStatus.COMPLETED)

    init_model, remaining = None, num_boost_round
    if loaded is not None:
        init_model, remaining = loaded[0], num_boost_round - int(loaded[1]["rounds"])
        _log_resume(key, int(loaded[1]["rounds"]), num_boost_round, params)
    train_copy, valid_copies = _copy_datasets(train_set, valid_sets, need_copy=loaded is not None)

    recorders = _recorders(callbacks_list)
    booster = lgb.train(
        params, train_copy, num_boost_round=remaining, valid_sets=valid_copies,
        valid_names=valid_names, feval=feval, init_model=init_model,
        callbacks=[*(cb for cb in callbacks_list if cb not in recorders), checkpoint],
    )
    _publish_history(checkpoint.history, recorders, evals_result)
    _boosting.flush_store(store, key)
    if checkpoint.status is RunStatus.STOPPED_BY_DEADLINE and deadline is not None:
        _boosting.log_deadline_stop(store, key, checkpoint.saved_rounds, deadline)
    return _boosting.mark_status(booster, checkpoint.status)


def fit(model: Any, X: Any, y: Any, *, store: Any, key: str,
        every_rounds: int | None = None, every_seconds: float | None = None,
        max_overhead: float | None = None,
        deadline: Deadline | None = None, **fit_params: Any) -> Any:
    """Fit a LightGBM scikit-learn model (``LGBMRegressor``, ``LGBMClassifier``) resumably.

    Keyword arguments go to ``model.fit`` (``eval_set``, ``sample_weight``, ``callbacks``).
    Early stopping comes from the model's ``early_stopping_round`` or a
    ``lightgbm.early_stopping`` callback. When the store contains a finished run, the last
    segment is trained again from the checkpoint before it (from scratch when there is
    none), because a scikit-learn model can only be completed by ``fit``.

    Returns:
        ``model``, fitted, with ``persistkit_status`` set.
    """
    import numpy as np

    params = model.get_params()
    es_params = {name: params[name] for name in _ES_PARAM_NAMES if params.get(name) is not None}
    _, fit_callbacks, es = split_early_stopping(es_params, list(fit_params.pop("callbacks", None) or []))
    fingerprint = _boosting.combine_fingerprints(
        params=_boosting.params_fingerprint(params),
        data=_boosting.data_fingerprint(np.asarray(X), np.asarray(y),
                                        fit_params.get("sample_weight")))
    checkpoint = CheckpointCallback(
        store=store, key=key, every_rounds=every_rounds, every_seconds=every_seconds,
        max_overhead=max_overhead,
        deadline=deadline, early_stopping=es, fingerprint=fingerprint)

    n_total = params["n_estimators"]
    loaded = checkpoint.load()
    if loaded is not None and is_complete(loaded[1], n_total):
        earlier = [step for step in store.steps(key) if step < int(loaded[1]["rounds"])]
        logger.info("Checkpoint %r contains a finished run; training again from step %s",
                    key, earlier[-1] if earlier else "0 (no earlier checkpoint)")
        loaded = checkpoint.load(step=earlier[-1] if earlier else None, fresh=not earlier)
    if loaded is not None:
        _log_resume(key, int(loaded[1]["rounds"]), n_total, params)

    # The early stopping runs inside the checkpoint callback, so LightGBM must not add its own.
    model.set_params(n_estimators=checkpoint.remaining_rounds(n_total),
                     **{name: None for name in es_params})
    try:
        model.fit(X, y, init_model=checkpoint.resume_model(),
                  callbacks=[*fit_callbacks, checkpoint], **fit_params)
    finally:
        model.set_params(n_estimators=n_total, **es_params)
    # evals_result_ returns the dict that fit's own record_evaluation filled, which holds
    # only the rounds of this call; complete it in place.
    _publish_history(checkpoint.history, [], model.evals_result_)
    _boosting.flush_store(store, key)
    return _boosting.mark_status(model, checkpoint.status)


def is_complete(state: Mapping[str, Any], num_boost_round: int) -> bool:
    """Return whether a saved state already reached the round limit or early-stopped."""
    if int(state["rounds"]) >= num_boost_round:
        return True
    es_state = state.get("early_stopping")
    return bool(es_state and es_state.get("stopped"))


def _finished_booster(booster: Any, state: Mapping[str, Any]) -> Any:
    es_state = state.get("early_stopping") or {}
    best_list = es_state.get("best_score_list") or []
    if best_list:
        booster.best_iteration = int(es_state["best_iter"][0]) + 1
        results = best_list[0]
    else:
        booster.best_iteration = 0
        results = [[data, metric, scores[-1]] for data, metrics in state["history"].items()
                   for metric, scores in metrics.items()]
    # lightgbm.train returns a booster rebuilt from model_to_string(), which keeps
    # only the trees up to best_iteration; do the same for a finished checkpoint.
    booster.model_from_string(booster.model_to_string())
    booster.best_score = collections.defaultdict(collections.OrderedDict)
    for data_name, metric, value, *_ in results:
        booster.best_score[data_name][metric] = value
    return booster


def _copy_datasets(train_set: Any, valid_sets: list[Any], *, need_copy: bool) -> tuple[Any, list[Any]]:
    if train_set.data is None:
        if need_copy:
            raise ValueError(
                "The training Dataset was constructed with free_raw_data=True, so its raw "
                "data is gone and it cannot be copied to resume training without changing "
                "it. Create it with lightgbm.Dataset(..., free_raw_data=False)."
            )
        return train_set, valid_sets
    train_copy = _copy_dataset(train_set, reference=None)
    valid_copies = [train_copy if valid is train_set else _copy_dataset(valid, reference=train_copy)
                    for valid in valid_sets]
    return train_copy, valid_copies


def _copy_dataset(dataset: Any, *, reference: Any) -> Any:
    if dataset.data is None:
        raise ValueError(
            "A validation Dataset has no raw data (free_raw_data=True and already "
            "constructed); create it with lightgbm.Dataset(..., free_raw_data=False)."
        )
    return lgb.Dataset(
        dataset.data, label=dataset.label, reference=reference, weight=dataset.weight,
        group=dataset.group, init_score=dataset.init_score,
        feature_name=dataset.feature_name, categorical_feature=dataset.categorical_feature,
        params=copy.deepcopy(dataset.params), free_raw_data=True,
        position=getattr(dataset, "position", None),
    )


def _recorders(callbacks: Sequence[Any]) -> list[Any]:
    """Return the ``lightgbm.record_evaluation`` callbacks among ``callbacks``."""
    return [cb for cb in callbacks if type(cb).__name__ == "_RecordEvaluationCallback"]


def _publish_history(history: Mapping[str, Any], recorders: Sequence[Any],
                     evals_result: dict[str, Any] | None) -> None:
    for recorder in recorders:
        recorder.eval_result.clear()
        recorder.eval_result.update(copy.deepcopy(history))
    if evals_result is not None:
        evals_result.clear()
        evals_result.update(copy.deepcopy(history))


def _log_resume(key: str, rounds: int, num_boost_round: int, params: Mapping[str, Any]) -> None:
    sampling = {name: params[name] for name in _SAMPLING_PARAMS
                if name in params and params[name] is not None and params[name] < 1.0}
    if sampling:
        logger.warning(
            "Resuming %r at round %d of %d with sampling parameters %s: LightGBM re-seeds its "
            "generators when training continues, so later rounds sample other rows or "
            "features than an uninterrupted run; predictions change, in tests about as much "
            "as with another seed.",
            key, rounds, num_boost_round, sampling)
    else:
        logger.info("Resuming %r at round %d of %d", key, rounds, num_boost_round)

"""LightGBM early stopping with a state that can be saved and restored.

LightGBM's ``early_stopping`` callback resets its best scores whenever training
starts, including a continuation from ``init_model``, so a resumed run would wait
``stopping_rounds`` more rounds than an uninterrupted one. :class:`EarlyStoppingState`
applies the same rule (LightGBM 4.x: per evaluation entry, strict improvement by more
than ``min_delta``, entries of the training data skipped, ``first_metric_only``) and
keeps its state in plain JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from persistkit import _boosting

_ES_ALIASES = ("early_stopping_round", "early_stopping_rounds", "early_stopping",
               "n_iter_no_change")


class EarlyStoppingState:
    """Early-stopping rule and state, applied by the LightGBM checkpoint callback."""

    def __init__(self, *, stopping_rounds: int, first_metric_only: bool = False,
                 min_delta: float | Sequence[float] = 0.0) -> None:
        self.stopping_rounds = stopping_rounds
        self.first_metric_only = first_metric_only
        self.min_delta = min_delta
        self.reset()

    def reset(self) -> None:
        """Forget every round seen, as before the first round."""
        self.enabled = True
        self.best_score: list[float] = []
        self.best_iter: list[int] = []
        self.best_score_list: list[list[Any]] = []
        self.stopped = False

    def capture(self) -> dict[str, Any]:
        """Return the state as JSON."""
        return {
            "stopping_rounds": self.stopping_rounds,
            "enabled": self.enabled,
            "best_score": self.best_score,
            "best_iter": self.best_iter,
            "best_score_list": [[list(entry) for entry in entries]
                                for entries in self.best_score_list],
            "stopped": self.stopped,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Put a state from :meth:`capture` back."""
        self.enabled = bool(state["enabled"])
        self.best_score = [float(score) for score in state["best_score"]]
        self.best_iter = [int(iteration) for iteration in state["best_iter"]]
        self.best_score_list = [[tuple(entry) for entry in entries]
                                for entries in state["best_score_list"]]
        self.stopped = bool(state["stopped"])

    def update(self, env: Any) -> Exception | None:
        """Apply one round; return the ``EarlyStopException`` to raise, or ``None``."""
        import lightgbm as lgb

        results = env.evaluation_result_list or []
        if not self.enabled or not results:
            return None
        if not self.best_score_list:
            if self._only_training_data(env, results):
                self.enabled = False
                return None
            self.best_score = [float("-inf") if entry[3] else float("inf") for entry in results]
            self.best_iter = [0] * len(results)
            self.best_score_list = [list(results) for _ in results]
            first = True
        else:
            first = False

        deltas = self._deltas(results)
        first_metric = results[0][1]
        for i, entry in enumerate(results):
            value, higher_better = entry[2], entry[3]
            improved = (value > self.best_score[i] + deltas[i] if higher_better
                        else value < self.best_score[i] - deltas[i])
            if first or improved:
                self.best_score[i] = value
                self.best_iter[i] = env.iteration
                self.best_score_list[i] = list(results)
            if self.first_metric_only and entry[1] != first_metric:
                continue
            if self._is_training_data(env, entry[0]):
                continue
            if (env.iteration - self.best_iter[i] >= self.stopping_rounds
                    or env.iteration == env.end_iteration - 1):
                self.stopped = env.iteration - self.best_iter[i] >= self.stopping_rounds
                return lgb.callback.EarlyStopException(self.best_iter[i], self.best_score_list[i])
        return None

    def _deltas(self, results: Sequence[Any]) -> list[float]:
        n_metrics = len({entry[1] for entry in results})
        if isinstance(self.min_delta, (int, float)):
            return [float(self.min_delta)] * len(results)
        deltas = list(self.min_delta)
        if len(deltas) <= 1:
            return [float(deltas[0]) if deltas else 0.0] * len(results)
        if len(deltas) != n_metrics:
            raise ValueError(
                f"min_delta needs one value or one per metric ({n_metrics}), got {deltas}"
            )
        return [float(deltas[i % n_metrics]) for i in range(len(results))]

    @staticmethod
    def _is_training_data(env: Any, data_name: str) -> bool:
        return data_name == getattr(env.model, "_train_data_name", None)

    def _only_training_data(self, env: Any, results: Sequence[Any]) -> bool:
        return all(self._is_training_data(env, entry[0]) for entry in results)


def split_early_stopping(params: dict[str, Any], callbacks: list[Any]
                         ) -> tuple[dict[str, Any], list[Any], EarlyStoppingState | None]:
    """Take early stopping out of ``params`` and ``callbacks`` into an :class:`EarlyStoppingState`."""
    rounds = None
    for alias in _ES_ALIASES:
        value = params.pop(alias, None)
        if value is not None and rounds is None:
            rounds = value
    first_metric_only = bool(params.get("first_metric_only", False))
    min_delta: Any = params.get("early_stopping_min_delta", 0.0)

    kept = []
    for callback in callbacks:
        if type(callback).__name__ == "_EarlyStoppingCallback":
            rounds = callback.stopping_rounds
            first_metric_only = callback.first_metric_only
            min_delta = callback.min_delta
        else:
            kept.append(callback)
    if rounds is None or int(rounds) <= 0:
        return params, kept, None
    state = EarlyStoppingState(stopping_rounds=int(rounds), first_metric_only=first_metric_only,
                               min_delta=min_delta)
    return params, kept, state


def dataset_fingerprint(params: dict[str, Any], train_set: Any) -> dict[str, str]:
    """Return the params and data fingerprint of a LightGBM training call.

    The labels and weights are always hashed. The features are hashed only while the
    Dataset still has its raw data. A constructed Dataset with freed raw data has no
    ``features`` part, and then only the other parts are compared.
    """
    import numpy as np

    # LightGBM keeps labels and weights as float32 once constructed, so hash them so.
    label = train_set.label if train_set.label is not None else train_set.get_label()
    weight = None if train_set.weight is None else np.asarray(train_set.weight, np.float32)
    parts = {
        "params": _boosting.params_fingerprint(params),
        "data": _boosting.data_fingerprint(np.asarray(label, np.float32), weight),
    }
    data = train_set.data
    if data is not None:
        parts["features"] = _boosting.data_fingerprint(
            data if isinstance(data, str) else np.asarray(data))
    return _boosting.combine_fingerprints(**parts)

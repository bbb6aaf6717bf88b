"""Retention policies: which committed steps of a key to keep after a new commit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Retention", "select_steps_to_delete"]


@dataclass(frozen=True)
class Retention:
    """Which checkpoints of a key survive a new commit.

    A step is kept when it is among the ``keep_last`` newest steps or among the
    ``keep_best`` best by ``metric``; the newest step is always kept, because resuming
    needs it. Steps whose metric is missing or NaN never count as best. With neither
    ``keep_last`` nor ``keep_best`` set, nothing is deleted.

    Attributes:
        keep_last: Number of newest steps to keep, at least 1, or None.
        keep_best: Number of best steps by ``metric`` to keep, 0 or more.
        metric: Name of the metric that ranks steps; required when keep_best > 0.
        mode: ``"min"`` when smaller metric values are better, ``"max"`` otherwise.
    """

    keep_last: int | None = None
    keep_best: int = 0
    metric: str | None = None
    mode: Literal["min", "max"] = "min"

    def __post_init__(self) -> None:
        if self.keep_last is not None and (not isinstance(self.keep_last, int) or self.keep_last < 1):
            raise ValueError(f"keep_last must be an int >= 1 or None, got {self.keep_last!r}")
        if not isinstance(self.keep_best, int) or self.keep_best < 0:
            raise ValueError(f"keep_best must be an int >= 0, got {self.keep_best!r}")
        if self.keep_best and not self.metric:
            raise ValueError("keep_best > 0 needs metric=, the name of the metric to rank by")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")

    @property
    def deletes_anything(self) -> bool:
        """Whether this policy can ever delete a step."""
        return self.keep_last is not None or self.keep_best > 0

    @classmethod
    def coerce(cls, value: Retention | Mapping[str, Any] | None) -> Retention | None:
        """Return ``value`` as a Retention; a mapping gives the keyword arguments."""
        if value is None or isinstance(value, Retention):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        raise TypeError(f"retention must be a Retention, a mapping or None, got {value!r}")


def _metric_value(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def select_steps_to_delete(
    policy: Retention, metrics_by_step: Mapping[int, Mapping[str, Any]]
) -> list[int]:
    """Return the steps that ``policy`` drops, in ascending order.

    Args:
        policy: The retention policy.
        metrics_by_step: Every committed step of the key, including the one just
            committed, mapped to its metrics.
    """
    if not policy.deletes_anything or not metrics_by_step:
        return []
    steps = sorted(metrics_by_step)
    keep = {steps[-1]}
    if policy.keep_last is not None:
        keep.update(steps[-policy.keep_last :])
    if policy.keep_best and policy.metric:
        scored = []
        for step in steps:
            value = _metric_value(metrics_by_step[step], policy.metric)
            if value is not None:
                scored.append((value if policy.mode == "min" else -value, -step, step))
        keep.update(step for _, _, step in sorted(scored)[: policy.keep_best])
    return [step for step in steps if step not in keep]

"""Synthetic demo data: made-up numbers and prices for trying the pipeline without real data.

The prices follow a simple invented rule (patterns such as repeated endings and all-good
numerology pairs raise the price, zeros lower it, plus log-normal noise). They resemble
the shape of a real price list but carry no market information. The ``note`` column of
every row marks the data as synthetic, and :func:`persistkit_train.data.load_numbers`
ignores that column.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

from persistkit_train.data import SYNTHETIC_NOTE
from persistkit_train.features import build_features

__all__ = ["SYNTHETIC_NOTE", "write_demo_data"]

logger = logging.getLogger(__name__)

# Operator prefixes drawn for the demo numbers (the second and third digits).
_PREFIXES = (
    "61",
    "62",
    "63",
    "64",
    "65",
    "80",
    "81",
    "82",
    "83",
    "84",
    "86",
    "87",
    "88",
    "89",
    "90",
    "91",
    "92",
    "93",
    "94",
    "95",
    "96",
    "97",
    "98",
    "99",
)


def write_demo_data(path: str | os.PathLike[str], *, rows: int = 2000, seed: int = 0) -> Path:
    """Write ``rows`` synthetic numbers with invented prices as a CSV and return its path.

    The file has the columns ``phone_number``, ``price`` (whole baht) and ``note``
    (:data:`SYNTHETIC_NOTE` on every row). The same seed gives the same file.

    Raises:
        ValueError: ``rows`` is below 10.
    """
    if rows < 10:
        raise ValueError(f"rows must be at least 10 to train on, got {rows}.")
    rng = np.random.default_rng(seed)
    numbers = _draw_numbers(rng, rows)
    prices = _invent_prices(rng, numbers)

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number", "price", "note"])
        for number, price in zip(numbers, prices, strict=True):
            writer.writerow([number, int(price), SYNTHETIC_NOTE])
    logger.info("Wrote %d synthetic demo rows to %s", rows, target)
    return target


def _draw_numbers(rng: np.random.Generator, rows: int) -> list[str]:
    numbers: set[str] = set()
    while len(numbers) < rows:
        prefix = _PREFIXES[rng.integers(len(_PREFIXES))]
        tail = rng.integers(0, 10, size=7)
        if rng.random() < 0.25:
            # A quarter get a patterned ending so that the demo has premium numbers.
            tail[-4:] = _patterned_ending(rng)
        numbers.add("0" + prefix + "".join(str(digit) for digit in tail))
    # Sort before shuffling: set order depends on string hashing, which varies per process.
    ordered = sorted(numbers)
    return [ordered[index] for index in rng.permutation(len(ordered))]


def _patterned_ending(rng: np.random.Generator) -> list[int]:
    a, b = (int(value) for value in rng.choice(10, size=2, replace=False))
    kind = rng.integers(4)
    if kind == 0:
        return [a, a, a, a]
    if kind == 1:
        return [a, b, a, b]
    if kind == 2:
        return [a, a, b, b]
    start = int(rng.integers(0, 7))
    return [start, start + 1, start + 2, start + 3]


def _invent_prices(rng: np.random.Generator, numbers: list[str]) -> np.ndarray:
    features = build_features(numbers)
    log_price = (
        np.log(600.0)
        + 0.9 * features["end_aaaa"]
        + 0.5 * features["end_aaa"]
        + 0.4 * (features["end_xyxy"] + features["end_aabb"])
        + 0.15 * np.maximum(features["longest_ascending"] - 2, 0)
        + 0.12 * features["good_pairs"]
        + 0.6 * features["all_tail_pairs_good"]
        + 0.08 * (features["count_9"] + features["count_8"])
        - 0.15 * features["tail_zeros"]
        + rng.normal(0.0, 0.35, size=len(numbers))
    )
    return np.round(np.exp(log_price.to_numpy()), -2).clip(min=100.0)

"""Features of a Thai mobile number that sellers price on, and out-of-fold target encoding.

:func:`build_features` turns ten-digit numbers into one row of numeric columns each. It
uses only the digits, never a price, so it gives the same row for a number in training
and at prediction time. The columns, by group (``tail`` is the seven digits after the
three-digit operator prefix):

=============  ===========================================================================
group          columns
=============  ===========================================================================
position       ``pos_1`` … ``pos_9``: the digit at each place after the leading 0
prefix         ``prefix3``: the first three digits as an integer (91 for 091…)
counts         ``count_0`` … ``count_9`` over all ten digits; ``unique_digits``,
               ``unique_tail``, ``unique_last4``, ``unique_last6``, ``max_digit_count``
runs           ``longest_run``, ``longest_run_tail``, ``tail_same_run`` (same digit at the
               end), ``doubles`` (adjacent equal pairs)
sequences      ``longest_ascending``, ``longest_descending``, ``tail_ascending``,
               ``tail_descending``, ``steps_up``, ``steps_down``
repeats        ``max_pair_repeat``, ``repeated_pairs``, ``max_triple_repeat``
ending         ``last1``, ``last2``, ``last3``, ``last4`` as integers; flags ``end_aa``,
               ``end_aaa``, ``end_aaaa``, ``end_xyxy``, ``end_aabb``, ``end_abba``,
               ``end_abcabc``, ``end_aabbcc``, ``end_xyxyxy``, ``end_abcdabcd``,
               ``mirror_last6``, ``mirror_tail``
sums           ``digit_sum``, ``digit_root``, ``tail_sum``, ``tail_root``, ``last4_sum``
numerology     ``good_pairs``, ``bad_pairs``, ``all_tail_pairs_good``,
               ``good_pairs_at_end``, ``longest_good_streak`` over the six adjacent pairs
               of ``tail``; ``good_pairs_number``, ``bad_pairs_number`` over the eight
               pairs after the leading 0; ``last_pair_meaning`` (1 good, -1 bad, 0
               neutral); ``tail_zeros``
=============  ===========================================================================

The pair tables are in :mod:`persistkit_train._numerology`.

:class:`OutOfFoldTargetEncoder` adds the only target-derived columns: the smoothed mean
log price of numbers that share a key (such as the first six digits, which dealers sell
in batches), computed for each training row from the other folds only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from persistkit_train import _patterns as patterns
from persistkit_train._numbers import normalize_number
from persistkit_train._numerology import pair_meaning

__all__ = [
    "FEATURE_VERSION",
    "TARGET_ENCODER_KEYS",
    "OutOfFoldTargetEncoder",
    "build_features",
    "feature_names",
]

logger = logging.getLogger(__name__)

# Bump when a column is added, removed or computed differently. The version is part of
# the stage fingerprints, so a bump invalidates stored features and models.
FEATURE_VERSION = "1"

PREFIX_LENGTH = 3

# Key name -> (start, stop) slice of the ten-digit number.
TARGET_ENCODER_KEYS: dict[str, tuple[int, int]] = {
    "prefix6": (0, 6),
    "prefix5": (0, 5),
    "suffix2": (8, 10),
    "suffix3": (7, 10),
    "suffix4": (6, 10),
}


def build_features(numbers: Sequence[str]) -> pd.DataFrame:
    """Return one row of digit-pattern features per number, in input order.

    Args:
        numbers: Phone numbers in any form :func:`persistkit_train.data.normalize_number`
            accepts; they are normalised first.

    Returns:
        A frame with a 0..n-1 index and int32 columns (see the module docstring).

    Raises:
        InvalidPhoneNumberError: A value is not a Thai mobile number.
    """
    rows = [_number_features(normalize_number(number)) for number in numbers]
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=np.int32) for name in feature_names()})
    return pd.DataFrame(rows, dtype=np.int32)


def feature_names() -> list[str]:
    """Return the column names of :func:`build_features`, in order."""
    return list(_number_features("0812345678"))


def _number_features(number: str) -> dict[str, int]:
    digits = tuple(int(char) for char in number)
    tail = digits[PREFIX_LENGTH:]
    features: dict[str, int] = {f"pos_{index}": digits[index] for index in range(1, 10)}
    features["prefix3"] = int(number[:PREFIX_LENGTH])
    features.update(_count_features(digits, tail))
    features.update(_run_features(digits, tail))
    features.update(_ending_features(number, digits))
    features.update(_sum_features(digits, tail))
    features.update(_numerology_features(number, tail))
    return features


def _count_features(digits: tuple[int, ...], tail: tuple[int, ...]) -> dict[str, int]:
    counts = np.bincount(digits, minlength=10)
    features = {f"count_{digit}": int(counts[digit]) for digit in range(10)}
    features["unique_digits"] = len(set(digits))
    features["unique_tail"] = len(set(tail))
    features["unique_last4"] = len(set(digits[-4:]))
    features["unique_last6"] = len(set(digits[-6:]))
    features["max_digit_count"] = int(counts.max())
    return features


def _run_features(digits: tuple[int, ...], tail: tuple[int, ...]) -> dict[str, int]:
    return {
        "longest_run": patterns.longest_run(digits),
        "longest_run_tail": patterns.longest_run(tail),
        "tail_same_run": patterns.tail_run(digits, step=0),
        "doubles": patterns.count_steps(digits, step=0),
        "longest_ascending": patterns.longest_ascending(digits),
        "longest_descending": patterns.longest_descending(digits),
        "tail_ascending": patterns.tail_run(digits, step=1),
        "tail_descending": patterns.tail_run(digits, step=-1),
        "steps_up": patterns.count_steps(digits, step=1),
        "steps_down": patterns.count_steps(digits, step=-1),
        "max_pair_repeat": patterns.max_ngram_repeat(tail, 2),
        "repeated_pairs": patterns.repeated_ngrams(tail, 2),
        "max_triple_repeat": patterns.max_ngram_repeat(tail, 3),
    }


def _ending_features(number: str, digits: tuple[int, ...]) -> dict[str, int]:
    last4, last6 = digits[-4:], digits[-6:]
    return {
        "last1": digits[-1],
        "last2": int(number[-2:]),
        "last3": int(number[-3:]),
        "last4": int(number[-4:]),
        "end_aa": int(digits[-1] == digits[-2]),
        "end_aaa": int(len(set(digits[-3:])) == 1),
        "end_aaaa": int(len(set(last4)) == 1),
        "end_xyxy": patterns.is_xyxy(last4),
        "end_aabb": patterns.is_aabb(last4),
        "end_abba": patterns.is_abba(last4),
        "end_abcabc": patterns.is_repeated_block(last6, 3),
        "end_aabbcc": patterns.is_aabbcc(last6),
        "end_xyxyxy": patterns.is_xyxy(last6),
        "end_abcdabcd": patterns.is_repeated_block(digits[-8:], 4),
        "mirror_last6": patterns.is_palindrome(last6),
        "mirror_tail": patterns.is_palindrome(digits[PREFIX_LENGTH:]),
    }


def _sum_features(digits: tuple[int, ...], tail: tuple[int, ...]) -> dict[str, int]:
    return {
        "digit_sum": sum(digits),
        "digit_root": patterns.digital_root(sum(digits)),
        "tail_sum": sum(tail),
        "tail_root": patterns.digital_root(sum(tail)),
        "last4_sum": sum(digits[-4:]),
    }


def _numerology_features(number: str, tail: tuple[int, ...]) -> dict[str, int]:
    tail_meanings = _pair_meanings(number[PREFIX_LENGTH:])
    number_meanings = _pair_meanings(number[1:])
    return {
        "good_pairs": tail_meanings.count(1),
        "bad_pairs": tail_meanings.count(-1),
        "all_tail_pairs_good": int(all(meaning == 1 for meaning in tail_meanings)),
        "good_pairs_number": number_meanings.count(1),
        "bad_pairs_number": number_meanings.count(-1),
        "good_pairs_at_end": _count_trailing(tail_meanings, 1),
        "longest_good_streak": _longest_streak(tail_meanings, 1),
        "last_pair_meaning": pair_meaning(number[-2:]),
        "tail_zeros": tail.count(0),
    }


def _pair_meanings(text: str) -> list[int]:
    return [pair_meaning(text[i : i + 2]) for i in range(len(text) - 1)]


def _count_trailing(values: list[int], target: int) -> int:
    count = 0
    for value in reversed(values):
        if value != target:
            break
        count += 1
    return count


def _longest_streak(values: list[int], target: int) -> int:
    best = current = 0
    for value in values:
        current = current + 1 if value == target else 0
        best = max(best, current)
    return best


class OutOfFoldTargetEncoder:
    """Smoothed mean target per key, computed out of fold for training rows.

    For a key such as ``prefix6`` (the first six digits) a row gets
    ``(sum of y over rows with its key + smoothing * prior) / (count + smoothing)``, where
    the sums and the prior (the mean of y) come only from rows outside the row's fold in
    :meth:`fit_transform`, and from all training rows in :meth:`transform`. A key never
    seen gets the prior.

    Args:
        keys: Names from :data:`TARGET_ENCODER_KEYS`.
        smoothing: Weight of the prior, in rows.

    Frames passed in must have a ``number`` column of normalised ten-digit numbers. Output
    columns are named ``te_<key>`` and have the frame's index.

    NOTE: the folds must match the held-out split. With the grouped split, stratified
    folds give training rows ``te_prefix6`` values from their own dealer batch, but no
    test row has such a value. In one run (seed 42, lightly tuned LightGBM, keys prefix6,
    prefix5 and suffix4) that lowered held-out R² on log price from 0.66 to 0.56. Pass
    ``cv_folds(..., groups=prefix_groups(numbers))`` there. Even so, the encoder has not
    raised held-out R² on the real price list in ``benchmarks/bench_features.py``.
    """

    def __init__(self, *, keys: Sequence[str] = ("prefix6", "suffix4"), smoothing: float = 10.0):
        unknown = sorted(set(keys) - set(TARGET_ENCODER_KEYS))
        if unknown:
            raise ValueError(
                f"Unknown target-encoder keys {unknown}; expected names from "
                f"{sorted(TARGET_ENCODER_KEYS)}."
            )
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}.")
        self.keys = tuple(keys)
        self.smoothing = float(smoothing)
        self._tables: dict[str, pd.Series] = {}
        self._prior: float | None = None

    def fit_transform(
        self,
        train_frame: pd.DataFrame,
        y: np.ndarray | pd.Series,
        folds: Sequence[tuple[np.ndarray, np.ndarray]],
    ) -> pd.DataFrame:
        """Fit on all training rows and return out-of-fold encodings for them.

        Args:
            train_frame: Training rows with a ``number`` column.
            y: Target of each row (log price), aligned with ``train_frame`` by position.
            folds: (fit positions, encode positions) pairs whose encode parts cover every
                row exactly once, such as the output of :func:`persistkit_train.split.cv_folds`.

        Raises:
            ValueError: The folds do not cover each row exactly once, or lengths differ.
        """
        target = np.asarray(y, dtype=np.float64)
        if len(target) != len(train_frame):
            raise ValueError(f"y has {len(target)} values for {len(train_frame)} rows.")
        covered = np.concatenate([encode for _, encode in folds]) if folds else np.array([])
        if len(covered) != len(target) or set(covered.tolist()) != set(range(len(target))):
            raise ValueError("folds must encode every training row exactly once.")

        keys = self._key_frame(train_frame)
        encoded = np.empty((len(target), len(self.keys)), dtype=np.float64)
        for fit_rows, encode_rows in folds:
            prior = float(target[fit_rows].mean())
            for column, key in enumerate(self.keys):
                table = self._table(keys[key].iloc[fit_rows], target[fit_rows], prior)
                encoded[encode_rows, column] = self._lookup(
                    keys[key].iloc[encode_rows], table, prior
                )

        self._prior = float(target.mean())
        self._tables = {key: self._table(keys[key], target, self._prior) for key in self.keys}
        return pd.DataFrame(encoded, index=train_frame.index, columns=self.columns).astype(
            np.float32
        )

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return encodings of new rows from the statistics of all training rows.

        Raises:
            RuntimeError: :meth:`fit_transform` has not been called.
        """
        if self._prior is None:
            raise RuntimeError("OutOfFoldTargetEncoder.transform called before fit_transform.")
        keys = self._key_frame(frame)
        data = {
            f"te_{key}": self._lookup(keys[key], self._tables[key], self._prior)
            for key in self.keys
        }
        return pd.DataFrame(data, index=frame.index).astype(np.float32)

    @property
    def columns(self) -> list[str]:
        return [f"te_{key}" for key in self.keys]

    def _key_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        if "number" not in frame.columns:
            raise ValueError("OutOfFoldTargetEncoder needs a 'number' column of ten-digit numbers.")
        numbers = frame["number"].astype(str)
        return pd.DataFrame(
            {key: numbers.str.slice(*TARGET_ENCODER_KEYS[key]) for key in self.keys},
            index=frame.index,
        )

    def _table(self, keys: pd.Series, target: np.ndarray, prior: float) -> pd.Series:
        grouped = pd.Series(target, index=keys.to_numpy()).groupby(level=0)
        sums, counts = grouped.sum(), grouped.count()
        return (sums + self.smoothing * prior) / (counts + self.smoothing)

    @staticmethod
    def _lookup(keys: pd.Series, table: pd.Series, prior: float) -> np.ndarray:
        return keys.map(table).fillna(prior).to_numpy(dtype=np.float64)

"""Tests of persistkit_train.features on hand-made numbers with hand-checked values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from persistkit_train import _patterns as patterns
from persistkit_train._numerology import BAD_PAIRS, GOOD_PAIRS, pair_meaning
from persistkit_train.data import InvalidPhoneNumberError
from persistkit_train.features import (
    FEATURE_VERSION,
    OutOfFoldTargetEncoder,
    build_features,
    feature_names,
)
from persistkit_train.split import cv_folds


def features_of(number: str) -> dict[str, int]:
    return build_features([number]).iloc[0].to_dict()


# (number, {column: expected value}) worked out by hand.
KNOWN = [
    (
        "0812345678",
        {
            "pos_1": 8,
            "pos_9": 8,
            "prefix3": 81,
            "count_8": 2,
            "count_9": 0,
            "unique_digits": 9,
            "longest_ascending": 8,
            "tail_ascending": 8,
            "longest_descending": 1,
            "steps_up": 7,
            "longest_run": 1,
            "doubles": 0,
            "digit_sum": 44,
            "digit_root": 8,
            "tail_sum": 35,
            "last4": 5678,
            "end_aa": 0,
        },
    ),
    (
        "0899999999",
        {
            "count_9": 8,
            "longest_run": 8,
            "longest_run_tail": 7,
            "tail_same_run": 8,
            "doubles": 7,
            "end_aaaa": 1,
            "end_aaa": 1,
            "mirror_last6": 1,
            "unique_tail": 1,
            "max_digit_count": 8,
            "good_pairs": 6,
            "all_tail_pairs_good": 1,
            "last_pair_meaning": 1,
        },
    ),
    (
        "0912121212",
        {
            "end_xyxy": 1,
            "end_xyxyxy": 1,
            "end_abcdabcd": 1,
            "end_aabb": 0,
            "end_aaaa": 0,
            "mirror_tail": 1,
            "repeated_pairs": 2,
            "max_pair_repeat": 3,
            "bad_pairs": 6,
            "good_pairs": 0,
            "last_pair_meaning": -1,
        },
    ),
    (
        "0811223344",
        {"end_aabb": 1, "end_aabbcc": 1, "end_xyxy": 0, "doubles": 4, "tail_same_run": 2},
    ),
    ("0891234321", {"end_abba": 0, "mirror_tail": 1, "tail_descending": 4}),
    ("0891235445", {"end_abba": 1, "mirror_last6": 0}),
    ("0890123123", {"end_abcabc": 1, "tail_ascending": 3, "tail_zeros": 1, "repeated_pairs": 2}),
    ("0987654321", {"longest_descending": 9, "tail_descending": 9, "steps_down": 8}),
    ("0820000000", {"count_0": 8, "tail_zeros": 7, "longest_run": 7, "last4": 0, "last2": 0}),
    (
        "0654289545",
        {
            "good_pairs": 6,
            "all_tail_pairs_good": 1,
            "good_pairs_number": 8,
            "good_pairs_at_end": 6,
            "longest_good_streak": 6,
        },
    ),
]


@pytest.mark.parametrize(("number", "expected"), KNOWN, ids=[number for number, _ in KNOWN])
def test_known_feature_values(number, expected):
    actual = features_of(number)
    for column, value in expected.items():
        assert actual[column] == value, column


def test_features_normalise_raw_numbers():
    raw = build_features(["+66 81-234-5678"])
    clean = build_features(["0812345678"])
    pd.testing.assert_frame_equal(raw, clean)


def test_features_reject_invalid_number():
    with pytest.raises(InvalidPhoneNumberError):
        build_features(["0812345678", "12345"])


def test_feature_frame_shape_and_types():
    frame = build_features(["0812345678", "0899999999", "0654289545"])
    assert list(frame.columns) == feature_names()
    assert frame.index.tolist() == [0, 1, 2]
    assert set(frame.dtypes) == {np.dtype("int32")}
    assert frame.notna().all().all()


def test_features_are_deterministic_and_row_independent():
    numbers = ["0812345678", "0899999999", "0654289545"]
    together = build_features(numbers)
    apart = pd.concat([build_features([n]) for n in numbers], ignore_index=True)
    pd.testing.assert_frame_equal(together, apart)


def test_empty_input_keeps_columns():
    frame = build_features([])
    assert list(frame.columns) == feature_names()
    assert len(frame) == 0


def test_feature_version_is_text():
    assert isinstance(FEATURE_VERSION, str)
    assert FEATURE_VERSION


def test_no_constant_column_on_sample():
    numbers = ["0812345678", "0899999999", "0912121212", "0654289545", "0820000000"]
    frame = build_features(numbers)
    constant = [column for column in frame if frame[column].nunique() == 1]
    # pos_1 varies here; only flags that none of these numbers has may stay constant.
    assert "pos_1" not in constant
    assert len(constant) < 6


@pytest.mark.parametrize(
    ("digits", "run", "ascending", "descending"),
    [
        ((1, 1, 1, 2), 3, 2, 1),
        ((1, 2, 3, 5, 4, 3, 2), 1, 3, 4),
        ((7,), 1, 1, 1),
    ],
)
def test_run_lengths(digits, run, ascending, descending):
    assert patterns.longest_run(digits) == run
    assert patterns.longest_ascending(digits) == ascending
    assert patterns.longest_descending(digits) == descending


def test_ngram_repeats():
    digits = (1, 2, 1, 2, 1, 3)
    assert patterns.max_ngram_repeat(digits, 2) == 2  # 12 twice, 21 twice
    assert patterns.repeated_ngrams(digits, 2) == 2
    assert patterns.max_ngram_repeat(digits, 3) == 2  # 121 twice


def test_block_patterns_exclude_single_digit():
    assert patterns.is_xyxy((5, 5, 5, 5)) == 0
    assert patterns.is_aabb((5, 5, 5, 5)) == 0
    assert patterns.is_abba((5, 5, 5, 5)) == 0
    assert patterns.is_repeated_block((5, 5, 5, 5, 5, 5), 3) == 0
    assert patterns.is_aabbcc((5, 5, 5, 5, 5, 5)) == 0


@pytest.mark.parametrize(("value", "root"), [(0, 0), (9, 9), (10, 1), (44, 8), (99, 9)])
def test_digital_root(value, root):
    assert patterns.digital_root(value) == root


def test_numerology_tables():
    assert not GOOD_PAIRS & BAD_PAIRS
    for pair in GOOD_PAIRS | BAD_PAIRS:
        assert pair_meaning(pair) == pair_meaning(pair[::-1]), pair
    assert pair_meaning("24") == 1
    assert pair_meaning("42") == 1
    assert pair_meaning("07") == -1
    assert pair_meaning("00") == -1
    assert pair_meaning("11") == 0


def target_frame(numbers):
    return pd.DataFrame({"number": numbers})


def test_target_encoder_out_of_fold():
    # Two prefixes: 081234 rows have y=1, 089999 rows y=3.
    numbers = [f"081234{i:04d}" for i in range(10)] + [f"089999{i:04d}" for i in range(10)]
    y = np.array([1.0] * 10 + [3.0] * 10)
    folds = cv_folds(20, n_splits=5, seed=0)
    encoder = OutOfFoldTargetEncoder(keys=("prefix6",), smoothing=0.0)
    encoded = encoder.fit_transform(target_frame(numbers), y, folds)
    assert list(encoded.columns) == ["te_prefix6"]
    np.testing.assert_allclose(encoded["te_prefix6"].to_numpy(), y)


def test_target_encoder_excludes_own_fold():
    # Each prefix occurs once, so out of fold it is never seen and gets the fold's prior.
    numbers = [f"08{i:02d}345678" for i in range(10)]
    y = np.arange(10, dtype=float)
    folds = cv_folds(10, n_splits=5, seed=0)
    encoder = OutOfFoldTargetEncoder(keys=("prefix6",), smoothing=1.0)
    encoded = encoder.fit_transform(target_frame(numbers), y, folds)["te_prefix6"].to_numpy()
    for fit, valid in folds:
        np.testing.assert_allclose(encoded[valid], y[fit].mean(), rtol=1e-6)


def test_target_encoder_smoothing_and_unseen():
    numbers = ["0812340000", "0812340001", "0899990000"]
    y = np.array([2.0, 4.0, 6.0])
    folds = [(np.array([1, 2]), np.array([0])), (np.array([0, 2]), np.array([1, 2]))]
    encoder = OutOfFoldTargetEncoder(keys=("prefix6",), smoothing=2.0)
    encoder.fit_transform(target_frame(numbers), y, folds)
    result = encoder.transform(target_frame(["0812349999", "0611111111"]))["te_prefix6"]
    # 081234: (2 + 4 + 2 * 4) / (2 + 2) = 3.5; unseen: the prior 4.0.
    np.testing.assert_allclose(result.to_numpy(), [3.5, 4.0])


def test_target_encoder_rejects_bad_folds():
    encoder = OutOfFoldTargetEncoder(keys=("suffix4",))
    frame = target_frame(["0812345678", "0812345679", "0812345670"])
    folds = [(np.array([0]), np.array([1, 2]))]  # row 0 never encoded
    with pytest.raises(ValueError, match="exactly once"):
        encoder.fit_transform(frame, np.ones(3), folds)


def test_target_encoder_transform_before_fit():
    with pytest.raises(RuntimeError, match="before fit_transform"):
        OutOfFoldTargetEncoder().transform(target_frame(["0812345678"]))


def test_target_encoder_unknown_key():
    with pytest.raises(ValueError, match="Unknown target-encoder keys"):
        OutOfFoldTargetEncoder(keys=("prefix9",))

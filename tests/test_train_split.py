"""Tests of persistkit_train.split on the real data and on small frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from persistkit_train.data import load_numbers
from persistkit_train.split import cv_folds, holdout_split, prefix_groups, price_quintiles


@pytest.fixture(scope="module")
def frame(real_data_path) -> pd.DataFrame:
    return load_numbers(real_data_path).frame


def test_stratified_split_sizes(frame):
    train, test = holdout_split(frame)
    assert len(test) == math.ceil(0.2 * len(frame))  # scikit-learn rounds the test side up
    assert len(train) + len(test) == len(frame)
    assert not set(train) & set(test)
    assert (np.diff(train) > 0).all()
    assert (np.diff(test) > 0).all()


def test_stratified_split_balances_quintiles(frame):
    _, test = holdout_split(frame)
    bins = price_quintiles(frame["price"])
    overall = np.bincount(bins, minlength=5) / len(bins)
    in_test = np.bincount(bins[test], minlength=5) / len(test)
    np.testing.assert_allclose(in_test, overall, atol=0.005)


def test_stratified_split_is_seeded(frame):
    first = holdout_split(frame, seed=7)
    again = holdout_split(frame, seed=7)
    other = holdout_split(frame, seed=8)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_grouped_split_keeps_prefixes_apart(frame):
    train, test = holdout_split(frame, method="grouped")
    groups = prefix_groups(frame["number"])
    assert not set(groups[train]) & set(groups[test])
    assert len(train) + len(test) == len(frame)


def test_grouped_split_test_fraction(frame):
    for seed in (0, 1, 42):
        _, test = holdout_split(frame, method="grouped", seed=seed, test_size=0.2)
        assert abs(len(test) / len(frame) - 0.2) < 0.01, seed


def test_grouped_split_with_one_group_fails():
    small = pd.DataFrame({"number": [f"081234{i:04d}" for i in range(10)], "price": 1.0})
    with pytest.raises(ValueError, match="whole prefix groups"):
        holdout_split(small, method="grouped")


def test_split_rejects_bad_arguments(frame):
    with pytest.raises(ValueError, match="test_size"):
        holdout_split(frame, test_size=1.0)
    with pytest.raises(ValueError, match="Unknown split method"):
        holdout_split(frame, method="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 rows"):
        holdout_split(frame.iloc[:1])


def test_price_quintiles_ties_share_bin():
    bins = price_quintiles(pd.Series([100, 100, 100, 100, 200, 300, 400, 500, 600, 700]))
    assert len(set(bins[:4])) == 1
    assert bins.min() >= 0
    assert bins.max() == 4


def assert_partition(folds, n_rows):
    covered = np.concatenate([valid for _, valid in folds])
    assert sorted(covered.tolist()) == list(range(n_rows))
    for fit, valid in folds:
        assert not set(fit) & set(valid)
        assert len(fit) + len(valid) == n_rows


def test_cv_folds_from_row_count():
    folds = cv_folds(103, n_splits=5, seed=0)
    assert len(folds) == 5
    assert_partition(folds, 103)


def test_cv_folds_stratified_from_frame(frame):
    train, _ = holdout_split(frame)
    train_frame = frame.iloc[train]
    folds = cv_folds(train_frame, n_splits=5)
    assert_partition(folds, len(train_frame))
    bins = price_quintiles(train_frame["price"])
    overall = np.bincount(bins, minlength=5) / len(bins)
    for _, valid in folds:
        np.testing.assert_allclose(
            np.bincount(bins[valid], minlength=5) / len(valid), overall, atol=0.01
        )


def test_cv_folds_grouped_keep_prefix_in_one_fold(frame):
    train, _ = holdout_split(frame, method="grouped")
    train_frame = frame.iloc[train]
    groups = prefix_groups(train_frame["number"])
    for source in (train_frame, len(train_frame)):
        folds = cv_folds(source, n_splits=5, groups=groups)
        assert_partition(folds, len(train_frame))
        for fit, valid in folds:
            assert not set(groups[fit]) & set(groups[valid])


def test_cv_folds_seeded():
    first = cv_folds(50, seed=3)
    again = cv_folds(50, seed=3)
    for (a_fit, a_valid), (b_fit, b_valid) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a_fit, b_fit)
        np.testing.assert_array_equal(a_valid, b_valid)


def test_cv_folds_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Invalid number of folds"):
        cv_folds(10, n_splits=1)
    with pytest.raises(ValueError, match="Invalid number of folds"):
        cv_folds(3, n_splits=5)
    with pytest.raises(ValueError, match="distinct groups"):
        cv_folds(10, n_splits=5, groups=np.array(["a", "b"] * 5))

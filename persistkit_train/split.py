"""Held-out splits and cross-validation folds for the price model.

Two held-out splits are offered:

- ``stratified`` (the default): rows are binned into price quintiles and each bin is split
  in the same ratio, so the test set covers cheap and expensive numbers alike.
- ``grouped``: every number that shares its first six digits with another stays on the
  same side. Dealers list numbers in batches with one prefix and often one price, so the
  stratified split lets a model recognise a batch it saw in training; the grouped split
  measures how well it prices a batch it has never seen.

Both are deterministic for a given seed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from persistkit_train.i18n import _

__all__ = ["GROUP_PREFIX_LENGTH", "cv_folds", "holdout_split", "prefix_groups", "price_quintiles"]

GROUP_PREFIX_LENGTH = 6
QUANTILE_BINS = 5

SplitMethod = Literal["stratified", "grouped"]


def holdout_split(
    frame: pd.DataFrame,
    *,
    method: SplitMethod = "stratified",
    test_size: float = 0.2,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train positions, test positions) of ``frame``'s rows.

    Args:
        frame: Rows with a ``price`` column, and a ``number`` column for ``grouped``.
        method: ``"stratified"`` by price quintile or ``"grouped"`` by six-digit prefix.
        test_size: Fraction of rows (stratified) or of prefix groups (grouped) held out.
        seed: Seed of the shuffle.

    Raises:
        ValueError: Unknown method, ``test_size`` outside (0, 1), or too few rows.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}.")
    if len(frame) < 2:
        raise ValueError(
            _("Need at least 2 rows to split, got {rows}. Add rows to the data file.").format(
                rows=len(frame)
            )
        )
    model_selection = _sklearn_model_selection()
    positions = np.arange(len(frame))

    if method == "stratified":
        train, test = model_selection.train_test_split(
            positions,
            test_size=test_size,
            random_state=seed,
            shuffle=True,
            stratify=price_quintiles(frame["price"]),
        )
    elif method == "grouped":
        is_test = _grouped_test_mask(prefix_groups(frame["number"]), test_size, seed)
        train, test = positions[~is_test], positions[is_test]
    else:
        raise ValueError(f"Unknown split method {method!r}; expected 'stratified' or 'grouped'.")
    return np.sort(train), np.sort(test)


def _grouped_test_mask(groups: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Return a test mask of whole groups holding close to ``test_size`` of the rows.

    Groups are visited in a seeded random order and moved to the test side while they fit
    under the target row count; groups that would overshoot it are skipped. Sizing by rows
    rather than by group count keeps the test fraction near ``test_size`` even though
    dealer batches range from one number to hundreds.
    """
    unique, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    target = round(test_size * len(groups))
    chosen = np.zeros(len(unique), dtype=bool)
    total = 0
    for group in np.random.default_rng(seed).permutation(len(unique)):
        if total + sizes[group] <= target:
            chosen[group] = True
            total += sizes[group]
    if not chosen.any() or chosen.all():
        raise ValueError(
            _(
                "Cannot hold out {share:.0%} of rows with whole prefix groups "
                "({groups} groups); use the stratified split or more data."
            ).format(share=test_size, groups=len(unique))
        )
    return chosen[inverse]


def price_quintiles(prices: pd.Series | np.ndarray) -> np.ndarray:
    """Return the price quintile (0 to 4) of each row; tied prices share a bin."""
    ranks = pd.Series(np.asarray(prices, dtype=np.float64)).rank(method="average", pct=True)
    return np.minimum((ranks.to_numpy() * QUANTILE_BINS).astype(int), QUANTILE_BINS - 1)


def prefix_groups(numbers: pd.Series | np.ndarray) -> np.ndarray:
    """Return the six-digit prefix of each number, the group id of the grouped split."""
    return pd.Series(numbers).astype(str).str.slice(0, GROUP_PREFIX_LENGTH).to_numpy()


def cv_folds(
    n_rows_or_frame: int | pd.DataFrame,
    *,
    n_splits: int = 5,
    seed: int = 42,
    groups: np.ndarray | pd.Series | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return K (fit positions, validation positions) pairs that cover each row once.

    A frame with a ``price`` column gets folds stratified by price quintile; a row count
    gets shuffled K-fold. With ``groups`` (such as :func:`prefix_groups`), rows of one
    group stay in one fold; ``StratifiedGroupKFold`` is used when prices are known.

    Raises:
        ValueError: ``n_splits`` is below 2 or above the number of rows or groups.
    """
    model_selection = _sklearn_model_selection()
    if isinstance(n_rows_or_frame, pd.DataFrame):
        n_rows = len(n_rows_or_frame)
        prices = n_rows_or_frame.get("price")
    else:
        n_rows, prices = int(n_rows_or_frame), None
    if not 2 <= n_splits <= n_rows:
        raise ValueError(
            _(
                "Invalid number of folds {n_splits} for {rows} rows: expected 2 up to the "
                "row count. Use fewer folds or add rows."
            ).format(n_splits=n_splits, rows=n_rows)
        )
    positions = np.arange(n_rows)
    strata = price_quintiles(prices) if prices is not None else None

    if groups is not None:
        group_array = np.asarray(groups)
        if len(np.unique(group_array)) < n_splits:
            raise ValueError(
                _(
                    "Cannot make {n_splits} folds from {groups} distinct groups, because each "
                    "fold needs a group of its own. Use the stratified split or more data."
                ).format(n_splits=n_splits, groups=len(np.unique(group_array)))
            )
        if strata is not None:
            splitter = model_selection.StratifiedGroupKFold(
                n_splits=n_splits, shuffle=True, random_state=seed
            )
            folds = splitter.split(positions, strata, groups=group_array)
        else:
            # GroupKFold takes shuffle= only from scikit-learn 1.6 on, and the train extra allows
            # 1.4, so group ids are permuted here.
            folds = _shuffled_group_kfold(group_array, n_splits, seed)
    elif strata is not None:
        splitter = model_selection.StratifiedKFold(
            n_splits=n_splits, shuffle=True, random_state=seed
        )
        folds = splitter.split(positions, strata)
    else:
        splitter = model_selection.KFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = splitter.split(positions)
    return [(np.asarray(fit), np.asarray(valid)) for fit, valid in folds]


def _shuffled_group_kfold(
    groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    unique = np.unique(groups)
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_group = dict(
        zip(unique[order].tolist(), (np.arange(len(unique)) % n_splits).tolist(), strict=True)
    )
    fold_of_row = np.array([fold_of_group[group] for group in groups.tolist()])
    positions = np.arange(len(groups))
    return [
        (positions[fold_of_row != fold], positions[fold_of_row == fold]) for fold in range(n_splits)
    ]


def _sklearn_model_selection() -> Any:
    from persistkit._compat import import_optional

    return import_optional("sklearn.model_selection", "sklearn")

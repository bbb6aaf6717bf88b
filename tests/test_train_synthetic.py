"""Tests of persistkit_train.synthetic, the labelled demo data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from persistkit_train.data import load_numbers
from persistkit_train.synthetic import SYNTHETIC_NOTE, write_demo_data


def test_demo_data_is_labelled_and_seeded(tmp_path):
    first = write_demo_data(tmp_path / "a.csv", rows=50, seed=3)
    again = write_demo_data(tmp_path / "b.csv", rows=50, seed=3)
    assert first.read_bytes() == again.read_bytes()
    demo = pd.read_csv(first, dtype=str)
    assert list(demo.columns) == ["phone_number", "price", "note"]
    assert (demo["note"] == SYNTHETIC_NOTE).all()
    assert "SYNTHETIC" in SYNTHETIC_NOTE
    assert demo["phone_number"].is_unique
    loaded = load_numbers(first)
    assert len(loaded.frame) == 50
    assert loaded.report.synthetic_rows == 50
    assert "50 rows are marked as SYNTHETIC demo data" in "\n".join(loaded.report.lines())


def test_demo_data_rejects_tiny_row_count(tmp_path):
    with pytest.raises(ValueError, match="at least 10"):
        write_demo_data(tmp_path / "tiny.csv", rows=5)


def test_demo_prices_follow_patterns(tmp_path):
    frame = load_numbers(write_demo_data(tmp_path / "demo.csv", rows=2000, seed=0)).frame
    ending = frame["number"].str[-4:]
    same_four = ending.str.fullmatch(r"(\d)\1{3}")
    assert same_four.sum() > 20
    assert np.median(frame.loc[same_four, "price"]) > 2 * np.median(frame.loc[~same_four, "price"])

"""Tests that report plots draw Thai labels with a font that has Thai glyphs."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib import font_manager
from matplotlib.figure import Figure

from persistkit_train import _plots, _thai_font, i18n

THAI_TITLE = "ราคาที่ทำนายเทียบกับราคาจริง (R² = 0.81)"


@pytest.fixture(autouse=True)
def isolated_rc() -> Iterator[None]:
    with matplotlib.rc_context():
        yield
    i18n.activate("en")


def render_png(figure: Figure) -> bytes:
    """Draw ``figure`` to PNG with every warning, missing glyphs included, raised."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure.savefig(buffer, format="png", dpi=60)
    return buffer.getvalue()


def thai_report_figure() -> Figure:
    figure = Figure(figsize=(4, 3))
    axes = figure.subplots()
    axes.scatter([4.6, 5.2, 6.9], [4.8, 5.0, 6.5])
    axes.set_title(THAI_TITLE)
    axes.set_xlabel(i18n.format_baht(1_250) + " ราคาจริง")
    axes.set_ylabel("ราคาที่ทำนาย ผู้ใหญ่ ญี่ปุ่น น้ำ")
    return figure


def test_thai_labels_render_with_bundled_font() -> None:
    i18n.activate("th")

    assert i18n.configure_matplotlib_font() is True
    png = render_png(thai_report_figure())

    assert png.startswith(b"\x89PNG")
    assert matplotlib.rcParams["font.family"][-1] == _thai_font.BUNDLED_FONT_FAMILY


def test_report_plots_render_in_thai(tmp_path: Path) -> None:
    # The four plots of the evaluation report, drawn by the report's own functions.
    i18n.activate("th")
    assert i18n.configure_matplotlib_font() is True
    rng = np.random.default_rng(0)
    actual = rng.uniform(np.log(100), np.log(1e6), size=40)
    predicted = actual + rng.normal(0, 0.3, size=40)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = [
            _plots.plot_predicted_vs_actual(tmp_path / "a.png", actual, predicted, model="xgb"),
            _plots.plot_residuals(tmp_path / "r.png", actual, predicted, model="xgb"),
            _plots.plot_feature_importance(
                tmp_path / "f.png", {"xgb": {"ผลรวมเลข": 3.0, "digit_8_count": 1.0}}
            ),
            _plots.plot_optimisation_history(
                tmp_path / "o.png", {"xgb": [(0, 0.5), (1, 0.7), (2, 0.6)]}, direction="maximize"
            ),
        ]

    for path in paths:
        assert path.read_bytes().startswith(b"\x89PNG")
    assert i18n._("Actual price (baht)") == "ราคาจริง (บาท)"


def test_default_font_fails_on_thai_labels() -> None:
    matplotlib.rcParams["font.family"] = ["DejaVu Sans"]

    with pytest.raises(UserWarning, match="missing from font"):
        render_png(thai_report_figure())


def test_configure_twice_adds_family_once() -> None:
    i18n.configure_matplotlib_font()
    i18n.configure_matplotlib_font()

    families = list(matplotlib.rcParams["font.family"])

    assert families.count(_thai_font.BUNDLED_FONT_FAMILY) == 1


def test_missing_font_returns_false_with_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Simulates an install without the bundled file on a machine without Thai fonts.
    monkeypatch.setattr(_thai_font, "bundled_font_path", lambda: tmp_path / "absent.ttf")
    without_thai = [
        entry
        for entry in font_manager.fontManager.ttflist
        if not _thai_font.covers_thai(Path(entry.fname))
    ]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", without_thai)
    families_before = list(matplotlib.rcParams["font.family"])

    with caplog.at_level(logging.WARNING, logger="persistkit_train._thai_font"):
        found = i18n.configure_matplotlib_font()

    assert found is False
    assert "English labels" in caplog.text
    assert list(matplotlib.rcParams["font.family"]) == families_before


def test_missing_font_warning_in_thai(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_thai_font, "bundled_font_path", lambda: tmp_path / "absent.ttf")
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [])
    i18n.activate("th")

    with caplog.at_level(logging.WARNING, logger="persistkit_train._thai_font"):
        i18n.configure_matplotlib_font()

    assert "ไม่พบฟอนต์ที่มีอักษรไทย" in caplog.text


def test_installed_thai_family_is_found() -> None:
    bundled = str(_thai_font.bundled_font_path())
    dejavu = font_manager.findfont("DejaVu Sans")
    entries = [
        font_manager.FontEntry(fname=dejavu, name="DejaVu Sans"),
        font_manager.FontEntry(fname=dejavu, name="Tahoma"),  # name matches, glyphs do not
        font_manager.FontEntry(fname=bundled, name="Loma"),
    ]

    assert _thai_font.find_installed_thai_family(entries) == "Loma"
    assert _thai_font.find_installed_thai_family(entries[:2]) is None


def test_bundled_font_ships_with_license() -> None:
    font = _thai_font.bundled_font_path()
    license_text = (font.parent / "OFL.txt").read_text(encoding="utf-8")

    assert _thai_font.covers_thai(font)
    assert "SIL OPEN FONT LICENSE Version 1.1" in license_text
    assert "Copyright 2016 Google Inc." in license_text


def test_report_without_thai_font_plots_english(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Simulates a machine with neither the bundled font nor an installed Thai font.
    from test_train_report import make_results

    from persistkit_train import report

    monkeypatch.setattr(_thai_font, "bundled_font_path", lambda: tmp_path / "absent.ttf")
    without_thai = [
        entry
        for entry in font_manager.fontManager.ttflist
        if not _thai_font.covers_thai(Path(entry.fname))
    ]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", without_thai)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = report.write_report(tmp_path / "out", make_results(), lang="th")

    markdown = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert any("\u0e00" <= char <= "\u0e7f" for char in markdown)
    assert all(path.exists() for path in paths)
    assert i18n.active_language() == "en"

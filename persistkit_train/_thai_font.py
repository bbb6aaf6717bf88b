"""Selection of a matplotlib font with Thai glyphs for the report plots.

matplotlib's bundled DejaVu Sans has no Thai glyphs: Thai labels come out as empty boxes
and matplotlib warns "Glyph ... missing from font(s) DejaVu Sans". The package ships Noto
Sans Thai Regular in ``persistkit_train/fonts`` (SIL Open Font License 1.1, text in
``fonts/OFL.txt``). That font covers Thai only, so it is appended to ``font.family``
rather than replacing it: matplotlib (3.6 and later) falls back glyph by glyph along that
list, drawing Latin letters, digits and "R²" in the usual font and Thai in Noto Sans Thai.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BUNDLED_FONT_FILE = "NotoSansThai-Regular.ttf"
BUNDLED_FONT_FAMILY = "Noto Sans Thai"

# Families known to cover Thai (TLWG fonts from fonts-thai-tlwg, Noto, Windows and macOS
# fonts). Any installed family with "Thai" in its name is also tried.
KNOWN_THAI_FAMILIES = (
    "Noto Sans Thai",
    "Noto Sans Thai UI",
    "Noto Serif Thai",
    "Noto Looped Thai",
    "Sarabun",
    "Loma",
    "Garuda",
    "Waree",
    "Umpush",
    "Kinnari",
    "Norasi",
    "Sawasdee",
    "Laksaman",
    "Arundina Sans",
    "Leelawadee UI",
    "Tahoma",
    "Thonburi",
)

# A font counts as Thai-capable when it maps all of these: consonants, a vowel sign
# drawn above, a tone mark and a Thai digit.
_THAI_PROBE = "กขฮาิ่๑"


def configure_matplotlib_font() -> bool:
    """Make matplotlib draw Thai glyphs, and return whether a Thai font was found.

    Registers the bundled Noto Sans Thai (or, if the file is missing, picks an installed
    font that covers Thai) and appends its family to ``rcParams["font.family"]``. Calling
    it again changes nothing. Wrap the call in ``matplotlib.rc_context()`` to keep the
    change local.

    Returns:
        False, after logging a warning, when no font with Thai glyphs exists; the caller
        then draws English labels.
    """
    from matplotlib import font_manager, rcParams

    family = _register_bundled_font(font_manager.fontManager)
    if family is None:
        family = find_installed_thai_family(font_manager.fontManager.ttflist)
    if family is None:
        # Imported here because i18n imports this module.
        from persistkit_train.i18n import _

        logger.warning(
            _(
                "No font with Thai glyphs was found, so the report plots use English labels. "
                "Reinstall persistkit to restore the bundled Noto Sans Thai font, or install "
                "a Thai font such as the fonts-thai-tlwg package."
            )
        )
        return False

    families = list(rcParams["font.family"])
    if family not in families:
        rcParams["font.family"] = [*families, family]
    logger.debug("matplotlib draws Thai glyphs with %s", family)
    return True


def bundled_font_path() -> Path:
    """Return the path of the Noto Sans Thai file shipped in the package."""
    return Path(str(resources.files("persistkit_train").joinpath("fonts", BUNDLED_FONT_FILE)))


def find_installed_thai_family(entries: Iterable[Any]) -> str | None:
    """Return the family name of an installed font that covers Thai, or None.

    Args:
        entries: matplotlib ``FontEntry`` records, usually ``fontManager.ttflist``.
    """
    candidates = [
        entry
        for entry in entries
        if entry.name in KNOWN_THAI_FAMILIES or "thai" in entry.name.lower()
    ]
    candidates.sort(key=lambda entry: (entry.name not in KNOWN_THAI_FAMILIES, entry.name))
    for entry in candidates:
        if covers_thai(Path(entry.fname)):
            return str(entry.name)
    return None


def covers_thai(path: Path) -> bool:
    """Return whether the font file at ``path`` has glyphs for the Thai probe text."""
    from matplotlib import ft2font

    try:
        charmap = ft2font.FT2Font(str(path)).get_charmap()
    except (OSError, RuntimeError) as exc:
        logger.debug("Cannot read font %s: %s", path, exc)
        return False
    return all(ord(character) in charmap for character in _THAI_PROBE)


def _register_bundled_font(manager: Any) -> str | None:
    path = bundled_font_path()
    if not path.is_file() or not covers_thai(path):
        logger.debug("Bundled Thai font %s is missing or unreadable", path)
        return None

    if not any(Path(entry.fname) == path for entry in manager.ttflist):
        manager.addfont(str(path))
    return BUNDLED_FONT_FAMILY

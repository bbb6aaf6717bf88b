"""Translation of user-facing text of persistkit-train.

Every string a user sees goes through :func:`_` (or :func:`ngettext`) with named
``str.format`` placeholders applied after translation, for example
``_("Loaded {rows} rows from {path}").format(rows=n, path=path)``. Never put an f-string
inside ``_()``: the catalogue lookup needs the literal text.

The catalogues are standard gettext files in ``persistkit_train/locale``::

    locale/
        persistkit_train.pot            template extracted from the source
        en/LC_MESSAGES/persistkit_train.po, .mo
        th/LC_MESSAGES/persistkit_train.po, .mo

The compiled ``.mo`` files are committed and shipped as package data, so an installed
wheel needs no build step. ``locale/README.md`` lists the commands that extract, update
and compile them. Only the standard library's :mod:`gettext` is used at run time.

The active language is process-wide. :func:`activate` picks it, in this order: the
``--lang`` value, the ``PERSISTKIT_LANG`` variable, the POSIX locale variables
(``LC_ALL``, ``LC_MESSAGES``, ``LANG``) starting with ``th``, else English.
"""

from __future__ import annotations

import contextlib
import gettext
import logging
import math
import os
from collections.abc import Iterator, Mapping
from importlib import resources

from persistkit_train._thai_font import configure_matplotlib_font

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "_",
    "activate",
    "active_language",
    "configure_matplotlib_font",
    "format_baht",
    "format_duration",
    "format_number",
    "ngettext",
    "use_language",
]

logger = logging.getLogger(__name__)

DOMAIN = "persistkit_train"
"""gettext domain: the catalogue files are named ``persistkit_train.po`` and ``.mo``."""

LANGUAGES = ("en", "th")
"""Codes of the languages that have a catalogue."""

ENV_VARIABLE = "PERSISTKIT_LANG"

# POSIX precedence: LC_ALL overrides LC_MESSAGES, which overrides LANG.
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")

_active_language = "en"
_translations: gettext.NullTranslations = gettext.NullTranslations()
_loaded: dict[str, gettext.NullTranslations] = {}


def _(message: str) -> str:
    """Return the translation of ``message`` in the active language."""
    return _translations.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """Return the singular or plural translation for ``count``.

    Thai has one form, so the Thai catalogue gives the same text for every count.
    """
    return _translations.ngettext(singular, plural, count)


def activate(language: str | None = None) -> str:
    """Select the language of user-facing text and return its code ("en" or "th").

    Args:
        language: The ``--lang`` option, such as ``"th"``, ``"en"`` or ``"th_TH"``. When
            it is None the choice falls back to ``PERSISTKIT_LANG``, then the locale
            variables, then English.

    Raises:
        ValueError: ``language`` is not a language with a catalogue.
    """
    if language is not None:
        code = _language_code(language)
        if code is None:
            raise ValueError(
                f"Invalid language {language!r}: expected one of {', '.join(LANGUAGES)}."
            )
    else:
        code = _language_from_environment(os.environ)

    _install(code)
    return code


def active_language() -> str:
    """Return the code of the active language ("en" or "th")."""
    return _active_language


@contextlib.contextmanager
def use_language(language: str) -> Iterator[str]:
    """Switch to ``language`` inside a ``with`` block and restore the previous one after.

    A caller draws English plot labels inside it when :func:`configure_matplotlib_font`
    returns False.
    The switch is process-wide, so other threads see it too while the block runs.
    """
    previous = _active_language
    code = activate(language)
    try:
        yield code
    finally:
        _install(previous)


def format_number(value: float, digits: int = 0) -> str:
    """Format ``value`` with thousands separators and ``digits`` decimals.

    Thai and English both group digits with "," and use "." as the decimal mark
    (CLDR number symbols for ``th`` and ``en``). Both use Arabic digits, not Thai digits.
    NaN and infinities come back as "nan", "inf" and "-inf".
    """
    if not math.isfinite(value):
        return str(float(value))
    return f"{value:,.{digits}f}"


def format_baht(value: float) -> str:
    """Format an amount in Thai baht, rounded to whole baht: "1,250 baht" or "1,250 บาท"."""
    return _("{amount} baht").format(amount=format_number(value))


def format_duration(seconds: float) -> str:
    """Format a duration for the active language: "1h 05m" in English, "1 ชั่วโมง 5 นาที" in Thai.

    The result names hours and minutes from one hour up, minutes and seconds from one
    minute up, and seconds below that. Negative values (an ETA that has already passed)
    format as zero seconds, and NaN or infinity (an ETA not known yet) as "unknown".
    """
    if not math.isfinite(seconds):
        return _("unknown")
    total = max(0, round(seconds))
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return _("{hours}h {minutes:02d}m").format(hours=hours, minutes=minutes)
    if minutes:
        return _("{minutes}m {seconds:02d}s").format(minutes=minutes, seconds=secs)
    return _("{seconds}s").format(seconds=secs)


def _language_code(value: str) -> str | None:
    """Map "th", "TH", "th_TH.UTF-8" or "th-TH" to "th" (and so on), or None if unknown."""
    prefix = value.strip().lower().replace("-", "_").split("_")[0].split(".")[0]
    return prefix if prefix in LANGUAGES else None


def _language_from_environment(environ: Mapping[str, str]) -> str:
    """Choose the language from ``PERSISTKIT_LANG``, then the locale, then English."""
    requested = environ.get(ENV_VARIABLE, "").strip()
    if requested:
        code = _language_code(requested)
        if code is not None:
            return code
        logger.warning(
            "Ignoring invalid %s=%r: expected one of %s.",
            ENV_VARIABLE,
            requested,
            ", ".join(LANGUAGES),
        )

    for name in _LOCALE_VARIABLES:
        value = environ.get(name, "")
        if value:
            return "th" if value.lower().startswith("th") else "en"
    return "en"


def _install(code: str) -> None:
    global _active_language, _translations
    if code not in _loaded:
        _loaded[code] = _load_catalogue(code)
    _translations = _loaded[code]
    _active_language = code


def _load_catalogue(code: str) -> gettext.NullTranslations:
    """Read the compiled catalogue of ``code`` from the package data.

    A missing catalogue (a broken install) degrades to the English source text with a
    warning instead of stopping the program.
    """
    path = resources.files("persistkit_train").joinpath(
        "locale", code, "LC_MESSAGES", f"{DOMAIN}.mo"
    )
    try:
        with path.open("rb") as stream:
            return gettext.GNUTranslations(stream)
    except FileNotFoundError:
        logger.warning(
            "Message catalogue %s not found, so text stays in English. Reinstall persistkit.",
            path,
        )
        return gettext.NullTranslations()

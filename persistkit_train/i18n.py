"""Translation of user-facing text of persistkit-train.

Every string a user sees goes through :func:`_` (or :func:`ngettext`) with named
``str.format`` placeholders applied after translation, for example
``_("Loaded {rows} rows from {path}").format(rows=n, path=path)``.
"""

from __future__ import annotations


def _(message: str) -> str:
    """Return the translation of ``message`` in the active language."""
    return message


def ngettext(singular: str, plural: str, count: int) -> str:
    """Return the singular or plural translation for ``count``."""
    return singular if count == 1 else plural


def activate(language: str | None = None) -> str:
    """Select the language of user-facing text and return its code ("en" or "th").

    ``language`` is the ``--lang`` option; when it is None the choice falls back to
    ``PERSISTKIT_LANG``, then the locale, then English.
    """
    return "en"


def format_number(value: float, digits: int = 0) -> str:
    """Format ``value`` with thousands separators for the active language."""
    return f"{value:,.{digits}f}"


def format_baht(value: float) -> str:
    """Format an amount in Thai baht for the active language."""
    return f"{value:,.0f} THB"


def format_duration(seconds: float) -> str:
    """Format a duration such as "1h 05m" for the active language."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"

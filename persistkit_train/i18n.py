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

"""Parsing of Thai mobile numbers and baht prices as users type or paste them."""

from __future__ import annotations

import math
import re
import unicodedata

from persistkit_train.i18n import _

__all__ = ["InvalidPhoneNumberError", "InvalidPriceError", "normalize_number", "parse_price"]

MOBILE_PREFIXES = ("06", "08", "09")
NUMBER_LENGTH = 10

# Characters people put between digit groups: whitespace (including NBSP and the zero-width
# space), dashes of every kind, dots, slashes and brackets.
_SEPARATORS = re.compile(r"[\s\u200b\u2060\ufeff\-\u2010-\u2015\u2212./()\[\]]+")
# A spreadsheet that read the number as a float writes "812345678.0".
_FLOAT_EXPORT = re.compile(r"\d+\.0+")
_THOUSANDS = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")
_CURRENCY_PREFIXES = ("฿", "THB", "BAHT")
_CURRENCY_SUFFIXES = ("บาท", "฿", "THB", "BAHT", ".-")


class InvalidPhoneNumberError(ValueError):
    """A value is not a Thai mobile number: ten digits starting with 06, 08 or 09."""


class InvalidPriceError(ValueError):
    """A price is missing, not a number, not finite, or not positive.

    Attributes:
        reason: ``"missing_price"``, ``"invalid_price"`` or ``"non_positive_price"``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def normalize_number(raw: str) -> str:
    """Return the ten-digit form of a Thai mobile number written in any common way.

    Accepted forms:

    - separators between digit groups: spaces, NBSP, dashes, dots, slashes, brackets;
    - Thai or other Unicode decimal digits;
    - the country code as ``+66``, ``66`` or ``0066``, with or without the trunk ``0``;
    - spreadsheet artefacts: a float export such as ``812345678.0``, a leading apostrophe
      (``'0812345678``), and a nine-digit number without its leading ``0`` (spreadsheets
      drop it when they read the column as numbers).

    ``'+66 81 234 5678'``, ``'081-234-5678'`` and ``'812345678'`` all give ``'0812345678'``.

    Raises:
        InvalidPhoneNumberError: The value has other characters, the wrong number of
            digits, or does not start with 06, 08 or 09. The message shows the value.
    """
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    if text.startswith("'"):
        # Spreadsheet users type a leading apostrophe to keep the 0 of a number as text.
        text = text[1:]
    if _FLOAT_EXPORT.fullmatch(text):
        text = text.split(".", 1)[0]
    compact = _SEPARATORS.sub("", text)
    has_plus = compact.startswith("+")
    digits = _ascii_digits(compact[1:] if has_plus else compact)
    if digits is None:
        raise InvalidPhoneNumberError(
            _(
                "Invalid phone number {value!r}: only digits, spaces, dashes and +66 are allowed."
            ).format(value=raw)
        )
    if has_plus and not digits.startswith("66"):
        raise InvalidPhoneNumberError(
            _("Invalid phone number {value!r}: only the Thai country code +66 is accepted.").format(
                value=raw
            )
        )
    number = _strip_country_code(digits)
    if len(number) == NUMBER_LENGTH - 1 and number[0] in "689":
        number = "0" + number
    if len(number) != NUMBER_LENGTH or not number.startswith(MOBILE_PREFIXES):
        raise InvalidPhoneNumberError(
            _(
                "Invalid phone number {value!r}: a Thai mobile number has 10 digits and "
                "starts with 06, 08 or 09 (found {count} digits: {digits})."
            ).format(value=raw, count=len(number), digits=number)
        )
    return number


def _ascii_digits(text: str) -> str | None:
    """Return ``text`` with Unicode decimal digits as ASCII, or None if it has other chars."""
    if not text:
        return None
    out = []
    for char in text:
        value = unicodedata.decimal(char, None)
        if value is None:
            return None
        out.append(str(value))
    return "".join(out)


def _strip_country_code(digits: str) -> str:
    for code in ("0066", "66"):
        rest = digits[len(code) :]
        if digits.startswith(code) and len(rest) in (NUMBER_LENGTH - 1, NUMBER_LENGTH):
            return rest if rest.startswith("0") else "0" + rest
    return digits


def parse_price(raw: str) -> float:
    """Return a price in baht from text such as ``1500``, ``1,500``, ``฿1,500`` or ``1500 บาท``.

    Commas are accepted only as thousands separators (``1,500`` but not ``1,5``), so a
    European decimal comma is rejected instead of read as a thousand times the price.

    Raises:
        InvalidPriceError: The text is empty, not a number, not finite, or not above zero.
    """
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    if not text:
        raise InvalidPriceError(_("The price is empty."), reason="missing_price")
    text = _strip_currency(text)
    if "," in text:
        if not _THOUSANDS.fullmatch(text):
            raise InvalidPriceError(
                _("Invalid price {value!r}: commas are allowed only between thousands.").format(
                    value=raw
                ),
                reason="invalid_price",
            )
        text = text.replace(",", "")
    try:
        price = float(text)
    except ValueError:
        price = math.nan
    if not math.isfinite(price):
        raise InvalidPriceError(
            _("Invalid price {value!r}: expected a number of baht such as 1500.").format(value=raw),
            reason="invalid_price",
        )
    if price <= 0:
        raise InvalidPriceError(
            _("Invalid price {value!r}: a price must be above zero.").format(value=raw),
            reason="non_positive_price",
        )
    return price


def _strip_currency(text: str) -> str:
    upper = text.upper()
    for prefix in _CURRENCY_PREFIXES:
        if upper.startswith(prefix):
            return text[len(prefix) :].strip()
    for suffix in _CURRENCY_SUFFIXES:
        if upper.endswith(suffix):
            return text[: len(text) - len(suffix)].strip()
    return text

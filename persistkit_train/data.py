"""Load and validate a CSV of Thai mobile numbers with their asking prices.

The input is a comma-separated file with a header line; two columns are used, the number
(default ``phone_number``) and the price in baht (default ``price``). Other columns are
ignored. Each row goes through three steps:

1. The number is normalised as users paste it (see :func:`normalize_number`).
2. The price is parsed (see :func:`parse_price`).
3. Rows that fail either step are rejected and counted by reason, with a few examples.

Rows that share a normalised number are then collapsed into one row whose price is the
median of their prices (:data:`DUPLICATE_RULE`). The median is order-independent and, for
the usual case of exact repeats, returns the repeated price unchanged.

Problems with the file itself (missing, empty, binary, HTML, another delimiter, a missing
column) raise :class:`DataError` naming the file, the problem and what to do.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
import os
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from persistkit_train._csv_file import (
    DataError,
    DataFileNotFoundError,
    column_index,
    decode_csv_text,
    field_at,
    find_column,
    read_bytes,
    read_header,
)
from persistkit_train._numbers import (
    InvalidPhoneNumberError,
    InvalidPriceError,
    normalize_number,
    parse_price,
)
from persistkit_train.i18n import _

__all__ = [
    "DUPLICATE_RULE",
    "SYNTHETIC_NOTE",
    "DataError",
    "DataFileNotFoundError",
    "DataReport",
    "InvalidPhoneNumberError",
    "InvalidPriceError",
    "LoadedData",
    "RejectedRows",
    "load_numbers",
    "normalize_number",
    "parse_price",
]

logger = logging.getLogger(__name__)

DUPLICATE_RULE = "median price of the rows that share a normalised number"
# Value of the ``note`` column in every row of the demo data that
# persistkit_train.synthetic writes; the load report flags such rows.
SYNTHETIC_NOTE = "SYNTHETIC demo data - not real prices"
NOTE_COLUMN = "note"
MAX_EXAMPLES = 3


@dataclasses.dataclass(frozen=True)
class RejectedRows:
    """Rows rejected for one reason: how many, and up to three (line, value) examples."""

    count: int
    examples: tuple[tuple[int, str], ...]


@dataclasses.dataclass(frozen=True)
class DataReport:
    """Summary of one load: counts, rejections, duplicates and the price range in baht."""

    path: str
    rows_read: int
    rows_kept: int
    rejected: Mapping[str, RejectedRows]
    numbers_cleaned: int
    synthetic_rows: int
    duplicate_numbers: int
    duplicate_rows_removed: int
    duplicate_price_conflicts: tuple[str, ...]
    duplicate_rule: str
    price_min: float
    price_median: float
    price_max: float

    @property
    def rows_rejected(self) -> int:
        return sum(item.count for item in self.rejected.values())

    def lines(self) -> list[str]:
        """Return the user-facing summary, one line per fact, in the active language."""
        lines = [
            _("Read {rows} rows from {path}.").format(rows=self.rows_read, path=self.path),
            _("Kept {kept} numbers; rejected {rejected} rows.").format(
                kept=self.rows_kept, rejected=self.rows_rejected
            ),
        ]
        for reason, item in sorted(self.rejected.items()):
            examples = ", ".join(
                _("line {line} {value!r}").format(line=line, value=value)
                for line, value in item.examples
            )
            lines.append(
                _("  {count} rows rejected: {reason} (for example {examples})").format(
                    count=item.count, reason=_reason_text(reason), examples=examples
                )
            )
        if self.synthetic_rows:
            lines.append(
                _(
                    "{count} rows are marked as SYNTHETIC demo data: their prices are invented, "
                    "not market prices."
                ).format(count=self.synthetic_rows)
            )
        if self.numbers_cleaned:
            lines.append(
                _(
                    "{count} numbers were normalised (spaces, dashes, +66 prefix or a missing leading 0)."
                ).format(count=self.numbers_cleaned)
            )
        if self.duplicate_numbers:
            lines.append(
                _(
                    "{numbers} numbers appeared more than once; {removed} duplicate rows were "
                    "merged, keeping the median price ({conflicts} had different prices)."
                ).format(
                    numbers=self.duplicate_numbers,
                    removed=self.duplicate_rows_removed,
                    conflicts=len(self.duplicate_price_conflicts),
                )
            )
        lines.append(
            _("Prices: min {low}, median {median}, max {high} baht.").format(
                low=f"{self.price_min:,.0f}",
                median=f"{self.price_median:,.0f}",
                high=f"{self.price_max:,.0f}",
            )
        )
        return lines

    def to_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["rejected"] = {
            reason: {"count": item.count, "examples": [list(pair) for pair in item.examples]}
            for reason, item in self.rejected.items()
        }
        data["duplicate_price_conflicts"] = list(self.duplicate_price_conflicts)
        data["rows_rejected"] = self.rows_rejected
        return data


def _reason_text(reason: str) -> str:
    texts = {
        "missing_number": _("the number is empty"),
        "invalid_number": _("not a 10-digit Thai mobile number starting with 06, 08 or 09"),
        "missing_price": _("the price is empty"),
        "invalid_price": _("the price is not a number"),
        "non_positive_price": _("the price is zero or negative"),
    }
    return texts.get(reason, reason)


@dataclasses.dataclass(frozen=True)
class LoadedData:
    """Validated data: one row per number, with the load report and the file's SHA-256.

    ``frame`` has the columns ``number`` (str, ten digits) and ``price`` (float, baht), in
    order of first appearance in the file, with a 0..n-1 index.
    """

    frame: pd.DataFrame
    report: DataReport
    sha256: str


def load_numbers(
    path: str | os.PathLike[str],
    *,
    number_column: str = "phone_number",
    price_column: str = "price",
    delimiter: str = ",",
) -> LoadedData:
    """Read, validate and de-duplicate a CSV of numbers and prices.

    Args:
        path: The CSV file.
        number_column: Header of the column with the phone numbers.
        price_column: Header of the column with the prices in baht.
        delimiter: Field separator; pass ";" or "\\t" for files saved that way.

    Returns:
        The validated rows, the report and the SHA-256 of the file bytes.

    Raises:
        DataFileNotFoundError: The file does not exist.
        DataError: The file is empty, not CSV text, lacks a column, or has no valid row.
    """
    file_path = Path(path)
    raw = read_bytes(file_path)
    text = decode_csv_text(file_path, raw)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = read_header(file_path, reader, delimiter)
    number_index = find_column(file_path, header, number_column, "number_column")
    price_index = find_column(file_path, header, price_column, "price_column")
    note_index = column_index(header, NOTE_COLUMN)

    collector = _RowCollector()
    synthetic_rows = 0
    for row in reader:
        if not any(field.strip() for field in row):
            continue
        collector.add(reader.line_num, field_at(row, number_index), field_at(row, price_index))
        if note_index is not None and field_at(row, note_index).strip() == SYNTHETIC_NOTE:
            synthetic_rows += 1

    if collector.rows_read == 0:
        raise DataError(
            _("{path}: the file has a header line but no data rows.").format(path=file_path)
        )
    if not collector.numbers:
        raise DataError(
            _(
                "{path}: no valid rows ({read} rows read, all rejected). Check that the "
                "'{column}' column contains Thai mobile numbers and '{price}' contains prices."
            ).format(
                path=file_path, read=collector.rows_read, column=number_column, price=price_column
            )
        )
    frame, duplicates = _merge_duplicates(collector.numbers, collector.prices)
    prices = frame["price"]
    report = DataReport(
        path=str(file_path),
        rows_read=collector.rows_read,
        rows_kept=len(frame),
        rejected=dict(collector.rejected),
        numbers_cleaned=collector.numbers_cleaned,
        synthetic_rows=synthetic_rows,
        duplicate_rule=DUPLICATE_RULE,
        price_min=float(prices.min()),
        price_median=float(prices.median()),
        price_max=float(prices.max()),
        **duplicates,
    )
    logger.info("Loaded %s: %d rows read, %d kept", file_path, report.rows_read, len(frame))
    return LoadedData(frame=frame, report=report, sha256=hashlib.sha256(raw).hexdigest())


class _RowCollector:
    """Accumulates valid rows and counts rejected ones by reason."""

    def __init__(self) -> None:
        self.numbers: list[str] = []
        self.prices: list[float] = []
        self.rows_read = 0
        self.numbers_cleaned = 0
        self._rejected: dict[str, tuple[int, list[tuple[int, str]]]] = {}

    @property
    def rejected(self) -> dict[str, RejectedRows]:
        return {
            reason: RejectedRows(count=count, examples=tuple(examples))
            for reason, (count, examples) in self._rejected.items()
        }

    def add(self, line: int, number_raw: str, price_raw: str) -> None:
        self.rows_read += 1
        if not number_raw.strip():
            self._reject("missing_number", line, number_raw)
            return
        try:
            number = normalize_number(number_raw)
        except InvalidPhoneNumberError:
            self._reject("invalid_number", line, number_raw)
            return
        if not price_raw.strip():
            self._reject("missing_price", line, price_raw)
            return
        try:
            price = parse_price(price_raw)
        except InvalidPriceError as exc:
            self._reject(exc.reason, line, price_raw)
            return
        if number != number_raw:
            self.numbers_cleaned += 1
        self.numbers.append(number)
        self.prices.append(price)

    def _reject(self, reason: str, line: int, value: str) -> None:
        count, examples = self._rejected.get(reason, (0, []))
        if len(examples) < MAX_EXAMPLES:
            examples.append((line, value))
        self._rejected[reason] = (count + 1, examples)


def _merge_duplicates(
    numbers: list[str], prices: list[float]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    by_number: dict[str, list[float]] = {}
    for number, price in zip(numbers, prices, strict=True):
        by_number.setdefault(number, []).append(price)
    repeated = {number: values for number, values in by_number.items() if len(values) > 1}
    conflicts = tuple(sorted(n for n, values in repeated.items() if len(set(values)) > 1))
    frame = pd.DataFrame(
        {
            "number": pd.Series(list(by_number), dtype=object),
            "price": [float(statistics.median(values)) for values in by_number.values()],
        }
    )
    summary: dict[str, Any] = {
        "duplicate_numbers": len(repeated),
        "duplicate_rows_removed": sum(len(values) - 1 for values in repeated.values()),
        "duplicate_price_conflicts": conflicts,
    }
    return frame, summary

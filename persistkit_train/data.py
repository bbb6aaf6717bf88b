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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from persistkit_train._numbers import (
    InvalidPhoneNumberError,
    InvalidPriceError,
    normalize_number,
    parse_price,
)
from persistkit_train.i18n import _

__all__ = [
    "DUPLICATE_RULE",
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
MAX_EXAMPLES = 3
_SNIFF_BYTES = 8192

# Leading bytes of formats that users save or download by mistake instead of CSV.
_MAGIC_FORMATS = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"%PDF", "a PDF document"),
)


class DataError(ValueError):
    """The data file cannot be read as a CSV of numbers and prices."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """The data file does not exist."""


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
            examples = ", ".join(f"{line}: {value!r}" for line, value in item.examples)
            lines.append(
                _("  {count} rows rejected: {reason} (for example line {examples})").format(
                    count=item.count, reason=_reason_text(reason), examples=examples
                )
            )
        if self.numbers_cleaned:
            lines.append(
                _("{count} numbers had spaces, dashes or a +66 prefix removed.").format(
                    count=self.numbers_cleaned
                )
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
    raw = _read_bytes(file_path)
    text = _decode_csv_text(file_path, raw)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = _read_header(file_path, reader, delimiter)
    number_index = _find_column(file_path, header, number_column, "number_column")
    price_index = _find_column(file_path, header, price_column, "price_column")

    collector = _RowCollector()
    for row in reader:
        if not any(field.strip() for field in row):
            continue
        number_raw = row[number_index] if number_index < len(row) else ""
        price_raw = row[price_index] if price_index < len(row) else ""
        collector.add(reader.line_num, number_raw, price_raw)

    if not collector.numbers:
        raise DataError(
            _(
                "{path}: no valid rows ({read} rows read, all rejected). Check that the "
                "'{column}' column holds Thai mobile numbers and the prices are numbers."
            ).format(path=file_path, read=collector.rows_read, column=number_column)
        )
    frame, duplicates = _merge_duplicates(collector.numbers, collector.prices)
    prices = frame["price"]
    report = DataReport(
        path=str(file_path),
        rows_read=collector.rows_read,
        rows_kept=len(frame),
        rejected=dict(collector.rejected),
        numbers_cleaned=collector.numbers_cleaned,
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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DataFileNotFoundError(
            _("{path}: file not found. Check the path given to --data.").format(path=path)
        ) from exc
    except IsADirectoryError as exc:
        raise DataError(
            _("{path}: is a directory, not a CSV file. Pass the path of the CSV file.").format(
                path=path
            )
        ) from exc


def _decode_csv_text(path: Path, raw: bytes) -> str:
    """Return the text of ``raw``, or raise DataError when it is not CSV text."""
    if not raw.strip(b" \t\r\n\xef\xbb\xbf"):
        raise DataError(
            _(
                "{path}: the file is empty. Export the data again with a header line and rows."
            ).format(path=path)
        )
    head = raw[:_SNIFF_BYTES]
    for magic, description in _MAGIC_FORMATS:
        if head.startswith(magic):
            raise DataError(
                _("{path}: not a CSV file; it looks like {kind}. Save or export it as CSV.").format(
                    path=path, kind=description
                )
            )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16")
    elif b"\x00" in head:
        raise DataError(
            _("{path}: not a CSV file; it contains binary data. Pass a CSV text file.").format(
                path=path
            )
        )
    else:
        text = _decode_text_bytes(raw)
    if text.lstrip().lower().startswith(("<!doctype html", "<html", "<?xml", "<")):
        raise DataError(
            _(
                "{path}: not a CSV file; it looks like an HTML or XML page (a web page saved "
                "instead of the raw file?). Download the raw CSV file."
            ).format(path=path)
        )
    return text


def _decode_text_bytes(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Thai Windows saves CSV in the Thai code page; numbers and prices are ASCII.
        return raw.decode("cp874", errors="replace")


def _read_header(path: Path, reader: Iterator[list[str]], delimiter: str) -> list[str]:
    header: list[str] = []
    for row in reader:
        if any(field.strip() for field in row):
            header = row
            break
    if not header:
        raise DataError(
            _(
                "{path}: the file has no header line. Add a header such as 'phone_number,price'."
            ).format(path=path)
        )
    if len(header) == 1:
        found = [sep for sep in (";", "\t", "|", ",") if sep in header[0] and sep != delimiter]
        if found:
            raise DataError(
                _(
                    "{path}: the header line is separated by {found!r}, not {expected!r}. "
                    "Save the file with commas between columns."
                ).format(path=path, found=found[0], expected=delimiter)
            )
    return header


def _find_column(path: Path, header: list[str], name: str, option: str) -> int:
    cleaned = [field.strip().lstrip("\ufeff").strip().casefold() for field in header]
    wanted = name.strip().casefold()
    if wanted in cleaned:
        return cleaned.index(wanted)
    raise DataError(
        _(
            "{path}: missing column {name!r}; the header has {columns}. Rename the column "
            "or pass its name with {option}."
        ).format(path=path, name=name, columns=[field.strip() for field in header], option=option)
    )

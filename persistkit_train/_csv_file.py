"""Reading the text of a CSV file, with clear errors for files that are not CSV.

Users sometimes pass a workbook, a web page or a file saved with another separator.
Each case raises :class:`DataError` naming the file, what it looks like, and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from persistkit_train.i18n import _

_SNIFF_BYTES = 8192

# Leading bytes of formats that users save or download by mistake instead of CSV. Each
# description is a function so that it is translated when the error is raised, in the
# language active then, not when this module is imported.
_MAGIC_FORMATS: tuple[tuple[bytes, Callable[[], str]], ...] = (
    (b"PK\x03\x04", lambda: _("a ZIP archive (an Excel .xlsx workbook is one)")),
    (b"\xd0\xcf\x11\xe0", lambda: _("an old Excel .xls workbook")),
    (b"\x1f\x8b", lambda: _("a gzip-compressed file")),
    (b"%PDF", lambda: _("a PDF document")),
)


class DataError(ValueError):
    """The data file cannot be read as a CSV of numbers and prices."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """The data file does not exist."""


def read_bytes(path: Path) -> bytes:
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


def decode_csv_text(path: Path, raw: bytes) -> str:
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
                    path=path, kind=description()
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


def read_header(path: Path, reader: Iterator[list[str]], delimiter: str) -> list[str]:
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


def field_at(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def column_index(header: list[str], name: str) -> int | None:
    """Return the position of ``name`` in ``header``, ignoring case, spaces and a BOM."""
    cleaned = [field.strip().lstrip("\ufeff").strip().casefold() for field in header]
    expected = name.strip().casefold()
    return cleaned.index(expected) if expected in cleaned else None


def find_column(path: Path, header: list[str], name: str, option: str) -> int:
    index = column_index(header, name)
    if index is not None:
        return index
    raise DataError(
        _(
            "{path}: missing column {name!r}; the header has {columns}. Rename that column "
            "in the file to {name!r} (Python callers can instead pass its header as {option})."
        ).format(path=path, name=name, columns=[field.strip() for field in header], option=option)
    )

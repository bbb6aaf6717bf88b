"""Tests of persistkit_train.data: number and price parsing, the real file, bad files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from persistkit_train.data import (
    DUPLICATE_RULE,
    DataError,
    DataFileNotFoundError,
    InvalidPhoneNumberError,
    InvalidPriceError,
    load_numbers,
    normalize_number,
    parse_price,
)


@pytest.fixture(scope="module")
def real_data(real_data_path):
    return load_numbers(real_data_path)


def write(tmp_path: Path, text: str | bytes, name: str = "numbers.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0812345678", "0812345678"),
        ("081-234-5678", "0812345678"),
        ("081 234 5678", "0812345678"),
        ("\u00a00812345678", "0812345678"),
        ("0812345678\u00a0", "0812345678"),
        ("(081) 234.5678", "0812345678"),
        ("081\u2013234\u20135678", "0812345678"),
        ("+66 81 234 5678", "0812345678"),
        ("+66812345678", "0812345678"),
        ("66812345678", "0812345678"),
        ("0066 81 234 5678", "0812345678"),
        ("+66 (0)81 234 5678", "0812345678"),
        ("+66 081 234 5678", "0812345678"),
        ("812345678", "0812345678"),
        ("812345678.0", "0812345678"),
        ("'0812345678", "0812345678"),
        ("๐๘๑๒๓๔๕๖๗๘", "0812345678"),
        ("０８１２３４５６７８", "0812345678"),
        ("0612345678", "0612345678"),
        ("0912345678", "0912345678"),
    ],
)
def test_normalize_number_accepts(raw, expected):
    assert normalize_number(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "06442399654",  # 11 digits
        "081234567",  # 9 digits starting with 0
        "0798795493",  # 07 is not a mobile prefix
        "0212345678",  # Bangkok landline prefix
        "081234567a",
        "+1 812 345 6789",
        "8.12345678E+08",
        "081-234-567",
    ],
)
def test_normalize_number_rejects(raw):
    with pytest.raises(InvalidPhoneNumberError) as caught:
        normalize_number(raw)
    assert repr(raw) in str(caught.value)


def test_normalize_number_error_is_value_error():
    with pytest.raises(ValueError, match="starts with 06, 08 or 09"):
        normalize_number("0212345678")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1500", 1500.0),
        (" 1500 ", 1500.0),
        ("1500.50", 1500.5),
        ("1,500", 1500.0),
        ("1,500,000", 1_500_000.0),
        ("฿1,500", 1500.0),
        ("฿ 1500", 1500.0),
        ("1500 บาท", 1500.0),
        ("1,500 THB", 1500.0),
        ("1500.-", 1500.0),
    ],
)
def test_parse_price_accepts(raw, expected):
    assert parse_price(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "missing_price"),
        ("  ", "missing_price"),
        ("abc", "invalid_price"),
        ("1,5", "invalid_price"),
        ("15,00", "invalid_price"),
        ("nan", "invalid_price"),
        ("inf", "invalid_price"),
        ("0", "non_positive_price"),
        ("-100", "non_positive_price"),
    ],
)
def test_parse_price_rejects(raw, reason):
    with pytest.raises(InvalidPriceError) as caught:
        parse_price(raw)
    assert caught.value.reason == reason


def test_real_file_counts(real_data):
    report = real_data.report
    assert report.rows_read == 6112
    assert report.rows_kept == len(real_data.frame) == 6097
    assert report.rows_rejected == 2
    assert report.duplicate_numbers == 13
    assert report.duplicate_rows_removed == 13
    assert report.rows_read == report.rows_kept + report.rows_rejected + 13


def test_real_file_rejects_eleven_digits(real_data):
    examples = dict(real_data.report.rejected["invalid_number"].examples)
    assert examples[104] == "06442399654"


def test_real_file_rejects_non_mobile_prefix(real_data):
    examples = dict(real_data.report.rejected["invalid_number"].examples)
    assert examples[2880] == "0798795493"


def test_real_file_strips_nbsp(real_data):
    frame = real_data.frame
    assert real_data.report.numbers_cleaned == 30
    assert frame["number"].str.fullmatch(r"0[689]\d{8}").all()
    # Line 121 is "0946699696\u00a0 ,6700" and line 388 is "\u00a0 0816629665,1600".
    assert frame.loc[frame["number"] == "0946699696", "price"].tolist() == [6700.0]
    assert frame.loc[frame["number"] == "0816629665", "price"].tolist() == [1600.0]


def test_real_file_merges_duplicates_by_median(real_data):
    frame = real_data.frame
    assert frame["number"].is_unique
    # 0814545156 is listed at 4900 and, with a leading NBSP, at 5500.
    assert real_data.report.duplicate_price_conflicts == ("0814545156",)
    assert frame.loc[frame["number"] == "0814545156", "price"].tolist() == [5200.0]
    # 0615525552 is listed twice at 3300.
    assert frame.loc[frame["number"] == "0615525552", "price"].tolist() == [3300.0]
    assert real_data.report.duplicate_rule == DUPLICATE_RULE


def test_real_file_not_marked_synthetic(real_data):
    assert real_data.report.synthetic_rows == 0
    assert "SYNTHETIC" not in "\n".join(real_data.report.lines())


def test_real_file_frame_shape(real_data):
    frame = real_data.frame
    assert list(frame.columns) == ["number", "price"]
    assert frame.index.tolist() == list(range(len(frame)))
    assert frame["price"].dtype == "float64"
    assert frame["price"].min() == 100.0
    assert frame["price"].max() == 10_000_000.0
    assert frame["number"].iloc[0] == "0919659653"


def test_real_file_report_lines(real_data):
    lines = real_data.report.lines()
    text = "\n".join(lines)
    assert "Read 6112 rows" in text
    assert "Kept 6097 numbers; rejected 2 rows." in text
    assert "for example line 104 '06442399654', line 2880 '0798795493'" in text
    assert "median 900" in text
    assert "10,000,000 baht" in text


def test_real_file_sha256_matches_bytes(real_data, real_data_path):
    import hashlib

    assert real_data.sha256 == hashlib.sha256(real_data_path.read_bytes()).hexdigest()


def test_report_to_dict_is_json_ready(real_data):
    import json

    data = json.loads(json.dumps(real_data.report.to_dict()))
    assert data["rejected"]["invalid_number"]["count"] == 2
    assert data["duplicate_price_conflicts"] == ["0814545156"]


def test_rejected_rows_counted_by_reason(tmp_path):
    path = write(
        tmp_path,
        "phone_number,price\n"
        "0812345678,1500\n"
        ",900\n"
        "0812345679,\n"
        "0812345670,abc\n"
        "0812345671,0\n"
        "0812345672,-5\n"
        "12345,100\n"
        "0812345673\n"
        "\n"
        '081-234-5674,"1,500"\n',
    )
    loaded = load_numbers(path)
    counts = {reason: item.count for reason, item in loaded.report.rejected.items()}
    assert counts == {
        "missing_number": 1,
        "missing_price": 2,
        "invalid_price": 1,
        "non_positive_price": 2,
        "invalid_number": 1,
    }
    assert loaded.report.rows_read == 9
    assert loaded.frame["number"].tolist() == ["0812345678", "0812345674"]
    assert loaded.frame["price"].tolist() == [1500.0, 1500.0]


def test_examples_capped_at_three(tmp_path):
    rows = "".join(f"12345{i},100\n" for i in range(5))
    loaded = load_numbers(write(tmp_path, "phone_number,price\n0812345678,10\n" + rows))
    rejected = loaded.report.rejected["invalid_number"]
    assert rejected.count == 5
    assert [line for line, _ in rejected.examples] == [3, 4, 5]


def test_custom_columns_and_extra_columns(tmp_path):
    path = write(tmp_path, "id,Tel,note,Amount\n1,0812345678,x,900\n")
    loaded = load_numbers(path, number_column="tel", price_column="amount")
    assert loaded.frame.to_dict("list") == {"number": ["0812345678"], "price": [900.0]}


def test_header_with_bom_and_spaces(tmp_path):
    path = write(tmp_path, "\ufeff phone_number , price \n0812345678,900\n")
    assert len(load_numbers(path).frame) == 1


def test_semicolon_file_with_delimiter_option(tmp_path):
    path = write(tmp_path, "phone_number;price\n0812345678;900\n")
    assert load_numbers(path, delimiter=";").frame["price"].tolist() == [900.0]


def test_utf16_file(tmp_path):
    path = write(tmp_path, "phone_number,price\r\n0812345678,900\r\n".encode("utf-16"))
    assert load_numbers(path).frame["number"].tolist() == ["0812345678"]


def test_thai_code_page_file(tmp_path):
    text = "phone_number,price,หมายเหตุ\n0812345678,900,เบอร์สวย\n"
    path = write(tmp_path, text.encode("cp874"))
    assert load_numbers(path).frame["price"].tolist() == [900.0]


def test_missing_file(tmp_path):
    path = tmp_path / "absent.csv"
    with pytest.raises(DataFileNotFoundError, match=r"absent\.csv: file not found"):
        load_numbers(path)
    with pytest.raises(FileNotFoundError):
        load_numbers(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        load_numbers(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"\xef\xbb\xbf", "the file is empty"),
        (b"phone_number,price\n", "header line but no data rows"),
        (b"phone_number,price\n\n , \n", "header line but no data rows"),
        (b"phone_number,price\n123,abc\n", "no valid rows"),
        (b"number,cost\n0812345678,900\n", "missing column 'phone_number'"),
        (b"phone_number,cost\n0812345678,900\n", "missing column 'price'"),
        (b"phone_number;price\n0812345678;900\n", "separated by ';'"),
        (b"phone_number\tprice\n0812345678\t900\n", "separated by '\\\\t'"),
        (b"\x00\x01\x02binary\x00data", "binary data"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel .xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Excel .xls"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        (b"\n  <html>\n<head></head></html>", "HTML"),
    ],
)
def test_bad_file_raises_data_error(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=message) as caught:
        load_numbers(path)
    assert str(path) in str(caught.value)


def test_missing_column_lists_header(tmp_path):
    path = write(tmp_path, "number,cost\n0812345678,900\n")
    with pytest.raises(DataError) as caught:
        load_numbers(path)
    assert "['number', 'cost']" in str(caught.value)
    assert "number_column" in str(caught.value)


def test_normalize_number_random_formats():
    rng = random.Random(5)
    separators = [" ", "-", "\u00a0", ".", " - ", ""]
    for _ in range(300):
        number = rng.choice(["06", "08", "09"]) + "".join(rng.choices("0123456789", k=8))
        groups = [number[1:3], number[3:6], number[6:]]
        separator = rng.choice(separators)
        written = rng.choice(
            [
                "0" + separator.join(groups),
                "+66" + rng.choice(["", " "]) + separator.join(groups),
                "66" + separator.join(groups),
                f"({number[:3]}) {number[3:6]}{separator}{number[6:]}",
            ]
        )
        padded = rng.choice(["", " ", "\u00a0"]) + written + rng.choice(["", " ", "\u00a0"])
        assert normalize_number(padded) == number, padded

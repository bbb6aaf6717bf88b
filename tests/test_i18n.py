"""Tests of persistkit_train.i18n: catalogues, language choice and formatting."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import json
import logging
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from persistkit_train import i18n

PACKAGE_DIR = Path(i18n.__file__).parent
LOCALE_DIR = PACKAGE_DIR / "locale"
TRANSLATION_FUNCTIONS = {"_": 1, "ngettext": 2}
THAI_LETTER = re.compile("[\u0e01-\u0e2e]")


@pytest.fixture(autouse=True)
def english_after_test() -> Iterator[None]:
    yield
    i18n.activate("en")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("PERSISTKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def catalogue_path(language: str, suffix: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}{suffix}"


def read_catalogue(language: str) -> Catalog:
    with catalogue_path(language, ".po").open("rb") as stream:
        return read_po(stream, locale=language)


def entries(catalogue: Catalog) -> list[Message]:
    return [message for message in catalogue if message.id]


def field_names(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def sample_arguments(text: str) -> dict[str, object]:
    """Build a value for every placeholder of ``text`` that its format spec accepts."""
    arguments: dict[str, object] = {}
    for _, name, spec, _ in string.Formatter().parse(text):
        if name is None:
            continue
        if spec and spec[-1] in "dnxXob":
            arguments[name] = 7
        elif spec:
            arguments[name] = 1.25
        else:
            arguments[name] = f"<{name}>"
    return arguments


def source_messages() -> tuple[set[str], list[str]]:
    """Collect the literal messages passed to _() and ngettext() in the package source.

    Returns the message ids and a list of calls that break the catalogue rules: an
    f-string, or a literal already formatted before translation.
    """
    messages: set[str] = set()
    problems: list[str] = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            literal_count = TRANSLATION_FUNCTIONS.get(node.func.id)
            if literal_count is None:
                continue
            for argument in node.args[:literal_count]:
                where = f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}"
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    messages.add(argument.value)
                elif isinstance(argument, ast.JoinedStr):
                    problems.append(f"{where}: f-string inside {node.func.id}()")
                elif isinstance(argument, ast.Call) and isinstance(argument.func, ast.Attribute):
                    problems.append(f"{where}: text formatted before {node.func.id}()")
    return messages, problems


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_catalogue_has_no_empty_or_fuzzy_entry(language: str) -> None:
    catalogue = read_catalogue(language)

    untranslated = [
        message.id
        for message in entries(catalogue)
        if not all(message.string if isinstance(message.string, tuple) else (message.string,))
    ]
    fuzzy = [message.id for message in entries(catalogue) if message.fuzzy]

    assert untranslated == [], f"{language}: entries without translation"
    assert fuzzy == [], f"{language}: fuzzy entries are skipped when compiling"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_catalogue_placeholders_match_source(language: str) -> None:
    catalogue = read_catalogue(language)
    plural_forms = catalogue.num_plurals

    mismatches = []
    for message in entries(catalogue):
        if isinstance(message.id, tuple):
            singular, plural = message.id
            for index, form in enumerate(message.string):
                expected = singular if index == 0 and plural_forms > 1 else plural
                if field_names(form) != field_names(expected):
                    mismatches.append((expected, form))
        elif field_names(message.string) != field_names(message.id):
            mismatches.append((message.id, message.string))

    assert mismatches == []


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_entry_renders(language: str) -> None:
    catalogue = read_catalogue(language)
    i18n.activate(language)

    for message in entries(catalogue):
        if isinstance(message.id, tuple):
            for count in (1, 2):
                text = i18n.ngettext(message.id[0], message.id[1], count)
                rendered = text.format(**sample_arguments(text))
                assert rendered.strip(), message.id
        else:
            text = i18n._(message.id)
            assert text == message.string, f"{language}: .mo differs from .po for {message.id!r}"
            rendered = text.format(**sample_arguments(text))
            for name, value in sample_arguments(message.id).items():
                if isinstance(value, str):
                    assert value in rendered, f"{language}: {name} lost in {message.id!r}"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_compiled_catalogue_matches_po(language: str) -> None:
    with catalogue_path(language, ".mo").open("rb") as stream:
        compiled = read_mo(stream)
    source = read_catalogue(language)

    compiled_entries = {message.id: message.string for message in entries(compiled)}
    source_entries = {message.id: message.string for message in entries(source)}

    assert compiled_entries == source_entries, (
        f"{catalogue_path(language, '.mo')} is stale: recompile it with "
        "pybabel compile (see persistkit_train/locale/README.md)"
    )
    assert compiled.plural_forms == source.plural_forms


def test_thai_catalogue_uses_one_plural_form() -> None:
    assert read_catalogue("th").plural_forms == "nplurals=1; plural=0;"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_source_messages_are_in_catalogue(language: str) -> None:
    messages, _ = source_messages()
    catalogue_ids = set()
    for message in entries(read_catalogue(language)):
        catalogue_ids.update(message.id if isinstance(message.id, tuple) else (message.id,))

    missing = sorted(messages - catalogue_ids)

    assert messages, "no _() call found in the package source"
    assert missing == [], f"{language}: extract and translate these messages"


def test_source_translates_literal_text() -> None:
    _, problems = source_messages()

    assert problems == []


def test_thai_translation_differs_from_english() -> None:
    i18n.activate("th")

    assert i18n._("{seconds}s") == "{seconds} วินาที"


def test_lang_option_wins(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("PERSISTKIT_LANG", "th")
    clean_environment.setenv("LANG", "th_TH.UTF-8")

    assert i18n.activate("en") == "en"
    assert i18n.active_language() == "en"


@pytest.mark.parametrize("value", ["th", "TH", "th_TH.UTF-8", "th-TH"])
def test_lang_option_accepts_locale_forms(value: str) -> None:
    assert i18n.activate(value) == "th"


def test_lang_option_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="'de'"):
        i18n.activate("de")


def test_environment_variable_beats_locale(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("PERSISTKIT_LANG", "th")
    clean_environment.setenv("LANG", "en_US.UTF-8")
    assert i18n.activate() == "th"

    clean_environment.setenv("PERSISTKIT_LANG", "en")
    clean_environment.setenv("LANG", "th_TH.UTF-8")
    assert i18n.activate() == "en"


def test_unknown_environment_value_is_ignored(
    clean_environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_environment.setenv("PERSISTKIT_LANG", "de")
    clean_environment.setenv("LANG", "th_TH.UTF-8")

    with caplog.at_level(logging.WARNING, logger="persistkit_train.i18n"):
        language = i18n.activate()

    assert language == "th"
    assert "PERSISTKIT_LANG='de'" in caplog.text


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"LANG": "th_TH.UTF-8"}, "th"),
        ({"LC_ALL": "th_TH.UTF-8"}, "th"),
        ({"LC_MESSAGES": "th_TH"}, "th"),
        ({"LC_ALL": "C.UTF-8", "LANG": "th_TH.UTF-8"}, "en"),
        ({"LC_ALL": "th_TH.UTF-8", "LANG": "en_US.UTF-8"}, "th"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({"LANG": "C"}, "en"),
        ({}, "en"),
    ],
)
def test_locale_chooses_language(
    clean_environment: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        clean_environment.setenv(name, value)

    assert i18n.activate() == expected


def test_use_language_restores_previous() -> None:
    i18n.activate("th")

    with i18n.use_language("en") as language:
        assert language == "en"
        assert i18n._("{seconds}s") == "{seconds}s"

    assert i18n.active_language() == "th"
    assert i18n._("{seconds}s") == "{seconds} วินาที"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (6112, 0, "6,112"),
        (10_000_000, 0, "10,000,000"),
        (-1234.5, 1, "-1,234.5"),
        (0.81234, 3, "0.812"),
        (999.5, 0, "1,000"),
        (float("nan"), 2, "nan"),
    ],
)
def test_format_number(language: str, value: float, digits: int, expected: str) -> None:
    i18n.activate(language)

    assert i18n.format_number(value, digits) == expected


@pytest.mark.parametrize(
    ("language", "value", "expected"),
    [
        ("en", 1_234_567.4, "1,234,567 baht"),
        ("th", 1_234_567.4, "1,234,567 บาท"),
        ("en", 100, "100 baht"),
        ("th", 10_000_000, "10,000,000 บาท"),
    ],
)
def test_format_baht(language: str, value: float, expected: str) -> None:
    i18n.activate(language)

    assert i18n.format_baht(value) == expected


@pytest.mark.parametrize(
    ("language", "seconds", "expected"),
    [
        ("en", 5, "5s"),
        ("en", 200, "3m 20s"),
        ("en", 3905, "1h 05m"),
        ("en", 30_600, "8h 30m"),
        ("en", -12, "0s"),
        ("th", 5, "5 วินาที"),
        ("th", 200, "3 นาที 20 วินาที"),
        ("th", 3905, "1 ชั่วโมง 5 นาที"),
        ("th", 30_600, "8 ชั่วโมง 30 นาที"),
        ("th", 59.6, "1 นาที 0 วินาที"),
        ("en", float("nan"), "unknown"),
        ("th", float("inf"), "ไม่ทราบ"),
    ],
)
def test_format_duration(language: str, seconds: float, expected: str) -> None:
    i18n.activate(language)

    assert i18n.format_duration(seconds) == expected


def test_thai_notebook_structure() -> None:
    # Checks the nbformat 4.5 fields by hand because nbformat is not a test dependency.
    path = PACKAGE_DIR.parent / "examples" / "kaggle_resumable_training.th.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))

    assert notebook["nbformat"] == 4
    assert notebook["nbformat_minor"] >= 5
    assert len({cell["id"] for cell in notebook["cells"]}) == len(notebook["cells"])
    for cell in notebook["cells"]:
        assert cell["cell_type"] in {"markdown", "code"}
        assert all(isinstance(line, str) for line in cell["source"])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == []
            assert cell["execution_count"] is None
        else:
            assert THAI_LETTER.search("".join(cell["source"])), cell["id"]


def test_package_data_ships_catalogues_and_font() -> None:
    # A wheel without these files would silently fall back to English and to
    # matplotlib fonts without Thai glyphs.
    config = configparser.ConfigParser()
    config.read(PACKAGE_DIR.parent / "setup.cfg", encoding="utf-8")
    patterns = config["options.package_data"]["persistkit_train"].split()
    required = [
        *LOCALE_DIR.glob("*/LC_MESSAGES/*.mo"),
        PACKAGE_DIR / "fonts" / "NotoSansThai-Regular.ttf",
        PACKAGE_DIR / "fonts" / "OFL.txt",
    ]

    unshipped = [
        str(path.relative_to(PACKAGE_DIR))
        for path in required
        if not any(fnmatch.fnmatch(path.relative_to(PACKAGE_DIR).as_posix(), p) for p in patterns)
    ]

    assert len(required) == 4
    assert unshipped == [], "add these to [options.package_data] persistkit_train in setup.cfg"

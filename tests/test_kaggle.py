"""Tests of persistkit.kaggle.

The real ``kaggle_secrets`` client only runs inside a Kaggle notebook, so these tests
install a stand-in module under that name that serves secrets from a dict.
"""

from __future__ import annotations

import logging
import sys
import types

import pytest

from persistkit import kaggle

STAND_IN_SECRETS = {"HF_TOKEN": "hf_stand_in_secret", "AWS_SECRET_ACCESS_KEY": "aws-stand-in"}


class StandInSecretsClient:
    """Replaces kaggle_secrets.UserSecretsClient; raises like it for unknown labels."""

    def get_secret(self, label: str) -> str:
        if label not in STAND_IN_SECRETS:
            raise RuntimeError(f"Unexpected response from the service for {label}")
        return STAND_IN_SECRETS[label]


@pytest.fixture
def on_kaggle(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("kaggle_secrets")
    module.UserSecretsClient = StandInSecretsClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kaggle_secrets", module)
    monkeypatch.setenv(kaggle.KAGGLE_ENVIRONMENT_VARIABLE, "Interactive")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)


def test_outside_kaggle_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kaggle.KAGGLE_ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert kaggle.load_kaggle_secrets("HF_TOKEN", required=True) == []
    assert "HF_TOKEN" not in kaggle.os.environ


@pytest.mark.usefixtures("on_kaggle")
def test_secrets_copied_to_environment(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="persistkit"):
        loaded = kaggle.load_kaggle_secrets("HF_TOKEN", "AWS_SECRET_ACCESS_KEY")
    assert loaded == ["HF_TOKEN", "AWS_SECRET_ACCESS_KEY"]
    assert kaggle.os.environ["HF_TOKEN"] == "hf_stand_in_secret"
    assert "hf_stand_in_secret" not in caplog.text
    assert "aws-stand-in" not in caplog.text


@pytest.mark.usefixtures("on_kaggle")
def test_existing_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "from-shell")
    assert kaggle.load_kaggle_secrets("HF_TOKEN") == []
    assert kaggle.os.environ["HF_TOKEN"] == "from-shell"
    assert kaggle.load_kaggle_secrets("HF_TOKEN", overwrite=True) == ["HF_TOKEN"]
    assert kaggle.os.environ["HF_TOKEN"] == "hf_stand_in_secret"


@pytest.mark.usefixtures("on_kaggle")
def test_missing_secret_skipped_or_raised() -> None:
    assert kaggle.load_kaggle_secrets("GCS_KEY") == []
    with pytest.raises(KeyError, match="GCS_KEY"):
        kaggle.load_kaggle_secrets("GCS_KEY", required=True)

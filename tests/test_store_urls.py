"""Credentials never reach store URLs, logs, manifests or error messages."""

from __future__ import annotations

import logging
from typing import Any

import fsspec
import pytest

from persistkit import CheckpointStore
from persistkit._urls import redact_text, redact_url
from persistkit.errors import FlushError, StorageError
from persistkit.testing.faults import FaultInjectingFileSystem, FaultPlan

SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://AKIAKEY:" + SECRET + "@bucket/prefix", "s3://REDACTED@bucket/prefix"),
        ("https://user@host:8080/path", "https://REDACTED@host:8080/path"),
        (
            "https://host/obj?X-Amz-Signature=" + SECRET + "&part=2",
            "https://host/obj?X-Amz-Signature=REDACTED&part=2",
        ),
        ("https://host/o?token=" + SECRET, "https://host/o?token=REDACTED"),
        ("https://host/o?sig=" + SECRET + "&sv=1", "https://host/o?sig=REDACTED&sv=1"),
        ("gs://bucket/p?access_token=" + SECRET, "gs://bucket/p?access_token=REDACTED"),
        ("hf://datasets/user/repo/prefix", "hf://datasets/user/repo/prefix"),
        ("/plain/local/path", "/plain/local/path"),
        ("memory://run", "memory://run"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert SECRET not in redact_url(url)


def test_redact_text_finds_urls_in_messages() -> None:
    message = f"403 for https://k:{SECRET}@host/a?Signature={SECRET} while reading"
    redacted = redact_text(message)
    assert SECRET not in redacted
    assert redacted.startswith("403 for https://REDACTED@host/a?Signature=REDACTED")
    assert redacted.endswith(" while reading")


def test_store_url_has_no_credentials() -> None:
    store = CheckpointStore(f"memory://user:{SECRET}@redaction-test", background=False)
    assert SECRET not in store.url
    assert SECRET not in repr(store)
    store.close()


class LeakyFileSystem(FaultInjectingFileSystem):
    """Fails every payload write with a provider message that contains a signed URL."""

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if "_step-" in path:
            raise ConnectionError(f"PUT https://bucket.example/o?X-Amz-Signature={SECRET} reset")
        super().pipe_file(path, value, mode=mode, **kwargs)


def test_errors_and_logs_carry_no_secret(
    persistkit_store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = fsspec.core.url_to_fs(persistkit_store_url)[1]
    leaky = LeakyFileSystem(fsspec.filesystem("memory"), FaultPlan())
    sync = CheckpointStore(root, filesystem=leaky, background=False)
    background = CheckpointStore(root + "-bg", filesystem=leaky, max_attempts=2, retry_delay=0.01)

    with caplog.at_level(logging.DEBUG, logger="persistkit"):
        with pytest.raises(StorageError) as sync_error:
            sync.save("k", {"a.bin": b"a"}, step=1)
        background.save("k", {"a.bin": b"a"}, step=1)
        with pytest.raises(FlushError) as flush_error:
            background.flush(timeout=10)

    assert "REDACTED" in str(sync_error.value)
    assert SECRET not in str(sync_error.value)
    assert SECRET not in str(flush_error.value)
    assert caplog.records
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    sync.close()
    background.close()


def test_manifest_has_no_storage_options(persistkit_store_url: str) -> None:
    store = CheckpointStore(
        persistkit_store_url, storage_options={"secret_token": SECRET}, background=False
    )
    store.save("k", {"a.bin": b"a"}, step=1, metadata={"note": "plain"})
    manifest = store.load("k").manifest.encode().decode()
    assert SECRET not in manifest
    assert persistkit_store_url.split("://")[1] not in manifest
    store.close()

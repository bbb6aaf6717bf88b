"""Removal of credentials from URLs and from text that may contain URLs.

Every URL that persistkit logs, stores in a manifest or puts in an exception message
goes through :func:`redact_url` first. It removes user info (``user:password@``) and
query parameters whose names mark a credential: tokens, signatures, keys, secrets,
passwords and the presigned-URL parameters of S3 and GCS.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_text", "redact_url"]

REDACTED = "REDACTED"

# Lower-cased query parameter names, or fragments of them, that carry a credential.
_SECRET_NAME_PARTS = (
    "token",
    "signature",
    "sig",
    "key",
    "secret",
    "password",
    "passwd",
    "credential",
    "auth",
    "session",
    "x-amz-",
    "x-goog-",
)

# A scheme followed by "://" and every character up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def redact_url(url: str) -> str:
    """Return ``url`` without user info and without query parameters that carry credentials.

    The scheme, host, port, path and the other query parameters are kept, so the result
    still identifies the store. A value that does not parse as a URL is returned as is
    when it contains no ``@``. Otherwise everything before its last ``@`` is replaced.

    Args:
        url: A URL or a local path.

    Returns:
        The URL with each credential replaced by ``REDACTED`` or removed.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url if "@" not in url else REDACTED + "@" + url.rsplit("@", 1)[1]
    if not parts.scheme or "://" not in url:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(name, REDACTED if _is_secret_name(name) else value) for name, value in pairs],
            safe=REDACTED,
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Return ``text`` with every URL in it passed through :func:`redact_url`.

    Used on messages of provider exceptions before they are chained into persistkit's
    own messages or logged.
    """
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)

"""Options of ``hf://`` stores: the repository a URL names and the storage options.

URLs name a repository and an optional folder inside it::

    hf://datasets/<namespace>/<repo>[/<folder>...]
    hf://spaces/<namespace>/<repo>[/<folder>...]
    hf://<namespace>/<repo>[/<folder>...]            a model repository
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from persistkit._hub_budget import CommitBudget
from persistkit._urls import redact_url

__all__ = ["HubLocation", "HubOptions", "parse_hub_url"]

_REPO_TYPE_PREFIXES = {"datasets": "dataset", "spaces": "space", "models": "model"}


@dataclass(frozen=True)
class HubLocation:
    """A folder inside a Hub repository, parsed from an ``hf://`` URL."""

    repo_type: str
    repo_id: str
    folder: str

    def path_in_repo(self, path: str) -> str:
        return "/".join(part for part in (self.folder, path.strip("/")) if part)


def parse_hub_url(url: str) -> HubLocation:
    """Parse ``hf://[datasets/|spaces/|models/]<namespace>/<repo>[/<folder>]``.

    Raises:
        ValueError: The URL has no namespace and repository name, or names a revision.
    """
    if not url.startswith("hf://"):
        raise ValueError(f"expected an hf:// URL, got {redact_url(url)!r}")
    parts = [part for part in url[len("hf://") :].split("/") if part]
    repo_type = "model"
    if parts and parts[0] in _REPO_TYPE_PREFIXES:
        repo_type = _REPO_TYPE_PREFIXES[parts.pop(0)]
    if len(parts) < 2:
        raise ValueError(
            f"invalid Hub URL {redact_url(url)!r}: expected "
            "hf://datasets/<namespace>/<repo>/<folder> or hf://<namespace>/<repo>/<folder>"
        )
    if "@" in parts[1]:
        raise ValueError(
            f"invalid Hub URL {redact_url(url)!r}: revisions are not supported, "
            "checkpoints are always committed to the main branch; remove '@...'"
        )
    return HubLocation(repo_type, f"{parts[0]}/{parts[1]}", "/".join(parts[2:]))


@dataclass(frozen=True)
class HubOptions:
    """Storage options of an ``hf://`` store.

    Attributes:
        endpoint: Hub base URL; None uses huggingface_hub's default (``HF_ENDPOINT``).
        max_commits: Commits per ``commit_window_s`` that persistkit allows itself per
            repository. Users report 429 responses beyond about 128 commits per hour,
            so the default stays below that and leaves room for other tools.
        commit_window_s: Length of the budget window in seconds.
        private: Visibility of a repository that persistkit creates.
        max_wait_s: Maximum single wait for the budget or a 429 retry hint, in seconds.
        max_attempts: Commit attempts after 429, 412 or server errors before giving up.
    """

    endpoint: str | None = None
    max_commits: int = 100
    commit_window_s: float = 3600.0
    private: bool = True
    max_wait_s: float = 3600.0
    max_attempts: int = 20

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> HubOptions:
        """Build options from ``storage_options``, rejecting unknown keys and tokens.

        Raises:
            ValueError: An option is unknown, is a token, or has an invalid value.
        """
        options = dict(options or {})
        if "token" in options:
            raise ValueError(
                "storage_options for hf:// do not take 'token', because options may be "
                "logged; set the HF_TOKEN environment variable or run 'hf auth login'"
            )
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown storage_options for hf://: {unknown}; expected some of {sorted(known)}"
            )
        return cls(**options)

    def __post_init__(self) -> None:
        CommitBudget(self.max_commits, self.commit_window_s)  # validates both
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        if not self.max_wait_s > 0:
            raise ValueError(f"max_wait_s must be > 0 seconds, got {self.max_wait_s!r}")

    @property
    def budget(self) -> CommitBudget:
        return CommitBudget(self.max_commits, self.commit_window_s)

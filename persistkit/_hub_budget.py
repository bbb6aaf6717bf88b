"""Commit budget of a Hugging Face Hub repository, kept in the repository itself.

The Hub limits how many commits a repository accepts per hour and responds with 429 beyond
the limit (users report 429 responses beyond about 128 an hour). Every
commit persistkit makes also rewrites a small ledger file at the repository root, so the
ledger travels with the commit chain: a restarted process, or a second process writing
other keys of the same repository, reads it from the head commit and sees every commit
persistkit made in the current window::

    .persistkit/commit-budget.json
    {"format": "persistkit-hub-commit-budget", "version": 1,
     "commits": [1767225600.25, 1767225631.9, ...]}   # Unix times, oldest first

Commits made by other tools are not in the ledger; the 429 back-off covers them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

__all__ = ["BUDGET_LEDGER_PATH", "CommitBudget", "CommitLedger"]

logger = logging.getLogger(__name__)

BUDGET_LEDGER_PATH = ".persistkit/commit-budget.json"
_LEDGER_FORMAT = "persistkit-hub-commit-budget"
_LEDGER_VERSION = 1


@dataclass(frozen=True)
class CommitBudget:
    """How many commits persistkit makes to one repository per sliding window.

    Attributes:
        max_commits: Commits allowed per window.
        window_s: Length of the window in seconds; 3600 matches the Hub's hourly limit.
    """

    max_commits: int = 100
    window_s: float = 3600.0

    def __post_init__(self) -> None:
        if isinstance(self.max_commits, bool) or not isinstance(self.max_commits, int):
            raise TypeError(f"max_commits must be an int, got {self.max_commits!r}")
        if self.max_commits < 1:
            raise ValueError(f"max_commits must be >= 1, got {self.max_commits!r}")
        if not self.window_s > 0:
            raise ValueError(f"window_s must be > 0 seconds, got {self.window_s!r}")


@dataclass(frozen=True)
class CommitLedger:
    """Times of the commits persistkit made to a repository, oldest first."""

    commits: tuple[float, ...] = ()

    @classmethod
    def parse(cls, data: bytes | None) -> CommitLedger:
        """Read a ledger file; a missing or unreadable one counts as empty, with a warning."""
        if data is None:
            return cls()
        try:
            document = json.loads(data)
            if document.get("format") != _LEDGER_FORMAT:
                raise ValueError(f"format is {document.get('format')!r}")
            return cls(tuple(sorted(float(moment) for moment in document["commits"])))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            logger.warning(
                "Ignoring unreadable commit budget ledger %s (%s); counting from zero",
                BUDGET_LEDGER_PATH,
                error,
            )
            return cls()

    def serialize(self) -> bytes:
        document = {"format": _LEDGER_FORMAT, "version": _LEDGER_VERSION, "commits": list(self.commits)}
        return json.dumps(document, separators=(",", ":")).encode()

    def within(self, budget: CommitBudget, now: float) -> CommitLedger:
        """Return the ledger without the commits older than the budget's window."""
        return CommitLedger(tuple(moment for moment in self.commits if moment > now - budget.window_s))

    def wait_s(self, budget: CommitBudget, now: float) -> float:
        """Return how many seconds to wait before the next commit fits the budget."""
        recent = self.within(budget, now).commits
        if len(recent) < budget.max_commits:
            return 0.0
        # The window frees a slot when the oldest of the last max_commits commits leaves it.
        return max(0.0, recent[-budget.max_commits] + budget.window_s - now)

    def recorded(self, budget: CommitBudget, moment: float) -> CommitLedger:
        """Return the ledger with a commit at ``moment`` added and expired entries dropped."""
        return CommitLedger((*self.within(budget, moment).commits, moment))

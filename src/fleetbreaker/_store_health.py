"""How this process's store has been answering: its smoothed round trip, and after an error a
growing backoff during which the store is left alone.

A dead store so costs each process one timeout per backoff period, not one per call. Times are
monotonic seconds, passed in.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "StoreHealth"]

BACKOFF_MIN: Final = 0.5
BACKOFF_MAX: Final = 15.0
"""The backoff after a store error starts at ``BACKOFF_MIN`` seconds and doubles with each error
in a row, up to ``BACKOFF_MAX``; an answer resets it."""
REREAD_RTTS: Final = 3
"""A view older than this many round trips is re-read before a transition is written."""


class StoreHealth:
    """The round trip and backoff of one breaker's store, in this process."""

    __slots__ = ("backoff", "retry_at", "rtt")

    def __init__(self) -> None:
        self.rtt = 0.0  # smoothed round trip, seconds
        self.forget_errors()

    def forget_errors(self) -> None:
        """No backoff (a fresh process: a forked child starts here)."""
        self.backoff = 0.0
        self.retry_at = float("-inf")  # the store is left alone until then

    def resting(self, now: float) -> bool:
        """Whether the store is being left alone at ``now``."""
        return now < self.retry_at

    def answered(self, rtt: float) -> None:
        """The store answered in ``rtt`` seconds: no backoff, and a new smoothed round trip."""
        self.backoff = 0.0
        self.rtt = rtt if self.rtt == 0.0 else 0.8 * self.rtt + 0.2 * rtt

    def failed(self, now: float) -> float:
        """The store failed at ``now``: back off (longer after each error in a row); the
        seconds it is left alone."""
        self.backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self.backoff * 2))
        self.retry_at = now + self.backoff
        return self.backoff

    def outdated(self, age: float) -> bool:
        """Whether a view ``age`` seconds old should be re-read before writing over it."""
        return age > REREAD_RTTS * self.rtt

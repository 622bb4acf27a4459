"""The bounds every configured and stored value keeps.

They are chosen so that any record that reads as valid can be written back by every store, and
so that any value a record or a configuration holds can be formatted: a record read from a store
is untrusted input, and the breaker must never build a record it cannot write.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_COUNT",
    "MAX_EPOCH",
    "MAX_HISTORY",
    "MAX_HISTORY_TEXT",
    "MAX_PAYLOAD_BYTES",
    "MAX_PERIOD",
    "MAX_RECORD_TTL",
    "MAX_REPORTS",
    "MAX_TEXT",
    "MAX_TIME",
    "MAX_WALL",
    "sane_wall",
]

MAX_TIME: Final = 253_402_300_799.0
"""Latest stored time (9999-12-31T23:59:59Z): ``datetime`` formats it, every store keeps it."""

MAX_EPOCH: Final = 2**53 - 1
"""Epochs are valid in ``[0, MAX_EPOCH)`` so that the next write's ``epoch + 1`` is valid too,
and exact as a JSON number, a Lua number, an SQLite integer and a DynamoDB number. A stored epoch
outside the range reads as someone else's value (absent), so a new record replaces it."""

MAX_COUNT: Final = 2**31 - 1
"""Largest success or failure count a record holds."""

MAX_TEXT: Final = 256
"""Longest text field (a process id such as ``host:pid:token``) a record holds, in characters."""

MAX_REPORTS: Final = 32
"""Most fleet reports a record holds (``Config.fleet_minimum_reporters`` is at most this): with
plain ASCII owners of ``MAX_TEXT`` characters they stay well inside ``MAX_PAYLOAD_BYTES``; owners
JSON escapes can outgrow it, and a report then drops the oldest (``_quorum.report``)."""

MAX_HISTORY: Final = 20
"""Most history entries a record keeps (the last ones). Their texts are cut to
``MAX_HISTORY_TEXT`` characters, and the oldest go first when a record would outgrow
``MAX_PAYLOAD_BYTES`` (``_history.fitted``)."""

MAX_HISTORY_TEXT: Final = 160
"""Longest ``by`` or ``reason`` a history entry keeps, in characters (the override itself keeps
the whole reason)."""

MAX_PAYLOAD_BYTES: Final = 16 * 1024
"""Largest payload read as a record; a larger one is unreadable (and never parsed)."""

MAX_PERIOD: Final = 365 * 24 * 3600.0
"""Longest configured period (recovery, probe timeout, cache age, refresh), in seconds."""

MAX_RECORD_TTL: Final = 10 * MAX_PERIOD
"""Longest ``record_ttl``: Redis ``PX``, DynamoDB numbers and SQLite integers all keep it."""

MAX_WALL: Final = MAX_TIME - MAX_RECORD_TTL - 4 * MAX_PERIOD
"""Latest wall-clock reading a writer uses: a time it stores plus any period stays in range."""


def sane_wall(reading: float) -> float:
    """A wall-clock reading forced into ``[0, MAX_WALL]`` (a broken host's clock can say
    anything, even NaN); used only for the times a record stores for display and bounds."""
    if reading != reading:  # NaN  # noqa: PLR0124
        return 0.0
    return min(max(reading, 0.0), MAX_WALL)

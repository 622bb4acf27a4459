"""A circuit's history: the last ``MAX_HISTORY`` persisted changes, kept in its record.

Every persisted state change (a trip, a failed or a closing probe), override, clear and reset
appends one entry; probe-slot bookkeeping (a claim, a release, a probe success short of
``success_threshold``) and fleet reports do not. Pure: entries in, entries out.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetbreaker._limits import MAX_HISTORY, MAX_HISTORY_TEXT

__all__ = ["HistoryEntry", "appended"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One persisted change of a circuit: a state change, an override, a clear or a reset.

    ``at`` is the writer's wall-clock time (for display: hosts' clocks disagree, so entries by
    different writers may be out of step by their skew; the order of the list is the order of
    the writes). ``from_state`` and ``to_state`` are ``"closed"``, ``"open"``, ``"half_open"``,
    ``"forced_open"`` or ``"forced_closed"``; ``by`` is the process (``host:pid:token``) or the
    operator that wrote it; ``reason`` the rule that fired, the probe's outcome, or the
    operator's reason.
    """

    at: float
    from_state: str
    to_state: str
    by: str
    reason: str


def appended(
    history: tuple[HistoryEntry, ...],
    *,
    at: float,
    from_state: str,
    to_state: str,
    by: str | None,
    reason: str | None,
) -> tuple[HistoryEntry, ...]:
    """``history`` with one more entry, the oldest dropped beyond ``MAX_HISTORY``; texts are
    cut to ``MAX_HISTORY_TEXT`` characters (the override keeps its whole reason)."""
    entry = HistoryEntry(
        at=at,
        from_state=from_state,
        to_state=to_state,
        by=(by or "unknown")[:MAX_HISTORY_TEXT],
        reason=(reason or "")[:MAX_HISTORY_TEXT],
    )
    return (*history[-(MAX_HISTORY - 1) :], entry)

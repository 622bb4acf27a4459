"""What both metrics backends read: every live breaker of the process, as plain samples.

No third-party import here. The backends call :func:`samples` when they are scraped or
collected, and :func:`count_calls` once, to switch counting on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from fleetbreaker import _tally
from fleetbreaker._admission import COLD
from fleetbreaker._breaker import CircuitBreaker
from fleetbreaker._protocol import FORCED_CLOSED, FORCED_OPEN, CircuitState
from fleetbreaker._tally import Counts
from fleetbreaker._windows import Rates

__all__ = ["OVERRIDES", "STATES", "Sample", "count_calls", "samples"]

logger = logging.getLogger("fleetbreaker")

STATES = tuple(CircuitState)
"""Every state: the state gauge reports each one, 1 for the current state and 0 for the others."""
OVERRIDES = (f"forced_{FORCED_OPEN}", f"forced_{FORCED_CLOSED}")
"""Every kind of operator override, as the logs name them: the override gauge reports each."""

_switching = threading.Lock()


@dataclass(frozen=True, slots=True)
class Sample:
    """One circuit as this process sees it now: its state in the local view, the operator
    override in force in it (``forced_open``, ``forced_closed`` or ``None``), its counts, and
    the rates of this process's window (``None`` without a rate rule)."""

    name: str
    state: CircuitState
    override: str | None
    counts: Counts
    rates: Rates | None


def count_calls(*, on: bool) -> None:
    """Switch counting on (or off) for every breaker of the process, existing ones included."""
    with _switching:
        _tally.SWITCH.on = on
        for breaker in _tally.tracked():
            _renew_view(breaker)


def _renew_view(breaker: CircuitBreaker) -> None:
    # A view routes calls to the counting hot path or not as the switch stood when it was made
    # (View.tally_until): the same view made again, under the lock every view swap takes, routes
    # as the switch stands now. The cold view is left alone: it admits no call on the hot path
    # either way, and _refresh tells it apart by identity.
    lock = getattr(breaker, "_lock", None)
    if lock is None:
        return  # a breaker still being built: its first view is made with the switch as it is
    with lock:
        view = breaker._view
        if view is not COLD:
            breaker._view = replace(view)


def samples() -> list[Sample]:
    """Every live breaker, one sample per circuit name (the counts of two breakers of one name
    summed; the state and rates of the first)."""
    by_name: dict[str, Sample] = {}
    for breaker in _tally.tracked():
        try:
            sample = _sample(breaker)
        except Exception:
            # Never fail a scrape for one breaker (one still being built, say).
            logger.exception("circuit %r: reading its metrics failed", breaker.name)
            continue
        first = by_name.get(sample.name)
        if first is None:
            by_name[sample.name] = sample
        else:
            by_name[sample.name] = replace(first, counts=first.counts.plus(sample.counts))
    return [by_name[name] for name in sorted(by_name)]


def _sample(breaker: CircuitBreaker) -> Sample:
    counts = breaker._tally.read()
    state = breaker.state
    view = breaker._view
    override = None
    if view.forced is not None and breaker._mono() < view.forced_until:
        override = f"forced_{view.forced}"
    rates = None
    if breaker._rules.window is not None:
        with breaker._lock:  # the window is read under the breaker's lock (see _rules)
            rates = breaker._rules.rates(breaker._mono() + breaker._wall_offset)
    return Sample(breaker.name, state, override, counts, rates)

"""What a call was admitted with: the local view it routed on, and its ticket."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fleetbreaker import _overrides as overrides
from fleetbreaker import _tally
from fleetbreaker._protocol import (
    ABSENT,
    FORCED_OPEN,
    CircuitState,
    Record,
    claim_period,
    open_period,
)

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = [
    "COLD",
    "FAILURE",
    "NO_RESULT",
    "RELEASE",
    "SUCCESS",
    "Kind",
    "Ticket",
    "View",
    "make_view",
    "outcome",
]


@dataclass(frozen=True, slots=True)
class View:
    """This process's cached copy of the record, and until when (monotonic) it routes calls.

    ``local`` marks a decision this process could not persist (store trouble): it protects the
    downstream from this process until the record itself says otherwise. ``seen_at`` is when
    this process first saw ``record`` (monotonic): the record's periods run from then.
    """

    record: Record
    read_at: float
    fresh_until: float
    closed: bool
    local: bool = False
    absent: bool = False
    seen_at: float = float("-inf")
    held_until: float = float("-inf")
    """Until when (monotonic) this process refuses calls on its own although the record is
    closed: its rules fired, and the fleet's quorum has not opened the circuit (yet)."""
    counting: bool = False
    """This process has failures counted in the episode, so a success has work to do."""
    refuse_until: float = float("-inf")
    """Until when (monotonic) every call is certainly refused on this view: an open period, a
    held probe claim, this process's hold or an override. Lets a refusal skip routing."""
    forced: str | None = None
    """The kind of operator override in force on this view (``"open"``/``"closed"``), if any."""
    forced_until: float = float("-inf")
    """Until when (monotonic) that override is in force, as this process measures it."""
    hot_until: float = field(init=False)
    """Until when a call may take the hot path (a bare call, nothing recorded): while the view
    is closed and fresh, and no failure waits for a success to reset it. One comparison."""

    closed_until: float = field(init=False)
    """``fresh_until`` while the view is closed, else never: one comparison admits a recorded
    call (a rate rule records every call, so a counted failure does not matter there)."""

    tally_until: float = field(init=False)
    """While metrics count calls (``_tally.SWITCH``), what ``hot_until`` would be; ``hot_until``
    is then never, so a healthy call takes the hot path that counts it. Else never."""

    def __post_init__(self) -> None:
        closed_until = self.fresh_until if self.closed else float("-inf")
        object.__setattr__(self, "closed_until", closed_until)
        object.__setattr__(self, "hot_until", float("-inf") if self.counting else closed_until)
        # Metrics (_tally): read here, so every view made while they are on routes to the
        # counting hot path, and the hot path with metrics off pays nothing for them.
        tallied = _tally.SWITCH.on
        object.__setattr__(self, "tally_until", self.hot_until if tallied else float("-inf"))
        if tallied:
            object.__setattr__(self, "hot_until", float("-inf"))


COLD = View(ABSENT, float("-inf"), float("-inf"), closed=True, absent=True)


def make_view(
    record: Record,
    now: float,
    config: Config,
    *,
    local: bool,
    absent: bool,
    seen_at: float,
    extra: float = 0.0,
    held_until: float = float("-inf"),
    counting: bool = False,
    wall: float = float("-inf"),
) -> View:
    """The view of ``record`` read at monotonic ``now`` (first seen at ``seen_at``), fresh
    until the record could change; ``extra`` seconds longer while the store is in backoff.

    A closed record under a hold (``now < held_until``) makes a view that is not closed (the
    hot path refuses it) and goes stale when the hold ends. An operator's override in force
    (measured with the wall clock reading ``wall``: ``_overrides``) decides alone, and its view
    goes stale when it ends. In shadow mode no view refuses by itself (``refuse_until``)."""
    max_age = config.local_cache_max_age + extra
    if record.override is not None:
        left = overrides.remaining(record, elapsed=now - seen_at, now=wall)
        if left > 0.0:
            base = View(record, now, now, closed=True, local=local, absent=absent, seen_at=seen_at)
            return _forced_view(base, config, fresh_for=max_age, left=left, counting=counting)
    state = record.state
    if state is CircuitState.CLOSED:
        ttl = max_age
    else:
        elapsed = now - seen_at
        # half_open_refresh: the fleet resumes within it of a close, not within a whole cache
        # period.
        ttl = min(max_age, config.half_open_refresh + extra)
        # Past its open period an open view is re-read like a half-open one, even while the
        # probe is reserved for another process: the fleet must learn of a close soon.
        if state is CircuitState.OPEN:
            remaining = open_period(record, config) - elapsed
            if remaining > 0:
                ttl = min(max_age, remaining)
        elif record.probe_owner is not None:
            remaining = claim_period(record, config) - elapsed
            if remaining > 0:
                ttl = min(ttl, remaining)
    closed = state is CircuitState.CLOSED
    refuse_until = float("-inf")
    if config.shadow:
        pass  # a shadow breaker never refuses: routing decides what it would have done
    elif state is CircuitState.OPEN:
        refuse_until = seen_at + open_period(record, config)
    elif record.probe_owner is not None:
        refuse_until = seen_at + claim_period(record, config)
    if closed and now < held_until:
        fresh_until = min(now + ttl, held_until)
        return View(
            record,
            now,
            fresh_until,
            closed=False,
            local=local,
            absent=absent,
            seen_at=seen_at,
            held_until=held_until,
            refuse_until=float("-inf") if config.shadow else held_until,
        )
    return View(
        record,
        now,
        now + ttl,
        closed,
        local,
        absent,
        seen_at,
        counting=counting,
        refuse_until=refuse_until,
    )


def _forced_view(
    base: View, config: Config, *, fresh_for: float, left: float, counting: bool
) -> View:
    """``base`` (read at ``base.read_at``) under its record's override, ``left`` seconds more:
    forced open refuses every call, forced closed admits every call (and records it: nothing
    trips); the view goes stale when the override ends."""
    now = base.read_at
    end = now + left
    override = base.record.override
    assert override is not None
    if override.kind == FORCED_OPEN:
        return replace(
            base,
            fresh_until=min(now + fresh_for, end),
            closed=False,
            refuse_until=float("-inf") if config.shadow else end,
            forced=override.kind,
            forced_until=end,
        )
    return replace(
        base,
        fresh_until=min(now + fresh_for, end),
        counting=counting,
        forced=override.kind,
        forced_until=end,
    )


class Kind:
    ADMIT = 0
    REJECT = 1
    PROBE = 2


@dataclass(frozen=True, slots=True)
class Ticket:
    """The admission of one call. For a probe, ``record`` is the claim it wrote (its token)."""

    kind: int
    view: View
    record: Record | None = None
    pid: int = 0


SUCCESS, FAILURE, RELEASE = "success", "failure", "release"

NO_RESULT: object = object()
"""The outcome of a ``guard()`` block: it returns no value for ``record_result`` to judge."""


def outcome(config: Config, exc: BaseException | None) -> str:
    """How a probe or call ended: success, a counted failure, or a release (not counted)."""
    if exc is None:
        return SUCCESS
    return FAILURE if config.counts(exc) else RELEASE

"""Operator overrides of a circuit, fleet-wide, kept in its record. Pure: record in, record out.

An override is a field of the shared record, written by compare-and-set like every
transition, so it reaches every process with its next read (within ``local_cache_max_age``)
and a stale writer can never undo a newer one. The state machine underneath keeps its own
state (its periods keep running) and resumes when the override ends or is cleared.

**Time.** An override's period is ``until - updated_at``, like every period of a record, and
ends at most when the record itself may be forgotten (``expires_at``). A reader measures it
from when it first saw the record (``elapsed``, its monotonic clock). A process that has only
just started, though, would then extend the override by however long it ran before the
process started: a fleet of short-lived processes (Lambda environments) would never see a
15-minute override end. So, as for fleet reports (``_quorum``), the reader's wall clock may
*age* the record (``now - updated_at``), never make it younger, and only while that age is
plausible: no more than the record's lifetime, since a store forgets a record older than that.
A host whose clock runs ``s`` seconds ahead of the writer's ends an override up to ``s``
seconds early on its own; a clock further off than the record's lifetime is not consulted at
all.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from fleetbreaker._history import appended
from fleetbreaker._limits import MAX_PAYLOAD_BYTES, MAX_TIME
from fleetbreaker._protocol import FORCED_CLOSED, FORCED_OPEN, CircuitState, Override, Record
from fleetbreaker.stores.base import encode_payload

__all__ = [
    "FORCED_STATES",
    "active",
    "carry",
    "cleared",
    "fitted",
    "forced",
    "remaining",
    "reset",
    "shown_state",
]

FORCED_STATES: Final = {FORCED_OPEN: "forced_open", FORCED_CLOSED: "forced_closed"}
"""How each kind of override shows in a history entry."""


def _age(record: Record, *, elapsed: float, now: float) -> float:
    """How old ``record`` is for its override (module docstring): the reader's own measure,
    or its wall clock's when that is plausible and older."""
    age = max(elapsed, 0.0)
    wall_age = now - record.updated_at
    if 0.0 <= wall_age <= record.expires_at - record.updated_at:
        age = max(age, wall_age)
    return age


def remaining(record: Record, *, elapsed: float, now: float) -> float:
    """Seconds left of ``record``'s override (0 if none) for a reader that first saw the
    record ``elapsed`` seconds ago and whose wall clock reads ``now``."""
    override = record.override
    if override is None:
        return 0.0
    written = record.updated_at
    period = min(override.until - written, record.expires_at - written)
    return max(period - _age(record, elapsed=elapsed, now=now), 0.0)


def active(record: Record, *, elapsed: float, now: float) -> Override | None:
    """``record``'s override while it lasts for this reader, else ``None``."""
    if record.override is None or remaining(record, elapsed=elapsed, now=now) <= 0.0:
        return None
    return record.override


def shown_state(record: Record, *, elapsed: float, now: float) -> str:
    """The state a history entry shows ``record`` in: its override's, else its own."""
    override = active(record, elapsed=elapsed, now=now)
    return record.state.value if override is None else FORCED_STATES[override.kind]


def _clamped(time: float) -> float:
    return min(max(time, 0.0), MAX_TIME)


def _redated(record: Record, *, now: float, elapsed: float) -> Record:
    """``record`` re-dated for a write at ``now`` by a writer that first saw it ``elapsed``
    seconds ago: every deadline keeps the period it had left, the override included."""
    shift = now - record.updated_at - max(elapsed, 0.0)

    def moved(time: float | None) -> float | None:
        return None if time is None else _clamped(time + shift)

    override = active(record, elapsed=elapsed, now=now)
    if override is not None:
        left = remaining(record, elapsed=elapsed, now=now)
        override = replace(override, until=_clamped(now + left), at=_clamped(override.at + shift))
    return replace(
        record,
        opened_at=moved(record.opened_at),
        retry_at=moved(record.retry_at),
        probe_expires_at=moved(record.probe_expires_at),
        reserved_until=moved(record.reserved_until),
        reports=tuple((owner, _clamped(at + shift)) for owner, at in record.reports),
        expires_at=max(_clamped(record.expires_at + shift), now),
        override=override,
    )


def forced(
    record: Record,
    *,
    kind: str,
    now: float,
    elapsed: float,
    duration: float,
    reason: str,
    actor: str,
    ttl: float,
) -> Record:
    """``record`` (``ABSENT`` for none yet) forced ``kind`` for ``duration`` seconds.

    The record lives at least ``ttl`` seconds and at least as long as the override.
    """
    base = _redated(record, now=now, elapsed=elapsed)
    new = replace(
        base,
        epoch=record.epoch + 1,
        # Not a new closed episode: processes keep their counts (reset() starts afresh).
        episode=record.episode_id if record.state is CircuitState.CLOSED and record.epoch else None,
        override=Override(kind=kind, until=now + duration, reason=reason, actor=actor, at=now),
        updated_at=now,
        expires_at=max(base.expires_at, now + ttl, now + duration),
        history=appended(
            record.history,
            at=now,
            from_state=shown_state(record, elapsed=elapsed, now=now),
            to_state=FORCED_STATES[kind],
            by=actor,
            reason=reason,
        ),
    )
    return fitted(new)


def cleared(
    record: Record, *, now: float, elapsed: float, reason: str, actor: str, ttl: float
) -> Record | None:
    """``record`` without its override; ``None`` if it has none in force (nothing to do)."""
    override = active(record, elapsed=elapsed, now=now)
    if override is None:
        return None
    base = _redated(record, now=now, elapsed=elapsed)
    new = replace(
        base,
        epoch=record.epoch + 1,
        episode=record.episode_id if record.state is CircuitState.CLOSED else None,
        override=None,
        updated_at=now,
        expires_at=max(base.expires_at, now + ttl),
        history=appended(
            record.history,
            at=now,
            from_state=FORCED_STATES[override.kind],
            to_state=record.state.value,
            by=actor,
            reason=reason or "override cleared",
        ),
    )
    return fitted(new)


def reset(
    record: Record, *, now: float, elapsed: float, reason: str, actor: str, ttl: float
) -> Record:
    """A fresh start: closed, a new closed episode (every process's counts start over), no
    open-time backoff, no reports, no override; the history goes on."""
    new = Record(
        state=CircuitState.CLOSED,
        epoch=record.epoch + 1,
        updated_at=now,
        expires_at=now + ttl,
        history=appended(
            record.history,
            at=now,
            from_state=shown_state(record, elapsed=elapsed, now=now),
            to_state="closed",
            by=actor,
            reason=reason,
        ),
    )
    return fitted(new)


def carry(old: Record, new: Record, *, now: float, elapsed: float) -> Record:
    """``new``, a protocol transition of ``old``, with ``old``'s override carried forward
    (re-dated, and the record kept alive as long) while it lasts, and dropped once it has
    ended; fitted to what a store reads back."""
    if old.override is None and new.override is None:
        return fitted(new)
    left = remaining(old, elapsed=elapsed, now=now)
    if left <= 0.0 or old.override is None:
        return fitted(replace(new, override=None))
    shift = now - old.updated_at - max(elapsed, 0.0)
    override = replace(
        old.override, until=_clamped(now + left), at=_clamped(old.override.at + shift)
    )
    return fitted(replace(new, override=override, expires_at=max(new.expires_at, now + left)))


def fitted(record: Record) -> Record:
    """``record`` with its oldest history entries dropped while its payload would be larger
    than a store reads back (texts JSON escapes can grow six- to twelvefold)."""
    history = record.history
    while history and len(encode_payload(replace(record, history=history)).encode()) > (
        MAX_PAYLOAD_BYTES
    ):
        history = history[1:]
    return record if history is record.history else replace(record, history=history)

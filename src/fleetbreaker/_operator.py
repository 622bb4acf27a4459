"""Operator actions as protocol steps: force a circuit open or closed, clear an override,
reset it. Shared by ``CircuitBreaker.force_open`` & co. and ``fleetbreaker.operations`` (the
CLI), so that both write exactly the same records.

Each action reads the record consistently, decides (``_overrides``) and writes by
compare-and-set. A lost write is decided again on the winner's record, unless the winner
changed the override itself: then another operator acted at the same moment, nothing is
written, and ``OverrideConflictError`` says what is in force now (two operators never
silently overwrite each other, and a stale writer can never clear a newer override).
"""

from __future__ import annotations

import getpass
import logging
import math
import socket
from collections.abc import Callable
from typing import Final

from fleetbreaker import _overrides as overrides
from fleetbreaker._changes_log import log_change
from fleetbreaker._limits import MAX_TEXT
from fleetbreaker._protocol import ABSENT, FORCED_CLOSED, FORCED_OPEN, Override, Record
from fleetbreaker._steps import CompareAndSet, Load, Steps
from fleetbreaker.errors import ConfigError, OverrideConflictError, StoreError

__all__ = [
    "Change",
    "act",
    "check_duration",
    "check_reason",
    "default_actor",
    "operator_actor",
    "plan",
]

logger = logging.getLogger("fleetbreaker")

MAX_ROUNDS: Final = 8
"""Writes an action attempts before giving up on a record that changes under each of them."""

Change = Callable[[Record, float], Record | None]
"""``change(record, now)``: the record to write, or ``None`` when there is nothing to do."""


def check_duration(duration: object, maximum: float) -> float:
    """``duration`` if it is a number of seconds in ``(0, maximum]``, else ``ConfigError``."""
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ConfigError(f"duration must be a number of seconds, got {duration!r:.50}")
    if not math.isfinite(duration) or not 0 < duration <= maximum:
        raise ConfigError(
            f"duration must be > 0 and at most record_ttl ({maximum:g} s), got {duration!r}"
        )
    return float(duration)


def check_reason(reason: object, *, required: bool = True) -> str:
    """``reason`` if it is printable text of at most ``MAX_TEXT`` characters (and not blank
    when ``required``), else ``ConfigError``."""
    if not isinstance(reason, str):
        raise ConfigError(f"reason must be a str, got {type(reason).__name__} {reason!r:.50}")
    if required and not reason.strip():
        raise ConfigError("reason is required: say why (an incident id, a ticket, a sentence)")
    _check_text("reason", reason)
    return reason


def operator_actor(actor: object) -> str:
    """``actor`` checked, or ``user@host`` for ``None``."""
    if actor is None:
        return default_actor()
    if not isinstance(actor, str) or not actor.strip():
        raise ConfigError(f"actor must be a non-empty str, got {actor!r:.50}")
    _check_text("actor", actor)
    return actor


def _check_text(field: str, text: str) -> None:
    if len(text) > MAX_TEXT:
        raise ConfigError(f"{field} must be at most {MAX_TEXT} characters, got {len(text)}")
    if not text.isprintable():
        raise ConfigError(f"{field} must be printable (no newlines or control characters)")


def default_actor() -> str:
    """``user@host`` of this process, as the record can hold it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no $USER
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:MAX_TEXT]


def _override_key(record: Record, now: float) -> tuple[str, str, str] | None:
    """What identifies the override in force (its dates move when a process re-dates it)."""
    return _key(overrides.active(record, elapsed=0.0, now=now))


def _key(override: Override | None) -> tuple[str, str, str] | None:
    return None if override is None else (override.kind, override.actor, override.reason)


def _changed(current: Override | None) -> str:
    if current is None:
        return "the override was cleared since it was read; nothing written"
    return (
        f"the override in force is no longer the one read: {current.actor} forced it "
        f"{current.kind} ({current.reason}); nothing written"
    )


def act(
    name: str, change: Change, *, wall: Callable[[], float], actor: str, reason: str
) -> Steps[Record]:
    """Apply ``change`` (by ``actor``, for ``reason``) to circuit ``name``'s record; the record
    now stored (unchanged when there was nothing to do). Store errors propagate: an operator
    must hear of them."""
    first: tuple[str, str, str] | None = None
    for round_ in range(MAX_ROUNDS):
        loaded = yield Load(consistent=True)
        record = ABSENT if loaded is None else loaded
        now = wall()
        key = _override_key(record, now)
        if round_ == 0:
            first = key
        elif key != first:
            current = overrides.active(record, elapsed=0.0, now=now)
            raise OverrideConflictError(_conflict(name, current), current)
        new = change(record, now)
        if new is None:
            return record
        if (yield CompareAndSet(None if loaded is None else record.epoch, new)):
            _log(name, new, actor, reason)
            return new
    raise StoreError(
        f"circuit {name!r}: the record changed under each of {MAX_ROUNDS} writes; try again"
    )


def _conflict(name: str, current: Override | None) -> str:
    if current is None:
        return f"circuit {name!r}: another operator cleared its override meanwhile; nothing written"
    return (
        f"circuit {name!r}: {current.actor} forced it {current.kind} meanwhile "
        f"({current.reason}); nothing written: read it again and decide"
    )


def _log(name: str, new: Record, actor: str, reason: str) -> None:
    """Log a written override, clear or reset once (by its writer)."""
    if not new.history:  # (every action appends an entry; this keeps a fitted record safe)
        return
    entry = new.history[-1]
    log_change(
        name,
        entry.from_state,
        entry.to_state,
        epoch=new.epoch,
        actor=actor,
        reason=reason or entry.reason,
        opening=entry.to_state == "forced_open",
    )


def plan(
    verb: str,
    *,
    duration: object = None,
    reason: object,
    actor: object,
    ttl: float,
    expected: Override | None = None,
) -> tuple[Change, str, str]:
    """Check an action's arguments (``ConfigError``) and build its change: ``verb`` is
    ``force_open``, ``force_closed``, ``clear`` or ``reset``. Returns (change, actor, reason).

    ``expected`` (for ``clear``) is the override the operator saw: if another is in force by
    the time of the write, nothing is cleared (``OverrideConflictError``)."""
    who = operator_actor(actor)
    if verb in ("force_open", "force_closed"):
        seconds = check_duration(duration, ttl)
        why = check_reason(reason)
        kind = FORCED_OPEN if verb == "force_open" else FORCED_CLOSED

        def force(record: Record, now: float) -> Record | None:
            return overrides.forced(
                record,
                kind=kind,
                now=now,
                elapsed=0.0,
                duration=seconds,
                reason=why,
                actor=who,
                ttl=ttl,
            )

        return force, who, why
    if verb == "clear":
        why = check_reason(reason, required=False)

        def clear(record: Record, now: float) -> Record | None:
            if expected is not None:
                current = overrides.active(record, elapsed=0.0, now=now)
                if _key(current) != _key(expected):
                    raise OverrideConflictError(_changed(current), current)
            return overrides.cleared(record, now=now, elapsed=0.0, reason=why, actor=who, ttl=ttl)

        return clear, who, why
    why = check_reason(reason)

    def reset(record: Record, now: float) -> Record | None:
        return overrides.reset(record, now=now, elapsed=0.0, reason=why, actor=who, ttl=ttl)

    return reset, who, why

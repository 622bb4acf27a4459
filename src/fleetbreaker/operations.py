"""Operator actions on any circuit of a store, from any process (the ``fleetbreaker`` CLI
uses them): read a circuit, force it open or closed for a while, clear an override, reset it.

Each writes the circuit's shared record by compare-and-set, exactly as
``CircuitBreaker.force_open`` and its siblings do, so every process of the fleet obeys within
its ``local_cache_max_age``. An override may be set on a circuit no process has used yet.

Errors: ``ConfigError`` for a bad argument (a duration that is not in ``(0, record_ttl]``, a
blank reason), ``StoreError`` when the store fails, ``OverrideConflictError`` when another
operator changed the override between this action's read and its write (nothing written).
``actor`` defaults to ``user@host``; ``record_ttl`` (default ``Config().record_ttl``, 7 days)
is how long the record lives at least, and the longest override.
"""

from __future__ import annotations

import time
from dataclasses import replace

from fleetbreaker import _operator as operator
from fleetbreaker import _overrides as overrides
from fleetbreaker._breaker import check_circuit_name
from fleetbreaker._info import CircuitInfo
from fleetbreaker._limits import sane_wall
from fleetbreaker._protocol import Override, Record
from fleetbreaker._steps import drive
from fleetbreaker.config import Config
from fleetbreaker.errors import ConfigError
from fleetbreaker.stores.base import Store

__all__ = ["clear_override", "force_closed", "force_open", "read", "reset"]

_DEFAULT_TTL = Config().record_ttl


def _wall() -> float:
    return sane_wall(time.time())


def info_of(name: str, record: Record, now: float) -> CircuitInfo:
    """The public snapshot of a freshly read ``record``, its override shown while in force."""
    if record.override is not None and overrides.active(record, elapsed=0.0, now=now) is None:
        record = replace(record, override=None)
    return CircuitInfo.from_record(name, record)


def read(store: Store, name: str) -> CircuitInfo | None:
    """Circuit ``name`` as the store holds it, or ``None`` when it has no record."""
    _check(store, name)
    record = store.load(name, consistent=True)
    return None if record is None else info_of(name, record, _wall())


def force_open(
    store: Store,
    name: str,
    *,
    duration: float,
    reason: str,
    actor: str | None = None,
    record_ttl: float | None = None,
) -> CircuitInfo:
    """Make every process refuse every call of ``name`` for ``duration`` seconds."""
    return _run(store, name, "force_open", duration, reason, actor, record_ttl)


def force_closed(
    store: Store,
    name: str,
    *,
    duration: float,
    reason: str,
    actor: str | None = None,
    record_ttl: float | None = None,
) -> CircuitInfo:
    """Make every process admit every call of ``name`` for ``duration`` seconds (outcomes are
    still observed; nothing trips and no probe is claimed)."""
    return _run(store, name, "force_closed", duration, reason, actor, record_ttl)


def clear_override(
    store: Store,
    name: str,
    *,
    reason: str = "",
    actor: str | None = None,
    record_ttl: float | None = None,
    expected: Override | None = None,
) -> CircuitInfo:
    """End ``name``'s override now (nothing is written when it has none in force).

    ``expected`` is the override the operator looked at (``read(...).override``): when
    another one is in force by the time of the write, nothing is cleared and
    ``OverrideConflictError`` says what is.
    """
    return _run(store, name, "clear", None, reason, actor, record_ttl, expected)


def reset(
    store: Store,
    name: str,
    *,
    reason: str,
    actor: str | None = None,
    record_ttl: float | None = None,
) -> CircuitInfo:
    """Close ``name`` afresh: counts, open-time backoff, reports and any override cleared."""
    return _run(store, name, "reset", None, reason, actor, record_ttl)


def _check(store: object, name: object) -> None:
    if not isinstance(store, Store):
        raise ConfigError(f"store must be a fleetbreaker Store, got {store!r:.80}")
    store.check_name(check_circuit_name(name))


def _run(  # noqa: PLR0917 - the public functions' own arguments, passed on
    store: Store,
    name: str,
    verb: str,
    duration: object,
    reason: object,
    actor: object,
    record_ttl: float | None,
    expected: Override | None = None,
) -> CircuitInfo:
    _check(store, name)
    ttl = _DEFAULT_TTL if record_ttl is None else Config(record_ttl=record_ttl).record_ttl
    change, who, why = operator.plan(
        verb, duration=duration, reason=reason, actor=actor, ttl=ttl, expected=expected
    )
    record = drive(store, name, operator.act(name, change, wall=_wall, actor=who, reason=why))
    return info_of(name, record, _wall())

# Test data: the record protocol of the previous release, vendored unchanged.
#
# Source: src/fleetbreaker/_protocol.py at commit 0decb7d98ed7683b428062c1bdc820e003948bea
# (`git show 0decb7d:src/fleetbreaker/_protocol.py`), the last version before the policy fields
# (open_count, rule, failure_rate, slow_call_rate, reports, episode) were added to the v1 record.
# tests/test_record_compat.py runs it against today's records to show that a fleet mixing both
# releases keeps working: the previous release reads every record this one writes, and this one
# reads what the previous release writes over it. Do not edit it to follow today's code; only
# this header differs from the original.
#
# It imports fleetbreaker._limits at run time (its bounds are unchanged since that release) and
# fleetbreaker.config only for type checking, so it imports cleanly against today's package.

"""The pure circuit protocol: the shared record and its transitions.

No I/O, no locks, no clock: every function takes the record it acts on and the times it needs,
and returns the record to write, or ``None`` when the transition does not apply to that record.
The breaker reads a record, decides here, and writes the result with
``Store.compare_and_set(name, expected_epoch=record.epoch, new)``; because every write bumps the
epoch, a decision taken on an outdated record can never be written.

**Time.** Hosts' clocks disagree, by seconds or by years on a broken host, so no wall-clock time
written by one process is ever compared with another process's clock. A record stores the wall
time of its write (``updated_at``) and deadlines written as ``updated_at + period``, all on the
writer's clock: they are for display, and their *differences* (``retry_at - updated_at``, ...)
are periods in which any skew cancels. A reader measures each period on its own monotonic
clock from when it first saw the record (``elapsed``), and bounds it by its own configuration,
so a record from a broken clock can neither pin a circuit open nor rush a probe.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fleetbreaker._limits import MAX_COUNT, MAX_EPOCH, MAX_TEXT, MAX_TIME

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = [
    "ABSENT",
    "CircuitState",
    "Record",
    "Route",
    "claim",
    "claim_period",
    "open_period",
    "probe_failed",
    "probe_released",
    "probe_succeeded",
    "reservation_period",
    "route",
    "trip",
]

CLAIM_RESERVATION = 1.0
"""Seconds for which a freed probe slot is reserved for the process that freed it (the one that
tripped the circuit or ran the last probe) before any caller may claim it. That process is
known to have traffic and learns of the free slot from its own write; every other process
learns of it from a read that may be a round trip stale, and a fleet racing on stale reads
loses a conditional write per racer. If the reserved process makes no call in time, anyone
may claim."""

FORMAT_VERSION = 1
"""Version of the stored record format. Readers ignore fields they do not know, so new
policies can add fields without a version bump; bump it only for an incompatible change."""


class CircuitState(str, enum.Enum):
    """The state of a circuit, as the whole fleet sees it."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Route(enum.Enum):
    """What a caller holding a record may do."""

    ADMIT = "admit"  # closed: call the downstream
    REJECT = "reject"  # open, or a probe is in flight: short-circuit
    CLAIM = "claim"  # the probe slot is free: try to claim it


@dataclass(frozen=True, slots=True)
class Record:
    """The shared truth about one circuit, as stored.

    ``epoch`` is bumped by every write and is the compare-and-set token. ``retry_at`` (OPEN) is
    when the first probe may be claimed; ``probe_owner``/``probe_expires_at`` (HALF_OPEN) is the
    current probe claim, if any; ``successes`` counts successful probes in this half-open
    episode; ``failure_count`` is the count that tripped the circuit; ``expires_at`` is when a
    store may forget the record; ``reserved_for``/``reserved_until`` say which process alone may
    claim a free probe slot until when (:data:`CLAIM_RESERVATION`). All times are wall-clock
    seconds since the Unix epoch.
    """

    state: CircuitState
    epoch: int
    opened_at: float | None = None
    retry_at: float | None = None
    probe_owner: str | None = None
    probe_expires_at: float | None = None
    successes: int = 0
    failure_count: int = 0
    updated_at: float = 0.0
    expires_at: float = 0.0
    reserved_for: str | None = None
    reserved_until: float | None = None

    def to_payload(self) -> dict[str, object]:
        """The record as JSON-ready fields, for stores (the epoch is stored beside it)."""
        return {
            "v": FORMAT_VERSION,
            "state": self.state.value,
            "opened_at": self.opened_at,
            "retry_at": self.retry_at,
            "probe_owner": self.probe_owner,
            "probe_expires_at": self.probe_expires_at,
            "successes": self.successes,
            "failure_count": self.failure_count,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "reserved_for": self.reserved_for,
            "reserved_until": self.reserved_until,
        }

    @classmethod
    def from_payload(cls, epoch: int, payload: dict[str, object]) -> Record:
        """Rebuild a record; raise ``ValueError`` for anything that is not a valid record.

        A record read from a store is untrusted input: every field is checked against the
        bounds of :mod:`fleetbreaker._limits`, so that a record that reads as valid can always
        be written back (a non-finite time, say, could never be encoded again).
        """
        version = payload.get("v")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"no format version (v) in {payload!r:.200}")
        if version > FORMAT_VERSION:
            raise ValueError(f"format version {version!r:.20} is newer than this library knows")
        state = payload.get("state")
        if not isinstance(state, str):
            raise ValueError(f"state must be a string, got {state!r:.50}")
        record = cls(
            state=CircuitState(state),
            epoch=_int(epoch, "epoch", MAX_EPOCH - 1),
            opened_at=_opt_float(payload.get("opened_at"), "opened_at"),
            retry_at=_opt_float(payload.get("retry_at"), "retry_at"),
            probe_owner=_opt_str(payload.get("probe_owner"), "probe_owner"),
            probe_expires_at=_opt_float(payload.get("probe_expires_at"), "probe_expires_at"),
            successes=_int(payload.get("successes", 0), "successes", MAX_COUNT),
            failure_count=_int(payload.get("failure_count", 0), "failure_count", MAX_COUNT),
            updated_at=_float(payload.get("updated_at", 0.0), "updated_at"),
            expires_at=_float(payload.get("expires_at", 0.0), "expires_at"),
            reserved_for=_opt_str(payload.get("reserved_for"), "reserved_for"),
            reserved_until=_opt_float(payload.get("reserved_until"), "reserved_until"),
        )
        if record.state is CircuitState.OPEN and record.retry_at is None:
            raise ValueError("an open record has no retry_at")
        if record.probe_owner is not None and record.probe_expires_at is None:
            raise ValueError("a probe claim has no expiry")
        if record.reserved_for is not None and record.reserved_until is None:
            raise ValueError("a probe reservation has no expiry")
        return record


def _int(value: object, field: str, largest: int) -> int:
    """An integer in ``[0, largest]``: never a bool, a float or digits as text."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= largest:
        raise ValueError(f"{field} must be an integer in [0, {largest}], got {value!r:.50}")
    return value


def _float(value: object, field: str) -> float:
    """A time in ``[0, MAX_TIME]`` (so finite): an int or a float, never a bool or text."""
    # Compared before float(): an int too large for a float must not raise OverflowError.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TIME:
        raise ValueError(f"{field} must be a time in [0, {MAX_TIME:.0f}], got {value!r:.50}")
    return float(value)


def _opt_float(value: object, field: str) -> float | None:
    return None if value is None else _float(value, field)


def _opt_str(value: object, field: str) -> str | None:
    if value is not None and not (isinstance(value, str) and len(value) <= MAX_TEXT):
        raise ValueError(f"{field} must be text of at most {MAX_TEXT} characters or null")
    return value


ABSENT = Record(state=CircuitState.CLOSED, epoch=0)
"""How a circuit with no stored record reads: closed, never written."""


def open_period(record: Record, config: Config) -> float:
    """Seconds an open record stays open, from when its reader first saw it."""
    return _period(record.retry_at, record.updated_at, config.recovery_timeout)


def claim_period(record: Record, config: Config) -> float:
    """Seconds a probe claim holds the slot, from when its reader first saw it."""
    return _period(record.probe_expires_at, record.updated_at, config.effective_probe_timeout)


def reservation_period(record: Record, config: Config) -> float:
    """Seconds a free probe slot stays reserved for ``reserved_for``, from first sight."""
    cap = CLAIM_RESERVATION
    if record.state is CircuitState.OPEN:
        cap += config.recovery_timeout
    return _period(record.reserved_until, record.updated_at, cap)


def _period(deadline: float | None, written_at: float, cap: float) -> float:
    # Both times come from one writer's clock, so its offset cancels; the cap keeps a record
    # written by a broken clock (or a foreign writer) from holding a deadline beyond the
    # configured period.
    if deadline is None:
        return 0.0
    return min(max(deadline - written_at, 0.0), cap)


def route(record: Record, *, elapsed: float, config: Config, owner: str | None = None) -> Route:
    """What the process ``owner`` may do with ``record``, first seen ``elapsed`` seconds ago."""
    if record.state is CircuitState.CLOSED:
        return Route.ADMIT
    if record.state is CircuitState.OPEN:
        if elapsed < open_period(record, config):
            return Route.REJECT
    elif record.probe_owner is not None:
        # A held claim refuses everyone until it expires; then anyone may take over.
        return Route.REJECT if elapsed < claim_period(record, config) else Route.CLAIM
    if reserved_for_another(record, elapsed=elapsed, config=config, owner=owner):
        return Route.REJECT
    return Route.CLAIM


def reserved_for_another(
    record: Record, *, elapsed: float, config: Config, owner: str | None
) -> bool:
    """Whether a free probe slot is still reserved for a process other than ``owner``."""
    return (
        record.reserved_for is not None
        and record.reserved_for != owner
        and elapsed < reservation_period(record, config)
    )


def trip(
    record: Record, *, now: float, failures: int, config: Config, owner: str | None = None
) -> Record | None:
    """CLOSED(e) -> OPEN(e+1), the first probe reserved for ``owner``; ``None`` if not closed."""
    if record.state is not CircuitState.CLOSED:
        return None
    retry_at = now + config.recovery_timeout
    return Record(
        state=CircuitState.OPEN,
        epoch=record.epoch + 1,
        opened_at=now,
        retry_at=retry_at,
        failure_count=failures,
        updated_at=now,
        expires_at=now + config.record_ttl,
        reserved_for=owner,
        reserved_until=None if owner is None else retry_at + CLAIM_RESERVATION,
    )


def claim(
    record: Record, *, now: float, elapsed: float, owner: str, config: Config
) -> Record | None:
    """Take the single probe slot: -> HALF_OPEN(e+1) owned by ``owner``; ``None`` if not free.

    ``elapsed`` is how long ago the claimer first saw ``record`` (see :func:`route`). Successes
    of the episode survive a takeover of an expired claim; a claim on an OPEN record starts a
    new half-open episode.
    """
    if route(record, elapsed=elapsed, config=config, owner=owner) is not Route.CLAIM:
        return None
    return replace(
        record,
        state=CircuitState.HALF_OPEN,
        reserved_for=None,
        reserved_until=None,
        epoch=record.epoch + 1,
        retry_at=None,
        probe_owner=owner,
        probe_expires_at=now + config.effective_probe_timeout,
        successes=record.successes if record.state is CircuitState.HALF_OPEN else 0,
        updated_at=now,
        expires_at=now + config.record_ttl,
    )


def _owns_probe(record: Record, token: int) -> bool:
    return (
        record.epoch == token
        and record.state is CircuitState.HALF_OPEN
        and record.probe_owner is not None
    )


def probe_succeeded(record: Record, *, token: int, now: float, config: Config) -> Record | None:
    """Count a successful probe and free the slot, closing at ``success_threshold``.

    ``None`` if the claim ``token`` no longer holds (taken over or already decided): fencing.
    """
    if not _owns_probe(record, token):
        return None
    successes = record.successes + 1
    if successes >= config.success_threshold:
        return Record(
            state=CircuitState.CLOSED,
            epoch=record.epoch + 1,
            updated_at=now,
            expires_at=now + config.record_ttl,
        )
    return replace(
        record,
        epoch=record.epoch + 1,
        probe_owner=None,
        probe_expires_at=None,
        successes=successes,
        updated_at=now,
        expires_at=now + config.record_ttl,
        reserved_for=record.probe_owner,
        reserved_until=now + CLAIM_RESERVATION,
    )


def probe_failed(record: Record, *, token: int, now: float, config: Config) -> Record | None:
    """A failed probe reopens the circuit for another ``recovery_timeout``; ``None`` if fenced."""
    if not _owns_probe(record, token):
        return None
    retry_at = now + config.recovery_timeout
    return Record(
        state=CircuitState.OPEN,
        epoch=record.epoch + 1,
        opened_at=now,
        retry_at=retry_at,
        failure_count=record.failure_count,
        updated_at=now,
        expires_at=now + config.record_ttl,
        reserved_for=record.probe_owner,
        reserved_until=retry_at + CLAIM_RESERVATION,
    )


def probe_released(record: Record, *, token: int, now: float, config: Config) -> Record | None:
    """Free the slot without counting (the probe ended by an ignored exception or a cancel)."""
    if not _owns_probe(record, token):
        return None
    return replace(
        record,
        epoch=record.epoch + 1,
        probe_owner=None,
        probe_expires_at=None,
        updated_at=now,
        expires_at=now + config.record_ttl,
        reserved_for=record.probe_owner,
        reserved_until=now + CLAIM_RESERVATION,
    )

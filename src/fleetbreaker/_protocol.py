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
from typing import TYPE_CHECKING, Final

from fleetbreaker._history import HistoryEntry, appended
from fleetbreaker._limits import (
    MAX_COUNT,
    MAX_EPOCH,
    MAX_HISTORY,
    MAX_REPORTS,
    MAX_TEXT,
    MAX_TIME,
)

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = [
    "ABSENT",
    "CONSECUTIVE",
    "FAILURE_RATE",
    "QUORUM",
    "SLOW_CALL_RATE",
    "Cause",
    "CircuitState",
    "Override",
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
policies can add fields without a version bump; bump it only for an incompatible change.
(The policy fields -- ``open_count``, ``rule``, the rates, ``reports``, ``episode`` -- and the
operations fields -- ``override``, ``history`` -- are such additions: a reader that predates
them reads the record it always did, and a writer that predates them writes records without
them, which read here as their defaults. A process of an older release therefore neither obeys
an override nor keeps one it overwrites: upgrade the fleet before relying on overrides.)"""

FORCED_OPEN, FORCED_CLOSED = "open", "closed"
"""The kinds of ``Override``."""

CONSECUTIVE, FAILURE_RATE, SLOW_CALL_RATE, QUORUM = (
    "consecutive",
    "failure_rate",
    "slow_call_rate",
    "quorum",
)
"""Which rule opened a circuit (``Record.rule``)."""


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
class Override:
    """An operator's override of a circuit, fleet-wide, until ``until``.

    ``kind`` is ``"open"`` (every process refuses every call) or ``"closed"`` (every process
    admits every call; nothing trips, no probe is claimed). ``at`` is when it was set and
    ``until`` when it ends, both as the record's writer's clock has them (like every time of a
    record, ``until - updated_at`` is its remaining period); ``actor`` is who set it and
    ``reason`` why. The state machine underneath keeps its own state, and resumes when the
    override ends or is cleared.
    """

    kind: str
    until: float
    reason: str
    actor: str
    at: float


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

    Policy fields: ``open_count`` is the number of consecutive failed recoveries of this open
    episode (the open period grows with it; a close resets it); ``rule``, ``failure_rate`` and
    ``slow_call_rate`` say why the circuit opened, as the writer of the trip saw it;
    ``reports`` (CLOSED only) are the processes whose rules fired, as ``(owner, at)`` with
    ``at`` on the writer's clock like every time of the record; ``episode`` is the epoch that
    began the closed episode when reports have since moved the epoch on (``None``: ``epoch``).

    Operations fields: ``override`` is an operator's fleet-wide override (``_overrides``), and
    ``history`` the last ``MAX_HISTORY`` persisted changes, oldest first (``_history``).
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
    open_count: int = 0
    rule: str | None = None
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    reports: tuple[tuple[str, float], ...] = ()
    episode: int | None = None
    override: Override | None = None
    history: tuple[HistoryEntry, ...] = ()

    @property
    def episode_id(self) -> int:
        """The epoch that began this record's episode: reports move a closed record's epoch on
        without starting a new episode."""
        return self.epoch if self.episode is None else self.episode

    def to_payload(self) -> dict[str, object]:
        """The record as JSON-ready fields, for stores (the epoch is stored beside it)."""
        payload = self._base_payload()
        # Policy fields only when set: the payload of a plain circuit stays what it was.
        if self.open_count:
            payload["open_count"] = self.open_count
        if self.rule is not None:
            payload["rule"] = self.rule
        if self.failure_rate is not None:
            payload["failure_rate"] = self.failure_rate
        if self.slow_call_rate is not None:
            payload["slow_call_rate"] = self.slow_call_rate
        if self.reports:
            payload["reports"] = [[owner, at] for owner, at in self.reports]
        if self.episode is not None:
            payload["episode"] = self.episode
        override = self.override
        if override is not None:
            payload["override"] = {
                "kind": override.kind,
                "until": override.until,
                "reason": override.reason,
                "actor": override.actor,
                "at": override.at,
            }
        if self.history:
            payload["history"] = [
                [entry.at, entry.from_state, entry.to_state, entry.by, entry.reason]
                for entry in self.history
            ]
        return payload

    def _base_payload(self) -> dict[str, object]:
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
            open_count=_int(payload.get("open_count", 0), "open_count", MAX_COUNT),
            rule=_opt_str(payload.get("rule"), "rule"),
            failure_rate=_opt_rate(payload.get("failure_rate"), "failure_rate"),
            slow_call_rate=_opt_rate(payload.get("slow_call_rate"), "slow_call_rate"),
            reports=_reports(payload.get("reports")),
            episode=_opt_int(payload.get("episode"), "episode", MAX_EPOCH - 1),
            override=_override(payload.get("override")),
            history=_history(payload.get("history")),
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


def _opt_int(value: object, field: str, largest: int) -> int | None:
    return None if value is None else _int(value, field, largest)


def _opt_rate(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{field} must be a rate in [0, 1] or null, got {value!r:.50}")
    return float(value)


def _reports(value: object) -> tuple[tuple[str, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_REPORTS:
        raise ValueError(f"reports must be a list of at most {MAX_REPORTS} [owner, time] pairs")
    reports = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError(f"a report must be an [owner, time] pair, got {item!r:.80}")
        owner = _opt_str(item[0], "a report's owner")
        if owner is None:
            raise ValueError("a report has no owner")
        reports.append((owner, _float(item[1], "a report's time")))
    return tuple(reports)


def _override(value: object) -> Override | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"override must be an object or null, got {value!r:.80}")
    kind = value.get("kind")
    if kind not in (FORCED_OPEN, FORCED_CLOSED):
        raise ValueError(f"an override's kind must be 'open' or 'closed', got {kind!r:.50}")
    return Override(
        kind=kind,
        until=_float(value.get("until"), "an override's until"),
        reason=_text(value.get("reason"), "an override's reason"),
        actor=_text(value.get("actor"), "an override's actor"),
        at=_float(value.get("at"), "an override's at"),
    )


HISTORY_STATES: Final = frozenset(("closed", "open", "half_open", "forced_open", "forced_closed"))


def _history(value: object) -> tuple[HistoryEntry, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_HISTORY:
        raise ValueError(f"history must be a list of at most {MAX_HISTORY} entries")
    entries = []
    for item in value:
        if not isinstance(item, list) or len(item) != 5:
            raise ValueError(
                f"a history entry must be [at, from, to, by, reason], got {item!r:.80}"
            )
        at, from_state, to_state, by, reason = item
        for state in (from_state, to_state):
            if state not in HISTORY_STATES:
                raise ValueError(f"a history entry's state must be a known one, got {state!r:.30}")
        entries.append(
            HistoryEntry(
                at=_float(at, "a history entry's time"),
                from_state=from_state,
                to_state=to_state,
                by=_text(by, "a history entry's by"),
                reason=_text(reason, "a history entry's reason"),
            )
        )
    return tuple(entries)


def _text(value: object, field: str) -> str:
    text = _opt_str(value, field)
    if text is None:
        raise ValueError(f"{field} must be text, got null")
    return text


def _opt_str(value: object, field: str) -> str | None:
    if value is not None and not (isinstance(value, str) and len(value) <= MAX_TEXT):
        raise ValueError(f"{field} must be text of at most {MAX_TEXT} characters or null")
    return value


ABSENT = Record(state=CircuitState.CLOSED, epoch=0)
"""How a circuit with no stored record reads: closed, never written."""


def open_period(record: Record, config: Config) -> float:
    """Seconds an open record stays open, from when its reader first saw it (at most the
    longest period the reader's own configuration could write)."""
    return _period(record.retry_at, record.updated_at, config.max_open_period)


def claim_period(record: Record, config: Config) -> float:
    """Seconds a probe claim holds the slot, from when its reader first saw it."""
    return _period(record.probe_expires_at, record.updated_at, config.effective_probe_timeout)


def reservation_period(record: Record, config: Config) -> float:
    """Seconds a free probe slot stays reserved for ``reserved_for``, from first sight."""
    cap = CLAIM_RESERVATION
    if record.state is CircuitState.OPEN:
        cap += config.max_open_period
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


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a circuit opens: the rule that fired and the rates of the window at the time."""

    rule: str = CONSECUTIVE
    failure_rate: float | None = None
    slow_call_rate: float | None = None


def trip(
    record: Record,
    *,
    now: float,
    failures: int,
    config: Config,
    owner: str | None = None,
    period: float | None = None,
    cause: Cause = Cause(),
) -> Record | None:
    """CLOSED(e) -> OPEN(e+1) for ``period`` seconds (default ``recovery_timeout``), the first
    probe reserved for ``owner``; ``None`` if not closed."""
    if record.state is not CircuitState.CLOSED:
        return None
    retry_at = now + (config.recovery_timeout if period is None else period)
    return Record(
        state=CircuitState.OPEN,
        epoch=record.epoch + 1,
        opened_at=now,
        retry_at=retry_at,
        failure_count=min(failures, MAX_COUNT),
        updated_at=now,
        expires_at=now + config.record_ttl,
        reserved_for=owner,
        reserved_until=None if owner is None else retry_at + CLAIM_RESERVATION,
        rule=cause.rule,
        failure_rate=cause.failure_rate,
        slow_call_rate=cause.slow_call_rate,
        history=appended(
            record.history,
            at=now,
            from_state="closed",
            to_state="open",
            by=owner,
            reason=cause.rule,
        ),
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
            history=appended(
                record.history,
                at=now,
                from_state="half_open",
                to_state="closed",
                by=record.probe_owner,
                reason="probe succeeded",
            ),
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


def probe_failed(
    record: Record, *, token: int, now: float, config: Config, period: float | None = None
) -> Record | None:
    """A failed probe reopens the circuit for ``period`` seconds (default
    ``recovery_timeout``) and counts one more failed recovery; ``None`` if fenced."""
    if not _owns_probe(record, token):
        return None
    retry_at = now + (config.recovery_timeout if period is None else period)
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
        open_count=min(record.open_count + 1, MAX_COUNT),
        rule=record.rule,
        failure_rate=record.failure_rate,
        slow_call_rate=record.slow_call_rate,
        history=appended(
            record.history,
            at=now,
            from_state="half_open",
            to_state="open",
            by=record.probe_owner,
            reason="probe failed",
        ),
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

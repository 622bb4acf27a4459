"""Fleet-scale simulation: N Lambda-style environments share one circuit through one store.

Every environment is a real ``fleetbreaker.CircuitBreaker`` (one per environment, all with the
same circuit name and store), driven single-threaded by a discrete-event loop in simulated
time. For comparison the same harness runs a compact model of the Powertools circuit breaker
protocol. Both see the same seeded request arrivals and the same downstream outage.

The model, and what it leaves out:

* **Time.** Each environment has its own clock (``wall()``/``monotonic()``) that reads the
  simulation time of the event it is handling. Requests arrive at each environment as a
  Poisson process; environments start cold at random times in the first few seconds (a fleet
  that scaled up over time), so their cache refreshes are spread out. An environment handles
  one request at a time (as Lambda does); a request arriving while it is busy waits for it.
  The fleet size is fixed: no scale-out, no recycled environments.
* **Store latency as staleness.** Breakers call the store synchronously, so a call cannot be
  suspended mid-flight. Instead every read returns the record *as it stood one round trip
  ago* (a short history of writes is kept), and every write compares against the current
  record and lands at once. So a write another environment made less than one round trip ago
  is invisible to a reader, and a compare-and-set decided on that read loses: the race window
  between a read and the write that depends on it is one round trip, as in a real store (the
  read is served mid-flight, the write lands half a round trip after it is sent). Each store
  operation also moves the calling environment's own clock on by one round trip, so the
  breaker measures a real round trip (its re-read-before-write threshold depends on it) and
  the environment is busy meanwhile. A read an environment sends after an earlier operation
  of the same event (a re-read after a lost write) is sent that much later, so it sees every
  write made up to the event's time: a re-read after a lost compare-and-set sees the winner.
  Not modelled: queueing or throttling at the store, tail latency, eventual-consistency lag
  beyond one round trip, store errors, clock skew.
* **Downstream.** A call takes ``--latency`` seconds and succeeds, except for a call that
  starts inside the outage window, which the scenario (``--scenario``) decides: ``outage``
  (the default) fails every call; ``partial`` fails a seeded ``--failure-share`` (30 %) of
  them; ``slow`` makes every call take ``--slow-latency`` (5 s) and succeed; ``sick`` fails
  every call of environment 0 and leaves the others healthy. A call's completion is an event
  at its start plus its latency, and the environment's clock reads that time when the call is
  settled, so the breaker times a slow call as slow on its own monotonic clock. A slow call
  occupies its environment (one request at a time), so during ``slow`` an environment
  completes one call per ``--slow-latency`` and its later requests wait: a rate rule sees at
  most ``window / slow_latency`` calls in its window (2 in 10 s), below
  ``minimum_number_of_calls``, so in this model no per-environment window rule can fire.
* **Policies** (``--policy``, fleetbreaker only): ``consecutive`` (``--failure-threshold``
  consecutive failures in one environment, the default ``Config`` rule); ``rate``
  (``failure_threshold=None``, a failure rate of 25 % or 50 % of calls slower than 2 s over a
  10 s time window of at least 20 calls); ``quorum`` (``rate`` and
  ``fleet_minimum_reporters=3``: an environment whose rules fire holds itself open and reports;
  the third reporter within the window trips the fleet). ``--matrix`` runs every scenario x
  policy (or the cells given) for fleetbreaker alone and prints one table of them.
* **Powertools model** (written from the source of aws-lambda-powertools 3.37.0,
  ``utilities/circuit_breaker``; Powertools is not imported): a per-environment cached record
  trusted until ``int(now) + local_cache_max_age``, refreshed by an eventually consistent read;
  consecutive failures counted per environment and, at the threshold, an *unconditional* put
  of OPEN (``opened_at = int(now)``) by every environment that crosses it; on every invocation
  whose cached record is OPEN and due (``int(now) >= opened_at + recovery_timeout``), a
  conditional put claiming the probe (state OPEN, no owner, same ``opened_at``; or an expired
  lease), with no re-read before it and the cache left as it was when the claim is lost; the
  winner's cached HALF_OPEN record names it as owner, so its following invocations are probes;
  ``success_threshold`` consecutive probe successes in that environment write CLOSED, a probe
  failure writes OPEN again (both unconditional updates).

Measured per protocol: store reads and writes (per second and in total), conditional writes
won and lost, unconditional writes, trips persisted, calls that reached the failing downstream
after the first trip was persisted (leaked calls), time from the downstream's heal to the
record's CLOSED and to the whole fleet admitting traffic again, and probes in flight
fleet-wide; and for a scenario or policy other than the default, the time from the outage's
start to the first persisted trip, the calls that reached the affected downstream during the
outage, calls refused (in healthy environments too) and by an environment's own hold, and each
write by kind (quorum report, trip, probe claim, probe outcome), won or lost (``--trace-writes``
lists them: who wrote what, when, decided on how old a record, and what a lost write lost to).
``--check`` exits 1 when fleetbreaker loses a conditional write, has more than one probe in
flight, or persists more than one trip in the outage; with the quorum policy, when it makes more
than 20 writes or loses more than 10 in the outage (issue 8's goal at 10,000 environments x 10
requests/s), or when one sick environment trips the fleet.

Run: ``.venv/bin/python benchmarks/sim_fleet.py [--envs 10000] [--rps 10] [--check]``, or
``--matrix [scenario:policy,...]`` (``make sim-policies``: the whole matrix at 1,000
environments; at 10,000 x 10 requests/s each run takes 1.5 to 3 minutes).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Final, Generic, Protocol, TypeVar

from fleetbreaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Config,
    MemoryStore,
    Store,
)
from fleetbreaker._protocol import Record

CIRCUIT: Final = "payments"
WALL0: Final = 1_700_000_000.0
"""Wall-clock time (Unix seconds) at simulation time 0: a whole second, so the Powertools
model's ``int(now)`` truncation falls on whole simulated seconds."""

REJECT: Final = 0
ADMIT: Final = 1
PROBE: Final = 2
HELD: Final = 3

OUTAGE: Final = "outage"
PARTIAL: Final = "partial"
SLOW: Final = "slow"
SICK: Final = "sick"
SCENARIOS: Final = (OUTAGE, PARTIAL, SLOW, SICK)
"""What goes wrong from ``--outage-start`` for ``--outage`` seconds: every call fails
(``outage``); a seeded ``--failure-share`` of the calls fail (``partial``); every call takes
``--slow-latency`` seconds and succeeds (``slow``); or every call of one environment fails and
the others' succeed (``sick``)."""
SICK_ENV: Final = 0

CONSECUTIVE: Final = "consecutive"
RATE: Final = "rate"
QUORUM: Final = "quorum"
POLICIES: Final = (CONSECUTIVE, RATE, QUORUM)
"""How the circuit trips: ``--failure-threshold`` consecutive failures in one environment (the
default ``Config`` rule); the rate rules below over each environment's own time window; or the
rate rules with a fleet quorum of ``QUORUM_REPORTERS`` environments."""
RATE_FAILURE_THRESHOLD: Final = 0.25
RATE_SLOW_CALL_SECONDS: Final = 2.0
RATE_SLOW_CALL_THRESHOLD: Final = 0.5
RATE_MINIMUM_CALLS: Final = 20
RATE_WINDOW_SECONDS: Final = 10.0
QUORUM_REPORTERS: Final = 3

T = TypeVar("T")


class DownstreamError(Exception):
    """The downstream is down."""


# --- time ----------------------------------------------------------------------------------


class EnvClock:
    """One environment's clock: the simulation time it has reached (``fleetbreaker.Clock``)."""

    __slots__ = ("env", "t")

    def __init__(self, env: int = -1) -> None:
        self.env = env
        self.t = 0.0

    def wall(self) -> float:
        return WALL0 + self.t

    def monotonic(self) -> float:
        return self.t


class SimTime:
    """The time of the event being handled, and the clock of the environment handling it."""

    __slots__ = ("current", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self.current = EnvClock()

    def wait(self, seconds: float) -> None:
        """The current environment waits ``seconds`` (a store round trip)."""
        self.current.t += seconds


# --- the store -----------------------------------------------------------------------------


class History(Generic[T]):
    """Values written to one key, so a read can see the value as it stood a moment ago."""

    __slots__ = ("_base", "_recent", "current")

    def __init__(self, initial: T) -> None:
        self._recent: deque[tuple[float, T]] = deque()
        self._base = initial  # the value at the last time asked for
        self.current = initial

    def write(self, at: float, value: T) -> None:
        self._recent.append((at, value))
        self.current = value

    def as_of(self, at: float, *, oldest: float | None = None) -> tuple[T, bool]:
        """The value at time ``at``, and whether it is the current value. ``oldest`` (default
        ``at``) promises that no later call asks for a time before it."""
        recent = self._recent
        floor = at if oldest is None else min(at, oldest)
        while recent and recent[0][0] <= floor:
            self._base = recent.popleft()[1]
        value = self._base
        for written, later in recent:
            if written > at:
                return value, False
            value = later
        return value, True


REPORT: Final = "report"
TRIP: Final = "trip"
CLAIM: Final = "claim"
SETTLE: Final = "settle"
WRITE_KINDS: Final = (REPORT, TRIP, CLAIM, SETTLE)
"""What a write does, judged from the record it was decided on and the record it writes: a
quorum report (closed over closed), a trip (open over closed), a probe claim, or a probe's
outcome (a success, a close, a reopen or a release)."""


def write_kind(basis: CircuitState, new: CircuitState, *, claims_probe: bool) -> str:
    """The kind of a write of a ``new``-state record decided on a ``basis``-state record."""
    if new is CircuitState.CLOSED:
        return REPORT if basis is CircuitState.CLOSED else SETTLE
    if new is CircuitState.OPEN:
        return TRIP if basis is CircuitState.CLOSED else SETTLE
    return CLAIM if claims_probe else SETTLE


@dataclass(frozen=True, slots=True)
class WriteEvent:
    """One conditional write as the store saw it (``--trace-writes``)."""

    at: float
    env: int
    kind: str
    won: bool
    basis_age: float | None
    """How long before the write the record it was decided on had been written (``None``: it
    was decided on no record, the circuit's first write)."""
    beaten_by: tuple[str, int, float] | None = None
    """For a lost write: the kind, writer and time of the write that made the current record."""


@dataclass
class Tally:
    """What one protocol did to the store and the downstream."""

    seconds: int
    reads: list[int] = field(default_factory=list)  # per simulated second
    writes: list[int] = field(default_factory=list)  # per simulated second, all kinds
    lost_by_second: list[int] = field(default_factory=list)
    consistent_reads: int = 0
    cond_won: int = 0
    cond_lost: int = 0
    lost_claims: int = 0
    uncond: int = 0
    transitions: list[tuple[float, CircuitState, CircuitState]] = field(default_factory=list)
    trips: list[float] = field(default_factory=list)  # when each trip write was made
    log: list[WriteEvent] = field(default_factory=list)  # fleetbreaker's writes, in order

    def __post_init__(self) -> None:
        self.reads = [0] * self.seconds
        self.writes = [0] * self.seconds
        self.lost_by_second = [0] * self.seconds

    def _bucket(self, at: float) -> int:
        return min(int(at), self.seconds - 1)

    def read(self, at: float, *, consistent: bool) -> None:
        self.reads[self._bucket(at)] += 1
        self.consistent_reads += consistent

    def write(self, at: float, *, won: bool | None, claim: bool = False) -> None:
        """Count a write: ``won`` for a conditional one, ``None`` for an unconditional one;
        ``claim`` for an attempt to claim the probe slot."""
        bucket = self._bucket(at)
        self.writes[bucket] += 1
        if won is None:
            self.uncond += 1
        elif won:
            self.cond_won += 1
        else:
            self.cond_lost += 1
            self.lost_claims += claim
            self.lost_by_second[bucket] += 1

    def transition(self, at: float, old: CircuitState, new: CircuitState) -> None:
        """Note a written state change."""
        if old is not new:
            self.transitions.append((at, old, new))

    def writes_between(self, start: float, end: float) -> list[WriteEvent]:
        return [w for w in self.log if start <= w.at < end]


class SimStore(Store):
    """A ``MemoryStore`` seen through one round trip of latency, counting every operation.

    ``load`` returns the record as it stood ``staleness`` seconds ago; ``compare_and_set``
    goes to the ``MemoryStore`` at once (it compares against the current record). Every
    operation moves the calling environment's clock on by ``rtt``. Each write is logged with
    its kind (``write_kind``), judged from the record it was decided on: every record written
    is kept by epoch, so a lost write's basis is known too.
    """

    def __init__(self, sim: SimTime, tally: Tally, *, rtt: float, staleness: float) -> None:
        self._sim = sim
        self._tally = tally
        self._rtt = rtt
        self._staleness = staleness
        self._inner = MemoryStore(wall_clock=lambda: WALL0 + sim.now)
        self._history: History[Record | None] = History(None)
        # epoch -> (the record, when it was written, its kind, its writer)
        self._written: dict[int, tuple[Record, float, str, int]] = {}

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        sim = self._sim
        self._tally.read(sim.now, consistent=consistent)
        # A read sees the record as of one round trip before it was sent. An environment's
        # first operation of an event is sent at the event's time; a later one (a re-read
        # after a lost write) is sent round trips later on its own clock, and sees every write
        # the simulation has made so far once that is a round trip past.
        sent = sim.current.t
        sim.wait(self._rtt)
        at = min(sent - self._staleness, sim.now)
        seen, current = self._history.as_of(at, oldest=sim.now - self._staleness)
        if current:
            return self._inner.load(name, consistent=consistent)
        return seen

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        sim = self._sim
        sim.wait(self._rtt)
        won = self._inner.compare_and_set(name, expected_epoch, record)
        claim = record.state is CircuitState.HALF_OPEN and record.probe_owner is not None
        self._tally.write(sim.now, won=won, claim=claim)
        basis = None if expected_epoch is None else self._written.get(expected_epoch)
        basis_state = CircuitState.CLOSED if basis is None else basis[0].state
        kind = write_kind(basis_state, record.state, claims_probe=claim)
        env = sim.current.env
        beaten_by = None
        if not won and (current := self._history.current) is not None:
            _, at, by_kind, by_env = self._written[current.epoch]
            beaten_by = (by_kind, by_env, at)
        basis_age = None if basis is None else sim.now - basis[1]
        self._tally.log.append(WriteEvent(sim.now, env, kind, won, basis_age, beaten_by))
        if won:
            old = self._history.current
            self._history.write(sim.now, record)
            self._written[record.epoch] = (record, sim.now, kind, env)
            was = CircuitState.CLOSED if old is None else old.state
            self._tally.transition(sim.now, was, record.state)
            if was is CircuitState.CLOSED and record.state is CircuitState.OPEN:
                self._tally.trips.append(sim.now)
        return won

    def names(self) -> list[str]:
        return self._inner.names()


# --- the protocols under test --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Params:
    envs: int
    rps: float
    duration: float
    outage_start: float
    outage: float
    rtt: float
    latency: float
    failure_threshold: int
    recovery_timeout: int
    success_threshold: int
    cache_age: int
    seed: int
    half_open_refresh: float = 0.25
    scenario: str = OUTAGE
    policy: str = CONSECUTIVE
    failure_share: float = 0.3
    """``partial``: the share of calls that fail during the outage."""
    slow_latency: float = 5.0
    """``slow``: seconds a call takes during the outage."""

    @property
    def heal(self) -> float:
        return self.outage_start + self.outage

    def affects(self, env: int) -> bool:
        """Whether ``env``'s downstream is affected by the scenario's outage."""
        return self.scenario != SICK or env == SICK_ENV

    @property
    def warmup(self) -> float:
        """Environments start cold at random times in ``[0, warmup)``."""
        return min(float(self.cache_age), self.outage_start / 2)


def policy_config(p: Params) -> Config:
    """The ``Config`` of policy ``p.policy`` (see ``POLICIES``)."""
    common = {
        "recovery_timeout": p.recovery_timeout,
        "success_threshold": p.success_threshold,
        "local_cache_max_age": p.cache_age,
        "half_open_refresh": p.half_open_refresh,
    }
    if p.policy == CONSECUTIVE:
        return Config(failure_threshold=p.failure_threshold, **common)  # type: ignore[arg-type]
    return Config(
        failure_threshold=None,
        failure_rate_threshold=RATE_FAILURE_THRESHOLD,
        slow_call_duration_threshold=RATE_SLOW_CALL_SECONDS,
        slow_call_rate_threshold=RATE_SLOW_CALL_THRESHOLD,
        minimum_number_of_calls=RATE_MINIMUM_CALLS,
        sliding_window_type="time",
        sliding_window_size=RATE_WINDOW_SECONDS,
        fleet_minimum_reporters=QUORUM_REPORTERS if p.policy == QUORUM else 1,
        **common,  # type: ignore[arg-type]
    )


class Subject(Protocol):
    """One protocol, as the harness drives it: admit a call in an environment, then settle it."""

    def enter(self, env: int) -> int:
        """``REJECT``, ``HELD`` (refused by the environment's own hold while the record is
        closed), ``ADMIT`` (a closed-path call) or ``PROBE``."""

    def exit(self, env: int, failed: bool) -> None:
        """Settle the call ``enter`` admitted in ``env``."""


class FleetbreakerSubject:
    """One real ``CircuitBreaker`` per environment, all sharing one ``SimStore``."""

    def __init__(self, sim: SimTime, clocks: Sequence[EnvClock], tally: Tally, p: Params) -> None:
        store = SimStore(sim, tally, rtt=p.rtt, staleness=p.rtt)
        config = policy_config(p)
        self._breakers = [
            CircuitBreaker(CIRCUIT, store=store, config=config, clock=clock) for clock in clocks
        ]
        self._guards: list[AbstractContextManager[None] | None] = [None] * len(clocks)
        self._error = DownstreamError("downstream is down")

    def enter(self, env: int) -> int:
        breaker = self._breakers[env]
        guard = breaker.guard()
        try:
            guard.__enter__()
        except CircuitOpenError as refused:
            # Refused on its hold: this environment's rules fired and it holds itself open
            # while the fleet's quorum is not reached.
            return HELD if refused.circuit.held_open_until is not None else REJECT
        self._guards[env] = guard
        # A call admitted while this environment's view is not closed holds the probe slot.
        return ADMIT if breaker.state is CircuitState.CLOSED else PROBE

    def exit(self, env: int, failed: bool) -> None:
        guard = self._guards[env]
        self._guards[env] = None
        assert guard is not None
        if failed:
            guard.__exit__(DownstreamError, self._error, None)
        else:
            guard.__exit__(None, None, None)


@dataclass(frozen=True, slots=True)
class PTRecord:
    """The Powertools DynamoDB item (times are whole Unix seconds)."""

    state: CircuitState
    failure_count: int = 0
    opened_at: int | None = None
    owner: str | None = None
    lease_expiry: int | None = None


PT_CLOSED: Final = PTRecord(CircuitState.CLOSED)


class _PTEnv:
    """One environment's module-level Powertools state: its cache and local counters."""

    __slots__ = (
        "cache",
        "cache_expiry",
        "failures",
        "last_observed",
        "owner",
        "probing",
        "successes",
    )

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.cache: PTRecord | None = None
        self.cache_expiry = 0
        self.failures = 0
        self.successes = 0
        self.last_observed: CircuitState | None = None
        self.probing = False


class PowertoolsSubject:
    """A compact model of the Powertools 3.37.0 circuit breaker protocol (see the docstring)."""

    def __init__(self, sim: SimTime, clocks: Sequence[EnvClock], tally: Tally, p: Params) -> None:
        self._sim = sim
        self._clocks = clocks
        self._tally = tally
        self._p = p
        self._item: History[PTRecord | None] = History(None)
        self._envs = [_PTEnv(f"env{i}#owner") for i in range(len(clocks))]

    # The store: an eventually consistent get_item, put_item (conditional or not), update_item.

    def _get(self) -> PTRecord | None:
        sim = self._sim
        self._tally.read(sim.now, consistent=False)
        sim.wait(self._p.rtt)
        return self._item.as_of(sim.now - self._p.rtt)[0]

    def _put(self, record: PTRecord, *, claim_opened_at: int | None = None) -> bool:
        sim = self._sim
        now = int(sim.current.wall())  # the condition's :now is taken before the request
        sim.wait(self._p.rtt)
        current = self._item.current
        won: bool | None = None
        if claim_opened_at is not None:
            won = current is not None and (
                (
                    current.state is CircuitState.OPEN
                    and current.owner is None
                    and current.opened_at == claim_opened_at
                )
                or (
                    current.state is CircuitState.HALF_OPEN
                    and current.lease_expiry is not None
                    and current.lease_expiry <= now
                )
            )
        self._tally.write(sim.now, won=won, claim=claim_opened_at is not None)
        if won is False:
            return False
        self._item.write(sim.now, record)
        old = CircuitState.CLOSED if current is None else current.state
        self._tally.transition(sim.now, old, record.state)
        return True

    # The handler.

    def _now(self, env: int) -> int:
        return int(self._clocks[env].wall())

    def _cache(self, env: int, record: PTRecord) -> None:
        state = self._envs[env]
        state.cache = record
        state.cache_expiry = self._now(env) + self._p.cache_age

    def _get_state(self, env: int) -> PTRecord:
        state = self._envs[env]
        if state.cache is not None and self._now(env) < state.cache_expiry:
            return state.cache
        record = self._get() or PT_CLOSED
        self._cache(env, record)
        return record

    def _try_acquire(self, env: int, opened_at: int) -> bool:
        state = self._envs[env]
        lease = self._now(env) + self._p.recovery_timeout
        record = PTRecord(
            CircuitState.HALF_OPEN, opened_at=opened_at, owner=state.owner, lease_expiry=lease
        )
        if not self._put(record, claim_opened_at=opened_at):
            return False  # the cache keeps the record that sent us here
        self._cache(env, record)
        state.successes = 0
        return True

    def enter(self, env: int) -> int:
        state = self._envs[env]
        record = self._get_state(env)
        if record.state is CircuitState.CLOSED:
            if state.last_observed not in {None, CircuitState.CLOSED}:
                state.failures = 0
            state.last_observed = CircuitState.CLOSED
            return ADMIT
        state.last_observed = record.state
        if record.state is CircuitState.OPEN:
            opened_at = self._now(env) if record.opened_at is None else record.opened_at
            if self._now(env) >= opened_at + self._p.recovery_timeout and self._try_acquire(
                env, opened_at
            ):
                state.probing = True
                return PROBE
            return REJECT
        if record.owner == state.owner:
            state.probing = True
            return PROBE
        if (
            record.lease_expiry is not None
            and self._now(env) >= record.lease_expiry
            and self._try_acquire(env, record.opened_at or 0)
        ):
            state.probing = True
            return PROBE
        return REJECT

    def exit(self, env: int, failed: bool) -> None:
        state = self._envs[env]
        p = self._p
        if state.probing:
            state.probing = False
            if failed:
                record = PTRecord(CircuitState.OPEN, opened_at=self._now(env))
                self._put(record)
                self._cache(env, record)
                state.successes = 0
                return
            state.successes += 1
            if state.successes >= p.success_threshold:
                state.successes = 0
                state.failures = 0
                self._put(PT_CLOSED)
                self._cache(env, PT_CLOSED)
            return
        if not failed:
            state.failures = 0
            return
        state.failures += 1
        if state.failures >= p.failure_threshold:
            record = PTRecord(
                CircuitState.OPEN, failure_count=state.failures, opened_at=self._now(env)
            )
            state.failures = 0
            self._tally.trips.append(self._sim.now)  # unconditional: every crossing writes
            self._put(record)
            self._cache(env, record)


# --- the harness ---------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    p: Params
    tally: Tally
    elapsed: float
    calls: int = 0
    refused: int = 0
    downstream_calls: int = 0
    leaked: int = 0
    outage_probes: int = 0
    probes: int = 0
    max_probes_in_flight: int = 0
    refused_after_heal: int = 0
    last_refusal: float | None = None
    fleet_admits_at: float | None = None  # when the last environment admitted a call
    bad_calls: int = 0  # calls that reached an affected downstream during the outage
    bad_failed: int = 0  # of them, calls that failed (or were slow)
    refused_in_outage: int = 0
    refused_healthy: int = 0  # calls refused in environments the scenario leaves healthy
    held: int = 0  # calls refused by an environment's own hold (quorum not reached)
    held_envs: set[int] = field(default_factory=set)
    first_hold: float | None = None

    @property
    def closed_at(self) -> float | None:
        """When the first CLOSED record was written after the heal."""
        for at, was, now in self.tally.transitions:
            if at >= self.p.heal and was is CircuitState.HALF_OPEN and now is CircuitState.CLOSED:
                return at
        return None

    @property
    def first_trip(self) -> float | None:
        """When the first trip was persisted."""
        return self.tally.trips[0] if self.tally.trips else None


Downstream = Callable[[int, float], tuple[bool, bool, float]]
"""``(env, now) -> (affected, fails, latency)`` for a call starting in ``env`` at ``now``."""


def downstream_model(p: Params) -> Downstream:
    """How the downstream answers a call under ``p.scenario``. The draws of ``partial`` come
    from an RNG of their own, so every scenario sees the same request arrivals."""
    outage_start, heal, latency = p.outage_start, p.heal, p.latency
    healthy = (False, False, latency)
    if p.scenario == PARTIAL:
        draw, share = random.Random(f"{p.seed}:failures").random, p.failure_share
        ok, fail = (True, False, latency), (True, True, latency)

        def partial(_env: int, now: float) -> tuple[bool, bool, float]:
            if outage_start <= now < heal:
                return fail if draw() < share else ok
            return healthy

        return partial
    if p.scenario == SLOW:
        # The call returns after slow_latency on the environment's own clock (the harness
        # settles it at that time), so the breaker times it as slow.
        slow = (True, False, p.slow_latency)
        return lambda _env, now: slow if outage_start <= now < heal else healthy
    down = (True, True, latency)
    if p.scenario == SICK:
        return lambda env, now: down if env == SICK_ENV and outage_start <= now < heal else healthy
    return lambda _env, now: down if outage_start <= now < heal else healthy


def simulate(
    factory: Callable[[SimTime, Sequence[EnvClock], Tally, Params], Subject], label: str, p: Params
) -> Result:
    """Run one protocol through the whole scenario."""
    started = time.perf_counter()
    sim = SimTime()
    clocks = [EnvClock(env) for env in range(p.envs)]
    tally = Tally(math.ceil(p.duration) + 2)
    subject = factory(sim, clocks, tally, p)
    result = Result(label, p, tally, 0.0)
    rng = random.Random(p.seed)
    answer = downstream_model(p)
    outage_start, heal, rps, duration = p.outage_start, p.heal, p.rps, p.duration

    busy = [False] * p.envs
    pending = [0] * p.envs
    kind_of = [REJECT] * p.envs
    failing_of = [False] * p.envs
    first_admit_after_close: list[float | None] = [None] * p.envs
    # Events: (time, sequence, env * 2 + is_completion); the sequence makes ties deterministic.
    heap: list[tuple[float, int, int]] = []
    seq = 0
    for env in range(p.envs):
        heap.append((rng.uniform(0.0, p.warmup), seq, env * 2))
        seq += 1
    heapq.heapify(heap)
    in_flight = 0
    first_trip: float | None = None
    closed_at: float | None = None

    def refuse(env: int, now: float, kind: int) -> None:
        result.refused += 1
        if kind == HELD:
            result.held += 1
            result.held_envs.add(env)
            if result.first_hold is None:
                result.first_hold = now
        if outage_start <= now < heal:
            result.refused_in_outage += 1
        if not p.affects(env):
            result.refused_healthy += 1
        if now >= heal:
            result.refused_after_heal += 1
            result.last_refusal = now

    def start(env: int, now: float) -> None:
        nonlocal seq, in_flight, first_trip, closed_at
        kind = subject.enter(env)
        result.calls += 1
        if first_trip is None and tally.trips:
            first_trip = tally.trips[0]
        if closed_at is None and now >= heal:
            closed_at = result.closed_at
        if kind in {REJECT, HELD}:
            refuse(env, now, kind)
            return
        affected, fails, latency = answer(env, now)
        result.downstream_calls += 1
        if affected:
            result.bad_calls += 1
            result.bad_failed += fails or latency > p.latency
        if kind == PROBE:
            result.probes += 1
            result.outage_probes += affected
            in_flight += 1
            result.max_probes_in_flight = max(result.max_probes_in_flight, in_flight)
        else:
            if affected and first_trip is not None:
                result.leaked += 1
            if closed_at is not None and first_admit_after_close[env] is None:
                first_admit_after_close[env] = now
        busy[env] = True
        kind_of[env] = kind
        failing_of[env] = fails
        heapq.heappush(heap, (sim.current.t + latency, seq, env * 2 + 1))
        seq += 1

    while heap:
        now, _, code = heapq.heappop(heap)
        env = code >> 1
        sim.now = now
        clock = clocks[env]
        clock.t = max(clock.t, now)
        sim.current = clock
        if code & 1 == 0:  # a request arrives
            nxt = now + rng.expovariate(rps)
            if nxt < duration:
                heapq.heappush(heap, (nxt, seq, code))
                seq += 1
            if busy[env]:
                pending[env] += 1
                continue
            start(env, now)
        else:  # the downstream call in progress in env returns
            subject.exit(env, failing_of[env])
            busy[env] = False
            if kind_of[env] == PROBE:
                in_flight -= 1
            if pending[env]:
                pending[env] -= 1
                start(env, now)

    admitted = [at for at in first_admit_after_close if at is not None]
    result.fleet_admits_at = max(admitted) if len(admitted) == p.envs else None
    result.elapsed = time.perf_counter() - started
    return result


# --- the report ----------------------------------------------------------------------------


def _steady_window(p: Params) -> tuple[int, int]:
    """Whole seconds after every environment's first cache period, before the outage."""
    return math.ceil(p.warmup + p.cache_age), math.floor(p.outage_start)


def _since_heal(p: Params, at: float | None) -> float | None:
    return None if at is None else at - p.heal


Row = tuple[str, Callable[[Result], float | None], str]
"""Label, the figure, and its format ("d": a count, "f": a rate, "s": seconds)."""


def _bind_writes(kind: str, *, won: bool) -> Callable[[Result], float | None]:
    return lambda r: _writes(r, kind, won=won)


def _steady_reads(r: Result) -> float | None:
    first, end = _steady_window(r.p)
    if end <= first:
        return None
    return sum(r.tally.reads[first:end]) / (end - first)


ROWS: Final[list[Row]] = [
    ("store writes, total", lambda r: sum(r.tally.writes), "d"),
    ("store writes/s, peak (1 s buckets)", lambda r: max(r.tally.writes), "d"),
    ("  conditional writes won", lambda r: r.tally.cond_won, "d"),
    ("  conditional writes lost", lambda r: r.tally.cond_lost, "d"),
    ("    of them probe claims", lambda r: r.tally.lost_claims, "d"),
    ("  unconditional writes", lambda r: r.tally.uncond, "d"),
    ("lost conditional writes/s, peak", lambda r: max(r.tally.lost_by_second), "d"),
    ("trips persisted (trip writes)", lambda r: len(r.tally.trips), "d"),
    ("store reads, total", lambda r: sum(r.tally.reads), "d"),
    ("  of them consistent reads", lambda r: r.tally.consistent_reads, "d"),
    ("store reads/s, steady state (mean)", _steady_reads, "f"),
    ("store reads/s, peak (1 s buckets)", lambda r: max(r.tally.reads), "d"),
    ("calls", lambda r: r.calls, "d"),
    ("calls refused", lambda r: r.refused, "d"),
    ("calls that reached the downstream", lambda r: r.downstream_calls, "d"),
    ("leaked calls (failing, after 1st trip)", lambda r: r.leaked, "d"),
    ("probes, total", lambda r: r.probes, "d"),
    ("probes during the outage", lambda r: r.outage_probes, "d"),
    ("max probes in flight, fleet-wide", lambda r: r.max_probes_in_flight, "d"),
    ("heal -> record CLOSED", lambda r: _since_heal(r.p, r.closed_at), "s"),
    ("heal -> last refused call", lambda r: _since_heal(r.p, r.last_refusal), "s"),
    ("heal -> every env admitted a call", lambda r: _since_heal(r.p, r.fleet_admits_at), "s"),
    ("calls refused after the heal", lambda r: r.refused_after_heal, "d"),
]


def _trip_after(r: Result) -> float | None:
    """Seconds from the outage's start to the first persisted trip."""
    return None if r.first_trip is None else r.first_trip - r.p.outage_start


def _writes(r: Result, kind: str, *, won: bool) -> int:
    return sum(1 for w in r.tally.log if w.kind == kind and w.won is won)


SCENARIO_ROWS: Final[list[Row]] = [
    ("outage start -> first trip persisted", _trip_after, "s"),
    ("calls that reached the affected downstream", lambda r: r.bad_calls, "d"),
    ("  of them failed or slow", lambda r: r.bad_failed, "d"),
    ("calls refused during the outage", lambda r: r.refused_in_outage, "d"),
    ("calls refused in healthy environments", lambda r: r.refused_healthy, "d"),
    ("calls refused by an env's own hold", lambda r: r.held, "d"),
    (
        "outage start -> first env's own hold",
        lambda r: None if r.first_hold is None else r.first_hold - r.p.outage_start,
        "s",
    ),
    ("environments that held themselves", lambda r: len(r.held_envs), "d"),
    *(
        (f"{kind} writes {'won' if won else 'lost'}", _bind_writes(kind, won=won), "d")
        for kind in WRITE_KINDS
        for won in (True, False)
    ),
]
"""Rows added for a scenario or policy other than the default (fleetbreaker's writes only)."""


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a" if kind != "s" else "never"
    if kind == "d":
        return f"{int(value):,}"
    if kind == "f":
        return f"{value:,.1f}"
    return f"{value:.3f} s"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return ""
    if ours == theirs:
        return "1x"
    if ours == 0:
        return "inf"
    return f"{theirs / ours:,.1f}x"


def report(p: Params, results: list[Result]) -> None:
    steady_first, steady_end = _steady_window(p)
    print("fleetbreaker fleet simulation (simulated time; see the module docstring for the model)")
    print(
        f"  {p.envs:,} environments x {p.rps:g} requests/s, {p.duration:g} s run, downstream "
        f"down from t={p.outage_start:g} s to t={p.heal:g} s ({p.outage:g} s)"
    )
    print(
        f"  store round trip {p.rtt * 1000:g} ms (a read sees the record as of one round trip "
        f"ago; a write lands at once), downstream call {p.latency * 1000:g} ms"
    )
    print(
        f"  failure_threshold={p.failure_threshold} recovery_timeout={p.recovery_timeout} "
        f"success_threshold={p.success_threshold} local_cache_max_age={p.cache_age} "
        f"half_open_refresh={p.half_open_refresh:g}; "
        f"environments start cold in the first {p.warmup:g} s; seed {p.seed}"
    )
    if steady_end > steady_first:
        print(
            f"  steady state: t={steady_first}..{steady_end} s; sizing rule envs / "
            f"local_cache_max_age = {p.envs / p.cache_age:,.1f} reads/s"
        )
    default = p.scenario == OUTAGE and p.policy == CONSECUTIVE
    if not default:
        print(f"  scenario {describe_scenario(p)}; fleetbreaker policy {describe_policy(p)}")
    print()
    labels = [r.label for r in results]
    header = f"{'':44}" + "".join(f"{label:>18}" for label in labels)
    if len(results) == 2:
        header += f"{'ratio':>12}"
    print(header)
    for label, figure, kind in ROWS if default else [*ROWS, *SCENARIO_ROWS]:
        values = [figure(r) for r in results]
        line = f"{label:44}" + "".join(f"{_fmt(v, kind):>18}" for v in values)
        if len(results) == 2:
            line += f"{_ratio(values[0], values[1]):>12}"
        print(line)
    print(f"{'real time to simulate':44}" + "".join(f"{r.elapsed:>16.1f} s" for r in results))
    print()
    print(
        f"'every env admitted a call' includes each environment's wait for its next request "
        f"after the close\n(the longest such gap among {p.envs:,} environments at {p.rps:g}/s is "
        f"about ln(envs)/rps = {math.log(p.envs) / p.rps:.1f} s); 'last refused call' has no "
        f"such wait."
    )
    if len(results) == 1 and results[0].label == "fleetbreaker":
        print("Not modelled: store throttling and errors, queueing at the store, scale-out.")
        return
    print("ratio = powertools model / fleetbreaker. Powertools model: written from the source of")
    print("aws-lambda-powertools 3.37.0 (failures counted per environment; every environment that")
    print(
        "crosses the threshold puts OPEN unconditionally; every invocation whose cached record is"
    )
    print("OPEN and due tries a conditional claim, with no re-read before it; 5 s cache in whole")
    print("seconds). Not modelled: store throttling and errors, queueing at the store, scale-out.")


def describe_scenario(p: Params) -> str:
    return {
        OUTAGE: "outage (every call fails)",
        PARTIAL: f"partial ({p.failure_share:.0%} of the calls fail, seeded)",
        SLOW: f"slow (every call takes {p.slow_latency:g} s and succeeds)",
        SICK: f"sick (every call of environment {SICK_ENV} fails; the others are healthy)",
    }[p.scenario]


def describe_policy(p: Params) -> str:
    rate = (
        f"failure_rate_threshold={RATE_FAILURE_THRESHOLD:g} "
        f"slow_call_duration_threshold={RATE_SLOW_CALL_SECONDS:g} "
        f"slow_call_rate_threshold={RATE_SLOW_CALL_THRESHOLD:g} "
        f"minimum_number_of_calls={RATE_MINIMUM_CALLS} time window {RATE_WINDOW_SECONDS:g} s"
    )
    return {
        CONSECUTIVE: f"consecutive (failure_threshold={p.failure_threshold})",
        RATE: f"rate (failure_threshold=None {rate})",
        QUORUM: f"quorum (rate + fleet_minimum_reporters={QUORUM_REPORTERS})",
    }[p.policy]


LOSSLESS_FLEET: Final = 1_000
"""Up to this many environments a run without a quorum loses no conditional write."""
MAX_QUORUM_WRITES: Final = 20
MAX_QUORUM_LOST: Final = 10
"""Issue 8's goal for the quorum policy at 10,000 environments x 10 requests/s, per outage."""


def checks(result: Result) -> list[tuple[bool, str]]:
    """The fleet-scale guarantees ``--check`` enforces for fleetbreaker. A run holds one outage,
    so its figures are per outage, recovery included."""
    tally, p = result.tally, result.p
    found: list[tuple[bool, str]] = []
    if p.policy == QUORUM:
        writes = tally.cond_won + tally.cond_lost
        found += [
            (
                writes <= MAX_QUORUM_WRITES,
                f"at most {MAX_QUORUM_WRITES} store writes per outage (got {writes})",
            ),
            (
                tally.cond_lost <= MAX_QUORUM_LOST,
                f"at most {MAX_QUORUM_LOST} lost writes per outage (got {tally.cond_lost})",
            ),
        ]
    elif p.envs <= LOSSLESS_FLEET:
        found.append((tally.cond_lost == 0, f"no lost conditional writes (got {tally.cond_lost})"))
    else:
        # Beyond a thousand environments, processes crossing the threshold within one round
        # trip of the first race its trip write (a few lost trips, nothing else).
        found.append(
            (
                tally.cond_lost <= MAX_QUORUM_LOST,
                f"at most {MAX_QUORUM_LOST} lost writes per outage (got {tally.cond_lost})",
            )
        )
    found += [
        (
            result.max_probes_in_flight <= 1,
            f"at most one probe in flight (got {result.max_probes_in_flight})",
        ),
        (len(tally.trips) <= 1, f"at most one trip persisted per outage (got {len(tally.trips)})"),
    ]
    if p.scenario == SICK and p.policy == QUORUM:
        found.append(
            (
                not tally.trips,
                f"one sick environment does not trip the fleet (got {len(tally.trips)} trips)",
            )
        )
    return found


def _print_checks(label: str, results: Sequence[Result]) -> bool:
    ok = True
    for result in results:
        name = label or f"{result.p.scenario} x {result.p.policy}"
        for passed, text in checks(result):
            ok &= passed
            print(f"{'PASS' if passed else 'FAIL'}  {name}: {text}")
    return ok


# --- the matrix ----------------------------------------------------------------------------

Column = tuple[str, Callable[[Result], str], int]
"""Heading, the cell's text, and its width."""


def _count(value: int) -> str:
    return f"{value:,}"


def _won_lost(kind: str) -> Callable[[Result], str]:
    return lambda r: f"{_writes(r, kind, won=True)}/{_writes(r, kind, won=False)}"


def _in_outage(r: Result) -> list[WriteEvent]:
    return r.tally.writes_between(r.p.outage_start, r.p.heal)


OUTCOME_COLUMNS: Final[list[Column]] = [
    ("start->trip", lambda r: _fmt(_trip_after(r), "s"), 12),
    ("tripped", lambda r: "yes" if r.tally.trips else "no", 8),
    ("trips", lambda r: _count(len(r.tally.trips)), 6),
    ("bad calls", lambda r: _count(r.bad_calls), 11),
    ("failed/slow", lambda r: _count(r.bad_failed), 12),
    ("after trip", lambda r: _count(r.leaked), 11),
    ("refused", lambda r: _count(r.refused_in_outage), 10),
    ("healthy refused", lambda r: _count(r.refused_healthy), 16),
    ("held envs", lambda r: _count(len(r.held_envs)), 10),
    ("max probes", lambda r: _count(r.max_probes_in_flight), 11),
]
WRITE_COLUMNS: Final[list[Column]] = [
    ("writes", lambda r: _count(len(r.tally.log)), 8),
    ("lost", lambda r: _count(r.tally.cond_lost), 6),
    ("outage writes", lambda r: _count(len(_in_outage(r))), 15),
    ("outage lost", lambda r: _count(sum(not w.won for w in _in_outage(r))), 13),
    *((f"{kind} w/l", _won_lost(kind), 12) for kind in WRITE_KINDS),
    ("sim time", lambda r: f"{r.elapsed:.1f} s", 10),
]


def _table(results: Sequence[Result], columns: Sequence[Column]) -> None:
    print(f"{'scenario':9}{'policy':13}" + "".join(f"{h:>{w}}" for h, _, w in columns))
    for r in results:
        cells = "".join(f"{cell(r):>{w}}" for _, cell, w in columns)
        print(f"{r.p.scenario:9}{r.p.policy:13}{cells}")


def matrix_report(p: Params, results: Sequence[Result]) -> None:
    print(
        "fleetbreaker trip policies x outage scenarios (simulated time; see the module docstring)"
    )
    print(
        f"  {p.envs:,} environments x {p.rps:g} requests/s, {p.duration:g} s run, outage from "
        f"t={p.outage_start:g} s to t={p.heal:g} s; store round trip {p.rtt * 1000:g} ms, "
        f"downstream call {p.latency * 1000:g} ms; seed {p.seed}"
    )
    print(
        f"  recovery_timeout={p.recovery_timeout} success_threshold={p.success_threshold} "
        f"local_cache_max_age={p.cache_age} half_open_refresh={p.half_open_refresh:g}"
    )
    for scenario in dict.fromkeys(r.p.scenario for r in results):
        print(f"  scenario {describe_scenario(replace(p, scenario=scenario))}")
    for policy in dict.fromkeys(r.p.policy for r in results):
        print(f"  policy {describe_policy(replace(p, policy=policy))}")
    print()
    print("What reached the downstream, during the outage:")
    _table(results, OUTCOME_COLUMNS)
    print()
    print("Store writes (conditional), whole run = one outage and its recovery; won/lost by kind:")
    _table(results, WRITE_COLUMNS)
    print()
    print(
        "start->trip: outage start to the first persisted trip. bad calls: calls that reached an "
        "affected\ndownstream during the outage (sick: the sick environment's), failed/slow: of "
        "them those that\nfailed or were slow, after trip: closed-path bad calls after the first "
        "trip. refused: calls refused\nduring the outage; healthy refused: in environments the "
        "scenario leaves healthy (sick); held envs:\nenvironments that refused calls on their "
        "own hold (their rules fired, no quorum yet). Writes by\nkind: report (quorum report), "
        "trip, claim (probe claim), settle (a probe's outcome)."
    )


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``all`` or ``scenario:policy,...`` -> the (scenario, policy) cells, in matrix order."""
    if text == "all":
        return [(scenario, policy) for scenario in SCENARIOS for policy in POLICIES]
    cells = []
    for item in text.split(","):
        scenario, _, policy = item.strip().partition(":")
        if scenario not in SCENARIOS or policy not in POLICIES:
            raise argparse.ArgumentTypeError(
                f"a cell is scenario:policy with a scenario in {', '.join(SCENARIOS)} and a "
                f"policy in {', '.join(POLICIES)}, got {item!r}"
            )
        cells.append((scenario, policy))
    return cells


def trace_writes(result: Result, limit: int = 80) -> None:
    """Print the run's writes, in order: who wrote what, when, and what a lost write lost to."""
    p, log = result.p, result.tally.log
    print(f"writes of {p.scenario} x {p.policy} (t relative to the outage start):")
    for w in log[:limit]:
        basis = "none" if w.basis_age is None else f"written {w.basis_age * 1000:.1f} ms before"
        line = (
            f"  t{w.at - p.outage_start:+9.4f} s  env {w.env:>6}  {w.kind:6} "
            f"{'won ' if w.won else 'LOST'}  basis {basis}"
        )
        if w.beaten_by is not None:
            kind, env, at = w.beaten_by
            line += f"; lost to {kind} by env {env} {(w.at - at) * 1000:.1f} ms before"
        print(line)
    if len(log) > limit:
        print(f"  ... {len(log) - limit} more")


FACTORIES: Final[dict[str, Callable[[SimTime, Sequence[EnvClock], Tally, Params], Subject]]] = {
    "fleetbreaker": FleetbreakerSubject,
    "powertools model": PowertoolsSubject,
}


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(text: str) -> T:
        value = kind(text)
        if not value > 0:  # type: ignore[operator]
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Simulate a fleet of environments sharing one circuit: fleetbreaker's "
        "protocol (the real CircuitBreaker) against a model of Powertools'.",
    )
    parser.add_argument("--envs", type=_positive(int), default=1000, help="default 1000")
    parser.add_argument("--rps", type=_positive(float), default=5.0, help="per env, default 5")
    parser.add_argument("--duration", type=_positive(float), default=90.0, help="s, default 90")
    parser.add_argument("--outage", type=_positive(float), default=30.0, help="s, default 30")
    parser.add_argument("--outage-start", type=_positive(float), default=20.0, help="s, default 20")
    parser.add_argument("--rtt", type=_positive(float), default=0.005, help="store, s")
    parser.add_argument("--latency", type=_positive(float), default=0.02, help="downstream, s")
    parser.add_argument("--failure-threshold", type=_positive(int), default=5)
    parser.add_argument("--recovery-timeout", type=_positive(int), default=30, help="whole s")
    parser.add_argument("--success-threshold", type=_positive(int), default=3)
    parser.add_argument("--cache-age", type=_positive(int), default=5, help="whole s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--half-open-refresh", type=_positive(float), default=0.25, help="s, default 0.25"
    )
    parser.add_argument(
        "--protocol", choices=["both", "fleetbreaker", "powertools"], default="both"
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=OUTAGE,
        help="what goes wrong during the outage (default outage: every call fails)",
    )
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default=CONSECUTIVE,
        help="fleetbreaker's trip policy (default consecutive; the Powertools model runs only "
        "with it)",
    )
    parser.add_argument(
        "--failure-share",
        type=_positive(float),
        default=0.3,
        help="partial: share of calls that fail, default 0.3",
    )
    parser.add_argument(
        "--slow-latency", type=_positive(float), default=5.0, help="slow: s per call, default 5"
    )
    parser.add_argument(
        "--matrix",
        nargs="?",
        const="all",
        type=parse_cells,
        metavar="CELLS",
        help="run fleetbreaker for every scenario x policy (or the cells given, as "
        "scenario:policy,...) and print one table",
    )
    parser.add_argument(
        "--trace-writes", action="store_true", help="print every store write of each run"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 50 envs, 20 s, outage at 4..9 s, recovery_timeout 5",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if fleetbreaker loses a conditional write (quorum: more than "
        f"{MAX_QUORUM_LOST}, or more than {MAX_QUORUM_WRITES} writes), runs two probes at once, "
        "persists more than one trip, or (quorum) lets one sick environment trip the fleet",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.envs, args.duration, args.outage_start, args.outage = 50, 20.0, 4.0, 5.0
        args.recovery_timeout = 5
    if args.outage_start + args.outage >= args.duration:
        parser.error("the outage must end before the run does (outage-start + outage < duration)")
    if args.check and args.protocol == "powertools":
        parser.error("--check checks fleetbreaker: use --protocol both or fleetbreaker")
    if args.protocol == "powertools" and (args.matrix or args.policy != CONSECUTIVE):
        parser.error("the Powertools model has the consecutive policy alone, and no matrix")
    if args.failure_share > 1:
        parser.error(f"--failure-share is a share in (0, 1], got {args.failure_share:g}")
    p = Params(
        envs=args.envs,
        rps=args.rps,
        duration=args.duration,
        outage_start=args.outage_start,
        outage=args.outage,
        rtt=args.rtt,
        latency=args.latency,
        failure_threshold=args.failure_threshold,
        recovery_timeout=args.recovery_timeout,
        success_threshold=args.success_threshold,
        cache_age=args.cache_age,
        seed=args.seed,
        half_open_refresh=args.half_open_refresh,
        scenario=args.scenario,
        policy=args.policy,
        failure_share=args.failure_share,
        slow_latency=args.slow_latency,
    )
    if args.matrix:
        results = []
        for scenario, policy in args.matrix:
            cell = replace(p, scenario=scenario, policy=policy)
            results.append(simulate(FleetbreakerSubject, "fleetbreaker", cell))
            print(
                f"simulated {scenario} x {policy} in {results[-1].elapsed:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        matrix_report(p, results)
        label = ""
    else:
        wanted = {
            "both": list(FACTORIES) if p.policy == CONSECUTIVE else ["fleetbreaker"],
            "fleetbreaker": ["fleetbreaker"],
            "powertools": ["powertools model"],
        }[args.protocol]
        results = [simulate(FACTORIES[label], label, p) for label in wanted]
        report(p, results)
        label = "fleetbreaker"
    if args.trace_writes:
        for result in results:
            if result.label == "fleetbreaker":
                print()
                trace_writes(result)
    if not args.check:
        return 0
    print()
    return 0 if _print_checks(label, results[:1] if label else results) else 1


if __name__ == "__main__":
    sys.exit(main())

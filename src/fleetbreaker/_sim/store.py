"""The store as the fleet sees it: a ``MemoryStore`` one round trip away, every operation counted.

A read returns the record as it stood one round trip before it was sent; a write compares
against the current record and lands at once; each operation moves the calling environment's
clock on by one round trip. ``Tally`` counts what each protocol did, per simulated second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from fleetbreaker import CircuitState, MemoryStore, Store
from fleetbreaker._protocol import Record
from fleetbreaker._sim.model import WALL0, History, SimTime

__all__ = ["WRITE_KINDS", "SimStore", "Tally", "WriteEvent", "write_kind"]

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
    """What one protocol did to the store, per simulated second and in total."""

    seconds: int
    reads: list[int] = field(default_factory=list)
    consistent_by_second: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)  # all kinds, won or lost
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
        self.consistent_by_second = [0] * self.seconds
        self.writes = [0] * self.seconds
        self.lost_by_second = [0] * self.seconds

    def _bucket(self, at: float) -> int:
        return min(int(at), self.seconds - 1)

    def read(self, at: float, *, consistent: bool) -> None:
        bucket = self._bucket(at)
        self.reads[bucket] += 1
        if consistent:
            self.consistent_reads += 1
            self.consistent_by_second[bucket] += 1

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
        sim.current.t = sent + self._rtt
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

"""The demo: a simulated fleet rides out an outage of its downstream through one shared circuit.

Worker processes (``multiprocessing``, spawned) run threads that each call a simulated
downstream every ``PERIOD`` seconds through their process's ``CircuitBreaker``; every process
shares one ``SQLiteStore`` in a temporary directory. The downstream is judged by the real clock
against a start time all processes share: healthy, then failing (the outage), then healed.
The parent prints a timeline, reading the circuit's state straight from the store, and a
summary of the guarantees. What the numbers mean:

* **calls**: calls that reached the downstream; **short-circuited**: calls the breaker refused.
* **probe**: a downstream call made by a process whose own view of the circuit was *not closed*
  when the call started (``breaker.state``): a call the breaker let through to test the
  downstream. **Probes in flight** counts such calls running at the same moment anywhere in
  the fleet (a counter shared by every process). A call admitted on a closed view is never
  counted as a probe, even when the store has tripped meanwhile: those calls are reported
  apart, as calls made by processes that had not yet read the trip (their view may be up to
  ``local_cache_max_age`` old).
* **transitions persisted**: the ``on_transition`` events of every process. The hook fires
  only in the process whose compare-and-set wrote the transition, so each appears once.
* **store writes**: every ``compare_and_set`` a worker's store made, told apart by the record it
  wrote and the record at the epoch it expected: a trip (closed -> open), a probe claim (the
  one probe slot taken), a probe's success (the slot freed, or the circuit closed), failure
  (open again) or release; a *lost* write found the epoch moved on (another process wrote
  first) and wrote nothing. The kinds add up to the total.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import queue
import random
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final, NamedTuple

from fleetbreaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitTransition,
    Config,
    SQLiteStore,
    StoreError,
)
from fleetbreaker._protocol import Record

__all__ = ["Options", "run"]

CIRCUIT: Final = "downstream"
CONFIG: Final = Config(
    failure_threshold=5, recovery_timeout=1.0, success_threshold=3, local_cache_max_age=0.5
)
DB_NAME: Final = "fleetbreaker-demo.db"
PERIOD: Final = 0.02
"""Seconds between two calls of one thread."""
CALL_SECONDS: Final = 0.005
"""How long the downstream takes to answer (or to fail)."""
STARTUP_TIMEOUT: Final = 60.0
"""How long the parent waits for the workers to start (spawning is slow on a busy machine)."""

HEALTHY, OUTAGE, HEALED = 0, 1, 2
_PHASE_LABELS = ("healthy", "DOWN", "healed")


@dataclass(frozen=True, slots=True)
class Options:
    """What the user chose: fleet size and the three phases' durations (seconds)."""

    processes: int = 4
    threads: int = 8
    healthy: float = 1.5
    outage: float = 3.5
    after: float = 3.5
    store_dir: Path | None = None

    @property
    def total(self) -> float:
        return self.healthy + self.outage + self.after


@dataclass(frozen=True, slots=True)
class _Plan:
    """The shared timeline, in wall-clock seconds (the same clock in every process)."""

    start: float
    outage_at: float
    heal_at: float
    end: float

    @classmethod
    def of(cls, start: float, options: Options) -> _Plan:
        outage_at = start + options.healthy
        heal_at = outage_at + options.outage
        return cls(start, outage_at, heal_at, heal_at + options.after)

    def phase(self, now: float) -> int:
        if now < self.outage_at:
            return HEALTHY
        return OUTAGE if now < self.heal_at else HEALED


class DownstreamError(Exception):
    """What the simulated downstream raises during the outage."""


# --- counters shared by every process -----------------------------------------------------------

_CALLS = 0  # calls that reached the downstream, counted as they start
_FAILED = 1
_REFUSED = 2  # 2, 3, 4: calls short-circuited in each phase (_REFUSED + phase)
_OUTAGE_BEFORE_TRIP = 5  # outage calls made on a closed view before the trip was persisted
_OUTAGE_LATE = 6  # outage calls made on a closed view after the trip was persisted
_OUTAGE_PROBES = 7
_PROBES_NOW = 8
_PROBES_MAX_TICK = 9  # most probes in flight at once since the parent's last tick
_PROBES_MAX = 10
_READS = 11
_HEALED_LATE = 12  # refused after the heal by processes yet to read the close
_TRIPPED_EPOCH = 13  # the store's state as the hooks report it: epoch of the last change ...
_TRIPPED = 14  # ... and whether it left the circuit not closed
_SIZE = 15


class _Tally:
    """Counters in shared memory under one lock: a couple of short lock trips per call."""

    def __init__(self, ctx: SpawnContext) -> None:
        self._array: SynchronizedArray[int] = ctx.Array("q", _SIZE)

    def add(self, *slots: int) -> None:
        with self._array.get_lock():
            raw = self._array
            for slot in slots:
                raw[slot] += 1

    def call_started(self, phase: int, *, probe: bool) -> None:
        with self._array.get_lock():
            raw = self._array
            raw[_CALLS] += 1
            if probe:
                now = raw[_PROBES_NOW] = raw[_PROBES_NOW] + 1
                raw[_PROBES_MAX_TICK] = max(raw[_PROBES_MAX_TICK], now)
                raw[_PROBES_MAX] = max(raw[_PROBES_MAX], now)
            if phase == OUTAGE:
                kind = _OUTAGE_PROBES if probe else _OUTAGE_LATE if raw[_TRIPPED] else None
                raw[_OUTAGE_BEFORE_TRIP if kind is None else kind] += 1

    def refused(self, phase: int) -> None:
        with self._array.get_lock():
            raw = self._array
            raw[_REFUSED + phase] += 1
            if phase == HEALED and raw[_TRIPPED_EPOCH] and not raw[_TRIPPED]:
                raw[_HEALED_LATE] += 1

    def probe_ended(self) -> None:
        with self._array.get_lock():
            self._array[_PROBES_NOW] -= 1

    def transition(self, epoch: int, *, tripped: bool) -> None:
        with self._array.get_lock():
            raw = self._array
            if epoch > raw[_TRIPPED_EPOCH]:  # hooks of different processes may race
                raw[_TRIPPED_EPOCH], raw[_TRIPPED] = epoch, int(tripped)

    def tick(self) -> list[int]:
        """A copy of every counter; starts a new interval for the probes-in-flight maximum."""
        with self._array.get_lock():
            raw = self._array
            values = raw[:]
            raw[_PROBES_MAX_TICK] = raw[_PROBES_NOW]
        return values


WON, LOST, ERROR = "won", "lost", "error"


class _Write(NamedTuple):
    """One compare-and-set of a worker's store: the record it carried and how it ended."""

    worker: int
    expected: int | None  # the epoch the writer expected (None: no record yet)
    epoch: int
    state: str
    owned: bool  # the record holds a probe claim
    successes: int
    retry_at: float | None
    at: float  # the record's updated_at: when its writer decided it (wall clock)
    result: str  # WON, LOST or ERROR (a StoreError: nothing known to be written)


class _CountingStore(SQLiteStore):
    """The fleet's store, counting its reads and reporting every write to the parent."""

    def __init__(self, path: Path, tally: _Tally, report: Callable[[_Write], None]) -> None:
        super().__init__(path)
        self._tally = tally
        self._report = report

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self._tally.add(_READS)
        return super().load(name, consistent=consistent)

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        result = ERROR
        try:
            won = super().compare_and_set(name, expected_epoch, record)
            result = WON if won else LOST
        finally:
            self._report(
                _Write(
                    0,
                    expected_epoch,
                    record.epoch,
                    record.state.value,
                    record.probe_owner is not None,
                    record.successes,
                    record.retry_at,
                    record.updated_at,
                    result,
                )
            )
        return won


# --- the workers --------------------------------------------------------------------------------


class _Caller:
    """One thread of a worker: a call every PERIOD seconds until the plan ends."""

    def __init__(self, breaker: CircuitBreaker, plan: _Plan, tally: _Tally) -> None:
        self.breaker, self.plan, self.tally = breaker, plan, tally
        self.last_refused = 0.0
        self.error = ""

    def downstream(self, phase: int) -> None:
        # The breaker's view when the call starts tells a probe from an ordinary call.
        probe = self.breaker.state is not CircuitState.CLOSED
        self.tally.call_started(phase, probe=probe)
        try:
            time.sleep(CALL_SECONDS)
            if phase == OUTAGE:
                raise DownstreamError("the downstream is down")
        finally:
            if probe:
                self.tally.probe_ended()

    def run(self) -> None:
        next_at = time.monotonic() + random.uniform(0, PERIOD)  # spread the threads out
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            now = time.time()
            if now >= self.plan.end:
                return
            phase = self.plan.phase(now)
            try:
                self.breaker.call(self.downstream, phase)
            except DownstreamError:
                self.tally.add(_FAILED)
            except CircuitOpenError:
                self.tally.refused(phase)
                self.last_refused = now
            except Exception as exc:  # a bug of the breaker: reported, and the demo fails
                self.error = self.error or f"{type(exc).__name__}: {exc}"
            next_at = max(next_at + PERIOD, time.monotonic())  # late: do not burst to catch up


@dataclass(frozen=True, slots=True)
class _Shared:
    """What the parent shares with every worker process."""

    tally: _Tally
    events: Queue[tuple[Any, ...]]  # ("ready" | "transition" | "write" | "done", worker, ...)
    go: Event
    start_at: Synchronized[float]


def _worker(index: int, options: Options, path: Path, shared: _Shared) -> None:
    """One process of the fleet: its own store client and breaker, ``options.threads`` callers."""
    # The demo prints its own timeline of the transitions: their log lines would interleave.
    logging.getLogger("fleetbreaker").setLevel(logging.ERROR)
    tally, events = shared.tally, shared.events

    def on_transition(t: CircuitTransition) -> None:
        tally.transition(t.epoch, tripped=t.to_state is not CircuitState.CLOSED)
        events.put(("transition", index, t.from_state.value, t.to_state.value, t.epoch, t.at))

    def on_write(write: _Write) -> None:
        events.put(("write", index, *write[1:]))

    try:
        store = _CountingStore(path, tally, on_write)
        breaker = CircuitBreaker(CIRCUIT, store=store, config=CONFIG, on_transition=on_transition)
        events.put(("ready", index))
        if not shared.go.wait(STARTUP_TIMEOUT):
            return
        plan = _Plan.of(shared.start_at.value, options)
        callers = [_Caller(breaker, plan, tally) for _ in range(options.threads)]
        threads = [threading.Thread(target=c.run, daemon=True) for c in callers]
        time.sleep(max(0.0, plan.start - time.time()))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, plan.end - time.time()) + 10)
        errors = [c.error for c in callers if c.error]
        if any(thread.is_alive() for thread in threads):
            errors.append("a calling thread hung")
        last_refused = max(c.last_refused for c in callers)
        events.put(("done", index, last_refused, errors[0] if errors else ""))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # e.g. the store could not be opened: the parent reports it
        events.put(("done", index, 0.0, f"{type(exc).__name__}: {exc}"))


# --- the parent: timeline and summary -----------------------------------------------------------


class _Transition(NamedTuple):
    worker: int
    from_state: str
    to_state: str
    epoch: int
    at: float

    @property
    def label(self) -> str:
        return f"{self.from_state}->{self.to_state}"


class _Fleet:
    """The worker processes and the messages they send (transitions, ready, done)."""

    def __init__(self, options: Options, path: Path) -> None:
        ctx = multiprocessing.get_context("spawn")  # children inherit nothing from us
        self.shared = _Shared(_Tally(ctx), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0))
        self.tally, self.events = self.shared.tally, self.shared.events
        self.processes: list[SpawnProcess] = [
            ctx.Process(
                target=_worker,
                args=(i, options, path, self.shared),
                name=f"fleetbreaker-demo-{i}",
                daemon=True,
            )
            for i in range(1, options.processes + 1)
        ]
        self.ready: set[int] = set()
        self.done: dict[int, tuple[float, str]] = {}
        self.transitions: list[_Transition] = []
        self.writes: list[_Write] = []
        self.initial: Record | None = None  # the record before the run (a reused --store-dir)

    def drain(self, until: float) -> None:
        """Take messages until the wall-clock time ``until``."""
        while True:
            try:
                message = self.events.get(timeout=max(0.0, until - time.time()))
            except queue.Empty:
                return
            kind, worker, *rest = message
            if kind == "transition":
                self.transitions.append(_Transition(worker, *rest))
            elif kind == "write":
                self.writes.append(_Write(worker, *rest))
            elif kind == "ready":
                self.ready.add(worker)
            else:
                self.done[worker] = (rest[0], rest[1])

    def wait_ready(self) -> bool:
        deadline = time.time() + STARTUP_TIMEOUT
        while len(self.ready) < len(self.processes) and time.time() < deadline:
            if any(p.exitcode is not None for p in self.processes):
                return False
            self.drain(time.time() + 0.1)
        return len(self.ready) == len(self.processes)

    def wait_done(self, deadline: float) -> None:
        while len(self.done) < len(self.processes) and time.time() < deadline:
            if all(p.exitcode is not None for p in self.processes):
                self.drain(time.time() + 0.2)  # what a dead worker sent last
                return
            self.drain(time.time() + 0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def _phase_label(plan: _Plan, start: float, end: float) -> str:
    first, last = plan.phase(start), plan.phase(end - 1e-6)
    if first == last:
        return _PHASE_LABELS[first]
    return f"{_PHASE_LABELS[first]}>{_PHASE_LABELS[last]}"


def _store_state(store: SQLiteStore) -> str:
    try:
        record = store.load(CIRCUIT)
    except StoreError:
        return "?"
    state = CircuitState.CLOSED if record is None else record.state
    return str(state.value) if state is CircuitState.CLOSED else str(state.value).upper()


_ROW = "{:>7}  {:<12}  {:<9}  {:>6}  {:>6}  {:>15}  {:>6}  {}"


def _timeline(fleet: _Fleet, plan: _Plan, store: SQLiteStore, options: Options) -> None:
    # About 0.5 s per row, fewer rows for long runs: the whole output stays near 50 lines.
    interval = max(0.5, math.ceil(options.total / 20 / 0.5) * 0.5)
    print(
        _ROW.format(
            "time",
            "downstream",
            "circuit",
            "calls",
            "failed",
            "short-circuited",
            "probes",
            "transitions persisted",
        )
    )
    previous = fleet.tally.tick()
    shown: set[_Transition] = set()
    rows = math.ceil(options.total / interval - 1e-9)
    for row in range(1, rows + 1):
        begin, end = (row - 1) * interval, min(row * interval, options.total)
        time.sleep(max(0.0, plan.start + end - time.time()))
        if row == rows:
            # The calls under way at the end belong to the last row: the rows add up to the
            # summary's totals.
            fleet.wait_done(plan.end + 15)
        values = fleet.tally.tick()
        state = _store_state(store)
        fleet.drain(plan.start + end + 0.05)  # let the hooks' messages of this interval arrive
        events = [t for t in fleet.transitions if t not in shown and t.at <= plan.start + end]
        shown.update(events)
        delta = [now - before for now, before in zip(values, previous, strict=True)]
        print(
            _ROW.format(
                f"{end:.1f} s",
                _phase_label(plan, plan.start + begin, plan.start + end),
                state,
                delta[_CALLS],
                delta[_FAILED],
                sum(delta[_REFUSED + phase] for phase in (HEALTHY, OUTAGE, HEALED)),
                values[_PROBES_MAX_TICK],
                ", ".join(t.label for t in sorted(events, key=lambda t: t.epoch)),
            ).rstrip(),
            flush=True,
        )
        previous = values


TRIP, CLAIM, SUCCESS, FAILURE, RELEASE, OTHER = (
    "trip",
    "claim",
    "success",
    "failure",
    "release",
    "other",
)
_KIND_NAMES: Final = {
    TRIP: ("trip", "trips"),
    CLAIM: ("probe claim", "probe claims"),
    SUCCESS: ("probe success", "probe successes"),
    FAILURE: ("probe failure", "probe failures"),
    RELEASE: ("probe release", "probe releases"),
    OTHER: ("other write", "other writes"),
}
_SHORT_NAMES: Final = {
    TRIP: ("trip", "trips"),
    CLAIM: ("claim", "claims"),
    SUCCESS: ("success", "successes"),
    FAILURE: ("failure", "failures"),
    RELEASE: ("release", "releases"),
    OTHER: ("other", "others"),
}


def _name(count: int, names: tuple[str, str]) -> str:
    return f"{count:,} {names[0] if count == 1 else names[1]}"


def _write_kinds(writes: list[_Write], initial: Record | None) -> list[str]:
    """The kind of each write, from its record and the record at the epoch it expected.

    Every epoch is written once (a compare-and-set bumps it), so the won writes, and the record
    found before the run, say what each write, won or lost, was replacing.
    """
    before: dict[int, tuple[str, int]] = {}
    if initial is not None:
        before[initial.epoch] = (initial.state.value, initial.successes)
    for write in writes:
        if write.result == WON:
            before[write.epoch] = (write.state, write.successes)

    def kind(write: _Write) -> str:
        absent = (CircuitState.CLOSED.value, 0)
        state, successes = absent if write.expected is None else before.get(write.expected, ("", 0))
        if write.state == CircuitState.OPEN.value:
            return {CircuitState.CLOSED.value: TRIP, CircuitState.HALF_OPEN.value: FAILURE}.get(
                state, OTHER
            )
        if write.state == CircuitState.HALF_OPEN.value and write.owned:
            return CLAIM
        if state != CircuitState.HALF_OPEN.value:
            return OTHER
        if write.state == CircuitState.CLOSED.value or write.successes > successes:
            return SUCCESS
        return RELEASE

    return [kind(write) for write in writes]


def _store_lines(fleet: _Fleet, plan: _Plan, reads: int, kinds: list[str]) -> list[str]:
    """The store's traffic: every write itemised by kind, the items adding up to the total."""
    writes = fleet.writes
    won = Counter(k for w, k in zip(writes, kinds, strict=True) if w.result == WON)
    lost = Counter(k for w, k in zip(writes, kinds, strict=True) if w.result == LOST)
    failed = sum(w.result == ERROR for w in writes)
    healthy = sum(w.at < plan.outage_at for w in writes)
    explain = {
        TRIP: "closed->open: a process counted failure_threshold="
        f"{CONFIG.failure_threshold} failures in a row",
        CLAIM: "the one probe slot taken (open, or half_open with the slot free)",
        SUCCESS: "freed the slot, or closed the circuit at success_threshold="
        f"{CONFIG.success_threshold} in a row",
        FAILURE: f"half_open->open for another recovery_timeout={CONFIG.recovery_timeout:g} s",
        RELEASE: "freed the slot without counting (the probe raised an ignored exception)",
        OTHER: "replaced a record this demo does not know (a reused --store-dir?)",
    }
    items: list[tuple[int, str, str]] = [
        (won[kind], _KIND_NAMES[kind][won[kind] != 1], why)
        for kind, why in explain.items()
        if won[kind] or kind in {TRIP, CLAIM, SUCCESS, FAILURE}
    ]
    tried = ", ".join(_name(n, _SHORT_NAMES[kind]) for kind, n in lost.most_common())
    lost_total = sum(lost.values())
    why = "another process had written first; nothing written"
    items.append((lost_total, "lost", f"{why} ({tried})" if tried else why))
    if failed:
        items.append((failed, "failed", "store errors: the writer kept its decision locally"))
    header = (
        f"  store                  {reads:,} reads; {len(writes):,} conditional writes "
        f"({sum(won.values()):,} won, {lost_total:,} lost), {healthy:,} while healthy"
    )
    lines = [header]
    lines += [f"{f'    {count:,} {label}':<23}  {why}" for count, label, why in items]
    return lines


def _heal_lines(fleet: _Fleet, plan: _Plan, kinds: list[str]) -> tuple[list[str], _Write | None]:
    """How the circuit closed after the heal, from the won writes (the record's history)."""
    kind_of = {w.epoch: k for w, k in zip(fleet.writes, kinds, strict=True) if w.result == WON}
    history = sorted((w for w in fleet.writes if w.result == WON), key=lambda w: w.epoch)
    closing = [
        i
        for i, w in enumerate(history)
        if w.state == CircuitState.CLOSED.value
        and kind_of[w.epoch] == SUCCESS
        and w.at >= plan.heal_at
    ]
    if not closing:
        return [
            "  heal -> closed         not closed by the end of the run (try a longer --after)"
        ], None
    close = history[closing[0]]
    opened_at = max(
        (i for i in range(closing[0]) if history[i].state == CircuitState.OPEN.value), default=-1
    )
    episode = history[opened_at + 1 : closing[0] + 1]
    claims = [w for w in episode if kind_of[w.epoch] == CLAIM]
    successes = sum(kind_of[w.epoch] == SUCCESS for w in episode)
    heal = plan.heal_at
    times = ", ".join(f"{w.at - heal:+.2f}" for w in claims)
    threshold = f"success_threshold={CONFIG.success_threshold}"
    if len(claims) == successes:
        did = f"{_plural(successes, 'probe')} in a row succeeded ({threshold}), claimed at"
    else:
        did = f"{successes} of {_plural(len(claims), 'probe')} succeeded ({threshold}), claimed at"
    text = f"{_seconds(close.at - heal)}: {did} {times} s after the heal."
    if opened_at >= 0 and claims:
        opened = history[opened_at]
        retry_at = opened.retry_at if opened.retry_at is not None else opened.at
        by = "the trip" if kind_of[opened.epoch] == TRIP else "a failed probe"
        text += (
            f" The first came {_seconds(claims[0].at - retry_at)} after retry_at "
            f"({retry_at - heal:+.2f} s): {by} at {opened.at - heal:+.2f} s had opened the "
            f"circuit for recovery_timeout={CONFIG.recovery_timeout:g} s."
        )
    if len(claims) > 1:
        text += (
            " The others came back to back: a success frees the slot at once (reserved a "
            "moment for its prober); only a failure waits recovery_timeout again."
        )
    return _wrap("  heal -> closed         ", text), close


def _wrap(head: str, text: str, width: int = 100) -> list[str]:
    return textwrap.wrap(
        text, width, initial_indent=head, subsequent_indent=" " * len(head), break_on_hyphens=False
    )


def _summary(fleet: _Fleet, plan: _Plan) -> list[str]:
    """Print the summary; return the guarantees that did not hold."""
    values = fleet.tally.tick()
    transitions = sorted(fleet.transitions, key=lambda t: t.epoch)
    counts = Counter(t.label for t in transitions)
    trips = [t for t in transitions if t.label == "closed->open"]
    broken: list[str] = []

    epochs = Counter(t.epoch for t in transitions)
    twice = sorted(epoch for epoch, n in epochs.items() if n > 1)
    chained = all(a.to_state == b.from_state for a, b in itertools.pairwise(transitions))
    if twice:
        broken.append(f"transitions at epoch(s) {twice} were reported by more than one process")
    if not chained:
        broken.append("the persisted transitions do not form one history")
    if len(trips) != 1:
        broken.append(f"expected exactly one closed->open for the one outage, got {len(trips)}")
    if values[_PROBES_MAX] > 1:
        broken.append(f"{values[_PROBES_MAX]} probes were in flight at once (at most 1 allowed)")
    errors = [f"worker {w}: {error}" for w, (_, error) in sorted(fleet.done.items()) if error]
    missing = [p.name for i, p in enumerate(fleet.processes, 1) if i not in fleet.done]
    broken += errors + [f"{name} did not finish" for name in missing]

    ok = "ok" if not (twice or not chained) else "BROKEN"
    history = ", ".join(f"{label} {n}" for label, n in counts.items()) or "none"
    refused = sum(values[_REFUSED + phase] for phase in (HEALTHY, OUTAGE, HEALED))
    print("\nsummary")
    print(
        f"  calls                  {values[_CALLS]:,} reached the downstream "
        f"({values[_FAILED]:,} failed), {refused:,} short-circuited"
    )
    print(f"  transitions persisted  {history}")
    print(f"                         each reported once, by the process that wrote it: {ok}")
    trip = (
        f"persisted by worker {trips[0].worker}, after {trips[0].at - plan.outage_at:.2f} s "
        "of outage"
        if len(trips) == 1
        else "expected exactly 1"
    )
    print(f"  trips                  {len(trips)} for 1 outage, {trip}")
    probes_ok = "ok" if values[_PROBES_MAX] <= 1 else "BROKEN"
    print(f"  max probes in flight   {values[_PROBES_MAX]} at once, fleet-wide: {probes_ok}")
    kinds = _write_kinds(fleet.writes, fleet.initial)
    heal_lines, close = _heal_lines(fleet, plan, kinds)
    print("\n".join(heal_lines))
    made = values[_OUTAGE_BEFORE_TRIP] + values[_OUTAGE_LATE] + values[_OUTAGE_PROBES]
    spared = values[_REFUSED + OUTAGE]
    print(f"  calls spared           {spared:,} short-circuited during the outage; the downstream")
    print(
        f"                         got {made:,}: {values[_OUTAGE_BEFORE_TRIP]:,} before the trip, "
        f"{values[_OUTAGE_LATE]:,} from processes yet to read it, "
        f"{_plural(values[_OUTAGE_PROBES], 'probe')}"
    )
    after, late = values[_REFUSED + HEALED], values[_HEALED_LATE]
    if close is None:
        text = f"{after:,} calls short-circuited (the circuit did not close)"
    else:
        text = (
            f"{after:,} calls short-circuited: {after - late:,} before the close, {late:,} "
            "after it by processes yet to read it"
        )
        last = max([last for last, _ in fleet.done.values()], default=0.0)
        if late and last > close.at:
            text += f" (the last {_seconds(last - close.at)} after the close)"
    print("\n".join(_wrap("  after the heal         ", text)))
    print("\n".join(_store_lines(fleet, plan, values[_READS], kinds)))
    return broken


def run(options: Options) -> int:
    """Run the demo and print it; 0 when the guarantees held, 1 when not, 2 on a bad store."""
    with tempfile.TemporaryDirectory(
        prefix="fleetbreaker-demo-", ignore_cleanup_errors=True
    ) as tmp:
        directory = Path(tmp) if options.store_dir is None else options.store_dir
        path = directory / DB_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            store = SQLiteStore(path)
        except (OSError, StoreError) as exc:
            print(f"fleetbreaker demo: cannot use {str(path)!r}: {exc}", file=sys.stderr)
            return 2
        where = "a temporary directory" if options.store_dir is None else str(path)
        print(
            f"fleetbreaker demo: {options.processes} processes x {options.threads} threads call "
            f"one downstream through\ncircuit {CIRCUIT!r}, shared in an SQLite store in {where}.\n"
            f"The downstream is healthy for {options.healthy:g} s, fails for {options.outage:g} s, "
            f"then stays healed for {options.after:g} s.\n"
            f"Each thread calls every {PERIOD * 1000:g} ms; "
            f"a call takes {CALL_SECONDS * 1000:g} ms. "
            f"Config: failure_threshold={CONFIG.failure_threshold},\n"
            f"recovery_timeout={CONFIG.recovery_timeout:g} s, "
            f"success_threshold={CONFIG.success_threshold}, "
            f"local_cache_max_age={CONFIG.local_cache_max_age:g} s.\n",
            flush=True,
        )
        fleet = _Fleet(options, path)
        try:
            fleet.initial = store.load(CIRCUIT)
        except StoreError:
            fleet.initial = None  # its writes are then reported as "other"
        try:
            for process in fleet.processes:
                process.start()
            if not fleet.wait_ready():
                fleet.drain(time.time() + 0.5)  # the reason a worker sent before it exited
                reasons = [f"\n      worker {w}: {error}" for w, (_, error) in fleet.done.items()]
                print("FAIL: the worker processes did not start" + "".join(reasons))
                return 1
            plan = _Plan.of(time.time() + 0.2, options)  # a moment for every worker to wake up
            fleet.shared.start_at.value = plan.start
            fleet.shared.go.set()
            _timeline(fleet, plan, store, options)
            fleet.wait_done(plan.end + 15)
        finally:
            fleet.stop()
            store.close()
        print(
            "\ncalls: calls that reached the downstream. probes: most probe calls in flight at "
            "once, fleet-wide\n(a probe is a call made while its process saw the circuit not "
            "closed)."
        )
        broken = _summary(fleet, plan)
    if broken:
        print("\nFAIL: " + "\n      ".join(broken))
        return 1
    print(
        "\nPASS: one trip persisted for the outage, and never more than one probe in flight "
        "fleet-wide."
    )
    return 0

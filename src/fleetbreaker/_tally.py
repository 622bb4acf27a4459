"""This process's counts of what its breakers did, for the metrics adapters to read.

Plain counters, no third-party import: ``fleetbreaker.metrics`` turns them into OpenTelemetry
instruments or a Prometheus collector that read them when scraped, so that no call ever calls
into a metrics library.

* :data:`SWITCH` is the process-wide "metrics on" switch. Off, nothing is counted and the
  healthy call is exactly what it was; on, a view admits a healthy call through the hot path
  that counts it (``View.tally_until`` and ``_shells``).
* A :class:`Tally` is one breaker's counts. A success on the hot path is one ``next()`` on an
  ``itertools.count`` (atomic under the GIL: no lock, no lost count); every other outcome is
  counted on a path that is slow already (a failure, a refusal, a probe, a store round trip),
  under the tally's own short lock.
* :func:`track` registers a breaker in a weak set (:func:`tracked`): a breaker that is dropped
  drops out of the metrics with it.

The labels kept are bounded: outcomes and states are fixed sets, and a circuit keeps at most
:data:`MAX_ERROR_TYPES` distinct exception names (any further one counts as :data:`OTHER`).

A shadow breaker (``Config(mode="shadow")``) counts what it would have done: a call it would
have refused is made, and counted as rejected (its outcome is not counted, as its rules do not
count it); its transitions and probes are those of its private store.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from fleetbreaker._fork import reset_after_fork

if TYPE_CHECKING:
    from fleetbreaker._admission import View
    from fleetbreaker._breaker import CircuitBreaker
    from fleetbreaker._protocol import Record
    from fleetbreaker.config import Config

__all__ = [
    "DURATION_BOUNDS",
    "MAX_ERROR_TYPES",
    "OTHER",
    "SWITCH",
    "CallKey",
    "Counts",
    "DurationSink",
    "Durations",
    "Tally",
    "add_duration_sink",
    "error_type",
    "remove_duration_sink",
    "track",
    "tracked",
]

logger = logging.getLogger("fleetbreaker")

# Call outcomes (``fleetbreaker.calls``).
SUCCESS: Final = "success"
FAILURE: Final = "failure"
IGNORED: Final = "ignored"
REJECTED: Final = "rejected"
# Probe outcomes (``fleetbreaker.probes``): a released probe counted neither way.
RELEASED: Final = "released"
PROBE_OUTCOMES: Final = (SUCCESS, FAILURE, RELEASED)
# Store operations and their results (``fleetbreaker.store.operations``).
LOAD: Final = "load"
COMPARE_AND_SET: Final = "compare_and_set"
OK: Final = "ok"
ERROR: Final = "error"
LOST: Final = "lost"  # a compare-and-set that another writer's write fenced off

MAX_ERROR_TYPES: Final = 20
"""Distinct ``error.type`` values one circuit keeps; further ones count as :data:`OTHER`."""
OTHER: Final = "_OTHER"
"""OpenTelemetry's fallback ``error.type``."""
RECORD_RESULT: Final = "record_result"
"""The ``error.type`` of a call that returned a value ``record_result`` judged a failure."""
SLOW_CALL: Final = "slow_call"
"""The ``error.type`` of a probe that failed by answering too slowly."""
RESULT_OR_SLOW: Final = "record_result_or_slow_call"
"""The ``error.type`` of a probe that failed without an exception when both could fail it (the
outcome a probe settles with does not say which)."""

DURATION_BOUNDS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the store-operation duration buckets: from a local SQLite file
(sub-millisecond) to a store timing out."""

CallKey = tuple[str, bool, str]
"""``(outcome, slow, error_type)``; ``error_type`` is ``""`` for an outcome without an error."""
TransitionKey = tuple[str, str, bool]
"""``(from_state, to_state, written_by_this_process)`` (state values)."""
OperationKey = tuple[str, str]
"""``(operation, result)``."""
DurationSink = Callable[[str, str, str, float], None]
"""``sink(circuit, operation, result, seconds)``, called after each store operation."""
_K = TypeVar("_K")


class _Switch:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


SWITCH: Final = _Switch()
"""``SWITCH.on``: metrics count calls in this process (``fleetbreaker.metrics`` sets it)."""

_tracked: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
# A WeakSet is iterated in Python code: a breaker built in another thread while a scrape copies
# the set would make the copy raise. Short: an add, or a copy.
_tracked_lock = threading.Lock()
_sinks: tuple[DurationSink, ...] = ()
_sinks_lock = threading.Lock()


def track(breaker: CircuitBreaker) -> Tally:
    """Register ``breaker`` (weakly) for the metrics to read, and return its new tally."""
    tally = Tally(breaker.name, breaker.config, breaker._mono)
    with _tracked_lock:
        _tracked.add(breaker)
    return tally


def tracked() -> list[CircuitBreaker]:
    """The live breakers of this process."""
    with _tracked_lock:
        return list(_tracked)


def add_duration_sink(sink: DurationSink) -> None:
    """Have ``sink`` called with the duration of every store operation from now on."""
    global _sinks  # noqa: PLW0603 - swapped whole: readers iterate a tuple without a lock
    with _sinks_lock:
        _sinks = (*_sinks, sink)


def remove_duration_sink(sink: DurationSink) -> None:
    global _sinks  # noqa: PLW0603 - see add_duration_sink
    with _sinks_lock:
        _sinks = tuple(s for s in _sinks if s is not sink)


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of an exception: its class's qualified name."""
    return type(exc).__qualname__


def _taken(counter: itertools.count[int]) -> int:
    """How many numbers ``counter`` (counting from 0) has handed out."""
    # As in _windows: a count's repr shows the next number and is built in one C call, so under
    # the GIL it is read as atomically as next() takes one.
    return int(repr(counter)[6:-1])


@dataclass(frozen=True, slots=True)
class Durations:
    """Store operations of one kind and result: how many, their total seconds, and how many
    fell in each bucket of :data:`DURATION_BOUNDS` (not cumulative; one more for beyond)."""

    count: int
    total: float
    buckets: tuple[int, ...]

    def plus(self, other: Durations) -> Durations:
        return Durations(
            self.count + other.count,
            self.total + other.total,
            tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
        )


@dataclass(frozen=True, slots=True)
class Counts:
    """What a tally (or several breakers of one circuit name, summed) has counted."""

    calls: Mapping[CallKey, int]
    transitions: Mapping[TransitionKey, int]
    probes: Mapping[str, int]
    operations: Mapping[OperationKey, Durations]

    def plus(self, other: Counts) -> Counts:
        """The sum of two circuits' counts (two breakers of one name in one process)."""
        operations = dict(self.operations)
        for key, durations in other.operations.items():
            mine = operations.get(key)
            operations[key] = durations if mine is None else mine.plus(durations)
        return Counts(
            _summed(self.calls, other.calls),
            _summed(self.transitions, other.transitions),
            _summed(self.probes, other.probes),
            operations,
        )


def _summed(a: Mapping[_K, int], b: Mapping[_K, int]) -> dict[_K, int]:
    total = dict(a)
    for key, n in b.items():
        total[key] = total.get(key, 0) + n
    return total


class Tally:
    """One breaker's counts since metrics were switched on (they are never reset).

    ``successes`` and ``rejections`` are counted with ``next()`` by the call shells; every
    other method is called on a slow path, and counts only while :data:`SWITCH` is on.
    """

    __slots__ = (
        "__weakref__",
        "_calls",
        "_config",
        "_errors",
        "_last",
        "_lock",
        "_operations",
        "_probes",
        "_shadow",
        "_transitions",
        "clock",
        "name",
        "rejections",
        "successes",
    )

    def __init__(self, name: str, config: Config, clock: Callable[[], float]) -> None:
        self.name = name
        self.clock = clock  # the breaker's monotonic clock: times slow calls and store operations
        self._config = config
        self._shadow = config.shadow
        # Counted by the call shells with next(): no lock. Never replaced, so a shell may keep
        # the counter itself in a local.
        self.successes = itertools.count()  # successes that were not slow
        self.rejections = itertools.count()
        self._lock = threading.Lock()  # short: guards the dicts below, never I/O
        self._calls: dict[CallKey, int] = {}
        self._errors: set[str] = set()  # the error types with a series of their own
        self._transitions: dict[TransitionKey, int] = {}
        self._probes = dict.fromkeys(PROBE_OUTCOMES, 0)
        self._operations: dict[OperationKey, list[float]] = {}  # count, total, *buckets
        # The newest record this process saw in the store, (epoch, state value): a read of a
        # newer one in another state is a transition another process wrote.
        self._last: tuple[int, str] | None = None
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a lock held by a parent's thread is never released here

    # --- calls -----------------------------------------------------------------------------

    def succeeded(self, view: View) -> None:
        """A call admitted on ``view`` returned, was not slow, and no rule judged it a failure."""
        if SWITCH.on and not self._would_refuse(view):
            next(self.successes)

    def rejected(self) -> None:
        """A call was refused (open circuit, a probe in flight, or this process's hold)."""
        if SWITCH.on:
            next(self.rejections)

    def raised(self, view: View, exc: Exception, start: float | None) -> None:
        """A call admitted on ``view`` at monotonic ``start`` (``None``: not timed) raised
        ``exc``: a failure, or ignored when the config does not count it."""
        if not SWITCH.on or self._would_refuse(view):
            return
        slow_after = self._config.slow_call_duration_threshold
        slow = slow_after is not None and start is not None and self.clock() - start >= slow_after
        outcome = FAILURE if self._config.counts(exc) else IGNORED
        self._count_call(outcome, error_type(exc), slow=slow)

    def returned(self, view: View, *, failed: bool, slow: bool) -> None:
        """A call admitted on ``view`` returned: a failure when ``record_result`` judged its
        value one."""
        if not SWITCH.on or self._would_refuse(view):
            return
        if failed:
            self._count_call(FAILURE, RECORD_RESULT, slow=slow)
        elif slow:
            self._count_call(SUCCESS, "", slow=True)
        else:
            next(self.successes)

    def settled(self, outcome: str, failure: object) -> None:
        """A probe ended with ``outcome`` (``success``, ``failure`` or ``release``, see
        ``_admission``); ``failure`` is its exception, or the value that failed it."""
        if not SWITCH.on:
            return
        probe = outcome if outcome in (SUCCESS, FAILURE) else RELEASED
        with self._lock:
            self._probes[probe] += 1
        # The probe was a call too (unless its caller was cancelled, or it never ran).
        if probe == SUCCESS:
            next(self.successes)
        elif probe == FAILURE:
            self._count_call(FAILURE, self._probe_error(failure), slow=False)
        elif isinstance(failure, Exception):
            self._count_call(IGNORED, error_type(failure), slow=False)

    def _would_refuse(self, view: View) -> bool:
        """Whether a call admitted on ``view`` is one a shadow breaker would have refused (and
        counts as such); its outcome is then not counted (``_route`` admits it, on a view that
        is not closed)."""
        if self._shadow and not view.closed:
            next(self.rejections)
            return True
        return False

    def _probe_error(self, failure: object) -> str:
        if isinstance(failure, Exception):
            return error_type(failure)
        config = self._config
        if config.record_result is None:
            return SLOW_CALL
        if config.slow_call_duration_threshold is None:
            return RECORD_RESULT
        return RESULT_OR_SLOW

    def _count_call(self, outcome: str, error: str, *, slow: bool) -> None:
        with self._lock:
            if error and error not in self._errors:
                if len(self._errors) < MAX_ERROR_TYPES:
                    self._errors.add(error)
                else:
                    error = OTHER
            key = (outcome, slow, error)
            self._calls[key] = self._calls.get(key, 0) + 1

    # --- transitions -----------------------------------------------------------------------

    def wrote(self, record: Record) -> None:
        """This process wrote ``record`` (a compare-and-set it won): a transition when its state
        differs from that of the newest record seen, the one it replaced.

        Every record the breaker acts on came through a store operation it made (a load, or a
        write of its own), so that record is the one its compare-and-set replaced.
        """
        if not SWITCH.on:
            return
        state = record.state.value
        with self._lock:
            last = self._last
            if last is not None and state != last[1]:
                self._count_transition(last[1], state, written=True)
            self._last = (record.epoch, state)

    def loaded(self, record: Record | None) -> None:
        """A read found ``record`` in the store (``None``: no record, a closed circuit)."""
        if not SWITCH.on:
            return
        # A store forgets a record long idle, and the next write starts the epochs afresh: an
        # absent record is older than any.
        epoch, state = (-1, "closed") if record is None else (record.epoch, record.state.value)
        with self._lock:
            last = self._last
            if last is not None and epoch <= last[0] and record is not None:
                return  # a read that raced a newer read or write of ours: nothing new
            if last is not None and state != last[1]:
                self._count_transition(last[1], state, written=False)
            self._last = (epoch, state)

    def _count_transition(self, from_state: str, to_state: str, *, written: bool) -> None:
        key = (from_state, to_state, written)
        self._transitions[key] = self._transitions.get(key, 0) + 1

    # --- store operations ------------------------------------------------------------------

    def operated(self, operation: str, result: str, seconds: float) -> None:
        """A store operation ended with ``result`` after ``seconds``."""
        if not SWITCH.on:
            return
        seconds = max(0.0, seconds)
        bucket = bisect.bisect_left(DURATION_BOUNDS, seconds)  # a bound is an inclusive "le"
        with self._lock:
            times = self._operations.get((operation, result))
            if times is None:
                times = self._operations[operation, result] = [0.0] * (len(DURATION_BOUNDS) + 3)
            times[0] += 1
            times[1] += seconds
            times[2 + bucket] += 1
        for sink in _sinks:
            try:
                sink(self.name, operation, result, seconds)
            except Exception:
                logger.exception("circuit %r: recording a store operation failed", self.name)

    # --- reading ---------------------------------------------------------------------------

    def read(self) -> Counts:
        """Everything counted so far."""
        with self._lock:
            calls = dict(self._calls)
            transitions = dict(self._transitions)
            probes = dict(self._probes)
            operations = {
                key: Durations(int(times[0]), times[1], tuple(int(n) for n in times[2:]))
                for key, times in self._operations.items()
            }
        fast = (SUCCESS, False, "")
        calls[fast] = calls.get(fast, 0) + _taken(self.successes)
        calls[REJECTED, False, ""] = _taken(self.rejections)
        return Counts(calls, transitions, probes, operations)

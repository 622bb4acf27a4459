"""Where a refused call spends its time: fleetbreaker's open circuit, piece by piece.

A diagnostic beside ``bench_overhead.py`` (not run by ``make bench``): it builds the refused
rows of the benchmark (``Config(failure_threshold=1, recovery_timeout=3600)`` on MemoryStore,
tripped by one failing call), then times the whole refused call and each piece of its path in
call order, inclusive of what the piece calls (ns per call, best of the repeats, the empty
loop subtracted). circuitbreaker's refusals and a bare raise are the yardsticks.

The pieces reach into private methods by name, inside timed statements: a piece the code no
longer has prints ``n/a`` instead of failing the run. ``--cprofile`` adds cProfile's table of
the refused call (its per-call figures include the profiler's own cost: read it for the call
tree and the call counts, and this script's table for the nanoseconds).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import timeit
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import circuitbreaker

from fleetbreaker import CircuitBreaker, CircuitInfo, CircuitOpenError, Config, MemoryStore

OPEN = Config(failure_threshold=1, recovery_timeout=3600)
FALLBACK = -1


class DownstreamError(Exception):
    """The failure that trips the breakers."""


def failing(x: int) -> int:
    raise DownstreamError(x)


def fallback(_x: int, *, circuit: CircuitInfo) -> int:  # noqa: ARG001
    return FALLBACK


def _tripped(wrapped: Callable[[int], object]) -> Callable[[int], object]:
    with suppress(DownstreamError):
        wrapped(1)
    return wrapped


def _thrower(info: CircuitInfo) -> Callable[[], None]:
    """Raise ``CircuitOpenError(info)`` two frames below the caller (the wrapper's depth)."""

    def short_circuit() -> None:
        raise CircuitOpenError(info)

    def call_slow() -> None:
        short_circuit()

    def wrapper() -> None:
        call_slow()

    return wrapper


def namespace() -> dict[str, Any]:
    store = MemoryStore()
    breaker = CircuitBreaker("profile-open", store=store, config=OPEN)
    with_fallback = CircuitBreaker(
        "profile-open-fallback", store=store, config=OPEN, on_circuit_open=fallback
    )
    fb = _tripped(breaker(failing))
    fb_fallback = _tripped(with_fallback(failing))
    cb = _tripped(circuitbreaker.circuit(failure_threshold=1, recovery_timeout=3600)(failing))
    cb_fallback = _tripped(
        circuitbreaker.circuit(
            failure_threshold=1,
            recovery_timeout=3600,
            name="profile-open-fallback",
            fallback_function=lambda _x: FALLBACK,
        )(failing)
    )
    with suppress(CircuitOpenError):
        fb(1)
    info = breaker.info()
    return {
        "breaker": breaker,
        "with_fallback": with_fallback,
        "fb": fb,
        "fb_fallback": fb_fallback,
        "cb": cb,
        "cb_fallback": cb_fallback,
        "CBError": circuitbreaker.CircuitBreakerError,
        "CircuitOpenError": CircuitOpenError,
        "CircuitInfo": CircuitInfo,
        "DownstreamError": DownstreamError,
        "failing": failing,
        "fallback": fallback,
        "suppress": suppress,
        "info": info,
        "thrower": _thrower(info),
    }


def _caught(statement: str, error: str = "CircuitOpenError") -> str:
    return f"try: {statement}\nexcept {error}: pass"


# (label, statement, indent): the refused call's path in call order; inclusive times.
PIECES: list[tuple[str, str, int]] = [
    ("circuitbreaker: refused, raised and caught", _caught("cb(1)", "CBError"), 0),
    ("circuitbreaker: refused, fallback_function", "cb_fallback(1)", 0),
    ("raise + catch DownstreamError, no breaker", _caught("failing(1)", "DownstreamError"), 0),
    ("fleetbreaker: refused, raised and caught", _caught("fb(1)"), 0),
    ("fleetbreaker: refused, on_circuit_open fallback", "fb_fallback(1)", 0),
    ("_switch.bypassed()", "bypassed()", 1),
    ("os.environ.get(unset variable) (raises KeyError inside)", "environ.get(ENV_VAR, '')", 2),
    ("breaker._admit_sync()", "breaker._admit_sync()", 1),
    ("breaker._admit_cached()", "breaker._admit_cached()", 2),
    ("breaker._mono()", "breaker._mono()", 3),
    ("breaker._route(view)", "breaker._route(view)", 3),
    ("protocol.route(...)", "route(record, elapsed=1.0, config=config, owner=owner)", 4),
    ("protocol.open_period(record, config)", "open_period(record, config)", 5),
    ("Ticket(Kind.REJECT, view)", "Ticket(Kind.REJECT, view)", 3),
    ("breaker._short_circuit(...), raising, caught", _caught("short(view, (1,), {})"), 1),
    ("breaker._info(view)", "breaker._info(view)", 2),
    ("protocol.open_period(record, config)", "open_period(record, config)", 3),
    ("CircuitInfo.from_record(name, record, 0)", "CircuitInfo.from_record('x', record, 0)", 3),
    ("CircuitOpenError(info)", "CircuitOpenError(info)", 2),
    ("raise + catch CircuitOpenError(info), 1 frame", _caught("raise CircuitOpenError(info)"), 2),
    ("raise + catch CircuitOpenError(info), 3 frames", _caught("thrower()"), 2),
    ("with_fallback._short_circuit(...), fallback", "short_fb(view_fb, (1,), {}, sync=True)", 1),
    ("the fallback: fallback(1, circuit=info)", "fallback(1, circuit=info)", 2),
]
SETUP = """
from os import environ
from fleetbreaker._switch import bypassed, ENV_VAR
from fleetbreaker._protocol import route, open_period
from fleetbreaker._admission import Ticket, Kind
with suppress(CircuitOpenError):
    fb(1)  # re-reads a view past its 5 s freshness, as a refused call does
fb_fallback(1)
view, view_fb = breaker._view, with_fallback._view
record, config, owner = view.record, breaker.config, breaker._owner
short, short_fb = breaker._short_circuit, with_fallback._short_circuit
"""


def time_piece(statement: str, scope: dict[str, Any], number: int, repeats: int) -> float:
    best = min(timeit.repeat(statement, SETUP, number=number, repeat=repeats, globals=scope))
    return best / number * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=100_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cprofile", action="store_true", help="add cProfile's table")
    args = parser.parse_args(argv)

    scope = namespace()
    empty = time_piece("pass", scope, args.number, args.repeats)
    width = max(len(label) + 2 * indent for label, _, indent in PIECES)
    print(f"{'refused call and its pieces (inclusive)':<{width}}  {'ns/call':>8}")
    for label, statement, indent in PIECES:
        try:
            figure = f"{time_piece(statement, scope, args.number, args.repeats) - empty:>8.0f}"
        except (AttributeError, ImportError, NameError, TypeError) as exc:
            figure = f"     n/a  ({type(exc).__name__}: {exc})"
        print(f"{'  ' * indent + label:<{width}}  {figure}")
    print(
        f"\nbest of {args.repeats} x {args.number:,} calls, the empty loop's "
        f"{empty:.0f} ns subtracted; a piece includes the pieces indented below it."
    )

    if args.cprofile:
        fb = scope["fb"]

        def refused(n: int) -> None:
            for _ in range(n):
                with suppress(CircuitOpenError):
                    fb(1)

        profile = cProfile.Profile()
        profile.runcall(refused, args.number)
        print()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())

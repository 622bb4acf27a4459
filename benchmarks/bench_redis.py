"""fleetbreaker's RedisStore against pybreaker's CircuitRedisStorage, on one Redis, in one run.

The script starts its own ``redis-server`` (127.0.0.1, a free port, persistence off) and stops
it at the end. Both breakers protect the same trivial downstream, ``downstream(x) -> x``, with
their default settings, through redis-py clients with the same 250 ms timeouts. It measures:

* **healthy-path cost** per call (closed circuit): fleetbreaker serves it from its cached view,
  pybreaker reads Redis on every call and writes on every success;
* **Redis round trips per 10,000 calls**, counted in the client (one per command or pipeline
  sent), for a healthy burst, a healthy minute and a dead downstream;
* **a probe's claim and release**: the first call after the recovery timeout, which claims the
  probe slot, calls, and writes the outcome back (pybreaker: its half-open trial call).

``--quick`` is a smoke run for the test suite (few calls; the figures mean nothing).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from itertools import repeat
from typing import Any

try:
    import pybreaker
    import redis
    import redis.backoff
    import redis.retry
except ImportError as exc:
    sys.exit(f"bench_redis: {exc}; install the extras: .venv/bin/pip install -e '.[redis,bench]'")

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config
from fleetbreaker._protocol import Record
from fleetbreaker.stores.redis import RedisStore
from fleetbreaker.testing import FakeClock
from local_server import free_port, local_server
from store_timing import (
    DownstreamError,
    ProbeTimes,
    adownstream,
    async_runner,
    downstream,
    failing,
    ns_per_call,
    sync_runner,
)

CIRCUIT = "bench-backend"
FAILURES = 5  # both libraries' default failure threshold


@dataclass(frozen=True)
class Mode:
    repeats: int
    fleet_calls: int  # per timing repeat
    pybreaker_calls: int  # per timing repeat: every one is a Redis round trip or two
    trip_calls: int  # calls per round-trip scenario (the report scales to 10,000)
    probes: int


FULL = Mode(repeats=7, fleet_calls=200_000, pybreaker_calls=3_000, trip_calls=10_000, probes=300)
QUICK = Mode(repeats=2, fleet_calls=2_000, pybreaker_calls=200, trip_calls=500, probes=20)


# --- Redis ---------------------------------------------------------------------------------------


class CountingConnection(redis.Connection):
    """A redis-py connection that counts what it sends: one round trip per send."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def counted_client(port: int) -> redis.Redis:
    """A client with the bounded settings ``RedisStore.from_url`` would choose, but counted."""
    pool = redis.ConnectionPool(
        connection_class=CountingConnection,
        host="127.0.0.1",
        port=port,
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )
    return redis.Redis(connection_pool=pool)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server() -> Iterator[int]:
    """Run redis-server in memory on a free port; yield the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("bench_redis: redis-server is not installed; run `make system-deps`")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fleetbreaker-bench-") as directory:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", directory, "--logfile", ""]
        with local_server("bench_redis: redis-server", args, lambda: _answers_ping(port)):
            yield port


# --- subjects ------------------------------------------------------------------------------------


@dataclass
class Subjects:
    port: int
    store: RedisStore
    fleet: CircuitBreaker
    fleet_clock: FakeClock
    fleet_paced: CircuitBreaker
    py: pybreaker.CircuitBreaker
    py_storage: pybreaker.CircuitRedisStorage
    raw: redis.Redis


def build(port: int) -> Subjects:
    client = counted_client(port)
    store = RedisStore(client=client, prefix="bench:")
    clock = FakeClock()
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=CIRCUIT)
    return Subjects(
        port=port,
        store=store,
        fleet=CircuitBreaker(CIRCUIT, store=store),
        fleet_clock=clock,
        fleet_paced=CircuitBreaker(CIRCUIT + "-paced", store=store, clock=clock),
        py=pybreaker.CircuitBreaker(state_storage=storage),
        py_storage=storage,
        raw=redis.Redis(port=port),
    )


def reset(s: Subjects) -> None:
    """Every circuit closed and forgotten, in Redis and in both breakers' local state."""
    s.raw.flushall()
    s.py_storage.state = pybreaker.STATE_CLOSED
    s.py_storage.reset_counter()
    s.py.close()
    s.fleet = CircuitBreaker(CIRCUIT, store=s.store)


# --- measurements --------------------------------------------------------------------------------


def healthy_path(s: Subjects, mode: Mode) -> dict[str, float]:
    fleet_fn = s.fleet(downstream)
    py_fn = s.py(downstream)

    fleet_afn = s.fleet(adownstream)

    return {
        "bare call": ns_per_call(sync_runner(downstream), mode.fleet_calls, mode.repeats),
        "fleetbreaker RedisStore @breaker": ns_per_call(
            sync_runner(fleet_fn), mode.fleet_calls, mode.repeats
        ),
        "bare await": ns_per_call(async_runner(adownstream), mode.fleet_calls, mode.repeats),
        "fleetbreaker RedisStore async @breaker": ns_per_call(
            async_runner(fleet_afn), mode.fleet_calls, mode.repeats
        ),
        "pybreaker CircuitRedisStorage": ns_per_call(
            sync_runner(py_fn), mode.pybreaker_calls, mode.repeats
        ),
    }


def count_round_trips(calls: int, each: Callable[[], object]) -> int:
    """Round trips made by ``calls`` calls of ``each`` (refusals, downstream errors ignored)."""
    before = CountingConnection.sent
    for _ in repeat(None, calls):
        try:
            each()
        except (DownstreamError, CircuitOpenError, pybreaker.CircuitBreakerError):
            pass
    return CountingConnection.sent - before


def round_trips(s: Subjects, mode: Mode) -> list[tuple[str, int, int]]:
    """(scenario, fleetbreaker, pybreaker) round trips, scaled to 10,000 calls."""
    n = mode.trip_calls
    scale = 10_000 / n
    rows = []

    reset(s)
    fleet = count_round_trips(n, lambda: s.fleet.call(downstream, 1))
    py = count_round_trips(n, lambda: s.py.call(downstream, 1))
    rows.append(("healthy, back to back", fleet, py))

    # A minute of steady traffic: fleetbreaker re-reads its view every local_cache_max_age (5 s)
    # of the fake clock; pybreaker's count does not depend on time (one read per call anyway).
    reset(s)
    pace = 60.0 / n

    def paced() -> None:
        s.fleet_clock.advance(pace)
        s.fleet_paced.call(downstream, 1)

    fleet = count_round_trips(n, paced)
    py = count_round_trips(n, lambda: s.py.call(downstream, 1))
    rows.append(("healthy, spread over 60 s", fleet, py))

    reset(s)
    fleet = count_round_trips(n, lambda: s.fleet.call(failing, 1))
    py = count_round_trips(n, lambda: s.py.call(failing, 1))
    rows.append(("downstream down (trip, then refusals)", fleet, py))
    return [(label, round(f * scale), round(p * scale)) for label, f, p in rows]


def probes(s: Subjects, count: int) -> tuple[ProbeTimes, ProbeTimes]:
    """The first call after the recovery timeout, for fleetbreaker and for pybreaker.

    fleetbreaker's claims the probe slot of an open circuit, calls, and writes the outcome back;
    pybreaker's is its half-open trial call. The two alternate, so a slow spell of the machine
    hits both alike; the first five of each warm up and are dropped.
    """
    clock = FakeClock()
    breaker = CircuitBreaker(CIRCUIT + "-probe", store=s.store, clock=clock, config=Config())
    py_opened_at = s.py_storage._namespace("opened_at")
    fleet, py = (
        ProbeTimes(lambda: CountingConnection.sent),
        ProbeTimes(lambda: CountingConnection.sent),
    )
    for _ in range(count + 5):
        now = clock.wall()
        current = s.store.load(breaker.name)
        expected = None if current is None else current.epoch
        is_open = Record(
            CircuitState.OPEN,
            1 if expected is None else expected + 1,
            opened_at=now - 60,
            retry_at=now - 1,
            failure_count=FAILURES,
            updated_at=now,
            expires_at=now + 3600,
        )
        assert s.store.compare_and_set(breaker.name, expected, is_open)
        clock.advance(1.0)  # this process's view of the circuit is stale: it must look
        fleet.time(lambda: breaker.call(downstream, 1))
        after = s.store.load(breaker.name)  # the probe was counted, and the slot freed
        assert after is not None
        assert (after.state, after.successes, after.probe_owner) == (
            CircuitState.HALF_OPEN,
            1,
            None,
        )

        s.py.open()
        s.raw.set(py_opened_at, int(time.time()) - 3600)  # its reset timeout has passed
        py.time(lambda: s.py.call(downstream, 1))
        assert s.py.current_state == pybreaker.STATE_CLOSED
    for times in (fleet, py):
        del times.micros[:5], times.round_trips[:5]
    return fleet, py


def get_round_trip(s: Subjects, samples: int) -> float:
    """Median microseconds of one redis-py GET: the floor under every store operation."""
    client = counted_client(s.port)
    client.get("warm")
    micros = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        client.get("nothing")
        micros.append((time.perf_counter_ns() - start) / 1000)
    client.close()
    return statistics.median(micros)


# --- report --------------------------------------------------------------------------------------


def main() -> None:
    # The breakers' own transition logs would interleave with the figures.
    logging.getLogger("fleetbreaker").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; figures meaningless")
    mode = QUICK if parser.parse_args().quick else FULL
    with redis_server() as port:
        s = build(port)
        reset(s)
        healthy = healthy_path(s, mode)
        trips = round_trips(s, mode)
        reset(s)
        fleet_probe, py_probe = probes(s, mode.probes)
        floor = get_round_trip(s, mode.probes)
        server_version = s.raw.info("server")["redis_version"]
        s.store.close()
        s.raw.close()

    print(f"fleetbreaker RedisStore vs pybreaker {version('pybreaker')} CircuitRedisStorage")
    python = sys.version.split()[0]
    print(f"Python {python}, redis-py {redis.__version__}, redis-server {server_version}")
    print("on 127.0.0.1 (a remote Redis adds its network round trip to every Redis figure)\n")

    print("Healthy path, closed circuit (ns per call, best of repeats)")
    bare, fleet = healthy["bare call"], healthy["fleetbreaker RedisStore @breaker"]
    for label, ns in healthy.items():
        base = healthy["bare await"] if "await" in label or "async" in label else bare
        extra = "" if label.startswith("bare") else f"   overhead {ns - base:>10,.0f} ns"
        print(f"  {label:<40} {ns:>12,.0f} ns{extra}")
    py = healthy["pybreaker CircuitRedisStorage"]
    print(
        f"  ratio pybreaker / fleetbreaker overhead: {(py - bare) / max(fleet - bare, 1):,.0f}x\n"
    )

    print("Redis round trips per 10,000 calls       fleetbreaker   pybreaker   ratio")
    for label, fleet_trips, py_trips in trips:
        ratio = f"{py_trips / fleet_trips:,.0f}x" if fleet_trips else "no trips"
        print(f"  {label:<38} {fleet_trips:>12,} {py_trips:>11,} {ratio:>7}")

    print(f"\nProbe claim and release (first call after the recovery timeout; {mode.probes} runs)")
    print(f"  one redis-py GET round trip, median    {floor:>8.0f} us")
    for label, probe in (("fleetbreaker", fleet_probe), ("pybreaker", py_probe)):
        trips_each = statistics.median(probe.round_trips)
        print(
            f"  {label:<12} median {probe.median:>8.0f} us   p99 {probe.p99:>8.0f} us"
            f"   round trips {trips_each:.0f}"
        )
    print(f"  ratio pybreaker / fleetbreaker (median): {py_probe.median / fleet_probe.median:.2f}x")
    print(
        "  (fleetbreaker: read, claim by compare-and-set, call, write the outcome fenced by the\n"
        "   claim; pybreaker: no fleet-wide claim, any number of processes may probe at once)"
    )


if __name__ == "__main__":
    main()

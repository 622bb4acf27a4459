"""fleetbreaker's PostgresStore on a local PostgreSQL: the figures ``bench_redis.py`` gives for
Redis, in the same layout, so that the two sit side by side.

The script initdb's a throwaway cluster (127.0.0.1, a free port, fsync off; as the ``postgres``
user when run as root, since PostgreSQL refuses root) and removes it at the end. The breaker
protects a trivial downstream, ``downstream(x) -> x``, with default settings. It measures:

* **healthy-path cost** per call (closed circuit), served from the breaker's cached view;
* **PostgreSQL round trips per 10,000 calls** (one per statement), for a healthy burst, a
  healthy minute and a dead downstream;
* **a probe's claim and release**: the first call after the recovery timeout, which claims the
  probe slot, calls, and writes the outcome back.

``--quick`` is a smoke run for the test suite (few calls; the figures mean nothing).
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

try:
    import psycopg
    from psycopg import pq
except ImportError as exc:
    sys.exit(f"bench_postgres: {exc}; install the extra: .venv/bin/pip install -e '.[postgres]'")

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config
from fleetbreaker._protocol import Record
from fleetbreaker.stores._pg_wire import Result
from fleetbreaker.stores.postgres import PostgresStore
from fleetbreaker.testing import FakeClock
from local_server import free_port
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
FAILURES = 5


@dataclass(frozen=True)
class Mode:
    repeats: int
    fleet_calls: int
    trip_calls: int
    probes: int


FULL = Mode(repeats=7, fleet_calls=200_000, trip_calls=10_000, probes=300)
QUICK = Mode(repeats=2, fleet_calls=2_000, trip_calls=500, probes=20)


# --- PostgreSQL ----------------------------------------------------------------------------------


def _binaries() -> Path:
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    sys.exit(
        "bench_postgres: PostgreSQL's server binaries (initdb, postgres) are not installed "
        "under /usr/lib/postgresql/*/bin; run `make system-deps`"
    )


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a throwaway cluster on a free port; yield its DSN."""
    bin_dir = _binaries()
    as_user: dict[str, Any] = {}
    directory = Path(tempfile.mkdtemp(prefix="fleetbreaker-bench-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    data, port = directory / "data", free_port()
    try:
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                *("-D", str(data), "-U", "postgres", "--auth=trust"),
                *("--no-sync", "-E", "UTF8", "--locale=C"),
            ],
            check=True,
            capture_output=True,
            **as_user,
        )
        args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
        for setting in (
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={directory}",
            "fsync=off",
        ):
            args += ["-c", setting]
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_user,
        )
        conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=postgres".encode()
        deadline = time.monotonic() + 30
        while pq.PGconn.ping(conninfo) != pq.Ping.OK:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("bench_postgres: postgres did not start")
            time.sleep(0.05)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class CountingStore(PostgresStore):
    """A PostgresStore that counts its statements: one round trip each (connections are warm)."""

    sent = 0

    def _run(self, operation: str, name: str, sql: bytes, params: Sequence[bytes | None]) -> Result:
        CountingStore.sent += 1
        return super()._run(operation, name, sql, params)

    async def _arun(
        self, operation: str, name: str, sql: bytes, params: Sequence[bytes | None]
    ) -> Result:
        CountingStore.sent += 1
        return await super()._arun(operation, name, sql, params)


# --- measurements --------------------------------------------------------------------------------


def healthy_path(store: PostgresStore, mode: Mode) -> dict[str, float]:
    breaker = CircuitBreaker(CIRCUIT, store=store)
    fleet_fn = breaker(downstream)

    fleet_afn = breaker(adownstream)

    return {
        "bare call": ns_per_call(sync_runner(downstream), mode.fleet_calls, mode.repeats),
        "fleetbreaker PostgresStore @breaker": ns_per_call(
            sync_runner(fleet_fn), mode.fleet_calls, mode.repeats
        ),
        "bare await": ns_per_call(async_runner(adownstream), mode.fleet_calls, mode.repeats),
        "fleetbreaker PostgresStore async @breaker": ns_per_call(
            async_runner(fleet_afn), mode.fleet_calls, mode.repeats
        ),
    }


def count_round_trips(calls: int, each: Callable[[], object]) -> int:
    before = CountingStore.sent
    for _ in repeat(None, calls):
        try:
            each()
        except (DownstreamError, CircuitOpenError):
            pass
    return CountingStore.sent - before


def round_trips(store: PostgresStore, mode: Mode) -> list[tuple[str, int]]:
    """(scenario, round trips) scaled to 10,000 calls; each scenario on a circuit of its own."""
    n = mode.trip_calls
    rows = []
    burst = CircuitBreaker(CIRCUIT + "-burst", store=store)
    rows.append(("healthy, back to back", count_round_trips(n, lambda: burst.call(downstream, 1))))
    clock = FakeClock()
    paced_breaker = CircuitBreaker(CIRCUIT + "-paced", store=store, clock=clock)
    pace = 60.0 / n

    def paced() -> None:
        clock.advance(pace)
        paced_breaker.call(downstream, 1)

    rows.append(("healthy, spread over 60 s", count_round_trips(n, paced)))
    down = CircuitBreaker(CIRCUIT + "-down", store=store)
    rows.append(
        (
            "downstream down (trip, then refusals)",
            count_round_trips(n, lambda: down.call(failing, 1)),
        )
    )
    return [(label, round(trips * 10_000 / n)) for label, trips in rows]


def probes(store: PostgresStore, count: int) -> ProbeTimes:
    """The first call after the recovery timeout: claim the probe slot, call, settle."""
    clock = FakeClock()
    breaker = CircuitBreaker(CIRCUIT + "-probe", store=store, clock=clock, config=Config())
    times = ProbeTimes(lambda: CountingStore.sent)
    for _ in range(count + 5):
        now = clock.wall()
        current = store.load(breaker.name)
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
        assert store.compare_and_set(breaker.name, expected, is_open)
        clock.advance(1.0)  # this process's view of the circuit is stale: it must look
        times.time(lambda: breaker.call(downstream, 1))
        after = store.load(breaker.name)
        assert after is not None
        assert (after.state, after.successes, after.probe_owner) == (
            CircuitState.HALF_OPEN,
            1,
            None,
        )
    del times.micros[:5], times.round_trips[:5]
    return times


def select_round_trip(dsn: str, samples: int) -> tuple[float, int]:
    """Median microseconds of one psycopg ``SELECT 1``: the floor under every operation."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT 1")
        micros = []
        for _ in range(samples):
            start = time.perf_counter_ns()
            conn.execute("SELECT 1")
            micros.append((time.perf_counter_ns() - start) / 1000)
        server_version = conn.info.server_version
    return statistics.median(micros), server_version


# --- report --------------------------------------------------------------------------------------


def main() -> None:
    # The breakers' own transition logs would interleave with the figures.
    logging.getLogger("fleetbreaker").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; figures meaningless")
    mode = QUICK if parser.parse_args().quick else FULL
    with postgres_server() as dsn:
        store = CountingStore(dsn)
        store.names()  # the table created, a connection open
        healthy = healthy_path(store, mode)
        trips = round_trips(store, mode)
        probe = probes(store, mode.probes)
        floor, server_version = select_round_trip(dsn, mode.probes)
        store.close()

    print("fleetbreaker PostgresStore (the layout of bench_redis.py, to read beside it)")
    python = sys.version.split()[0]
    major, minor = divmod(int(server_version), 10_000)
    client = f"psycopg {psycopg.__version__} ({pq.__impl__})"
    print(f"Python {python}, {client}, PostgreSQL {major}.{minor}")
    print("on 127.0.0.1 (a remote server adds its network round trip to every store figure)\n")

    print("Healthy path, closed circuit (ns per call, best of repeats)")
    bare = healthy["bare call"]
    for label, ns in healthy.items():
        base = healthy["bare await"] if "await" in label or "async" in label else bare
        extra = "" if label.startswith("bare") else f"   overhead {ns - base:>10,.0f} ns"
        print(f"  {label:<42} {ns:>12,.0f} ns{extra}")

    print("\nPostgreSQL round trips per 10,000 calls  fleetbreaker")
    for label, count in trips:
        print(f"  {label:<38} {count:>12,}")

    print(f"\nProbe claim and release (first call after the recovery timeout; {mode.probes} runs)")
    print(f"  one psycopg SELECT 1 round trip, median {floor:>8.0f} us")
    trips_each = statistics.median(probe.round_trips)
    print(
        f"  fleetbreaker median {probe.median:>8.0f} us   p99 {probe.p99:>8.0f} us"
        f"   round trips {trips_each:.0f}"
    )
    print(
        "  (read, claim by compare-and-set, call, write the outcome fenced by the claim;\n"
        "   each an autocommit statement on a warm connection)"
    )


if __name__ == "__main__":
    main()

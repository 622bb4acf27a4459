"""PostgresStore under faults, against real clusters: death and restart, a stopped server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg_pool
import pytest

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config, StoreError
from fleetbreaker.stores.postgres import PostgresStore
from fleetbreaker.testing import FakeClock
from tests.helpers import every_operation_fails_fast, timed
from tests.helpers import open_record as rec
from tests.servers.postgres_servers import PostgresServer

TIMEOUT = 0.25
# What a call may take on a loaded 2-core runner beyond its timeout: scheduling, not waiting.
SLACK = 0.5


class DownstreamError(Exception):
    pass


def fail() -> None:
    raise DownstreamError


def test_dead_server_fails_fast_and_a_restart_is_picked_up(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    """Killed: each call is a quick StoreError. Restarted on its port: the next call works."""
    server = postgres_server_factory()
    store = PostgresStore(server.dsn, timeout=TIMEOUT)
    first = rec(1)
    assert store.compare_and_set("c", None, first)
    server.kill()
    every_operation_fails_fast(store, says="cannot reach the server", within=TIMEOUT + SLACK)
    server.start()
    # The record survived (the cluster's files did): the idle connection the kill closed is
    # noticed and replaced, so the first call after the restart already answers.
    assert store.load("c") == first
    assert store.compare_and_set("c", 1, rec(2))
    store.close()


def test_a_restart_between_calls_costs_no_call(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    """A server restarted while the store's connections sat idle closed them: the store sees
    that before using one, so the first call after the restart already answers."""
    server = postgres_server_factory()
    store = PostgresStore(server.dsn, timeout=TIMEOUT)
    first = rec(1)
    assert store.compare_and_set("c", None, first)
    server.stop()
    server.start()
    assert store.load("c") == first
    assert store.compare_and_set("c", 1, rec(2))
    store.close()


def test_a_probe_survives_the_server_dying_under_it_and_completes_after_its_restart(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    """A breaker holds a probe claim when PostgreSQL is killed: the probe's result is the
    caller's, every call meanwhile answers (failing open) without hanging, and after the
    restart the fleet shares one state again and the probe protocol completes."""
    server = postgres_server_factory()
    clock = FakeClock()
    config = Config(
        failure_threshold=2, recovery_timeout=10, success_threshold=2, local_cache_max_age=1.0
    )
    stores = [PostgresStore(server.dsn, timeout=TIMEOUT) for _ in range(2)]
    a, b = (CircuitBreaker("payments", store=s, config=config, clock=clock) for s in stores)
    for _ in range(2):
        with pytest.raises(DownstreamError):
            a.call(fail)
    clock.advance(1.5)
    with pytest.raises(CircuitOpenError):
        b.call(str.upper, "ok")  # b has read the trip
    clock.advance(10)

    def probe_while_the_server_dies() -> str:
        record = stores[1].load("payments")  # the claim is in the store while we probe
        assert record is not None
        assert (record.state, record.probe_owner) == (CircuitState.HALF_OPEN, a.info().probe_owner)
        server.kill()
        return "probed"

    assert a.call(probe_while_the_server_dies) == "probed"  # the settle failed: still ours
    for breaker in (a, b, a, b):
        clock.advance(2.0)  # views stale: each call goes to the dead store (or its backoff)
        error, elapsed = timed(lambda breaker=breaker: breaker.call(str.upper, "ok"))  # type: ignore[misc]
        assert error is None or isinstance(error, CircuitOpenError), error
        assert elapsed < TIMEOUT + SLACK
    server.start()
    clock.advance(60.0)  # past any store backoff and the orphaned claim's probe timeout
    for _ in range(4):
        if a.info().state is CircuitState.CLOSED:
            break
        try:
            a.call(str.upper, "ok")
        except CircuitOpenError:
            clock.advance(1.0)
    assert stores[0].load("payments") is not None
    assert stores[0].load("payments").state is CircuitState.CLOSED  # type: ignore[union-attr]
    clock.advance(2.0)
    assert b.call(str.upper, "ok") == "OK"
    assert b.info().state is CircuitState.CLOSED
    for store in stores:
        store.close()


def test_async_connections_survive_a_restart_within_one_loop(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    """In a long-lived loop, async calls fail while the server is down, then recover."""
    server = postgres_server_factory()
    store = PostgresStore(server.dsn, timeout=TIMEOUT)

    async def scenario() -> None:
        assert await store.acompare_and_set("c", None, rec(1))
        server.kill()
        with pytest.raises(StoreError, match="cannot reach the server"):
            await store.aload("c")
        with pytest.raises(StoreError, match="cannot reach the server"):
            await store.acompare_and_set("c", 1, rec(2))
        server.start()
        assert await store.aload("c") is not None
        assert await store.acompare_and_set("c", 1, rec(2))

    asyncio.run(scenario())
    store.close()


@pytest.fixture
def stopped_server(postgres_server_factory: Callable[[], PostgresServer]) -> PostgresServer:
    """A cluster whose postmaster and backends are all SIGSTOPped (resumed at teardown by
    ``remove``): connections and connects are accepted by the kernel, nothing ever answers."""
    return postgres_server_factory()


def test_a_stopped_server_costs_each_call_one_timeout(stopped_server: PostgresServer) -> None:
    """SIGSTOP: an open connection's statement and a fresh connect each fail after
    ``timeout`` (the client's own deadline: a stopped server enforces no statement_timeout)."""
    server = stopped_server
    warm = PostgresStore(server.dsn, timeout=TIMEOUT)
    first = rec(1)
    assert warm.compare_and_set("c", None, first)  # an idle connection, table checked
    cold = PostgresStore(server.dsn, timeout=TIMEOUT, table="never_created")
    server.pause()
    try:
        calls = {
            "statement on an open connection": lambda: warm.load("c"),
            "fresh connect after a discarded one": lambda: warm.compare_and_set("c", 1, rec(2)),
            "fresh connect and schema check": lambda: cold.load("c"),
            "names": warm.names,
        }
        for what, call in calls.items():
            error, elapsed = timed(call)
            assert isinstance(error, StoreError), what
            assert "no answer within the timeout (0.25 s)" in str(error), what
            assert TIMEOUT <= elapsed < TIMEOUT + SLACK, (what, elapsed)
    finally:
        server.resume()
    assert warm.load("c") == first  # answers again, the timed-out write never landed
    warm.close()
    cold.close()


def test_a_stopped_server_never_blocks_the_event_loop(stopped_server: PostgresServer) -> None:
    """While async calls wait out their timeout on a stopped server, other tasks keep running;
    each call costs one timeout, for a statement and for a fresh connect alike."""
    server = stopped_server
    store = PostgresStore(server.dsn, timeout=TIMEOUT)
    assert store.compare_and_set("c", None, rec(1))
    ticks = 0

    async def ticker(done: asyncio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)  # yields to the loop; counts its turns

    async def scenario() -> list[float]:
        done = asyncio.Event()
        task = asyncio.create_task(ticker(done))
        costs = []
        for call in (lambda: store.aload("c"), lambda: store.acompare_and_set("c", 1, rec(2))):
            start = time.monotonic()
            with pytest.raises(StoreError, match=r"no answer within the timeout \(0.25 s\)"):
                await call()
            costs.append(time.monotonic() - start)
        done.set()
        await task
        return costs

    server.pause()
    try:
        costs = asyncio.run(scenario())
    finally:
        server.resume()
    assert all(TIMEOUT <= cost < TIMEOUT + SLACK for cost in costs), costs
    assert ticks > 100
    store.close()


def test_a_pools_connection_to_a_stopped_server_costs_one_timeout_and_is_replaced(
    stopped_server: PostgresServer,
) -> None:
    """With the application's pool: the wait is bounded too, and the connection whose state is
    unknown is closed (the pool replaces it); the pool itself stays open."""
    server = stopped_server
    pool = psycopg_pool.ConnectionPool(server.dsn, min_size=1, max_size=2, open=True)
    store = PostgresStore(pool=pool, timeout=TIMEOUT)
    assert store.compare_and_set("c", None, rec(1))
    server.pause()
    try:
        error, elapsed = timed(lambda: store.load("c"))
        assert isinstance(error, StoreError)
        assert TIMEOUT <= elapsed < TIMEOUT + SLACK
    finally:
        server.resume()
    store.close()
    assert not pool.closed  # the store never closes a pool it did not make
    assert store.load("c") is not None
    pool.close()

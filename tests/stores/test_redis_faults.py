"""RedisStore under faults, against real servers: death and restart, silence, nonsense, refusals."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.backoff
import redis.retry

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config, StoreError
from fleetbreaker.stores.redis import RedisStore
from fleetbreaker.testing import FakeClock
from tests.helpers import every_operation_fails_fast, timed
from tests.helpers import open_record as rec
from tests.servers.redis_servers import ServerProcess, free_port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose socket accepts connections (in the kernel backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.fixture
def nonsense_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port whose server answers every command with the same reply (``request.param``)."""
    reply: bytes = request.param
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                # redis-py sends one command and waits: one reply per received chunk. The
                # handshake gets sane answers, so the nonsense reaches the store's own commands.
                while data := conn.recv(65536):
                    command = data.split(b"\r\n")[2].upper()
                    if command == b"HELLO":
                        conn.sendall(b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n")
                    elif command == b"CLIENT":
                        conn.sendall(b"+OK\r\n")
                    else:
                        conn.sendall(reply)
            except OSError:
                return

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    listener.close()
    thread.join(timeout=5)


def test_dead_server_fails_fast_and_restart_reloads_the_script(
    private_redis_server: ServerProcess,
) -> None:
    """Killed: each call is a quick StoreError. Restarted on its port: it works, script re-sent."""
    server = private_redis_server
    store = RedisStore.from_url(server.url)
    assert store.compare_and_set("c", None, rec(1))
    server.kill()
    every_operation_fails_fast(store, says="cannot reach the server", within=1.0)
    server.start()
    admin = redis.Redis.from_url(server.url)
    assert store._script is not None
    assert admin.script_exists(store._script.sha) == [False]
    assert store.load("c") is None  # restarted empty: persistence is off
    assert store.compare_and_set("c", None, rec(1))
    assert admin.script_exists(store._script.sha) == [True]
    admin.close()
    store.close()


class DownstreamError(Exception):
    pass


def fail() -> None:
    raise DownstreamError


def test_breakers_serve_through_a_restart_then_share_state_again(
    private_redis_server: ServerProcess,
) -> None:
    """Two hosts' breakers keep serving while Redis is dead; after its restart a trip is shared."""
    server = private_redis_server
    clock = FakeClock()
    config = Config(failure_threshold=2, local_cache_max_age=1.0)
    stores = [RedisStore.from_url(server.url), RedisStore.from_url(server.url)]
    a, b = (CircuitBreaker("payments", store=s, config=config, clock=clock) for s in stores)
    assert a.call(str.upper, "ok") == b.call(str.upper, "ok") == "OK"
    server.kill()
    clock.advance(2.0)  # both views are stale: the next calls must try the dead store
    assert a.call(str.upper, "ok") == b.call(str.upper, "ok") == "OK"
    server.start()
    clock.advance(60.0)  # past any store backoff
    for _ in range(2):
        with pytest.raises(DownstreamError):
            a.call(fail)
    assert a.info().state is CircuitState.OPEN
    clock.advance(2.0)
    with pytest.raises(CircuitOpenError):
        b.call(str.upper, "ok")
    for store in stores:
        store.close()


def test_async_client_survives_a_restart_within_one_loop(
    private_redis_server: ServerProcess,
) -> None:
    """In a long-lived loop, the asyncio client fails while the server is down, then recovers."""
    server = private_redis_server
    store = RedisStore.from_url(server.url)

    async def scenario() -> None:
        assert await store.acompare_and_set("c", None, rec(1))
        server.kill()
        with pytest.raises(StoreError, match="cannot reach the server"):
            await store.aload("c")
        with pytest.raises(StoreError, match="cannot reach the server"):
            await store.acompare_and_set("c", 1, rec(2))
        server.start()
        assert await store.aload("c") is None
        assert await store.acompare_and_set("c", None, rec(1))

    asyncio.run(scenario())
    store.close()


def test_silent_server_costs_one_timeout(silent_port: int) -> None:
    """A server that never answers: each call fails with StoreError after about 250 ms."""
    store = RedisStore.from_url(f"redis://127.0.0.1:{silent_port}/0")
    for call in (lambda: store.load("c"), lambda: store.compare_and_set("c", None, rec(1))):
        error, elapsed = timed(call)
        assert isinstance(error, StoreError)
        assert "no answer within the socket timeout" in str(error)
        assert 0.2 <= elapsed < 0.75
    store.close()


def test_silent_server_does_not_block_the_event_loop(silent_port: int) -> None:
    """While aload waits out the timeout, other tasks on the loop keep running."""
    store = RedisStore.from_url(f"redis://127.0.0.1:{silent_port}/0")
    ticks = 0

    async def ticker(done: asyncio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)  # yields to the loop; counts its turns

    async def scenario() -> float:
        done = asyncio.Event()
        task = asyncio.create_task(ticker(done))
        start = time.monotonic()
        with pytest.raises(StoreError, match="no answer within the socket timeout"):
            await store.aload("c")
        done.set()
        await task
        return time.monotonic() - start

    elapsed = asyncio.run(scenario())
    assert 0.2 <= elapsed < 0.75
    assert ticks > 100
    store.close()


def test_users_client_keeps_its_own_timeout(silent_port: int) -> None:
    """The store does not impose its 250 ms on a client the user built."""
    client = redis.Redis(
        port=silent_port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )
    error, elapsed = timed(lambda: RedisStore(client=client).load("c"))
    assert isinstance(error, StoreError)
    assert 0.45 <= elapsed < 1.5
    client.close()


@pytest.mark.parametrize(
    ("nonsense_port", "load_fails"),
    [(b"+OK\r\n", False), (b":7\r\n", True), (b"-ERR what\r\n", True)],
    ids=["ok-to-everything", "integer-to-everything", "error-to-everything"],
    indirect=["nonsense_port"],
)
def test_nonsense_replies_are_store_errors(nonsense_port: int, load_fails: bool) -> None:
    """A server answering nonsense fails compare_and_set and names with StoreError, never worse."""
    store = RedisStore.from_url(f"redis://127.0.0.1:{nonsense_port}/0")
    with pytest.raises(StoreError, match=r"compare_and_set of circuit .c.*(unexpected|ERR what)"):
        store.compare_and_set("c", None, rec(1))
    with pytest.raises(StoreError, match=r"names .*(unexpected|ERR what)"):
        store.names()
    if load_fails:
        with pytest.raises(StoreError, match=r"load of circuit .c.*(unexpected|ERR what)"):
            store.load("c")
    else:  # "OK" is a string without an epoch: someone else's value, read as absent
        assert store.load("c") is None
    store.close()


def test_script_flush_between_calls(redis_like_server: ServerProcess) -> None:
    """After SCRIPT FLUSH the next compare-and-set re-sends the script, sync and async."""
    store = RedisStore.from_url(redis_like_server.url, prefix=f"fbtest:{uuid.uuid4().hex}:")
    admin = redis.Redis.from_url(redis_like_server.url)
    assert store._script is not None
    assert store.compare_and_set("c", None, rec(1))
    admin.script_flush()
    assert admin.script_exists(store._script.sha) == [False]
    assert store.compare_and_set("c", 1, rec(2))
    assert admin.script_exists(store._script.sha) == [True]

    async def scenario() -> None:
        assert await store.acompare_and_set("c", 2, rec(3))
        admin.script_flush()
        assert await store.acompare_and_set("c", 3, rec(4))

    asyncio.run(scenario())
    loaded = store.load("c")
    assert loaded is not None
    assert loaded.epoch == 4
    admin.close()
    store.close()


@pytest.mark.parametrize(
    ("break_server", "mend_server", "message"),
    [
        (
            lambda r: r.config_set("maxmemory", 1),
            lambda r: r.config_set("maxmemory", 0),
            "out of memory",
        ),
        (
            lambda r: r.replicaof("127.0.0.1", free_port()),
            lambda r: r.replicaof("NO", "ONE"),
            "read-only replica",
        ),
    ],
    ids=["oom", "readonly-replica"],
)
def test_refused_writes_are_explained_store_errors(
    private_redis_server: ServerProcess,
    break_server: Callable[[redis.Redis], Any],
    mend_server: Callable[[redis.Redis], Any],
    message: str,
) -> None:
    """OOM and READONLY refusals raise StoreError saying so; reads still work; writes resume."""
    store = RedisStore.from_url(private_redis_server.url)
    admin = redis.Redis.from_url(private_redis_server.url)
    assert store.compare_and_set("c", None, rec(1))
    break_server(admin)
    with pytest.raises(StoreError, match=message):
        store.compare_and_set("c", 1, rec(2))

    async def refused() -> None:
        with pytest.raises(StoreError, match=message):
            await store.acompare_and_set("c", 1, rec(2))

    asyncio.run(refused())
    loaded = store.load("c")
    assert loaded is not None
    assert loaded.epoch == 1
    mend_server(admin)
    assert store.compare_and_set("c", 1, rec(2))
    admin.close()
    store.close()

"""DynamoDBStore across os.fork(): a child never talks on its parent's pooled connections."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, CircuitTransition, Config
from fleetbreaker._protocol import Record
from fleetbreaker.stores.dynamodb import DynamoDBStore
from tests.helpers import fork, marked_record
from tests.servers.dynamodb_servers import (
    FaultProxy,
    ServerProcess,
    open_store,
    raw_client,
    unique_table,
)

ROUNDS = 300
EXPIRES_AT = time.time() + 3600


def _record(failure_count: int) -> Record:
    return marked_record(failure_count, expires_at=EXPIRES_AT)


@pytest.fixture
def table(dynalite_server: ServerProcess) -> Iterator[str]:
    name = unique_table()
    open_store(dynalite_server.endpoint, name).create_table()
    yield name
    raw_client(dynalite_server.endpoint).delete_table(TableName=name)


def _mismatches(store: DynamoDBStore, name: str, expected: Record) -> int:
    """Reads of ``name`` that came back as anything but ``expected`` (or failed)."""
    wrong = 0
    for _ in range(ROUNDS):
        try:
            wrong += store.load(name) != expected
        except Exception:  # a crossed response can also be unparseable
            wrong += 1
    return wrong


@pytest.mark.parametrize("client", ["built", "given"])
def test_parent_and_child_never_read_each_others_responses(
    dynalite_server: ServerProcess, table: str, client: str
) -> None:
    """A store used before fork() serves parent and child concurrently, each its own answers."""
    if client == "built":
        store = open_store(dynalite_server.endpoint, table)
    else:
        store = DynamoDBStore(table_name=table, boto3_client=raw_client(dynalite_server.endpoint))
    parent_record, child_record = _record(1), _record(2)
    assert store.compare_and_set("parent", None, parent_record)
    assert store.compare_and_set("child", None, child_record)
    assert store.load("parent") == parent_record  # leaves a keep-alive connection in the pool

    go_read, go_write = os.pipe()
    pid = fork()
    if pid == 0:  # the child: report through the exit status, and never return into pytest
        status = 100
        try:
            os.close(go_write)
            os.read(go_read, 1)
            status = min(_mismatches(store, "child", child_record), 99)
        finally:
            os._exit(status)
    os.close(go_read)
    os.write(go_write, b"x")  # start both loops together
    parent_wrong = _mismatches(store, "parent", parent_record)
    os.close(go_write)
    _, wait_status = os.waitpid(pid, 0)
    assert (parent_wrong, os.waitstatus_to_exitcode(wait_status)) == (0, 0)
    store.close()


@pytest.mark.parametrize("client", ["built", "given"])
def test_child_opens_its_own_connection(fault_proxy: FaultProxy, table: str, client: str) -> None:
    """After fork() the child's first call opens a new connection; the parent keeps its own."""
    if client == "built":
        store = open_store(fault_proxy.endpoint, table)
    else:
        store = DynamoDBStore(table_name=table, boto3_client=raw_client(fault_proxy.endpoint))
    assert store.compare_and_set("c", None, _record(1))
    assert fault_proxy.connections == 1
    pid = fork()
    if pid == 0:
        status = 1
        try:
            status = 0 if store.load("c") == _record(1) else 2
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert store.load("c") == _record(1)
    assert fault_proxy.connections == 2
    store.close()


def test_store_reconnects_even_without_the_fork_hook(fault_proxy: FaultProxy, table: str) -> None:
    """A store that finds itself in another process opens new connections before any call."""
    store = open_store(fault_proxy.endpoint, table)
    store.load("c")
    store.load("c")
    assert fault_proxy.connections == 1  # keep-alive: one pooled connection
    store._pid = -1  # as if forked by a path that skipped the os.register_at_fork hooks
    store.load("c")
    store.load("c")
    assert fault_proxy.connections == 2
    store.close()


WORKERS, THREADS, CIRCUITS = 4, 4, 12


def _trip_together(breakers: list[CircuitBreaker], start: int, trips: list[Any]) -> int:
    """Fail each circuit's downstream from THREADS threads at once; count our OPEN transitions."""
    os.read(start, 1)
    barrier = threading.Barrier(THREADS)

    def fail() -> None:
        raise ConnectionError("downstream down")

    def worker() -> None:
        for breaker in breakers:
            barrier.wait()
            for _ in range(3):
                with contextlib.suppress(ConnectionError, CircuitOpenError):
                    breaker.call(fail)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(t.to_state is CircuitState.OPEN for t in trips)


def test_breakers_used_before_fork_trip_once_across_workers(
    dynalite_server: ServerProcess, table: str
) -> None:
    """Workers forked after the breakers were used trip each circuit exactly once between them.

    Sharing the parent's pooled connection, a worker can read another's answer: a lost
    conditional write then reads as won, and two workers both trip the circuit. Whether the
    answers cross is timing, so this catches the bug only in some runs; the connection tests
    above catch its cause every time.
    """
    trips: list[CircuitTransition] = []
    store = open_store(dynalite_server.endpoint, table)
    breakers = [
        CircuitBreaker(
            f"downstream-{i}",
            store=store,
            config=Config(failure_threshold=3),
            on_transition=trips.append,
        )
        for i in range(CIRCUITS)
    ]
    for breaker in breakers:  # read every circuit: a pooled connection stays open
        assert breaker.call(lambda: "warm") == "warm"
    start_read, start_write = os.pipe()
    children = []
    for _ in range(WORKERS - 1):
        pid = fork()
        if pid == 0:
            status = 255
            try:
                status = _trip_together(breakers, start_read, trips)
            finally:
                os._exit(status)
        children.append(pid)
    os.write(start_write, b"x" * WORKERS)
    total = _trip_together(breakers, start_read, trips)
    for pid in children:
        total += os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert total == CIRCUITS
    assert {breaker.info().state for breaker in breakers} == {CircuitState.OPEN}

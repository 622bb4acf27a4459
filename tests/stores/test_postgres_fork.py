"""PostgresStore across os.fork(): a child never talks on its parent's connections."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import psycopg_pool
import pytest

from fleetbreaker._protocol import Record
from fleetbreaker.stores.postgres import PostgresStore
from tests.helpers import fork, marked_record
from tests.servers.postgres_servers import PostgresServer, unique_table

ROUNDS = 300
EXPIRES_AT = time.time() + 3600


def _record(failure_count: int) -> Record:
    return marked_record(failure_count, expires_at=EXPIRES_AT)


@pytest.fixture
def table(postgres_server: PostgresServer) -> Iterator[str]:
    name = unique_table()
    yield name
    with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {name}")


def _backend_pids(store: PostgresStore) -> set[int]:
    """The server processes of the store's open connections (as the server reports them)."""
    return {conn.backend_pid for conn in store._idle}


def _sessions(dsn: str) -> set[int]:
    """The server processes of every fleetbreaker connection, as pg_stat_activity lists them."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'fleetbreaker'"
        ).fetchall()
    return {pid for (pid,) in rows}


def test_child_opens_its_own_connection_and_leaves_the_parents_alone(
    postgres_server: PostgresServer, table: str
) -> None:
    """After fork() the child's first call opens a new session; the parent's session is the
    one it had, still open (the child neither used nor closed it)."""
    store = PostgresStore(postgres_server.dsn, table=table, timeout=5)
    assert store.compare_and_set("c", None, _record(1))
    (parent_session,) = _backend_pids(store)
    reader, writer = os.pipe()
    pid = fork()
    if pid == 0:
        status = 1
        try:
            os.close(reader)
            status = 0 if store.load("c") == _record(1) else 2
            os.write(writer, str(next(iter(_backend_pids(store)), 0)).encode())
        finally:
            os._exit(status)
    os.close(writer)
    _, wait_status = os.waitpid(pid, 0)
    child_session = int(os.read(reader, 32) or b"0")
    os.close(reader)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert child_session not in (0, parent_session)
    assert store.load("c") == _record(1)
    assert _backend_pids(store) == {parent_session}  # the very session, still usable
    assert parent_session in _sessions(postgres_server.dsn)
    store.close()


def _mismatches(store: PostgresStore, name: str, expected: Record) -> int:
    wrong = 0
    for _ in range(ROUNDS):
        try:
            wrong += store.load(name) != expected
        except Exception:  # a crossed answer can also be a protocol error
            wrong += 1
    return wrong


def test_parent_and_child_never_read_each_others_answers(
    postgres_server: PostgresServer, table: str
) -> None:
    """A store used before fork() serves parent and child concurrently, each its own answers."""
    store = PostgresStore(postgres_server.dsn, table=table, timeout=5)
    parent_record, child_record = _record(1), _record(2)
    assert store.compare_and_set("parent", None, parent_record)
    assert store.compare_and_set("child", None, child_record)
    go_read, go_write = os.pipe()
    pid = fork()
    if pid == 0:
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


def test_store_reconnects_even_without_the_fork_hook(
    postgres_server: PostgresServer, table: str
) -> None:
    """A store that finds itself in another process drops its connections before any call."""
    store = PostgresStore(postgres_server.dsn, table=table, timeout=5)
    store.load("c")
    before = _backend_pids(store)
    store._pid = -1  # as if forked by a path that skipped the os.register_at_fork hooks
    store.load("c")
    after = _backend_pids(store)
    assert before
    assert after
    assert not before & after
    store.close()


def test_a_child_refuses_its_parents_pool_with_the_fix(
    postgres_server: PostgresServer, table: str
) -> None:
    """A pool's connections belong to the process that made it: a forked child's calls are a
    StoreError saying what to do, and never touch them."""
    pool = psycopg_pool.ConnectionPool(postgres_server.dsn, min_size=1, max_size=1, open=True)
    store = PostgresStore(pool=pool, table=table, timeout=5)
    assert store.compare_and_set("c", None, _record(1))
    reader, writer = os.pipe()
    pid = fork()
    if pid == 0:
        report = b"no error"
        try:
            store.load("c")
        except Exception as exc:
            report = str(exc).encode()
        finally:
            os.write(writer, report[:4000])
            os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    message = os.read(reader, 4000).decode()
    os.close(reader)
    assert "forked from the one that made the pool" in message
    assert "Make the pool and the store in the child" in message
    assert store.load("c") == _record(1)  # the parent's pool is untouched
    pool.close()

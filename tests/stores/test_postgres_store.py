"""PostgresStore beyond the contract: its configuration, table, pools, and its races with
many processes, against the session's real PostgreSQL."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest

from fleetbreaker import CircuitState, ConfigError, StoreError
from fleetbreaker._protocol import Record
from fleetbreaker.stores.postgres import PostgresStore
from tests.helpers import wait_for
from tests.servers.postgres_servers import PostgresServer, unique_table

CREATE = (
    "CREATE TABLE {} (name text PRIMARY KEY, epoch bigint NOT NULL, payload text NOT NULL, "
    "expires_at timestamptz NOT NULL)"
)


def rec(epoch: int, failure_count: int = 0) -> Record:
    now = time.time()
    return Record(
        CircuitState.OPEN,
        epoch,
        opened_at=now,
        retry_at=now + 30,
        failure_count=failure_count,
        updated_at=now,
        expires_at=now + 600,
    )


@pytest.fixture
def admin(postgres_server: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def table(admin: psycopg.Connection[Any]) -> Iterator[str]:
    """A fresh table name (not created); dropped afterwards if a test made it."""
    name = unique_table()
    yield name
    admin.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "needs a DSN .* or pool= / async_pool="),
        (("",), {}, "needs a DSN such as 'postgresql://"),
        (("host=db dbname",), {"table": "x"}, None),
        (("postgresql://u:hunter2@db/app",), {"table": "a-b"}, "must be an SQL identifier"),
        (("postgresql://db/app",), {"table": "a.b.c"}, "optionally schema-qualified"),
        (("postgresql://db/app",), {"table": "x" * 64}, "at most 63"),
        (("postgresql://db/app",), {"table": 'x"; DROP TABLE y; --'}, "SQL identifier"),
        (("postgresql://db/app",), {"timeout": 0}, r"timeout must be seconds in \(0, 60\]"),
        (("postgresql://db/app",), {"timeout": True}, "timeout must be seconds"),
        (("postgresql://db/app",), {"timeout": 61}, "timeout must be seconds"),
        (("postgresql://db/app",), {"create_table": "yes"}, "create_table must be True or False"),
        (("postgresql://db/app?bogus=1&password=hunter2",), {}, "cannot use DSN .*bogus"),
        (("postgresql://db/app",), {"pool": object()}, "pool= takes a psycopg_pool.Connection"),
        (("postgresql://db/app",), {"async_pool": object()}, "async_pool= takes a psycopg_pool"),
    ],
    ids=[
        "nothing",
        "empty-dsn",
        "bad-conninfo-syntax-is-libpqs",
        "table-dash",
        "table-three-parts",
        "table-too-long",
        "table-injection",
        "timeout-zero",
        "timeout-bool",
        "timeout-too-long",
        "create-table-text",
        "unknown-dsn-option",
        "pool-not-a-pool",
        "async-pool-not-a-pool",
    ],
)
def test_bad_configuration_is_a_config_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str | None
) -> None:
    """Bad input is refused at construction with a ConfigError saying what to fix, no password."""
    if message is None:  # libpq's own syntax check, reported as ours
        with pytest.raises(ConfigError, match="cannot use DSN"):
            PostgresStore(*args, **kwargs)
        return
    with pytest.raises(ConfigError, match=message) as caught:
        PostgresStore(*args, **kwargs)
    assert "hunter2" not in str(caught.value)


def test_dsn_and_pool_together_are_refused(postgres_server: PostgresServer) -> None:
    """A DSN and a pool are two sources of settings: one only."""
    with (
        psycopg_pool.ConnectionPool(postgres_server.dsn, min_size=0, max_size=1, open=True) as pool,
        pytest.raises(ConfigError, match="give a DSN or pool=/async_pool=, not both"),
    ):
        PostgresStore(postgres_server.dsn, pool=pool)


def test_repr_and_messages_never_show_the_password() -> None:
    """The label names host, port, database and table; never the password."""
    store = PostgresStore("postgresql://app:hunter2@127.0.0.1:1/appdb", timeout=0.1)
    assert repr(store) == (
        "PostgresStore(127.0.0.1:1/appdb, table 'fleetbreaker_circuits', timeout=0.1)"
    )
    with pytest.raises(StoreError, match="cannot reach the server") as caught:
        store.load("c")
    assert "hunter2" not in str(caught.value)


def test_nothing_connects_at_construction() -> None:
    """A database that is down costs the first calls a StoreError, never the application's
    start."""
    store = PostgresStore("postgresql://127.0.0.1:1/nowhere")
    with pytest.raises(StoreError, match="load of circuit 'c' failed: cannot reach the server"):
        store.load("c")


def test_the_table_is_created_at_first_use_with_the_documented_columns(
    postgres_server: PostgresServer, admin: psycopg.Connection[Any], table: str
) -> None:
    """create_table=True makes the table (the DDL docs/stores.md shows) when it is missing."""
    store = PostgresStore(postgres_server.dsn, table=table)
    assert admin.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)
    assert store.names() == []
    columns = admin.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    assert columns == [
        ("name", "text", "NO"),
        ("epoch", "bigint", "NO"),
        ("payload", "text", "NO"),
        ("expires_at", "timestamp with time zone", "NO"),
    ]
    store.close()


def test_without_create_table_a_missing_table_is_an_explained_store_error(
    postgres_server: PostgresServer, admin: psycopg.Connection[Any], table: str
) -> None:
    """create_table=False never creates; a missing table says how to make it."""
    store = PostgresStore(postgres_server.dsn, table=table, create_table=False)
    with pytest.raises(StoreError, match="the table does not exist: create it"):
        store.load("c")
    assert admin.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)
    admin.execute(CREATE.format(table))
    assert store.compare_and_set("c", None, rec(1)) is True
    store.close()


def test_someone_elses_table_is_refused(
    postgres_server: PostgresServer, admin: psycopg.Connection[Any], table: str
) -> None:
    """A table of that name with other columns or types is not written to."""
    admin.execute(
        f"CREATE TABLE {table} (name text PRIMARY KEY, epoch text, payload text, "
        "expires_at timestamptz)"
    )
    store = PostgresStore(postgres_server.dsn, table=table)
    with pytest.raises(StoreError, match="is not fleetbreaker's: its columns"):
        store.compare_and_set("c", None, rec(1))
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)  # noqa: S608


def test_a_schema_qualified_table_and_a_dropped_table_are_recreated(
    postgres_server: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    """'schema.table' works; a table dropped under a running store is created again."""
    schema = unique_table()
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = PostgresStore(postgres_server.dsn, table=f"{schema}.circuits")
        assert store.compare_and_set("c", None, rec(1)) is True
        admin.execute(f"DROP TABLE {schema}.circuits")
        with pytest.raises(StoreError, match="the table does not exist"):
            store.load("c")
        assert store.compare_and_set("c", None, rec(1)) is True
        store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_the_schema_refuses_values_no_record_has(
    postgres_server: PostgresServer, admin: psycopg.Connection[Any], table: str
) -> None:
    """What the contract suite cannot plant here: an epoch beyond bigint, a payload that is
    not UTF-8 text, a missing field. PostgreSQL refuses them, so no read ever meets them."""
    PostgresStore(postgres_server.dsn, table=table).names()
    insert = f"INSERT INTO {table} VALUES (%s, %s, %s, 'infinity')"  # noqa: S608
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        admin.execute(insert, ("c", 10**40, "{}"))
    with pytest.raises(psycopg.errors.CharacterNotInRepertoire):
        admin.execute(
            f"INSERT INTO {table} VALUES ('c', 1, convert_from(%s, 'UTF8'), 'infinity')",  # noqa: S608
            (b"\xff\xfe{",),
        )
    with pytest.raises(psycopg.errors.NotNullViolation):
        admin.execute(insert, ("c", None, "{}"))


def test_expiry_is_counted_on_the_servers_clock(
    postgres_server: PostgresServer, admin: psycopg.Connection[Any], table: str
) -> None:
    """A row the server's clock says has expired reads as absent (and names() omits it),
    whatever the client's clock says; a create replaces it."""
    store = PostgresStore(postgres_server.dsn, table=table)
    assert store.compare_and_set("c", None, rec(1)) is True
    # The row's expiry put one second behind the server's clock: the client's never counts.
    admin.execute(
        f"UPDATE {table} SET expires_at = clock_timestamp() - interval '1 second'"  # noqa: S608
    )
    assert store.load("c") is None
    assert store.names() == []
    assert store.compare_and_set("c", 1, rec(2)) is False
    assert store.compare_and_set("c", None, rec(1)) is True
    store.close()


def test_a_users_pools_serve_sync_and_async_and_stay_open(
    postgres_server: PostgresServer, table: str
) -> None:
    """pool= serves the sync methods, async_pool= the async ones; neither is closed by close()."""
    pool = psycopg_pool.ConnectionPool(postgres_server.dsn, min_size=1, max_size=2, open=True)
    store = PostgresStore(pool=pool, table=table)
    assert store.compare_and_set("c", None, rec(1)) is True
    assert asyncio.run(store.aload("c")) is not None  # a worker thread on the sync pool
    store.close()
    assert not pool.closed

    async def scenario() -> None:
        async with psycopg_pool.AsyncConnectionPool(
            postgres_server.dsn, min_size=1, max_size=2, open=False
        ) as apool:
            astore = PostgresStore(async_pool=apool, table=table)
            loaded = await astore.aload("c")
            assert loaded is not None
            assert await astore.acompare_and_set("c", loaded.epoch, rec(2)) is True
            with pytest.raises(StoreError, match="has only an async pool"):
                astore.load("c")
            astore.close()
            assert not apool.closed

    asyncio.run(scenario())
    assert store.load("c") is not None
    pool.close()


def _first_use(dsn: str, table: str, start: Any, results: Any, i: int) -> None:
    """A process's first use of a store on a table that may not exist yet."""
    store = PostgresStore(dsn, table=table, timeout=30)
    start.wait()
    try:
        won = store.compare_and_set("c", None, rec(1, failure_count=i))
    except StoreError as exc:
        results.put((i, f"error: {exc}"))
    else:
        results.put((i, won))


def test_first_use_by_many_processes_at_once_creates_the_table_once(
    postgres_server: PostgresServer, admin: psycopg.Connection[Any], table: str
) -> None:
    """Processes that all find the table missing and create it together all succeed.

    The race is forced: an open transaction has created the table but not committed, so every
    process's probe finds it missing and its CREATE TABLE IF NOT EXISTS waits on the
    uncommitted catalog rows; the commit then makes each of those CREATEs fail on a duplicate
    catalog row, which the store must read as "made by someone else"."""
    processes = 6
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(processes + 1), ctx.Queue()
    workers = [
        ctx.Process(target=_first_use, args=(postgres_server.dsn, table, start, results, i))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    with psycopg.connect(postgres_server.dsn) as creator:  # a transaction, left open
        creator.execute(CREATE.format(table))
        start.wait()
        # Every process is waiting on the creator's catalog rows: the race is set.
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'CREATE TABLE IF NOT EXISTS%%'"
        )
        wait_for(lambda: admin.execute(waiting).fetchone() == (processes,), timeout=60)
        creator.commit()
    outcomes = dict(results.get(timeout=60) for _ in range(processes))
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(map(str, outcomes.values())) == ["False"] * (processes - 1) + ["True"], outcomes


def _racer(dsn: str, table: str, start: Any, results: Any, i: int, *, rounds: int) -> None:
    store = PostgresStore(dsn, table=table, timeout=30)
    store.names()  # connected and checked: the race is only the writes
    for expected in [None, *range(1, rounds)]:
        start.wait()
        epoch = 1 if expected is None else expected + 1
        if store.compare_and_set("race", expected, rec(epoch, failure_count=i)):
            results.put((epoch, i))
    store.close()


def test_processes_racing_on_one_epoch_exactly_one_wins_each_round(
    postgres_server: PostgresServer, table: str
) -> None:
    """Processes released together on one expected epoch (the create included): one winner,
    and the row holds the winner's write."""
    processes, rounds = 6, 5
    PostgresStore(postgres_server.dsn, table=table).names()
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(
            target=_racer,
            args=(postgres_server.dsn, table, start, results, i),
            kwargs={"rounds": rounds},
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    wins: dict[int, list[int]] = {}
    while not results.empty():
        epoch, i = results.get()
        wins.setdefault(epoch, []).append(i)
    assert sorted(wins) == list(range(1, rounds + 1))
    assert all(len(winners) == 1 for winners in wins.values()), wins
    loaded = PostgresStore(postgres_server.dsn, table=table).load("race")
    assert loaded is not None
    assert (loaded.epoch, loaded.failure_count) == (rounds, wins[rounds][0])


def test_threads_share_a_stores_connections_safely(
    postgres_server: PostgresServer, table: str
) -> None:
    """Many threads on one store: each operation has a connection to itself, and the store
    keeps a few open between calls, not one per thread ever seen."""
    store = PostgresStore(postgres_server.dsn, table=table, timeout=10)
    threads, barrier = 16, threading.Barrier(16)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            for n in range(20):
                store.compare_and_set(f"t{i}", None if n == 0 else n, rec(n + 1))
                assert store.load(f"t{i}") is not None
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert {record.epoch for record in map(store.load, store.names()) if record} == {20}
    assert len(store._idle) <= 8
    store.close()
    assert store._idle == []


def test_async_calls_look_up_host_names_on_the_loop(
    postgres_server: PostgresServer, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DSN with a host name (after a host that is down) connects from async calls: the name
    is looked up through the loop, and each host is tried in turn as libpq would."""
    looked_up: list[object] = []
    lookup = asyncio.BaseEventLoop.getaddrinfo

    async def recording(self: asyncio.BaseEventLoop, host: object, *args: Any, **kw: Any) -> Any:
        looked_up.append(host)
        return await lookup(self, host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", recording)
    dead = f"127.0.0.1:{_closed_port()}"
    dsn = f"postgresql://postgres@{dead},localhost:{postgres_server.port}/postgres"
    store = PostgresStore(dsn, table=table, timeout=5)

    async def scenario() -> None:
        assert await store.acompare_and_set("c", None, rec(1)) is True
        assert await store.aload("c") is not None

    asyncio.run(scenario())
    assert looked_up == ["localhost"]  # once: the connection is kept for the second call
    store.close()


def _closed_port() -> int:
    from tests.servers.redis_servers import free_port

    return free_port()  # nothing listens there once the probe socket is closed


@pytest.fixture
def app_role(postgres_server: PostgresServer, admin: psycopg.Connection[Any]) -> Iterator[str]:
    """A login role with no privileges of its own (no CREATE on the schema either)."""
    role = unique_table()
    admin.execute(f"CREATE ROLE {role} LOGIN")
    admin.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}")
    yield f"postgresql://{role}@127.0.0.1:{postgres_server.port}/postgres"
    admin.execute(f"DROP OWNED BY {role}")
    admin.execute(f"DROP ROLE {role}")


def test_the_documented_grants_are_enough(
    app_role: str, admin: psycopg.Connection[Any], table: str
) -> None:
    """A role with only USAGE on the schema and SELECT, INSERT, UPDATE on the table runs every
    operation, with create_table either way; without UPDATE a write says what is missing."""
    role = app_role.partition("://")[2].partition("@")[0]
    missing = PostgresStore(app_role, table=table)
    with pytest.raises(StoreError, match="the role lacks a privilege"):
        missing.load("c")  # the table is missing and the role may not create it
    admin.execute(CREATE.format(table))
    admin.execute(f"GRANT SELECT, INSERT, UPDATE ON {table} TO {role}")
    for create_table in (False, True):
        store = PostgresStore(app_role, table=table, create_table=create_table)
        first = rec(1)
        assert store.compare_and_set(f"c{create_table}", None, first) is True
        assert store.load(f"c{create_table}") == first
        assert store.compare_and_set(f"c{create_table}", 1, rec(2)) is True
        assert f"c{create_table}" in store.names()
        store.close()
    admin.execute(f"REVOKE UPDATE ON {table} FROM {role}")
    store = PostgresStore(app_role, table=table)
    with pytest.raises(StoreError, match="the role lacks a privilege on the table"):
        store.compare_and_set("cFalse", 2, rec(3))
    store.close()

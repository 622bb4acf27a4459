"""Store harnesses: one per backend, so the contract suite runs unchanged against each.

A harness gives the contract suite what it cannot get through the Store interface:
``open()`` another client on the same shared namespace (as another process would have),
``factory`` a picklable zero-argument callable that builds such a client in a child
process, and ways to plant values that no fleetbreaker writer would write.

To add a backend: write a ``<kind>_harness`` fixture (its servers started by the suite) and
add ``<kind>`` to ``STORE_KINDS``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleetbreaker import MemoryStore, SQLiteStore, Store
from tests.servers import dynamodb_servers, postgres_servers
from tests.servers.redis_servers import ServerProcess, open_redis_store

STORE_KINDS = ["memory", "sqlite", "redis", "valkey", "dynamodb", "postgres"]
# Stores that processes can share: the fleet tests run against these.
FLEET_STORE_KINDS = ["sqlite", "redis", "valkey", "dynamodb", "postgres"]


@dataclass
class Harness:
    kind: str
    open: Callable[[], Store]
    factory: Callable[[], Store] | None
    plant_corrupt_payload: Callable[[str, int], None]
    plant_foreign: Callable[[str], None]
    # plant(name, epoch, payload): a live value as-is; an int epoch in the store's own
    # encoding for integers (however large), a str or bytes payload as text or binary.
    plant: Callable[[str, int, str | bytes], None]
    opened: list[Store] = field(default_factory=list)

    def client(self) -> Store:
        store = self.open()
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture
def memory_harness() -> Iterator[Harness]:
    shared = MemoryStore()

    def corrupt(name: str, epoch: int) -> None:
        shared._put_raw(name, epoch, '{"v": 1, "state": "sideways"', 4e9)

    def foreign(name: str) -> None:
        shared._put_raw(name, "not-a-number", "hello", 4e9)

    def plant(name: str, epoch: int, payload: str | bytes) -> None:
        shared._put_raw(name, epoch, payload, 4e9)

    harness = Harness("memory", lambda: shared, None, corrupt, foreign, plant)
    yield harness
    harness.close()


@pytest.fixture
def sqlite_harness(tmp_path: Path) -> Iterator[Harness]:
    path = tmp_path / "breakers.db"
    factory = functools.partial(SQLiteStore, path)

    def raw(sql: str, *params: object) -> None:
        import sqlite3

        conn = sqlite3.connect(path)
        with conn:
            conn.execute(sql, params)
        conn.close()

    def corrupt(name: str, epoch: int) -> None:
        raw(
            "INSERT OR REPLACE INTO fleetbreaker_circuits (name, epoch, payload, expires_at) "
            "VALUES (?, ?, ?, ?)",
            name,
            epoch,
            "{not json",
            4e9,
        )

    def foreign(name: str) -> None:
        raw(
            "INSERT OR REPLACE INTO fleetbreaker_circuits (name, epoch, payload, expires_at) "
            "VALUES (?, ?, ?, ?)",
            name,
            "twelve",
            b"\x00\x01",
            4e9,
        )

    def plant(name: str, epoch: int, payload: str | bytes) -> None:
        # An integer SQLite cannot hold goes in as text, which the column stores as REAL.
        held = epoch if -(2**63) <= epoch < 2**63 else str(epoch)
        raw(
            "INSERT OR REPLACE INTO fleetbreaker_circuits (name, epoch, payload, expires_at) "
            "VALUES (?, ?, ?, ?)",
            name,
            held,
            payload,
            4e9,
        )

    harness = Harness("sqlite", factory, factory, corrupt, foreign, plant)
    yield harness
    harness.close()


def _redis_harness(server: ServerProcess) -> Iterator[Harness]:
    """A Redis/Valkey harness on a session server, isolated by a key prefix of its own."""
    import redis

    prefix = f"fbtest:{uuid.uuid4().hex}:"
    factory = functools.partial(open_redis_store, server.url, prefix)
    raw = redis.Redis.from_url(server.url)

    def corrupt(name: str, epoch: int) -> None:
        raw.set(prefix + name, f"{epoch} {{not json", px=3_600_000)

    def foreign(name: str) -> None:
        # Someone else's hash under the key: a value of another Redis type.
        raw.delete(prefix + name)
        raw.hset(prefix + name, mapping={"owner": "someone else", "epoch": "7"})

    def plant(name: str, epoch: int, payload: str | bytes) -> None:
        body = payload if isinstance(payload, bytes) else payload.encode()
        raw.set(prefix + name, f"{epoch} ".encode() + body, px=3_600_000)

    harness = Harness(server.kind, factory, factory, corrupt, foreign, plant)
    yield harness
    harness.close()
    raw.close()


@pytest.fixture
def redis_harness(redis_server_process: ServerProcess) -> Iterator[Harness]:
    yield from _redis_harness(redis_server_process)


@pytest.fixture
def valkey_harness(valkey_server_process: ServerProcess) -> Iterator[Harness]:
    yield from _redis_harness(valkey_server_process)


@pytest.fixture
def dynamodb_harness(dynalite_server: dynamodb_servers.ServerProcess) -> Iterator[Harness]:
    """A DynamoDB harness on the session's dynalite, with a table of its own."""
    endpoint, table = dynalite_server.endpoint, dynamodb_servers.unique_table()
    factory = functools.partial(dynamodb_servers.open_store, endpoint, table)
    creator = factory()
    creator.create_table()
    creator.close()
    raw = dynamodb_servers.raw_client(endpoint)

    def corrupt(name: str, epoch: int) -> None:
        item = {"epoch": {"N": str(epoch)}, "record": {"S": "{not json"}}
        raw.put_item(TableName=table, Item={"id": {"S": name}, **item, "expiration": {"N": "4e9"}})

    def foreign(name: str) -> None:
        # Someone else's item in a shared table: the epoch attribute is text.
        item = {"epoch": {"S": "twelve"}, "record": {"B": b"\x00\x01"}}
        raw.put_item(TableName=table, Item={"id": {"S": name}, **item, "expiration": {"N": "4e9"}})

    def plant(name: str, epoch: int, payload: str | bytes) -> None:
        body = {"B": payload} if isinstance(payload, bytes) else {"S": payload}
        item = {"epoch": {"N": str(epoch)}, "record": body, "expiration": {"N": "4e9"}}
        raw.put_item(TableName=table, Item={"id": {"S": name}, **item})

    harness = Harness("dynamodb", factory, factory, corrupt, foreign, plant)
    yield harness
    harness.close()
    raw.delete_table(TableName=table)
    raw.close()


@pytest.fixture
def postgres_harness(postgres_server: postgres_servers.PostgresServer) -> Iterator[Harness]:
    """A PostgreSQL harness on the session's cluster, with a table of its own.

    The schema holds less than other stores can: an epoch beyond bigint and a payload that is
    not UTF-8 text cannot be stored at all. Planting one asserts that PostgreSQL refuses it,
    then skips the test with that reason: no such value can ever be read.
    """
    import psycopg

    table = postgres_servers.unique_table()
    factory = functools.partial(postgres_servers.open_store, postgres_server.dsn, table)
    creator: Store = factory()
    creator.names()  # creates the table
    creator.close()
    raw = psycopg.connect(postgres_server.dsn, autocommit=True)
    upsert = (
        f"INSERT INTO {table} (name, epoch, payload, expires_at) "  # noqa: S608 - test table
        "VALUES (%s, %s, %s, clock_timestamp() + interval '1 hour') ON CONFLICT (name) DO UPDATE "
        "SET epoch = excluded.epoch, payload = excluded.payload, expires_at = excluded.expires_at"
    )

    def corrupt(name: str, epoch: int) -> None:
        raw.execute(upsert, (name, epoch, "{not json"))

    def foreign(name: str) -> None:
        # Someone else's row in the table: an epoch no fleetbreaker writer makes.
        raw.execute(upsert, (name, -12, "hello"))

    def plant(name: str, epoch: int, payload: str | bytes) -> None:
        if not -(2**63) <= epoch < 2**63:
            with pytest.raises(psycopg.errors.NumericValueOutOfRange):
                raw.execute(upsert, (name, epoch, "{}"))
            pytest.skip(f"postgres: a bigint column refuses epoch {epoch} (asserted)")
        if isinstance(payload, bytes):
            try:
                payload = payload.decode("utf-8")
            except UnicodeDecodeError:
                with pytest.raises(psycopg.errors.CharacterNotInRepertoire):
                    raw.execute(
                        f"INSERT INTO {table} (name, epoch, payload, expires_at) "  # noqa: S608
                        "VALUES (%s, %s, convert_from(%s, 'UTF8'), 'infinity')",
                        (name, epoch, payload),
                    )
                pytest.skip("postgres: a text column refuses bytes that are not UTF-8 (asserted)")
        raw.execute(upsert, (name, epoch, payload))

    harness = Harness("postgres", factory, factory, corrupt, foreign, plant)
    yield harness
    harness.close()
    raw.execute(f"DROP TABLE {table}")
    raw.close()


@pytest.fixture(params=STORE_KINDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    """Every store kind in turn."""
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value


@pytest.fixture(params=FLEET_STORE_KINDS)
def fleet_harness(request: pytest.FixtureRequest) -> Harness:
    """Every store kind that processes can share."""
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value

"""stores.from_url and stores.from_env: every scheme against the suite's real servers, and the
message of every URL they refuse."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.config import Config as BotoConfig

from fleetbreaker import CircuitState, ConfigError, MemoryStore, SQLiteStore, Store
from fleetbreaker._protocol import Record
from fleetbreaker.stores import from_env, from_url
from fleetbreaker.stores.dynamodb import DynamoDBStore
from fleetbreaker.stores.postgres import PostgresStore
from fleetbreaker.stores.redis import RedisStore
from tests.servers.dynamodb_servers import REGION, raw_client, unique_table
from tests.servers.dynamodb_servers import ServerProcess as DynamoServer
from tests.servers.postgres_servers import PostgresServer
from tests.servers.redis_servers import ServerProcess, make_tls_files


def rec(epoch: int) -> Record:
    now = time.time()
    return Record(
        CircuitState.OPEN,
        epoch,
        opened_at=now,
        retry_at=now + 30,
        failure_count=3,
        updated_at=now,
        expires_at=now + 3600,
    )


def round_trip(store: Store, name: str = "payments") -> None:
    """A create and an update through the store, each read back as written."""
    assert store.load(name) is None
    first, second = rec(1), rec(2)
    assert store.compare_and_set(name, None, first)
    assert store.load(name, consistent=True) == first
    assert store.compare_and_set(name, 1, second)
    assert not store.compare_and_set(name, 1, second)
    assert store.load(name, consistent=True) == second


@pytest.fixture
def prefix() -> str:
    return f"fbtest:{uuid.uuid4().hex}:"


@pytest.fixture
def dynamodb_table(dynalite_server: DynamoServer) -> Iterator[str]:
    """A table name on the session's dynalite (the test creates it), deleted afterwards."""
    name = unique_table()
    yield name
    client = raw_client(dynalite_server.endpoint)
    client.delete_table(TableName=name)
    client.close()


# ---- every scheme builds a working store --------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", "MEMORY://"], ids=["lower-case", "upper-case"])
def test_memory_url(url: str) -> None:
    """memory:// builds a MemoryStore (the scheme in any case)."""
    store = from_url(url)
    assert isinstance(store, MemoryStore)
    round_trip(store)


def test_sqlite_absolute_url(tmp_path: Path) -> None:
    """sqlite:///abs/path.db (three slashes) is an absolute path; ?timeout= is the lock wait."""
    path = tmp_path / "my dir" / "breakers.db"
    path.parent.mkdir()
    url = f"sqlite://{str(path).replace(' ', '%20')}?timeout=2.5"
    assert url.startswith("sqlite:///")
    store = from_url(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == path
    assert store._timeout == 2.5
    round_trip(store)
    assert path.is_file()
    store.close()


@pytest.mark.parametrize(
    ("url", "relative"),
    [("sqlite://breakers.db", "breakers.db"), ("sqlite://state/breakers.db", "state/breakers.db")],
    ids=["file", "subdirectory"],
)
def test_sqlite_relative_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, relative: str
) -> None:
    """sqlite://relative.db (two slashes) is relative to the current directory."""
    (tmp_path / "state").mkdir()
    monkeypatch.chdir(tmp_path)
    store = from_url(url)
    assert isinstance(store, SQLiteStore)
    round_trip(store)
    store.close()
    assert (tmp_path / relative).is_file()


@pytest.mark.parametrize("scheme", ["redis", "valkey"])
def test_redis_and_valkey_urls(redis_like_server: ServerProcess, prefix: str, scheme: str) -> None:
    """redis:// and valkey:// reach the session's redis-server and valkey-server alike;
    ?prefix= is fleetbreaker's, other query options are redis-py's."""
    url = f"{scheme}://127.0.0.1:{redis_like_server.port}/0?prefix={prefix}&socket_timeout=5"
    store = from_url(url, socket_connect_timeout=5)
    assert isinstance(store, RedisStore)
    kwargs = store._client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (5, 5)
    round_trip(store)
    admin = redis.Redis.from_url(redis_like_server.url)
    assert admin.get(f"{prefix}payments") is not None
    admin.close()
    store.close()


def test_tls_schemes(tmp_path: Path, prefix: str) -> None:
    """rediss:// and valkeys:// speak TLS, verified with redis-py's ?ssl_ca_certs=."""
    ca = make_tls_files(tmp_path)
    server = ServerProcess("redis", tmp_path, tls_ca=ca).start()
    try:
        for scheme in ("rediss", "valkeys"):
            url = f"{scheme}://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}&prefix={prefix}"
            store = from_url(url, socket_timeout=5, socket_connect_timeout=5)
            round_trip(store, name=f"via-{scheme}")
            store.close()
    finally:
        server.stop()


@pytest.mark.parametrize("with_region", [True, False], ids=["region-in-url", "region-from-env"])
def test_dynamodb_url(
    dynalite_server: DynamoServer, dynamodb_table: str, with_region: bool
) -> None:
    """dynamodb://TABLE takes ?region=, ?endpoint_url= and ?key_prefix= (the region otherwise
    comes from the environment, as boto3 finds it)."""
    url = f"dynamodb://{dynamodb_table}?endpoint_url={dynalite_server.endpoint}&key_prefix=app:"
    if with_region:
        url += f"&region={REGION}"
    store = from_url(url)
    assert isinstance(store, DynamoDBStore)
    assert store._client.meta.region_name == REGION
    store.create_table()
    round_trip(store)
    client = raw_client(dynalite_server.endpoint)
    item = client.get_item(TableName=dynamodb_table, Key={"id": {"S": "app:payments"}})
    assert item["Item"]["epoch"] == {"N": "2"}
    client.close()
    store.close()


def test_dynamodb_region_joins_the_callers_boto_config(aws_sandbox: None) -> None:
    """?region= is merged into a boto_config= that sets no region; the store's defaults stay."""
    store = from_url("dynamodb://breakers?region=eu-west-1", boto_config=BotoConfig(read_timeout=3))
    assert store._client.meta.region_name == "eu-west-1"  # type: ignore[attr-defined]
    assert store._client.meta.config.read_timeout == 3  # type: ignore[attr-defined]
    assert store._client.meta.config.connect_timeout == 1.0  # type: ignore[attr-defined]
    store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls(postgres_server: PostgresServer, scheme: str) -> None:
    """postgresql:// and postgres:// reach the session's PostgreSQL; ?table= and ?timeout= are
    fleetbreaker's, other query options (application_name) are libpq's."""
    table = "fb_url_" + scheme
    url = (
        f"{scheme}://postgres@127.0.0.1:{postgres_server.port}/postgres"
        f"?table={table}&timeout=5&application_name=url-test"
    )
    store = from_url(url)
    assert isinstance(store, PostgresStore)
    assert store.table == table
    assert repr(store).endswith("timeout=5)")
    assert store.compare_and_set("c", None, rec(1)) is True
    assert store.names() == ["c"]
    import psycopg

    with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name = "
            "'url-test'"
        ).fetchall()
        assert rows == [("url-test",)]  # libpq's own option reached the server
        admin.execute(f"DROP TABLE {table}")
    store.close()


def test_keyword_options_reach_the_constructor(tmp_path: Path) -> None:
    """**options are the store constructor's keyword arguments."""
    clock = [1000.0]
    memory = from_url("memory://", wall_clock=lambda: clock[0])
    assert isinstance(memory, MemoryStore)
    assert memory._wall() == 1000.0
    sqlite = from_url(f"sqlite://{tmp_path}/b.db", timeout=0.5)
    assert isinstance(sqlite, SQLiteStore)
    assert sqlite._timeout == 0.5
    sqlite.close()


# ---- every refused URL says what is wrong and how to fix it ------------------------------

BAD_URLS = [
    pytest.param(None, {}, "must be a non-empty string such as 'sqlite:///", id="none"),
    pytest.param("", {}, "must be a non-empty string .*schemes: memory://, sqlite://", id="empty"),
    pytest.param(42, {}, "got 42", id="not-text"),
    pytest.param(" memory://", {}, "whitespace", id="leading-space"),
    pytest.param(
        "memory://\n", {}, "surrounding whitespace or a control character", id="trailing-newline"
    ),
    pytest.param("cache:6379", {}, "is not a store URL: write SCHEME://", id="no-scheme"),
    pytest.param(
        "http://cache",
        {},
        "unknown scheme 'http'; known: memory://, sqlite://, redis://, rediss://, valkey://, "
        "valkeys://, dynamodb://",
        id="unknown-scheme",
    ),
    pytest.param("unix:///run/redis.sock", {}, "RedisStore.from_url.'unix://", id="unix-socket"),
    pytest.param("redis://[::1/0", {}, "is malformed .Invalid IPv6 URL", id="unclosed-ipv6"),
    pytest.param("redis://cache/0#frag", {}, "has a '#'.* as %23", id="fragment"),
    pytest.param("sqlite://b.db?timeout", {}, "malformed query .*write [?]name=value", id="no-eq"),
    pytest.param("sqlite://b.db?timeout=1&timeout=2", {}, "'timeout' is given twice", id="twice"),
    pytest.param(
        "memory://something", {}, "takes no host or path.*write memory://$", id="mem-host"
    ),
    pytest.param("memory://?ttl=1", {}, "unknown query option 'ttl' for memory://", id="mem-query"),
    pytest.param(
        "memory://", {"wal_clock": 1}, "unknown keyword argument 'wal_clock' .*wall_clock", id="kw"
    ),
    pytest.param(
        "sqlite://", {}, "needs a file path: sqlite:///.*sqlite://breakers.db", id="no-path"
    ),
    pytest.param("sqlite://:memory:", {}, "for one process write memory://", id="sqlite-memory"),
    pytest.param(
        "sqlite:///nowhere/b.db",
        {},
        "directory '/nowhere' does not exist.*sqlite:///... is absolute",
        id="no-directory",
    ),
    pytest.param(
        "sqlite://b.db?timeout=abc", {}, "[?]timeout= must be seconds in .0, 60.*'abc'", id="nan"
    ),
    pytest.param("sqlite://b.db?timeout=0", {}, "[?]timeout= must be seconds", id="zero-timeout"),
    pytest.param("sqlite://b.db?timeout=nan", {}, "[?]timeout= must be seconds", id="nan-timeout"),
    pytest.param("sqlite://b.db?timeout=61", {}, "[?]timeout= must be seconds", id="long-timeout"),
    pytest.param(
        "sqlite://b.db?tmeout=1", {}, "unknown query option 'tmeout'.*[?]timeout=", id="typo"
    ),
    pytest.param(
        "sqlite://b.db?timeout=1",
        {"timeout": 2},
        "'timeout' set both in the URL and as a keyword argument",
        id="sqlite-conflict",
    ),
    pytest.param(
        "redis://u:hunter2@cache:6379/0?bogus=1",
        {},
        "redis://u:...@cache:6379/0.*unknown query option 'bogus': fleetbreaker's is [?]prefix=",
        id="redis-unknown-query",
    ),
    pytest.param(
        "redis://cache/0?socket_timeout=abc",
        {},
        "Invalid value for 'socket_timeout'",
        id="redis-bad-value",
    ),
    pytest.param(
        "redis://:hunter2@cache:port/0", {}, "cannot use Redis URL 'redis://:...@", id="redis-port"
    ),
    pytest.param("redis://cache/0?prefix=", {}, "prefix must be 1 to 128", id="empty-prefix"),
    pytest.param(
        "redis://cache/0?prefix=a", {"prefix": "b"}, "'prefix' set both", id="prefix-conflict"
    ),
    pytest.param(
        "valkey://cache/0?socket_timeout=1",
        {"socket_timeout": 2},
        "'socket_timeout' set both",
        id="redis-option-conflict",
    ),
    pytest.param(
        "redis://cache/0", {"socket_timout": 1}, "unknown option 'socket_timout'", id="redis-kw"
    ),
    pytest.param(
        "redis://cache/0?password=hunter2&bogus=1",
        {},
        "password=...&bogus=1.*unknown query option 'bogus'",
        id="password-in-query",
    ),
    pytest.param(
        "redis://cache/0?password=hunter2&socket_timeout=abc",
        {},
        "password=[*][*][*].*Invalid value for 'socket_timeout'",
        id="redis-py-refuses-password-in-query",
    ),
    pytest.param(
        "postgresql://u:hunter2@db/app?bogus=1",
        {},
        "postgresql://u:...@db/app.*invalid URI query parameter: .bogus.; fleetbreaker's options"
        " are [?]table=, [?]timeout=, [?]create_table=, the others are libpq's",
        id="postgres-unknown-query",
    ),
    pytest.param(
        "postgres://db/app?timeout=0", {}, "[?]timeout= must be seconds in", id="postgres-timeout"
    ),
    pytest.param(
        "postgres://db/app?create_table=maybe",
        {},
        "[?]create_table= must be true or false",
        id="postgres-create-table",
    ),
    pytest.param(
        "postgres://db/app?table=a-b", {}, "table must be an SQL identifier", id="postgres-table"
    ),
    pytest.param(
        "postgres://db/app?table=a", {"table": "b"}, "'table' set both", id="postgres-conflict"
    ),
    pytest.param(
        "postgresql://db/app", {"tabel": "b"}, "unknown keyword argument 'tabel'", id="pg-kw"
    ),
    pytest.param("dynamodb://", {}, "needs a table name: dynamodb://TABLE", id="no-table"),
    pytest.param("dynamodb://ab", {}, "table_name must be a table name", id="bad-table"),
    pytest.param(
        "dynamodb://breakers?key_attr=pk",
        {},
        "unknown query option 'key_attr' for dynamodb://; it takes [?]region=, [?]endpoint_url=, "
        "[?]key_prefix= .other settings go to from_url as keyword arguments",
        id="dynamodb-attribute-in-url",
    ),
    pytest.param(
        "dynamodb://breakers?region=us east", {}, "[?]region= must be an AWS region", id="region"
    ),
    pytest.param(
        "dynamodb://breakers?endpoint_url=localhost:8000",
        {},
        "[?]endpoint_url= must be an http:// or https:// URL",
        id="endpoint-without-scheme",
    ),
    pytest.param(
        "dynamodb://breakers?endpoint_url=http://a:1",
        {"endpoint_url": "http://b:2"},
        "'endpoint_url' set both",
        id="endpoint-conflict",
    ),
    pytest.param(
        "dynamodb://breakers?region=us-east-1",
        {"boto_config": BotoConfig(region_name="eu-west-1")},
        "region is set both in the URL .[?]region=. and in boto_config=",
        id="region-conflict",
    ),
    pytest.param(
        "dynamodb://breakers", {"table_name": "other"}, "'table_name' set both", id="table-conflict"
    ),
    pytest.param(
        "dynamodb://breakers", {"regoin": "x"}, "unknown keyword argument 'regoin'", id="dynamo-kw"
    ),
]


@pytest.mark.usefixtures("aws_sandbox")  # no region or endpoint from the developer's setup
@pytest.mark.parametrize(("url", "options", "message"), BAD_URLS)
def test_bad_url_is_config_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: Any,
    options: dict[str, Any],
    message: str,
) -> None:
    """A URL or option from_url cannot use is a ConfigError that says what and how to fix it,
    with no other library's exception chained to it and no password shown."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message) as caught:
        from_url(url, **options)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert "hunter2" not in str(error)
    assert list(tmp_path.iterdir()) == []  # nothing was created


@pytest.mark.parametrize(
    ("url", "blocked", "extra"),
    [
        ("redis://cache:6379/0", ("redis",), "redis"),
        ("valkeys://cache:6379/0", ("redis",), "redis"),
        ("dynamodb://breakers", ("boto3", "botocore"), "dynamodb"),
        ("postgresql://db/app", ("psycopg",), "postgres"),
    ],
    ids=["redis", "valkeys", "dynamodb", "postgres"],
)
def test_missing_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, blocked: tuple[str, ...], extra: str
) -> None:
    """A scheme whose client library is not installed names the extra that installs it."""
    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now fails
    # Re-run the store module's import (monkeypatch puts the loaded one back afterwards).
    monkeypatch.delitem(sys.modules, f"fleetbreaker.stores.{extra}")
    with pytest.raises(ConfigError, match=rf"pip install 'fleetbreaker\[{extra}\]'") as caught:
        from_url(url)
    assert caught.value.__suppress_context__


def test_from_url_imports_a_store_module_only_for_its_scheme(tmp_path: Path) -> None:
    """memory:// and sqlite:// leave redis, boto3 and psycopg unimported."""
    code = (
        "import sys; from fleetbreaker.stores import from_url; from_url('memory://'); "
        f"from_url('sqlite://{tmp_path}/b.db').close(); "
        "sys.exit(str([m for m in ('redis', 'boto3', 'botocore', 'psycopg') if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stderr.strip() == "[]", result.stderr


# ---- FLEETBREAKER_STORE ------------------------------------------------------------------


def test_from_env_reads_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env builds the store FLEETBREAKER_STORE names, keyword options included."""
    monkeypatch.setenv("FLEETBREAKER_STORE", f"sqlite://{tmp_path}/b.db")
    store = from_env("memory://", timeout=0.5)
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "b.db"
    assert store._timeout == 0.5
    store.close()


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_from_env_default(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """An unset or empty FLEETBREAKER_STORE means the default."""
    if value is None:
        monkeypatch.delenv("FLEETBREAKER_STORE", raising=False)
    else:
        monkeypatch.setenv("FLEETBREAKER_STORE", value)
    assert isinstance(from_env("memory://"), MemoryStore)
    with pytest.raises(ConfigError, match="from_env default 'memroy://': unknown scheme"):
        from_env("memroy://")


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_from_env_without_a_default(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Unset and no default: the error names the variable and what to set it to."""
    if value is None:
        monkeypatch.delenv("FLEETBREAKER_STORE", raising=False)
    else:
        monkeypatch.setenv("FLEETBREAKER_STORE", value)
    with pytest.raises(
        ConfigError, match=r"FLEETBREAKER_STORE is not set: set it to a store URL such as"
    ):
        from_env()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("memory://x", "FLEETBREAKER_STORE 'memory://x': memory:// takes no host"),
        ("redis://cache/0?bogus=1", "FLEETBREAKER_STORE 'redis://.*unknown query option 'bogus'"),
        ("redis://cache:port/0", "FLEETBREAKER_STORE: RedisStore: cannot use Redis URL"),
    ],
    ids=["ours", "unknown-redis-option", "redis-py-refuses"],
)
def test_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    """A bad FLEETBREAKER_STORE is blamed on the variable, not on the default."""
    monkeypatch.setenv("FLEETBREAKER_STORE", value)
    with pytest.raises(ConfigError, match=message):
        from_env("memory://")


def test_dynamodb_without_a_region(aws_sandbox: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No region anywhere: the error says to set one, in the environment or in the URL."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ConfigError, match=r"region.*or add \?region= to the URL") as caught:
        from_url("dynamodb://breakers")
    assert caught.value.__suppress_context__

"""RedisStore beyond the contract: configuration, stored format, async clients, fork, ACL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.backoff
import redis.retry

from fleetbreaker import CircuitState, ConfigError, StoreError
from fleetbreaker._protocol import Record
from fleetbreaker.stores.base import encode_payload
from fleetbreaker.stores.redis import RedisStore
from tests.servers.redis_servers import ServerProcess, make_tls_files

# The ACL rule docs/redis.md recommends; test_minimal_acl_user_is_enough keeps it honest.
ACL_COMMANDS = "-@all +get +set +del +evalsha +script|load +scan"


def rec(epoch: int, *, expires_in: float = 3600.0, **kw: Any) -> Record:
    now = time.time()
    fields: dict[str, Any] = {"opened_at": now, "retry_at": now + 30, "failure_count": 3}
    fields.update(kw)
    return Record(CircuitState.OPEN, epoch, updated_at=now, expires_at=now + expires_in, **fields)


@pytest.fixture
def prefix() -> str:
    return f"fbtest:{uuid.uuid4().hex}:"


@pytest.fixture
def admin(redis_like_server: ServerProcess) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_like_server.url)
    yield client
    client.close()


@pytest.fixture
def store(redis_like_server: ServerProcess, prefix: str) -> Iterator[RedisStore]:
    made = RedisStore.from_url(redis_like_server.url, prefix=prefix)
    yield made
    made.close()


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("", {}),
        ("http://cache:6379/0", {}),
        ("redis://cache:port/0", {}),
        ("redis://user:hunter2@cache:port/0", {}),
        (42, {}),
        ("redis://cache:6379/0", {"socket_timout": 1}),
    ],
    ids=[
        "empty",
        "http-scheme",
        "bad-port",
        "bad-port-with-password",
        "not-text",
        "misspelt-option",
    ],
)
def test_bad_url_or_option_is_config_error(url: Any, options: dict[str, Any]) -> None:
    """A URL or client option redis-py cannot use fails at construction, password hidden."""
    with pytest.raises(ConfigError, match="RedisStore") as caught:
        RedisStore.from_url(url, **options)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        (
            "redis://cache:6379/0",
            {"bogus_option": 1},
            "unknown option 'bogus_option' for redis.Redis: ",
        ),
        (
            "redis://user:hunter2@cache:6379/0",
            {"socket_timout": 1},
            "unknown option 'socket_timout' for redis.Redis: .*check the spelling",
        ),
        (
            "redis://cache:port/0",
            {"bogus_option": 1},
            "cannot use Redis URL 'redis://cache:port/0'",
        ),
        (
            "redis://cache:6379/0?bogus=1",
            {},
            "cannot use Redis URL 'redis://cache:6379/0\\?bogus=1'",
        ),
    ],
    ids=["unknown-option", "misspelt-option-password-url", "bad-url-and-option", "bad-url-query"],
)
def test_unknown_option_is_told_apart_from_a_bad_url(
    url: str, options: dict[str, Any], message: str
) -> None:
    """An unknown client option is named as such; a bad URL is blamed on the URL."""
    with pytest.raises(ConfigError, match=message) as caught:
        RedisStore.from_url(url, **options)
    assert "hunter2" not in str(caught.value)
    if options and "URL" not in message:
        assert "URL" not in str(caught.value)


@pytest.mark.parametrize(
    "prefix",
    ["", 5, "x" * 129, "fleet\nbreaker:"],
    ids=["empty", "not-text", "too-long", "control-character"],
)
def test_bad_prefix_is_config_error(prefix: Any) -> None:
    """The key prefix must be 1 to 128 printable characters."""
    with pytest.raises(ConfigError, match="prefix"):
        RedisStore.from_url("redis://127.0.0.1:6379/0", prefix=prefix)


def test_clients_are_checked_at_construction() -> None:
    """A missing client, or a sync/async client in the other's place, is a ConfigError."""
    sync_client, async_client = redis.Redis(), redis.asyncio.Redis()
    with pytest.raises(ConfigError, match="needs a client"):
        RedisStore()
    with pytest.raises(ConfigError, match="async_client="):
        RedisStore(client=async_client)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="async_client= takes"):
        RedisStore(async_client=sync_client)  # type: ignore[arg-type]
    sync_client.close()


def test_from_url_bounds_latency_by_default() -> None:
    """Clients the store builds time out after 250 ms and never retry; options override."""
    store = RedisStore.from_url("redis://127.0.0.1:6379/0")
    kwargs = store._client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
    attempts: list[int] = []

    def refused() -> None:
        attempts.append(1)
        raise redis.ConnectionError

    with pytest.raises(redis.ConnectionError):
        kwargs["retry"].call_with_retry(refused, lambda _error: None)
    assert len(attempts) == 1
    tuned = RedisStore.from_url(
        "redis://127.0.0.1:6379/0?socket_timeout=2", socket_connect_timeout=1
    )
    kwargs = tuned._client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2, 1)


def test_valkey_url_scheme_is_accepted(valkey_server_process: ServerProcess, prefix: str) -> None:
    """valkey:// URLs work like redis:// ones."""
    store = RedisStore.from_url(f"valkey://127.0.0.1:{valkey_server_process.port}/0", prefix=prefix)
    record = rec(1)
    assert store.compare_and_set("c", None, record)
    assert store.load("c") == record
    store.close()


def test_value_is_epoch_and_payload_with_a_ttl_refreshed_on_write(
    store: RedisStore, admin: redis.Redis, prefix: str
) -> None:
    """One string key per circuit, "<epoch> <payload>", its TTL set from expires_at each write."""
    first = rec(1, expires_in=60)
    assert store.compare_and_set("c", None, first)
    assert admin.get(prefix + "c") == f"1 {encode_payload(first)}".encode()
    assert 58_000 < admin.pttl(prefix + "c") <= 60_000
    assert store.compare_and_set("c", 1, rec(2, expires_in=600))
    assert 598_000 < admin.pttl(prefix + "c") <= 600_000
    assert store.compare_and_set("c", 2, rec(3, expires_in=-1))
    assert admin.exists(prefix + "c") == 0


def test_ttl_comes_from_the_record_not_the_writers_clock(
    store: RedisStore, admin: redis.Redis, prefix: str
) -> None:
    """A writer whose clock is 10 years behind still sets PX to the record's own 60 s."""
    at = time.time() - 10 * 365 * 24 * 3600
    record = Record(
        CircuitState.OPEN, 1, opened_at=at, retry_at=at + 30, updated_at=at, expires_at=at + 60
    )
    assert store.compare_and_set("c", None, record)
    assert 58_000 < admin.pttl(prefix + "c") <= 60_000


@pytest.mark.parametrize(
    "plant",
    [
        lambda r, k: r.set(k, "hello"),
        lambda r, k: r.set(k, "42"),
        lambda r, k: r.set(k, " 7 {}"),
        lambda r, k: r.rpush(k, "1 {}"),
        lambda r, k: r.sadd(k, "x"),
        lambda r, k: r.zadd(k, {"x": 1}),
        lambda r, k: r.hset(k, "epoch", "3"),
    ],
    ids=["text", "counter", "leading-space", "list", "set", "zset", "hash"],
)
def test_foreign_values_read_absent_and_only_create_replaces_them(
    store: RedisStore,
    admin: redis.Redis,
    prefix: str,
    plant: Callable[[redis.Redis, str], object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Someone else's value, of any Redis type, is logged, absent, and replaced only by a create."""
    plant(admin, prefix + "c")
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert store.load("c") is None
    assert "not a fleetbreaker record" in caplog.text

    async def scenario() -> None:
        assert await store.aload("c") is None
        assert await store.acompare_and_set("c", 7, rec(8)) is False

    asyncio.run(scenario())
    assert store.compare_and_set("c", 3, rec(4)) is False
    record = rec(1)
    assert store.compare_and_set("c", None, record) is True
    assert store.load("c") == record
    assert admin.type(prefix + "c") == b"string"


def test_epoch_with_leading_zeros_matches_its_number(
    store: RedisStore, admin: redis.Redis, prefix: str
) -> None:
    """A stored "007" is epoch 7 for the script as for the reader."""
    admin.set(prefix + "c", f"007 {encode_payload(rec(7))}")
    loaded = store.load("c")
    assert loaded is not None
    assert loaded.epoch == 7
    assert store.compare_and_set("c", 7, rec(8)) is True


@pytest.mark.parametrize(
    ("head", "reads_as"),
    [("0" * 30 + "12", 12), ("9" * 17, None), ("9007199254740991", None), ("0", 0)],
    ids=["many-leading-zeros", "17-digits", "max-epoch", "zero"],
)
def test_epoch_head_reads_as_the_script_matches_it(
    store: RedisStore, admin: redis.Redis, prefix: str, head: str, reads_as: int | None
) -> None:
    """Leading zeros are dropped by reader and script alike; an epoch out of range is absent."""
    admin.set(prefix + "c", f"{head} {encode_payload(rec(3))}")
    loaded = store.load("c")
    if reads_as is None:
        assert loaded is None
        assert store.compare_and_set("c", None, rec(1)) is True
    else:
        assert loaded is not None
        assert loaded.epoch == reads_as
        assert store.compare_and_set("c", None, rec(1)) is False
        assert store.compare_and_set("c", reads_as, rec(reads_as + 1)) is True


def test_long_digit_runs_read_quickly_as_foreign(
    store: RedisStore, admin: redis.Redis, prefix: str
) -> None:
    """A value of a million digits (no epoch head) is read and replaced without a stall."""
    admin.set(prefix + "c", "0" * 1_000_000)
    started = time.monotonic()
    assert store.load("c") is None
    assert store.compare_and_set("c", 5, rec(6)) is False
    assert store.compare_and_set("c", None, rec(1)) is True
    assert time.monotonic() - started < 2


def test_names_scans_only_its_prefix_taken_literally(
    admin: redis.Redis, redis_like_server: ServerProcess
) -> None:
    """names() lists every circuit past one SCAN page; glob characters in the prefix are literal."""
    base = f"fbtest:{uuid.uuid4().hex}"
    store = RedisStore.from_url(redis_like_server.url, prefix=base + ":[a]*?\\:")
    for i in range(1200):
        store.compare_and_set(f"c{i}", None, rec(1))
    admin.set(base + ":a-lookalike:c0", "1 {}")  # matches the prefix read as a glob
    admin.set(base + ":other", "x")
    assert sorted(store.names()) == sorted(f"c{i}" for i in range(1200))
    store.close()


def test_users_client_keeps_its_settings_and_stays_open(
    redis_like_server: ServerProcess, prefix: str
) -> None:
    """A user's client works with decode_responses=True and is not closed by the store."""
    client = redis.Redis.from_url(redis_like_server.url, decode_responses=True)
    store = RedisStore(client=client, prefix=prefix)
    record = rec(1)
    assert store.compare_and_set("ünï", None, record)
    assert store.load("ünï") == record
    assert store.names() == ["ünï"]
    connection = client.client_id()
    store.close()
    assert client.client_id() == connection  # the same connection: the pool was left open
    client.close()


def test_asyncio_client_per_loop_is_closed_when_the_loop_ends(
    store: RedisStore, admin: redis.Redis
) -> None:
    """Each asyncio.run gets its own client, closed at loop shutdown: no leaked connection."""

    async def scenario(epoch: int) -> None:
        expected = None if epoch == 1 else epoch - 1
        assert await store.acompare_and_set("c", expected, rec(epoch))
        loaded = await store.aload("c")
        assert loaded is not None
        assert loaded.epoch == epoch

    before = admin.info("clients")["connected_clients"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in (1, 2, 3):
            asyncio.run(scenario(epoch))
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert len(store._loop_clients) == 0
    assert admin.info("clients")["connected_clients"] == before


class _RefusingExecutor(concurrent.futures.ThreadPoolExecutor):
    def submit(self, *_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the async path used a worker thread")


def test_async_path_uses_no_worker_thread(store: RedisStore) -> None:
    """aload and acompare_and_set run on the event loop (redis.asyncio), not in a thread."""

    async def scenario() -> None:
        asyncio.get_running_loop().set_default_executor(_RefusingExecutor())
        assert await store.acompare_and_set("c", None, rec(1))
        assert await store.aload("c") is not None

    asyncio.run(scenario())


def test_users_async_client_is_used_and_sync_calls_say_why_not(
    redis_like_server: ServerProcess, prefix: str
) -> None:
    """A store with only an async client serves aload/acompare_and_set; sync calls explain."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_like_server.url)
        store = RedisStore(async_client=client, prefix=prefix)
        asyncio.get_running_loop().set_default_executor(_RefusingExecutor())
        assert await store.acompare_and_set("c", None, rec(1))
        assert await store.aload("c") is not None
        with pytest.raises(StoreError, match="only an async client"):
            store.load("c")
        await client.aclose()

    asyncio.run(scenario())


def test_sync_client_alone_serves_async_calls_in_a_thread(
    redis_like_server: ServerProcess, prefix: str
) -> None:
    """With only a sync client, the async methods still work (in a worker thread)."""
    client = redis.Redis.from_url(redis_like_server.url)
    store = RedisStore(client=client, prefix=prefix)

    async def scenario() -> None:
        assert await store.acompare_and_set("c", None, rec(1))
        assert await store.aload("c") is not None

    asyncio.run(scenario())
    client.close()


def test_forked_child_uses_its_own_connection(store: RedisStore) -> None:
    """After os.fork the child talks over a new connection; the parent's keeps working."""
    assert store.compare_and_set("c", None, rec(1))
    client = store._client
    assert client is not None
    parent_id = client.client_id()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork in a threaded process; the child only uses the store.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = client.client_id() != parent_id and store.compare_and_set("c", 1, rec(2))
            os.write(write_end, b"ok" if ok else b"shared the parent's connection")
        except BaseException as exc:
            os.write(write_end, repr(exc).encode()[:500])
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.read(read_end, 1000) == b"ok"
    os.close(read_end)
    assert status == 0
    assert client.client_id() == parent_id
    loaded = store.load("c")
    assert loaded is not None
    assert loaded.epoch == 2


def test_minimal_acl_user_is_enough(
    redis_like_server: ServerProcess, admin: redis.Redis, prefix: str
) -> None:
    """The documented ACL (GET, SET, DEL, EVALSHA, SCRIPT LOAD, SCAN on the prefix) suffices."""
    user = f"fleet-{uuid.uuid4().hex[:8]}"
    rule = ["on", ">s3cret", "resetkeys", f"~{prefix}*", *ACL_COMMANDS.split()]
    admin.execute_command("ACL", "SETUSER", user, *rule)  # type: ignore[no-untyped-call]
    url = f"redis://{user}:s3cret@127.0.0.1:{redis_like_server.port}/0"
    store = RedisStore.from_url(url, prefix=prefix)
    assert store.compare_and_set("c", None, rec(1))
    admin.script_flush()  # forces SCRIPT LOAD under the restricted user
    assert store.compare_and_set("c", 1, rec(2))
    assert store.load("c") is not None
    assert store.names() == ["c"]
    outside = RedisStore.from_url(url, prefix="elsewhere:")
    with pytest.raises(StoreError, match="ACL user lacks"):
        outside.load("c")
    wrong = RedisStore.from_url(url.replace("s3cret", "guess"), prefix=prefix)
    with pytest.raises(StoreError, match="authentication failed"):
        wrong.load("c")
    for made in (store, outside, wrong):
        made.close()
    admin.acl_deluser(user)


def test_tls_url_with_the_servers_ca(tmp_path: Path) -> None:
    """rediss:// with ssl_ca_certs verifies the server; without the CA it is refused."""
    ca = make_tls_files(tmp_path)
    server = ServerProcess("redis", tmp_path, tls_ca=ca).start()
    try:
        store = RedisStore.from_url(f"{server.url}?ssl_ca_certs={ca}")
        assert store.compare_and_set("c", None, rec(1))
        assert store.load("c") is not None
        untrusting = RedisStore.from_url(server.url)
        with pytest.raises(StoreError, match="certificate verify failed"):
            untrusting.load("c")
        plain = RedisStore.from_url(server.url.replace("rediss://", "redis://"))
        with pytest.raises(StoreError):
            plain.load("c")
        for made in (store, untrusting, plain):
            made.close()
    finally:
        server.stop()


def test_importing_fleetbreaker_does_not_import_redis() -> None:
    """The core and its stdlib stores load without redis-py."""
    code = "import sys, fleetbreaker, fleetbreaker.stores; sys.exit('redis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

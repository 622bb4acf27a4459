"""RedisStore: circuits shared through Redis or Valkey, with redis-py (sync and asyncio).

Each circuit is one string key, ``prefix + name``, holding ``"<epoch> <payload>"`` with a TTL
(``PX``) of the record's :func:`~fleetbreaker.stores.base.record_ttl`, set on every write and
counted by the server. The canonical epoch is the ``<digits> `` head, leading zeros dropped as
the script drops them. Conditional writes are one Lua script (``redis_cas.lua``) run with
EVALSHA; redis-py re-sends it on NOSCRIPT (after a restart, failover or SCRIPT FLUSH). Scripts
and reads touch a single key, so Redis Cluster is fine.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import re
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any, TypeAlias

try:
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    import redis.backoff
    import redis.retry
    from redis.commands.core import AsyncScript, Script
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisStore needs redis-py: pip install 'fleetbreaker[redis]'") from exc

from fleetbreaker._fork import reset_after_fork
from fleetbreaker._limits import MAX_EPOCH
from fleetbreaker.errors import ConfigError, StoreError
from fleetbreaker.stores.base import KeyValueStore, Stored, Write

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

DEFAULT_PREFIX = "fleetbreaker:"
_MAX_PREFIX = 128
_TIMEOUT_S = 0.25
_CAS_LUA = resources.files("fleetbreaker.stores").joinpath("redis_cas.lua").read_text("utf-8")
# redis-py speaks to Valkey too; accept Valkey's own URL schemes for it.
_SCHEMES = {"valkey://": "redis://", "valkeys://": "rediss://"}
_EPOCH_DIGITS = len(str(MAX_EPOCH))
_ANOTHER_TYPE = "(another type)"  # what the script compares for a hash, list, set...

SyncClient: TypeAlias = "redis.Redis | redis.RedisCluster"
AsyncClient: TypeAlias = "redis.asyncio.Redis | redis.asyncio.RedisCluster"


class RedisStore(KeyValueStore):
    """A store in Redis or Valkey: one key per circuit, compare-and-set by a Lua script.

    Build it with :meth:`from_url` (the store makes bounded-latency clients: 250 ms socket
    timeouts and no retries, and one asyncio client per event loop), or hand it the clients the
    application already has: ``RedisStore(client=redis.Redis(...))`` and/or
    ``async_client=redis.asyncio.Redis(...)``; those keep their own settings and are not closed
    by the store. Without an async client, ``aload``/``acompare_and_set`` run the sync client in
    a worker thread. Nothing connects at construction: a Redis that is down costs the first
    calls a ``StoreError`` (the breaker then fails open), never the application's start.
    """

    def __init__(
        self,
        *,
        client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        if client is not None and not isinstance(client, redis.Redis | redis.RedisCluster):
            raise ConfigError(
                "RedisStore client= takes a redis.Redis or redis.RedisCluster, got "
                f"{type(client).__name__}; pass redis.asyncio clients as async_client="
            )
        if async_client is not None and not isinstance(
            async_client, redis.asyncio.Redis | redis.asyncio.RedisCluster
        ):
            raise ConfigError(
                "RedisStore async_client= takes a redis.asyncio.Redis or "
                f"redis.asyncio.RedisCluster, got {type(async_client).__name__}"
            )
        if client is None and async_client is None:
            raise ConfigError(
                "RedisStore needs a client: RedisStore.from_url(url), or client= / async_client="
            )
        self._prefix = _check_prefix(prefix)
        self._client = client
        self._script: Script | None = None if client is None else client.register_script(_CAS_LUA)
        self._async_client = async_client
        self._async_script: AsyncScript | None = (
            None if async_client is None else async_client.register_script(_CAS_LUA)
        )
        self._label = f"RedisStore({_where(client or async_client)})"
        # Set by from_url: the store owns its clients and builds an asyncio one per loop.
        self._owns_client = False
        self._async_factory: Callable[[], redis.asyncio.Redis] | None = None
        self._loop_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncScript, object]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        reset_after_fork(self)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, **client_options: Any
    ) -> RedisStore:
        """A store on the server at ``url`` (``redis://``, ``rediss://``, ``unix://``, ``valkey://``).

        ``client_options`` go to ``redis.Redis.from_url`` and override the bounded defaults;
        options in the URL's query string win over both (redis-py's rule).
        """
        if not isinstance(url, str) or not url:
            raise ConfigError(
                f"RedisStore needs a Redis URL such as redis://host:6379/0, got {url!r}"
            )
        for scheme, replacement in _SCHEMES.items():
            if url.startswith(scheme):
                url = replacement + url[len(scheme) :]
        defaults = {
            "socket_timeout": _TIMEOUT_S,
            "socket_connect_timeout": _TIMEOUT_S,
            "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        }
        sync_options = {**defaults, **client_options}
        # The URL with the store's own defaults first, so each error blames what caused it.
        try:
            _check_connection(redis.ConnectionPool.from_url(url, **defaults))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"RedisStore: cannot use Redis URL {_redact(url)!r}: {exc}") from exc
        try:
            client = redis.Redis.from_url(url, **sync_options)
            _check_connection(client.connection_pool)
        except (ValueError, TypeError) as exc:
            raise _option_error(exc, client_options) from exc
        store = cls(client=client, prefix=prefix)
        store._owns_client = True
        async_options = {
            **sync_options,
            "retry": redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
            **client_options,
        }
        store._async_factory = functools.partial(redis.asyncio.Redis.from_url, url, **async_options)
        return store

    def _after_fork_in_child(self) -> None:
        # redis-py's sync pool notices the new PID itself; asyncio clients belong to the
        # parent's loops and must never be used here.
        self._lock = threading.Lock()
        self._loop_clients = weakref.WeakKeyDictionary()

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _sync(self) -> tuple[SyncClient, Script]:
        if self._client is None or self._script is None:
            raise StoreError(f"{self._label} has only an async client: use aload/acompare_and_set")
        return self._client, self._script

    def _read(
        self,
        name: str,
        *,
        consistent: bool,  # noqa: ARG002 - one primary: reads are consistent
        operation: str = "load",
    ) -> Stored | None:
        client, _ = self._sync()
        try:
            raw = client.get(self._key(name))
        except redis.ResponseError as exc:
            return self._another_type(name, operation, exc)
        except Exception as exc:
            raise self._error(operation, name, exc) from exc
        return self._stored(name, operation, raw)

    def _write_at(self, name: str, epoch: int, new: Write) -> bool:
        _, script = self._sync()
        try:
            reply = script(keys=[self._key(name)], args=_at_args(epoch, new))
        except Exception as exc:
            raise self._error("compare_and_set", name, exc) from exc
        return self._written(name, reply)

    def _write_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        _, script = self._sync()
        try:
            reply = script(keys=[self._key(name)], args=_over_args(replacing, new))
        except Exception as exc:
            raise self._error("compare_and_set", name, exc) from exc
        return self._written(name, reply)

    def names(self) -> list[str]:
        client, _ = self._sync()
        cut = len(self._prefix.encode())
        try:
            keys = list(client.scan_iter(match=_glob_escape(self._prefix) + "*", count=1000))
            return [
                (k if isinstance(k, bytes) else k.encode())[cut:].decode("utf-8", "replace")
                for k in keys
            ]
        except Exception as exc:
            raise self._error("names", "*", exc) from exc

    async def _aread(
        self, name: str, *, consistent: bool, operation: str = "load"
    ) -> Stored | None:
        found = await self._async()
        if found is None:
            return await super()._aread(name, consistent=consistent, operation=operation)
        client, _ = found
        try:
            raw = await client.get(self._key(name))
        except redis.ResponseError as exc:
            return self._another_type(name, operation, exc)
        except Exception as exc:
            raise self._error(operation, name, exc) from exc
        return self._stored(name, operation, raw)

    async def _awrite_at(self, name: str, epoch: int, new: Write) -> bool:
        found = await self._async()
        if found is None:
            return await super()._awrite_at(name, epoch, new)
        return await self._ascript(name, found[1], _at_args(epoch, new))

    async def _awrite_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        found = await self._async()
        if found is None:
            return await super()._awrite_over(name, replacing, new)
        return await self._ascript(name, found[1], _over_args(replacing, new))

    async def _ascript(self, name: str, script: AsyncScript, args: list[str | int]) -> bool:
        try:
            reply = await script(keys=[self._key(name)], args=args)
        except Exception as exc:
            raise self._error("compare_and_set", name, exc) from exc
        return self._written(name, reply)

    async def _async(self) -> tuple[AsyncClient, AsyncScript] | None:
        """The asyncio client for the running loop, or ``None`` to use the worker thread."""
        if self._async_client is not None and self._async_script is not None:
            return self._async_client, self._async_script
        if self._async_factory is None:
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._loop_clients.get(loop)
        if entry is None:
            client = self._async_factory()
            closer = _close_at_loop_shutdown(self, client)
            entry = (client, client.register_script(_CAS_LUA), closer)
            with self._lock:
                self._loop_clients[loop] = entry
            await anext(closer)
        return entry[0], entry[1]

    def _forget_loop_client(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._loop_clients.pop(loop, None)

    def _stored(self, name: str, operation: str, raw: object) -> Stored | None:
        if raw is None:
            return None
        if isinstance(raw, str):  # a user's client with decode_responses=True
            raw = raw.encode()
        if not isinstance(raw, bytes):
            raise StoreError(
                f"{self._label}: {operation} of circuit {name!r}: unexpected reply {raw!r:.80}"
            )
        # The epoch head as redis_cas.lua reads it: ASCII digits up to the first space, leading
        # zeros dropped. More digits than MAX_EPOCH has is out of range: never made an int.
        head, space, payload = raw.partition(b" ")
        if not (space and head.isdigit()):
            return Stored(head[:40], raw, held=raw)
        digits = head.lstrip(b"0") or b"0"
        epoch = int(digits) if len(digits) <= _EPOCH_DIGITS else head[:40]
        return Stored(epoch, payload, held=raw)

    def _another_type(self, name: str, operation: str, exc: redis.ResponseError) -> Stored:
        if not str(exc).startswith("WRONGTYPE"):
            raise self._error(operation, name, exc) from exc
        # Someone else's hash, list or set under the key: the contract's foreign value.
        return Stored("(a non-string Redis value)", None, held=_ANOTHER_TYPE)

    def _written(self, name: str, reply: object) -> bool:
        if reply in (0, 1) and not isinstance(reply, bool):
            return reply == 1
        raise StoreError(
            f"{self._label}: compare_and_set of circuit {name!r}: unexpected reply {reply!r:.80}"
        )

    def _error(self, operation: str, name: str, exc: Exception) -> StoreError:
        # base.store_error's wording, with what the client's error most likely means.
        return StoreError(
            f"{self._label}: {operation} of circuit {name!r} failed: "
            f"{_hint(exc)} ({type(exc).__name__}: {exc})"
        )

    def close(self) -> None:
        """Close the clients the store built (asyncio ones close when their loop shuts down)."""
        if self._owns_client and self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        return f"{self._label[:-1]}, prefix={self._prefix!r})"


async def _close_at_loop_shutdown(
    store: RedisStore, client: redis.asyncio.Redis
) -> AsyncIterator[None]:
    """Parked async generator: the loop's ``shutdown_asyncgens`` (run by ``asyncio.run``)
    closes it, which closes the loop's client while the loop can still do I/O."""
    try:
        yield
    finally:
        store._forget_loop_client(asyncio.get_running_loop())
        await getattr(client, "aclose", client.close)()  # redis-py 5.0.0 has only close()


def _hint(exc: Exception) -> str:
    if isinstance(exc, redis.ReadOnlyError):
        return "the server is a read-only replica (after a failover?): use the primary"
    if isinstance(exc, redis.OutOfMemoryError):
        return "the server is out of memory (maxmemory reached)"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return "the ACL user lacks a command or key pattern fleetbreaker needs (docs/redis.md)"
    if isinstance(exc, redis.AuthenticationError):
        return "authentication failed"
    if isinstance(exc, redis.TimeoutError):
        return "no answer within the socket timeout"
    if isinstance(exc, redis.ConnectionError):
        return "cannot reach the server"
    return "unexpected error or reply"


def _ttl_ms(new: Write) -> int:
    # A relative TTL counts on the server's clock from arrival: no clock but the server's.
    return math.ceil(new.ttl * 1000)


def _at_args(epoch: int, new: Write) -> list[str | int]:
    return ["at", str(epoch), str(new.epoch), new.payload, _ttl_ms(new)]


def _over_args(replacing: Stored | None, new: Write) -> list[str | int]:
    if replacing is None:
        seen = ""  # never a SHA-1: only "no key" matches
    elif isinstance(replacing.held, bytes):
        # A digest, not the value itself: someone else's value may be large.
        seen = hashlib.sha1(replacing.held, usedforsecurity=False).hexdigest()
    else:
        seen = _ANOTHER_TYPE
    return ["over", seen, str(new.epoch), new.payload, _ttl_ms(new)]


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix or len(prefix) > _MAX_PREFIX:
        raise ConfigError(
            f"RedisStore prefix must be 1 to {_MAX_PREFIX} characters, such as "
            f"{DEFAULT_PREFIX!r}, got {prefix!r:.80}"
        )
    if not prefix.isprintable():
        raise ConfigError(f"RedisStore prefix must be printable text, got {prefix!r}")
    return prefix


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


def _where(client: object) -> str:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not kwargs:
        return type(client).__name__
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _check_connection(pool: redis.ConnectionPool) -> None:
    """Build one connection object (no I/O) so a misspelt option fails now, not at first use."""
    pool.connection_class(**pool.connection_kwargs)


def _option_error(exc: Exception, options: dict[str, Any]) -> ConfigError:
    """The error for client options redis-py refused (the URL itself was fine)."""
    unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if unknown is not None and unknown.group(1) in options:
        return ConfigError(
            f"RedisStore: unknown option {unknown.group(1)!r} for redis.Redis: from_url's "
            "keyword arguments go to redis.Redis.from_url and its connection class "
            "(socket_timeout, ssl_ca_certs, health_check_interval, ...); check the spelling"
        )
    return ConfigError(f"RedisStore: cannot use client options {sorted(options)}: {exc}")


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    auth, at, host = rest.rpartition("@")
    if not at:
        return url
    user = auth.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}"

"""Build a store from one URL string: :func:`from_url` and :func:`from_env`.

An application and the CLI configure a store the same way, from one string that can live in
the environment (``FLEETBREAKER_STORE``). What each scheme takes:

=============================================  ==============================================
``memory://``                                  :class:`MemoryStore`; no host, path or query
``sqlite:///abs/path.db``, ``sqlite://rel.db``  :class:`SQLiteStore`; three slashes: absolute,
                                               two: relative to the current directory;
                                               ``?timeout=SECONDS``
``redis://``, ``rediss://``, ``valkey://``,    ``RedisStore.from_url``; ``?prefix=`` is
``valkeys://``                                 fleetbreaker's, every other query option is
                                               redis-py's (``db``, ``socket_timeout``, ...)
``dynamodb://TABLE``                           ``DynamoDBStore``; ``?region=``,
                                               ``?endpoint_url=``, ``?key_prefix=``
``postgresql://``, ``postgres://``             ``PostgresStore``; ``?table=``, ``?timeout=``,
                                               ``?create_table=`` are fleetbreaker's, every
                                               other query option is libpq's (``sslmode``,
                                               ``application_name``, ...)
=============================================  ==============================================

``**options`` are keyword arguments of the store's constructor (``RedisStore.from_url``'s for
Redis). An option given both in the URL and as a keyword argument is a ``ConfigError``: a
value set in two places is a mistake that no precedence rule makes visible. Anything a URL
gets wrong (its form, scheme, an unknown or unparsable query option, a missing extra) is a
``ConfigError`` that names the part and the fix, raised without another library's traceback
chained to it. A store module is imported only when its scheme is asked for, so
``import fleetbreaker`` never imports redis or boto3.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from fleetbreaker.errors import ConfigError, StoreError
from fleetbreaker.stores.base import Store

__all__ = ["ENV_VARIABLE", "from_env", "from_url"]

ENV_VARIABLE = "FLEETBREAKER_STORE"
_EXAMPLES = "such as 'sqlite:///var/lib/app/breakers.db' or 'redis://cache:6379/0'"
# What botocore accepts as a region name (it raises its own error otherwise, mid-construction).
_REGION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_UNKNOWN_KEYWORD = re.compile(r"unexpected keyword argument '(\w+)'")
_QUERY_PASSWORD = re.compile(r"(password=)[^&#'\s]*")


@dataclass(frozen=True, slots=True)
class _Url:
    """A store URL taken apart; ``source`` says where it came from, for messages."""

    text: str
    source: str
    scheme: str
    netloc: str
    path: str
    query: dict[str, str]

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"{self.source} {_redact(self.text)!r}: {problem}")

    def reject_query(self, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(self.query) - set(allowed))
        if unknown:
            takes = ", ".join(f"?{name}=" for name in allowed) or "no query options"
            raise self.error(
                f"unknown query option {_names(unknown)} for {self.scheme}://; it takes "
                f"{takes} (other settings go to from_url as keyword arguments)"
            )


def from_url(url: str, **options: Any) -> Store:
    """The store ``url`` names; ``options`` are keyword arguments of its constructor.

    Raises :class:`~fleetbreaker.errors.ConfigError` for a URL or option it cannot use (the
    module docstring lists what each scheme takes). Errors of the backend itself, such as an
    SQLite file that is not a fleetbreaker database, are the ``StoreError`` the store raises.
    """
    return _build(url, "store URL", options)


def from_env(default: str | None = None, **options: Any) -> Store:
    """The store that ``FLEETBREAKER_STORE`` names, or ``default`` if it is unset or empty.

    Without a ``default`` an unset variable is a ``ConfigError`` naming it. An empty value
    counts as unset, as ``${VAR:-default}`` has it: compose files and ``.env`` templates
    leave variables empty when they mean "not configured".
    """
    value = os.environ.get(ENV_VARIABLE, "")
    if value:
        return _build(value, ENV_VARIABLE, options)
    if default is None:
        raise ConfigError(
            f"{ENV_VARIABLE} is not set: set it to a store URL {_EXAMPLES} (schemes: "
            f"{_known()}), or pass from_env(default=...)"
        )
    return _build(default, "from_env default", options)


def _build(url: object, source: str, options: dict[str, Any]) -> Store:
    parsed = _parse(url, source)
    return _BUILDERS[parsed.scheme](parsed, options)


def _parse(url: object, source: str) -> _Url:
    if not isinstance(url, str) or not url:
        raise ConfigError(
            f"{source} must be a non-empty string {_EXAMPLES} (schemes: {_known()}), "
            f"got {url!r:.80}"
        )
    shown = f"{source} {_redact(url)!r}"
    if url.strip() != url or not url.isprintable():
        raise ConfigError(f"{shown}: has surrounding whitespace or a control character; remove it")
    scheme, separator, _ = url.partition("://")
    if not separator or not scheme:
        raise ConfigError(f"{shown}: is not a store URL: write SCHEME://..., {_EXAMPLES}")
    scheme = scheme.lower()
    if scheme not in _BUILDERS:
        hint = (
            "; for a Unix socket use RedisStore.from_url('unix://...')" if scheme == "unix" else ""
        )
        raise ConfigError(f"{shown}: unknown scheme {scheme!r}; known: {_known()}{hint}")
    if "#" in url:
        raise ConfigError(f"{shown}: has a '#': write a '#' in a password or value as %23")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6] host, say
        raise ConfigError(f"{shown}: is malformed ({exc})") from None
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigError(f"{shown}: malformed query ({exc}); write ?name=value&...") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name in query:
            raise ConfigError(f"{shown}: query option {name!r} is given twice")
        query[name] = value
    text = scheme + url[len(scheme) :]  # redis-py wants the scheme in lower case
    return _Url(text, source, scheme, parts.netloc, parts.path, query)


def _memory(url: _Url, options: dict[str, Any]) -> Store:
    if url.netloc or url.path:
        raise url.error(
            "memory:// takes no host or path (the store is this process's memory); write memory://"
        )
    url.reject_query(())
    from fleetbreaker.stores.memory import MemoryStore  # noqa: PLC0415 - by scheme

    return _construct(url, MemoryStore, {}, options)


def _sqlite(url: _Url, options: dict[str, Any]) -> Store:
    from fleetbreaker.stores.sqlite import MAX_TIMEOUT_S, SQLiteStore  # noqa: PLC0415

    url.reject_query(("timeout",))
    # sqlite:///abs.db has an empty netloc and an absolute path; sqlite://dir/rel.db puts the
    # first relative segment in the netloc.
    path = unquote(url.netloc + url.path)
    if not path:
        raise url.error(
            "sqlite:// needs a file path: sqlite:///var/lib/app/breakers.db (absolute, three "
            "slashes) or sqlite://breakers.db (relative to the current directory)"
        )
    if path == ":memory:" or path.startswith("file:"):
        raise url.error(
            "SQLite needs a file that the processes share; for one process write memory://"
        )
    directory = Path(path).parent
    if not directory.is_dir():
        raise url.error(
            f"directory {str(directory)!r} does not exist; create it, or fix the path "
            "(sqlite:///... is absolute, sqlite://... relative to the current directory)"
        )
    given: dict[str, Any] = {"path": path}
    if "timeout" in url.query:
        given["timeout"] = _seconds(url, "timeout", MAX_TIMEOUT_S, example="2.5")
    return _construct(url, SQLiteStore, given, options)


def _seconds(url: _Url, option: str, most: float, *, example: str) -> float:
    """The query option ``option`` as seconds in ``(0, most]``."""
    text = url.query[option]
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= most:  # also false for NaN
        raise url.error(
            f"?{option}= must be seconds in (0, {most:g}], such as ?{option}={example}, "
            f"got {text!r}"
        )
    return seconds


def _redis(url: _Url, options: dict[str, Any]) -> Store:
    try:
        from fleetbreaker.stores.redis import RedisStore  # noqa: PLC0415 - by scheme
    except ImportError:
        raise url.error(_missing_extra("redis", "redis-py")) from None
    _reject_conflicts(url, set(url.query), options)
    given = dict(options)
    if "prefix" in url.query:
        given["prefix"] = url.query["prefix"]
    # Every other query option is redis-py's: it checks them (and names an unknown one).
    rest = [(name, value) for name, value in url.query.items() if name != "prefix"]
    target = url.text.partition("?")[0] + (f"?{urlencode(rest)}" if rest else "")
    try:
        return RedisStore.from_url(target, **given)
    except ConfigError as exc:
        unknown = _UNKNOWN_KEYWORD.search(str(exc))
        if unknown is not None and unknown.group(1) in url.query:
            raise url.error(
                f"unknown query option {unknown.group(1)!r}: fleetbreaker's is ?prefix=, the "
                "others are redis-py's (db, socket_timeout, socket_connect_timeout, "
                "health_check_interval, ssl_ca_certs, ...); check the spelling"
            ) from None
        # RedisStore's message already shows the URL, its authority's password hidden; say
        # where it came from, and hide a password given in the query too.
        source = f"{url.source}: " if url.source == ENV_VARIABLE else ""
        raise ConfigError(source + _QUERY_PASSWORD.sub(r"\1***", str(exc))) from None


def _dynamodb(url: _Url, options: dict[str, Any]) -> Store:
    try:
        from botocore.config import Config as BotoConfig  # noqa: PLC0415 - by scheme

        from fleetbreaker.stores.dynamodb import DynamoDBStore  # noqa: PLC0415
    except ImportError:
        raise url.error(_missing_extra("dynamodb", "boto3")) from None
    table = unquote(url.netloc + url.path)
    if not table:
        raise url.error(
            "dynamodb:// needs a table name: dynamodb://TABLE?region=us-east-1 (or a table ARN)"
        )
    url.reject_query(("region", "endpoint_url", "key_prefix"))
    given: dict[str, Any] = {"table_name": table}
    endpoint = url.query.get("endpoint_url")
    if endpoint is not None:
        found = urlsplit(endpoint)
        if found.scheme not in {"http", "https"} or not found.netloc:
            raise url.error(
                "?endpoint_url= must be an http:// or https:// URL such as "
                f"http://localhost:8000, got {endpoint!r}"
            )
        given["endpoint_url"] = endpoint
    if "key_prefix" in url.query:
        given["key_prefix"] = url.query["key_prefix"]
    region = url.query.get("region")
    if region is not None:
        if not _REGION.match(region):
            raise url.error(f"?region= must be an AWS region such as us-east-1, got {region!r}")
        config = options.get("boto_config")
        if isinstance(config, BotoConfig) and config.region_name is not None:
            raise url.error(
                "the region is set both in the URL (?region=) and in boto_config=; "
                "set it in one place"
            )
        region_config = BotoConfig(region_name=region)
        options = {
            **options,
            "boto_config": region_config if config is None else config.merge(region_config),
        }
    try:
        return _construct(url, DynamoDBStore, given, options)
    except StoreError as exc:  # DynamoDBStore does no I/O when built: this is configuration
        hint = "; or add ?region= to the URL" if "region" in str(exc) and not region else ""
        raise url.error(f"{exc}{hint}") from None


_POSTGRES_OPTIONS = ("table", "timeout", "create_table")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _postgres(url: _Url, options: dict[str, Any]) -> Store:
    try:
        from psycopg import Error as PsycopgError  # noqa: PLC0415 - by scheme
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

        from fleetbreaker.stores.postgres import MAX_TIMEOUT_S, PostgresStore  # noqa: PLC0415
    except ImportError:
        raise url.error(_missing_extra("postgres", "psycopg 3")) from None
    given: dict[str, Any] = {}
    if "table" in url.query:
        given["table"] = url.query["table"]
    if "timeout" in url.query:
        given["timeout"] = _seconds(url, "timeout", MAX_TIMEOUT_S, example="0.5")
    if "create_table" in url.query:
        text = url.query["create_table"]
        if text.lower() not in _BOOLEANS:
            raise url.error(f"?create_table= must be true or false, got {text!r}")
        given["create_table"] = _BOOLEANS[text.lower()]
    # Every other query option is libpq's: libpq checks them (and names an unknown one).
    rest = [(name, value) for name, value in url.query.items() if name not in _POSTGRES_OPTIONS]
    dsn = url.text.partition("?")[0] + (f"?{urlencode(rest)}" if rest else "")
    try:
        conninfo_to_dict(dsn)
    except PsycopgError as exc:
        problem = _QUERY_PASSWORD.sub(r"\1***", str(exc).strip())
        if "query parameter" in problem:
            problem += (
                f"; fleetbreaker's options are {', '.join(f'?{o}=' for o in _POSTGRES_OPTIONS)}"
                ", the others are libpq's (sslmode, connect_timeout, application_name, ...); "
                "check the spelling"
            )
        raise url.error(problem) from None
    return _construct(url, PostgresStore, {"dsn": dsn, **given}, options)


def _construct(
    url: _Url, store: Callable[..., Store], given: dict[str, Any], options: dict[str, Any]
) -> Store:
    """``store(**given, **options)`` once every option is one it takes, set in one place."""
    _reject_conflicts(url, set(given), options)
    accepted = set(inspect.signature(store).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        name = getattr(store, "__name__", "the store")
        takes = ", ".join(sorted(accepted - set(given))) or "none"
        raise url.error(
            f"unknown keyword argument {_names(unknown)} for {name} (it takes: {takes})"
        )
    return store(**given, **options)


def _reject_conflicts(url: _Url, in_url: set[str], options: dict[str, Any]) -> None:
    both = sorted(in_url & set(options))
    if both:
        raise url.error(
            f"{_names(both)} set both in the URL and as a keyword argument; set it in one place"
        )


def _missing_extra(extra: str, library: str) -> str:
    return f"the {extra} scheme needs {library}: pip install 'fleetbreaker[{extra}]'"


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _known() -> str:
    return ", ".join(f"{scheme}://" for scheme in _BUILDERS)


def _redact(url: str) -> str:
    """``url`` with any password (in the authority or the query) replaced by ``***``."""
    scheme, separator, rest = url.partition("://")
    end = min((at for at in map(rest.find, "/?#") if at >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{host}"
    tail = _QUERY_PASSWORD.sub(r"\1***", tail)
    return f"{scheme}{separator}{authority}{tail}"


_BUILDERS: dict[str, Callable[[_Url, dict[str, Any]], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "rediss": _redis,
    "valkey": _redis,
    "valkeys": _redis,
    "dynamodb": _dynamodb,
    "postgresql": _postgres,
    "postgres": _postgres,
}

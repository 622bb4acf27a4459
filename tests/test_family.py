"""BreakerFamily: one circuit per key, created on first use, at most max_circuits held."""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest

from fleetbreaker import (
    BreakerFamily,
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    Config,
    ConfigError,
    MemoryStore,
    Store,
)
from fleetbreaker import _family as family_module
from fleetbreaker.testing import FakeClock, RecordingHook

ONE_STRIKE = Config(failure_threshold=1, recovery_timeout=30)


class Boom(Exception):
    pass


def boom(*_args: Any, **_kwargs: Any) -> None:
    raise Boom


def tenant(name: str, *_args: Any, **_kwargs: Any) -> str:
    return name


def refused(*args: Any, circuit: CircuitInfo, **kwargs: Any) -> tuple[str, str]:
    return ("refused", circuit.name)


def make(**kwargs: Any) -> BreakerFamily:
    kwargs.setdefault("store", MemoryStore())
    kwargs.setdefault("config", ONE_STRIKE)
    kwargs.setdefault("clock", FakeClock())
    return BreakerFamily("tenant-api", **kwargs)


def trip(family: BreakerFamily, key: str) -> None:
    with pytest.raises(Boom):
        family[key].call(boom)


# --- naming and identity -------------------------------------------------------------------


def test_circuit_is_named_prefix_colon_key() -> None:
    """family[key] is the breaker of circuit f"{prefix}:{key}"."""
    family = make()
    assert isinstance(family["acme"], CircuitBreaker)
    assert family["acme"].name == "tenant-api:acme"


def test_reuse_returns_the_same_breaker() -> None:
    """A key's breaker is built once and handed back on every later use."""
    family = make()
    first = family["acme"]
    family["globex"]
    assert family["acme"] is first
    assert len(family) == 2


def test_breakers_get_the_familys_store_config_and_hooks() -> None:
    """Every breaker is built with the family's store, config and hooks."""
    store, hook = MemoryStore(), RecordingHook()
    family = make(store=store, on_circuit_open=refused, on_transition=hook)
    breaker = family["acme"]
    assert breaker.store is store
    assert breaker.config is ONE_STRIKE
    assert breaker.on_circuit_open is refused
    assert breaker.on_transition is hook


def test_default_store_is_shared_by_every_key() -> None:
    """With store=None the family makes one MemoryStore for all its circuits."""
    family = BreakerFamily("svc")
    assert isinstance(family.store, MemoryStore)
    assert family["a"].store is family.store is family["b"].store


def test_str_subclass_key_is_keyed_by_its_text() -> None:
    """A str enum member and its plain text reach the same breaker."""

    class Tenant(str, enum.Enum):
        ACME = "acme"

    family = make()
    assert family[Tenant.ACME] is family["acme"]
    assert family["acme"].name == "tenant-api:acme"
    assert Tenant.ACME in family
    assert [type(key) for key in family] == [str]


def test_len_contains_keys_and_iteration_see_held_breakers() -> None:
    """len, in, keys() and iteration report the breakers held, least recently used first."""
    family = make()
    assert len(family) == 0
    assert "acme" not in family
    family["acme"]
    family["globex"]
    family["acme"]
    assert len(family) == 2
    assert "acme" in family
    assert "initech" not in family
    assert 42 not in family
    assert family.keys() == ["globex", "acme"]
    assert list(family) == ["globex", "acme"]


def test_repr_shows_prefix_and_occupancy() -> None:
    """repr names the prefix and how many circuits are held of the maximum."""
    family = make(max_circuits=8)
    family["acme"]
    assert repr(family).startswith("BreakerFamily('tenant-api', circuits=1/8, store=")


# --- separate circuits -----------------------------------------------------------------------


def test_a_trip_on_one_key_leaves_another_closed() -> None:
    """Each key has its own circuit: tripping one refuses only that key's calls."""
    hook = RecordingHook()
    family = make(on_transition=hook)
    trip(family, "acme")
    assert family["acme"].state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        family["acme"].call(str.upper, "x")
    assert family["globex"].call(str.upper, "x") == "X"
    assert family["globex"].state is CircuitState.CLOSED
    assert [t.name for t in hook.transitions] == ["tenant-api:acme"]


# --- by() ------------------------------------------------------------------------------------


def test_by_routes_each_sync_call_to_its_keys_circuit() -> None:
    """A sync function decorated with by() runs through the breaker of the key of each call."""
    family = make()
    seen: list[tuple[str, str]] = []

    @family.by(tenant)
    def fetch(name: str, path: str) -> str:
        """Fetch a path for a tenant."""
        seen.append((name, path))
        if path == "/bad":
            raise Boom
        return f"{name}{path}"

    assert fetch("acme", "/a") == "acme/a"
    with pytest.raises(Boom):
        fetch("acme", "/bad")
    with pytest.raises(CircuitOpenError) as refused_call:
        fetch("acme", "/a")
    assert refused_call.value.circuit.name == "tenant-api:acme"
    assert fetch("globex", path="/b") == "globex/b"
    assert seen == [("acme", "/a"), ("acme", "/bad"), ("globex", "/b")]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a path for a tenant."
    assert fetch.family is family  # type: ignore[attr-defined]
    assert not inspect.iscoroutinefunction(fetch)


def test_by_routes_each_async_call_to_its_keys_circuit() -> None:
    """An async def decorated with by() stays a coroutine function, routed per key."""
    family = make()

    @family.by(tenant)
    async def fetch(name: str, path: str) -> str:
        """Fetch a path for a tenant."""
        if path == "/bad":
            raise Boom
        return f"{name}{path}"

    async def scenario() -> None:
        assert await fetch("acme", "/a") == "acme/a"
        with pytest.raises(Boom):
            await fetch("acme", "/bad")
        with pytest.raises(CircuitOpenError):
            await fetch("acme", "/a")
        assert await fetch("globex", "/b") == "globex/b"

    asyncio.run(scenario())
    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert fetch.family is family  # type: ignore[attr-defined]
    assert family["acme"].state is CircuitState.OPEN
    assert family["globex"].state is CircuitState.CLOSED


def test_by_calls_the_fallback_for_an_open_key() -> None:
    """A refused call gets on_circuit_open with its own args and its key's circuit."""
    family = make(on_circuit_open=refused)
    fetch = family.by(tenant)(boom)
    with pytest.raises(Boom):
        fetch("acme")
    assert fetch("acme") == ("refused", "tenant-api:acme")
    with pytest.raises(Boom):
        fetch("globex")  # another key's circuit still calls through


def test_by_awaits_an_async_fallback_for_an_open_key() -> None:
    """An async def fallback serves decorated async functions, awaited per refused call."""

    async def fallback(name: str, *, circuit: CircuitInfo) -> str:
        return f"later {name} ({circuit.state.value})"

    family = make(on_circuit_open=fallback)

    @family.by(tenant)
    async def fetch(name: str) -> str:
        raise Boom

    async def scenario() -> str:
        with pytest.raises(Boom):
            await fetch("acme")
        return await fetch("acme")

    assert asyncio.run(scenario()) == "later acme (open)"


def test_by_refuses_an_async_fallback_for_a_sync_function() -> None:
    """As with a breaker, an async on_circuit_open cannot serve a sync function."""

    async def fallback(*_args: Any, circuit: CircuitInfo) -> None:
        return None

    family = make(on_circuit_open=fallback)
    with pytest.raises(ConfigError, match="is async but the function is sync"):
        family.by(tenant)(boom)


def test_by_refuses_a_generator_function() -> None:
    """As with a breaker, a generator function cannot be protected."""

    def rows(name: str) -> Any:
        yield name

    with pytest.raises(ConfigError, match="cannot protect a generator function"):
        make().by(tenant)(rows)


def test_by_routes_methods_with_self_first() -> None:
    """key_fn gets self first for a method; a staticmethod object stays a staticmethod."""
    family = make()

    class Client:
        def __init__(self, name: str) -> None:
            self.name = name

        @family.by(lambda client, *_a: client.name)
        def get(self, path: str) -> str:
            return f"{self.name}{path}"

        @family.by(tenant)
        @staticmethod
        def ping(name: str) -> str:
            return name

    assert Client("acme").get("/x") == "acme/x"
    assert Client.ping("globex") == "globex"
    assert isinstance(Client.__dict__["ping"], staticmethod)
    assert family.keys() == ["acme", "globex"]


# --- the LRU bound ---------------------------------------------------------------------------


def test_at_most_max_circuits_are_held_the_most_recent() -> None:
    """10 000 keys through a family of 1024 keep the 1024 used last."""
    family = make()
    for i in range(10_000):
        family[f"k{i}"]
        assert len(family) == min(i + 1, 1024)
    assert family.keys() == [f"k{i}" for i in range(10_000 - 1024, 10_000)]
    assert "k8975" not in family
    assert "k8976" in family


def test_a_hit_makes_a_key_the_most_recent() -> None:
    """The key used last is dropped last: a hit moves it to the end."""
    family = make(max_circuits=3)
    a = family["a"]
    family["b"]
    family["c"]
    assert family["a"] is a  # a hit: "b" is now the least recent
    family["d"]
    assert family.keys() == ["c", "a", "d"]
    assert family["a"] is a


def test_an_evicted_key_reads_its_open_circuit_from_the_store() -> None:
    """A dropped key's new breaker is a new object that sees the circuit the store holds."""
    store = MemoryStore()
    family = make(store=store)
    trip(family, "k0")
    tripped = family["k0"]
    for i in range(1, 10_000):
        family[f"k{i}"]
    assert "k0" not in family
    fresh = family["k0"]
    assert fresh is not tripped
    assert fresh.state is CircuitState.CLOSED  # a new local object: nothing read yet
    with pytest.raises(CircuitOpenError):
        fresh.call(str.upper, "x")
    assert fresh.state is CircuitState.OPEN
    assert fresh.info().state is CircuitState.OPEN
    assert store.load("tenant-api:k0") is not None


# --- threads ---------------------------------------------------------------------------------


class Arrivals:
    """Where the threads racing to build a breaker are: building one, or blocked on the
    family's lock while a builder holds it. A builder parks until every other thread is at
    one of the two, so a check-then-build race cannot be missed and a lock cannot hide one."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._cond = threading.Condition()
        self._building: set[int] = set()
        self._blocked: set[int] = set()
        self._holder: int | None = None

    def blocked(self) -> None:
        with self._cond:
            self._blocked.add(threading.get_ident())
            self._cond.notify_all()

    def holding(self, holder: int | None) -> None:
        with self._cond:
            self._blocked.discard(threading.get_ident())
            self._holder = holder
            self._cond.notify_all()

    def park_builder(self) -> bool:
        """Park the calling builder until the other threads have arrived; False on timeout."""
        me = threading.get_ident()

        def all_arrived() -> bool:
            waiting = self._blocked if self._holder == me else set()
            return len((self._building | waiting) - {me}) == self.threads - 1

        with self._cond:
            self._building.add(me)
            self._cond.notify_all()
            return self._cond.wait_for(all_arrived, timeout=10)


class ArrivalLock:
    """The family's lock, telling ``Arrivals`` who holds it and who is blocked on it."""

    def __init__(self, arrivals: Arrivals) -> None:
        self._lock = threading.Lock()
        self._arrivals = arrivals

    def acquire(self) -> bool:
        if not self._lock.acquire(blocking=False):
            self._arrivals.blocked()
            self._lock.acquire()
        self._arrivals.holding(threading.get_ident())
        return True

    def release(self) -> None:
        self._arrivals.holding(None)  # before the release: a stale holder is never named
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def test_concurrent_first_use_of_a_key_builds_one_breaker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """8 threads using a new key at once get one breaker, built once.

    Every builder is parked inside construction until each other thread is either blocked on
    the family's lock held by that builder, or building a breaker of its own (what a family
    without the lock does: then all 8 build).
    """
    threads = 8
    arrivals = Arrivals(threads)
    built: list[CircuitBreaker] = []
    parked: list[bool] = []

    def building(*args: Any, **kwargs: Any) -> CircuitBreaker:
        parked.append(arrivals.park_builder())
        breaker = CircuitBreaker(*args, **kwargs)
        built.append(breaker)
        return breaker

    family = make()
    family._lock = ArrivalLock(arrivals)  # type: ignore[assignment]
    monkeypatch.setattr(family_module, "CircuitBreaker", building)
    barrier = threading.Barrier(threads)
    got: list[CircuitBreaker] = []

    def use() -> None:
        barrier.wait()
        got.append(family["acme"])

    workers = [threading.Thread(target=use) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(built) == 1
    assert parked == [True]
    assert len(got) == threads
    assert all(breaker is built[0] for breaker in got)
    assert family["acme"] is built[0]


# --- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (None, "BreakerFamily prefix must be a str, got NoneType None"),
        (b"svc", "BreakerFamily prefix must be a str, got bytes b'svc'"),
        ("", "BreakerFamily prefix must not be empty"),
        ("svc\n", "BreakerFamily prefix 'svc\\\\n' cannot name circuits.*printable"),
        ("s" * 199, "BreakerFamily prefix 's{10}.*at most 200 characters, got 201"),
    ],
    ids=["none", "bytes", "empty", "control-char", "too-long"],
)
def test_bad_prefix_is_refused_at_construction(prefix: Any, message: str) -> None:
    """A prefix that cannot start a circuit name fails at once, naming the prefix."""
    with pytest.raises(ConfigError, match=message):
        BreakerFamily(prefix)


def test_longest_prefix_with_room_for_a_key_is_accepted() -> None:
    """A prefix of 198 characters leaves room for a one-character key."""
    family = BreakerFamily("s" * 198)
    assert family["k"].name == "s" * 198 + ":k"
    with pytest.raises(ConfigError, match=r"bad key 'kk'.*at most 200 characters, got 201"):
        family["kk"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (42, "'tenant-api': a key must be a str, got int 42"),
        (None, "'tenant-api': a key must be a str, got NoneType None"),
        (b"acme", "'tenant-api': a key must be a str, got bytes b'acme'"),
        (["acme"], r"'tenant-api': a key must be a str, got list \['acme'\]"),
        ("", "'tenant-api': a key must not be empty"),
        ("ac\x00me", r"bad key 'ac\\x00me': circuit name must be printable"),
        ("ac\nme", r"bad key 'ac\\nme': circuit name must be printable"),
        ("k" * 190, "bad key 'k{10}.*at most 200 characters, got 201"),
    ],
    ids=["int", "none", "bytes", "list", "empty", "nul", "newline", "too-long"],
)
def test_bad_key_is_refused_where_it_is_used(key: Any, message: str) -> None:
    """family[key] raises ConfigError naming the key and what is wrong with it."""
    family = make()
    with pytest.raises(ConfigError, match=message):
        family[key]
    assert len(family) == 0


def test_longest_key_is_accepted() -> None:
    """A key that makes a 200-character name is a valid key."""
    key = "k" * (200 - len("tenant-api:"))
    assert make()[key].name == f"tenant-api:{key}"


class ShortNamesStore(MemoryStore):
    """A store that holds circuit names of at most 16 characters."""

    def check_name(self, name: str) -> None:
        if len(name) > 16:
            raise ConfigError(f"ShortNamesStore: {name!r} is over 16 characters")


def test_store_check_name_applies_to_keys_and_the_prefix() -> None:
    """The store's check_name refuses a key (at use) and a prefix (at construction)."""
    family = make(store=ShortNamesStore())
    assert family["acme"].name == "tenant-api:acme"
    with pytest.raises(ConfigError, match=r"bad key 'initech-corp'.*ShortNamesStore"):
        family["initech-corp"]
    with pytest.raises(ConfigError, match=r"prefix 'a-very-long-prefix'.*ShortNamesStore"):
        BreakerFamily("a-very-long-prefix", store=ShortNamesStore())


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "8", None], ids=repr)
def test_max_circuits_must_be_a_positive_integer(bad: Any) -> None:
    """max_circuits is refused unless it is an int of at least 1."""
    with pytest.raises(ConfigError, match=f"max_circuits must be a positive integer, got {bad!r}"):
        make(max_circuits=bad)


def test_max_circuits_of_one_holds_one_breaker() -> None:
    """max_circuits=1 keeps only the key used last."""
    family = make(max_circuits=1)
    family["a"]
    family["b"]
    assert family.keys() == ["b"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"store": object()}, "store must be a fleetbreaker Store, got object"),
        ({"config": {"failure_threshold": 1}}, "config must be a fleetbreaker Config, got dict"),
        ({"on_transition": 3}, "on_transition must be callable, got 3"),
        ({"on_circuit_open": "fallback"}, "on_circuit_open must be callable"),
        ({"on_circuit_open": lambda *_a: None}, "on_circuit_open must accept a keyword argument"),
    ],
    ids=["store", "config", "on_transition", "fallback-not-callable", "fallback-no-circuit"],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    """Store, config and hooks are checked when the family is built, not at first use."""
    with pytest.raises(ConfigError, match=message):
        BreakerFamily("svc", **kwargs)


def test_generator_hook_fails_at_construction() -> None:
    """A generator function as on_transition is refused when the family is built."""

    def hook(_transition: Any) -> Any:
        yield

    with pytest.raises(ConfigError, match="on_transition must not be a generator function"):
        BreakerFamily("svc", on_transition=hook)


@pytest.mark.parametrize("key_fn", [None, "tenant", 3], ids=repr)
def test_key_fn_must_be_callable(key_fn: Any) -> None:
    """by() refuses a key_fn that cannot be called."""
    with pytest.raises(ConfigError, match="key_fn must be callable"):
        make().by(key_fn)


def test_key_fn_must_return_the_key_itself() -> None:
    """by() refuses an async or generator key_fn: its call would not return a str."""

    async def async_key(name: str) -> str:
        return name

    def generator_key(name: str) -> Any:
        yield name

    key_fns: list[Any] = [async_key, generator_key, functools.partial(async_key)]
    for key_fn in key_fns:
        with pytest.raises(ConfigError, match="key_fn must return the key"):
            make().by(key_fn)


def calls_recorder() -> tuple[list[object], Callable[..., None]]:
    calls: list[object] = []

    def fetch(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))

    return calls, fetch


def test_key_fn_raising_is_a_config_error_and_the_function_is_not_called() -> None:
    """A key function that raises is the caller's bug: ConfigError, no call made."""
    family = make()
    calls, fetch = calls_recorder()

    def no_key(*_args: Any) -> str:
        raise LookupError("no tenant header")

    wrapped = family.by(no_key)(fetch)
    with pytest.raises(ConfigError, match="raised LookupError: no tenant header") as error:
        wrapped("acme")
    assert isinstance(error.value.__cause__, LookupError)
    assert calls == []
    assert len(family) == 0


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, "a key must be a str, got NoneType None"),
        (7, "a key must be a str, got int 7"),
        ("", "a key must not be empty"),
        ("a\tb", "circuit name must be printable"),
    ],
    ids=["none", "int", "empty", "tab"],
)
def test_key_fn_returning_a_bad_key_is_a_config_error(returned: Any, message: str) -> None:
    """A bad key from key_fn raises ConfigError on the call, sync or async; no call made."""
    family = make()
    calls, fetch = calls_recorder()

    async def afetch(*args: Any) -> None:
        calls.append(args)

    sync_wrapped = family.by(lambda *_a: returned)(fetch)
    async_wrapped = family.by(lambda *_a: returned)(afetch)
    with pytest.raises(
        ConfigError, match=f"returned a bad key, so the function was not called.*{message}"
    ):
        sync_wrapped("acme")
    with pytest.raises(ConfigError, match=message):
        asyncio.run(async_wrapped("acme"))
    assert calls == []
    assert len(family) == 0


def test_store_subclass_is_accepted() -> None:
    """Any fleetbreaker Store serves a family."""
    store: Store = ShortNamesStore()
    assert make(store=store)["a"].store is store

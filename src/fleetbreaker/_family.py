"""BreakerFamily: one circuit per key (a tenant, a host, a shard), each created on first use.

The family keeps at most ``max_circuits`` local ``CircuitBreaker`` objects and drops the least
recently used. Dropping one forgets only this process's object (its cached view and its count
of consecutive failures): the circuit's record stays in the store, and the breaker built for
that key next time reads it from there, like a process that has just started.

One short lock guards the table: a lookup, and on a miss the building of the breaker, so that
concurrent first use of a key builds exactly one. Building one does no I/O and calls no user
callable (hooks are only inspected, and ``Store.check_name`` is a local check); no call, store
round trip or hook ever runs under the lock. Calls go through the key's breaker with its own
``call`` / ``acall``, so every guarantee of ``CircuitBreaker`` holds per key.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fleetbreaker._breaker import CircuitBreaker, check_circuit_name, check_settings
from fleetbreaker._callables import Flavor, check_fallback, flavor, split_method_descriptor
from fleetbreaker._clock import Clock
from fleetbreaker._fork import reset_after_fork
from fleetbreaker._info import CircuitTransition
from fleetbreaker.config import Config
from fleetbreaker.errors import ConfigError
from fleetbreaker.stores.base import Store
from fleetbreaker.stores.memory import MemoryStore

__all__ = ["BreakerFamily"]

# A string: the bound's types are subscripted only by type checkers, never at runtime.
F = TypeVar("F", bound="Callable[..., Any] | staticmethod[..., Any] | classmethod[Any, ..., Any]")


class BreakerFamily:
    """One circuit breaker per key, named ``f"{prefix}:{key}"`` and created on first use.

    ``family[key]`` is that key's ``CircuitBreaker``, built with the family's store, config,
    hooks and clock. ``@family.by(key_fn)`` protects a function (sync or ``async def``): each
    call goes through the breaker of the key ``key_fn(*args, **kwargs)`` returns.

    A key is a non-empty, printable ``str`` whose full name passes the same checks as any
    circuit name (at most 200 characters, and whatever the store requires); a bad key raises
    ``ConfigError`` where it is used. Keep ``max_circuits`` above the number of keys in use at
    once: a key whose breaker was dropped starts counting consecutive failures from zero.
    ``len(family)``, ``key in family``, ``family.keys()`` and iteration see the breakers this
    process holds now, not the circuits in the store.
    """

    def __init__(
        self,
        prefix: str,
        *,
        store: Store | None = None,
        config: Config | None = None,
        max_circuits: int = 1024,
        on_circuit_open: Callable[..., Any] | None = None,
        on_transition: Callable[[CircuitTransition], object] | None = None,
        clock: Clock | None = None,
    ) -> None:
        check_settings(store, config, on_circuit_open, on_transition)
        # One store and one config for every key: a breaker rebuilt after it was dropped must
        # read the same shared record (store=None would otherwise give each its own store).
        self.store: Store = MemoryStore() if store is None else store
        self.prefix = _check_prefix(prefix, self.store)
        if isinstance(max_circuits, bool) or not isinstance(max_circuits, int) or max_circuits < 1:
            raise ConfigError(f"max_circuits must be a positive integer, got {max_circuits!r}")
        self.config = Config() if config is None else config
        self.max_circuits = max_circuits
        self.on_circuit_open = on_circuit_open
        self.on_transition = on_transition
        self._clock = clock
        self._breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()
        self._lock = threading.Lock()  # short: the table only, never a call, hook or I/O
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent's thread may have held it at the fork

    def __repr__(self) -> str:
        return (
            f"BreakerFamily({self.prefix!r}, circuits={len(self._breakers)}/"
            f"{self.max_circuits}, store={self.store!r})"
        )

    def __getitem__(self, key: str) -> CircuitBreaker:
        """The breaker of circuit ``f"{prefix}:{key}"``, built on first use (``ConfigError``
        for a bad key)."""
        if type(key) is str:
            # acquire/release rather than `with`: a third cheaper on the path every call takes.
            self._lock.acquire()
            try:
                breaker = self._breakers.get(key)
                if breaker is not None:
                    self._breakers.move_to_end(key)
            finally:
                self._lock.release()
            if breaker is not None:
                return breaker
        return self._build(key)

    def __contains__(self, key: object) -> bool:
        """Whether this process holds a breaker for ``key`` now (the store is not asked)."""
        return isinstance(key, str) and str.__str__(key) in self._breakers

    def __len__(self) -> int:
        """How many breakers this process holds (at most ``max_circuits``)."""
        return len(self._breakers)

    def keys(self) -> list[str]:
        """The keys of the breakers held now, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._breakers)

    def __iter__(self) -> Iterator[str]:
        """Iterate over a snapshot of ``keys()``."""
        return iter(self.keys())

    def by(self, key_fn: Callable[..., str]) -> Callable[[F], F]:
        """Decorate a function so each call goes through the breaker of its key.

        ``key_fn`` is called with the call's arguments (``self`` first for a method) and
        returns the key. A key function that raises, or returns a bad key, is the caller's
        bug: ``ConfigError`` is raised and the function is not called. The wrapper is the
        function's ``functools.wraps``, stays a coroutine function for an ``async def``, and
        has the family as ``.family``. Takes what ``CircuitBreaker`` decorates, and refuses
        what it refuses (generator functions, an async fallback for a sync function).
        """
        if not callable(key_fn):
            raise ConfigError(f"key_fn must be callable, got {key_fn!r}")
        if _returns_awaitable_or_iterator(key_fn):
            raise ConfigError(
                f"key_fn must return the key (a str), but {key_fn!r} is an async or generator "
                "function, whose call returns an awaitable or an iterator; use a plain def"
            )

        def decorate(fn: F) -> F:
            target, rewrap = split_method_descriptor(fn)
            if not callable(target):
                raise ConfigError(f"the family decorates callables, got {fn!r}")
            is_async = flavor(target) is Flavor.ASYNC
            check_fallback(self.on_circuit_open, is_async=is_async)
            route = self._route
            wrapper: Callable[..., Any]
            if is_async:

                @functools.wraps(target)
                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await route(key_fn, args, kwargs).acall(target, *args, **kwargs)

            else:

                @functools.wraps(target)
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    return route(key_fn, args, kwargs).call(target, *args, **kwargs)

            wrapper.family = self  # type: ignore[attr-defined]
            return rewrap(wrapper)  # type: ignore[return-value]

        return decorate

    def _route(
        self, key_fn: Callable[..., str], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CircuitBreaker:
        """The breaker for one decorated call; ``ConfigError`` before the call if no key."""
        try:
            key = key_fn(*args, **kwargs)
        except Exception as exc:
            raise ConfigError(
                f"BreakerFamily {self.prefix!r}: key_fn {key_fn!r} raised "
                f"{type(exc).__name__}: {exc}; the function was not called"
            ) from exc
        try:
            return self[key]
        except ConfigError as exc:
            raise ConfigError(
                f"key_fn {key_fn!r} returned a bad key, so the function was not called: {exc}"
            ) from None

    def _build(self, key: object) -> CircuitBreaker:
        key, name = self._check_key(key)
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is not None:  # another thread built it since this one looked
                self._breakers.move_to_end(key)
                return breaker
            breaker = CircuitBreaker(
                name,
                store=self.store,
                config=self.config,
                on_circuit_open=self.on_circuit_open,
                on_transition=self.on_transition,
                clock=self._clock,
            )
            self._breakers[key] = breaker
            dropped = (
                self._breakers.popitem(last=False)
                if len(self._breakers) > self.max_circuits
                else None
            )
        del dropped  # freed outside the lock: it may hold the last reference to user objects
        return breaker

    def _check_key(self, key: object) -> tuple[str, str]:
        """``(key, circuit name)`` with the key as a plain ``str``, or ``ConfigError``."""
        if not isinstance(key, str):
            raise ConfigError(
                f"BreakerFamily {self.prefix!r}: a key must be a str, got "
                f"{type(key).__name__} {key!r:.50}"
            )
        key = str.__str__(key)  # a str subclass (a StrEnum member) is keyed by its text
        if not key:
            raise ConfigError(f"BreakerFamily {self.prefix!r}: a key must not be empty")
        name = f"{self.prefix}:{key}"
        try:
            check_circuit_name(name)
            self.store.check_name(name)
        except ConfigError as exc:
            message = f"BreakerFamily {self.prefix!r}: bad key {key!r:.60}: {exc}"
            raise ConfigError(message) from None
        return key, name


def _check_prefix(prefix: object, store: Store) -> str:
    """``prefix`` if the name it makes with a one-character key is a valid circuit name."""
    if not isinstance(prefix, str):
        raise ConfigError(
            f"BreakerFamily prefix must be a str, got {type(prefix).__name__} {prefix!r:.50}"
        )
    if not prefix:
        raise ConfigError("BreakerFamily prefix must not be empty")
    shortest = f"{prefix}:k"
    try:
        check_circuit_name(shortest)
        store.check_name(shortest)
    except ConfigError as exc:
        raise ConfigError(
            f"BreakerFamily prefix {prefix!r:.60} cannot name circuits (tried it with the "
            f"shortest key, {shortest!r:.60}): {exc}"
        ) from None
    return prefix


def _returns_awaitable_or_iterator(fn: Callable[..., Any]) -> bool:
    try:
        return flavor(fn) is Flavor.ASYNC
    except ConfigError:  # a generator function
        return True

"""Every callable the breaker accepts is served; the ones it cannot serve are refused up front."""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from fleetbreaker import CircuitBreaker, CircuitInfo, CircuitOpenError, Config, ConfigError
from fleetbreaker._callables import Flavor, accepts_circuit_keyword, flavor
from fleetbreaker.testing import FakeClock


class Boom(Exception):
    pass


def sync_fn(x: int = 0) -> int:
    return x


async def async_fn(x: int = 0) -> int:
    return x


async def async_class_fn(cls: type, /) -> type:
    return cls


def gen_fn() -> Iterator[int]:
    yield 1


async def agen_fn() -> AsyncIterator[int]:
    yield 1


class AsyncCallable:
    async def __call__(self, x: int = 0) -> int:
        return x


class SyncCallable:
    def __call__(self, x: int = 0) -> int:
        return x


class GenCallable:
    def __call__(self) -> Iterator[int]:
        yield 1


def breaker(**kw: Any) -> CircuitBreaker:
    config = kw.pop("config", Config(failure_threshold=1, recovery_timeout=10))
    return CircuitBreaker("svc", config=config, clock=FakeClock(), **kw)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (sync_fn, Flavor.SYNC),
        (async_fn, Flavor.ASYNC),
        (AsyncCallable(), Flavor.ASYNC),
        (SyncCallable(), Flavor.SYNC),
        (functools.partial(async_fn, 1), Flavor.ASYNC),
        (functools.partial(AsyncCallable(), 1), Flavor.ASYNC),
        (functools.partial(sync_fn, 1), Flavor.SYNC),
        (staticmethod(async_fn), Flavor.ASYNC),
        (classmethod(async_class_fn), Flavor.ASYNC),
        (AsyncCallable().__call__, Flavor.ASYNC),
        (AsyncCallable, Flavor.SYNC),
        (len, Flavor.SYNC),
        (lambda: None, Flavor.SYNC),
    ],
    ids=[
        "function",
        "coroutine-function",
        "async-call-object",
        "sync-call-object",
        "partial-of-async",
        "partial-of-async-object",
        "partial-of-sync",
        "async-staticmethod",
        "async-classmethod",
        "bound-async-call",
        "class-itself",
        "builtin",
        "lambda",
    ],
)
def test_flavor_sees_through_wrappers(fn: object, expected: Flavor) -> None:
    """flavor() reports whether calling a callable returns an awaitable."""
    assert flavor(fn) is expected


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (gen_fn, "generator function .*with breaker.guard"),
        (agen_fn, "async generator function .*async with breaker.guard"),
        (functools.partial(gen_fn), "generator function"),
        (GenCallable(), "generator function"),
    ],
    ids=["generator", "async-generator", "partial-of-generator", "generator-call-object"],
)
def test_flavor_refuses_generator_functions(fn: object, message: str) -> None:
    """Generator functions are refused with a hint to protect the consumer or use guard()."""
    with pytest.raises(ConfigError, match=message):
        flavor(fn)


def test_flavor_names_the_hook_it_refuses() -> None:
    """A generator given as a hook is refused naming the hook."""
    with pytest.raises(ConfigError, match="on_transition must not be a generator function"):
        flavor(gen_fn, role="on_transition")


def kw_only(*, circuit: CircuitInfo) -> None:
    del circuit


def positional_or_keyword(circuit: CircuitInfo) -> None:
    del circuit


def var_keyword(*args: object, **kwargs: object) -> None:
    del args, kwargs


def var_positional(*args: object) -> None:
    del args


def other_name(x: object) -> None:
    del x


def positional_only(circuit: CircuitInfo, /) -> None:
    del circuit


def two_args(y: int, *, circuit: CircuitInfo) -> None:
    del y, circuit


@pytest.mark.parametrize(
    ("fn", "accepts"),
    [
        (kw_only, True),
        (positional_or_keyword, True),
        (var_keyword, True),
        (var_positional, False),
        (other_name, False),
        (positional_only, False),
        (functools.partial(two_args, 1), True),
    ],
    ids=[
        "kw-only",
        "positional-or-kw",
        "var-kw",
        "var-positional",
        "other-name",
        "pos-only",
        "partial",
    ],
)
def test_accepts_circuit_keyword(fn: Callable[..., Any], accepts: bool) -> None:
    """A fallback must take circuit= by keyword (or **kwargs)."""
    assert accepts_circuit_keyword(fn) is accepts


class Uninspectable:
    __signature__ = "not a signature"  # what some C extensions amount to

    def __call__(self) -> None:
        pass


def test_uninspectable_fallback_is_accepted() -> None:
    """A callable whose signature cannot be read is given the benefit of the doubt."""
    assert accepts_circuit_keyword(Uninspectable())
    breaker(on_circuit_open=Uninspectable())


@pytest.mark.parametrize(
    ("fn", "hint"),
    [(gen_fn, "with breaker.guard"), (agen_fn, "async with breaker.guard")],
    ids=["generator", "async-generator"],
)
def test_decorating_a_generator_function_is_refused(fn: Callable[..., Any], hint: str) -> None:
    """A generator would return before its work runs: the decorator refuses it."""
    with pytest.raises(ConfigError, match=hint):
        breaker()(fn)


def test_async_call_object_is_protected() -> None:
    """An object with an async __call__ is wrapped as async: its failures trip the circuit."""

    class Failing:
        async def __call__(self) -> None:
            raise Boom

    protected = breaker()(Failing())
    assert asyncio.iscoroutinefunction(protected)

    async def scenario() -> None:
        with pytest.raises(Boom):
            await protected()
        with pytest.raises(CircuitOpenError):
            await protected()

    asyncio.run(scenario())


def test_partial_of_async_call_object_is_protected() -> None:
    """functools.partial of an async callable object is wrapped as async."""
    calls: list[int] = []

    class Failing:
        async def __call__(self, x: int) -> None:
            calls.append(x)
            raise Boom

    protected = breaker()(functools.partial(Failing(), 1))

    async def scenario() -> None:
        with pytest.raises(Boom):
            await protected()
        with pytest.raises(CircuitOpenError):
            await protected()

    asyncio.run(scenario())
    assert calls == [1]


def test_partial_of_async_function_is_protected() -> None:
    """functools.partial of an async def is wrapped as async."""

    async def failing(x: int) -> None:
        raise Boom(x)

    protected = breaker()(functools.partial(failing, 1))

    async def scenario() -> None:
        with pytest.raises(Boom):
            await protected()
        with pytest.raises(CircuitOpenError):
            await protected()

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", [staticmethod, classmethod], ids=["staticmethod", "classmethod"])
def test_decorator_above_staticmethod_or_classmethod(kind: type) -> None:
    """Stacked above @staticmethod/@classmethod, the breaker protects the async function and
    returns the same kind of descriptor."""
    b = breaker()

    async def failing(*_args: object) -> None:
        raise Boom

    class Client:
        fetch: Any = b(kind(failing))

    assert isinstance(Client.__dict__["fetch"], kind)
    assert Client.fetch.breaker is b

    async def scenario() -> None:
        with pytest.raises(Boom):
            await Client.fetch()
        with pytest.raises(CircuitOpenError):
            await Client().fetch()

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", [staticmethod, classmethod], ids=["staticmethod", "classmethod"])
def test_decorator_above_sync_staticmethod_or_classmethod(kind: type) -> None:
    """A sync static or class method is protected and stays the same kind of descriptor."""
    b = breaker()

    def failing(*_args: object) -> None:
        raise Boom

    class Client:
        fetch: Any = b(kind(failing))

    with pytest.raises(Boom):
        Client.fetch()
    with pytest.raises(CircuitOpenError):
        Client().fetch()


def test_async_fallback_refused_for_a_sync_function() -> None:
    """An async on_circuit_open cannot serve a sync function: refused when decorating."""

    async def fallback(*, circuit: CircuitInfo) -> str:
        return circuit.name

    with pytest.raises(ConfigError, match=r"on_circuit_open .* is async but the function is sync"):
        breaker(on_circuit_open=fallback)(sync_fn)


def test_async_fallback_on_breaker_call_raises_config_error_not_a_coroutine() -> None:
    """breaker.call(sync_fn) refused with an async fallback raises ConfigError, never returns
    an un-awaited coroutine (and no never-awaited warning follows)."""

    async def fallback(*, circuit: CircuitInfo) -> str:
        return circuit.name

    b = breaker(on_circuit_open=fallback)

    def fail() -> None:
        raise Boom

    with pytest.raises(Boom):
        b.call(fail)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match=r"acall"):
            b.call(sync_fn)


def test_async_fallback_still_serves_async_functions() -> None:
    """The same async fallback serves the breaker's async functions and acall."""

    async def fallback(x: int, *, circuit: CircuitInfo) -> str:
        return f"fallback {x} {circuit.state.value}"

    b = breaker(on_circuit_open=fallback)

    @b
    async def fetch(x: int) -> str:
        raise Boom(x)

    async def scenario() -> tuple[str, str]:
        with pytest.raises(Boom):
            await fetch(1)
        return await fetch(2), await b.acall(fetch, 3)

    assert asyncio.run(scenario()) == ("fallback 2 open", "fallback 3 open")


@pytest.mark.parametrize(
    "fallback",
    [sync_fn, var_positional, other_name],
    ids=["no-circuit", "var-positional-only", "other-name"],
)
def test_fallback_without_circuit_keyword_is_refused(fallback: Callable[..., Any]) -> None:
    """A fallback that cannot take circuit= fails at construction, not during an outage."""
    with pytest.raises(ConfigError, match="must accept a keyword argument 'circuit'"):
        breaker(on_circuit_open=fallback)


@pytest.mark.parametrize(
    ("hook_name", "hook"),
    [("on_transition", gen_fn), ("on_transition", agen_fn), ("on_circuit_open", agen_fn)],
    ids=["generator-hook", "async-generator-hook", "async-generator-fallback"],
)
def test_generator_hooks_are_refused(hook_name: str, hook: Callable[..., Any]) -> None:
    """A generator-function hook would never run its body: refused at construction."""
    with pytest.raises(ConfigError, match=f"{hook_name} must not be an? (async )?generator"):
        breaker(**{hook_name: hook})

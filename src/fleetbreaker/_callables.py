"""What kind of callable the breaker was handed: decided once, when the breaker or wrapper is built.

A breaker must serve every callable it accepts. A callable it cannot protect (a generator
function: calling it only creates the generator, and the work happens later, outside the
breaker) is refused here with a ``ConfigError`` that says what to do instead. Pure functions of
the callable: no breaker, no I/O.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable
from typing import Any

from fleetbreaker.errors import ConfigError

__all__ = [
    "Flavor",
    "accepts_circuit_keyword",
    "check_fallback",
    "flavor",
    "refuse_awaitable_fallback",
    "split_method_descriptor",
]


class Flavor(enum.Enum):
    """How calling a callable delivers its result."""

    SYNC = "sync"
    """It returns the result."""
    ASYNC = "async"
    """It returns a coroutine (or other awaitable) that must be awaited."""


def split_method_descriptor(
    obj: object,
) -> tuple[object, Callable[[Callable[..., Any]], object]]:
    """``(function, rewrap)``: a ``staticmethod`` or ``classmethod`` object is split into the
    function it holds and its own type, so a wrapper of the function can be made the same kind
    of descriptor again; anything else comes back unchanged with an identity ``rewrap``."""
    if isinstance(obj, staticmethod | classmethod):
        return obj.__func__, type(obj)
    return obj, _identity


def _identity(wrapper: Callable[..., Any]) -> object:
    return wrapper


def _target(fn: object) -> object:
    """The function that runs when ``fn`` is called (through partials and ``__call__``)."""
    seen = 0
    while seen < 100:  # a pathological chain of callables must not hang construction
        seen += 1
        if isinstance(fn, functools.partial):
            fn = fn.func
            continue
        if isinstance(fn, staticmethod | classmethod):
            fn = fn.__func__
            continue
        if (
            inspect.isroutine(fn)
            or isinstance(fn, type)
            or inspect.iscoroutinefunction(fn)
            or not callable(fn)
        ):
            return fn
        # An instance whose class defines __call__: what runs is that method.
        call = getattr(type(fn), "__call__", None)  # noqa: B004 - the method, not callable()
        if call is None:
            return fn
        fn = call
    return fn


def _name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def flavor(fn: object, *, role: str | None = None) -> Flavor:
    """Whether calling ``fn`` returns an awaitable (``ASYNC``) or its result (``SYNC``).

    Looks through ``functools.partial``, ``staticmethod``/``classmethod`` objects and
    objects with a ``__call__`` method. Generator and async-generator functions are refused:
    ``role`` names the hook they were given as (``on_transition``), or ``None`` for a
    function to protect.
    """
    target = _target(fn)
    if inspect.isasyncgenfunction(target) or inspect.isgeneratorfunction(target):
        raise ConfigError(_generator_message(fn, role, is_async=inspect.isasyncgenfunction(target)))
    if inspect.iscoroutinefunction(target):
        return Flavor.ASYNC
    return Flavor.SYNC


def _generator_message(fn: object, role: str | None, *, is_async: bool) -> str:
    kind = "an async generator function" if is_async else "a generator function"
    if role is not None:
        return (
            f"{role} must not be {kind} ({_name(fn)}): calling it only creates a generator, "
            "so its body would never run; use a plain function or an async def"
        )
    guard = "async with breaker.guard():" if is_async else "with breaker.guard():"
    return (
        f"cannot protect {kind} ({_name(fn)}): calling it only creates the iterator, so the "
        "work and its failures happen later, outside the breaker. Protect the function that "
        f"consumes the iterator instead, or put `{guard}` around the iteration"
    )


def accepts_circuit_keyword(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be called with a ``circuit=`` keyword argument.

    A callable whose signature cannot be read (some builtins and C extensions) is given the
    benefit of the doubt.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return True
        if parameter.name == "circuit" and parameter.kind in {
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        }:
            return True
    return False


def check_fallback(fallback: Callable[..., Any] | None, *, is_async: bool) -> None:
    """Refuse an ``async def`` fallback for a sync function, when the wrapper is built."""
    if (
        not is_async
        and fallback is not None
        and flavor(fallback, role="on_circuit_open") is Flavor.ASYNC
    ):
        raise ConfigError(
            f"on_circuit_open {fallback!r} is async but the function is sync: a refused "
            "call would return a coroutine nobody awaits; give a sync on_circuit_open, or "
            "protect an async def"
        )


def refuse_awaitable_fallback(result: object) -> ConfigError:
    """The error for a fallback that returned an awaitable on the sync path.

    The awaitable is closed first (when it can be), so no "never awaited" warning follows.
    """
    close = getattr(result, "close", None)
    if inspect.iscoroutine(result) and callable(close):
        close()
    return ConfigError(
        "on_circuit_open returned an awaitable for a sync call (breaker.call or a sync "
        "function), where nothing would ever await it: protect async code with "
        "`await breaker.acall(...)` or an async def, or give a sync on_circuit_open"
    )

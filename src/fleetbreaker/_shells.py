"""The call shells: the functions a decorated call runs, built once per decorated function.

The hot path lives here, inlined, because every healthy call pays for each attribute load and
call frame: the plain shell (the default rule: one clock read, nothing recorded), the recorded
shell (a rate rule or ``record_result``: every call timed and numbered without a lock), and the
inline refusal of a view that certainly refuses. Everything off the hot path is the breaker's.

While metrics are on (``_tally``) a view's ``hot_until`` is never and its ``tally_until`` takes
its place: the plain shell's second branch is the same hot path with one ``next()`` on the
breaker's success counter (lock-free). With metrics off that branch is never reached, and the
hot path costs what it did.
"""

from __future__ import annotations

import functools
import logging
import math
import types
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from fleetbreaker import _switch, _tally
from fleetbreaker._protocol import Cause
from fleetbreaker.errors import CircuitOpenError

if TYPE_CHECKING:
    from fleetbreaker._admission import View
    from fleetbreaker._breaker import CircuitBreaker

__all__ = ["Fired", "value_recorder", "wrap_async", "wrap_sync"]

logger = logging.getLogger("fleetbreaker")

P = ParamSpec("P")
R = TypeVar("R")

Fired = tuple[Cause, int, object]
"""A rule fired: the cause, the failure count and the failure (for ``retry_after``) to trip
with."""


def wrap_sync(breaker: CircuitBreaker, fn: Callable[P, R]) -> Callable[P, R]:
    mono, call_slow, refusal_info = breaker._mono, breaker._call_slow, breaker._refusal_info
    switch, environ, environ_key = _switch.STATE, _switch.ENVIRON, _switch.ENVIRON_KEY
    if not breaker._plain:
        return wrap_sync_recorded(breaker, fn)
    # Metrics (_tally): the counters themselves, so that counting is one next() call.
    tallying, tally = _tally.SWITCH, breaker._tally
    successes, rejections = tally.successes, tally.rejections

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        view = breaker._view
        now = mono()
        if now < view.hot_until:
            # Inlined hot path: this is the whole cost of a healthy call. (A view with a
            # failure counted is not hot: the success that resets it takes the slow path.)
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                breaker._closed_failed(view, exc)
                raise
        if now < view.tally_until:
            # The hot path while metrics are on: the same, and the success counted.
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:
                breaker._closed_failed(view, exc)
                raise
            next(successes)
            return value
        if (
            now < view.refuse_until
            and now < view.fresh_until
            and ((switch.forced is None and environ_key not in environ) or not _switch.bypassed())
        ):
            # ``_refuse`` inlined: during an outage this is the whole cost of a call.
            if tallying.on:
                next(rejections)
            cached = breaker._refused
            info = cached[1] if cached[0] is view else refusal_info(view)
            fallback = breaker.on_circuit_open
            if fallback is None:
                raise CircuitOpenError(info)
            result = fallback(*args, circuit=info, **kwargs)
            if hasattr(result, "__await__") or isinstance(result, types.GeneratorType):
                breaker._refuse_awaitable(result)
            return result  # type: ignore[no-any-return]
        return call_slow(fn, args, kwargs)

    return wrapper


def wrap_async(breaker: CircuitBreaker, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    mono, acall_slow = breaker._mono, breaker._acall_slow
    if not breaker._plain:
        return wrap_async_recorded(breaker, fn)
    successes = breaker._tally.successes

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        view = breaker._view
        now = mono()
        if now < view.hot_until:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                await breaker._aclosed_failed(view, exc)
                raise
        if now < view.tally_until:
            try:
                value = await fn(*args, **kwargs)
            except Exception as exc:
                await breaker._aclosed_failed(view, exc)
                raise
            next(successes)
            return value
        return await acall_slow(fn, args, kwargs)

    return wrapper


def wrap_sync_recorded(breaker: CircuitBreaker, fn: Callable[P, R]) -> Callable[P, R]:
    """The hot path when every call is timed and recorded (a rate rule or record_result)."""
    mono, call_slow, record = breaker._mono, breaker._call_slow, breaker._closed_value
    window = None if breaker._judge is not None else breaker._window
    if window is not None:
        wall_offset = breaker._wall_offset
        slow_after = math.inf if breaker._slow_after is None else breaker._slow_after
        evaluate = breaker._evaluate
        tallying, successes = _tally.SWITCH, breaker._tally.successes

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        view = breaker._view
        start = mono()
        if start < view.closed_until:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                breaker._closed_failed(view, exc, start)
                raise
            if window is None:
                fired = record(view, result, start)
            else:
                # ``record`` inlined for the common case, a fast success, with the
                # window's success() read inline (see _windows): this is the whole cost
                # of a healthy recorded call.
                now = mono()
                if now - start >= slow_after:
                    fired = record(view, result, start)
                else:
                    if tallying.on:  # metrics: a fast success (``record`` counts the others)
                        next(successes)
                    number = next(window.numbers)
                    now += wall_offset
                    if now < window.next_bucket_at and number != window.reach:
                        if view.counting:  # (this process's view: a failure installs it)
                            breaker._closed_succeeded(view)
                        return result
                    cause = evaluate(view, number)
                    fired = None if cause is None else (*cause, None)
            if fired is not None:
                breaker._trip_sync(view, fired)
            return result
        return call_slow(fn, args, kwargs)

    return wrapper


def wrap_async_recorded(
    breaker: CircuitBreaker, fn: Callable[P, Awaitable[R]]
) -> Callable[P, Awaitable[R]]:
    mono, acall_slow = breaker._mono, breaker._acall_slow

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        view = breaker._view
        start = mono()
        if start < view.closed_until:
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                await breaker._aclosed_failed(view, exc, start)
                raise
            await breaker._aclosed_returned(view, result, start)
            return result
        return await acall_slow(fn, args, kwargs)

    return wrapper


def value_recorder(breaker: CircuitBreaker) -> Callable[[View, object, float], Fired | None]:
    """``record(view, value, start)`` for a closed-path call that returned ``value``:
    when a rule fired, the cause, the failure count and the failure (the value, when it
    counts as one) to trip with. Never raises: it runs after the user's call returned.

    A closure over this breaker's settings: it runs on every recorded call, and reads
    them as locals.
    """
    mono, wall_offset = breaker._mono, breaker._wall_offset
    slow_after, judge = breaker._slow_after, breaker._judge
    success = None if breaker._window is None else breaker._window.success
    count_bad, evaluate, failing_value = (
        breaker._count_bad,
        breaker._evaluate,
        breaker._failing_value,
    )
    tallying, tally = _tally.SWITCH, breaker._tally

    def record(view: View, value: object, start: float) -> Fired | None:
        try:
            now = mono()
            slow = slow_after is not None and now - start >= slow_after
            failed = judge is not None and failing_value(value)
            if tallying.on:
                tally.returned(view, failed=failed, slow=slow)
            if failed or slow:
                if _switch.bypassed():
                    return None
                fired = count_bad(view, failed=failed, slow=slow)
                return None if fired is None else (*fired, value if failed else None)
            if success is not None:
                number = success(now + wall_offset)
                if number >= 0:
                    fired = evaluate(view, number)
                    return None if fired is None else (*fired, None)
            if breaker._failures:
                breaker._closed_succeeded(view)
        except Exception:
            logger.exception("circuit %r: recording a call failed", breaker.name)
        return None

    return record

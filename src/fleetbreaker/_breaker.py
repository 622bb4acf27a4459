"""CircuitBreaker: admission, outcome recording and the local view; the only store client.

How a call is routed:

* **Hot path** (closed, cached view still fresh): one monotonic clock read, the call, nothing
  else — no lock, no store access, no allocation of ours.
* **Slow path**: the protocol steps below, written once as generators that *yield* store
  operations (``_steps.py``): ``drive`` runs them with the sync store methods, ``adrive`` with the
  async ones, so the sync and asyncio entry points share every decision.

Every write is ``compare_and_set`` on the epoch of the record the decision was made on. A probe
claim's token is the epoch it wrote, and it lives in the call's own frame (``Ticket``), never in
thread-local or process state, so no other thread, task or forked child can settle it.

A circuit breaker must never become the outage it prevents: store errors are logged, start a
short growing backoff during which the store is not touched, and the decision is applied to the
local view alone (fail open for reads; a trip still protects the downstream from this process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import os
import random
import secrets
import socket
import threading
import types
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final, ParamSpec, TypeVar, overload

from fleetbreaker import _fleet_settings as fleet_settings
from fleetbreaker import _operator as operator
from fleetbreaker import _overrides as overrides
from fleetbreaker import _protocol as protocol
from fleetbreaker import _quorum as quorum
from fleetbreaker import _schedule as schedule
from fleetbreaker import _switch, _tally
from fleetbreaker._admission import (
    COLD,
    FAILURE,
    NO_RESULT,
    RELEASE,
    SUCCESS,
    Kind,
    Ticket,
    View,
    make_view,
    outcome,
)
from fleetbreaker._callables import (
    Flavor,
    accepts_circuit_keyword,
    check_fallback,
    flavor,
    refuse_awaitable_fallback,
    split_method_descriptor,
)
from fleetbreaker._changes_log import log_change
from fleetbreaker._clock import Clock, SystemClock
from fleetbreaker._fork import reset_after_fork
from fleetbreaker._guard import Guard
from fleetbreaker._hooks import HookRunner
from fleetbreaker._info import CircuitInfo, CircuitTransition
from fleetbreaker._judges import failing_value, retry_after_hint
from fleetbreaker._limits import sane_wall
from fleetbreaker._own_claims import OwnClaims
from fleetbreaker._protocol import ABSENT, FORCED_CLOSED, Cause, CircuitState, Record, Route
from fleetbreaker._rules import Rules
from fleetbreaker._shells import Fired, value_recorder, wrap_async, wrap_sync
from fleetbreaker._steps import CompareAndSet, Load, Steps, Wait, adrive, drive, resolve
from fleetbreaker._store_health import StoreHealth
from fleetbreaker.config import Config
from fleetbreaker.errors import CircuitOpenError, ConfigError
from fleetbreaker.stores.base import Store
from fleetbreaker.stores.memory import MemoryStore

__all__ = ["CircuitBreaker", "circuit_breaker"]

logger = logging.getLogger("fleetbreaker")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

FAILING_REFRESH: Final = 0.5
"""A process whose closed-path calls fail re-reads a view older than this, so it stops calling a
downstream the fleet has already tripped."""
MAX_NAME_LENGTH: Final = 200


def check_circuit_name(name: object) -> str:
    """``name`` if it can name a circuit (a non-empty, printable str of at most
    ``MAX_NAME_LENGTH`` characters), else ``ConfigError``."""
    if not isinstance(name, str):
        raise ConfigError(f"circuit name must be a str, got {type(name).__name__} {name!r:.50}")
    if not name:
        raise ConfigError("circuit name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"circuit name must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    if not name.isprintable():
        raise ConfigError(f"circuit name must be printable (no control characters), got {name!r}")
    return name


def check_settings(
    store: object,
    config: object,
    on_circuit_open: Callable[..., Any] | None,
    on_transition: Callable[[CircuitTransition], object] | None,
) -> None:
    """Raise ``ConfigError`` for a store, config or hook a breaker cannot be built with."""
    if store is not None and not isinstance(store, Store):
        raise ConfigError(f"store must be a fleetbreaker Store, got {type(store).__name__}")
    if config is not None and not isinstance(config, Config):
        raise ConfigError(f"config must be a fleetbreaker Config, got {type(config).__name__}")
    for hook_name, hook in (
        ("on_circuit_open", on_circuit_open),
        ("on_transition", on_transition),
    ):
        if hook is not None and not callable(hook):
            raise ConfigError(f"{hook_name} must be callable, got {hook!r}")
        if hook is not None:
            flavor(hook, role=hook_name)  # refuses generator functions
    if on_circuit_open is not None and not accepts_circuit_keyword(on_circuit_open):
        raise ConfigError(
            f"on_circuit_open must accept a keyword argument 'circuit' (it is called as "
            f"on_circuit_open(*args, circuit=CircuitInfo, **kwargs)), got {on_circuit_open!r}; "
            "add `*, circuit` or `**kwargs` to its parameters"
        )


class CircuitBreaker:
    """A circuit breaker whose state is shared by every process using the same store.

    Create one per downstream, once (at import time): it holds this process's view of the
    circuit and its failure count. Two breakers with the same name and store behave like two
    processes of a fleet. Use it as a decorator (sync or ``async def``), with ``call`` /
    ``acall``, or as a context manager with ``guard()``.

    ``on_circuit_open(*args, circuit=CircuitInfo, **kwargs)`` is the fallback for a refused
    call; without it ``CircuitOpenError`` is raised. It must accept ``circuit=`` (checked here),
    and an ``async def`` fallback serves only async functions and ``acall``.
    ``on_transition(CircuitTransition)`` is called for each transition this process persisted
    (so once per transition fleet-wide); it may be an ``async def``.

    Hooks run inline, in the caller's thread or task, on the call that made the transition or
    was refused: keep them fast, or hand the work to a queue or a task. A sync hook on the
    async path blocks the event loop while it runs. An ``async def`` ``on_transition`` is
    awaited in the caller's task on the async path; on the sync path it runs to completion
    with ``asyncio.run``, or as a task of the running loop when a sync call is made inside
    one. A hook's exceptions are logged, never raised into the call.

    Generator functions cannot be protected (the work happens while the caller iterates):
    protect the function that consumes them, or use ``guard()`` around the iteration.
    """

    def __init__(
        self,
        name: str,
        *,
        store: Store | None = None,
        config: Config | None = None,
        on_circuit_open: Callable[..., Any] | None = None,
        on_transition: Callable[[CircuitTransition], object] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = check_circuit_name(name)
        check_settings(store, config, on_circuit_open, on_transition)
        self.config = Config() if config is None else config
        self.store: Store = MemoryStore() if store is None else store
        self.store.check_name(self.name)  # e.g. DynamoDB's partition key length, here not later
        self._shadow = self.config.shadow
        if self._shadow:
            # Shadow mode never touches the fleet's store: this process's circuit is its own.
            self.store = MemoryStore()
        self.on_circuit_open = on_circuit_open
        self.on_transition = on_transition
        self._transition_hook = HookRunner(f"circuit {self.name!r}: on_transition hook")
        clock = SystemClock() if clock is None else clock
        self._clock_wall = clock.wall
        self._mono = clock.monotonic
        self._tally = _tally.track(self)  # metrics: this breaker's counts

        self._view = COLD
        self._rules = Rules(self.config)  # this process's counts in the current closed episode
        self._failures = 0  # == self._rules.failures, read without a lock on the hot path
        # Every call is timed and recorded only when a rule needs it; otherwise the hot path
        # is one clock read.
        self._plain = not self.config.uses_window and self.config.record_result is None
        self._slow_after = self.config.slow_call_duration_threshold
        self._judge = self.config.record_result
        self._window = self._rules.window
        self._wall_offset = self._clock_wall() - self._mono()  # Unix time ~ monotonic + offset
        self._hold_until = float("-inf")  # this process refuses calls on its own until then
        self._held: Record | None = None  # the open circuit that hold shows in info()
        # The closed episode in which this process last put a report in the record, and when.
        self._reported: tuple[int, float] = (-1, float("-inf"))
        self._closed_value = value_recorder(self)
        self._refused: tuple[View | None, CircuitInfo] = (
            None,
            CircuitInfo(self.name, CircuitState.OPEN, 0, None),
        )
        self._health = StoreHealth()
        self._claims = OwnClaims()
        self._background: set[asyncio.Future[None]] = set()  # work outliving a cancelled call
        self._mismatches = fleet_settings.Mismatches(self.name)
        self._init_process_state()
        reset_after_fork(self)

    def _init_process_state(self) -> None:
        self._lock = threading.Lock()  # short: guards view swaps and counters, never I/O
        self._claiming = False  # a thread of this process is claiming the probe slot
        self._flight: concurrent.futures.Future[None] | None = None  # single-flight read
        self._pid = os.getpid()
        self._owner = f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(4)}"

    def _after_fork_in_child(self) -> None:
        # A child starts with no lock held, no claim attempt or read in flight, and a fresh
        # owner id; a probe the parent was running can never be settled from here (its
        # ticket carries the parent's pid).
        self._init_process_state()
        self._health.forget_errors()
        self._claims = OwnClaims()
        self._background = set()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value}, store={self.store!r})"

    # --- public API ------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The state in this process's cached view (no store access): OPEN while this process
        holds itself open (its rules fired, the fleet's quorum has not opened the circuit)."""
        view = self._view
        if view.held_until > view.read_at and self._mono() < view.held_until:
            return CircuitState.OPEN
        return view.record.state

    def info(self) -> CircuitInfo:
        """Read the circuit from the store (falling back to the local view on store trouble)."""
        self._drive(self._read(consistent=True, force=True))
        return self._info(self._view)

    async def ainfo(self) -> CircuitInfo:
        """``info()`` without blocking the event loop."""
        await self._adrive(self._read(consistent=True, force=True))
        return self._info(self._view)

    @overload  # a staticmethod is also callable: the first matching overload wins
    def __call__(self, fn: staticmethod[P, R]) -> staticmethod[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: classmethod[T, P, R]) -> classmethod[T, P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Any) -> Any:
        """Decorate a function or coroutine function so every call goes through the breaker.

        Also takes objects with an (async) ``__call__``, ``functools.partial`` objects, and
        ``staticmethod``/``classmethod`` objects (which come back as the same kind of
        descriptor). Generator functions are refused with ``ConfigError``.
        """
        target, rewrap = split_method_descriptor(fn)
        if not callable(target):
            raise ConfigError(f"the breaker decorates callables, got {fn!r}")
        is_async = flavor(target) is Flavor.ASYNC
        check_fallback(self.on_circuit_open, is_async=is_async)
        wrapper = wrap_async(self, target) if is_async else wrap_sync(self, target)
        wrapper.breaker = self  # type: ignore[union-attr]
        return rewrap(wrapper)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker."""
        view = self._view
        start = self._mono()
        if start < view.closed_until:
            return self._call_closed(view, fn, args, kwargs, start)
        return self._call_slow(fn, args, kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        view = self._view
        start = self._mono()
        if start < view.closed_until:
            return await self._acall_closed(view, fn, args, kwargs, start)
        return await self._acall_slow(fn, args, kwargs)

    def guard(self) -> Guard:
        """A context manager (``with`` or ``async with``) that protects its block.

        Entering raises ``CircuitOpenError`` when the circuit refuses the call; an exception
        leaving the block is recorded as the call's outcome and propagates unchanged.
        """
        return Guard(self)

    # --- operator actions (fleet-wide, written to the record) ------------------------------

    def force_open(self, *, duration: float, reason: str, actor: str | None = None) -> CircuitInfo:
        """Make every process of the fleet refuse every call for ``duration`` seconds (at
        most ``record_ttl``), within each one's ``local_cache_max_age``.

        ``reason`` is required; ``actor`` defaults to ``user@host``. The state underneath
        keeps running and resumes when the override ends. Raises ``ConfigError`` for a bad
        argument, ``StoreError`` when the store fails, ``OverrideConflictError`` when another
        operator changed the override at the same moment (nothing written).
        """
        return self._drive(self._act("force_open", duration, reason, actor))

    def force_closed(
        self, *, duration: float, reason: str, actor: str | None = None
    ) -> CircuitInfo:
        """Make every process admit every call for ``duration`` seconds: outcomes are still
        observed (a trip it would have made is logged), but nothing trips and no probe is
        claimed. Arguments and errors as ``force_open``."""
        return self._drive(self._act("force_closed", duration, reason, actor))

    def clear_override(self, *, reason: str = "", actor: str | None = None) -> CircuitInfo:
        """End the override in force now (nothing is written when there is none)."""
        return self._drive(self._act("clear", None, reason, actor))

    def reset(self, *, reason: str, actor: str | None = None) -> CircuitInfo:
        """Close the circuit afresh, fleet-wide: every process's counts, the open-time backoff,
        the fleet's reports and any override are cleared; the history goes on."""
        return self._drive(self._act("reset", None, reason, actor))

    async def aforce_open(
        self, *, duration: float, reason: str, actor: str | None = None
    ) -> CircuitInfo:
        """``force_open`` without blocking the event loop."""
        return await self._adrive(self._act("force_open", duration, reason, actor))

    async def aforce_closed(
        self, *, duration: float, reason: str, actor: str | None = None
    ) -> CircuitInfo:
        """``force_closed`` without blocking the event loop."""
        return await self._adrive(self._act("force_closed", duration, reason, actor))

    async def aclear_override(self, *, reason: str = "", actor: str | None = None) -> CircuitInfo:
        """``clear_override`` without blocking the event loop."""
        return await self._adrive(self._act("clear", None, reason, actor))

    async def areset(self, *, reason: str, actor: str | None = None) -> CircuitInfo:
        """``reset`` without blocking the event loop."""
        return await self._adrive(self._act("reset", None, reason, actor))

    def _act(
        self, verb: str, duration: object, reason: object, actor: object
    ) -> Steps[CircuitInfo]:
        """An operator action's steps; this process obeys its outcome at once."""
        change, who, why = operator.plan(
            verb, duration=duration, reason=reason, actor=actor, ttl=self.config.record_ttl
        )
        started = self._mono()
        record = yield from operator.act(self.name, change, wall=self._now, actor=who, reason=why)
        return self._info(self._install(record, started))

    # --- sync and async shells -------------------------------------------------------------

    def _call_closed(
        self, view: View, fn: Callable[..., R], args: Any, kwargs: Any, start: float
    ) -> R:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self._closed_failed(view, exc, start)
            raise
        if not self._plain:
            self._closed_returned(view, result, start)
        elif self._failures:
            self._closed_succeeded(view)
        if _tally.SWITCH.on and self._plain:  # metrics (a recorded call's recorder counts it)
            self._tally.succeeded(view)
        return result

    async def _acall_closed(
        self, view: View, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any, start: float
    ) -> R:
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            await self._aclosed_failed(view, exc, start)
            raise
        if not self._plain:
            await self._aclosed_returned(view, result, start)
        elif self._failures:
            self._closed_succeeded(view)
        if _tally.SWITCH.on and self._plain:  # metrics (a recorded call's recorder counts it)
            self._tally.succeeded(view)
        return result

    def _call_slow(self, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        view = self._view
        now = self._mono()
        if now < view.refuse_until and now < view.fresh_until and not _switch.bypassed():
            return self._short_circuit(view, args, kwargs, sync=True)  # type: ignore[no-any-return]
        if _switch.bypassed():
            return fn(*args, **kwargs)
        ticket = self._admit_sync()
        if ticket.kind == Kind.ADMIT:
            return self._call_closed(ticket.view, fn, args, kwargs, self._mono())
        if ticket.kind == Kind.REJECT:
            return self._short_circuit(ticket.view, args, kwargs, sync=True)  # type: ignore[no-any-return]
        start = self._mono()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle_sync(ticket, outcome(self.config, exc), exc)
            raise
        self._settle_sync(ticket, *self._probe_returned(result, start))
        return result

    async def _acall_slow(self, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        if _switch.bypassed():
            return await fn(*args, **kwargs)
        ticket = await self._admit_async()
        if ticket.kind == Kind.ADMIT:
            return await self._acall_closed(ticket.view, fn, args, kwargs, self._mono())
        if ticket.kind == Kind.REJECT:
            result = self._short_circuit(ticket.view, args, kwargs)
            return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]
        start = self._mono()
        try:
            value = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._settle_async(ticket, outcome(self.config, exc), exc)
            raise
        await self._settle_async(ticket, *self._probe_returned(value, start))
        return value

    def _short_circuit(self, view: View, args: Any, kwargs: Any, *, sync: bool = False) -> Any:
        """Refuse a call on ``view``: ``CircuitOpenError``, or the fallback's answer (the
        caller awaits an async fallback's; a sync caller is refused an awaitable one)."""
        self._tally.rejected()  # metrics
        info = self._refusal_info(view)
        fallback = self.on_circuit_open
        if fallback is None:
            raise CircuitOpenError(info)
        result = fallback(*args, circuit=info, **kwargs)
        if sync and (hasattr(result, "__await__") or isinstance(result, types.GeneratorType)):
            self._refuse_awaitable(result)  # (the cheap tests first: this is the refusal's cost)
        return result

    @staticmethod
    def _refuse_awaitable(result: object) -> None:
        """Raise for an awaitable a fallback returned to a sync caller (nobody would await it)."""
        if inspect.isawaitable(result):
            raise refuse_awaitable_fallback(result)

    def _refusal_info(self, view: View) -> CircuitInfo:
        """The snapshot a refusal on ``view`` hands out: built once per view (a view is
        immutable, and an outage refuses thousands of calls on each)."""
        cached = self._refused
        if cached[0] is view:
            return cached[1]
        info = self._info(view)
        self._refused = (view, info)
        return info

    def _admit_cached(self) -> Ticket | None:
        """Route on the fresh cached view without any step machinery (an open circuit's
        refusals are as cheap as a healthy call); ``None`` when the steps are needed."""
        view = self._view
        if self._mono() >= view.fresh_until:
            return None
        where = self._route(view)
        if where is Route.CLAIM:
            return None
        return Ticket(Kind.ADMIT if where is Route.ADMIT else Kind.REJECT, view)

    def _admit_sync(self) -> Ticket:
        ticket = self._admit_cached()
        if ticket is not None:
            return ticket
        try:
            return self._drive(self._admit())
        except Exception:
            logger.exception("circuit %r: admission failed; letting the call through", self.name)
            return Ticket(Kind.ADMIT, self._view)

    async def _admit_async(self) -> Ticket:
        ticket = self._admit_cached()
        if ticket is not None:
            return ticket
        # The steps may write a probe claim, and a claim whose write is in flight when the
        # caller is cancelled (a client gone, a wait_for deadline) may land all the same. So
        # the steps run on as a task of their own, and a claim won for a caller that is gone
        # is released at once instead of holding the fleet's slot for a whole probe_timeout.
        admission = asyncio.ensure_future(self._admit_steps_async())
        try:
            return await asyncio.shield(admission)
        except asyncio.CancelledError:
            self._in_background(self._release_if_probe(admission))
            raise

    async def _admit_steps_async(self) -> Ticket:
        try:
            return await self._adrive(self._admit())
        except Exception:
            logger.exception("circuit %r: admission failed; letting the call through", self.name)
            return Ticket(Kind.ADMIT, self._view)

    async def _release_if_probe(self, admission: asyncio.Future[Ticket]) -> None:
        ticket = await admission
        if ticket.kind == Kind.PROBE:
            await self._settle_steps_async(ticket, RELEASE, None)

    def _in_background(self, work: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _settle_sync(self, ticket: Ticket, outcome: str, failure: object = None) -> None:
        try:
            self._drive(self._settle(ticket, outcome, failure))
        except Exception:
            logger.exception("circuit %r: recording the probe's %s failed", self.name, outcome)

    async def _settle_async(self, ticket: Ticket, outcome: str, failure: object = None) -> None:
        # Shielded: a caller cancelled while its probe's outcome is being written must not
        # abandon the write half-way (the claim would hold the slot until it expires).
        work = self._settle_steps_async(ticket, outcome, failure)
        await asyncio.shield(self._in_background(work))

    async def _settle_steps_async(self, ticket: Ticket, outcome: str, failure: object) -> None:
        try:
            await self._adrive(self._settle(ticket, outcome, failure))
        except Exception:
            logger.exception("circuit %r: recording the probe's %s failed", self.name, outcome)

    def _closed_failed(self, view: View, exc: Exception, start: float | None = None) -> None:
        try:
            fired = self._closed_raised(view, exc, start)
            if fired is not None:
                self._drive(self._trip(view, *fired, exc))
        except Exception:
            logger.exception("circuit %r: recording a failure failed", self.name)

    async def _aclosed_failed(self, view: View, exc: Exception, start: float | None = None) -> None:
        try:
            fired = self._closed_raised(view, exc, start)
            if fired is not None:
                await self._adrive(self._trip(view, *fired, exc))
        except Exception:
            logger.exception("circuit %r: recording a failure failed", self.name)

    def _closed_returned(self, view: View, value: object, start: float) -> None:
        fired = self._closed_value(view, value, start)
        if fired is not None:
            self._trip_sync(view, fired)

    async def _aclosed_returned(self, view: View, value: object, start: float) -> None:
        fired = self._closed_value(view, value, start)
        if fired is not None:
            try:
                await self._adrive(self._trip(view, *fired))
            except Exception:
                logger.exception("circuit %r: recording a call failed", self.name)

    def _trip_sync(self, view: View, fired: Fired) -> None:
        try:
            self._drive(self._trip(view, *fired))
        except Exception:
            logger.exception("circuit %r: recording a call failed", self.name)

    def _closed_raised(
        self, view: View, exc: Exception, start: float | None
    ) -> tuple[Cause, int] | None:
        """Record a closed-path call that raised: the cause to trip with if a rule fired."""
        self._tally.raised(view, exc, start)  # metrics
        if _switch.bypassed() or not self.config.counts(exc):
            return None  # an ignored exception counts in neither numerator nor denominator
        return self._count_bad(view, failed=True, slow=self._is_slow(start))

    def _failing_value(self, value: object) -> bool:
        """Whether ``record_result`` makes ``value`` a failure."""
        judge = self._judge
        return (
            judge is not None and value is not NO_RESULT and failing_value(judge, value, self.name)
        )

    def _is_slow(self, start: float | None) -> bool:
        limit = self._slow_after
        return limit is not None and start is not None and self._mono() - start >= limit

    def _probe_returned(self, value: object, start: float) -> tuple[str, object]:
        """A probe's outcome from its returned value: a failing value, or (with a slow-call
        rule) a slow answer, fails it; the value is what ``retry_after`` is given (nothing for a
        ``guard()`` block, which returns none)."""
        if self._failing_value(value) or self._is_slow(start):
            return FAILURE, None if value is NO_RESULT else value
        return SUCCESS, None

    def _drive(self, steps: Steps[R]) -> R:
        return drive(self.store, self.name, steps, self._tally)

    async def _adrive(self, steps: Steps[R]) -> R:
        return await adrive(self.store, self.name, steps, self._tally)

    # --- protocol steps (shared by sync and async) -----------------------------------------

    def _admit(self) -> Steps[Ticket]:
        view = self._view
        if self._mono() >= view.fresh_until:
            view = yield from self._refresh(view)
        where = self._route(view)
        if where is Route.ADMIT:
            return Ticket(Kind.ADMIT, view)
        if where is Route.REJECT:
            return Ticket(Kind.REJECT, view)
        return (yield from self._claim(view))

    def _refresh(self, view: View) -> Steps[View]:
        """Re-read the record, one read at a time per process (others share its result)."""
        with self._lock:
            flight = self._flight
            leader = flight is None
            if leader:
                flight = self._flight = concurrent.futures.Future()
        assert flight is not None
        if not leader:
            if view is not COLD:
                return view  # serve the slightly stale view while the leader reads
            yield Wait(flight)
            return self._view
        try:
            return (yield from self._read(consistent=False))
        finally:
            with self._lock:
                self._flight = None
            resolve(flight)

    def _read(self, *, consistent: bool, force: bool = False) -> Steps[View]:
        """Read the record and install it as the view; on store trouble keep the local view."""
        started = self._mono()
        if self._health.resting(started) and not force:
            return self._view
        loaded = yield from self._load(consistent=consistent)
        if loaded is None:
            return self._keep_view_through_backoff()
        record = loaded.record
        unsettled = self._claims.take_unsettled(record)
        if unsettled is not None:
            # Our own claim, still in the store: write the probe's outcome now, instead of
            # refusing every call until the claim expires.
            yield from self._settle_claim(unsettled.claim, unsettled.outcome, local=False)
            return self._view
        if self._claims.orphaned(record, self._owner):
            # A claim of ours that no call is probing on: its caller was cancelled while the
            # write was in flight, or its event loop shut down before it could release it.
            yield from self._settle_claim(record, RELEASE, local=False)
            return self._view
        self._mismatches.check(loaded.record, self.config)
        return self._install(loaded.record, started, absent=loaded.absent)

    def _load(self, *, consistent: bool) -> Steps[View | None]:
        """Read the record without installing it (``absent`` set for none); None on error."""
        started = self._mono()
        try:
            record = yield Load(consistent)
        except Exception as exc:
            self._store_failed(exc, "read")
            return None
        self._health.answered(self._mono() - started)
        if record is None:
            return View(ABSENT, started, started, closed=True, absent=True)
        return View(record, started, started, record.state is CircuitState.CLOSED)

    def _claim(self, view: View) -> Steps[Ticket]:
        """Try to take the probe slot; one thread of this process tries at a time."""
        with self._lock:
            if self._claiming:
                return Ticket(Kind.REJECT, view)
            self._claiming = True
        claimed: int | None = None
        try:
            if self._view is not view:
                # Another thread of ours claimed, settled or read since this one routed: route
                # again on that. (Compared by identity, not by read time: two views can carry
                # one timestamp on a coarse or fake clock.)
                view = self._view
                if self._route(view) is not Route.CLAIM:
                    return Ticket(Kind.ADMIT if view.closed else Kind.REJECT, view)
            if view.local or self._health.outdated(self._mono() - view.read_at):
                # A local decision (one the store never took) cannot win a conditional write:
                # the store's record decides. Otherwise re-read before writing: reads are
                # cheaper than conditional writes, and most of a fleet's would-be claimers
                # learn here that someone else already won.
                view = yield from self._read(consistent=True)
                if view.forced is not None:  # an override arrived: it decides (_route)
                    routed = self._route(view)
                    return Ticket(Kind.ADMIT if routed is Route.ADMIT else Kind.REJECT, view)
            new = protocol.claim(
                view.record,
                now=self._now(),
                elapsed=self._mono() - view.seen_at,
                owner=self._owner,
                config=self.config,
            )
            if new is None:
                routed = self._route(view)
                return Ticket(Kind.ADMIT if routed is Route.ADMIT else Kind.REJECT, view)
            # Known as ours before the write can land, so that no read of ours takes the
            # claim for an orphan while this thread probes on it.
            claimed = new.epoch
            self._claims.probing(claimed)
            won = yield from self._write(view, new)
            if won is False:
                view = yield from self._read(consistent=True)
                routed = self._route(view)
                return Ticket(Kind.ADMIT if routed is Route.ADMIT else Kind.REJECT, view)
            ticket = Ticket(Kind.PROBE, self._view, new, os.getpid())
            claimed = None  # the ticket's holder settles it
            return ticket
        finally:
            if claimed is not None:  # lost, or abandoned mid-write (a cancelled caller)
                self._claims.done(claimed)
            with self._lock:
                self._claiming = False

    def _trip(self, view: View, cause: Cause, failures: int, failure: object) -> Steps[None]:
        """This thread's call made a rule fire: open the circuit, or, while the fleet's quorum
        is not reached, refuse this process's calls on its own and report to the fleet.

        ``failure`` is the exception or failing value that made the rule fire (for
        ``retry_after``); the open period is drawn once, here, and stored in the record.
        """
        started = self._mono()
        if view.forced == FORCED_CLOSED and started < view.forced_until:
            self._would_have_tripped(view, cause, failures)
            return
        period = self._open_period(0, failure)
        decide = functools.partial(
            quorum.report,
            owner=self._owner,
            config=self.config,
            failures=failures,
            period=period,
            cause=cause,
        )
        new = decide(view.record, now=self._now(), elapsed=started - view.seen_at)
        if new is None:
            return
        episode = view.record.episode_id
        # Stop this process's other callers at once, not after the store round trips below.
        if new.state is CircuitState.OPEN:
            self._install(new, started, local=True)
        else:
            self._hold(started, period, cause, failures)
            window = self.config.effective_report_window
            reported_in, reported_at = self._reported
            if reported_in == episode and started - reported_at < window:
                return  # one report per window: ours still counts
        if self._health.resting(started):
            return  # the store is in backoff: the local decision is all we can do
        reread = self._health.outdated(started - view.read_at)
        # Each lost write is another process's report (or the trip): K rounds reach the quorum.
        for _ in range(self.config.fleet_minimum_reporters + 1):
            if reread:
                fresh = yield from self._load(consistent=True)
                if fresh is None:
                    return  # store trouble: the local decision stands
                if not fresh.closed or fresh.record.episode_id != episode:
                    # The fleet moved on (tripped already, or a new closed episode): adopt it.
                    self._install(fresh.record, self._mono(), absent=fresh.absent)
                    return
                # The record we have watched has aged as long as we watched it; another is new.
                same = fresh.record == view.record
                elapsed = self._mono() - view.seen_at if same else 0.0
                view = fresh
                new = decide(fresh.record, now=self._now(), elapsed=elapsed)
                if new is None:
                    return
                if new.state is CircuitState.CLOSED and self._hold_until < started:
                    # Reports expired meanwhile: no quorum after all.
                    self._hold(started, period, cause, failures)
            won = yield from self._write(view, new)
            if won is not False:
                break
            reread = True  # lost to another writer: decide again on what it wrote
        else:
            yield from self._read(consistent=True)
            return
        if won and new.state is CircuitState.CLOSED:
            self._reported = (episode, started)

    def _would_have_tripped(self, view: View, cause: Cause, failures: int) -> None:
        """Forced closed: log the trip the rules asked for, and count afresh."""
        override = view.record.override
        assert override is not None  # (a forced view's record holds its override)
        log_change(
            self.name,
            view.record.state.value,
            "forced_closed",
            epoch=view.record.epoch,
            actor=override.actor,
            reason=override.reason,
            rule=cause.rule,
            opening=True,
            shadow=self._shadow,
            what=f"kept: would have tripped ({cause.rule}, {failures} failures)",
        )
        with self._lock:
            self._rules.reset(view.record.episode_id)
            self._reset_failures()

    def _hold(self, started: float, period: float, cause: Cause, failures: int) -> None:
        """Refuse this process's calls for ``period`` seconds, the fleet's record unchanged."""
        now = self._now()
        with self._lock:
            self._hold_until = started + period
            # What info() shows of the hold: this process's own view of the circuit is open.
            self._held = protocol.trip(
                ABSENT, now=now, failures=failures, config=self.config, period=period, cause=cause
            )
            current = self._view
            self._rules.reset(current.record.episode_id)  # after the hold, a fresh window
            self._failures = 0
            self._view = self._make_view(current.record, started, current)

    def _open_period(self, open_count: int, failure: object) -> float:
        """The open period to write: the backoff schedule, jitter and ``retry_after``."""
        hint = None
        retry_after = self.config.retry_after
        if retry_after is not None and failure is not None:
            hint = retry_after_hint(retry_after, failure, self.name)
        return schedule.open_period_for(self.config, open_count, draw=random.random(), hint=hint)

    def _settle(self, ticket: Ticket, outcome: str, failure: object = None) -> Steps[None]:
        """Record a probe's outcome, fenced by its claim token."""
        self._tally.settled(outcome, failure)  # metrics
        if ticket.pid != os.getpid() or ticket.record is None:
            return  # a forked child inherited the frame of its parent's probe: not its claim
        try:
            yield from self._settle_claim(
                ticket.record, outcome, local=ticket.view.local, failure=failure
            )
        finally:
            # Only now: a sibling's read must not release the claim while its outcome is
            # being written (the outcome would then be fenced off and lost).
            self._claims.done(ticket.record.epoch)

    def _settle_claim(
        self, claim: Record, outcome: str, *, local: bool, failure: object = None
    ) -> Steps[None]:
        if outcome == FAILURE:
            new = protocol.probe_failed(
                claim,
                token=claim.epoch,
                now=self._now(),
                config=self.config,
                period=self._open_period(claim.open_count + 1, failure),
            )
        else:
            decide = _DECIDE[outcome]
            new = decide(claim, token=claim.epoch, now=self._now(), config=self.config)
        if new is None:
            return
        view = View(claim, self._mono(), 0.0, closed=False, local=local)
        won = yield from self._write(view, new)
        if won is None:
            # The store did not take it: the outcome stands locally, and is written at the
            # first read (after the backoff) that still finds our claim in the store.
            self._claims.defer(claim, outcome)
            retry_at = self._health.retry_at
            with self._lock:
                current = self._view
                if current.fresh_until > retry_at:
                    self._view = replace(current, fresh_until=retry_at)
        elif won is False:
            # Fenced: our claim expired and was taken over. The newer episode stands.
            logger.info("circuit %r: a late probe %s was fenced off", self.name, outcome)
            yield from self._read(consistent=True)

    def _write(self, view: View, new: Record) -> Steps[bool | None]:
        """Compare-and-set ``new`` over ``view.record``: True won, False lost, None local only."""
        started = self._mono()
        if self._health.resting(started):
            self._install(new, started, local=True)
            return None
        expected = None if view.absent else view.record.epoch
        # An operator's override outlives the protocol's writes; the history stays bounded.
        seen = started - view.seen_at
        new = overrides.carry(view.record, new, now=new.updated_at, elapsed=max(seen, 0.0))
        try:
            won = yield CompareAndSet(expected, new)
        except Exception as exc:
            self._store_failed(exc, "write")
            self._install(new, started, local=True)
            return None
        self._health.answered(self._mono() - started)
        if won:
            self._install(new, started)
            if new.state is not view.record.state:
                self._announce(view.record, new)
        return bool(won)

    # --- local state -----------------------------------------------------------------------

    def _now(self) -> float:
        """Wall-clock seconds for the times a record stores (display only, never timing)."""
        return sane_wall(self._clock_wall())

    def _route(self, view: View) -> Route:
        now = self._mono()
        if view.forced is not None and now < view.forced_until:
            # An operator's override decides alone: no trip, no claim underneath it.
            forced_open = view.forced != FORCED_CLOSED and not self._shadow
            return Route.REJECT if forced_open else Route.ADMIT
        if view.held_until > view.read_at and now < view.held_until:
            where = Route.REJECT  # this process holds itself open; the fleet is closed
        else:
            where = protocol.route(
                view.record, elapsed=now - view.seen_at, config=self.config, owner=self._owner
            )
        # A shadow breaker admits what it would refuse (its outcome is not counted: the view
        # is not closed); a free probe slot is still claimed, in its private store.
        return Route.ADMIT if where is Route.REJECT and self._shadow else where

    def _install(
        self, record: Record, started: float, *, local: bool = False, absent: bool = False
    ) -> View:
        """Make ``record`` (read or written at monotonic ``started``) the view, unless newer.

        The view remembers when this process first saw the record: every period of the
        record is measured from then, on this process's monotonic clock.
        """
        now = self._mono()
        with self._lock:
            current = self._view
            seen_at = current.seen_at if current.record == record else now
            new = self._make_view(record, now, current, seen_at=seen_at, local=local, absent=absent)
            if record.epoch < current.record.epoch:
                if current.read_at >= started:
                    return current  # a newer read or write landed while this one ran (or at once)
                if current.local and self._route(current) is Route.REJECT:
                    # Our unpersisted trip still protects the downstream until its retry time.
                    new = self._make_view(current.record, now, current)
            record = new.record
            if record.state is not CircuitState.CLOSED:
                self._hold_until = float("-inf")  # the fleet's own decision supersedes ours
                if local:
                    # Our own trip spends this episode's counts: should it never reach the
                    # store, the episode's next run of failures must be able to trip again.
                    self._rules.reset(self._rules.episode)
                    self._failures = 0
            elif record.episode_id != self._rules.episode:
                self._rules.reset(record.episode_id)  # a new closed episode: empty window
                self._failures = 0
                if self._hold_until > float("-inf"):
                    # A hold belongs to its episode: a new one (a reset, say) ends it.
                    self._hold_until = float("-inf")
                    new = self._make_view(record, now, new)
                elif new.counting:
                    new = replace(new, counting=False)
            self._view = new
        return new

    def _make_view(
        self,
        record: Record,
        now: float,
        current: View,
        *,
        seen_at: float | None = None,
        local: bool | None = None,
        absent: bool | None = None,
        extra: float = 0.0,
    ) -> View:
        """``make_view`` with this process's hold; unset flags are ``current``'s."""
        return make_view(
            record,
            now,
            self.config,
            local=current.local if local is None else local,
            absent=current.absent if absent is None else absent,
            seen_at=current.seen_at if seen_at is None else seen_at,
            extra=extra,
            held_until=self._hold_until,
            counting=self._failures > 0,
            wall=self._now(),
        )

    def _keep_view_through_backoff(self) -> View:
        now = self._mono()
        with self._lock:
            current = self._view
            retry_at = self._health.retry_at
            extra = max(0.0, retry_at - now)
            view = self._make_view(current.record, now, current, extra=extra)
            if current.record.state is not CircuitState.CLOSED:
                view = replace(view, fresh_until=min(view.fresh_until, retry_at))
            self._view = view
            return view

    def _count_bad(self, view: View, *, failed: bool, slow: bool) -> tuple[Cause, int] | None:
        """Count a failed and/or slow closed-path call; the cause for the one call that makes a
        rule fire (exactly one, however many threads fail at once)."""
        now = self._mono()
        with self._lock:
            current = self._view
            if not current.closed or current.record.episode_id != view.record.episode_id:
                return None  # admitted before the circuit moved on: not this episode's call
            rules = self._rules
            fired = rules.bad(failed=failed, slow=slow, now=now + self._wall_offset)
            self._failures = rules.failures
            if fired is None:
                # Check the fleet sooner: the next call re-reads once the view is 0.5 s old.
                fresh_until = min(current.fresh_until, current.read_at + FAILING_REFRESH)
                counting = rules.failures > 0
                if fresh_until != current.fresh_until or counting != current.counting:
                    self._view = replace(current, fresh_until=fresh_until, counting=counting)
            return fired

    def _evaluate(self, view: View, number: int) -> tuple[Cause, int] | None:
        """Evaluate the rate rules after a success that may have changed their verdict."""
        now = self._mono()
        with self._lock:
            current = self._view
            if not current.closed or current.record.episode_id != view.record.episode_id:
                return None
            fired = self._rules.evaluate(number, now + self._wall_offset)
            self._reset_failures()
            return fired

    def _closed_succeeded(self, _view: View) -> None:
        with self._lock:
            self._reset_failures()

    def _reset_failures(self) -> None:
        """A success ends the run of consecutive failures (the caller holds the lock)."""
        self._rules.failures = self._failures = 0
        current = self._view
        if current.counting:
            self._view = replace(current, counting=False)

    def _store_failed(self, exc: Exception, operation: str) -> None:
        backoff = self._health.failed(self._mono())
        logger.warning(
            "circuit %r: store %s failed (%s: %s); serving from the local view for %.1f s",
            self.name,
            operation,
            type(exc).__name__,
            exc,
            backoff,
        )

    def _announce(self, old: Record, new: Record) -> None:
        """Log and report a persisted transition (once fleet-wide: its writer's); an awaitable
        the hook returns is run (``_hooks``)."""
        transition = CircuitTransition.between(self.name, old, new, shadow=self._shadow)
        log_change(
            self.name,
            old.state.value,
            new.state.value,
            epoch=new.epoch,
            actor=self._owner,
            reason=_REASONS.get((old.state, new.state), transition.rule),
            rule=transition.rule,
            opening=new.state is CircuitState.OPEN,
            shadow=self._shadow,
        )
        hook = self.on_transition
        if hook is not None:
            self._transition_hook.call(hook, transition)

    def _info(self, view: View) -> CircuitInfo:
        record = view.record
        now = self._mono()
        if record.override is not None and not (view.forced and now < view.forced_until):
            record = replace(record, override=None)  # ended, as this process measures it
        reporters = len(
            quorum.live_reports(
                record,
                elapsed=now - view.seen_at,
                window=self.config.effective_report_window,
                now=self._now(),
            )
        )
        if now < view.held_until and self._held is not None:
            # This process's own view is open (its hold); the fleet's record is closed, and
            # ``reporters`` shows how far its quorum is.
            held_until = self._wall_offset + view.held_until
            held = replace(self._held, epoch=record.epoch, retry_at=held_until)
            return CircuitInfo.from_record(
                self.name, held, held_until=held_until, reporters=reporters
            )
        local = None
        if record.state is CircuitState.CLOSED and record.episode_id == self._rules.episode:
            with self._lock:
                rates = self._rules.rates(now + self._wall_offset)
            local = (self._failures, rates)
        if record.state is CircuitState.OPEN:
            # Shown as the writer's clock has it, but never past the period this process waits.
            period = protocol.open_period(record, self.config)
            if record.retry_at - record.updated_at > period:  # type: ignore[operator]
                record = replace(record, retry_at=record.updated_at + period)
        return CircuitInfo.from_record(self.name, record, local, reporters=reporters)


_REASONS: Final = {  # why a transition was written, when it is not the rule that fired
    (CircuitState.OPEN, CircuitState.HALF_OPEN): "probe claimed",
    (CircuitState.HALF_OPEN, CircuitState.CLOSED): "probe succeeded",
    (CircuitState.HALF_OPEN, CircuitState.OPEN): "probe failed",
}

_DECIDE: Final = {
    SUCCESS: protocol.probe_succeeded,
    RELEASE: protocol.probe_released,
}


def circuit_breaker(
    *,
    name: str,
    store: Store | None = None,
    config: Config | None = None,
    on_circuit_open: Callable[..., Any] | None = None,
    on_transition: Callable[[CircuitTransition], object] | None = None,
    clock: Clock | None = None,
) -> CircuitBreaker:
    """Decorator factory: ``@circuit_breaker(name="payments", store=...)``.

    Returns the ``CircuitBreaker`` itself, which decorates functions and coroutine functions;
    the hooks run inline in the caller (see ``CircuitBreaker``): keep them fast.
    """
    return CircuitBreaker(
        name,
        store=store,
        config=config,
        on_circuit_open=on_circuit_open,
        on_transition=on_transition,
        clock=clock,
    )

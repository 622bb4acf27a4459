"""``breaker.guard()``: the breaker as a sync or async context manager."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetbreaker import _switch
from fleetbreaker._admission import NO_RESULT, Kind, Ticket, View, outcome
from fleetbreaker.errors import CircuitOpenError

if TYPE_CHECKING:
    from types import TracebackType

    from fleetbreaker._breaker import CircuitBreaker

__all__ = ["Guard"]


class Guard:
    """``with breaker.guard():`` / ``async with breaker.guard():``."""

    __slots__ = ("_breaker", "_start", "_ticket")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._ticket: Ticket | View | None = None  # a View: admitted on the hot path
        self._start = 0.0  # when the block began (the breaker's monotonic clock)

    def _fast(self) -> bool:
        breaker = self._breaker
        view = breaker._view
        self._start = start = breaker._mono()
        if start < view.closed_until:
            self._ticket = view
            return True
        return _switch.bypassed()  # let through untouched: no ticket, nothing recorded

    def _enter(self, ticket: Ticket) -> None:
        if ticket.kind == Kind.REJECT:
            self._breaker._tally.rejected()  # metrics
            raise CircuitOpenError(self._breaker._refusal_info(ticket.view))
        self._ticket = ticket.view if ticket.kind == Kind.ADMIT else ticket
        self._start = self._breaker._mono()

    def __enter__(self) -> None:
        if not self._fast():
            self._enter(self._breaker._admit_sync())

    async def __aenter__(self) -> None:
        if not self._fast():
            self._enter(await self._breaker._admit_async())

    def __exit__(
        self, _t: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        ticket, self._ticket = self._ticket, None
        breaker = self._breaker
        if isinstance(ticket, View):
            if isinstance(exc, Exception):
                breaker._closed_failed(ticket, exc, self._start)
            elif exc is None:
                breaker._closed_returned(ticket, NO_RESULT, self._start)
        elif ticket is not None:
            breaker._settle_sync(ticket, *self._probe_outcome(exc))

    async def __aexit__(
        self, _t: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        ticket, self._ticket = self._ticket, None
        breaker = self._breaker
        if isinstance(ticket, View):
            if isinstance(exc, Exception):
                await breaker._aclosed_failed(ticket, exc, self._start)
            elif exc is None:
                await breaker._aclosed_returned(ticket, NO_RESULT, self._start)
        elif ticket is not None:
            await breaker._settle_async(ticket, *self._probe_outcome(exc))

    def _probe_outcome(self, exc: BaseException | None) -> tuple[str, object]:
        breaker = self._breaker
        if exc is None:
            return breaker._probe_returned(NO_RESULT, self._start)
        return outcome(breaker.config, exc), exc

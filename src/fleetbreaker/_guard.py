"""``breaker.guard()``: the breaker as a sync or async context manager."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetbreaker import _switch
from fleetbreaker._admission import Kind, Ticket, View, outcome
from fleetbreaker.errors import CircuitOpenError

if TYPE_CHECKING:
    from types import TracebackType

    from fleetbreaker._breaker import CircuitBreaker

__all__ = ["Guard"]


class Guard:
    """``with breaker.guard():`` / ``async with breaker.guard():``."""

    __slots__ = ("_breaker", "_ticket")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._ticket: Ticket | View | None = None  # a View: admitted on the hot path

    def _fast(self) -> bool:
        breaker = self._breaker
        view = breaker._view
        if view.closed and breaker._mono() < view.fresh_until:
            self._ticket = view
            return True
        return _switch.bypassed()  # let through untouched: no ticket, nothing recorded

    def _enter(self, ticket: Ticket) -> None:
        if ticket.kind == Kind.REJECT:
            raise CircuitOpenError(self._breaker._info(ticket.view))
        self._ticket = ticket.view if ticket.kind == Kind.ADMIT else ticket

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
                breaker._closed_failed(ticket, exc)
            elif exc is None and breaker._failures:
                breaker._closed_succeeded(ticket)
        elif ticket is not None:
            breaker._settle_sync(ticket, outcome(breaker.config, exc))

    async def __aexit__(
        self, _t: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        ticket, self._ticket = self._ticket, None
        breaker = self._breaker
        if isinstance(ticket, View):
            if isinstance(exc, Exception):
                await breaker._aclosed_failed(ticket, exc)
            elif exc is None and breaker._failures:
                breaker._closed_succeeded(ticket)
        elif ticket is not None:
            await breaker._settle_async(ticket, outcome(breaker.config, exc))

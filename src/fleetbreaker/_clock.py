"""The clock the breaker reads: wall time for shared fields, monotonic time for local ages."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Two readings: ``wall()`` (Unix seconds, comparable across the fleet) and
    ``monotonic()`` (seconds, for ages inside one process)."""

    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clocks: ``time.time`` and ``time.monotonic``."""

    wall = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)

"""Config: the immutable, validated settings of a circuit breaker."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetbreaker._limits import MAX_PERIOD, MAX_RECORD_TTL
from fleetbreaker.errors import ConfigError

__all__ = ["Config"]

ExceptionTypes = tuple[type[Exception], ...]

_WEEK = 7 * 24 * 3600.0


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days ({seconds:.0f} s)"


def _seconds(name: str, value: object, *, allow_zero: bool, maximum: float = MAX_PERIOD) -> float:
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok_type or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):  # type: ignore[arg-type,operator]
        allowed = (
            "a finite number of seconds >= 0" if allow_zero else "a finite number of seconds > 0"
        )
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")
    if value > maximum:  # type: ignore[operator]
        # Every store must be able to keep the times a record derives from it.
        raise ConfigError(f"{name} must be at most {_days(maximum)}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _exception_types(name: str, value: object) -> ExceptionTypes:
    items: Iterable[Any] = (value,) if isinstance(value, type) else value  # type: ignore[assignment]
    try:
        types = tuple(items)
    except TypeError:
        raise ConfigError(
            f"{name} must be an exception class or an iterable of them, got {value!r}"
        ) from None
    for t in types:
        if not (isinstance(t, type) and issubclass(t, Exception)):
            raise ConfigError(
                f"{name} must contain subclasses of Exception (cancellation, KeyboardInterrupt "
                f"and SystemExit never count), got {t!r}"
            )
    return types


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """How a circuit trips and recovers. Every field is validated at construction.

    Times are in seconds; periods are at most 365 days and ``record_ttl`` at most 3650 days
    (what every store can keep). ``handled_exceptions`` (only these count as failures) and
    ``ignored_exceptions`` (these never count) are mutually exclusive; with neither, every
    ``Exception`` counts. An empty ``handled_exceptions`` is refused (nothing would ever
    count); an empty ``ignored_exceptions`` means no denylist and is stored as ``None``.
    """

    failure_threshold: int = 5
    """Consecutive failures (seen by one process) that trip the circuit."""
    recovery_timeout: float = 30.0
    """Seconds the circuit stays open before one probe call is let through."""
    success_threshold: int = 3
    """Consecutive successful probes (fleet-wide) that close the circuit again."""
    handled_exceptions: ExceptionTypes | None = None
    ignored_exceptions: ExceptionTypes | None = None
    local_cache_max_age: float = 5.0
    """Seconds a process trusts its cached view of a closed circuit before re-reading it."""
    probe_timeout: float | None = None
    """Seconds a claimed probe may run before another caller may take over (default:
    recovery_timeout)."""
    record_ttl: float = _WEEK
    """Seconds a stored record lives after its last write; refreshed by every write."""
    half_open_refresh: float = 0.25
    """Longest a process trusts its view of a half-open or past-due open circuit (seconds); the
    fleet's read rate during a recovery is about processes / half_open_refresh."""
    _probe_timeout: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _positive_int("failure_threshold", self.failure_threshold)
        _positive_int("success_threshold", self.success_threshold)
        set_(
            self,
            "recovery_timeout",
            _seconds("recovery_timeout", self.recovery_timeout, allow_zero=False),
        )
        set_(
            self,
            "local_cache_max_age",
            _seconds("local_cache_max_age", self.local_cache_max_age, allow_zero=True),
        )
        if self.ignored_exceptions is not None:
            ignored = _exception_types("ignored_exceptions", self.ignored_exceptions)
            set_(self, "ignored_exceptions", ignored or None)  # an empty denylist is none
        if self.handled_exceptions is not None and self.ignored_exceptions is not None:
            raise ConfigError(
                "handled_exceptions and ignored_exceptions are mutually exclusive: "
                "give an allowlist or a denylist, not both"
            )
        if self.handled_exceptions is not None:
            handled = _exception_types("handled_exceptions", self.handled_exceptions)
            if not handled:
                raise ConfigError(
                    "handled_exceptions is empty, so no failure would ever count: omit it to "
                    "count every Exception, or list the exception types that count"
                )
            set_(self, "handled_exceptions", handled)
        probe = self.recovery_timeout if self.probe_timeout is None else self.probe_timeout
        probe = _seconds("probe_timeout", probe, allow_zero=False)
        set_(self, "_probe_timeout", probe)
        ttl = _seconds("record_ttl", self.record_ttl, allow_zero=False, maximum=MAX_RECORD_TTL)
        if ttl < 2 * (self.recovery_timeout + probe):
            raise ConfigError(
                f"record_ttl must be at least 2 x (recovery_timeout + probe_timeout) = "
                f"{2 * (self.recovery_timeout + probe):g} s so a live circuit is never "
                f"reaped, got {self.record_ttl!r}"
            )
        set_(self, "record_ttl", ttl)
        set_(
            self,
            "half_open_refresh",
            _seconds("half_open_refresh", self.half_open_refresh, allow_zero=False),
        )

    @property
    def effective_probe_timeout(self) -> float:
        """``probe_timeout``, or ``recovery_timeout`` when it was not given."""
        return self._probe_timeout

    def counts(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as a downstream failure under this config."""
        if not isinstance(exc, Exception):
            return False
        if self.handled_exceptions is not None:
            return isinstance(exc, self.handled_exceptions)
        if self.ignored_exceptions is not None:
            return not isinstance(exc, self.ignored_exceptions)
        return True

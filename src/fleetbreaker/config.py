"""Config: the immutable, validated settings of a circuit breaker."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from fleetbreaker._limits import MAX_PERIOD, MAX_RECORD_TTL, MAX_REPORTS
from fleetbreaker.errors import ConfigError

__all__ = ["Config"]

ExceptionTypes = tuple[type[Exception], ...]

_WEEK = 7 * 24 * 3600.0
DAY: Final = 24 * 3600.0
"""The longest open period when no ``recovery_timeout_max`` is set but the period can grow
(``recovery_backoff_multiplier`` > 1 or a ``retry_after`` hint)."""
MAX_REPORTERS: Final = MAX_REPORTS
"""Largest ``fleet_minimum_reporters``: the record keeps that many reports, and must stay small."""
MAX_WINDOW_CALLS: Final = 1_000_000
"""Largest count window (its failed and slow calls are kept one by one)."""
WINDOW_TYPES: Final = ("time", "count")
DEFAULT_REPORT_WINDOW: Final = 60.0


def _optional_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    try:
        return _positive_int(name, value)
    except ConfigError as error:
        raise ConfigError(f"{error}; None turns the rule off") from None


def _rate(name: str, value: object) -> float | None:
    if value is None:
        return None
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok_type or not 0 < value <= 1:  # type: ignore[operator]  # NaN fails too
        raise ConfigError(f"{name} must be a rate in (0, 1] (0.5 is 50 %) or None, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _callable(name: str, value: object, what: str) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be callable ({what}) or None, got {value!r}")


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days ({seconds:.0f} s)"


def _seconds(name: str, value: object, *, allow_zero: bool, maximum: float = MAX_PERIOD) -> float:
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    # A chained comparison, not math.isfinite: that raises OverflowError on a huge int, and
    # the comparison refuses NaN and infinities just the same.
    if not ok_type or not 0 <= value < math.inf or (value == 0 and not allow_zero):  # type: ignore[operator]
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


MODES = ("enforce", "shadow")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """How a circuit trips and recovers. Every field is validated at construction.

    Times are in seconds; periods are at most 365 days and ``record_ttl`` at most 3650 days
    (what every store can keep). ``handled_exceptions`` (only these count as failures) and
    ``ignored_exceptions`` (these never count) are mutually exclusive; with neither, every
    ``Exception`` counts. An empty ``handled_exceptions`` is refused (nothing would ever
    count); an empty ``ignored_exceptions`` means no denylist and is stored as ``None``.
    """

    failure_threshold: int | None = 5
    """Consecutive failures (seen by one process) that trip the circuit; None turns the rule
    off."""
    failure_rate_threshold: float | None = None
    """Trip when at least this share of the window's calls failed (in (0, 1]); None: off."""
    slow_call_duration_threshold: float | None = None
    """Seconds from which a call counts as slow (timed on the breaker's monotonic clock)."""
    slow_call_rate_threshold: float | None = None
    """Trip when at least this share of the window's calls were slow (in (0, 1]); None: off.
    A slow call's result still reaches its caller; with this rule a slow probe fails."""
    minimum_number_of_calls: int = 20
    """No rate verdict on a window holding fewer calls (a count window caps it at its size)."""
    sliding_window_type: str = "time"
    """``"time"``: the last ``sliding_window_size`` seconds, in 10 buckets aligned to Unix
    time; ``"count"``: the last ``sliding_window_size`` calls."""
    sliding_window_size: float = 60
    """Seconds (time window) or calls (count window) of this process's recent calls."""
    record_result: Callable[[Any], bool] | None = None
    """``record_result(value) -> bool``: True makes a returned value count as a failure (the
    value is still returned). One that raises is logged and the call counts as a success."""
    recovery_timeout: float = 30.0
    """Seconds the circuit stays open (the first time) before one probe call is let through."""
    recovery_backoff_multiplier: float = 1.0
    """Each consecutive failed recovery multiplies the open period by this (>= 1)."""
    recovery_timeout_max: float | None = None
    """Longest open period (default: 24 h when the period can grow, else recovery_timeout)."""
    recovery_jitter: float = 0.0
    """Each open period is drawn from [(1 - jitter) x d, d], once, by the writer (in [0, 1))."""
    retry_after: Callable[[Any], float | None] | None = None
    """``retry_after(failure) -> seconds | None`` for the exception (or failing value) that
    tripped the circuit or failed the probe: keeps the circuit open at least that long."""
    fleet_minimum_reporters: int = 1
    """Open fleet-wide only when this many processes' rules fired within
    ``fleet_report_window``; a process whose rules fire always stops its own calls at once."""
    fleet_report_window: float | None = None
    """Seconds a report counts (default: the time window's size, or 60 s)."""
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
    mode: str = "enforce"
    """``"enforce"``, or ``"shadow"``: observe and report (logs, metrics, ``on_transition``
    with ``shadow=True``) but never refuse a call and never touch the store; the circuit is
    this process's alone, in a private memory store. How a team rolls fleetbreaker out before
    letting it act."""
    _probe_timeout: float = field(init=False, repr=False, compare=False)
    _max_open: float = field(init=False, repr=False, compare=False)
    _report_window: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ConfigError(f"mode must be 'enforce' or 'shadow', got {self.mode!r:.50}")
        _optional_int("failure_threshold", self.failure_threshold)
        self._check_rate_rules()
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
        self._check_recovery()
        ttl = _seconds("record_ttl", self.record_ttl, allow_zero=False, maximum=MAX_RECORD_TTL)
        if ttl < 2 * (self._max_open + probe):
            raise ConfigError(
                f"record_ttl must be at least 2 x (longest open period + probe_timeout) = "
                f"{2 * (self._max_open + probe):g} s so a live circuit is never "
                f"reaped, got {self.record_ttl!r}: {self._longest_open_reason()}"
            )
        set_(self, "record_ttl", ttl)
        set_(
            self,
            "half_open_refresh",
            _seconds("half_open_refresh", self.half_open_refresh, allow_zero=False),
        )

    def _check_rate_rules(self) -> None:
        set_ = object.__setattr__
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            set_(self, name, _rate(name, getattr(self, name)))
        if self.slow_call_duration_threshold is not None:
            set_(
                self,
                "slow_call_duration_threshold",
                _seconds(
                    "slow_call_duration_threshold",
                    self.slow_call_duration_threshold,
                    allow_zero=False,
                ),
            )
        if self.slow_call_rate_threshold is not None and self.slow_call_duration_threshold is None:
            raise ConfigError(
                "slow_call_rate_threshold needs slow_call_duration_threshold (the seconds from "
                "which a call counts as slow): give both, or neither to turn the rule off"
            )
        if self.slow_call_duration_threshold is not None and self.slow_call_rate_threshold is None:
            raise ConfigError(
                "slow_call_duration_threshold needs slow_call_rate_threshold (the share of slow "
                "calls that trips the circuit): give both, or neither to turn the rule off"
            )
        if (
            self.failure_threshold is None
            and self.failure_rate_threshold is None
            and self.slow_call_rate_threshold is None
        ):
            raise ConfigError(
                "no rule could ever trip the circuit: enable failure_threshold, "
                "failure_rate_threshold or slow_call_rate_threshold"
            )
        _positive_int("minimum_number_of_calls", self.minimum_number_of_calls)
        if self.sliding_window_type not in WINDOW_TYPES:
            raise ConfigError(
                f'sliding_window_type must be "time" or "count", got {self.sliding_window_type!r}'
            )
        if self.sliding_window_type == "count":
            size = self.sliding_window_size
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(
                    f"sliding_window_size must be a positive integer (a number of calls) for a "
                    f"count window, got {size!r}"
                )
            if size > MAX_WINDOW_CALLS:
                raise ConfigError(
                    f"sliding_window_size must be at most {MAX_WINDOW_CALLS} calls for a count "
                    f"window, got {size}"
                )
        else:
            size = _seconds("sliding_window_size", self.sliding_window_size, allow_zero=False)
        set_(self, "sliding_window_size", size)
        _callable("record_result", self.record_result, "value -> bool")
        _callable("retry_after", self.retry_after, "failure -> seconds or None")
        reporters = _positive_int("fleet_minimum_reporters", self.fleet_minimum_reporters)
        if reporters > MAX_REPORTERS:
            raise ConfigError(
                f"fleet_minimum_reporters must be at most {MAX_REPORTERS} (a record keeps one "
                f"report per process), got {reporters}"
            )
        window = self.fleet_report_window
        if window is not None:
            window = _seconds("fleet_report_window", window, allow_zero=False)
            set_(self, "fleet_report_window", window)
        elif self.sliding_window_type == "time":
            window = size
        else:
            window = DEFAULT_REPORT_WINDOW
        set_(self, "_report_window", window)

    def _check_recovery(self) -> None:
        set_ = object.__setattr__
        multiplier = self.recovery_backoff_multiplier
        ok_type = isinstance(multiplier, int | float) and not isinstance(multiplier, bool)
        if not ok_type or not 1 <= multiplier <= 1000:
            raise ConfigError(
                f"recovery_backoff_multiplier must be a number in [1, 1000] (1 keeps every "
                f"open period at recovery_timeout), got {multiplier!r}"
            )
        set_(self, "recovery_backoff_multiplier", float(multiplier))
        jitter = self.recovery_jitter
        ok_type = isinstance(jitter, int | float) and not isinstance(jitter, bool)
        if not ok_type or not 0 <= jitter < 1:
            raise ConfigError(
                f"recovery_jitter must be a share in [0, 1) (0.2 draws each period from "
                f"[0.8 d, d]), got {jitter!r}"
            )
        set_(self, "recovery_jitter", float(jitter))
        if self.recovery_timeout_max is not None:
            longest = _seconds("recovery_timeout_max", self.recovery_timeout_max, allow_zero=False)
            if longest < self.recovery_timeout:
                raise ConfigError(
                    f"recovery_timeout_max must be at least recovery_timeout "
                    f"({self.recovery_timeout:g} s), got {self.recovery_timeout_max!r}"
                )
            set_(self, "recovery_timeout_max", longest)
        elif self.recovery_backoff_multiplier > 1 or self.retry_after is not None:
            longest = max(DAY, self.recovery_timeout)
        else:
            longest = self.recovery_timeout
        set_(self, "_max_open", longest)

    def _longest_open_reason(self) -> str:
        """Where the longest open period comes from, and how to make record_ttl fit."""
        longest, probe = f"{self._max_open:g} s", f"probe_timeout is {self._probe_timeout:g} s"
        if self.recovery_timeout_max is not None:
            return f"{longest} is recovery_timeout_max, {probe}; raise record_ttl or lower them"
        if self._max_open > self.recovery_timeout:
            grows = (
                "recovery_backoff_multiplier > 1"
                if self.recovery_backoff_multiplier > 1
                else "retry_after"
            )
            return (
                f"{longest} (24 h) is the longest open period, as {grows} lets it grow and no "
                f"recovery_timeout_max caps it, {probe}; raise record_ttl or set "
                f"recovery_timeout_max"
            )
        return f"{longest} is recovery_timeout, {probe}; raise record_ttl or lower them"

    @property
    def shadow(self) -> bool:
        """Whether the breaker only observes (``mode="shadow"``)."""
        return self.mode == "shadow"

    @property
    def uses_window(self) -> bool:
        """Whether a rate rule is enabled (so every call is recorded in a window)."""
        return self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None

    @property
    def max_open_period(self) -> float:
        """The longest open period this configuration ever writes (backoff, retry_after)."""
        return self._max_open

    @property
    def effective_report_window(self) -> float:
        """``fleet_report_window``, or its default."""
        return self._report_window

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

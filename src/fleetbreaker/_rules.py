"""This process's trip rules: the consecutive-failure count and the rate window.

Pure bookkeeping, no locks of its own: the breaker calls ``bad``, ``evaluate``, ``succeeded``
and ``reset`` under its lock, and ``window.success`` on its hot path without one (see
``_windows``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetbreaker._protocol import CONSECUTIVE, Cause
from fleetbreaker._windows import CountWindow, Rates, TimeWindow, Verdict

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = ["Rules", "make_window"]

Window = CountWindow | TimeWindow


def make_window(config: Config) -> Window | None:
    """The window ``config``'s rate rules read, or ``None`` when no rate rule is enabled."""
    if not config.uses_window:
        return None
    window_type = CountWindow if config.sliding_window_type == "count" else TimeWindow
    return window_type(
        size=config.sliding_window_size,  # type: ignore[arg-type]  # an int for a count window
        minimum_calls=config.minimum_number_of_calls,
        failure_rate_threshold=config.failure_rate_threshold,
        slow_call_rate_threshold=config.slow_call_rate_threshold,
    )


class Rules:
    """The rules of one closed episode, as this process saw its calls."""

    __slots__ = ("episode", "failures", "threshold", "window")

    def __init__(self, config: Config) -> None:
        self.threshold = config.failure_threshold
        self.window = make_window(config)
        self.failures = 0  # consecutive counted failures
        self.episode = -1  # the closed episode (Record.episode_id) being counted

    def reset(self, episode: int) -> None:
        """Start counting the closed episode ``episode`` afresh."""
        self.episode = episode
        self.failures = 0
        if self.window is not None:
            self.window.reset()

    def bad(self, *, failed: bool, slow: bool, now: float) -> tuple[Cause, int] | None:
        """Count a failed and/or slow call at Unix time ``now``: the cause and the failure count
        to trip with when a rule fires."""
        if failed:
            self.failures += 1
        else:
            self.failures = 0  # a slow success is a success: it ends the run of failures
        verdict = None
        if self.window is not None:
            verdict = self.window.bad(failed=failed, slow=slow, now=now)
        if failed and self.failures == self.threshold:
            rates = None if self.window is None else self.window.rates(now)
            return _cause(CONSECUTIVE, rates), self.failures
        return None if verdict is None else _fired(verdict)

    def evaluate(self, number: int, now: float) -> tuple[Cause, int] | None:
        """Evaluate after the success numbered ``number`` (see ``Window.success``)."""
        if self.window is None:
            return None
        verdict = self.window.evaluate(number, now)
        return None if verdict is None else _fired(verdict)

    def rates(self, now: float) -> Rates | None:
        return None if self.window is None else self.window.rates(now)


def _fired(verdict: Verdict) -> tuple[Cause, int]:
    return _cause(verdict.rule, verdict.rates), verdict.rates.failures


def _cause(rule: str, rates: Rates | None) -> Cause:
    if rates is None:
        return Cause(rule)
    return Cause(rule, rates.failure_rate, rates.slow_call_rate)

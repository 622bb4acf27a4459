"""How long a circuit stays open: the backoff schedule, its jitter and ``retry_after`` hints.

Pure: the caller passes the random draw and the hint it got from the user's ``retry_after``.
The writer of a trip or a re-open draws the period once and stores it in the record
(``retry_at - updated_at``), so every process of the fleet waits the same period.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fleetbreaker._limits import MAX_PERIOD
from fleetbreaker.config import DAY

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = ["hint_seconds", "open_period_for"]


def backoff(config: Config, open_count: int) -> float:
    """``min(recovery_timeout * multiplier ** open_count, longest)``, without overflow."""
    base, multiplier = config.recovery_timeout, config.recovery_backoff_multiplier
    longest = config.max_open_period
    if multiplier == 1 or open_count <= 0:
        return min(base, longest)
    # Compared in logs: multiplier ** open_count overflows a float long before the count does.
    if open_count * math.log(multiplier) >= math.log(longest / base):
        return longest
    return min(base * multiplier**open_count, longest)


def open_period_for(
    config: Config, open_count: int, *, draw: float, hint: float | None = None
) -> float:
    """The open period after ``open_count`` consecutive failed recoveries.

    ``draw`` in [0, 1] picks the jitter: the period is ``d * (1 - recovery_jitter * draw)``,
    so in ``[(1 - jitter) d, d]``. A ``hint`` (seconds from ``retry_after``) keeps the
    circuit open at least that long, capped at ``recovery_timeout_max`` (24 h without one).
    """
    period = backoff(config, open_count) * (1.0 - config.recovery_jitter * min(max(draw, 0.0), 1.0))
    if hint is not None:
        cap = DAY if config.recovery_timeout_max is None else config.recovery_timeout_max
        period = max(period, min(hint, cap))
    return period


def hint_seconds(value: object) -> float | None:
    """A ``retry_after`` answer as seconds, or ``None`` when it is not a usable number.

    Accepts ints and floats (not bools) that are finite and positive; anything else -- None,
    a negative or non-finite number, text -- changes nothing. A hint beyond ``MAX_PERIOD``
    (longer than any cap) reads as ``MAX_PERIOD``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # A chained comparison, not math.isfinite: that raises OverflowError on an int too large
    # for a float, and the comparison refuses NaN and infinities just the same.
    if not 0 < value < math.inf:
        return None
    return float(min(value, MAX_PERIOD))

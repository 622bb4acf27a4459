"""Times as the CLI shows them (ISO 8601 UTC plus a relative time) and durations as it reads them.

Every time is Unix seconds from a store, on some writer's clock: it may be anything, so showing
one never raises (a time that is not a date is shown as the raw number). Nothing here reads the
local time zone: ``TZ`` never changes what the CLI prints.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

__all__ = ["duration_text", "human", "iso", "json_time", "parse_duration", "relative"]

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# 90, 90s, 15m, 2h, 1h30m, 1.5h, 1d12h: units largest first, each at most once.
_AMOUNT = r"([0-9]+(?:\.[0-9]+)?)"
_DURATION = re.compile("".join(f"(?:{_AMOUNT}{unit})?" for unit in _UNITS))
_NUMBER = re.compile(_AMOUNT)
DURATION_FORMS = "90, 90s, 15m, 2h or 1h30m"


def iso(wall: float | None) -> str | None:
    """``wall`` as ``2026-11-29T13:05:00Z`` (whole seconds, UTC); ``None`` if it is not a date."""
    if wall is None:
        return None
    try:
        moment = datetime.fromtimestamp(math.floor(wall), tz=timezone.utc)
    except (ValueError, OverflowError, OSError, TypeError):  # NaN, inf, years past 9999, ...
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: float) -> str:
    """A non-negative number of seconds for a reader: ``12 s``, ``3 min``, ``2 h 5 min``."""
    whole = round(seconds)  # (a 30 min override just set reads "in 30 min", not 29)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" if rest == 0 or minutes >= 10 else f"{minutes} min {rest} s"
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        return f"{hours} h" if rest < 60 else f"{hours} h {rest // 60} min"
    days, rest = divmod(whole, 86400)
    return f"{days} d" if rest < 3600 else f"{days} d {rest // 3600} h"


def relative(wall: float, now: float) -> str:
    """``wall`` seen from ``now``: ``in 12 s``, ``3 min ago`` or ``now`` (within a second)."""
    delta = wall - now
    if not math.isfinite(delta):
        return "?"
    if abs(delta) < 1:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(-delta)} ago"


def human(wall: float | None, now: float) -> str:
    """``2026-11-29T13:05:00Z (3 min ago)``; ``-`` for no time; the raw number for a non-date."""
    if wall is None:
        return "-"
    shown = iso(wall)
    if shown is None:
        return f"{wall!r} (not a date)"
    return f"{shown} ({relative(wall, now)})"


def json_time(key: str, wall: float | None) -> dict[str, float | str | None]:
    """``{key: epoch seconds, key_iso: ISO string}``; both ``None`` for no time or a non-date
    (JSON has no NaN or infinity)."""
    shown = iso(wall)
    if wall is None or shown is None:
        return {key: None, f"{key}_iso": None}
    return {key: wall, f"{key}_iso": shown}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h``, ``1h30m`` or ``1d``; ``ValueError`` (its
    message for the user) for anything else, zero included."""
    if text.startswith("-"):
        raise ValueError(f"must be a duration of more than 0 s, got {text!r}")
    if _NUMBER.fullmatch(text):
        seconds = float(text)
    else:
        found = _DURATION.fullmatch(text)
        if found is None or not any(found.groups()):
            raise ValueError(f"expected a duration such as {DURATION_FORMS}, got {text!r}")
        seconds = sum(
            float(value) * _UNITS[unit]
            for value, unit in zip(found.groups(), _UNITS, strict=True)
            if value is not None
        )
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r:.40} is too long a duration")
    if not seconds > 0:
        raise ValueError(f"must be a duration of more than 0 s, got {text!r}")
    return seconds


def duration_text(seconds: float) -> str:
    """A duration the CLI was given, for a message: ``30 min``, ``90 s``, ``1 h 30 min``."""
    return span(seconds) if seconds >= 1 and seconds == int(seconds) else f"{seconds:g} s"

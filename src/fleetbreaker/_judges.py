"""The user's policy callables, called safely: ``record_result`` and ``retry_after``.

They run inside the user's call path after the user's own function returned or raised, so a
callable that raises or answers nonsense is logged and changes nothing: it never replaces the
caller's result or exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fleetbreaker._schedule import hint_seconds

__all__ = ["failing_value", "retry_after_hint"]

logger = logging.getLogger("fleetbreaker")


def failing_value(judge: Callable[[Any], bool], value: object, circuit: str) -> bool:
    """``judge(value)`` (``record_result``); one that raises counts the call a success."""
    try:
        return bool(judge(value))
    except Exception:
        logger.warning(
            "circuit %r: record_result raised on a returned value; counting the call as a success",
            circuit,
            exc_info=True,
        )
        return False


def retry_after_hint(
    retry_after: Callable[[Any], object], failure: object, circuit: str
) -> float | None:
    """Seconds ``retry_after(failure)`` asks the circuit to stay open, or ``None``: for no
    answer, for one that is not a positive finite number, or when it raises."""
    try:
        answer = retry_after(failure)
    except Exception:
        logger.warning(
            "circuit %r: retry_after raised; using the schedule's open period",
            circuit,
            exc_info=True,
        )
        return None
    hint = hint_seconds(answer)
    if hint is None and answer is not None:
        logger.warning(
            "circuit %r: retry_after returned %.50r, not a positive number of seconds; using "
            "the schedule's open period",
            circuit,
            answer,
        )
    return hint

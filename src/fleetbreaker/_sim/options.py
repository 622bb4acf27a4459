"""The command's values read from text: durations, the outage window and shape, ``Config``
fields and matrix cells. Each parser raises ``ValueError`` with a message for the user."""

from __future__ import annotations

import builtins
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, Final

from fleetbreaker._sim.fleet import POLICIES, policy_settings
from fleetbreaker._sim.model import DOWN, RATIO, SHAPES, SICK, SLOW, DownstreamError, Shape
from fleetbreaker.config import Config

__all__ = [
    "DURATION_FORMS",
    "SHAPE_FORMS",
    "build_config",
    "config_fields",
    "parse_cells",
    "parse_config_item",
    "parse_duration",
    "parse_outage",
    "parse_shape",
]

DURATION_FORMS: Final = "90, 90s, 1.5m, 500ms or 1h"
SHAPE_FORMS: Final = "down, ratio:0.3, slow:5s or sick"
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|s|m|h)?")
_NONE: Final = frozenset({"none", "null"})


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """Seconds from ``90``, ``90s``, ``1.5m``, ``500ms`` or ``1h`` (no unit: seconds)."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"expected a duration such as {DURATION_FORMS}, got {text!r}")
    amount, unit = found.groups()
    seconds = float(amount) * _UNITS[unit or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r:.40} is too long a duration")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "at least 0 s" if allow_zero else "more than 0 s"
        raise ValueError(f"must be a duration of {bound}, got {text!r}")
    return seconds


def parse_outage(text: str) -> tuple[float, float]:
    """``START:END`` (``20s:50s``) -> the outage's start and end in seconds, start < end."""
    start_text, colon, end_text = text.partition(":")
    if not colon:
        raise ValueError(f"expected START:END such as 20s:50s, got {text!r}")
    start = parse_duration(start_text, allow_zero=True)
    end = parse_duration(end_text)
    if end <= start:
        raise ValueError(f"the outage must end after it starts, got {text!r}")
    return start, end


def parse_shape(text: str) -> Shape:
    """``down``, ``ratio:SHARE`` (0 < SHARE <= 1), ``slow:DURATION`` or ``sick``."""
    kind, colon, value = text.strip().partition(":")
    if kind in {DOWN, SICK}:
        if colon:
            raise ValueError(f"{kind} takes no value, got {text!r}")
        return Shape(kind)
    if kind == RATIO:
        try:
            share = float(value)
        except ValueError:
            raise ValueError(
                f"ratio takes a share of failing calls, as ratio:0.3, got {text!r}"
            ) from None
        if not 0 < share <= 1:
            raise ValueError(f"ratio's share must be in (0, 1], got {text!r}")
        return Shape(RATIO, failure_ratio=share)
    if kind == SLOW:
        if not value:
            raise ValueError(f"slow takes each call's duration, as slow:5s, got {text!r}")
        return Shape(SLOW, slow_latency=parse_duration(value))
    raise ValueError(f"expected an outage shape such as {SHAPE_FORMS}, got {text!r}")


def config_fields() -> dict[str, Any]:
    """Every public ``Config`` field, with its (resolved) type."""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config) if f.init and not f.name.startswith("_")}


def _exception_class(name: str) -> type[Exception]:
    if name == DownstreamError.__name__:
        return DownstreamError
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    raise ValueError(
        f"{name!r} is not a builtin exception: name builtin exceptions (ConnectionError, "
        f"TimeoutError, ...) or DownstreamError (the simulated downstream's failure, a "
        f"ConnectionError)"
    )


def _value(name: str, kind: Any, text: str) -> Any:
    """``text`` read as a value of the field ``name`` of type ``kind``."""
    union = isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
    options = typing.get_args(kind) if union else (kind,)
    if type(None) in options and text.strip().lower() in _NONE:
        return None
    concrete = [option for option in options if option is not type(None)]
    main = concrete[0] if concrete else kind
    origin = typing.get_origin(main)
    if origin is tuple:  # exception classes: a comma-separated list of their names
        return tuple(_exception_class(item.strip()) for item in text.split(",") if item.strip())
    if main is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{name} takes a whole number, got {text!r}") from None
    if main is float:
        # A whole number stays an int: a count window's size must be one.
        if re.fullmatch(r"[0-9]+", text.strip()):
            return int(text)
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return parse_duration(text, allow_zero=True)
        except ValueError:
            raise ValueError(
                f"{name} takes a number or a duration ({DURATION_FORMS}), got {text!r}"
            ) from None
    if main is str:
        return text
    raise ValueError(f"{name} cannot be set from the command line (it takes a function)")


def parse_config_item(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` -> the ``Config`` field's name and its value, read by the field's type."""
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise ValueError(f"expected FIELD=VALUE such as failure_threshold=10, got {text!r}")
    known = config_fields()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"{name!r} is not a Config field{hint} (fields: {', '.join(sorted(known))})"
        )
    return name, _value(name, known[name], value)


def build_config(policy: str, items: Iterable[tuple[str, Any]]) -> Config:
    """The ``Config`` of preset ``policy`` with the fields ``items`` set; ``ConfigError`` as
    ``Config`` raises it for a combination it refuses."""
    settings = policy_settings(policy)
    given: set[str] = set()
    for name, value in items:
        if name in given:
            raise ValueError(f"--config {name} is given twice")
        given.add(name)
        settings[name] = value
    return Config(**settings)


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``all`` or ``SHAPE:POLICY,...`` -> the (shape kind, policy) cells, in matrix order."""
    if text == "all":
        return [(shape, policy) for shape in SHAPES for policy in POLICIES]
    cells = []
    for item in text.split(","):
        shape, _, policy = item.strip().partition(":")
        if shape not in SHAPES or policy not in POLICIES:
            raise ValueError(
                f"a cell is SHAPE:POLICY with a shape in {', '.join(SHAPES)} and a policy in "
                f"{', '.join(POLICIES)}, got {item!r}"
            )
        cells.append((shape, policy))
    return cells

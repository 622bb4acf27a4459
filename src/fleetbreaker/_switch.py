"""The process-wide bypass: ``FLEETBREAKER_DISABLED`` and the testing kit's scoped switch.

The healthy path never looks here. A breaker asks :func:`bypassed` only where its behaviour
would differ from a bare call: before a refusal, a probe or a store read, and before counting a
failure. A healthy call on a fresh closed view is a bare call already. So the switch and the
environment variable take effect at once for breakers that already exist (a test's
``monkeypatch.setenv`` included), at the price of one environment lookup on those paths.
"""

from __future__ import annotations

import logging
import os
from typing import Final

__all__ = ["ENV_VAR", "bypassed", "force"]

logger = logging.getLogger("fleetbreaker")

ENV_VAR: Final = "FLEETBREAKER_DISABLED"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


class _State:
    forced: bool | None = None  # the testing switch wins over the environment
    warned: bool = False


_state = _State()


# os.environ keeps its values in a dict keyed by the encoded name; a lookup there is a tenth of
# the cost of os.environ.get (which encodes the key and decodes the value every time), and it
# sees every change made through os.environ (monkeypatch.setenv included).
_ENVIRON_DATA: Final = getattr(os.environ, "_data", None)
_ENCODED_KEY: Final = os.environ.encodekey(ENV_VAR) if _ENVIRON_DATA is not None else None


STATE: Final = _state
ENVIRON: Final = _ENVIRON_DATA if _ENVIRON_DATA is not None else {_ENCODED_KEY: b""}
ENVIRON_KEY: Final = _ENCODED_KEY
"""For a hot path that cannot afford a call: ``STATE.forced is None and ENVIRON_KEY not in
ENVIRON`` means "not bypassed" for certain; otherwise ask :func:`bypassed`. (Without
``os.environ._data`` the key is always "in", so the answer always comes from ``bypassed``.)"""


def _raw_value() -> object:
    if _ENVIRON_DATA is not None:
        return _ENVIRON_DATA.get(_ENCODED_KEY)
    return os.environ.get(ENV_VAR)  # pragma: no cover - an os.environ without _data


def bypassed() -> bool:
    """Whether every breaker of this process lets calls straight through now."""
    forced = _state.forced
    if forced is not None:
        return forced
    if _raw_value() is None or os.environ.get(ENV_VAR, "").strip().lower() not in _TRUE:
        return False
    if not _state.warned:
        _state.warned = True
        logger.warning("%s is set: every circuit breaker is bypassed (development only)", ENV_VAR)
    return True


def force(value: bool | None) -> bool | None:
    """Set the testing switch (``None``: follow the environment); return the previous value."""
    previous, _state.forced = _state.forced, value
    return previous

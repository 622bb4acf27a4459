"""What a call was admitted with: the local view it routed on, and its ticket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetbreaker._protocol import ABSENT, Record

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = ["COLD", "FAILURE", "RELEASE", "SUCCESS", "Kind", "Ticket", "View", "outcome"]


@dataclass(frozen=True, slots=True)
class View:
    """This process's cached copy of the record, and until when (monotonic) it routes calls.

    ``local`` marks a decision this process could not persist (store trouble): it protects the
    downstream from this process until the record itself says otherwise. ``seen_at`` is when
    this process first saw ``record`` (monotonic): the record's periods run from then.
    """

    record: Record
    read_at: float
    fresh_until: float
    closed: bool
    local: bool = False
    absent: bool = False
    seen_at: float = float("-inf")


COLD = View(ABSENT, float("-inf"), float("-inf"), closed=True, absent=True)


class Kind:
    ADMIT = 0
    REJECT = 1
    PROBE = 2


@dataclass(frozen=True, slots=True)
class Ticket:
    """The admission of one call. For a probe, ``record`` is the claim it wrote (its token)."""

    kind: int
    view: View
    record: Record | None = None
    pid: int = 0


SUCCESS, FAILURE, RELEASE = "success", "failure", "release"


def outcome(config: Config, exc: BaseException | None) -> str:
    """How a probe or call ended: success, a counted failure, or a release (not counted)."""
    if exc is None:
        return SUCCESS
    return FAILURE if config.counts(exc) else RELEASE

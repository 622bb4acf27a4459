"""The fleet-scale guarantees ``--check`` enforces for fleetbreaker (a run holds one outage)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fleetbreaker._sim.model import SICK

if TYPE_CHECKING:  # the CLI imports this module to declare --check: it stays light
    from fleetbreaker._sim.engine import Result

__all__ = ["LOSSLESS_FLEET", "MAX_QUORUM_LOST", "MAX_QUORUM_WRITES", "checks"]

LOSSLESS_FLEET: Final = 1_000
"""Up to this many environments a run without a quorum loses no conditional write."""
MAX_QUORUM_WRITES: Final = 20
MAX_QUORUM_LOST: Final = 10
"""Issue 8's goal for a quorum at 10,000 environments x 10 requests/s, per outage."""


def checks(result: Result) -> list[tuple[bool, str]]:
    """``(passed, what)`` for each guarantee; figures are per outage, recovery included."""
    tally, p = result.tally, result.p
    quorum = p.config.fleet_minimum_reporters > 1
    found: list[tuple[bool, str]] = []
    if quorum:
        writes = tally.cond_won + tally.cond_lost
        found.append(
            (
                writes <= MAX_QUORUM_WRITES,
                f"at most {MAX_QUORUM_WRITES} store writes per outage (got {writes})",
            )
        )
    if quorum or p.envs > LOSSLESS_FLEET:
        # Beyond a thousand environments, processes crossing the threshold within one round
        # trip of the first race its trip write (a few lost trips, nothing else).
        found.append(
            (
                tally.cond_lost <= MAX_QUORUM_LOST,
                f"at most {MAX_QUORUM_LOST} lost writes per outage (got {tally.cond_lost})",
            )
        )
    else:
        found.append((tally.cond_lost == 0, f"no lost conditional writes (got {tally.cond_lost})"))
    found += [
        (
            result.max_probes_in_flight <= 1,
            f"at most one probe in flight (got {result.max_probes_in_flight})",
        ),
        (len(tally.trips) <= 1, f"at most one trip persisted per outage (got {len(tally.trips)})"),
    ]
    if p.shape.kind == SICK and quorum:
        found.append(
            (
                not tally.trips,
                f"one sick environment does not trip the fleet (got {len(tally.trips)} trips)",
            )
        )
    return found

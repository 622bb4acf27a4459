"""Fleet quorum: a circuit opens fleet-wide only when enough processes report that their rules
fired. Pure: the record in, the record to write out.

A report is ``(owner, at)``. Every time in a record is on the clock of the record's one writer,
so a report's age is ``updated_at - at`` (the writer's offset cancels) plus how long the record
has existed since its write. A writer stores the reports it carries forward re-dated on its own
clock (``now - age``).

How long the record has existed is at least how long the reader has held it (its monotonic
clock, ``elapsed``). A reader that has just started, or that did not read the circuit for an
hour, has held it for no time at all, and would count an hour-old report as fresh. So the
reader's wall clock is also consulted, in one direction only: ``now - updated_at`` can make a
report *older* (expired), never younger than ``elapsed`` says. A reader whose clock runs ahead
can therefore only ignore reports (its own still counts, and the next reporter's clock
decides again); a reader whose clock lags the writer's by ``s`` seconds, and that has not
watched the record, may count a report up to ``s`` seconds past its window. No clock, however
wrong, can make a report count longer than the reader has itself watched it plus the window.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from fleetbreaker import _overrides as overrides
from fleetbreaker._limits import MAX_PAYLOAD_BYTES
from fleetbreaker._protocol import QUORUM, Cause, CircuitState, Record, trip
from fleetbreaker.stores.base import encode_payload

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = ["live_reports", "report"]


def live_reports(
    record: Record, *, elapsed: float, window: float, now: float | None = None
) -> dict[str, float]:
    """The reporters of ``record`` whose report is younger than ``window`` seconds, each with
    the age of its newest report, for a reader that has held the record ``elapsed`` seconds
    and whose wall clock reads ``now`` (module docstring: it can only age a report)."""
    ages: dict[str, float] = {}
    if record.state is not CircuitState.CLOSED:
        return ages
    held = max(elapsed, 0.0)
    if now is not None:
        held = max(held, now - record.updated_at)
    for owner, at in record.reports:
        # A report dated after its record (a foreign writer) is as young as the record.
        age = max(record.updated_at - at, 0.0) + held
        if age < window and age < ages.get(owner, window):
            ages[owner] = age
    return ages


def report(
    record: Record,
    *,
    owner: str,
    now: float,
    elapsed: float,
    config: Config,
    failures: int,
    period: float,
    cause: Cause,
) -> Record | None:
    """Add ``owner``'s report to a closed ``record``; the trip instead when it completes the
    quorum (``fleet_minimum_reporters`` distinct live reporters). ``None`` if not closed, or
    while an operator's override is in force.

    The record keeps at most ``fleet_minimum_reporters - 1`` reports (the youngest): one more
    makes the quorum, and its reporter writes the trip rather than its report. It also keeps
    no more than fit in ``MAX_PAYLOAD_BYTES``, and always the reporter's own.
    """
    if record.state is not CircuitState.CLOSED or overrides.remaining(
        record, elapsed=elapsed, now=now
    ):
        return None  # (an operator's override: nothing trips, nobody reports)
    needed = config.fleet_minimum_reporters
    others = live_reports(record, elapsed=elapsed, window=config.effective_report_window, now=now)
    others.pop(owner, None)
    if len(others) + 1 >= needed:
        return trip(
            record,
            now=now,
            failures=failures,
            config=config,
            owner=owner,
            period=period,
            cause=cause if needed == 1 else replace(cause, rule=QUORUM),
        )
    # Fewer than needed - 1 others here (one more would have made the quorum): all are kept,
    # youngest first, so that the payload bound below drops the oldest.
    kept = sorted(others.items(), key=lambda item: item[1])
    # A report older than this writer's clock reading (a broken clock, set back to 0) cannot be
    # dated on it: dropped, never made younger than it is nor dated before 0.
    carried = [(other, now - age) for other, age in kept if age <= now]
    while True:
        new = replace(
            record,
            epoch=record.epoch + 1,
            episode=record.episode_id,
            reports=(*carried, (owner, now)),
            updated_at=now,
            expires_at=now + config.record_ttl,
        )
        # Owners JSON escapes (12 bytes for some characters) can outgrow what a store reads
        # back, and an unreadable record loses every report: the oldest go first.
        # (Measured without the history, which gives way to reports: _overrides.fitted.)
        shown = replace(new, history=())
        if not carried or len(encode_payload(shown).encode()) <= MAX_PAYLOAD_BYTES:
            return new
        carried.pop()

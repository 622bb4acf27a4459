"""A fleet of processes x threads sharing one store: one trip, one probe, closed by N probes."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from fleetbreaker import CircuitState
from tests.stores import fleet_worker as fw
from tests.stores.conftest import Harness

YEAR = 365 * 24 * 3600.0
SKEWS = (30.0, -30.0, 300.0, -300.0, 10 * YEAR, -10 * YEAR)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("processes", "threads"), [(4, 8)], ids=["4x8"])
def test_fleet_trips_once_probes_one_at_a_time_and_closes(
    fleet_harness: Harness, processes: int, threads: int
) -> None:
    """Processes x threads on one circuit: exactly one of each transition, one probe in flight."""
    run_fleet(fleet_harness, processes, threads)


@pytest.mark.timeout(180)
def test_fleet_with_skewed_clocks_keeps_every_period(fleet_harness: Harness) -> None:
    """Six processes whose wall clocks are off by +-30 s, +-5 min and +-10 years: one probe in
    flight (none taken over while live), the first probe no sooner than recovery_timeout
    after the trip and no later than that plus a cache period and the reservation."""
    times = run_fleet(fleet_harness, len(SKEWS), 2, skews=SKEWS, probe_timeout=20)
    waited = times[fw.FIRST_CLAIM_AT] - times[fw.TRIPPED_AT]
    assert 10 <= waited <= 10 + 5 + 1 + 0.5, times


def run_fleet(
    fleet_harness: Harness,
    processes: int,
    threads: int,
    *,
    skews: tuple[float, ...] = (),
    probe_timeout: float = 1000,
) -> list[float]:
    """Run the fleet through one outage and recovery; check every transition happened once."""
    assert fleet_harness.factory is not None
    ctx = multiprocessing.get_context("spawn")
    offset = ctx.Value("d", 0.0)
    fleet = fw.Fleet(
        factory=fleet_harness.factory,
        clock=fw.SharedClock(offset),
        counters=ctx.Array("i", 8),
        barrier=ctx.Barrier(processes * threads + 1),
        done=ctx.Event(),
        threads=threads,
        times=ctx.Array("d", 2),
        skews=skews,
        probe_timeout=probe_timeout,
    )
    workers = [ctx.Process(target=fw.run_worker, args=(fleet, i)) for i in range(processes)]
    for p in workers:
        p.start()
    try:
        fleet.barrier.wait(timeout=60)  # everyone ready: phase 1 (outage)
        fleet.barrier.wait(timeout=60)  # every thread has been refused
        assert fleet.counters[fw.TRIPS] == 1
        with offset.get_lock():
            offset.value += 10  # recovery_timeout passes
        fleet.barrier.wait(timeout=60)  # phase 2 (healed)
        observer = fleet_harness.factory()
        idle = threading.Event()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            record = observer.load("fleet", consistent=True)
            if record is not None and record.state is CircuitState.CLOSED:
                break
            with offset.get_lock():
                offset.value += 0.05  # time passes: views expire, the fleet re-reads
            idle.wait(0.002)
        fleet.done.set()
        observer.close()
    finally:
        fleet.done.set()
        for p in workers:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in workers] == [0] * processes
    counters = [fleet.counters[i] for i in range(8)]
    assert counters[fw.TRIPS] == 1, counters
    assert counters[fw.CLAIMS] == 1, counters
    assert counters[fw.CLOSES] == 1, counters
    assert counters[fw.REOPENS] == 0, counters
    assert counters[fw.MAX_IN_FLIGHT] == 1, counters
    assert counters[fw.PROBES] == 3, counters
    assert fleet.times is not None
    return [fleet.times[i] for i in range(2)]

"""A fleet of processes x threads sharing one store: one trip, one probe, closed by N probes."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from fleetbreaker import CircuitState
from tests.stores import fleet_worker as fw
from tests.stores.conftest import Harness


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("processes", "threads"), [(4, 8)], ids=["4x8"])
def test_fleet_trips_once_probes_one_at_a_time_and_closes(
    fleet_harness: Harness, processes: int, threads: int
) -> None:
    """Processes x threads on one circuit: exactly one of each transition, one probe in flight."""
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
    )
    workers = [ctx.Process(target=fw.run_worker, args=(fleet,)) for _ in range(processes)]
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

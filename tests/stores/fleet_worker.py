"""A worker process of a simulated fleet, for the multi-process tests (spawned, so picklable)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from typing import Any

from fleetbreaker import CircuitBreaker, CircuitInfo, CircuitState, CircuitTransition, Config, Store

# Indexes into the shared counters array.
IN_FLIGHT, MAX_IN_FLIGHT, PROBES, REFUSALS, TRIPS, CLAIMS, CLOSES, REOPENS = range(8)
# Indexes into the shared times array: the fake clock's offset at each transition.
TRIPPED_AT, FIRST_CLAIM_AT = range(2)
TRANSITION_SLOTS = {
    ("closed", "open"): TRIPS,
    ("open", "half_open"): CLAIMS,
    ("half_open", "closed"): CLOSES,
    ("half_open", "open"): REOPENS,
}
REFUSED = "refused"


class SharedClock:
    """A fake clock every process of the fleet reads; only the test's parent moves it.

    ``skew`` sets this process's wall clock off the fleet's (as a host's clock can be), and
    ``mono_base`` its monotonic clock's origin (which no two processes share).
    """

    def __init__(
        self, offset: Synchronized[float], *, skew: float = 0.0, mono_base: float = 1000.0
    ) -> None:
        self.offset = offset
        self.start = time.time() + skew
        self.mono_base = mono_base

    def wall(self) -> float:
        return self.start + self.offset.value

    def monotonic(self) -> float:
        return self.mono_base + self.offset.value

    def skewed(self, skew: float, mono_base: float) -> SharedClock:
        return SharedClock(self.offset, skew=skew, mono_base=mono_base)


@dataclass
class Fleet:
    factory: Callable[[], Store]
    clock: SharedClock
    counters: SynchronizedArray[int]
    barrier: Any  # multiprocessing Barrier
    done: Any  # multiprocessing Event
    threads: int
    times: SynchronizedArray[float] | None = None
    skews: tuple[float, ...] = ()
    probe_timeout: float = 1000


def bump(counters: SynchronizedArray[int], slot: int, by: int = 1) -> int:
    with counters.get_lock():
        counters[slot] += by
        return counters[slot]


def run_worker(fleet: Fleet, index: int = 0) -> None:
    """Phase 1: fail until refused. Phase 2: call a healed downstream until told to stop."""
    store = fleet.factory()
    counters = fleet.counters
    clock = fleet.clock
    if fleet.skews:
        clock = clock.skewed(fleet.skews[index % len(fleet.skews)], mono_base=1000.0 * index)

    def on_transition(t: CircuitTransition) -> None:
        slot = TRANSITION_SLOTS.get((t.from_state.value, t.to_state.value))
        first = slot is not None and bump(counters, slot) == 1
        if first and fleet.times is not None and slot in (TRIPS, CLAIMS):
            fleet.times[TRIPPED_AT if slot == TRIPS else FIRST_CLAIM_AT] = clock.offset.value

    def refuse(*_a: object, circuit: CircuitInfo) -> str:
        bump(counters, REFUSALS)
        return REFUSED

    breaker = CircuitBreaker(
        "fleet",
        store=store,
        config=Config(
            failure_threshold=5,
            recovery_timeout=10,
            success_threshold=3,
            probe_timeout=fleet.probe_timeout,
        ),
        clock=clock,
        on_transition=on_transition,
        on_circuit_open=refuse,
    )
    idle = threading.Event()

    def failing() -> None:
        raise ConnectionError("downstream down")

    def healed() -> str:
        record = store.load("fleet", consistent=True)
        if record is None or record.state is CircuitState.CLOSED:
            return "ok"
        with counters.get_lock():
            counters[IN_FLIGHT] += 1
            counters[PROBES] += 1
            counters[MAX_IN_FLIGHT] = max(counters[MAX_IN_FLIGHT], counters[IN_FLIGHT])
            seen = counters[REFUSALS]
        # Hold the probe until some other caller in the fleet has been refused meanwhile.
        deadline = time.monotonic() + 2
        while counters[REFUSALS] == seen and time.monotonic() < deadline:
            idle.wait(0.001)
        bump(counters, IN_FLIGHT, -1)
        return "probed"

    def thread_main() -> None:
        fleet.barrier.wait()
        while True:
            try:
                if breaker.call(failing) == REFUSED:
                    break
            except ConnectionError:
                pass
        fleet.barrier.wait()  # end of phase 1
        fleet.barrier.wait()  # start of phase 2
        while not fleet.done.is_set():
            if breaker.call(healed) == "probed":
                return  # each thread probes at most once: every probe is a different thread
            idle.wait(0.001)

    workers = [threading.Thread(target=thread_main) for _ in range(fleet.threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    store.close()

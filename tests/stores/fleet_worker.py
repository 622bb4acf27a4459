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
TRANSITION_SLOTS = {
    ("closed", "open"): TRIPS,
    ("open", "half_open"): CLAIMS,
    ("half_open", "closed"): CLOSES,
    ("half_open", "open"): REOPENS,
}
REFUSED = "refused"


class SharedClock:
    """A fake clock every process of the fleet reads; only the test's parent moves it."""

    def __init__(self, offset: Synchronized[float]) -> None:
        self.offset = offset
        self.start = time.time()

    def wall(self) -> float:
        return self.start + self.offset.value

    def monotonic(self) -> float:
        return 1000.0 + self.offset.value


@dataclass
class Fleet:
    factory: Callable[[], Store]
    clock: SharedClock
    counters: SynchronizedArray[int]
    barrier: Any  # multiprocessing Barrier
    done: Any  # multiprocessing Event
    threads: int


def bump(counters: SynchronizedArray[int], slot: int, by: int = 1) -> int:
    with counters.get_lock():
        counters[slot] += by
        return counters[slot]


def run_worker(fleet: Fleet) -> None:
    """Phase 1: fail until refused. Phase 2: call a healed downstream until told to stop."""
    store = fleet.factory()
    counters = fleet.counters

    def on_transition(t: CircuitTransition) -> None:
        slot = TRANSITION_SLOTS.get((t.from_state.value, t.to_state.value))
        if slot is not None:
            bump(counters, slot)

    def refuse(*_a: object, circuit: CircuitInfo) -> str:
        bump(counters, REFUSALS)
        return REFUSED

    breaker = CircuitBreaker(
        "fleet",
        store=store,
        config=Config(
            failure_threshold=5, recovery_timeout=10, success_threshold=3, probe_timeout=1000
        ),
        clock=fleet.clock,
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

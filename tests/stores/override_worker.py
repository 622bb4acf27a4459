"""A worker process for the multi-process override test (spawned, so picklable): one breaker
on the shared store and the shared fake clock, calling once per step the parent sets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetbreaker import CircuitBreaker, CircuitInfo, Config, Store
from tests.stores.fleet_worker import SharedClock

ADMITTED = "admitted"


@dataclass
class Steps:
    factory: Callable[[], Store]
    clock: SharedClock
    barrier: Any  # multiprocessing Barrier: one call per step, in step with the parent
    results: Any  # multiprocessing Queue of (worker, step, outcome)
    steps: int
    max_age: float


def run(steps: Steps, index: int) -> None:
    """Call once per step; report ADMITTED or the refusal's override reason."""

    def refuse(*_a: object, circuit: CircuitInfo) -> str:
        return f"refused: {circuit.override.reason if circuit.override else 'no override'}"

    breaker = CircuitBreaker(
        "ops",
        store=steps.factory(),
        config=Config(local_cache_max_age=steps.max_age),
        clock=steps.clock.skewed(0.0, mono_base=1000.0 * (index + 1)),
        on_circuit_open=refuse,
    )
    for step in range(steps.steps):
        steps.barrier.wait(timeout=60)
        steps.results.put((index, step, breaker.call(lambda: ADMITTED)))
        steps.barrier.wait(timeout=60)

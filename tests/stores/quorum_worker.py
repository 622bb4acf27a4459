"""A process of a fleet under quorum, for the multi-process tests of ``test_quorum`` (spawned, so
picklable): the parent hands it one step at a time and reads every outcome from a queue.

Messages on ``results``: ``("transition", index, from, to, rule)`` for each transition this
process persisted (its ``on_transition`` hook), ``("step", index, action, outcome, info)`` after
each step, and ``("done", index)`` last. A process's messages arrive in the order it sent them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitTransition, Config, Store
from tests.stores.fleet_worker import SharedClock

NAME = "quorum"
STEP_TIMEOUT = 60.0

# Steps: what the parent asks a process to do next.
SICK = "sick"  # fail until this process's rules fire, then make one more call
CALL = "call"  # one call to a healthy downstream
# Outcomes of a step's last call.
CALLED, REFUSED = "called", "refused"


class RetryLaterError(ConnectionError):
    """A downstream failure that says when to come back (a 429 or 503 with Retry-After)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.retry_after = seconds


def retry_after_of(failure: object) -> float | None:
    """The ``retry_after`` hook of these tests: the hint a failure carries, if any."""
    return getattr(failure, "retry_after", None)


@dataclass(frozen=True)
class Worker:
    """One process of the fleet: its store, clock, settings, and the parent's handles."""

    factory: Callable[[], Store]
    index: int
    clock: SharedClock
    config: dict[str, Any]  # Config's keywords: the Config is built in the process
    steps: tuple[str, ...]
    go: Any  # multiprocessing Event: the parent's "take your next step"
    results: Any  # multiprocessing Queue


def down() -> str:
    raise ConnectionError("downstream down")


def up() -> str:
    return CALLED


def run_worker(worker: Worker) -> None:
    """Take each step when the parent says so; report every outcome and transition."""
    store = worker.factory()
    results, index = worker.results, worker.index

    def on_transition(t: CircuitTransition) -> None:
        results.put(("transition", index, t.from_state.value, t.to_state.value, t.rule))

    config = Config(**worker.config)
    breaker = CircuitBreaker(
        NAME, store=store, config=config, clock=worker.clock, on_transition=on_transition
    )
    try:
        for action in worker.steps:
            if not worker.go.wait(timeout=STEP_TIMEOUT):
                raise AssertionError(f"process {index} was never told to take its {action} step")
            worker.go.clear()
            if action == SICK:
                assert config.failure_threshold is not None
                for _ in range(config.failure_threshold):
                    try:
                        breaker.call(down)
                    except ConnectionError:
                        pass
            try:
                outcome = breaker.call(up)
            except CircuitOpenError:
                outcome = REFUSED
            results.put(("step", index, action, outcome, breaker.info()))
    finally:
        results.put(("done", index))
        store.close()

"""The plain hot path and the consecutive count: a view with a counted failure is not hot, so
the success that ends the run is counted, on every entry point."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fleetbreaker import CircuitBreaker, CircuitState, Config, MemoryStore
from fleetbreaker._protocol import ABSENT
from fleetbreaker.testing import FakeClock


class Boom(Exception):
    """The downstream's failure."""


def test_a_success_through_the_decorator_ends_the_run() -> None:
    """failure_threshold=2 with the decorator: fail, ok, fail does not trip; fail, fail does."""
    breaker = CircuitBreaker("run", config=Config(failure_threshold=2), clock=FakeClock())
    outcome = {"fail": False}

    @breaker
    def call() -> str:
        if outcome["fail"]:
            raise Boom
        return "ok"

    for fail in (True, False, True):
        outcome["fail"] = fail
        if fail:
            with pytest.raises(Boom):
                call()
        else:
            assert call() == "ok"
    assert breaker.state is CircuitState.CLOSED
    outcome["fail"] = True
    with pytest.raises(Boom):
        call()
    assert breaker.state is CircuitState.OPEN


def test_a_counted_failure_cools_the_view_and_a_success_heats_it() -> None:
    """After a counted failure the view is off the hot path; the next success puts it back."""
    breaker = CircuitBreaker("cool", config=Config(failure_threshold=3), clock=FakeClock())
    breaker.call(lambda: None)
    assert breaker._view.hot_until > -math.inf

    def boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker._view.counting is True
    assert breaker._view.hot_until == -math.inf
    breaker.call(lambda: None)
    assert breaker._view.counting is False
    assert breaker._view.hot_until > -math.inf


def test_a_new_closed_episode_starts_with_no_failure_counted() -> None:
    """A counted failure of the old episode does not cool a view of a new one."""
    store, clock = MemoryStore(), FakeClock()
    config = Config(failure_threshold=3, local_cache_max_age=1)
    breaker = CircuitBreaker("episode", store=store, config=config, clock=clock)
    breaker.call(lambda: None)

    def boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker._failures == 1
    # Another process's trip and recovery: the record is closed again, at a later epoch.
    current = store.load("episode")
    epoch = 0 if current is None else current.epoch
    new = replace(ABSENT, epoch=epoch + 3, updated_at=clock.wall(), expires_at=clock.wall() + 999)
    assert store.compare_and_set("episode", None if current is None else epoch, new)
    clock.advance(2)  # stale: the next call re-reads
    breaker.call(lambda: None)
    assert breaker._view.record.epoch == epoch + 3
    assert breaker._failures == 0
    assert breaker._view.counting is False
    assert breaker._view.hot_until > -math.inf

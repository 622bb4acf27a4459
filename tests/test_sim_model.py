"""The simulator's pieces that decide what a read sees and what a run counts: a key's history
against a plain reference, the checks' verdicts, and the figures' keys."""

from __future__ import annotations

import random

import pytest

from fleetbreaker import Config
from fleetbreaker._sim.checks import checks
from fleetbreaker._sim.cost import Prices
from fleetbreaker._sim.engine import FLEETBREAKER, POWERTOOLS, simulate
from fleetbreaker._sim.figures import RUN_KEYS, run_figures
from fleetbreaker._sim.model import History, Params, Shape


def _reference(writes: list[tuple[float, int]], at: float) -> tuple[int, bool]:
    value = 0
    for written, later in writes:
        if written > at:
            return value, False
        value = later
    return value, True


@pytest.mark.parametrize("seed", range(20))
def test_history_reads_the_value_as_it_stood(seed: int) -> None:
    """as_of(at) is the last value written at or before ``at``, and says whether it is the
    current one, for reads at any time a caller may still ask for."""
    rng = random.Random(seed)
    history: History[int] = History(0)
    writes: list[tuple[float, int]] = []
    now = 0.0
    for step in range(300):
        now += rng.expovariate(50)
        if rng.random() < 0.3:
            writes.append((now, step))
            history.write(now, step)
        staleness = rng.choice([0.0, 0.005, 0.05])
        at = now - staleness - rng.choice([0.0, 0.01])
        assert history.as_of(at, oldest=now - 0.06) == _reference(writes, at)
        assert history.as_of(now, oldest=now - 0.06) == _reference(writes, now)


def _params(**changes: object) -> Params:
    base: dict[str, object] = {
        "envs": 30,
        "rps": 5.0,
        "duration": 20.0,
        "outage_start": 4.0,
        "heal": 9.0,
        "rtt": 0.005,
        "latency": 0.02,
        "seed": 3,
        "config": Config(recovery_timeout=5),
    }
    base.update(changes)
    return Params(**base)  # type: ignore[arg-type]


def test_figures_have_the_documented_keys_in_order() -> None:
    """run_figures gives exactly RUN_KEYS, in order, for both protocols."""
    for protocol in (FLEETBREAKER, POWERTOOLS):
        figures = run_figures(simulate(protocol, _params()), Prices())
        assert tuple(figures) == RUN_KEYS


def test_checks_fail_a_run_that_breaks_a_guarantee() -> None:
    """The Powertools model's run fails fleetbreaker's checks (duplicate trips); a
    fleetbreaker run passes them."""
    ours = checks(simulate(FLEETBREAKER, _params()))
    assert ours
    assert all(passed for passed, _ in ours), ours
    theirs = checks(simulate(POWERTOOLS, _params()))
    failed = [text for passed, text in theirs if not passed]
    assert any("at most one trip persisted" in text for text in failed), theirs


def test_sick_shape_and_quorum() -> None:
    """One sick environment trips a consecutive-rule fleet but not a quorum of three."""
    sick = Shape("sick")
    consecutive = simulate(FLEETBREAKER, _params(shape=sick))
    assert consecutive.tally.trips
    quorum = Config(
        failure_threshold=None,
        failure_rate_threshold=0.25,
        minimum_number_of_calls=5,
        sliding_window_size=10,
        fleet_minimum_reporters=3,
        recovery_timeout=5,
    )
    held = simulate(FLEETBREAKER, _params(shape=sick, config=quorum, policy="quorum"))
    assert not held.tally.trips
    assert held.held_envs == {0}
    assert all(passed for passed, _ in checks(held))

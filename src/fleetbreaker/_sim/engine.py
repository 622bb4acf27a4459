"""The discrete-event loop: seeded Poisson arrivals per environment, one call at a time each.

Environments start cold at random times in the warm-up; a request arriving while its
environment is busy waits for it. A call's completion is an event at its start plus its latency
(on the environment's own clock, which store round trips have moved on), when the protocol
settles it.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from fleetbreaker import CircuitState
from fleetbreaker._sim.fleet import HELD, PROBE, REJECT, FleetbreakerSubject, Subject
from fleetbreaker._sim.model import SICK, SICK_ENV, EnvClock, Params, SimTime, downstream_model
from fleetbreaker._sim.powertools import PowertoolsSubject
from fleetbreaker._sim.store import Tally

__all__ = ["FLEETBREAKER", "POWERTOOLS", "Result", "simulate", "simulate_each"]

FLEETBREAKER: Final = "fleetbreaker"
POWERTOOLS: Final = "powertools"

SubjectFactory = Callable[[SimTime, Sequence[EnvClock], Tally, Params], Subject]
FACTORIES: Final[dict[str, SubjectFactory]] = {
    FLEETBREAKER: FleetbreakerSubject,
    POWERTOOLS: PowertoolsSubject,
}


@dataclass
class Result:
    """What one protocol did through one run."""

    protocol: str
    p: Params
    tally: Tally
    elapsed: float = 0.0
    calls: int = 0
    refused: int = 0
    downstream_calls: int = 0
    leaked: int = 0  # closed-path calls that reached an affected downstream after the 1st trip
    outage_probes: int = 0
    probes: int = 0
    max_probes_in_flight: int = 0
    refused_after_heal: int = 0
    last_refusal: float | None = None
    fleet_admits_at: float | None = None  # when the last environment admitted a call
    bad_calls: int = 0  # calls that reached an affected downstream during the outage
    bad_failed: int = 0  # of them, calls that failed (or were slow)
    refused_in_outage: int = 0
    refused_healthy: int = 0  # calls refused in environments the shape leaves healthy
    held: int = 0  # calls refused by an environment's own hold (quorum not reached)
    held_envs: set[int] = field(default_factory=set)
    first_hold: float | None = None
    admitted_by_second: list[int] = field(default_factory=list)
    refused_by_second: list[int] = field(default_factory=list)

    @property
    def closed_at(self) -> float | None:
        """When the first CLOSED record was written after the heal."""
        heal = self.p.heal
        for at, was, now in self.tally.transitions:
            if at >= heal and was is CircuitState.HALF_OPEN and now is CircuitState.CLOSED:
                return at
        return None

    @property
    def first_trip(self) -> float | None:
        """When the first trip was persisted."""
        return self.tally.trips[0] if self.tally.trips else None


def simulate(protocol: str, p: Params) -> Result:
    """Run ``protocol`` (``FLEETBREAKER`` or ``POWERTOOLS``) through the whole run ``p``."""
    started = time.perf_counter()
    sim = SimTime()
    clocks = [EnvClock(env) for env in range(p.envs)]
    seconds = math.ceil(p.duration) + 2
    tally = Tally(seconds)
    subject = FACTORIES[protocol](sim, clocks, tally, p)
    result = Result(protocol, p, tally)
    admitted_by_second = result.admitted_by_second = [0] * seconds
    refused_by_second = result.refused_by_second = [0] * seconds
    last_second = seconds - 1
    rng = random.Random(p.seed)
    answer = downstream_model(p)
    outage_start, heal, rps, duration, latency0 = (
        p.outage_start,
        p.heal,
        p.rps,
        p.duration,
        p.latency,
    )
    only_sick = p.shape.kind == SICK
    held_envs = result.held_envs

    busy = [False] * p.envs
    pending = [0] * p.envs
    kind_of = [REJECT] * p.envs
    failing_of = [False] * p.envs
    first_admit_after_close: list[float | None] = [None] * p.envs
    # Events: (time, sequence, env * 2 + is_completion); the sequence makes ties deterministic.
    heap: list[tuple[float, int, int]] = []
    seq = 0
    for env in range(p.envs):
        heap.append((rng.uniform(0.0, p.warmup), seq, env * 2))
        seq += 1
    heapq.heapify(heap)
    # The loop runs millions of times: everything it touches is a local name, and its counts
    # are local integers written into the result at the end.
    heappush, heappop, random_, log = heapq.heappush, heapq.heappop, rng.random, math.log
    enter, settle, trips = subject.enter, subject.exit, tally.trips
    in_flight = max_in_flight = calls = refused = downstream_calls = bad_calls = bad_failed = 0
    probes = outage_probes = leaked = held = refused_in_outage = refused_healthy = 0
    refused_after_heal = 0
    first_trip: float | None = None
    closed_at: float | None = None
    last_refusal: float | None = None
    first_hold: float | None = None

    while heap:
        now, _, code = heappop(heap)
        env = code >> 1
        sim.now = now
        clock = clocks[env]
        if clock.t < now:  # noqa: PLR1730 - a branch costs less than a call to max()
            clock.t = now
        sim.current = clock
        if code & 1 == 0:  # a request arrives
            # random.expovariate(rps), inlined: the same draw from the same generator.
            nxt = now - log(1.0 - random_()) / rps
            if nxt < duration:
                heappush(heap, (nxt, seq, code))
                seq += 1
            if busy[env]:
                pending[env] += 1
                continue
        else:  # the downstream call in progress in env returns
            settle(env, failing_of[env])
            busy[env] = False
            if kind_of[env] == PROBE:
                in_flight -= 1
            if not pending[env]:
                continue
            pending[env] -= 1

        # A call starts in env.
        kind = enter(env)
        calls += 1
        if first_trip is None and trips:
            first_trip = trips[0]
        if closed_at is None and now >= heal:
            closed_at = result.closed_at
        second = int(now)
        if second > last_second:  # noqa: PLR1730 - as above
            second = last_second
        if kind in (REJECT, HELD):
            refused += 1
            refused_by_second[second] += 1
            if kind == HELD:
                held += 1
                held_envs.add(env)
                if first_hold is None:
                    first_hold = now
            if outage_start <= now < heal:
                refused_in_outage += 1
            if only_sick and env != SICK_ENV:  # p.affects(env), without a call
                refused_healthy += 1
            if now >= heal:
                refused_after_heal += 1
                last_refusal = now
            continue
        affected, fails, latency = answer(env, now)
        downstream_calls += 1
        admitted_by_second[second] += 1
        if affected:
            bad_calls += 1
            bad_failed += fails or latency > latency0
        if kind == PROBE:
            probes += 1
            outage_probes += affected
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
        else:
            if affected and first_trip is not None:
                leaked += 1
            if closed_at is not None and first_admit_after_close[env] is None:
                first_admit_after_close[env] = now
        busy[env] = True
        kind_of[env] = kind
        failing_of[env] = fails
        heappush(heap, (clock.t + latency, seq, code | 1))
        seq += 1

    result.calls, result.refused, result.downstream_calls = calls, refused, downstream_calls
    result.bad_calls, result.bad_failed, result.leaked = bad_calls, bad_failed, leaked
    result.probes, result.outage_probes, result.max_probes_in_flight = (
        probes,
        outage_probes,
        max_in_flight,
    )
    result.held, result.first_hold, result.refused_in_outage = held, first_hold, refused_in_outage
    result.refused_healthy, result.refused_after_heal = refused_healthy, refused_after_heal
    result.last_refusal = last_refusal
    admitted = [at for at in first_admit_after_close if at is not None]
    result.fleet_admits_at = max(admitted) if len(admitted) == p.envs else None
    result.elapsed = time.perf_counter() - started
    return result


def _quiet_simulate(protocol: str, p: Params) -> Result:
    """``simulate`` in a worker process, whose library logs would interleave with the report."""
    logging.getLogger("fleetbreaker").setLevel(logging.ERROR)
    return simulate(protocol, p)


def simulate_each(runs: Sequence[tuple[str, Params]], *, jobs: int) -> Iterator[Result]:
    """Each ``(protocol, params)`` run's result, in order; up to ``jobs`` runs at once, each in
    a process of its own (runs share nothing, and one run is single-threaded Python)."""
    if jobs <= 1 or len(runs) <= 1:
        for protocol, p in runs:
            yield simulate(protocol, p)
        return
    protocols, params = zip(*runs, strict=True)
    with ProcessPoolExecutor(max_workers=min(jobs, len(runs))) as pool:
        yield from pool.map(_quiet_simulate, protocols, params)

"""A compact model of the Powertools 3.37.0 circuit breaker protocol, for ``--compare``.

Written from the source of aws-lambda-powertools 3.37.0 (``utilities/circuit_breaker``);
Powertools is not imported. A per-environment cached record trusted until
``int(now) + local_cache_max_age``, refreshed by an eventually consistent read; consecutive
failures counted per environment and, at the threshold, an *unconditional* put of OPEN
(``opened_at = int(now)``) by every environment that crosses it; on every invocation whose
cached record is OPEN and due (``int(now) >= opened_at + recovery_timeout``), a conditional put
claiming the probe (state OPEN, no owner, same ``opened_at``; or an expired lease), with no
re-read before it and the cache left as it was when the claim is lost; the winner's cached
HALF_OPEN record names it as owner, so its following invocations are probes;
``success_threshold`` consecutive probe successes in that environment write CLOSED, a probe
failure writes OPEN again (both unconditional updates). Powertools counts whole seconds, so
the config's ``recovery_timeout`` and ``local_cache_max_age`` are rounded up to them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from fleetbreaker import CircuitState
from fleetbreaker._sim.fleet import ADMIT, PROBE, REJECT
from fleetbreaker._sim.model import WALL0, EnvClock, History, Params, SimTime
from fleetbreaker._sim.store import Tally

__all__ = ["PowertoolsSubject"]


@dataclass(frozen=True, slots=True)
class PTRecord:
    """The Powertools DynamoDB item (times are whole Unix seconds)."""

    state: CircuitState
    failure_count: int = 0
    opened_at: int | None = None
    owner: str | None = None
    lease_expiry: int | None = None


PT_CLOSED: Final = PTRecord(CircuitState.CLOSED)


class _PTEnv:
    """One environment's module-level Powertools state: its cache and local counters."""

    __slots__ = (
        "cache",
        "cache_expiry",
        "failures",
        "last_observed",
        "owner",
        "probing",
        "successes",
    )

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.cache: PTRecord | None = None
        self.cache_expiry = 0
        self.failures = 0
        self.successes = 0
        self.last_observed: CircuitState | None = None
        self.probing = False


class PowertoolsSubject:
    """The Powertools protocol, one module state per environment, one shared item."""

    def __init__(self, sim: SimTime, clocks: Sequence[EnvClock], tally: Tally, p: Params) -> None:
        threshold = p.config.failure_threshold
        if threshold is None:
            raise ValueError("the Powertools model needs failure_threshold (its only trip rule)")
        self._sim = sim
        self._clocks = clocks
        self._tally = tally
        self._rtt = p.rtt
        self._failure_threshold = threshold
        self._success_threshold = p.config.success_threshold
        self._recovery_timeout = math.ceil(p.config.recovery_timeout)
        self._cache_age = math.ceil(p.config.local_cache_max_age)
        self._item: History[PTRecord | None] = History(None)
        self._envs = [_PTEnv(f"env{i}#owner") for i in range(len(clocks))]

    # The store: an eventually consistent get_item, put_item (conditional or not), update_item.

    def _get(self) -> PTRecord | None:
        sim = self._sim
        self._tally.read(sim.now, consistent=False)
        sim.wait(self._rtt)
        return self._item.as_of(sim.now - self._rtt)[0]

    def _put(self, record: PTRecord, *, claim_opened_at: int | None = None) -> bool:
        sim = self._sim
        now = int(sim.current.wall())  # the condition's :now is taken before the request
        sim.wait(self._rtt)
        current = self._item.current
        won: bool | None = None
        if claim_opened_at is not None:
            won = current is not None and (
                (
                    current.state is CircuitState.OPEN
                    and current.owner is None
                    and current.opened_at == claim_opened_at
                )
                or (
                    current.state is CircuitState.HALF_OPEN
                    and current.lease_expiry is not None
                    and current.lease_expiry <= now
                )
            )
        self._tally.write(sim.now, won=won, claim=claim_opened_at is not None)
        if won is False:
            return False
        self._item.write(sim.now, record)
        old = CircuitState.CLOSED if current is None else current.state
        self._tally.transition(sim.now, old, record.state)
        return True

    # The handler.

    def _now(self, env: int) -> int:
        return int(WALL0 + self._clocks[env].t)  # the environment's int(time.time())

    def _cache(self, env: int, record: PTRecord) -> None:
        state = self._envs[env]
        state.cache = record
        state.cache_expiry = self._now(env) + self._cache_age

    def _get_state(self, env: int) -> PTRecord:
        state = self._envs[env]
        # (self._now(env), inlined: this runs on every call)
        if state.cache is not None and int(WALL0 + self._clocks[env].t) < state.cache_expiry:
            return state.cache
        record = self._get() or PT_CLOSED
        self._cache(env, record)
        return record

    def _try_acquire(self, env: int, opened_at: int) -> bool:
        state = self._envs[env]
        lease = self._now(env) + self._recovery_timeout
        record = PTRecord(
            CircuitState.HALF_OPEN, opened_at=opened_at, owner=state.owner, lease_expiry=lease
        )
        if not self._put(record, claim_opened_at=opened_at):
            return False  # the cache keeps the record that sent us here
        self._cache(env, record)
        state.successes = 0
        return True

    def enter(self, env: int) -> int:
        state = self._envs[env]
        record = self._get_state(env)
        if record.state is CircuitState.CLOSED:
            if state.last_observed not in {None, CircuitState.CLOSED}:
                state.failures = 0
            state.last_observed = CircuitState.CLOSED
            return ADMIT
        state.last_observed = record.state
        if record.state is CircuitState.OPEN:
            opened_at = self._now(env) if record.opened_at is None else record.opened_at
            if self._now(env) >= opened_at + self._recovery_timeout and self._try_acquire(
                env, opened_at
            ):
                state.probing = True
                return PROBE
            return REJECT
        if record.owner == state.owner:
            state.probing = True
            return PROBE
        if (
            record.lease_expiry is not None
            and self._now(env) >= record.lease_expiry
            and self._try_acquire(env, record.opened_at or 0)
        ):
            state.probing = True
            return PROBE
        return REJECT

    def exit(self, env: int, failed: bool) -> None:
        state = self._envs[env]
        if state.probing:
            state.probing = False
            if failed:
                record = PTRecord(CircuitState.OPEN, opened_at=self._now(env))
                self._put(record)
                self._cache(env, record)
                state.successes = 0
                return
            state.successes += 1
            if state.successes >= self._success_threshold:
                state.successes = 0
                state.failures = 0
                self._put(PT_CLOSED)
                self._cache(env, PT_CLOSED)
            return
        if not failed:
            state.failures = 0
            return
        state.failures += 1
        if state.failures >= self._failure_threshold:
            record = PTRecord(
                CircuitState.OPEN, failure_count=state.failures, opened_at=self._now(env)
            )
            state.failures = 0
            self._tally.trips.append(self._sim.now)  # unconditional: every crossing writes
            self._put(record)
            self._cache(env, record)

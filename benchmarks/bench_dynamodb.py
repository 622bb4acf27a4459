"""DynamoDB traffic of a fleet: fleetbreaker's DynamoDBStore beside Powertools' circuit breaker.

Both run the same scenario against one dynalite (a local DynamoDB-compatible server this script
starts and stops), in one table of the shape both use (partition key ``id``, TTL attribute
``expiration``), each under its own circuit name: a fleet of 4 processes x 8 threads calls a
downstream that is healthy, then down for a few recovery windows, then healthy again. Every
DynamoDB request is counted where it leaves boto3 (a botocore event hook on each process's
client), so both libraries are measured the same way:

* healthy: store reads and writes per 10,000 calls (expect no writes, and one read per
  ``local_cache_max_age`` per process);
* outage: the writes that trip the circuit, and the conditional writes that try to claim the
  probe, per recovery window (goal: at most one per process per window) and in all;
* recovery: seconds from the downstream healing to the circuit written closed.

Run: ``.venv/bin/python benchmarks/bench_dynamodb.py`` (about a minute); ``--quick`` is a
smoke run with shorter phases.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_server import DYNALITE_CLI, dynalite

try:
    import boto3
    from aws_lambda_powertools.utilities.circuit_breaker import (
        CircuitBreakerConfig,
        CircuitBreakerOpenError,
        circuit_breaker,
    )
    from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
        CircuitBreakerDynamoDBPersistence,
    )

    from fleetbreaker import CircuitBreaker, CircuitOpenError, Config
    from fleetbreaker.stores.dynamodb import DynamoDBStore
except ImportError as exc:
    sys.exit(
        f"bench_dynamodb: {exc}; install the extras: .venv/bin/pip install -e '.[dynamodb,bench]'"
    )

TABLE = "CircuitBreakerState"
REGION = "us-east-1"
PROCESSES, THREADS = 4, 8
PACE_S = 0.002
"""Each thread makes one call, then waits this long: a fleet of 32 busy callers."""
FAILURE_THRESHOLD, SUCCESS_THRESHOLD, CACHE_S = 5, 3, 5


@dataclass(frozen=True)
class Plan:
    """Phase boundaries (wall clock) shared by every process."""

    start: float
    outage: float
    heal: float
    end: float
    recovery_s: int

    def phase(self, t: float) -> str:
        if t < self.outage:
            return "healthy"
        return "outage" if t < self.heal else "recovery"


@dataclass(frozen=True)
class Request:
    """One DynamoDB request a process made, as classified by its hook."""

    t: float
    pid: int
    kind: str  # read | write | claim
    consistent: bool = False
    conditional: bool = False
    state: str = ""  # for writes: the state written (lower case)
    window: str = ""  # for claims: the open record the claim was conditional on
    ok: bool = True


@dataclass
class ProcessReport:
    pid: int
    requests: list[Request]
    calls: dict[str, collections.Counter[str]]  # phase -> outcome -> count
    failed_at: list[float]  # when calls reached the downstream while it was down

    def to_plain(self) -> Plain:
        """Builtins only: a spawned worker's classes live in ``__mp_main__``, unknown here."""
        requests = [dataclasses.asdict(r) for r in self.requests]
        calls = {phase: dict(c) for phase, c in self.calls.items()}
        return self.pid, requests, calls, self.failed_at

    @classmethod
    def from_plain(cls, plain: Plain) -> ProcessReport:
        pid, requests, calls, failed_at = plain
        counters = {phase: collections.Counter(c) for phase, c in calls.items()}
        return cls(pid, [Request(**r) for r in requests], counters, failed_at)


Plain = tuple[int, list[dict[str, Any]], dict[str, dict[str, int]], list[float]]


def downstream(plan: Plan) -> str:
    if plan.outage <= time.time() < plan.heal:
        raise ConnectionError("downstream is down")
    return "ok"


def _client(endpoint: str) -> Any:
    # Placeholder keys for the local server only: dynalite checks no signature.
    session = boto3.session.Session(
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - a placeholder, never a credential
        region_name=REGION,
    )
    return session.client("dynamodb", endpoint_url=endpoint)


def _classify(library: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    if operation == "GetItem":
        return {"kind": "read", "consistent": bool(params.get("ConsistentRead"))}
    conditional = "ConditionExpression" in params
    values = params.get("ExpressionAttributeValues", {})
    if library == "fleetbreaker":
        record = json.loads(params["Item"]["record"]["S"])
        state = record["state"]
        if state == "half_open" and record["probe_owner"] is not None:
            window = values.get(":expected", {}).get("N", "")
            return {"kind": "claim", "conditional": True, "state": state, "window": window}
        return {"kind": "write", "conditional": conditional, "state": state}
    if operation == "PutItem" and conditional:  # Powertools' probe election
        window = values.get(":expected_opened_at", {}).get("N", "lease-takeover")
        return {"kind": "claim", "conditional": True, "state": "half_open", "window": window}
    if operation == "PutItem":
        return {"kind": "write", "state": params["Item"]["state"]["S"].lower()}
    return {"kind": "write", "state": values[":state"]["S"].lower()}  # UpdateItem


def _count_requests(client: Any, library: str, log: list[Request]) -> None:
    """Log every request this client makes, classified, with its outcome."""

    def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench"] = _classify(library, model.name, params)

    def after(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        info = context.get("bench")
        if info is not None:
            log.append(Request(time.time(), os.getpid(), ok="Error" not in parsed, **info))

    client.meta.events.register("before-parameter-build.dynamodb", before)
    client.meta.events.register("after-call.dynamodb", after)


def _protected(
    library: str, endpoint: str, recovery_s: int, log: list[Request]
) -> Callable[[Plan], str]:
    client = _client(endpoint)
    _count_requests(client, library, log)
    name = f"bench-{library}"
    if library == "fleetbreaker":
        config = Config(
            failure_threshold=FAILURE_THRESHOLD,
            success_threshold=SUCCESS_THRESHOLD,
            recovery_timeout=recovery_s,
            local_cache_max_age=CACHE_S,
        )
        breaker = CircuitBreaker(
            name, store=DynamoDBStore(table_name=TABLE, boto3_client=client), config=config
        )
        return lambda plan: breaker.call(downstream, plan)
    persistence = CircuitBreakerDynamoDBPersistence(table_name=TABLE, boto3_client=client)
    powertools_config = CircuitBreakerConfig(
        failure_threshold=FAILURE_THRESHOLD,
        success_threshold=SUCCESS_THRESHOLD,
        recovery_timeout=recovery_s,
        local_cache_max_age=CACHE_S,
    )
    decorated = circuit_breaker(name=name, persistence_store=persistence, config=powertools_config)
    protected: Callable[[Plan], str] = decorated(downstream)
    return protected


def worker(library: str, endpoint: str, recovery_s: int, queues: tuple[Any, Any, Any]) -> None:
    """One process of the fleet: THREADS callers until the plan ends; reports what it saw."""
    ready, plans, results = queues
    log: list[Request] = []
    call = _protected(library, endpoint, recovery_s, log)
    ready.put(os.getpid())
    plan: Plan = plans.get()
    calls: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failed_at: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        mine: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        while (now := time.time()) < plan.end:
            try:
                call(plan)
                outcome = "ok"
            except ConnectionError:
                outcome = "downstream failed"
                failed_at.append(now)
            except (CircuitOpenError, CircuitBreakerOpenError):
                outcome = "refused"
            mine[plan.phase(now)][outcome] += 1
            time.sleep(PACE_S)
        with lock:
            for phase, counter in mine.items():
                calls[phase].update(counter)

    time.sleep(max(0.0, plan.start - time.time()))  # start together
    threads = [threading.Thread(target=caller) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(ProcessReport(os.getpid(), log, dict(calls), failed_at).to_plain())


@dataclass
class Summary:
    """What one library's fleet did, reduced to the figures printed."""

    rows: dict[str, str] = field(default_factory=dict)
    max_claims_per_process_window: int = 0


def summarize(reports: list[ProcessReport], plan: Plan) -> Summary:
    requests = sorted((r for report in reports for r in report.requests), key=lambda r: r.t)
    calls: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for report in reports:
        for phase, counter in report.calls.items():
            calls[phase].update(counter)
    by_phase: dict[str, list[Request]] = collections.defaultdict(list)
    for r in requests:
        by_phase[plan.phase(r.t)].append(r)
    summary = Summary()
    rows = summary.rows

    healthy, healthy_calls = by_phase["healthy"], sum(calls["healthy"].values())
    per_10k = 10_000 / max(1, healthy_calls)
    reads = sum(r.kind == "read" for r in healthy)
    writes = sum(r.kind != "read" for r in healthy)
    rows["healthy: calls"] = f"{healthy_calls:,}"
    rows["healthy: reads per 10,000 calls"] = f"{reads * per_10k:.2f}"
    rows["healthy: writes per 10,000 calls"] = f"{writes * per_10k:.2f}"
    rows["healthy: reads per process"] = f"{reads / PROCESSES:.2f}"

    down = by_phase["outage"] + by_phase["recovery"]
    first_claim = next((r.t for r in down if r.kind == "claim"), math.inf)
    trip = [r for r in down if r.kind == "write" and r.state == "open" and r.t < first_claim]
    rows["outage: trip writes (won/attempted)"] = f"{sum(r.ok for r in trip)}/{len(trip)}"
    claims = [r for r in down if r.kind == "claim"]
    windows = collections.Counter(r.window for r in claims)
    per_process = collections.Counter((r.window, r.pid) for r in claims)
    summary.max_claims_per_process_window = max(per_process.values(), default=0)
    rows["outage: recovery windows (probes claimed)"] = (
        f"{len(windows)} ({sum(r.ok for r in claims)})"
    )
    if windows:
        mean = len(claims) / len(windows)
        rows["claim writes per window: mean / max"] = f"{mean:.1f} / {max(windows.values())}"
    else:
        rows["claim writes per window: mean / max"] = "-"
    rows["claim writes per window per process: max"] = str(summary.max_claims_per_process_window)
    conditional = [r for r in down if r.conditional]
    rows["outage+recovery: conditional writes (lost)"] = (
        f"{len(conditional)} ({sum(not r.ok for r in conditional)})"
    )
    rows["outage+recovery: unconditional writes"] = str(
        sum(r.kind != "read" and not r.conditional for r in down)
    )
    rows["outage+recovery: reads (consistent)"] = (
        f"{sum(r.kind == 'read' for r in down)} "
        f"({sum(r.kind == 'read' and r.consistent for r in down)})"
    )
    outage_calls = calls["outage"]
    tripped = next((r.t for r in down if r.kind == "write" and r.state == "open" and r.ok), 0.0)
    failed_at = [t for report in reports for t in report.failed_at]
    rows["outage: down -> trip written (s)"] = f"{tripped - plan.outage:.3f}" if tripped else "-"
    rows["outage: calls that reached the downstream"] = f"{outage_calls['downstream failed']:,}"
    rows["  before the trip was written / after"] = (
        f"{sum(t < tripped for t in failed_at)} / {sum(t >= tripped for t in failed_at)}"
    )
    rows["outage: calls refused"] = f"{outage_calls['refused']:,}"
    closed = [
        r.t for r in by_phase["recovery"] if r.kind == "write" and r.state == "closed" and r.ok
    ]
    rows["recovery: heal -> written closed (s)"] = (
        f"{closed[0] - plan.heal:.2f}" if closed else "not closed"
    )
    return summary


@dataclass(frozen=True)
class Phases:
    """Seconds of each phase; ``recovery_timeout`` is the breakers' (whole seconds)."""

    healthy: float
    outage: float
    recovery: float
    recovery_timeout: int


FULL = Phases(healthy=CACHE_S + 1.5, outage=3.5 * 2, recovery=5.0, recovery_timeout=2)
QUICK = Phases(healthy=1.5, outage=2.5, recovery=3.0, recovery_timeout=1)


def run_fleet(library: str, endpoint: str, phases: Phases) -> Summary:
    context = multiprocessing.get_context("spawn")
    queues = (context.Queue(), context.Queue(), context.Queue())  # ready, plans, results
    ready, plans, results = queues
    args = (library, endpoint, phases.recovery_timeout, queues)
    processes = [context.Process(target=worker, args=args) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    for _ in processes:  # every worker has imported everything and built its breaker
        ready.get(timeout=120)
    start = time.time() + 0.2
    outage = start + phases.healthy
    heal = outage + phases.outage
    plan = Plan(start, outage, heal, heal + phases.recovery, phases.recovery_timeout)
    for _ in processes:
        plans.put(plan)
    reports = [
        ProcessReport.from_plain(results.get(timeout=plan.end - time.time() + 60))
        for _ in processes
    ]
    for process in processes:
        process.join(timeout=30)
    if time.time() - plan.end > 30:
        sys.exit(f"bench_dynamodb: the {library} fleet overran its plan; figures would lie")
    return summarize(reports, plan)


def main(argv: list[str] | None = None) -> int:
    # The breakers' own transition logs would interleave with the figures.
    logging.getLogger("fleetbreaker").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (a smoke run)")
    parser.add_argument("--dynalite", type=Path, default=DYNALITE_CLI, help="dynalite's cli.js")
    args = parser.parse_args(argv)
    with dynalite(args.dynalite, "bench_dynamodb") as endpoint:
        table_store = DynamoDBStore(table_name=TABLE, boto3_client=_client(endpoint))
        table_store.create_table()  # id (S) key, TTL on expiration: Powertools' layout too
        phases = QUICK if args.quick else FULL
        fleets = {lib: run_fleet(lib, endpoint, phases) for lib in ("fleetbreaker", "powertools")}
    fb, pt = fleets["fleetbreaker"], fleets["powertools"]
    print(
        f"DynamoDB traffic of {PROCESSES} processes x {THREADS} threads, one call per thread "
        f"every {PACE_S * 1000:g} ms (dynalite; Python {sys.version.split()[0]}).\n"
        f"Phases: healthy {phases.healthy:g} s, downstream down {phases.outage:g} s, healed "
        f"{phases.recovery:g} s; failure_threshold {FAILURE_THRESHOLD}, success_threshold "
        f"{SUCCESS_THRESHOLD}, recovery_timeout {phases.recovery_timeout} s, "
        f"local_cache_max_age {CACHE_S} s."
    )
    width = max(len(key) for key in fb.rows) + 2
    print(f"{'':<{width}}{'fleetbreaker':>16}{'powertools':>16}")
    for key, value in fb.rows.items():
        print(f"{key:<{width}}{value:>16}{pt.rows.get(key, '-'):>16}")
    ok = fb.max_claims_per_process_window <= 1
    verdict = "PASS" if ok else "FAIL"
    print(
        f"{verdict}  goal  fleetbreaker: at most one claim write per process per recovery window "
        f"(max seen {fb.max_claims_per_process_window}; powertools "
        f"{pt.max_claims_per_process_window})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

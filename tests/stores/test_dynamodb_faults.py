"""DynamoDBStore when DynamoDB misbehaves: stopped, frozen, throttling, failing with 5xx.

Every failure is a StoreError, within the client's timeouts and its single attempt.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config as BotoConfig

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config, StoreError
from fleetbreaker._protocol import Record
from fleetbreaker.stores.dynamodb import DynamoDBStore
from tests.servers.dynamodb_servers import (
    Fault,
    FaultProxy,
    ServerProcess,
    open_store,
    raw_client,
    unique_table,
)

RECORD = Record(CircuitState.OPEN, 1, opened_at=1.5, retry_at=31.5, expires_at=time.time() + 600)
# One 1 s attempt, and slack for a loaded runner; a retry (1 s more) would not fit.
DEFAULT_BUDGET_S = 1.0 + 0.9


@pytest.fixture
def own_store(disposable_dynalite: ServerProcess) -> Iterator[DynamoDBStore]:
    """A store with the default client config on a dynalite this test may stop."""
    table = unique_table()
    store = open_store(disposable_dynalite.endpoint, table)
    store.create_table()
    assert store.compare_and_set("c", None, RECORD)  # a pooled connection is now open
    yield store
    store.close()


@pytest.fixture
def proxied(fault_proxy: FaultProxy, dynalite_server: ServerProcess) -> Iterator[DynamoDBStore]:
    table = unique_table()
    open_store(dynalite_server.endpoint, table).create_table()
    store = open_store(fault_proxy.endpoint, table)
    assert store.compare_and_set("c", None, RECORD)
    fault_proxy.clear()
    yield store
    store.close()
    raw_client(dynalite_server.endpoint).delete_table(TableName=table)


def _timed_failure(call: Any) -> tuple[StoreError, float]:
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        call()
    return caught.value, time.monotonic() - started


def test_frozen_server_fails_within_default_timeouts(
    disposable_dynalite: ServerProcess, own_store: DynamoDBStore
) -> None:
    """A server that accepts but never answers costs one read timeout, no more."""
    disposable_dynalite.freeze()
    error, elapsed = _timed_failure(lambda: own_store.load("c"))
    assert "load of circuit 'c'" in str(error)
    assert "timeout" in str(error).lower()
    assert 1.0 <= elapsed < DEFAULT_BUDGET_S
    disposable_dynalite.thaw()
    assert own_store.load("c", consistent=True) == RECORD


def test_frozen_server_honours_a_tighter_user_config(
    disposable_dynalite: ServerProcess, own_store: DynamoDBStore
) -> None:
    """With boto_config's shorter timeout and no retry, a write gives up in that time."""
    quick = BotoConfig(read_timeout=0.2, retries={"total_max_attempts": 1})
    store = open_store(disposable_dynalite.endpoint, own_store.table_name, boto_config=quick)
    disposable_dynalite.freeze()
    error, elapsed = _timed_failure(lambda: store.compare_and_set("c", 1, RECORD))
    assert "compare_and_set of circuit 'c'" in str(error)
    assert elapsed < 1.0


def test_stopped_server_fails_fast(
    disposable_dynalite: ServerProcess, own_store: DynamoDBStore
) -> None:
    """A server that is gone (connection refused) is a StoreError for every operation."""
    disposable_dynalite.stop()
    for call in (lambda: own_store.load("c"), lambda: own_store.compare_and_set("c", 1, RECORD)):
        error, elapsed = _timed_failure(call)
        assert "Could not connect to the endpoint URL" in str(error)
        assert elapsed < DEFAULT_BUDGET_S
    _timed_failure(own_store.names)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ThrottlingException"),
        (400, "ProvisionedThroughputExceededException"),
        (400, "RequestLimitExceeded"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailable"),
    ],
    ids=["throttling", "throughput", "request-limit", "500", "503"],
)
@pytest.mark.parametrize("operation", ["GetItem", "PutItem"])
def test_throttling_and_server_errors_are_store_errors(
    fault_proxy: FaultProxy, proxied: DynamoDBStore, operation: str, status: int, code: str
) -> None:
    """Throttling and 5xx answers become StoreErrors after one request: no SDK retry loop."""
    fault_proxy.inject(Fault(operation, status, code))
    if operation == "GetItem":
        error, _ = _timed_failure(lambda: proxied.load("c"))
    else:
        error, _ = _timed_failure(lambda: proxied.compare_and_set("c", 1, RECORD))
    assert code in str(error)
    assert f"'{proxied.table_name}'" in str(error)
    assert fault_proxy.operations() == [operation]


def test_throttled_read_costs_exactly_one_request(
    fault_proxy: FaultProxy, proxied: DynamoDBStore
) -> None:
    """A throttled GetItem is one HTTP request and no backoff sleep: the caller waits no longer."""
    fault_proxy.inject(Fault("GetItem", 400, "ThrottlingException"))
    error, elapsed = _timed_failure(lambda: proxied.load("c"))
    assert "ThrottlingException" in str(error)
    assert fault_proxy.operations() == ["GetItem"]
    assert elapsed < 0.5


def test_store_recovers_when_faults_clear(fault_proxy: FaultProxy, proxied: DynamoDBStore) -> None:
    """After a burst of errors the same store works again, with nothing left behind."""
    fault_proxy.inject(Fault("GetItem", 503, "ServiceUnavailable", count=2))
    for _ in range(2):
        _timed_failure(lambda: proxied.load("c"))
    assert proxied.load("c") == RECORD


def _downstream(value: object) -> object:
    if isinstance(value, Exception):
        raise value
    return value


def _calls_see_only_the_downstream(breaker: CircuitBreaker, *, budget_s: float) -> None:
    """Healthy and failing downstream calls each return or raise exactly what the downstream
    did (or the breaker's own CircuitOpenError once it trips), each within ``budget_s``."""
    outcomes = [*range(5), LookupError("downstream says no"), *range(5, 10)]
    for outcome in outcomes:
        started = time.monotonic()
        if isinstance(outcome, Exception):
            with pytest.raises(LookupError, match="downstream says no"):
                breaker.call(_downstream, outcome)
        else:
            assert breaker.call(_downstream, outcome) == outcome
        assert time.monotonic() - started < budget_s
    for _ in range(3):  # failure_threshold 3: this trip cannot be persisted, only kept locally
        with pytest.raises(LookupError):
            breaker.call(_downstream, LookupError("downstream says no"))
    with pytest.raises(CircuitOpenError):
        breaker.call(_downstream, "never called")


def test_breaker_keeps_serving_while_dynamodb_is_frozen(
    disposable_dynalite: ServerProcess, own_store: DynamoDBStore
) -> None:
    """With the store hanging, protected calls go on within the configured timeout."""
    quick = BotoConfig(read_timeout=0.3, connect_timeout=0.3, retries={"total_max_attempts": 1})
    store = open_store(disposable_dynalite.endpoint, own_store.table_name, boto_config=quick)
    config = Config(failure_threshold=3, local_cache_max_age=0)
    breaker = CircuitBreaker("frozen", store=store, config=config)
    assert breaker.call(_downstream, "warm") == "warm"
    disposable_dynalite.freeze()
    _calls_see_only_the_downstream(breaker, budget_s=0.3 + 0.5)


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ThrottlingException"), (500, "InternalServerError")],
    ids=["throttled", "500"],
)
def test_breaker_keeps_serving_while_dynamodb_fails(
    fault_proxy: FaultProxy, proxied: DynamoDBStore, status: int, code: str
) -> None:
    """Throttled or failing store calls never reach the caller of a protected call."""
    config = Config(failure_threshold=3, local_cache_max_age=0)
    breaker = CircuitBreaker("failing", store=proxied, config=config)
    for operation in ("GetItem", "PutItem"):
        fault_proxy.inject(Fault(operation, status, code))
    _calls_see_only_the_downstream(breaker, budget_s=1.5)
    assert "GetItem" in fault_proxy.operations()  # the store was asked, and failed

"""DynamoDBStore beyond the shared contract: options, item layout, requests, tables, errors.

Everything talks HTTP to dynalite (or moto's server for single-client API details) through
boto3; FaultProxy sits in between where a test needs to see or break the requests.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from fleetbreaker import CircuitState, ConfigError, StoreError
from fleetbreaker._protocol import Record
from fleetbreaker.stores.base import encode_payload
from fleetbreaker.stores.dynamodb import DynamoDBStore
from tests.servers.dynamodb_servers import (
    REGION,
    Fault,
    FaultProxy,
    ServerProcess,
    open_store,
    raw_client,
    unique_table,
)

NOW = time.time()
LIVE = {"N": "4000000000"}


def rec(epoch: int, **kw: Any) -> Record:
    fields: dict[str, Any] = {
        "opened_at": NOW,
        "retry_at": NOW + 30,
        "failure_count": 3,
        "updated_at": NOW,
        "expires_at": NOW + 3600.25,
    }
    fields.update(kw)
    return Record(CircuitState.OPEN, epoch, **fields)


@pytest.fixture
def table(dynalite_server: ServerProcess) -> Any:
    """A fresh table on the session's dynalite; yields its name, deletes it afterwards."""
    name = unique_table()
    store = open_store(dynalite_server.endpoint, name)
    store.create_table()
    store.close()
    yield name
    raw_client(dynalite_server.endpoint).delete_table(TableName=name)


@pytest.fixture
def raw(dynalite_server: ServerProcess) -> Any:
    client = raw_client(dynalite_server.endpoint)
    yield client
    client.close()


@pytest.fixture
def proxied(fault_proxy: FaultProxy, table: str) -> Any:
    """A store whose requests all pass through the fault proxy."""
    store = open_store(fault_proxy.endpoint, table)
    yield store
    store.close()


def test_importing_fleetbreaker_does_not_import_boto3() -> None:
    """`import fleetbreaker` leaves boto3 and botocore unimported."""
    code = "import sys, fleetbreaker; print(sorted(m for m in sys.modules if 'boto' in m))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table_name": "ab"}, "table_name must be a table name .*got 'ab'"),
        ({"table_name": "no spaces"}, "table_name must be a table name"),
        ({"table_name": None}, "table_name must be a table name"),
        ({"key_attr": ""}, "key_attr must be 1-255 bytes of text, got ''"),
        ({"expiry_attr": "x" * 256}, "expiry_attr must be 1-255 bytes"),
        ({"payload_attr": "id"}, "attribute names must all differ"),
        ({"key_prefix": 7}, "key_prefix must be text, got 7"),
        ({"boto_config": {"read_timeout": 1}}, "boto_config must be a botocore.config.Config"),
        ({"boto3_client": object()}, "boto3_client must be a boto3 DynamoDB client"),
        (
            {"boto3_client": "client", "endpoint_url": "http://127.0.0.1:1"},
            "give boto3_client, or boto3_session/boto_config/endpoint_url to build one, not both",
        ),
    ],
    ids=[
        "short-table",
        "bad-table",
        "no-table",
        "empty-attr",
        "long-attr",
        "same-attrs",
        "prefix-type",
        "config-dict",
        "not-a-client",
        "client-and-settings",
    ],
)
def test_bad_arguments_fail_at_construction(
    aws_sandbox: None, options: dict[str, Any], message: str
) -> None:
    """Every bad argument fails at construction with a StoreError that says what is wrong."""
    arguments: dict[str, Any] = {"table_name": "circuits", **options}
    with pytest.raises(StoreError, match=message):
        DynamoDBStore(**arguments)


def test_a_client_of_another_service_is_refused(aws_sandbox: None) -> None:
    """An S3 client is not taken for a DynamoDB one."""
    s3 = boto3.client("s3", region_name=REGION)
    with pytest.raises(StoreError, match="must be a boto3 DynamoDB client"):
        DynamoDBStore(table_name="circuits", boto3_client=s3)


def test_missing_region_says_how_to_set_one(
    aws_sandbox: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a region the error names AWS_DEFAULT_REGION and boto_config."""
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(
        StoreError,
        match=r"cannot build a DynamoDB client.*set AWS_DEFAULT_REGION, or pass boto_config",
    ):
        DynamoDBStore(table_name="circuits", boto3_session=boto3.session.Session())


def test_table_arn_is_a_table_name(aws_sandbox: None) -> None:
    """A table ARN (cross-account tables) is accepted as table_name."""
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/CircuitBreakerState"
    assert DynamoDBStore(table_name=arn).table_name == arn


def test_default_client_config_bounds_latency(aws_sandbox: None) -> None:
    """A built client times out after 1 s (connect, read) and makes a single attempt."""
    config = DynamoDBStore(table_name="circuits")._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 1.0)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_user_boto_config_wins(aws_sandbox: None) -> None:
    """Settings in boto_config override the defaults; the rest of the defaults stay."""
    user = BotoConfig(read_timeout=7, retries={"total_max_attempts": 5, "mode": "adaptive"})
    config = DynamoDBStore(table_name="circuits", boto_config=user)._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 7)
    assert config.retries == {"total_max_attempts": 5, "mode": "adaptive"}


def test_given_client_is_used_and_left_open(fault_proxy: FaultProxy, table: str) -> None:
    """A pre-built client carries the store's calls, and close() leaves it to its owner."""
    client = raw_client(fault_proxy.endpoint)
    store = DynamoDBStore(table_name=table, boto3_client=client)
    assert store.compare_and_set("c", None, rec(1))
    assert store.load("c") == rec(1)
    store.close()
    assert fault_proxy.operations() == ["GetItem", "PutItem", "GetItem"]
    assert "Item" in client.get_item(TableName=table, Key={"id": {"S": "c"}})
    assert fault_proxy.connections == 1  # the owner's pooled connection survived close()


def test_reads_are_eventually_consistent_unless_asked(
    fault_proxy: FaultProxy, proxied: DynamoDBStore
) -> None:
    """load() reads eventually consistent (half price); load(consistent=True) does not."""
    proxied.load("c")
    proxied.load("c", consistent=True)
    reads = [body for op, body in fault_proxy.requests if op == "GetItem"]
    assert [body["ConsistentRead"] for body in reads] == [False, True]


def test_update_is_one_conditional_put(fault_proxy: FaultProxy, proxied: DynamoDBStore) -> None:
    """Each compare_and_set at an epoch, won or lost, is exactly one conditional PutItem."""
    proxied.compare_and_set("c", None, rec(1))
    fault_proxy.clear()
    assert proxied.compare_and_set("c", 1, rec(2)) is True
    assert proxied.compare_and_set("c", 1, rec(3)) is False
    assert fault_proxy.operations() == ["PutItem", "PutItem"]
    assert all("ConditionExpression" in body for _, body in fault_proxy.requests)


def test_create_reads_consistently_then_puts_only_over_absent(
    fault_proxy: FaultProxy, proxied: DynamoDBStore
) -> None:
    """A create reads the item consistently, and puts (conditionally) only if it reads absent."""
    assert proxied.compare_and_set("c", None, rec(2)) is True
    assert proxied.compare_and_set("c", None, rec(3)) is False
    assert fault_proxy.operations() == ["GetItem", "PutItem", "GetItem"]
    assert [body.get("ConsistentRead") for _, body in fault_proxy.requests] == [True, None, True]
    assert "ConditionExpression" in fault_proxy.requests[1][1]


@pytest.mark.parametrize("expires_at", [NOW + 600.000001, float(math.floor(NOW) + 600)])
def test_item_layout(
    dynalite_server: ServerProcess, table: str, raw: Any, expires_at: float
) -> None:
    """One item per circuit: key, epoch, payload text, and the expiry in whole seconds rounded
    up (the record's time to live from the write, on this host's clock)."""
    store = open_store(dynalite_server.endpoint, table, key_prefix="svc#")
    record = rec(7, expires_at=expires_at)
    before = time.time()
    assert store.compare_and_set("payments", None, record)
    after = time.time()
    item = raw.get_item(TableName=table, Key={"id": {"S": "svc#payments"}})["Item"]
    expiration = int(item.pop("expiration")["N"])
    assert item == {
        "id": {"S": "svc#payments"},
        "epoch": {"N": "7"},
        "record": {"S": encode_payload(record)},
    }
    ttl = expires_at - NOW
    assert math.ceil(before + ttl) <= expiration <= math.ceil(after + ttl)


def test_attribute_names_are_configurable(
    dynalite_server: ServerProcess, raw: Any, table: str
) -> None:
    """Custom epoch, payload and expiry attribute names are the ones written and read."""
    names = {"epoch_attr": "v", "payload_attr": "body", "expiry_attr": "ttl"}
    store = open_store(dynalite_server.endpoint, table, **names)
    assert store.compare_and_set("c", None, rec(1))
    item = raw.get_item(TableName=table, Key={"id": {"S": "c"}})["Item"]
    assert set(item) == {"id", "v", "body", "ttl"}
    assert store.load("c") == rec(1)
    assert store.compare_and_set("c", 1, rec(2, expires_at=NOW - 1))
    assert store.load("c") is None


def test_long_key_prefix_is_refused(aws_sandbox: None) -> None:
    """A key_prefix leaving less than 800 bytes for a circuit name is a ConfigError."""
    DynamoDBStore(table_name="circuits", key_prefix="p" * 1248)
    with pytest.raises(
        ConfigError, match=r"key_prefix 'ppp.* is 1249 bytes; it can be at most 1248"
    ):
        DynamoDBStore(table_name="circuits", key_prefix="p" * 1249)


@pytest.mark.parametrize(
    ("prefix", "name", "fits"),
    [
        ("", "x" * 2048, True),
        ("", "x" * 2049, False),
        ("svc#", "é" * 1022, True),
        ("svc#", "é" * 1023, False),
    ],
    ids=["2048-bytes", "2049-bytes", "prefix-and-unicode-fit", "prefix-and-unicode-too-long"],
)
def test_check_name_bounds_the_partition_key(
    aws_sandbox: None, prefix: str, name: str, fits: bool
) -> None:
    """check_name refuses a name whose key (prefix + name, UTF-8) exceeds 2048 bytes."""
    store = DynamoDBStore(table_name="circuits", key_prefix=prefix)
    if fits:
        store.check_name(name)
        return
    size = len((prefix + name).encode())
    with pytest.raises(
        ConfigError, match=rf"with key_prefix '{prefix}' is {size} bytes; .* at most 2048"
    ):
        store.check_name(name)


def test_key_prefix_separates_namespaces(dynalite_server: ServerProcess, table: str) -> None:
    """Two stores with different key prefixes share a table without seeing each other."""
    a = open_store(dynalite_server.endpoint, table, key_prefix="a#")
    b = open_store(dynalite_server.endpoint, table, key_prefix="b#")
    assert a.compare_and_set("c", None, rec(1))
    assert b.load("c") is None
    assert b.compare_and_set("c", None, rec(5))
    assert a.load("c") == rec(1)
    assert (a.names(), b.names()) == (["c"], ["c"])


def test_names_reads_every_page(
    fault_proxy: FaultProxy, proxied: DynamoDBStore, raw: Any, table: str
) -> None:
    """names() follows the Scan's pages (a page stops at 1 MB of items)."""
    big = {"S": "x" * 350_000}
    for i in range(4):
        raw.put_item(TableName=table, Item={"id": {"S": f"big-{i}"}, "blob": big})
    proxied.compare_and_set("small", None, rec(1))
    fault_proxy.clear()
    assert sorted(proxied.names()) == ["big-0", "big-1", "big-2", "big-3", "small"]
    assert fault_proxy.operations().count("Scan") >= 2


@pytest.mark.parametrize(
    "item",
    [
        {"state": {"S": "OPEN"}, "failure_count": {"N": "5"}, "expiration": LIVE},
        {"epoch": {"N": "-3"}, "record": {"S": "{}"}, "expiration": LIVE},
        {"epoch": {"S": "12"}, "record": {"S": "{}"}, "expiration": LIVE},
        {"epoch": {"BOOL": True}},
        {"epoch": {"N": "2.5"}, "record": {"S": encode_payload(rec(2))}, "expiration": LIVE},
        {"epoch": {"N": "1E+40"}, "record": {"S": encode_payload(rec(2))}, "expiration": LIVE},
        {"epoch": {"L": [{"N": "3"}]}, "record": {"S": "{}"}, "expiration": LIVE},
    ],
    ids=[
        "powertools-item",
        "negative-epoch",
        "text-epoch",
        "bool-epoch",
        "fractional-epoch",
        "epoch-1e40",
        "list-epoch",
    ],
)
def test_foreign_items_read_absent_and_are_replaceable(
    dynalite_server: ServerProcess,
    raw: Any,
    table: str,
    item: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An item without a readable epoch is logged, read as absent, and created over."""
    raw.put_item(TableName=table, Item={"id": {"S": "c"}, **item})
    store = open_store(dynalite_server.endpoint, table)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert store.load("c") is None
    assert "not a fleetbreaker record" in caplog.text
    assert store.compare_and_set("c", None, rec(1))
    assert store.load("c") == rec(1)


@pytest.mark.parametrize(
    "payload",
    [None, {"N": "1"}, {"B": b"{}"}, {"S": '{"v": 1, "state": "open"}'}],
    ids=["missing", "number", "binary", "open-without-retry-at"],
)
def test_unreadable_payloads_read_closed_at_their_epoch(
    dynalite_server: ServerProcess, raw: Any, table: str, payload: dict[str, Any] | None
) -> None:
    """A readable epoch with a payload of the wrong type or shape reads as closed there."""
    item = {"id": {"S": "c"}, "epoch": {"N": "4"}, "expiration": LIVE}
    raw.put_item(TableName=table, Item=item if payload is None else {**item, "record": payload})
    store = open_store(dynalite_server.endpoint, table)
    assert store.load("c") == Record(CircuitState.CLOSED, 4)
    assert store.compare_and_set("c", None, rec(1)) is False
    assert store.compare_and_set("c", 4, rec(5)) is True


@pytest.mark.parametrize("expiry", [None, {"S": "tomorrow"}], ids=["missing", "text"])
def test_item_without_numeric_expiry_is_live(
    dynalite_server: ServerProcess, raw: Any, table: str, expiry: dict[str, str] | None
) -> None:
    """An item whose expiry is missing or not a number never expires, for reads and writes."""
    item = {"id": {"S": "c"}, "epoch": {"N": "2"}, "record": {"S": encode_payload(rec(2))}}
    raw.put_item(TableName=table, Item=item if expiry is None else {**item, "expiration": expiry})
    store = open_store(dynalite_server.endpoint, table)
    assert store.load("c") == rec(2)
    assert store.compare_and_set("c", None, rec(1)) is False
    assert store.compare_and_set("c", 2, rec(3)) is True


def test_expired_item_not_yet_deleted_is_absent(
    dynalite_server: ServerProcess, raw: Any, table: str
) -> None:
    """An item past its TTL that DynamoDB has not deleted yet reads and writes as absent."""
    item = {"epoch": {"N": "6"}, "record": {"S": encode_payload(rec(6))}}
    past = {"N": str(int(time.time()) - 1)}
    raw.put_item(TableName=table, Item={"id": {"S": "c"}, **item, "expiration": past})
    store = open_store(dynalite_server.endpoint, table)
    assert store.load("c", consistent=True) is None
    assert store.compare_and_set("c", 6, rec(7)) is False
    assert store.compare_and_set("c", None, rec(1)) is True


def test_errors_name_operation_table_and_aws_code(dynalite_server: ServerProcess) -> None:
    """A client error becomes a StoreError naming the operation, the table and the AWS code."""
    store = open_store(dynalite_server.endpoint, "no-such-table")
    calls = {
        "load": lambda: store.load("c"),
        "compare_and_set": lambda: store.compare_and_set("c", None, rec(1)),
        "names": store.names,
    }
    for operation, call in calls.items():
        with pytest.raises(StoreError) as caught:
            call()
        text = str(caught.value)
        assert f"{operation} of circuit" in text
        assert "'no-such-table'" in text
        assert "ResourceNotFoundException" in text


@pytest.fixture
def retrying(fault_proxy: FaultProxy, table: str) -> Any:
    """A store whose client retries (the caller's boto_config), through the fault proxy."""
    retries = BotoConfig(retries={"total_max_attempts": 2, "mode": "standard"})
    store = open_store(fault_proxy.endpoint, table, boto_config=retries)
    yield store
    store.close()


def test_default_client_does_not_retry_a_lost_answer(
    fault_proxy: FaultProxy, proxied: DynamoDBStore
) -> None:
    """With the default single attempt, a write whose answer was lost is a StoreError."""
    fault_proxy.inject(Fault("PutItem", 500, "InternalServerError", count=1, forward=True))
    with pytest.raises(StoreError, match="InternalServerError"):
        proxied.compare_and_set("c", None, rec(1))
    assert fault_proxy.operations() == ["GetItem", "PutItem"]
    assert proxied.load("c") == rec(1)  # it landed: the breaker's next read sees it


@pytest.mark.parametrize("expected", [None, 1], ids=["create", "update"])
def test_retried_write_that_landed_reads_as_won(
    fault_proxy: FaultProxy, retrying: DynamoDBStore, expected: int | None
) -> None:
    """A retrying client's write whose answer was lost (5xx after it landed) reports the win."""
    if expected is not None:
        assert retrying.compare_and_set("c", None, rec(1))
    fault_proxy.clear()
    fault_proxy.inject(Fault("PutItem", 500, "InternalServerError", count=1, forward=True))
    assert retrying.compare_and_set("c", expected, rec(2)) is True
    assert fault_proxy.operations()[-3:] == ["PutItem", "PutItem", "GetItem"]
    assert retrying.load("c") == rec(2)


def test_retried_write_that_lost_to_another_reads_as_lost(
    fault_proxy: FaultProxy, retrying: DynamoDBStore
) -> None:
    """A retried write that finds another writer's record still reports the loss."""
    assert retrying.compare_and_set("c", None, rec(1))
    assert retrying.compare_and_set("c", 1, rec(2))  # another writer got there first
    fault_proxy.clear()
    fault_proxy.inject(Fault("PutItem", 500, "InternalServerError", count=1))
    assert retrying.compare_and_set("c", 1, rec(2, failure_count=9)) is False
    assert fault_proxy.operations() == ["PutItem", "PutItem", "GetItem"]
    assert retrying.load("c") == rec(2)


def test_create_table_on_demand_with_ttl(moto_server: ServerProcess) -> None:
    """create_table makes an on-demand table keyed by key_attr, with TTL on expiry_attr."""
    name = unique_table()
    store = open_store(moto_server.endpoint, name, key_attr="pk", expiry_attr="ttl")
    store.create_table()
    raw = raw_client(moto_server.endpoint)
    described = raw.describe_table(TableName=name)["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = raw.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    assert store.compare_and_set("c", None, rec(1))
    assert store.load("c", consistent=True) == rec(1)


def test_create_table_twice(moto_server: ServerProcess) -> None:
    """A second create_table fails naming ResourceInUseException, unless exist_ok."""
    store = open_store(moto_server.endpoint, unique_table())
    store.create_table()
    with pytest.raises(StoreError, match=r"create_table.*ResourceInUseException"):
        store.create_table()
    store.create_table(exist_ok=True)


def test_create_table_checks_an_existing_table(moto_server: ServerProcess) -> None:
    """exist_ok refuses a table with another key or TTL attribute, saying what to change."""
    raw, name = raw_client(moto_server.endpoint), unique_table()
    raw.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(StoreError, match="needs a string partition key 'id' and no sort key"):
        open_store(moto_server.endpoint, name).create_table(exist_ok=True)
    raw.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "gone_at"}
    )
    with pytest.raises(StoreError, match="TTL attribute is 'gone_at'; pass expiry_attr='gone_at'"):
        open_store(moto_server.endpoint, name, key_attr="pk").create_table(exist_ok=True)
    open_store(moto_server.endpoint, name, key_attr="pk", expiry_attr="gone_at").create_table(
        exist_ok=True
    )


def test_create_table_without_ttl_api_warns(
    dynalite_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """On a server without the TTL API (dynalite) the table is made and a warning logged."""
    store = open_store(dynalite_server.endpoint, unique_table())
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        store.create_table()
    assert "no TTL API" in caplog.text
    assert store.compare_and_set("c", None, rec(1))

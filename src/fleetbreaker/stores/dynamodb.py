"""DynamoDBStore: circuits shared by every process, host and Lambda that can reach one table.

Install with ``pip install 'fleetbreaker[dynamodb]'``. Importing ``fleetbreaker`` never imports
this module (nor boto3); import it from here.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from fleetbreaker._fork import reset_after_fork
from fleetbreaker.errors import ConfigError, StoreError
from fleetbreaker.stores.base import KeyValueStore, Stored, Write, store_error

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("DynamoDBStore needs boto3: pip install 'fleetbreaker[dynamodb]'") from exc

__all__ = ["DynamoDBStore"]

logger = logging.getLogger("fleetbreaker.store")

_ERRORS = (BotoCoreError, ClientError)
_LOST_RACE = "ConditionalCheckFailedException"
_TABLE = re.compile(r"(arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/)?[A-Za-z0-9_.-]{3,255}\Z")

# A slow, throttling or unreachable DynamoDB must cost a caller one bounded request, not
# boto3's default 60 s read timeout times several retries with backoff: the breaker fails open
# on a StoreError anyway, and reads again within a cache period.
DEFAULT_BOTO_CONFIG = BotoConfig(
    connect_timeout=1.0,
    read_timeout=1.0,
    retries={"total_max_attempts": 1, "mode": "standard"},
)
_MAX_KEY_BYTES = 2048  # DynamoDB's limit on a partition key
_MAX_NAME_BYTES = 800  # a circuit name: at most 200 characters of up to 4 UTF-8 bytes

# A missing or non-numeric expiry never compares <= :now, so such an item counts as live, as
# _read reads it.
_IF_NONE_LIVE = "attribute_not_exists(#k) OR #x <= :now"
_IF_AT_EPOCH = "#e = :expected AND NOT #x <= :now"


def _n(value: object) -> dict[str, str]:
    return {"N": str(value)}


def _number(attribute: object) -> Decimal | None:
    """A DynamoDB number attribute as a Decimal, or ``None``."""
    if isinstance(attribute, dict) and isinstance(attribute.get("N"), str):
        try:
            return Decimal(attribute["N"])
        except InvalidOperation:
            return None
    return None


def _epoch(attribute: object) -> object:
    """The canonical epoch, an integral number, as an ``int``; anything else as held."""
    number = _number(attribute)
    # adjusted() bounds the digits first: 1E+125 is a valid DynamoDB number, not an int to build.
    if (
        number is not None
        and number.is_finite()
        and number.adjusted() < 20
        and number == number.to_integral_value()
    ):
        return int(number)
    return attribute


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ``ClientError`` (``None`` for transport errors)."""
    if isinstance(exc, ClientError):
        code: str | None = exc.response.get("Error", {}).get("Code")
        return code
    return None


class DynamoDBStore(KeyValueStore):
    """A store in one DynamoDB table, one item per circuit: shared by a whole fleet.

    The table needs a string partition key (``key_attr``, default ``id``), TTL on
    ``expiry_attr`` (default ``expiration``), and ``dynamodb:GetItem``/``PutItem`` (plus
    ``Scan`` for :meth:`names`). It is the table shape Powertools' circuit breaker uses, so its
    table can be reused; use distinct circuit names or a ``key_prefix`` then.

    Give a ``boto3_client``, or let the store build one from ``boto3_session`` (default: boto3's
    default session), ``boto_config`` and ``endpoint_url``. A built client gets 1 s connect and
    read timeouts and a single attempt per call, throttling included
    (:data:`DEFAULT_BOTO_CONFIG`); whatever ``boto_config`` sets wins. Reads are eventually
    consistent unless ``consistent=True``. :meth:`check_name` bounds ``key_prefix + name`` to
    a partition key's 2048 bytes.
    """

    def __init__(
        self,
        *,
        table_name: str,
        boto3_client: Any = None,
        boto3_session: Any = None,
        boto_config: BotoConfig | None = None,
        endpoint_url: str | None = None,
        key_attr: str = "id",
        expiry_attr: str = "expiration",
        epoch_attr: str = "epoch",
        payload_attr: str = "record",
        key_prefix: str = "",
    ) -> None:
        if not (isinstance(table_name, str) and _TABLE.match(table_name)):
            raise StoreError(
                "DynamoDBStore table_name must be a table name (3-255 characters of "
                f"a-z A-Z 0-9 _ - .) or a table ARN, got {table_name!r}"
            )
        attributes = {
            "key_attr": key_attr,
            "expiry_attr": expiry_attr,
            "epoch_attr": epoch_attr,
            "payload_attr": payload_attr,
        }
        for option, value in attributes.items():
            if not (isinstance(value, str) and 0 < len(value.encode()) <= 255):
                raise StoreError(
                    f"DynamoDBStore {option} must be 1-255 bytes of text, got {value!r}"
                )
        if len(set(attributes.values())) != len(attributes):
            raise StoreError(f"DynamoDBStore attribute names must all differ, got {attributes}")
        if not isinstance(key_prefix, str):
            raise StoreError(f"DynamoDBStore key_prefix must be text, got {key_prefix!r}")
        if _utf8_len(key_prefix) > _MAX_KEY_BYTES - _MAX_NAME_BYTES:
            raise ConfigError(
                f"DynamoDBStore key_prefix {key_prefix!r:.60} is {_utf8_len(key_prefix)} bytes; "
                f"it can be at most {_MAX_KEY_BYTES - _MAX_NAME_BYTES} (DynamoDB partition keys "
                f"hold {_MAX_KEY_BYTES} bytes, and a circuit name may take {_MAX_NAME_BYTES})"
            )
        if boto_config is not None and not isinstance(boto_config, BotoConfig):
            raise StoreError(
                f"DynamoDBStore boto_config must be a botocore.config.Config, got {boto_config!r}"
            )
        self.table_name = table_name
        self.key_attr, self.expiry_attr = key_attr, expiry_attr
        self.epoch_attr, self.payload_attr = epoch_attr, payload_attr
        self.key_prefix = key_prefix
        self._label = f"DynamoDBStore(table {table_name!r})"
        self._owns_client = boto3_client is None
        if boto3_client is not None:
            if boto3_session is not None or boto_config is not None or endpoint_url is not None:
                raise StoreError(
                    "DynamoDBStore: give boto3_client, or boto3_session/boto_config/endpoint_url "
                    "to build one, not both (a built client cannot take new settings)"
                )
            model = getattr(getattr(boto3_client, "meta", None), "service_model", None)
            if getattr(model, "service_name", None) != "dynamodb":
                raise StoreError(
                    "DynamoDBStore boto3_client must be a boto3 DynamoDB client "
                    f"(boto3.client('dynamodb')), got {boto3_client!r}"
                )
            self._client = boto3_client
        else:
            config = DEFAULT_BOTO_CONFIG.merge(boto_config) if boto_config else DEFAULT_BOTO_CONFIG
            maker = boto3 if boto3_session is None else boto3_session
            try:
                self._client = maker.client("dynamodb", config=config, endpoint_url=endpoint_url)
            except (BotoCoreError, ValueError) as exc:
                raise StoreError(
                    f"DynamoDBStore: cannot build a DynamoDB client: {exc} (set AWS_DEFAULT_REGION"
                    ", or pass boto_config=botocore.config.Config(region_name=...))"
                ) from exc
        self._pid = os.getpid()
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # Pooled keep-alive sockets are shared with the parent after a fork: two processes
        # writing requests on one socket read each other's responses (a lost conditional write
        # read as won). close() only drops this process's copies; the next call reconnects.
        self._pid = os.getpid()
        self._client.close()

    def _api(self) -> Any:
        if self._pid != os.getpid():  # forked without the at-fork hook (e.g. os.fork in C)
            self._after_fork_in_child()
        return self._client

    def check_name(self, name: str) -> None:
        """Raise ``ConfigError`` if ``key_prefix + name`` exceeds a DynamoDB partition key."""
        size = _utf8_len(self.key_prefix + name)
        if size > _MAX_KEY_BYTES:
            raise ConfigError(
                f"DynamoDBStore: circuit name {name!r:.60} with key_prefix {self.key_prefix!r:.60} "
                f"is {size} bytes; DynamoDB partition keys hold at most {_MAX_KEY_BYTES}"
            )

    def _key(self, name: str) -> dict[str, dict[str, str]]:
        return {self.key_attr: {"S": self.key_prefix + name}}

    def _error(self, operation: str, name: str, exc: BaseException) -> StoreError:
        return store_error(self._label, operation, name, exc)

    def _get(self, name: str, *, consistent: bool, operation: str) -> dict[str, Any] | None:
        try:
            response = self._api().get_item(
                TableName=self.table_name, Key=self._key(name), ConsistentRead=consistent
            )
        except _ERRORS as exc:
            raise self._error(operation, name, exc) from exc
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _read(self, name: str, *, consistent: bool, operation: str = "load") -> Stored | None:
        item = self._get(name, consistent=consistent, operation=operation)
        if item is None:
            return None
        expiry = _number(item.get(self.expiry_attr))
        if expiry is not None and expiry <= Decimal(repr(time.time())):
            return None  # DynamoDB's TTL deletes lazily: an expired item may still be there
        epoch = item.get(self.epoch_attr)
        payload = item.get(self.payload_attr)
        if isinstance(payload, dict) and isinstance(payload.get("S"), str):
            payload = payload["S"]
        return Stored(_epoch(epoch), payload, held=epoch)

    def _write_at(self, name: str, epoch: int, new: Write) -> bool:
        names = {"#e": self.epoch_attr}
        return self._put(name, new, _IF_AT_EPOCH, names, {":expected": _n(epoch)})

    def _write_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        names, values = {"#k": self.key_attr}, {}
        condition = _IF_NONE_LIVE
        if replacing is not None:
            names["#e"] = self.epoch_attr
            held = replacing.held
            if isinstance(held, dict) and "N" in held:
                # A number that reads as foreign (out of range, fractional): this very number.
                condition += " OR #e = :held"
                values[":held"] = held
            elif isinstance(held, dict) and len(held) == 1:
                # Every value of another type reads as foreign: the type says it all.
                condition += " OR attribute_type(#e, :type)"
                values[":type"] = {"S": next(iter(held))}
            else:
                condition += " OR attribute_not_exists(#e)"
        return self._put(name, new, condition, names, values)

    def _put(
        self,
        name: str,
        new: Write,
        condition: str,
        names: dict[str, str],
        values: dict[str, dict[str, Any]],
    ) -> bool:
        now = time.time()
        item = {
            **self._key(name),
            self.epoch_attr: _n(new.epoch),
            self.payload_attr: {"S": new.payload},
            # TTL wants whole seconds; rounding up never reaps a record before its time.
            self.expiry_attr: _n(math.ceil(now + new.ttl)),
        }
        try:
            self._api().put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, "#x": self.expiry_attr},
                ExpressionAttributeValues={**values, ":now": _n(repr(now))},
            )
        except BotoCoreError as exc:
            raise self._error("compare_and_set", name, exc) from exc
        except ClientError as exc:
            if _error_code(exc) != _LOST_RACE:
                raise self._error("compare_and_set", name, exc) from exc
            if not exc.response.get("ResponseMetadata", {}).get("RetryAttempts"):
                return False
            # A client configured to retry (the caller's boto_config or boto3_client; the
            # default makes one attempt) can lose to itself: the first attempt landed but its
            # answer was lost (a 5xx or timeout), and the retry found the new epoch. Only our
            # own item, byte for byte, means that.
            stored = self._get(name, consistent=True, operation="compare_and_set")
            return stored is not None and stored.get(self.payload_attr) == {"S": new.payload}
        return True

    def names(self) -> list[str]:
        """Every circuit with an item under ``key_prefix``: an operator tool (a full Scan)."""
        scan: dict[str, Any] = {
            "TableName": self.table_name,
            "ProjectionExpression": "#k",
            "ExpressionAttributeNames": {"#k": self.key_attr},
        }
        if self.key_prefix:
            scan["FilterExpression"] = "begins_with(#k, :prefix)"
            scan["ExpressionAttributeValues"] = {":prefix": {"S": self.key_prefix}}
        found: list[str] = []
        try:
            for page in self._api().get_paginator("scan").paginate(**scan):
                found.extend(
                    item[self.key_attr]["S"][len(self.key_prefix) :] for item in page["Items"]
                )
        except _ERRORS as exc:
            raise self._error("names", "*", exc) from exc
        return found

    def create_table(self, *, exist_ok: bool = False) -> None:
        """Create the table (on-demand, TTL on ``expiry_attr``) and wait until it is active.

        Meant for local development and tests; declare production tables in your
        infrastructure code (docs/lambda.md). With ``exist_ok`` an existing table is checked
        instead. Servers without the TTL API (dynalite) get a warning: expired records still
        read as absent, they are just never deleted.
        """
        client, table = self._api(), self.table_name
        try:
            client.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": self.key_attr, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": self.key_attr, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except _ERRORS as exc:
            if not (exist_ok and _error_code(exc) == "ResourceInUseException"):
                raise self._error("create_table", "*", exc) from exc
        try:
            described = self._wait_until_active(client)
            key_schema = described["KeySchema"]
            key_types = {
                a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]
            }
            if (
                key_schema != [{"AttributeName": self.key_attr, "KeyType": "HASH"}]
                or key_types.get(self.key_attr) != "S"
            ):
                raise StoreError(
                    f"{self._label}: the table's key is {key_schema} ({key_types}); "
                    f"DynamoDBStore needs a string partition key {self.key_attr!r} and no sort key"
                )
            self._enable_ttl(client)
        except _ERRORS as exc:
            raise self._error("create_table", "*", exc) from exc

    def _wait_until_active(self, client: Any) -> dict[str, Any]:
        # Local servers are ready in milliseconds, AWS in seconds: poll with a growing delay.
        delay, deadline = 0.02, time.monotonic() + 300
        while True:
            try:
                table: dict[str, Any] = client.describe_table(TableName=self.table_name)["Table"]
            except ClientError as exc:  # a just-created table can be briefly invisible
                if _error_code(exc) != "ResourceNotFoundException":
                    raise
                table = {"TableStatus": "NOT VISIBLE YET"}
            status = table["TableStatus"]
            if status == "ACTIVE":
                return table
            if time.monotonic() > deadline:
                raise StoreError(f"{self._label}: the table is still {status} after 300 s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _enable_ttl(self, client: Any) -> None:
        ttl = client.describe_time_to_live(TableName=self.table_name)["TimeToLiveDescription"]
        status, attribute = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
        if status in {"ENABLED", "ENABLING"}:
            if attribute != self.expiry_attr:
                raise StoreError(
                    f"{self._label}: the table's TTL attribute is {attribute!r}; "
                    f"pass expiry_attr={attribute!r}"
                )
            return
        try:
            client.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": self.expiry_attr},
            )
        except ClientError as exc:
            if _error_code(exc) != "UnknownOperationException":
                raise
            logger.warning(
                "%s: this server has no TTL API; expired records will not be deleted", self._label
            )

    def close(self) -> None:
        if self._owns_client:  # a client we were given belongs to the caller
            self._client.close()

    def __repr__(self) -> str:
        return f"DynamoDBStore(table_name={self.table_name!r})"

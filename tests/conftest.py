"""Session-wide test plugins: the real servers that store tests start themselves, and a guard
that fails a test during which fleetbreaker logged an error it did not expect."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.servers.redis_servers",
    "tests.servers.dynamodb_servers",
    "tests.servers.postgres_servers",
]

# The published store contract's assertions explain themselves when they fail.
pytest.register_assert_rewrite("fleetbreaker.testing.store_contract")

ALLOW_MARKER = "logs_errors"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALLOW_MARKER}: the test provokes an error that fleetbreaker logs (and survives) on "
        "purpose; without it, an ERROR record from the 'fleetbreaker' logger fails the test",
    )


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _no_unexpected_fleetbreaker_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which fleetbreaker logged an ERROR (``logger.exception``, say).

    The breaker logs and survives its own failures by design (it fails open), so a bug that
    makes an admission or a settle raise passes a test that only looks at the call's result;
    this makes it fail. A test that provokes such an error on purpose is marked
    ``@pytest.mark.logs_errors``.
    """
    if request.node.get_closest_marker(ALLOW_MARKER) is not None:
        yield
        return
    handler = _ErrorRecords()
    logger = logging.getLogger("fleetbreaker")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.records:
        shown = "\n".join(_describe(record) for record in handler.records)
        pytest.fail(f"fleetbreaker logged an unexpected error during this test:\n{shown}")


def _describe(record: logging.LogRecord) -> str:
    text = f"{record.levelname} {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text += f" ({type(exc).__name__}: {exc})"
    return text

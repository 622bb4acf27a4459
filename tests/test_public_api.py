"""The public surface: what `fleetbreaker` exports, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fleetbreaker


def test_all_is_pinned() -> None:
    """__all__ lists exactly the public names, sorted."""
    assert fleetbreaker.__all__ == [
        "BreakerFamily",
        "CircuitBreaker",
        "CircuitBreakerError",
        "CircuitInfo",
        "CircuitOpenError",
        "CircuitState",
        "CircuitTransition",
        "Config",
        "ConfigError",
        "HistoryEntry",
        "MemoryStore",
        "Override",
        "OverrideConflictError",
        "SQLiteStore",
        "Store",
        "StoreError",
        "circuit_breaker",
    ]
    for name in fleetbreaker.__all__:
        assert getattr(fleetbreaker, name) is not None


def test_version_is_the_installed_distributions() -> None:
    """fleetbreaker.__version__ is the installed version; an attribute, not part of __all__."""
    from importlib.metadata import version

    assert fleetbreaker.__version__ == version("fleetbreaker")
    assert "__version__" not in fleetbreaker.__all__


def test_version_without_an_installed_distribution() -> None:
    """Run from a source tree that was never installed, __version__ is still a string."""
    code = (
        "import importlib.metadata as m\n"
        "def missing(name): raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import fleetbreaker\n"
        "print(fleetbreaker.__version__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0+unknown"


def test_unknown_attribute_is_an_attribute_error() -> None:
    """The lazy __version__ lookup leaves other missing names an AttributeError."""
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = fleetbreaker.nope


def test_exception_tree() -> None:
    """Every fleetbreaker exception derives from CircuitBreakerError."""
    for exc in (fleetbreaker.CircuitOpenError, fleetbreaker.ConfigError, fleetbreaker.StoreError):
        assert issubclass(exc, fleetbreaker.CircuitBreakerError)
    assert issubclass(fleetbreaker.ConfigError, ValueError)


def test_state_is_a_str_enum() -> None:
    """CircuitState members compare equal to their string values."""
    assert fleetbreaker.CircuitState.HALF_OPEN == "half_open"
    assert [s.value for s in fleetbreaker.CircuitState] == ["closed", "open", "half_open"]


def test_import_pulls_in_no_store_clients() -> None:
    """Importing fleetbreaker imports no store client (boto3, redis, psycopg: optional extras)."""
    code = (
        "import sys, fleetbreaker, fleetbreaker.stores, fleetbreaker.testing; "
        "bad = [m for m in ('boto3', 'botocore', 'redis', 'psycopg', 'psycopg_pool', "
        "'matplotlib', 'pytest', 'hypothesis') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_is_typed() -> None:
    """The package ships py.typed so type checkers use its annotations."""
    from importlib.resources import files

    assert files("fleetbreaker").joinpath("py.typed").is_file()

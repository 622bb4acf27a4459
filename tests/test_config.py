"""Config and circuit names: every bad value is a ConfigError naming the field and the value."""

from __future__ import annotations

import math

import pytest

from fleetbreaker import CircuitBreaker, Config, ConfigError, MemoryStore


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be a positive integer, got 0"),
        ({"failure_threshold": -3}, "failure_threshold must be a positive integer, got -3"),
        ({"failure_threshold": 2.5}, "failure_threshold must be a positive integer, got 2.5"),
        ({"failure_threshold": True}, "failure_threshold must be a positive integer, got True"),
        ({"failure_threshold": "5"}, "failure_threshold must be a positive integer, got '5'"),
        ({"success_threshold": 0}, "success_threshold must be a positive integer, got 0"),
        ({"recovery_timeout": 0}, "recovery_timeout must be a finite number of seconds > 0, got 0"),
        ({"recovery_timeout": -1.0}, "recovery_timeout must be a finite number of seconds > 0"),
        ({"recovery_timeout": math.inf}, "recovery_timeout must be a finite number of seconds > 0"),
        ({"recovery_timeout": math.nan}, "recovery_timeout must be a finite number of seconds > 0"),
        (
            {"recovery_timeout": "30"},
            "recovery_timeout must be a finite number of seconds > 0, got '30'",
        ),
        (
            {"local_cache_max_age": -0.1},
            "local_cache_max_age must be a finite number of seconds >= 0",
        ),
        (
            {"local_cache_max_age": None},
            "local_cache_max_age must be a finite number of seconds >= 0",
        ),
        ({"probe_timeout": 0}, "probe_timeout must be a finite number of seconds > 0, got 0"),
        (
            {"record_ttl": 10},
            r"record_ttl must be at least 2 x \(longest open period + probe_timeout\) = 120 s",
        ),
        (
            {"recovery_timeout": 1e12, "record_ttl": 5e12},
            r"recovery_timeout must be at most 365 days \(31536000 s\), got 1000000000000.0",
        ),
        (
            {"probe_timeout": 31536001},
            r"probe_timeout must be at most 365 days \(31536000 s\), got 31536001",
        ),
        (
            {"local_cache_max_age": 1e9},
            r"local_cache_max_age must be at most 365 days \(31536000 s\), got 1000000000.0",
        ),
        (
            {"record_ttl": 5e12},
            r"record_ttl must be at most 3650 days \(315360000 s\), got 5000000000000.0",
        ),
        ({"half_open_refresh": 0}, "half_open_refresh must be a finite number of seconds > 0"),
        ({"half_open_refresh": -1}, "half_open_refresh must be a finite number of seconds > 0"),
        ({"half_open_refresh": math.nan}, "half_open_refresh must be a finite number of seconds"),
        ({"half_open_refresh": "0.25"}, "half_open_refresh must be a finite number of seconds"),
        ({"half_open_refresh": 4e7}, "half_open_refresh must be at most 365 days"),
        ({"handled_exceptions": ()}, "handled_exceptions is empty, so no failure would ever count"),
        ({"handled_exceptions": []}, "omit it to count every Exception, or list the exception"),
        (
            {"handled_exceptions": (ValueError,), "ignored_exceptions": (KeyError,)},
            "mutually exclusive",
        ),
        ({"handled_exceptions": KeyboardInterrupt}, "must contain subclasses of Exception"),
        (
            {"ignored_exceptions": ["ValueError"]},
            "must contain subclasses of Exception .*, got 'ValueError'",
        ),
        ({"handled_exceptions": 3}, "must be an exception class or an iterable of them, got 3"),
    ],
    # No backslash in an id: pytest escapes it again on each in-process run (mutmut runs
    # several), and the second run no longer finds the first run's ids.
    ids=lambda v: str(v)[:60].replace("\\", ""),
)
def test_bad_config_values(kwargs: dict[str, object], message: str) -> None:
    """Each bad value fails at construction with a message that says what is allowed."""
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        Config(**kwargs)  # type: ignore[arg-type]


def test_config_error_is_a_value_error() -> None:
    """ConfigError is also a ValueError, for callers that catch the builtin."""
    with pytest.raises(ValueError):
        Config(failure_threshold=0)


def test_config_defaults_and_derived_probe_timeout() -> None:
    """Defaults are the documented ones; probe_timeout defaults to recovery_timeout."""
    config = Config()
    assert (config.failure_threshold, config.recovery_timeout, config.success_threshold) == (
        5,
        30.0,
        3,
    )
    assert config.local_cache_max_age == 5.0
    assert config.effective_probe_timeout == 30.0
    assert Config(recovery_timeout=7, probe_timeout=2).effective_probe_timeout == 2.0


def test_config_is_immutable_and_keyword_only() -> None:
    """A Config cannot be changed after construction nor built positionally."""
    config = Config()
    with pytest.raises(AttributeError):
        config.failure_threshold = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Config(3)  # type: ignore[call-arg]


def test_exception_filters_accept_a_class_or_an_iterable() -> None:
    """A single exception class or any iterable of them is accepted and normalised."""
    assert Config(handled_exceptions=TimeoutError).handled_exceptions == (TimeoutError,)  # type: ignore[arg-type]
    ignored = Config(ignored_exceptions=[KeyError, ValueError]).ignored_exceptions  # type: ignore[arg-type]
    assert ignored == (KeyError, ValueError)


def test_counts_follows_allowlist_and_denylist() -> None:
    """handled_exceptions counts only its types; ignored_exceptions counts all but its types."""
    allow = Config(handled_exceptions=(TimeoutError,))
    deny = Config(ignored_exceptions=(KeyError,))
    assert allow.counts(TimeoutError())
    assert not allow.counts(ValueError())
    assert deny.counts(ValueError())
    assert not deny.counts(KeyError())
    for config in (allow, deny, Config()):
        assert not config.counts(KeyboardInterrupt())
        assert not config.counts(SystemExit())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("x" * 201, "at most 200 characters, got 201"),
        ("bad\nname", "must be printable"),
        ("tab\there", "must be printable"),
        (None, "must be a str, got NoneType"),
        (b"bytes", "must be a str, got bytes"),
    ],
    ids=["empty", "too-long", "newline", "tab", "none", "bytes"],
)
def test_bad_circuit_names(name: object, message: str) -> None:
    """Circuit names are checked when the breaker is built."""
    with pytest.raises(ConfigError, match=message):
        CircuitBreaker(name, store=MemoryStore())  # type: ignore[arg-type]


def test_good_circuit_names() -> None:
    """Any printable name up to 200 characters is accepted."""
    for name in ("payments", "x" * 200, "ünïcödé • 支払い", "a/b:c d"):
        assert CircuitBreaker(name).name == name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"store": "redis://x"}, "store must be a fleetbreaker Store, got str"),
        ({"config": {"failure_threshold": 3}}, "config must be a fleetbreaker Config, got dict"),
        ({"on_circuit_open": "fallback"}, "on_circuit_open must be callable"),
        ({"on_transition": 42}, "on_transition must be callable"),
    ],
    ids=["store", "config", "fallback", "hook"],
)
def test_bad_breaker_arguments(kwargs: dict[str, object], message: str) -> None:
    """Wrong argument types fail at construction, not at the first call."""
    with pytest.raises(ConfigError, match=message):
        CircuitBreaker("c", **kwargs)  # type: ignore[arg-type]


def test_longest_allowed_times_are_accepted() -> None:
    """Periods up to 365 days and record_ttl up to 3650 days are accepted."""
    year = 365 * 24 * 3600.0
    config = Config(
        recovery_timeout=year,
        probe_timeout=year,
        local_cache_max_age=year,
        half_open_refresh=year,
        record_ttl=10 * year,
    )
    assert (config.recovery_timeout, config.record_ttl) == (year, 10 * year)


def test_half_open_refresh_default_and_normalised() -> None:
    """half_open_refresh defaults to a quarter second and is stored as a float."""
    assert Config().half_open_refresh == 0.25
    assert Config(half_open_refresh=1).half_open_refresh == 1.0
    assert isinstance(Config(half_open_refresh=1).half_open_refresh, float)


@pytest.mark.parametrize("empty", [(), [], frozenset()], ids=["tuple", "list", "frozenset"])
def test_empty_ignored_exceptions_means_no_denylist(empty: object) -> None:
    """An empty ignored_exceptions is accepted and stored as None: every Exception counts."""
    config = Config(ignored_exceptions=empty)  # type: ignore[arg-type]
    assert config.ignored_exceptions is None
    assert config == Config()
    assert config.counts(ValueError())
    allow = Config(handled_exceptions=(TimeoutError,), ignored_exceptions=empty)  # type: ignore[arg-type]
    assert allow.handled_exceptions == (TimeoutError,)

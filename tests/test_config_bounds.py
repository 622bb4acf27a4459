"""Config at the edges: the smallest and largest accepted values, and what each field becomes.

``test_config.py`` checks that bad values fail with good messages; these tests pin where each
bound lies (the last accepted value and the first refused one) and how accepted values are
normalised.
"""

from __future__ import annotations

import math

import pytest

from fleetbreaker import Config, ConfigError
from fleetbreaker._limits import MAX_PERIOD, MAX_RECORD_TTL

PERIODS = ["recovery_timeout", "probe_timeout", "local_cache_max_age", "half_open_refresh"]


def above(value: float) -> float:
    """The next float above ``value``."""
    return math.nextafter(value, math.inf)


def below(value: float) -> float:
    """The next float below ``value``."""
    return math.nextafter(value, -math.inf)


def test_thresholds_of_one_are_accepted() -> None:
    """1 is the smallest failure_threshold and success_threshold."""
    config = Config(failure_threshold=1, success_threshold=1)
    assert (config.failure_threshold, config.success_threshold) == (1, 1)


def test_zero_local_cache_max_age_is_accepted() -> None:
    """local_cache_max_age=0 (re-read the store on every call) is valid and stored as 0.0."""
    config = Config(local_cache_max_age=0)
    assert config.local_cache_max_age == 0.0
    assert isinstance(config.local_cache_max_age, float)


@pytest.mark.parametrize("name", ["recovery_timeout", "probe_timeout", "half_open_refresh"])
@pytest.mark.parametrize("value", [1e-9, 1, 1.0], ids=["tiny", "one-int", "one-float"])
def test_small_positive_periods_are_accepted(name: str, value: float) -> None:
    """Any positive period is valid, however short; only zero and below are refused."""
    config = Config(**{name: value})  # type: ignore[arg-type]
    stored = config.effective_probe_timeout if name == "probe_timeout" else getattr(config, name)
    assert stored == value


@pytest.mark.parametrize("name", PERIODS)
def test_periods_end_at_365_days(name: str) -> None:
    """Each period is accepted at exactly 365 days and refused just above it."""
    ttl = {"record_ttl": MAX_RECORD_TTL}
    config = Config(**{name: MAX_PERIOD}, **ttl)  # type: ignore[arg-type]
    stored = config.effective_probe_timeout if name == "probe_timeout" else getattr(config, name)
    assert stored == MAX_PERIOD
    with pytest.raises(ConfigError, match=f"{name} must be at most 365 days"):
        Config(**{name: above(MAX_PERIOD)}, **ttl)  # type: ignore[arg-type]


def test_record_ttl_ends_at_3650_days_not_365() -> None:
    """record_ttl may exceed the 365-day period bound, up to exactly 3650 days."""
    assert Config(record_ttl=above(MAX_PERIOD)).record_ttl == above(MAX_PERIOD)
    assert Config(record_ttl=MAX_RECORD_TTL).record_ttl == MAX_RECORD_TTL
    with pytest.raises(ConfigError, match="record_ttl must be at most 3650 days"):
        Config(record_ttl=above(MAX_RECORD_TTL))


@pytest.mark.parametrize(
    ("kwargs", "least"),
    [
        ({"recovery_timeout": 10, "probe_timeout": 1}, 22.0),
        ({"recovery_timeout": 10}, 40.0),  # probe_timeout defaults to recovery_timeout
        ({"recovery_timeout": 1, "probe_timeout": 10}, 22.0),
    ],
    ids=["given-probe-timeout", "default-probe-timeout", "long-probe-timeout"],
)
def test_record_ttl_is_at_least_twice_recovery_plus_probe(
    kwargs: dict[str, float], least: float
) -> None:
    """record_ttl = 2 x (recovery_timeout + probe_timeout) is accepted; just below is refused."""
    assert Config(**kwargs, record_ttl=least).record_ttl == least  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"at least 2 x .* = {least:g} s"):
        Config(**kwargs, record_ttl=below(least))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 0.0], ids=["int", "float"])
def test_zero_record_ttl_is_refused_as_not_positive(value: float) -> None:
    """record_ttl=0 is refused as a non-positive time (not merely as too short)."""
    with pytest.raises(ConfigError, match="record_ttl must be a finite number of seconds > 0"):
        Config(record_ttl=value)


@pytest.mark.parametrize("name", [*PERIODS, "record_ttl"])
@pytest.mark.parametrize(
    "value", [True, False, -1e-9, math.inf, -math.inf, math.nan, "1", None], ids=repr
)
def test_times_refuse_bools_negatives_non_finite_and_non_numbers(name: str, value: object) -> None:
    """Every time field refuses bools, negatives, infinities, NaN and non-numbers."""
    if name == "probe_timeout" and value is None:
        return  # None is probe_timeout's default: "use recovery_timeout"
    with pytest.raises(ConfigError, match=f"{name} must be a finite number of seconds"):
        Config(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["failure_threshold", "success_threshold"])
@pytest.mark.parametrize("value", [0, -1, True, 1.0, "1"], ids=repr)
def test_thresholds_refuse_anything_but_positive_ints(name: str, value: object) -> None:
    """Thresholds refuse zero, negatives, bools, floats and strings."""
    with pytest.raises(ConfigError, match=f"{name} must be a positive integer"):
        Config(**{name: value})  # type: ignore[arg-type]


def test_success_threshold_refuses_none() -> None:
    """success_threshold has no off switch (failure_threshold=None turns its rule off)."""
    with pytest.raises(ConfigError, match="success_threshold must be a positive integer"):
        Config(success_threshold=None)  # type: ignore[arg-type]


def test_times_are_stored_as_floats() -> None:
    """Integer times are accepted and stored as floats."""
    config = Config(
        recovery_timeout=7,
        probe_timeout=3,
        local_cache_max_age=2,
        record_ttl=100,
        half_open_refresh=1,
    )
    times = (
        config.recovery_timeout,
        config.effective_probe_timeout,
        config.local_cache_max_age,
        config.record_ttl,
        config.half_open_refresh,
    )
    assert times == (7.0, 3.0, 2.0, 100.0, 1.0)
    assert all(type(t) is float for t in times)
    assert type(Config(recovery_timeout=7, record_ttl=100).effective_probe_timeout) is float


def test_exception_filters_are_stored_as_tuples() -> None:
    """A class, a list or a generator of exception classes is stored as a tuple."""
    gen = (t for t in (KeyError, OSError))
    assert Config(ignored_exceptions=gen).ignored_exceptions == (KeyError, OSError)  # type: ignore[arg-type]
    assert Config(handled_exceptions=[OSError]).handled_exceptions == (OSError,)  # type: ignore[arg-type]
    assert Config(ignored_exceptions=KeyError).ignored_exceptions == (KeyError,)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["handled_exceptions", "ignored_exceptions"])
@pytest.mark.parametrize(
    "value",
    [
        (ValueError, BaseException),
        (ValueError, GeneratorExit),
        (ValueError, ValueError()),
        (ValueError, "KeyError"),
        "ValueError",
        42,
    ],
    ids=["base-exception", "generator-exit", "instance", "name", "string", "number"],
)
def test_exception_filters_refuse_anything_but_exception_classes(name: str, value: object) -> None:
    """Each entry must be a subclass of Exception; a string is not a list of classes."""
    with pytest.raises(ConfigError, match=name):
        Config(**{name: value})  # type: ignore[arg-type]


def test_counts_follows_subclasses() -> None:
    """A subclass of a listed exception is listed too, for the allowlist and the denylist."""
    allow = Config(handled_exceptions=(OSError,))
    deny = Config(ignored_exceptions=(OSError,))
    assert allow.counts(TimeoutError())
    assert not allow.counts(KeyError())
    assert not deny.counts(TimeoutError())
    assert deny.counts(KeyError())


def test_an_empty_denylist_does_not_clash_with_an_allowlist() -> None:
    """An empty ignored_exceptions beside handled_exceptions is no denylist: no clash."""
    config = Config(handled_exceptions=(OSError,), ignored_exceptions=())
    assert config.ignored_exceptions is None
    assert config.counts(OSError())
    assert not config.counts(KeyError())

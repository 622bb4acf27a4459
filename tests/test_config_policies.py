"""Config's policy fields: rate and slow-call rules, windows, backoff, jitter, retry_after, quorum.

Every bad value is a ConfigError that names its field; these tests also pin the accepted edges,
how values are normalised, the derived properties, and that record_ttl covers the longest open
period.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

import pytest

from fleetbreaker import Config, ConfigError
from fleetbreaker._limits import MAX_PERIOD
from fleetbreaker.config import DAY, MAX_REPORTERS, MAX_WINDOW_CALLS

RATES = ["failure_rate_threshold", "slow_call_rate_threshold"]
SLOW = {"slow_call_rate_threshold": 0.5, "slow_call_duration_threshold": 1.0}
COUNT = {"sliding_window_type": "count"}


def above(value: float) -> float:
    """The next float above ``value``."""
    return math.nextafter(value, math.inf)


def below(value: float) -> float:
    """The next float below ``value``."""
    return math.nextafter(value, -math.inf)


def bad(
    field: str,
    values: list[object],
    fragment: str,
    *,
    also: Mapping[str, object] | None = None,
) -> list[Any]:
    """One case per value: ``field=value`` (plus ``also``) fails naming ``field``."""
    also = also or {}
    prefix = "".join(f"{k}={v!r}," for k, v in also.items())
    return [
        pytest.param({**also, field: value}, field, fragment, id=f"{prefix}{field}={value!r}")
        for value in values
    ]


WRONG_NUMBERS: list[object] = [True, False, math.nan, math.inf, -math.inf, "1", [1]]
SECONDS = "must be a finite number of seconds > 0"

BAD_VALUES = [
    *bad(
        "failure_rate_threshold",
        [0, 0.0, -0.5, 1.0000001, 2, *WRONG_NUMBERS],
        "failure_rate_threshold must be a rate in (0, 1] (0.5 is 50 %) or None, got ",
    ),
    *bad(
        "slow_call_rate_threshold",
        [0, -0.5, 1.0000001, *WRONG_NUMBERS],
        "slow_call_rate_threshold must be a rate in (0, 1] (0.5 is 50 %) or None, got ",
        also={"slow_call_duration_threshold": 1.0},
    ),
    *bad(
        "slow_call_duration_threshold",
        [0, -1, *WRONG_NUMBERS],
        f"slow_call_duration_threshold {SECONDS}, got ",
        also={"slow_call_rate_threshold": 0.5},
    ),
    *bad(
        "slow_call_duration_threshold",
        [above(MAX_PERIOD)],
        "slow_call_duration_threshold must be at most 365 days",
        also={"slow_call_rate_threshold": 0.5},
    ),
    *bad(
        "minimum_number_of_calls",
        [0, -1, 1.5, 20.0, True, "20", None],
        "minimum_number_of_calls must be a positive integer, got ",
    ),
    *bad(
        "sliding_window_type",
        ["Time", "COUNT", "sliding", "", None, 1, ["time"]],
        'sliding_window_type must be "time" or "count", got ',
    ),
    *bad(
        "sliding_window_size",
        [10.5, 10.0, 0, -1, True, "10", None],
        "sliding_window_size must be a positive integer (a number of calls) for a count window",
        also=COUNT,
    ),
    *bad(
        "sliding_window_size",
        [MAX_WINDOW_CALLS + 1],
        f"sliding_window_size must be at most {MAX_WINDOW_CALLS} calls for a count window",
        also=COUNT,
    ),
    *bad(
        "sliding_window_size",
        [0, -1, -0.5, *WRONG_NUMBERS, None],
        f"sliding_window_size {SECONDS}, got ",
    ),
    *bad(
        "sliding_window_size",
        [above(MAX_PERIOD)],
        "sliding_window_size must be at most 365 days",
    ),
    *bad(
        "record_result",
        [5, "is_error", True],
        "record_result must be callable (value -> bool) or None, got ",
    ),
    *bad(
        "retry_after",
        [30, "30", 1.5],
        "retry_after must be callable (failure -> seconds or None) or None, got ",
    ),
    *bad(
        "recovery_backoff_multiplier",
        [0.99, below(1.0), 0, -2, 1000.5, True, math.nan, math.inf, "2", None],
        "recovery_backoff_multiplier must be a number in [1, 1000] (1 keeps every open period",
    ),
    *bad(
        "recovery_timeout_max",
        [29.9, below(30.0), 1],
        "recovery_timeout_max must be at least recovery_timeout (30 s), got ",
    ),
    *bad(
        "recovery_timeout_max",
        [0, -1, *WRONG_NUMBERS],
        f"recovery_timeout_max {SECONDS}, got ",
    ),
    pytest.param(
        {"recovery_timeout_max": above(MAX_PERIOD)},
        "recovery_timeout_max",
        "recovery_timeout_max must be at most 365 days",
        id="recovery_timeout_max-above-365-days",
    ),
    pytest.param(
        {"recovery_timeout_max": 10**400},
        "recovery_timeout_max",
        "recovery_timeout_max must be at most 365 days",
        id="recovery_timeout_max-huge-int",
    ),
    *bad(
        "recovery_jitter",
        [1.0, 1, 1.5, -0.1, below(0.0), True, math.nan, math.inf, "0.1", None],
        "recovery_jitter must be a share in [0, 1) (0.2 draws each period from [0.8 d, d]), got ",
    ),
    *bad(
        "fleet_minimum_reporters",
        [0, -1, True, 2.0, "2", None],
        "fleet_minimum_reporters must be a positive integer, got ",
    ),
    *bad(
        "fleet_minimum_reporters",
        [MAX_REPORTERS + 1],
        "fleet_minimum_reporters must be at most 32 (a record keeps one report per process)",
    ),
    *bad(
        "fleet_report_window",
        [0, -1, -0.5, *WRONG_NUMBERS],
        f"fleet_report_window {SECONDS}, got ",
    ),
    *bad(
        "fleet_report_window",
        [0, above(MAX_PERIOD)],
        "fleet_report_window must be",
        also=COUNT,
    ),
    *bad(
        "failure_threshold",
        [0, -1, 2.5, True, "5"],
        "failure_threshold must be a positive integer, got ",
    ),
    pytest.param(
        {"slow_call_rate_threshold": 0.5},
        "slow_call_rate_threshold",
        "slow_call_rate_threshold needs slow_call_duration_threshold (the seconds from which",
        id="slow-rate-without-duration",
    ),
    pytest.param(
        {"failure_threshold": None, "slow_call_rate_threshold": 0.5},
        "slow_call_rate_threshold",
        "slow_call_rate_threshold needs slow_call_duration_threshold",
        id="slow-rate-without-duration-as-only-rule",
    ),
    pytest.param(
        {"slow_call_duration_threshold": 2.0},
        "slow_call_duration_threshold",
        "slow_call_duration_threshold needs slow_call_rate_threshold (the share of slow calls",
        id="slow-duration-without-rate",
    ),
    pytest.param(
        {"slow_call_duration_threshold": 2.0, "failure_rate_threshold": 0.5},
        "slow_call_duration_threshold",
        "slow_call_duration_threshold needs slow_call_rate_threshold",
        id="slow-duration-with-failure-rate-but-no-slow-rate",
    ),
    pytest.param(
        {"failure_threshold": None},
        "failure_threshold",
        "no rule could ever trip the circuit: enable failure_threshold, "
        "failure_rate_threshold or slow_call_rate_threshold",
        id="no-rule-enabled",
    ),
    pytest.param(
        {"failure_threshold": None, "failure_rate_threshold": None, "record_result": bool},
        "failure_threshold",
        "no rule could ever trip the circuit",
        id="no-rule-enabled-with-record_result",
    ),
]


@pytest.mark.parametrize(("kwargs", "field", "fragment"), BAD_VALUES)
def test_bad_policy_values(kwargs: dict[str, object], field: str, fragment: str) -> None:
    """Each bad policy value fails at construction with a ConfigError that names its field."""
    with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
        Config(**kwargs)  # type: ignore[arg-type]
    assert field in str(caught.value)


def test_failure_threshold_message_says_none_turns_it_off() -> None:
    """A bad failure_threshold says how to turn the rule off instead."""
    with pytest.raises(ConfigError, match="got 0; None turns the rule off"):
        Config(failure_threshold=0)


def test_no_rule_message_names_every_rule() -> None:
    """With no rule enabled, the message lists the three fields that enable one."""
    with pytest.raises(ConfigError) as caught:
        Config(failure_threshold=None)
    for name in ("failure_threshold", "failure_rate_threshold", "slow_call_rate_threshold"):
        assert name in str(caught.value)


def test_default_config_keeps_todays_behaviour() -> None:
    """The default trips on 5 consecutive failures only, with no window, quorum or backoff."""
    config = Config()
    assert config.failure_threshold == 5
    assert config.failure_rate_threshold is None
    assert config.slow_call_rate_threshold is None
    assert config.slow_call_duration_threshold is None
    assert not config.uses_window
    assert config.fleet_minimum_reporters == 1
    assert config.recovery_backoff_multiplier == 1.0
    assert config.recovery_jitter == 0.0
    assert config.recovery_timeout_max is None
    assert config.record_result is None
    assert config.retry_after is None
    assert config.max_open_period == config.recovery_timeout == 30.0
    assert config.effective_report_window == 60.0
    assert (config.sliding_window_type, config.sliding_window_size) == ("time", 60.0)
    assert config.minimum_number_of_calls == 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": None, "failure_rate_threshold": 0.5},
        {"failure_threshold": None, **SLOW},
        {"failure_rate_threshold": 0.5, **SLOW},
        {"failure_threshold": 3, "failure_rate_threshold": 0.5},
        {"failure_threshold": 3, **SLOW},
    ],
    ids=["failure-rate-only", "slow-rate-only", "both-rates", "count-and-rate", "count-and-slow"],
)
def test_any_enabled_rule_is_enough(kwargs: dict[str, object]) -> None:
    """Any one rule, or any mix of them, is a valid configuration."""
    config = Config(**kwargs)  # type: ignore[arg-type]
    assert config.failure_threshold == kwargs.get("failure_threshold", 5)


@pytest.mark.parametrize(
    ("kwargs", "uses_window"),
    [
        ({}, False),
        ({"failure_threshold": 1}, False),
        ({"sliding_window_type": "count", "sliding_window_size": 10}, False),
        ({"failure_rate_threshold": 0.5}, True),
        (SLOW, True),
    ],
    ids=["default", "consecutive-only", "window-settings-alone", "failure-rate", "slow-rate"],
)
def test_uses_window_follows_the_rate_rules(kwargs: dict[str, object], uses_window: bool) -> None:
    """A window is used exactly when a rate rule is enabled."""
    assert Config(**kwargs).uses_window is uses_window  # type: ignore[arg-type]


@pytest.mark.parametrize("name", RATES)
@pytest.mark.parametrize(
    "value", [1, 1.0, 0.5, 1e-9, math.nextafter(0.0, 1.0)], ids=["1", "1.0", "half", "tiny", "min"]
)
def test_rates_accept_the_half_open_interval(name: str, value: float) -> None:
    """A rate is accepted anywhere in (0, 1], 1 included, and stored as a float."""
    companion = {"slow_call_duration_threshold": 1.0} if name == "slow_call_rate_threshold" else {}
    config = Config(**{name: value}, **companion)  # type: ignore[arg-type]
    stored = getattr(config, name)
    assert stored == value
    assert type(stored) is float


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"recovery_jitter": 0}, "recovery_jitter", 0.0),
        ({"recovery_jitter": below(1.0)}, "recovery_jitter", below(1.0)),
        ({"recovery_backoff_multiplier": 1}, "recovery_backoff_multiplier", 1.0),
        ({"recovery_backoff_multiplier": 1000}, "recovery_backoff_multiplier", 1000.0),
        ({"recovery_timeout_max": 30}, "recovery_timeout_max", 30.0),
        ({"recovery_timeout": 7, "recovery_timeout_max": 7}, "recovery_timeout_max", 7.0),
        ({"fleet_minimum_reporters": MAX_REPORTERS}, "fleet_minimum_reporters", 32),
        ({"fleet_minimum_reporters": 1}, "fleet_minimum_reporters", 1),
        ({"minimum_number_of_calls": 1}, "minimum_number_of_calls", 1),
        ({**SLOW, "slow_call_duration_threshold": 2}, "slow_call_duration_threshold", 2.0),
        ({**SLOW, "slow_call_duration_threshold": 1e-9}, "slow_call_duration_threshold", 1e-9),
        ({"sliding_window_size": 120}, "sliding_window_size", 120.0),
        ({"sliding_window_size": 1e-3}, "sliding_window_size", 1e-3),
        ({"sliding_window_size": MAX_PERIOD}, "sliding_window_size", MAX_PERIOD),
        ({"fleet_report_window": 10}, "fleet_report_window", 10.0),
        ({"fleet_report_window": MAX_PERIOD}, "fleet_report_window", MAX_PERIOD),
    ],
    ids=lambda v: str(v)[:60].replace("\\", ""),
)
def test_accepted_edges_and_float_seconds(
    kwargs: dict[str, object], field: str, expected: float
) -> None:
    """The edge values are accepted; seconds, rates, shares and multipliers become floats."""
    stored = getattr(Config(**kwargs), field)  # type: ignore[arg-type]
    assert stored == expected
    assert type(stored) is type(expected)


@pytest.mark.parametrize("size", [1, 10, MAX_WINDOW_CALLS], ids=["one", "ten", "largest"])
def test_count_window_size_stays_an_int(size: int) -> None:
    """A count window's size is a number of calls, kept as an int up to the largest allowed."""
    config = Config(sliding_window_type="count", sliding_window_size=size)
    assert config.sliding_window_size == size
    assert type(config.sliding_window_size) is int


def test_minimum_number_of_calls_may_exceed_a_count_window() -> None:
    """A minimum above a count window's size is accepted (the window caps it)."""
    config = Config(sliding_window_type="count", sliding_window_size=5, minimum_number_of_calls=20)
    assert (config.sliding_window_size, config.minimum_number_of_calls) == (5, 20)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record_result", lambda value: value is None),
        ("record_result", bool),
        ("retry_after", lambda _failure: 5.0),
        ("retry_after", functools.partial(max, 1.0)),
    ],
    ids=[
        "record_result-lambda",
        "record_result-class",
        "retry_after-lambda",
        "retry_after-partial",
    ],
)
def test_callables_are_accepted_and_kept(field: str, value: object) -> None:
    """Any callable is accepted for record_result and retry_after and kept as given."""
    assert getattr(Config(**{field: value}), field) is value  # type: ignore[arg-type]


def retry_in(failure: object) -> float:
    """A retry_after hint for the tests."""
    return 5.0


@pytest.mark.parametrize(
    ("kwargs", "longest"),
    [
        ({}, 30.0),
        ({"recovery_timeout": 7}, 7.0),
        ({"recovery_jitter": 0.5}, 30.0),
        ({"recovery_backoff_multiplier": 1.0}, 30.0),
        ({"recovery_backoff_multiplier": 1.0001}, DAY),
        ({"recovery_backoff_multiplier": 2}, DAY),
        ({"retry_after": retry_in}, DAY),
        ({"recovery_backoff_multiplier": 2, "retry_after": retry_in}, DAY),
        (
            {"recovery_backoff_multiplier": 2, "recovery_timeout": 2 * DAY, "record_ttl": 9 * DAY},
            2 * DAY,
        ),
        ({"retry_after": retry_in, "recovery_timeout": 2 * DAY, "record_ttl": 9 * DAY}, 2 * DAY),
        ({"recovery_timeout_max": 600}, 600.0),
        ({"recovery_timeout_max": 30}, 30.0),
        ({"recovery_backoff_multiplier": 2, "recovery_timeout_max": 600}, 600.0),
        ({"retry_after": retry_in, "recovery_timeout_max": 600}, 600.0),
        ({"recovery_backoff_multiplier": 2, "recovery_timeout_max": 2 * DAY}, 2 * DAY),
    ],
    ids=[
        "default",
        "no-growth-short",
        "jitter-only-shortens",
        "multiplier-one",
        "multiplier-just-above-one",
        "multiplier",
        "retry_after",
        "multiplier-and-retry_after",
        "multiplier-recovery-timeout-above-a-day",
        "retry_after-recovery-timeout-above-a-day",
        "max-without-growth",
        "max-equal-to-recovery-timeout",
        "max-with-multiplier",
        "max-with-retry_after",
        "max-above-a-day",
    ],
)
def test_max_open_period(kwargs: dict[str, object], longest: float) -> None:
    """recovery_timeout without growth; 24 h (or more) when it can grow; else the given max."""
    config = Config(**kwargs)  # type: ignore[arg-type]
    assert config.max_open_period == longest
    assert type(config.max_open_period) is float


@pytest.mark.parametrize(
    ("kwargs", "window"),
    [
        ({}, 60.0),
        ({"sliding_window_size": 120}, 120.0),
        ({"failure_rate_threshold": 0.5, "sliding_window_size": 300}, 300.0),
        ({"sliding_window_type": "count", "sliding_window_size": 100}, 60.0),
        ({"sliding_window_type": "count", "sliding_window_size": 10**6}, 60.0),
        ({"fleet_report_window": 15}, 15.0),
        ({"fleet_report_window": 15, "sliding_window_size": 120}, 15.0),
        ({"fleet_report_window": 15, "sliding_window_type": "count"}, 15.0),
    ],
    ids=[
        "default",
        "time-window-size",
        "time-window-with-rate",
        "count-window",
        "large-count-window",
        "given",
        "given-over-time-window",
        "given-with-count-window",
    ],
)
def test_effective_report_window(kwargs: dict[str, object], window: float) -> None:
    """fleet_report_window, else the time window's size, else 60 s for a count window."""
    config = Config(**kwargs)  # type: ignore[arg-type]
    assert config.effective_report_window == window
    assert type(config.effective_report_window) is float
    if "fleet_report_window" not in kwargs:
        assert config.fleet_report_window is None  # the default is derived, not stored


# record_ttl must be at least 2 x (max_open_period + effective_probe_timeout).
@pytest.mark.parametrize(
    ("kwargs", "least"),
    [
        ({}, 2 * (30 + 30)),
        ({"recovery_timeout_max": 600}, 2 * (600 + 30)),
        ({"recovery_timeout_max": 600, "probe_timeout": 5}, 2 * (600 + 5)),
        ({"recovery_backoff_multiplier": 2}, 2 * (DAY + 30)),
        ({"retry_after": retry_in}, 2 * (DAY + 30)),
        ({"retry_after": retry_in, "recovery_timeout_max": 100}, 2 * (100 + 30)),
        ({"recovery_timeout": 10, "recovery_backoff_multiplier": 3}, 2 * (DAY + 10)),
    ],
    ids=["default", "max", "max-short-probe", "multiplier", "retry_after", "retry-max", "rt10"],
)
def test_record_ttl_covers_the_longest_open_period(kwargs: dict[str, object], least: float) -> None:
    """record_ttl is accepted at exactly 2 x (longest open + probe) and refused just below."""
    config = Config(**kwargs, record_ttl=least)  # type: ignore[arg-type]
    assert config.record_ttl == least
    assert least == 2 * (config.max_open_period + config.effective_probe_timeout)
    with pytest.raises(ConfigError, match=f"record_ttl must be at least .* = {least:g} s"):
        Config(**kwargs, record_ttl=below(least))  # type: ignore[arg-type]


def test_record_ttl_examples_with_a_max() -> None:
    """With recovery_timeout_max=600 and probe_timeout 30: 1000 is refused, 1300 accepted."""
    with pytest.raises(ConfigError, match=r"= 1260 s .*, got 1000: 600 s is recovery_timeout_max"):
        Config(recovery_timeout_max=600, record_ttl=1000)
    assert Config(recovery_timeout_max=600, record_ttl=1300).record_ttl == 1300.0


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"record_ttl": 100}, "30 s is recovery_timeout, probe_timeout is 30 s; raise record_ttl"),
        (
            {"recovery_timeout_max": 600, "record_ttl": 1000},
            "600 s is recovery_timeout_max, probe_timeout is 30 s; raise record_ttl or lower",
        ),
        (
            {"recovery_backoff_multiplier": 2, "record_ttl": 1000},
            "as recovery_backoff_multiplier > 1 lets it grow and no recovery_timeout_max caps it",
        ),
        (
            {"retry_after": retry_in, "record_ttl": 1000},
            "as retry_after lets it grow and no recovery_timeout_max caps it",
        ),
        (
            {"retry_after": retry_in, "record_ttl": 1000},
            "raise record_ttl or set recovery_timeout_max",
        ),
    ],
    ids=["recovery_timeout", "max", "multiplier", "retry_after", "retry_after-fix"],
)
def test_record_ttl_message_says_where_the_period_comes_from(
    kwargs: dict[str, object], hint: str
) -> None:
    """A too-short record_ttl names the longest open period's source and how to fix it."""
    with pytest.raises(ConfigError, match=re.escape(hint)):
        Config(**kwargs)  # type: ignore[arg-type]


def test_default_record_ttl_refuses_a_max_above_three_and_a_half_days() -> None:
    """The default week covers a 24 h default max, but not a max of 4 days."""
    assert Config(recovery_backoff_multiplier=2).max_open_period == DAY
    with pytest.raises(ConfigError, match="record_ttl must be at least"):
        Config(recovery_timeout_max=4 * DAY)
    assert Config(recovery_timeout_max=4 * DAY, record_ttl=9 * DAY).max_open_period == 4 * DAY


def test_equal_configs_compare_equal_after_normalisation() -> None:
    """Values given as ints equal the same values given as floats."""
    ints = Config(
        recovery_timeout_max=600,
        recovery_backoff_multiplier=2,
        recovery_jitter=0,
        fleet_report_window=10,
        sliding_window_size=30,
        failure_rate_threshold=1,
    )
    floats = Config(
        recovery_timeout_max=600.0,
        recovery_backoff_multiplier=2.0,
        recovery_jitter=0.0,
        fleet_report_window=10.0,
        sliding_window_size=30.0,
        failure_rate_threshold=1.0,
    )
    assert ints == floats

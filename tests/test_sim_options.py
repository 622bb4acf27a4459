"""`fleetbreaker simulate`'s values read from text, and its usage errors (exit 2, a message
naming the option or field): durations, the outage window and shape, `--config FIELD=VALUE`."""

from __future__ import annotations

import pytest

from fleetbreaker import Config, cli
from fleetbreaker._sim import options
from fleetbreaker._sim.model import DownstreamError, Shape
from fleetbreaker.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1.5m", 90.0), ("500ms", 0.5), ("1h", 3600.0), (".5", 0.5)],
    ids=["plain", "s", "m", "ms", "h", "leading-dot"],
)
def test_duration_forms(text: str, seconds: float) -> None:
    """Durations read as seconds, with or without a unit."""
    assert options.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0", "-5s", "5x", "s", "", "1e3", "nan"])
def test_bad_durations_are_refused(text: str) -> None:
    """Zero, negative, unknown units and non-numbers are refused, saying what is accepted."""
    with pytest.raises(ValueError, match="duration"):
        options.parse_duration(text)


def test_outage_window() -> None:
    """START:END reads as two durations; the start may be 0; the end must follow the start."""
    assert options.parse_outage("20s:50s") == (20.0, 50.0)
    assert options.parse_outage("0:1.5m") == (0.0, 90.0)
    with pytest.raises(ValueError, match="START:END"):
        options.parse_outage("20s")
    with pytest.raises(ValueError, match="end after it starts"):
        options.parse_outage("50s:20s")


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("down", Shape("down")),
        ("sick", Shape("sick")),
        ("ratio:0.3", Shape("ratio", failure_ratio=0.3)),
        ("slow:5s", Shape("slow", slow_latency=5.0)),
        ("slow:500ms", Shape("slow", slow_latency=0.5)),
    ],
    ids=["down", "sick", "ratio", "slow", "slow-ms"],
)
def test_outage_shapes(text: str, shape: Shape) -> None:
    """Each shape reads back as itself, and prints as --outage-shape takes it."""
    assert options.parse_shape(text) == shape
    assert options.parse_shape(shape.text) == shape


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ratio:1.5", r"\(0, 1\]"),
        ("ratio:0", r"\(0, 1\]"),
        ("ratio:x", "share of failing calls"),
        ("slow", "slow:5s"),
        ("down:3", "takes no value"),
        ("flaky", "outage shape such as"),
    ],
)
def test_bad_outage_shapes(text: str, message: str) -> None:
    """A malformed shape is refused with what to write instead."""
    with pytest.raises(ValueError, match=message):
        options.parse_shape(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failure_threshold=10", ("failure_threshold", 10)),
        ("failure_threshold=None", ("failure_threshold", None)),
        ("recovery_timeout=45s", ("recovery_timeout", 45.0)),
        ("recovery_timeout=2.5", ("recovery_timeout", 2.5)),
        ("half_open_refresh=250ms", ("half_open_refresh", 0.25)),
        ("sliding_window_size=100", ("sliding_window_size", 100)),
        ("failure_rate_threshold=0.5", ("failure_rate_threshold", 0.5)),
        ("sliding_window_type=count", ("sliding_window_type", "count")),
        ("probe_timeout=none", ("probe_timeout", None)),
        ("record_result=None", ("record_result", None)),
        (
            "handled_exceptions=DownstreamError,TimeoutError",
            ("handled_exceptions", (DownstreamError, TimeoutError)),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_config_items_are_read_by_the_fields_type(text: str, expected: tuple[str, object]) -> None:
    """ints, floats (a whole number stays an int), durations, None, strings, exception names."""
    name, value = options.parse_config_item(text)
    assert (name, value) == expected
    assert type(value) is type(expected[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("failure_treshold=3", "did you mean failure_threshold"),
        ("nonsense=3", "'nonsense' is not a Config field"),
        ("_max_open=3", "is not a Config field"),
        ("failure_threshold", "FIELD=VALUE"),
        ("failure_threshold=three", "failure_threshold takes a whole number"),
        ("recovery_timeout=soon", "recovery_timeout takes a number or a duration"),
        ("retry_after=5", "retry_after cannot be set from the command line"),
        ("handled_exceptions=NoSuchError", "'NoSuchError' is not a builtin exception"),
    ],
)
def test_bad_config_items_name_the_field(text: str, message: str) -> None:
    """An unknown field or a value of the wrong kind is refused, naming the field."""
    with pytest.raises(ValueError, match=message):
        options.parse_config_item(text)


def test_presets_and_overrides_build_one_config() -> None:
    """--config refines --policy's preset; Config validates the result as it always does."""
    quorum = options.build_config("quorum", [("fleet_minimum_reporters", 5)])
    assert quorum.fleet_minimum_reporters == 5
    assert quorum.failure_threshold is None
    assert quorum.failure_rate_threshold == 0.25
    assert options.build_config("consecutive", []) == Config()
    with pytest.raises(ValueError, match="given twice"):
        options.build_config("consecutive", [("success_threshold", 2), ("success_threshold", 4)])
    with pytest.raises(ConfigError, match="no rule could ever trip"):
        options.build_config("consecutive", [("failure_threshold", None)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", "failure_treshold=3"], "did you mean failure_threshold"),
        (["--config", "failure_rate_threshold=2"], "failure_rate_threshold must be a rate"),
        (["--config", "failure_threshold=None"], "no rule could ever trip"),
        (["--outage", "50s:20s"], "--outage: the outage must end after it starts"),
        (["--outage", "20s:95s"], "--outage must end before the run does"),
        (["--outage", "20"], "START:END"),
        (["--outage-shape", "ratio:2"], "--outage-shape"),
        (["--duration", "0"], "--duration: must be a duration of more than 0 s"),
        (["--store-rtt", "5 ms"], "--store-rtt"),
        (["--envs", "0"], "--envs: must be at least 1"),
        (["--plot", "timeline.svg"], "--plot draws a PNG"),
        (["--matrix", "down:fastest"], "a cell is SHAPE:POLICY"),
        (["--policy", "rate", "--compare", "powertools"], "it needs failure_threshold"),
        (["--price-read-per-million", "-1"], "must be a price >= 0"),
        (["--matrix", "--json"], "--matrix runs fleetbreaker alone, as text"),
        (["--matrix", "--compare", "powertools"], "--matrix runs fleetbreaker alone"),
        (["--config", "success_threshold=1", "--config", "success_threshold=2"], "given twice"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad option is exit 2 before any simulation, with a message that names it."""
    assert cli.main(["simulate", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`simulate --help` exits 0 and lists each option."""
    assert cli.main(["simulate", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--envs", "--rps", "--duration", "--outage", "--outage-shape", "--store-rtt",
        "--latency", "--seed", "--policy", "--config", "--compare", "--json", "--plot",
        "--check", "--matrix", "--price-write-per-million", "--price-read-per-million",
        "--item-bytes", "--jobs", "--trace-writes",
    ):  # fmt: skip
        assert option in out, option


def test_command_names_the_engines_protocols() -> None:
    """The command's protocol names (kept apart so the CLI loads no engine) are the engine's."""
    from fleetbreaker._cli import simulate
    from fleetbreaker._sim import engine

    assert (simulate.FLEETBREAKER, simulate.POWERTOOLS) == (engine.FLEETBREAKER, engine.POWERTOOLS)
    assert set(engine.FACTORIES) == {simulate.FLEETBREAKER, simulate.POWERTOOLS}

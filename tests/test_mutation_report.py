"""scripts/mutation_report.py: which mutants only change message text."""

from __future__ import annotations

import ast

import pytest
from scripts import mutation_report


def function(source: str) -> ast.FunctionDef:
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


ORIGINAL = """
def x_check__mutmut_orig(value, info):
    if value < 1:
        raise ConfigError(f"value must be positive, got {value!r}")
    if value > 9:
        raise ConfigError('value ' + "too large")
    logger.warning('checked %s', value)
    if info is not None:
        raise CircuitOpenError(info)
    return StoreError(f'store: {value}')
"""


CASES = {
    "raise-message-none": (
        'raise ConfigError(f"value must be positive, got {value!r}")',
        "raise ConfigError(None)",
        True,
    ),
    "raise-message-text": ("'value ' + \"too large\"", "'XXvalue XX' + \"too large\"", True),
    "log-argument-removed": (
        "logger.warning('checked %s', value)",
        "logger.warning('checked %s')",
        True,
    ),
    "log-format-none": ("logger.warning('checked %s', value)", "logger.warning(None, value)", True),
    "returned-exception-message": ("StoreError(f'store: {value}')", "StoreError(None)", True),
    "exception-payload": ("CircuitOpenError(info)", "CircuitOpenError(None)", False),
    "condition": ("if value < 1:", "if value <= 1:", False),
    "exception-type": ("raise ConfigError('value '", "raise ValueError('value '", False),
    "log-call-removed": ("logger.warning('checked %s', value)", "pass", False),
}


@pytest.mark.parametrize(("before", "after", "expected"), CASES.values(), ids=CASES.keys())
def test_message_only(before: str, after: str, expected: bool) -> None:
    """Only changes to message text count as message-only; data and control flow do not."""
    assert before in ORIGINAL
    mutant = function(ORIGINAL.replace(before, after).replace("__mutmut_orig", "__mutmut_1"))
    assert mutation_report.message_only(function(ORIGINAL), mutant) is expected


def test_an_unchanged_function_is_not_message_only() -> None:
    """A mutant that changes nothing (but its name) is not counted as a message change."""
    mutant = function(ORIGINAL.replace("__mutmut_orig", "__mutmut_1"))
    assert not mutation_report.message_only(function(ORIGINAL), mutant)


def test_function_labels() -> None:
    """Mutant names map to the function or method they mutate."""
    assert mutation_report._function_label("x_trip__mutmut_3") == "trip"
    label = mutation_report._function_label("xǁCircuitBreakerǁ_admit__mutmut_15")
    assert label == "CircuitBreaker._admit"


def test_equivalents_are_read_from_the_table(tmp_path: pytest.TempPathFactory) -> None:
    """The equivalents file's table rows map mutant names to their reasons."""
    doc = tmp_path / "mutation.md"  # type: ignore[operator]
    doc.write_text(
        "| mutant | why |\n|---|---|\n"
        "| `fleetbreaker._breaker.x_f__mutmut_2` | float() reads -INF as -inf |\n"
    )
    assert mutation_report.read_equivalents(doc) == {
        "fleetbreaker._breaker.x_f__mutmut_2": "float() reads -INF as -inf"
    }


HELPERS = """
def _int(value, field):
    if not isinstance(value, int):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    return value


def _opt_int(value, field):
    return None if value is None else _int(value, field)


def x_load__mutmut_orig(payload):
    return _opt_int(payload.get("epoch"), "epoch")
"""


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (', "epoch")', ', "XXepochXX")', True),
        (', "epoch")', ", None)", True),
        ('get("epoch")', 'get("XXepochXX")', False),
    ],
    ids=["field-name-text", "field-name-none", "payload-key"],
)
def test_parameters_only_used_in_messages(before: str, after: str, expected: bool) -> None:
    """An argument a helper only puts into its error message is message text, even through
    another helper; the data it checks is not."""
    params = mutation_report.message_parameters(ast.parse(HELPERS))
    assert params == {"_int": {1, "field"}, "_opt_int": {1, "field"}}
    source = HELPERS.split("\n\n\n")[2]
    assert source.count(before) == 1
    mutant = function(source.replace(before, after).replace("__mutmut_orig", "__mutmut_1"))
    assert mutation_report.message_only(function(source), mutant, params) is expected

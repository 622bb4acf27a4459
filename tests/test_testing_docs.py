"""docs/testing.md's examples run as written: each Python block is executed, and a block that
is a test module (its first line names the file) passes under pytest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).parents[1] / "docs" / "testing.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
MODULES = [block for block in BLOCKS if re.match(r"# test_\w+\.py\n", block)]
SNIPPETS = [block for block in BLOCKS if block not in MODULES]


def test_the_page_has_examples() -> None:
    """The extraction finds the page's examples (an empty list would pass vacuously)."""
    assert len(SNIPPETS) >= 5
    assert len(MODULES) == 1


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"example-{i}" for i in range(len(SNIPPETS))])
def test_example_runs(snippet: str) -> None:
    """An example's assertions hold when it runs on its own."""
    exec(compile(snippet, str(DOC), "exec"), {"__name__": "docs_testing_example"})  # noqa: S102


@pytest.mark.timeout(300)
@pytest.mark.parametrize("module", MODULES, ids=["third-party-store"])
def test_example_store_passes_the_contract(pytester: pytest.Pytester, module: str) -> None:
    """The page's complete store passes every check of the suite it subclasses."""
    name = re.match(r"# (test_\w+)\.py\n", module)
    assert name is not None
    pytester.makepyfile(**{name.group(1): module})
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert set(outcomes) == {"passed"}, result.stdout.str()
    assert outcomes["passed"] >= 55

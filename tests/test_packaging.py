"""What PyPI shows: project links, and a README whose links work off the repository."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/fleetbreaker/fleetbreaker"


def test_project_urls() -> None:
    """The installed metadata names the homepage, docs, changelog and issue tracker."""
    entries = importlib.metadata.metadata("fleetbreaker").get_all("Project-URL") or []
    urls = dict(entry.split(", ", 1) for entry in entries)
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert all(url.startswith(REPOSITORY) for url in urls.values())


def test_readme_links_are_absolute() -> None:
    """Every README link works on PyPI too: no link is relative to the repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(
        r"(?:src|href)=\"([^\"]+)\"", readme
    )
    assert targets
    relative = [t for t in targets if not re.match(r"(https?:|mailto:|#)", t)]
    assert relative == []
    for target in targets:
        if target.startswith(f"{REPOSITORY}/blob/main/"):
            path, _, anchor = target.removeprefix(f"{REPOSITORY}/blob/main/").partition("#")
            assert (ROOT / path).exists(), target
            if anchor:  # GitHub's heading anchors: lower case, spaces as dashes
                headings = re.findall(
                    r"^#+ (.+)$", (ROOT / path).read_text(encoding="utf-8"), re.MULTILINE
                )
                slugs = {
                    re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings
                }
                assert anchor in slugs, target

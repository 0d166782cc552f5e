"""The docs stay honest: every test a docs page cites exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _all_test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^\s*(?:async )?def (test_\w+)", path.read_text(), flags=re.M))
    return names


def test_every_test_cited_in_differences_exists():
    text = (ROOT / "docs" / "differences-from-streamz.md").read_text()
    # millstream tests are cited by name; file names (test_x.py), patterns (test_http_*) and
    # Streamz's own tests ("Streamz's `test_delay`") are not names to look up
    cited = {
        m.group(2)
        for m in re.finditer(r"(Streamz's `)?\b(test_\w+)(\.py|\*)?", text)
        if not m.group(1) and not m.group(3)
    }
    assert cited, "the differences page cites no test"
    missing = sorted(cited - _all_test_names())
    assert not missing, f"cited tests that do not exist: {missing}"


def test_differences_page_has_an_entry_per_section():
    text = (ROOT / "docs" / "differences-from-streamz.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[2:]
    for section in sections:
        assert "### " in section, section.splitlines()[0]

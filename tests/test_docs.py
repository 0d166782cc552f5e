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


def test_architecture_page_names_only_modules_that_exist():
    """docs/architecture.md is the map of the code: every file and module it names exists,
    and its layer table lists every package tests/test_architecture.py knows."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    src = ROOT / "src" / "millstream"
    paths = set(re.findall(r"`((?:\w+/)+\w+\.py)`", text))
    paths |= set(
        re.findall(
            r"(?<![/\w])((?:core|operators|kafka|sources|sinks|time|dask|cli)/\w+\.py)", text
        )
    )
    assert len(paths) > 10
    missing = sorted(
        p for p in paths if not any((base / p).exists() for base in (src, src.parent, ROOT))
    )
    assert not missing, f"files named in docs/architecture.md that do not exist: {missing}"
    modules = set(re.findall(r"`(millstream(?:\.\w+)+)`", text))
    absent = []
    for name in sorted(modules):
        parts = name.split(".")[1:]
        base = src.joinpath(*parts)
        found = base.with_suffix(".py").exists() or (base / "__init__.py").exists()
        owner = base.parent  # ``millstream.pkg.attribute``: a name the module defines
        if not found and (owner.with_suffix(".py").exists() or (owner / "__init__.py").exists()):
            module = owner.with_suffix(".py") if owner.with_suffix(".py").exists() else owner
            code = (module / "__init__.py" if module.is_dir() else module).read_text()
            found = re.search(rf"\b{parts[-1]}\b", code) is not None
        if not found:
            absent.append(name)
    planned = {
        "millstream.checkpoint",
        "millstream.dataframe",
        "millstream.batch",
        "millstream.graph",
        "millstream.metrics",
    }
    assert set(absent) <= planned, (
        f"modules named that do not exist: {sorted(set(absent) - planned)}"
    )
    for line in text.splitlines():
        for name in planned & set(re.findall(r"`(millstream\.\w+)`", line)):
            top = src / name.split(".")[1]
            if not (top.exists() or top.with_suffix(".py").exists()):
                assert "(planned)" in line, f"{name} does not exist yet: mark it (planned)"
    packages = {p.name for p in src.iterdir() if (p / "__init__.py").exists()}
    listed = set(re.findall(r"`millstream\.(\w+)`", text))
    assert packages <= listed, f"packages missing from the layer table: {packages - listed}"

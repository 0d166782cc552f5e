"""The documentation site (mkdocs.yml) builds with warnings as errors, and its API
reference really holds the docstrings: a broken link, an anchor that moved or a docstring
numpydoc cannot read fails here."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        assert importlib.util.find_spec(module) is not None, (
            f"{module} is missing: pip install -e '.[test]' (mkdocs, mkdocstrings[python])"
        )
    out = tmp_path_factory.mktemp("docs") / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    return out, log


def _page(site: tuple[Path, str], name: str) -> str:
    path = site[0] / name / "index.html" if name else site[0] / "index.html"
    assert path.exists(), f"the site has no page {name or 'index'}"
    return path.read_text()


@pytest.mark.timeout(300)
def test_site_builds_without_warnings(site):
    _, log = site
    assert "WARNING" not in log, log
    assert "Documentation built" in log


@pytest.mark.timeout(300)
def test_every_guide_is_a_page_of_the_site(site):
    for md in (ROOT / "docs").glob("*.md"):
        page = _page(site, "" if md.stem == "index" else md.stem)
        title = md.read_text().splitlines()[0].lstrip("# ").replace("`", "")
        assert title.split(":")[0] in re.sub(r"<[^>]+>", "", page), md.name
    home = _page(site, "")
    assert 'href="api/"' in home and 'href="architecture/"' in home


@pytest.mark.timeout(300)
def test_api_reference_holds_the_docstrings(site):
    core = _page(site, "api/core")
    assert 'id="millstream.core.Stream"' in core
    assert "A node of a stream graph" in core  # Stream's docstring
    assert 'id="millstream.core.Stream.emit"' in core

    sources = _page(site, "api/sources")
    assert 'id="millstream.sources.kafka.from_kafka"' in sources
    assert "reading as part of a consumer group" in sources  # from_kafka's summary
    assert "drain_timeout" in sources and "consumer_params" in sources  # its parameters
    assert 'id="millstream.sources.kafka_batched.from_kafka_batched"' in sources

    operators = _page(site, "api/operators")
    for name in ("map", "filter", "accumulate", "zip", "timed_window", "map_async"):
        assert re.search(rf'id="millstream\.operators\.\w+\.{name}"', operators), name

    for page, name in [
        ("api/sinks", "millstream.sinks.kafka.to_kafka"),
        ("api/time", "millstream.time.Tumbling"),
        ("api/checkpoint", "millstream.checkpoint.enable"),
        ("api/dask", "millstream.dask.DaskStream"),
        ("api/dataframe", "millstream.dataframe.DataFrame"),
        ("api/batch", "millstream.batch.Batch"),
        ("api/testing", "millstream.testing.wait_for"),
        ("api/exceptions", "millstream.exceptions.MillstreamError"),
    ]:
        assert f'id="{name}"' in _page(site, page), name


@pytest.mark.timeout(300)
def test_doctests_render_as_code(site):
    """A runnable example outside an ``Examples`` section is a code block, not Markdown
    quotes (tools/docs/doctest_blocks.py), and Sphinx roles are code, not raw text."""
    operators = _page(site, "api/operators")
    table = operators[operators.index('id="millstream.operators.aggregate.FrequencyTable"') :]
    table = table[: table.index('class="doc doc-children"')]
    assert re.search(r"<pre>.*&gt;&gt;&gt;.*sink_to_list", table, flags=re.S)
    for html in (site[0] / "api").rglob("*.html"):
        text = html.read_text()
        assert "<blockquote" not in text, html
        assert not re.search(r":(class|meth|func|attr):<code>", text), html

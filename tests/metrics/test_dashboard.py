"""The dashboard in a real browser (headless Chromium through selenium) while a pipeline
runs: every node drawn, current rates, totals that match the nodes' metrics, the
checkpoints panel; a screenshot (copied to $MILLSTREAM_DOCS_SCREENSHOT when set).

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/test installs them) and the
``selenium`` package (the ``test`` extra): without them the test FAILS, it never skips."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from millstream import Stream
from millstream.checkpoint import enable
from millstream.metrics import serve

INSTALL = "apt-get install chromium chromium-driver (and pip install -e '.[test]' for selenium)"
WORDS = "the quick brown fox jumps over a lazy dog while streams of words flow by".split()


def find_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver"
        if os.path.exists("/usr/lib/chromium/chromedriver")
        else None
    )
    if chromium is None or driver is None:
        pytest.fail(f"chromium or chromedriver is missing: {INSTALL}", pytrace=False)
    return chromium, driver


@pytest.fixture
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is missing: {INSTALL}", pytrace=False)
    chromium, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1500,560",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as error:  # the browser cannot start: fail with what to install
        pytest.fail(f"headless chromium did not start ({error}): {INSTALL}", pytrace=False)
    try:
        yield driver
    finally:
        driver.quit()


def lines() -> Iterator[str]:
    """An endless, slow text: ~100 lines per 10 ms."""
    for i in itertools.count():
        if i % 100 == 0:
            time.sleep(0.01)
        yield " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))


SHOWN = """
return Array.from(document.querySelectorAll('g.node')).map(function (g) {
  var d = g.dataset;
  return {id: d.node, type: d.type, rate: d.rate, elements_out: d.elementsOut,
          elements_in: d.elementsIn, errors: d.errors, dead_letters: d.deadLetters,
          text: g.textContent};
});
"""


def shown(driver) -> dict[str, dict]:
    return {n["id"]: n for n in driver.execute_script(SHOWN)}


def wait(driver, condition, timeout=30.0, what="the dashboard"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what} never showed it; it shows {shown(driver)}", pytrace=False)


def test_the_dashboard_shows_the_running_graph(browser, tmp_path):
    source = Stream.from_iterable(lines(), stream_name="lines")
    words = source.map(str.split).flatten()
    long_words = words.filter(lambda w: len(w) > 3)
    upper = long_words.map(str.upper)
    counted: list[int] = [0]
    sink = upper.sink(lambda w: counted.__setitem__(0, counted[0] + 1))
    nodes = {
        "lines": source,
        "lines/map": source.downstreams[0],
        "lines/map/flatten": words,
        "lines/map/flatten/filter": long_words,
        "lines/map/flatten/filter/map": upper,
        "lines/map/flatten/filter/map/sink": sink,
    }
    checkpoints = enable(source, tmp_path / "checkpoints", interval="0.3s")
    source.start()
    server = serve(source, interval=0.4)
    try:
        browser.get(server.url)
        assert browser.title == "millstream dashboard"

        def live() -> dict | None:
            page = shown(browser)
            moving = [
                i for i in nodes if page.get(i, {}).get("rate") and float(page[i]["rate"]) > 0
            ]
            return page if set(page) == set(nodes) and len(moving) >= 5 else None

        page = wait(browser, live, what="every node with a non-zero rate")
        after = {i: n.metrics for i, n in nodes.items()}
        for node_id in nodes:
            drawn = page[node_id]
            assert drawn["type"] == after[node_id]["type"]
            assert node_id.rsplit("/", 1)[-1][:20] in drawn["text"]
            out = int(drawn["elements_out"])
            assert (0 < out <= after[node_id]["elements_out"]) or node_id.endswith("sink")
            assert int(drawn["errors"]) == 0 == after[node_id]["errors"]
            assert " /s" in drawn["text"] and "backlog" in drawn["text"]
        assert int(page["lines/map"]["elements_in"]) <= after["lines/map"]["elements_in"]
        assert len(browser.find_elements("css selector", "path.edge")) == len(nodes) - 1

        def checkpoint_shown() -> str | None:
            text = browser.find_element("css selector", '#checkpoints [data-field="last_id"]').text
            return text if text.isdigit() else None

        last_id = int(wait(browser, checkpoint_shown, what="a checkpoint id"))
        assert 1 <= last_id <= checkpoints.last.id
        assert browser.find_element("css selector", "#status").get_attribute("data-state") == "live"
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("MILLSTREAM_DOCS_SCREENSHOT"):
            target = Path(os.environ["MILLSTREAM_DOCS_SCREENSHOT"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, target)

        # stopped: the totals on the page become exactly the nodes' metrics, rates 0
        source.stop()
        checkpoints.close(final=False)
        final = {i: n.metrics["elements_out"] for i, n in nodes.items()}

        def settled() -> dict | None:
            page = shown(browser)
            ok = all(
                int(page[i]["elements_out"]) == final[i] and float(page[i]["rate"] or -1) == 0
                for i in nodes
            )
            return page if ok else None

        page = wait(browser, settled, what="the final totals with rates 0")
        assert final["lines/map/flatten/filter/map"] == counted[0] > 0
    finally:
        server.stop()
        source.stop()

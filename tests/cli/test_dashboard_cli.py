"""``--dashboard PORT`` of ``millstream wordcount`` (stdin, a file with checkpoints, Kafka)
and ``millstream run``: ``/metrics`` fetched while the command runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import millstream
from millstream.cli import main

SRC = str(Path(millstream.__file__).resolve().parents[1])
URL = re.compile(r"^millstream (\w+): dashboard at (http://127\.0\.0\.1:\d+/) ")
WORDCOUNT_NODES = ["lines", "lines/map", "lines/map/map", "lines/map/map/flatten"]


def child(*args: str, cwd: Path | None = None, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    env.update(PYTHONPATH=SRC, COLUMNS="100", **extra)
    return subprocess.Popen(
        [sys.executable, "-m", "millstream", *args],
        cwd=cwd, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def dashboard_url(proc: subprocess.Popen[str], command: str) -> str:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    m = URL.match(line)
    assert m, line
    assert m[1] == command
    assert f"(metrics at {m[2]}metrics)" in line
    return m[2]


def elements_total(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = re.findall(r'^millstream_elements_total\{node="([^"]+)"[^}]*\} (\S+)$', text, re.M)
    return {node: float(value) for node, value in found}


def wait_for_total(url: str, node: str, at_least: float) -> dict[str, float]:
    deadline = time.monotonic() + 20
    while True:
        totals = elements_total(url)
        if totals.get(node, 0) >= at_least:
            return totals
        assert time.monotonic() < deadline, totals
        time.sleep(0.1)


def finish(proc: subprocess.Popen[str], last: str | None = None) -> tuple[int, str, str]:
    """Send ``last`` (then the end of stdin) and wait for the command's end."""
    try:
        out, err = proc.communicate(last, timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err


def test_wordcount_stdin_serves_metrics_while_it_runs() -> None:
    proc = child("wordcount", "-", "--dashboard", "0")
    assert proc.stdin is not None
    try:
        url = dashboard_url(proc, "wordcount")
        proc.stdin.write("to be or not\nto be\n")
        proc.stdin.flush()
        totals = wait_for_total(url, "lines", 2)
        assert totals["lines"] == 2  # the lines read so far, while stdin stays open
        assert totals["lines/map/map/flatten"] == 6  # the words
        assert set(WORDCOUNT_NODES) <= set(totals)
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
    finally:
        code, out, err = finish(proc, "the end\n")
    assert code == 0, err
    assert "3 lines, 8 words" in out


def test_wordcount_file_with_checkpoints_serves_metrics(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text("a b\n" * 50, encoding="utf-8")
    proc = child(
        "wordcount", str(text), "--checkpoint", str(tmp_path / "cp"), "--dashboard", "0",
        "--top", "2",
    )  # fmt: skip
    url_line = proc.stderr.readline() if proc.stderr else ""
    code, out, err = finish(proc)
    assert code == 0, err
    assert URL.match(url_line), url_line
    assert "50 lines, 100 words" in out


def test_run_serves_metrics_until_sigterm(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(
        "import time\nfrom millstream import Stream\n"
        "def build():\n"
        "    n = Stream.from_iterable(range(100000), chunk_size=8, stream_name='numbers')\n"
        "    n.map(lambda x: time.sleep(0.001) or x).sink(lambda x: None)\n"
        "    return n\n",
        encoding="utf-8",
    )
    proc = child("run", "job:build", "--dashboard", "0", cwd=tmp_path)
    try:
        url = dashboard_url(proc, "run")
        totals = wait_for_total(url, "numbers", 100)
        assert set(totals) == {"numbers", "numbers/map", "numbers/map/sink"}
        assert totals["numbers/map"] <= totals["numbers"] < 100000
        os.kill(proc.pid, signal.SIGTERM)
    finally:
        code, _, err = finish(proc)
    assert code == 0, err


def test_wordcount_kafka_serves_metrics(kafka_bootstrap: str, kafka_topic, tmp_path: Path) -> None:
    topic = kafka_topic()
    text = tmp_path / "text.txt"
    text.write_text("one two\nthree\n", encoding="utf-8")
    assert main(["load-kafka", str(text), "--kafka", kafka_bootstrap, "--topic", topic]) == 0
    argv = ["wordcount", "--kafka", kafka_bootstrap, "--topic", topic, "--from-beginning"]
    proc = child(*argv, "--idle-exit", "3", "--dashboard", "0")
    try:
        url = dashboard_url(proc, "wordcount")
        totals = elements_total(url)
        while not any(v >= 3 and "flatten" in node for node, v in totals.items()):
            assert proc.poll() is None
            time.sleep(0.1)
            totals = elements_total(url)
        assert totals["FromKafkaBatched"] >= 1, totals  # the source, read through the graph
    finally:
        code, out, err = finish(proc)
    assert code == 0, err
    assert "2 lines, 3 words" in out

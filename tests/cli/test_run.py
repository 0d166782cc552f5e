"""``millstream run MODULE:ATTRIBUTE`` in child processes: to the end of a bounded input,
SIGTERM with checkpoints and the resumed run, the errors, the environment, the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import millstream
from millstream.checkpoint import CheckpointStore
from millstream.cli.main import main

SRC = str(Path(millstream.__file__).resolve().parents[1])

JOB = textwrap.dedent(
    """
    import os
    import time

    from millstream import Stream

    N = int(os.environ.get("JOB_N", "20"))
    PAUSE = float(os.environ.get("JOB_PAUSE", "0"))


    def slow_double(x):
        time.sleep(PAUSE)
        return 2 * x


    def write(out, x):
        out.write(f"{x}\\n")
        out.flush()


    def build():
        numbers = Stream.from_iterable(range(N), chunk_size=16, stream_name="numbers")
        out = open(os.environ["JOB_OUT"], "a")
        numbers.map(slow_double).sink(lambda x: write(out, x))
        return numbers


    def broken():
        numbers = Stream.from_iterable(range(10), stream_name="numbers")
        numbers.map(lambda x: 1 // (x - 3)).sink(print)
        return numbers


    source = build() if os.environ.get("JOB_AT_IMPORT") else None
    not_a_stream = 42


    def returns_text():
        return "a stream"
    """
)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "job.py").write_text(JOB, encoding="utf-8")
    return tmp_path


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MILLSTREAM_", "JOB_"))}
    e["PYTHONPATH"] = SRC
    e["JOB_OUT"] = str(tmp_path / "out.txt")
    e.update(extra)
    return e


def run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "millstream", "run", *args],
        cwd=tmp_path,
        env=env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def output(tmp_path: Path) -> list[int]:
    path = tmp_path / "out.txt"
    return [int(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_runs_a_bounded_pipeline_to_the_end(job: Path) -> None:
    proc = run(job, "job:build")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert output(job) == [2 * i for i in range(20)]


def test_the_attribute_may_be_a_node_built_at_import(job: Path) -> None:
    proc = run(job, "job:source", JOB_AT_IMPORT="1", JOB_N="5")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert output(job) == [0, 2, 4, 6, 8]


def test_sigterm_checkpoints_and_the_next_run_resumes(job: Path) -> None:
    location = job / "checkpoints"
    extra = {"JOB_N": "3000", "JOB_PAUSE": "0.001"}
    child = subprocess.Popen(
        [sys.executable, "-m", "millstream", "run", "job:build", "--checkpoint", str(location),
         "--log-level", "INFO"],
        cwd=job, env=env(job, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(output(job)) < 200:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 0, stderr
    assert "SIGTERM received" in stderr
    first = output(job)
    assert 200 <= len(first) < 3000  # stopped before the end
    store = CheckpointStore(str(location))
    assert store.ids(), "no checkpoint written"
    assert f"last checkpoint: {store.ids()[-1]} at {location}" in stderr

    proc = run(job, "job:build", "--checkpoint", str(location), **extra)
    assert (proc.returncode, proc.stderr) == (0, "")
    everything = output(job)
    assert everything[: len(first)] == first
    assert sorted(everything) == [2 * i for i in range(3000)]  # none lost, none twice


def test_a_pipeline_error_is_one_message_and_exit_1(job: Path) -> None:
    proc = run(job, "job:broken")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "millstream run: error: the pipeline stopped: ZeroDivisionError: integer division or "
        "modulo by zero"
    )
    assert "slow_double" not in proc.stderr and "<lambda>" in proc.stderr  # the node's note
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("ZeroDivisionError") == 1

    debug = run(job, "job:broken", "--log-level", "DEBUG")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmodule:build", "no module named 'nosuchmodule'"),
        ("job:nope", "module 'job' has no attribute 'nope'"),
        ("job:not_a_stream", "job:not_a_stream is of type int, not a Stream nor a function"),
        ("job:returns_text", "job:returns_text() returned type str, not a Stream"),
        ("job", "expected MODULE:ATTRIBUTE, got 'job'"),
    ],
)
def test_a_target_that_is_no_pipeline_is_one_line_exit_2(
    job: Path, target: str, message: str
) -> None:
    proc = run(job, target)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"millstream run: error: {message}")
    assert len(proc.stderr.splitlines()) == 1


def test_options_come_from_the_environment(job: Path) -> None:
    location = job / "from-env"
    proc = run(job, "job:build", MILLSTREAM_CHECKPOINT=str(location), MILLSTREAM_LOG_LEVEL="info")
    assert proc.returncode == 0, proc.stderr
    assert CheckpointStore(str(location)).ids()
    assert "millstream.cli: running job:build" in proc.stderr
    bad = run(job, "job:build", MILLSTREAM_LOG_LEVEL="loud")
    assert bad.returncode == 2
    assert "MILLSTREAM_LOG_LEVEL='loud'" in bad.stderr


def test_log_level_debug_shows_millstream_logs(job: Path) -> None:
    proc = run(job, "job:build", "--log-level", "DEBUG")
    assert proc.returncode == 0
    assert " DEBUG millstream." in proc.stderr or " INFO millstream." in proc.stderr
    assert "INFO millstream.cli: running job:build: 1 source(s)" in proc.stderr
    quiet = run(job, "job:build")
    assert quiet.stderr == ""


def test_help_names_the_variables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("CHECKPOINT", "CHECKPOINT_INTERVAL", "DASHBOARD", "DASHBOARD_HOST", "LOG_LEVEL"):
        assert f"MILLSTREAM_{name}" in out

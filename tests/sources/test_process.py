"""from_process: lines as bytes, stderr, end of output, stop() kills and reaps the child.

Expected outputs where Streamz is right were checked against streamz 0.6.6:
lines as bytes with newline, with_end True/False.
"""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest

from millstream import Stream
from millstream.testing import wait_for

PY = sys.executable


def python(code):
    return [PY, "-c", code]


def run_to_end(source, timeout=2):
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, timeout)
    return L


def gone(pid):
    """True when no process (not even a zombie) has this pid any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_lines_are_bytes_with_newline_and_last_partial_line():
    source = Stream.from_process(python("print('a'); print('b'); print('c', end='')"))
    assert run_to_end(source) == [b"a\n", b"b\n", b"c"]
    assert source.process is None and source.error is None


def test_with_end_false_drops_the_last_partial_line():
    code = "import sys; sys.stdout.write('x\\ny')"
    source = Stream.from_process(python(code), with_end=False)
    assert run_to_end(source) == [b"x\n"]


def test_string_command_is_split_like_a_shell():
    source = Stream.from_process(f"{PY} -c \"print('two words')\"")
    assert run_to_end(source) == [b"two words\n"]


def test_with_stderr_merges_standard_error():
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True)"
    source = Stream.from_process(python(code), with_stderr=True)
    assert run_to_end(source) == [b"out\n", b"err\n"]


def test_long_lines_and_many_lines():
    code = "print('x' * 200000); [print(i) for i in range(5000)]"
    source = Stream.from_process(python(code))
    L = run_to_end(source)
    assert L[0] == b"x" * 200000 + b"\n"
    assert L[1:] == [f"{i}\n".encode() for i in range(5000)]


def test_open_kwargs_reach_the_subprocess(tmp_path):
    code = "import os; print(os.getcwd()); print(os.environ['MILLSTREAM_X'])"
    env = {**os.environ, "MILLSTREAM_X": "42"}
    source = Stream.from_process(python(code), open_kwargs={"cwd": str(tmp_path), "env": env})
    assert run_to_end(source) == [f"{tmp_path}\n".encode(), b"42\n"]


def test_stop_terminates_and_reaps_a_running_child():
    code = "import time; print('ready', flush=True); time.sleep(60)"
    source = Stream.from_process(python(code))
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: L == [b"ready\n"], 2)
    pid = source.process.pid
    assert psutil.pid_exists(pid)
    source.stop()
    assert gone(pid)  # terminated and reaped: not even a zombie is left
    assert source.process is None and source.work_task.done()


def test_stop_kills_a_child_that_ignores_sigterm():
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    source = Stream.from_process(python(code))
    source.terminate_timeout = 0.2
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: L == [b"ready\n"], 2)
    pid = source.process.pid
    t0 = time.monotonic()
    source.stop()
    assert time.monotonic() - t0 < 1.5
    assert gone(pid)


def test_stop_while_the_child_is_silent_before_any_output():
    source = Stream.from_process(python("import time; time.sleep(60)"))
    source.start()
    assert source.ready.is_set()
    pid = source.process.pid
    source.stop()
    assert gone(pid)


def test_child_that_ends_is_reaped_and_source_stops():
    source = Stream.from_process(python("import time; time.sleep(0.2); print('bye')"))
    source.start()
    pid = source.process.pid
    wait_for(lambda: source.stopped, 2)
    assert gone(pid)


def test_restart_runs_the_command_again():
    source = Stream.from_process(python("print('run')"))
    L = run_to_end(source)
    source.start()
    wait_for(lambda: source.stopped, 2)
    assert L == [b"run\n", b"run\n"]


def test_missing_command_raises_from_start():
    source = Stream.from_process(["millstream-no-such-command", "x"])
    with pytest.raises(FileNotFoundError, match="from_process: command not found"):
        source.start()
    assert source.stopped


def test_bad_arguments():
    with pytest.raises(ValueError, match="from_process: cmd is empty"):
        Stream.from_process("")
    with pytest.raises(TypeError, match="from_process: cmd must be"):
        Stream.from_process(42)
    with pytest.raises(ValueError, match="must not set 'stdout'"):
        Stream.from_process("ls", open_kwargs={"stdout": None})

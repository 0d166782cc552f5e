"""Type checkers see the methods registered on ``Stream`` (``millstream/_stream_methods.py``).

* every method ``Stream`` has at run time is declared there, as the same node, with the
  same parameters (and nothing else is declared);
* mypy, run on a user's snippet, types ``source.map(f)`` as ``map`` and reports a
  misspelt method, a missing argument and an argument of the wrong type.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
from typing import Any

import millstream
import millstream.testing  # registers Stream.from_testing
from millstream import Stream, _stream_methods
from millstream._stream_methods import StreamMethods, node_method, source_method


def _is_lazy(func: Any) -> re.Match[str] | None:
    """The target of a ``register_lazy`` stub not called yet (its documented docstring)."""
    return re.fullmatch(r"``([\w.]+):(\w+)``, imported on first use\.", func.__doc__ or "")


def _registered() -> dict[str, Any]:
    """name -> (node, is a static method) of every method registered on Stream at run time."""
    found = {}
    for name, attribute in vars(Stream).items():
        static = isinstance(attribute, staticmethod)
        func = attribute.__func__ if static else attribute
        if not inspect.isfunction(func) or func.__qualname__.startswith("Stream."):
            continue  # Stream's own methods, classmethods, properties
        lazy = _is_lazy(func)
        if lazy:  # register_lazy's stub: the node is its target
            node = getattr(importlib.import_module(lazy[1]), lazy[2])
        else:
            node = getattr(func, "__wrapped__", func)
        found[name] = (node, static)
    return found


def _declared() -> dict[str, Any]:
    return {
        name: (value.node, isinstance(value, source_method))
        for name, value in vars(StreamMethods).items()
        if isinstance(value, (node_method, source_method))
    }


def test_every_registered_method_is_declared_for_type_checkers():
    registered, declared = _registered(), _declared()
    assert len(registered) > 40  # the lazy ones included
    assert {"scatter", "to_dataframe", "to_batch", "map", "from_iterable"} <= set(registered)
    missing = sorted(set(registered) - set(declared))
    assert not missing, f"add to {_stream_methods.__file__}: {missing}"
    stale = sorted(set(declared) - set(registered))
    assert not stale, f"declared but not registered on Stream: {stale}"
    for name, (node, static) in registered.items():
        declared_node, declared_static = declared[name]
        assert declared_node is node, f"{name}: declared {declared_node}, registered {node}"
        assert declared_static == static, f"{name}: static method at run time: {static}"
        method = getattr(Stream, name)
        runtime = list(inspect.signature(node if _is_lazy(method) else method).parameters)
        for_checkers = list(inspect.signature(declared_node).parameters)
        assert runtime == for_checkers, name


def test_stream_derives_from_the_declarations_for_type_checkers_only():
    assert Stream.__mro__[1:] == (object,)
    assert "millstream._stream_methods" in sys.modules  # imported by this test, not millstream


SNIPPET = """\
from millstream import Stream

def inc(x: int) -> int:
    return x + 1

source = Stream()
mapped = source.map(inc)
reveal_type(mapped)
reveal_type(Stream.from_iterable([1, 2]))
reveal_type(source.sink_to_list())
reveal_type(source.scatter())
total = mapped.filter(lambda x: x > 0).accumulate(lambda a, b: a + b, start=0)
L: list = total.sliding_window(2, return_partial=False).sink_to_list()
source.mapp(inc)  # line 14: no such method
source.map()  # line 15: no function
source.sliding_window("x")  # line 16: n is an int
"""


def _mypy(tmp_path: pathlib.Path, code: str) -> list[str]:
    """mypy's lines about ``code`` (a file of its own), checked against this millstream."""
    (tmp_path / "snippet.py").write_text(code)
    env = dict(os.environ)
    src = pathlib.Path(millstream.__file__).resolve().parents[1]
    site = {pathlib.Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    if src not in site:  # a source checkout (PYTHONPATH, editable install): show it to mypy
        env["MYPYPATH"] = str(src)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary",
         "--show-error-codes", "--cache-dir", str(tmp_path / ".mypy_cache"),
         "--config-file", os.devnull, "snippet.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 2: mypy itself failed
    return [line for line in done.stdout.splitlines() if line.startswith("snippet.py:")]


def test_mypy_types_the_registered_methods_and_reports_their_misuse(tmp_path):
    lines = _mypy(tmp_path, SNIPPET)
    report = "\n".join(lines)
    by_line: dict[int, list[str]] = {}
    for line in lines:
        number, message = line.split(":", 2)[1:]
        by_line.setdefault(int(number), []).append(message.strip())

    def revealed(number: int) -> str:
        [message] = by_line[number]
        return message.removeprefix("note: Revealed type is ").strip('"')

    assert revealed(8) == "millstream.operators.elementwise.map", report
    assert revealed(9) == "millstream.sources.iterable.from_iterable", report
    assert revealed(10) in ("builtins.list[Any]", "list[Any]"), report
    assert revealed(11) == "millstream.dask.border.scatter", report
    assert not any(n <= 13 and "error" in m for n, ms in by_line.items() for m in ms), report
    assert any('"Stream" has no attribute "mapp"' in m for m in by_line[14]), report
    assert any("Too few arguments" in m or '"func"' in m for m in by_line[15]), report
    assert any('incompatible type "str"' in m and '"int"' in m for m in by_line[16]), report

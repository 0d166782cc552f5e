"""The public surface: exports, docstrings with examples, import cost."""

from __future__ import annotations

import subprocess
import sys

import millstream
from millstream import Stream

CORE_NODES = [
    "map", "starmap", "filter", "remove", "accumulate", "slice", "partition", "partition_unique",
    "sliding_window", "timed_window", "timed_window_unique", "delay", "rate_limit", "buffer", "zip",
    "combine_latest", "zip_latest", "union", "flatten", "unique", "pluck", "collect", "latest",
    "frequencies", "sink", "sink_to_textfile", "map_async",
]  # fmt: skip


def test_every_core_node_is_registered_with_a_runnable_example():
    for name in CORE_NODES:
        method = getattr(Stream, name)
        assert method.__name__ == name
        doc = method.__doc__ or ""
        assert "Examples" in doc and ">>>" in doc, f"{name} lacks a runnable example"


def test_scan_and_concat_aliases():
    s = Stream()
    assert type(s.scan(lambda a, x: a + x)).__name__ == "accumulate"
    assert type(s.concat()).__name__ == "flatten"


def test_all_names_exist():
    for name in millstream.__all__:
        assert getattr(millstream, name) is not None, name


def test_import_pulls_in_no_heavy_or_tornado_dependency():
    code = (
        "import sys, millstream; "
        "print(sorted(m for m in ('dask', 'distributed', 'pandas', 'numpy', 'tornado') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

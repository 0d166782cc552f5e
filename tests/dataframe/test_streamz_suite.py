"""Streamz 0.6.6's own dataframe tests, run against millstream with only the imports changed.

At test time this reads Streamz's installed test files (nothing of Streamz is copied into
this repository), rewrites their imports of ``streamz``, ``streamz.dataframe``,
``streamz.batch``, ``streamz.graph`` and ``streamz.dask`` to millstream's (Streamz's
``streamz.utils_test`` helpers stay), writes them into ``tmp_path`` and runs pytest on them
in a subprocess. The set of failing tests must equal :data:`EXPECTED_FAILURES`: a new
failure fails this test, and so does an expected failure that now passes (then remove it
from the table).

What runs (``SELECTION``), to stay within about a minute on two cores: every test of
``test_dataframe_utils.py``, ``test_batch.py`` and ``test_graph.py``, and of
``test_dataframes.py`` every test on a local stream (the ``core`` parameter and the tests
without a stream parameter) but the ``'1d'`` half of ``test_groupby_windowing_value``
(its ``'10h'`` half runs), plus the ``dask`` parameter of every test except
``test_rolling_count_aggregations`` (216 cases) and ``test_binary_operators`` (36): their
``core`` halves run, and the Dask path of rolling and arithmetic is covered by
``tests/dataframe/test_on_dask.py``. That is 1,027 of the 1,423 cases of these files,
about a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("streamz")
pytest.importorskip("flaky")
pytest.importorskip("pyarrow")
pytest.importorskip("distributed")

import streamz

import millstream

STREAMZ = Path(streamz.__file__).parent

#: Streamz's test files that run: (path under the streamz package, name written to tmp_path)
FILES = {
    "dataframe/tests/test_dataframes.py": "test_dataframes.py",
    "dataframe/tests/test_dataframe_utils.py": "test_dataframe_utils.py",
    "tests/test_batch.py": "test_batch.py",
    "tests/test_graph.py": "test_graph.py",
}

#: The ``-k`` expression: see the module docstring.
SELECTION = (
    "not (dask and (test_rolling_count_aggregations or test_binary_operators))"
    " and not (test_groupby_windowing_value and 1d)"
)

_GROUPBY_DTYPE = (
    "dtype only: the example declares `amount` float64 and the chunks hold int64; "
    "Streamz's groupby state starts from the example, so its sums come out float64, "
    "millstream's are pandas' on the chunks (int64); the values are equal. "
    "Ours: tests/dataframe/test_groupby.py::test_start_state_dtypes_follow_the_chunks"
)
_QUANTILE = (
    "the test's own pandas call `rolling(w).quantile(quantile=0.5)` raises TypeError "
    "under pandas >= 2 (the argument is `q`); Streamz 0.6.6 fails it the same way. "
    "Ours: tests/dataframe/test_rolling.py::"
    "test_every_aggregation_equals_pandas_over_the_concatenation[*-quantile]"
)

#: test id -> why it fails with millstream, and the millstream test showing our behaviour
EXPECTED_FAILURES: dict[str, str] = {
    "test_dataframes.py::test_gc": (
        "the graph owns its nodes: upstreams hold downstreams strongly (Streamz: a weak "
        "set), so dropping the last reference to a frame does not detach its branch; "
        "destroy() does. Ours: tests/core/test_stream.py::"
        "test_an_unreferenced_branch_keeps_working_because_the_graph_owns_its_nodes"
    ),
    "test_dataframes.py::test_ewm_raise_multiple_arguments": (
        "error wording: ewm's parameter checks raise pandas' messages ('comass, span, "
        "halflife, and alpha are mutually exclusive'; Streamz: 'Can only provide one "
        "of ...'), still a ValueError. "
        "Ours: tests/dataframe/test_expanding.py::test_ewm_checks_its_parameters_as_pandas"
    ),
    **{
        f"test_dataframes.py::test_ewm_notimplemented[{op}]": (
            f"ewm(...).{op}() is implemented (pandas' values; Streamz raises "
            "NotImplementedError). Ours: tests/dataframe/test_expanding.py::"
            "test_ewm_equals_pandas_last_row_per_chunk"
        )
        for op in ("sum", "var", "std")
    },
    **{
        f"test_dataframes.py::test_{name}[{stream}]": _GROUPBY_DTYPE
        for name in (
            "groupby_aggregate_with_start_state",
            "windowed_groupby_aggs_with_start_state",
        )
        for stream in ("core", "dask")
    },
    **{
        "test_dataframes.py::test_rolling_count_aggregations"
        f"[core-<lambda>-<lambda>{getter}-{m}-{window}-kwargs8-quantile]": _QUANTILE
        for getter in (0, 1, 2)
        for m in (2, 5)
        for window in (2, 7, "3h", "window3")
    },
}

_IMPORTS = [
    # (pattern, replacement): Streamz's packages become millstream's, utils_test stays
    (
        re.compile(r"^(\s*)from streamz(\.(?:dataframe|batch|graph|dask)[\w.]*)? import", re.M),
        r"\1from millstream\2 import",
    ),
    (re.compile(r"^(\s*)import streamz\.dataframe as", re.M), r"\1import millstream.dataframe as"),
    # test_graph.py's ``from ..graph import _clean_text``: the helper under test
    (re.compile(r"^(\s*)from \.\.graph import", re.M), r"\1from millstream.core.graph import"),
]


def rewrite_imports(source: str) -> str:
    """Streamz's test source with its imports of Streamz pointed at millstream.

    >>> rewrite_imports("from streamz import Stream\\nfrom streamz.utils_test import inc")
    'from millstream import Stream\\nfrom streamz.utils_test import inc'
    >>> rewrite_imports("    from streamz.dataframe.core import random_datapoint")
    '    from millstream.dataframe.core import random_datapoint'
    """
    for pattern, replacement in _IMPORTS:
        source = pattern.sub(replacement, source)
    return source


def failing_tests(junit: Path) -> tuple[set[str], int]:
    """The ids (``file::name``) of the failed or errored tests in a JUnit XML report, and
    the number of test cases in it."""
    failed = set()
    cases = ET.parse(junit).getroot().iter("testcase")
    count = 0
    for case in cases:
        count += 1
        if case.find("failure") is not None or case.find("error") is not None:
            module = case.get("classname", "").rsplit(".", 1)[-1]
            failed.add(f"{module}.py::{case.get('name')}")
    return failed, count


@pytest.mark.timeout(400)  # the subprocess's own limit is 300 s
def test_streamz_own_dataframe_tests_pass_but_for_the_listed_differences(tmp_path: Path) -> None:
    for source, name in FILES.items():
        text = (STREAMZ / source).read_text()
        written = rewrite_imports(text)
        assert "from streamz.dataframe" not in written and "import streamz.dataframe" not in written
        (tmp_path / name).write_text(written)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: Streamz's slow tests\n")
    junit = tmp_path / "report.xml"
    src = str(Path(millstream.__file__).parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
        "-W", "ignore", "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"),
        "-k", SELECTION, f"--junitxml={junit}", *FILES.values(),
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert junit.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    failed, count = failing_tests(junit)
    assert count > 1000, run.stdout[-3000:]  # the selection ran (1,027 cases)
    unexpected = failed - EXPECTED_FAILURES.keys()
    fixed = EXPECTED_FAILURES.keys() - failed
    assert not unexpected and not fixed, (
        f"new failures: {sorted(unexpected)}; expected failures that pass now (remove them "
        f"from EXPECTED_FAILURES): {sorted(fixed)}\n{run.stdout[-5000:]}"
    )

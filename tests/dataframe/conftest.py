"""The frame package the dataframe tests run on: pandas, or cudf on a machine with an
NVIDIA GPU when ``MILLSTREAM_TEST_CUDF=1`` (see scripts/gpu-check).

Tests build their chunks with the ``xd`` fixture (``xd.DataFrame(...)``, ``xd.concat``)
and compare with :func:`assert_frame_equal` / :func:`assert_series_equal` from
``tests/dataframe/frames_testing.py``, so the same test checks either package.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest


def frame_package() -> ModuleType:
    """pandas, or cudf when ``MILLSTREAM_TEST_CUDF=1`` (it must then import)."""
    if os.environ.get("MILLSTREAM_TEST_CUDF") == "1":
        import cudf  # only on a GPU machine

        return cudf
    import pandas

    return pandas


@pytest.fixture
def xd() -> ModuleType:
    """The frame package of this run (pandas or cudf)."""
    return frame_package()

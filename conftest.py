"""Fixtures for the doctests in ``src/millstream`` (collected with ``--doctest-modules``).

The examples of :mod:`millstream.dask` use ``client``, an open Dask client: one in-process
``Client(processes=False)`` (one worker thread) for the whole session, made the first
time a doctest of ``millstream.dask`` runs and handed to it through pytest's
``doctest_namespace``. No other doctest starts a cluster.

Dask nodes use ``distributed.default_client()``, the most recently created open client:
run the doctests after ``tests/dask`` (pytest's ``testpaths`` order), whose fixtures
expect their own client to be the default.

This file sits at the root of the repository, outside the package (not shipped with
millstream), and not in ``src/``: a ``src/conftest.py``, loaded after ``tests/conftest.py``,
would take the module name ``conftest`` from it while pytest collects ``tests/*/conftest.py``
for doctests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DASK_PACKAGE = Path(__file__).parent / "src" / "millstream" / "dask"


@pytest.fixture(scope="session")
def dask_doctest_client() -> Iterator[Any]:
    """The session's in-process Dask client for the doctests of ``millstream.dask``."""
    from distributed import Client

    client = Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _client_in_dask_doctests(request: pytest.FixtureRequest, doctest_namespace: dict) -> None:
    """Put ``client`` in the namespace of the doctests of ``millstream.dask``."""
    path = getattr(request.node, "path", None)
    if path is not None and Path(path).is_relative_to(DASK_PACKAGE):
        doctest_namespace["client"] = request.getfixturevalue("dask_doctest_client")

"""Dask fixtures: one real multi-process cluster for the session, and an in-process one.

Test modules are shipped to the workers by value (cloudpickle), so functions defined in a
test module run on worker processes that cannot import that module.
"""

from __future__ import annotations

import cloudpickle
import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="session")
def dask_cluster():
    """A real ``LocalCluster``: a scheduler and 2 worker processes of 1 thread each."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # the scheduler's HTTP endpoints (always served) on a free loopback port, not :8787
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def session_client(dask_cluster):
    with Client(dask_cluster) as client:
        yield client


@pytest.fixture
def client(session_client):
    """The session's client; ``distributed.default_client()`` returns it (the most recent
    open client) unless the test opens another one."""
    return session_client


@pytest.fixture
def inproc_client():
    """A fresh in-process cluster (scheduler and one worker thread in this process)."""
    with Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as client:
        yield client


@pytest.fixture(autouse=True)
def _ship_test_functions_by_value(request):
    cloudpickle.register_pickle_by_value(request.module)
    yield

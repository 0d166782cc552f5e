"""Dask fixtures: a ``LocalCluster`` and a cluster of separate ``dask`` CLI processes.

* ``dask_cluster`` / ``session_client`` / ``client``: a real ``LocalCluster`` (scheduler in
  this process, 2 worker processes of 1 thread), defined in ``tests/conftest.py`` so that
  other directories (``tests/dataframe/test_on_dask.py``) share the session's cluster;
  its client is the default client while no newer client is open.
* ``process_cluster``: ``dask scheduler`` and 2 ``dask worker --nthreads 1 --nworkers 1``
  processes started with the command line, as a deployment runs them (session-wide).
  ``module_process_cluster`` (one per test module, for tests that kill workers) and
  ``start_process_cluster`` (one per test) are the same; :class:`ProcessCluster` also
  starts extra workers and kills them (``kill -9``).
* ``cluster_client``: parametrized over both clusters (ids ``LocalCluster`` and
  ``dask-cli``); the client it gives is ``distributed.default_client()`` during the test.
* ``inproc_client``: a fresh in-process cluster (scheduler and one worker thread here).

Functions defined in test modules must be importable where tasks are unpickled: on the
workers and (distributed 2026.8) on the scheduler, which deserializes task graphs. A
``LocalCluster``'s processes inherit this process's ``sys.path`` (multiprocessing spawn
passes it on); the CLI processes get it as ``PYTHONPATH``, with the rest of this
interpreter's environment (millstream is installed in it). Test modules are also
registered with cloudpickle by value, for lambdas and closures (pickled with cloudpickle)
that name module-level functions. The CLI processes are killed with the session
(``PR_SET_PDEATHSIG``) and by the fixtures' teardown, and never outlive the tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from distributed import Client, default_client

#: how long the CLI processes get to start, and to stop gracefully before SIGKILL
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


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


# -- a cluster of separate processes, started with the dask command line -------------------


def _dask_command() -> list[str]:
    """``dask`` of this interpreter (its console script, else ``python -m dask``)."""
    script = Path(sys.executable).with_name("dask")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "dask"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGKILL this process when the test process dies (no orphans after a crash)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ProcessCluster:
    """``dask scheduler`` and ``dask worker`` processes on loopback, in ``directory``.

    Each process is started in a session of its own (a worker's nanny and the worker it
    spawns share a process group), so :meth:`stop` can end a whole worker at once.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.scheduler: subprocess.Popen | None = None
        self.scheduler_address = ""
        self.workers: dict[str, subprocess.Popen] = {}  # name -> CLI process
        self._count = 0

    # -- processes -------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "wb")  # the child writes to it
        # what multiprocessing gives a LocalCluster's workers: this process's sys.path
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env["MILLSTREAM_TEST_DASK_ROLE"] = args[0]  # "scheduler" or "worker", for tests
        try:
            return subprocess.Popen(
                _dask_command() + args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            log.close()

    def log_tail(self, name: str, n: int = 30) -> str:
        path = self.directory / f"{name}.log"
        if not path.exists():
            return ""
        lines = path.read_text(errors="replace").splitlines()
        return f"--- {name}.log ---\n" + "\n".join(lines[-n:])

    def start(self, n_workers: int = 2) -> None:
        """Start the scheduler and ``n_workers`` workers (with nannies); wait for them."""
        self.scheduler = self._spawn(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(self.scheduler_file),
            ],
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.scheduler_address:
            if self.scheduler.poll() is not None:
                raise RuntimeError("dask scheduler exited at start\n" + self.log_tail("scheduler"))
            if time.monotonic() > deadline:
                raise TimeoutError("dask scheduler did not start\n" + self.log_tail("scheduler"))
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.scheduler_address = json.loads(self.scheduler_file.read_text())["address"]
            time.sleep(0.02)
        names = [self.start_worker(wait=False) for _ in range(n_workers)]
        self.wait_for_workers(names)

    def start_worker(self, nanny: bool = True, wait: bool = True) -> str:
        """Start one ``dask worker`` of 1 thread; return its name (``self.workers[name]``).

        Without a nanny the CLI process is the worker itself: ``kill -9`` on it loses the
        worker for good (a nanny would start a new one).
        """
        self._count += 1
        name = f"worker-{self._count}" if nanny else f"bare-worker-{self._count}"
        self.workers[name] = self._spawn(
            name,
            [
                "worker",
                self.scheduler_address,
                "--name",
                name,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--nanny" if nanny else "--no-nanny",
                "--no-dashboard",
                "--local-directory",
                str(self.directory / "work"),
                # a worker whose scheduler is gone exits by itself
                "--death-timeout",
                "30",
            ],
        )
        if wait:
            self.wait_for_workers([name])
        return name

    def worker_addresses(self, client: Client) -> dict[str, str]:
        """name -> address of the workers the scheduler knows now."""
        workers = client.scheduler_info(n_workers=-1)["workers"]
        return {info["name"]: address for address, info in workers.items()}

    def wait_for_workers(self, names: list[str], gone: bool = False) -> None:
        """Wait until the scheduler lists every one of ``names`` (or none, with ``gone``)."""
        deadline = time.monotonic() + START_TIMEOUT
        with Client(self.scheduler_address, timeout=START_TIMEOUT, set_as_default=False) as c:
            while True:
                known = self.worker_addresses(c)
                if all((name in known) != gone for name in names):
                    return
                for name in names:
                    if not gone and self.workers[name].poll() is not None:
                        raise RuntimeError(f"{name} exited at start\n" + self.log_tail(name))
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"workers {names} not {'gone' if gone else 'up'}: scheduler lists "
                        f"{sorted(known)}\n" + "\n".join(self.log_tail(n) for n in names)
                    )
                time.sleep(0.05)

    def kill_worker(self, name: str) -> None:
        """``kill -9`` a worker started without a nanny; wait until the scheduler knows."""
        proc = self.workers[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT)
        self.wait_for_workers([name], gone=True)

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left of the group (a nanny's worker): killed
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)

    def stop_worker(self, name: str) -> None:
        self._stop(self.workers.pop(name))

    def close(self) -> None:
        """Stop every worker, then the scheduler (SIGTERM, then SIGKILL after 10 s)."""
        for name in list(self.workers):
            self.stop_worker(name)
        if self.scheduler is not None:
            self._stop(self.scheduler)
            self.scheduler = None


@contextlib.contextmanager
def process_cluster_running(directory: Path, n_workers: int = 2):
    cluster = ProcessCluster(directory)
    try:
        cluster.start(n_workers)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def start_process_cluster(tmp_path):
    """``start_process_cluster(n_workers=2) -> ProcessCluster``: a cluster of this test
    alone, closed (no process left) after it."""
    clusters: list[ProcessCluster] = []

    def start(n_workers: int = 2) -> ProcessCluster:
        cluster = ProcessCluster(tmp_path / f"cluster-{len(clusters)}")
        cluster.directory.mkdir()
        clusters.append(cluster)
        cluster.start(n_workers)
        return cluster

    yield start
    for cluster in clusters:
        cluster.close()


@pytest.fixture(scope="session")
def process_cluster(tmp_path_factory):
    """``dask scheduler`` + 2 ``dask worker --nthreads 1 --nworkers 1`` processes."""
    with process_cluster_running(tmp_path_factory.mktemp("dask-cli")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def module_process_cluster(tmp_path_factory):
    """A CLI cluster (scheduler + 2 workers) of one test module alone: for tests that kill
    workers, so that the session's clusters never see it."""
    with process_cluster_running(tmp_path_factory.mktemp("dask-cli-module")) as cluster:
        yield cluster


@pytest.fixture(params=["LocalCluster", "dask-cli"])
def cluster_client(request):
    """A client of either cluster; ``default_client()`` returns it during the test.

    The ``dask-cli`` client is opened for the test and closed after it, so that the
    ``LocalCluster`` client stays the default for the other tests.
    """
    if request.param == "LocalCluster":
        c = request.getfixturevalue("session_client")
        assert default_client() is c
        yield c
        return
    cluster = request.getfixturevalue("process_cluster")
    with Client(cluster.scheduler_address, timeout=START_TIMEOUT) as c:
        assert default_client() is c
        yield c

"""The backlog of the Dask nodes that hold futures (``buffer``, ``gather``): what is
submitted and not yet out of ``gather``, on a real LocalCluster."""

from __future__ import annotations

import uuid

from distributed import Event

from millstream import Stream
from millstream.testing import wait_for


def blocked(x, gate):
    Event(gate).wait(60)
    return x


def test_backlog_counts_tasks_in_flight_while_blocked_and_is_zero_after(client):
    gate = f"gate-{uuid.uuid4().hex}"
    source = Stream()
    buffered = source.scatter().map(blocked, gate).buffer(8)
    gathered = buffered.gather()
    L = gathered.sink_to_list()
    for i in range(3):
        source.emit(i)
    wait_for(lambda: buffered.metrics["backlog"] == 3, 30)
    wait_for(lambda: gathered.metrics["backlog"] > 0, 30)
    assert L == []
    Event(gate, client=client).set()
    wait_for(lambda: L == [0, 1, 2], 60)
    wait_for(lambda: buffered.metrics["backlog"] == 0, 10)
    wait_for(lambda: gathered.metrics["backlog"] == 0, 10)

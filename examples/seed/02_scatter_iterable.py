"""Map a slow function over a local iterable in parallel on Dask (Streamz docs, "Dask
Integration: Parallel Execution"), with the import changed to millstream.

``scatter`` turns the stream into a ``DaskStream``: each element goes to the cluster and
``map`` runs ``inc`` there. ``buffer(8)`` lets eight unfinished futures build up before
the source is held back, and ``gather`` brings the results back into a local stream.

    python examples/seed/02_scatter_iterable.py

It prints each result as it arrives, then, as its last line, the list of results (JSON).
"""

import json
from time import sleep

from dask.distributed import Client

from millstream import Stream
from millstream.testing import wait_for


def inc(x):
    sleep(0.1)  # simulate actual work (the docs sleep one second)
    return x + 1


if __name__ == "__main__":  # Dask starts its worker processes by re-importing this file
    client = Client()

    source = Stream.from_iterable(range(10))
    gathered = source.scatter().map(inc).buffer(8).gather()
    gathered.sink(print)
    results = gathered.sink_to_list()

    source.start()
    wait_for(lambda: len(results) == 10, 60)  # the docs' stream runs for ever; this one ends
    client.close()
    print(json.dumps(results))

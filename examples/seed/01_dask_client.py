"""Start a local Dask cluster and a client for it (Streamz docs, "Dask Integration").

This operates on local processes or threads. If Bokeh is installed, the client also
serves a diagnostics dashboard at http://localhost:8787/status.

    python examples/seed/01_dask_client.py

The last line printed is JSON: the number of workers and a task's result.
"""

import json

from dask.distributed import Client


def inc(x):
    return x + 1


if __name__ == "__main__":  # Dask starts its worker processes by re-importing this file
    client = Client()

    # a first task, to show the cluster works
    result = client.submit(inc, 41).result()
    workers = len(client.scheduler_info()["workers"])
    client.close()
    print(json.dumps({"workers": workers, "result": result}))

"""A checkpointed ``from_kafka`` pipeline run as a child process by
test_kafka_checkpoint_restart.py, until it is killed.

Arguments: bootstrap topic group checkpoint-dir seconds-per-record [group.instance.id].
It prints one JSON line when its first record arrives: the record's partition and offset
and the seconds since ``start()`` was called.
"""

from __future__ import annotations

import json
import sys
import time

from millstream import Stream
from millstream.checkpoint import enable


def main() -> None:
    bootstrap, topic, group, where, delay = sys.argv[1:6]
    config = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    if len(sys.argv) > 6:
        config["group.instance.id"] = sys.argv[6]
    source = Stream.from_kafka(topic, config, poll_interval=0.02, keys=True, max_in_flight=10)
    started = [0.0]
    first: list[dict] = []

    def record(r: dict) -> None:
        if not first:
            first.append(r)
            after = time.monotonic() - started[0]
            line = {"partition": r["partition"], "offset": r["offset"], "after_start": after}
            print(json.dumps(line), flush=True)
        time.sleep(float(delay))

    source.map(lambda r: r["value"]).frequencies()  # state, checkpointed with the position
    source.sink(record)
    enable(source, where, interval=0.2)
    started[0] = time.monotonic()
    source.start()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

"""``from_pulsar`` under the checkpoint coordinator (``millstream.checkpoint.enable``):
a restored graph resumes the subscription from the checkpoint's position."""

from __future__ import annotations

import time

from millstream import Stream
from millstream.checkpoint import enable

from ._helpers import produce, wait_for


def values(n: int, start: int = 0) -> list[bytes]:
    return [f"m{i}".encode() for i in range(start, start + n)]


def test_a_restored_graph_resumes_from_the_checkpointed_position(
    pulsar_url, pulsar_client, topic, tmp_path
):
    location = tmp_path / "ck"
    produce(pulsar_client, topic, values(10))
    source = Stream.from_pulsar(
        pulsar_url, topic, "cp", initial_position="earliest", stream_name="in"
    )
    first = source.map(bytes).sink_to_list()
    checkpoints = enable(source, location, interval=None)
    source.start()
    try:
        wait_for(lambda: source.acknowledged == 10, what="the first 10 acknowledged")
        taken = checkpoints.checkpoint()
        assert taken is not None
        # after the checkpoint: processed and acknowledged, but in no checkpoint
        produce(pulsar_client, topic, values(5, 10))
        wait_for(lambda: source.acknowledged == 15, what="5 more acknowledged")
    finally:
        source.stop()
        checkpoints.close(final=False)  # as if the process died here
    assert first == values(15)

    produce(pulsar_client, topic, values(5, 15))
    again = Stream.from_pulsar(pulsar_url, topic, "cp", stream_name="in")
    second = again.map(bytes).sink_to_list()
    restarted = enable(again, location, interval=None)
    assert restarted.restored == taken.id
    again.start()
    try:
        # the subscription had acknowledged m10..m14: the restore seeks it back to the
        # checkpoint, so they come again (at-least-once), then m15..m19
        wait_for(lambda: len(second) >= 10, what="the 10 messages after the checkpoint")
        time.sleep(0.5)
        assert second == values(10, 10)
        assert again.acknowledged == 10
    finally:
        again.stop()
        restarted.close(final=False)
    assert set(first) | set(second) == set(values(20))

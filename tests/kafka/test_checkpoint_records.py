"""Reading a pipeline's checkpoint record while another pipeline keeps committing to the
same record topic (two instances of one job, T8)."""

from __future__ import annotations

import threading
import time
import uuid

from millstream.kafka.transactions import KafkaTransactions


def test_the_committed_checkpoint_is_found_while_another_pipeline_commits_every_50_ms(
    kafka_bootstrap,
):
    record_topic = f"checkpoints-{uuid.uuid4().hex[:10]}"
    config = {"bootstrap.servers": kafka_bootstrap}
    mine = KafkaTransactions(config, f"/mine-{record_topic}#out", record_topic)
    mine.start()
    mine.prepare()
    mine.commit(7)
    mine.resume()
    mine.close()

    other = KafkaTransactions(config, f"/other-{record_topic}#out", record_topic)
    other.start()
    stop = threading.Event()

    def commit_often() -> None:
        checkpoint = 0
        while not stop.is_set():
            checkpoint += 1
            other.prepare()
            other.commit(checkpoint)
            other.resume()
            time.sleep(0.05)

    committer = threading.Thread(target=commit_often)
    committer.start()
    try:
        time.sleep(1.0)  # the other pipeline commits more often than a fetch waits (500 ms)
        assert other.commits > 5
        again = KafkaTransactions(config, f"/mine-{record_topic}#out", record_topic)
        began = time.monotonic()
        again.start()
        assert again.committed_checkpoint(timeout=20) == 7
        took = time.monotonic() - began
        again.close()
    finally:
        stop.set()
        committer.join(30)
        other.close()
    assert took < 10, f"reading the checkpoint record took {took:.1f} s"

"""T5: poison records in an exactly-once pipeline, which is also killed meanwhile
(reliability.md §6).

Seeded input positions hold poison values (the parsing step raises on them). With a
dead-letter stream written by ``to_kafka_dead_letters`` in the same Kafka transaction as
the output and the offsets, every poison record must land in the dead-letter topic exactly
once, byte-identical (key and value, the error in ``millstream.*`` headers), and every
other record must be processed exactly once (running counts 1..N per key), although the
pipeline is killed with SIGKILL at seeded moments and restarted. The kills must hit open
transactions (aborted records), and the poison records must not block their partitions
(the group's committed offsets reach the input's ends).
"""

from __future__ import annotations

import uuid

from .eos_pipeline import check_running_counts, child_command, kill_and_finish
from .harness import (
    Children,
    ConcurrentReader,
    aborted_records,
    check_delivery,
    committed_offsets,
    create_topics,
    fault_schedule,
    produce_input,
    read_topic,
    sized,
    wait_no_open_transactions,
)

N = sized(12_000, 300_000)
PARTITIONS = 3
POISON = sized(40, 1_000)
KILLS = sized(3, 10)


def test_t5_poison_records_go_to_dead_letters_exactly_once(reliability_broker, tmp_path):
    bootstrap = reliability_broker
    schedule = fault_schedule("T5", KILLS, spread=(0.1, 0.85))
    poisoned = set(schedule.rng.sample(range(N), POISON))
    schedule.show()
    print(f"poison at input positions {sorted(poisoned)[:10]}... ({len(poisoned)})", flush=True)
    tag = uuid.uuid4().hex[:8]
    in_topic, out_topic, dead_topic = create_topics(
        bootstrap, PARTITIONS, f"t5-in-{tag}", f"t5-out-{tag}", f"t5-dead-{tag}"
    )
    group = f"t5-{tag}"
    data = produce_input(
        bootstrap, in_topic, N, PARTITIONS,
        value=lambda i: (b"poison-%d-\xff\x00" if i in poisoned else b"%d") % i,
    )  # fmt: skip
    poison_values = {v for v in data.values if v.startswith(b"poison")}
    assert len(poison_values) == POISON
    command = child_command(
        bootstrap, in_topic, out_topic, group, tmp_path / "ck", N, dead_letters=dead_topic
    )
    reader = ConcurrentReader(bootstrap, out_topic).start()
    children = Children(tmp_path / "logs")
    try:
        log = kill_and_finish(children, command, schedule, reader, N - POISON)
        assert f"done {N - POISON} {POISON}" in log
    finally:
        children.close()
    committed = reader.finish()
    for topic in (out_topic, dead_topic):
        wait_no_open_transactions(bootstrap, topic)
    check_running_counts(data, committed, left_out=poison_values)
    letters = read_topic(bootstrap, dead_topic)
    check = check_delivery(poison_values, letters)
    assert check.ok, f"dead letters: {check.describe()}"
    by_value = {r.value: r for r in data.records}
    for letter in letters:  # byte-identical: the key too
        assert letter.key == by_value[letter.value].key
    assert committed_offsets(bootstrap, group, in_topic) == data.end_offsets
    aborted = aborted_records(committed, read_topic(bootstrap, out_topic, "read_uncommitted"))
    print(f"{len(aborted)} aborted record(s) in the output", flush=True)
    assert aborted, "no kill hit an open transaction: the test proved nothing"

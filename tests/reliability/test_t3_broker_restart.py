"""T3: the broker killed (SIGKILL) and restarted mid-stream under an exactly-once pipeline
(reliability.md §6).

The test starts a broker of its own (it is the fault), runs :mod:`eos_child` once, and at
seeded moments tied to the committed output kills the broker and starts it again after a
seeded pause, with its data. The pipeline is never restarted: it must ride out the outage
(its transactions retried, aborted and produced again, its checkpoints failing and
retried); only if an outage outlasts the group's session timeout does it lose its
partitions and stop (``KafkaFencedError``), and the test restarts it as a supervisor would.
Checks: the output is the exactly-once output (each input once, running counts
1..N per key in order), the group's committed offsets equal the input's ends, the broker
really died and came back (a new pid each time) and the pipeline saw it (its log).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from kafka._helpers import restart_broker, start_broker, stop_broker

from .conftest import RELIABILITY_BROKER_SETTINGS
from .eos_pipeline import check_running_counts, child_command
from .harness import (
    Children,
    close_clients,
    committed_offsets,
    create_topics,
    fault_schedule,
    produce_input,
    read_topic,
    sized,
    wait_no_open_transactions,
    wait_until,
)

N = sized(15_000, 300_000)
PARTITIONS = 3
RESTARTS = sized(2, 5)


def broker_pid(state_dir) -> int:
    return int(json.loads((state_dir / "broker.json").read_text())["pid"])


@pytest.mark.timeout(sized(300, 1800))
def test_t3_broker_killed_and_restarted_mid_stream(tmp_path):
    schedule = fault_schedule("T3", RESTARTS, kind="broker kill -9 + restart", max_delay_s=1.0)
    schedule.show()
    state_dir = tmp_path / "broker"
    state_dir.mkdir()
    bootstrap = start_broker(state_dir, RELIABILITY_BROKER_SETTINGS)
    children = Children(tmp_path / "logs")
    try:
        tag = uuid.uuid4().hex[:8]
        in_topic, out_topic = create_topics(bootstrap, PARTITIONS, f"t3-in-{tag}", f"t3-out-{tag}")
        group = f"t3-{tag}"
        data = produce_input(bootstrap, in_topic, N, PARTITIONS)
        # paced (about 1000 records/s) so that every planned restart finds it mid-stream
        ck = tmp_path / "ck"
        command = child_command(bootstrap, in_topic, out_topic, group, ck, N, pace=0.1)
        child = children.start(command, "pipeline")
        pids = [broker_pid(state_dir)]

        def running() -> None:
            assert child.poll() is None, f"the pipeline ended:\n{children.log(child)[-3000:]}"

        for fault in schedule.faults:
            # progress as the pipeline reports it (records taken into its state): the
            # output's commits stall while the broker is away, the processing does not
            wait_until(
                lambda at=fault.at: taken_so_far(children.log(child)) >= at * N,
                120, str(fault), period=0.1, check=running,
            )  # fmt: skip
            time.sleep(fault.delay_s)
            running()
            close_clients(bootstrap)
            restart_broker(state_dir, kill=True, down=schedule.rng.uniform(0.5, 2.0))
            pids.append(broker_pid(state_dir))
            print(f"{fault}: broker pid {pids[-2]} -> {pids[-1]}", flush=True)
        log = ""
        for run in range(1, 4):
            code = child.wait(240)
            log += children.log(child)
            if code == 0:
                break
            # an outage longer than the group's session timeout loses the partitions: the
            # pipeline stops (KafkaFencedError) and its supervisor starts it again
            assert "KafkaFencedError" in children.log(child), children.log(child)[-3000:]
            print(f"the pipeline stopped (fenced); restarted ({run})", flush=True)
            child = children.start(command, f"pipeline-restart{run}")
        else:
            raise AssertionError(f"the pipeline did not finish:\n{log[-3000:]}")
        wait_no_open_transactions(bootstrap, out_topic)
        committed = read_topic(bootstrap, out_topic)
        check_running_counts(data, committed, left_out=set())
        assert committed_offsets(bootstrap, group, in_topic) == data.end_offsets
        assert len(set(pids)) == len(pids) == RESTARTS + 1, pids  # it really died each time
        # and the pipeline saw the broker go (librdkafka's reports, in its log)
        assert "Connection refused" in log or "Disconnected" in log, log[-3000:]
    finally:
        children.close()
        close_clients(bootstrap)
        stop_broker(state_dir)


def taken_so_far(log: str) -> int:
    """The last ``progress N`` the pipeline printed (0 before the first)."""
    for line in reversed(log.splitlines()):
        if line.startswith("progress "):
            return int(line.split()[1])
    return 0

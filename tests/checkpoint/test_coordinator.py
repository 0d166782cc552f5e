"""The checkpoint coordinator (millstream.checkpoint.enable): consistent checkpoints of a
running graph, restore at start, damaged and foreign checkpoints, keep-N, fsspec URLs."""

from __future__ import annotations

import logging
import os
import pickle
import random
import time

import pytest

from millstream.checkpoint import CheckpointStore, GraphMismatchError, enable
from millstream.exceptions import CheckpointError, StateError
from millstream.testing import TestingSource, run_pipeline, wait_for

WORDS = [f"w{i % 37}" for i in range(3000)]


def build(items, paused: bool = False):
    """TestingSource -> map -> frequencies + a running sum; returns (source, freq, total)."""
    if paused:  # a pause now and then, so that checkpoints fall mid-stream
        items = [
            x
            for i, w in enumerate(items)
            for x in ([w] if i % 50 else [TestingSource.PAUSE(0.001), w])
        ]
    source = TestingSource(items, stream_name="words")
    freq = source.map(str.upper).frequencies()
    total = source.map(lambda w: int(w[1:])).accumulate(lambda a, b: a + b, start=0)
    return source, freq, total


def final_state(freq, total):
    return dict(freq.snapshot()["counts"]), total.snapshot()["state"]


def reference():
    source, freq, total = build(WORDS)
    run_pipeline(source)
    return final_state(freq, total)


def test_checkpoints_while_running_then_restore_counts_each_element_once(tmp_path):
    expected = reference()
    location = tmp_path / "ck"
    rng = random.Random(7)
    taken = []
    for _ in range(4):  # run a while, checkpoint at random moments, "crash" (drop the graph)
        source, freq, total = build(WORDS, paused=True)
        checkpoints = enable(source, location, interval=None)
        source.start()
        for _ in range(3):
            time.sleep(rng.uniform(0.005, 0.03))
            info = checkpoints.checkpoint()
            if info is not None:
                taken.append(info.id)
        source.stop()  # elements after the last checkpoint are lost with the process
    source, freq, total = build(WORDS)
    checkpoints = enable(source, location, interval=None)
    assert checkpoints.restored == max(taken)
    run_pipeline(source, timeout=30)
    checkpoints.close()
    assert final_state(freq, total) == expected
    assert len(taken) >= 4  # the run really was cut at several checkpoints


def test_periodic_and_every_n_checkpoints(tmp_path):
    source, _freq, _total = build(WORDS, paused=True)
    checkpoints = enable(source, tmp_path, interval=None, every=500, keep=2)
    run_pipeline(source, timeout=30)
    wait_for(lambda: checkpoints.last is not None and checkpoints.last.id >= 3, 10)
    checkpoints.close()
    store = CheckpointStore(tmp_path)
    assert len(store.ids()) == 2  # keep=2
    body = pickle.loads(store.read(store.ids()[0]))
    assert body["nodes"]["words"]["state"] == len(WORDS) + len(WORDS) // 50


def test_final_checkpoint_at_end_of_input(tmp_path):
    source, _freq, _total = build(WORDS)
    checkpoints = enable(source, tmp_path, interval="50ms")
    run_pipeline(source, timeout=30)
    wait_for(lambda: checkpoints.last is not None, 5)
    state = pickle.loads(CheckpointStore(tmp_path).read(checkpoints.last.id))
    assert state["nodes"]["words"]["state"] == len(WORDS)
    checkpoints.close()


def _one_checkpoint(location):
    source, _freq, _total = build(WORDS[:100])
    checkpoints = enable(source, location, interval=None)
    run_pipeline(source)
    return checkpoints.close()


def test_damaged_newest_checkpoint_falls_back_to_previous_with_warning(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    _one_checkpoint(tmp_path)
    first = pickle.loads(store.read(1))
    store.write(2, b"x" * 100)
    path = tmp_path / CheckpointStore.name_of(2)
    path.write_bytes(path.read_bytes()[:60])  # cut short, as by a crash without rename
    source, freq, _total = build(WORDS[:100])
    with caplog.at_level(logging.WARNING, logger="millstream.checkpoint"):
        checkpoints = enable(source, tmp_path, interval=None)
    assert checkpoints.restored == 1
    assert "skipping checkpoint 2" in caplog.text and "damaged" in caplog.text
    assert freq.snapshot() == first["nodes"]["words/map#1/frequencies"]["state"]


def test_all_checkpoints_damaged_is_an_error_not_a_reset(tmp_path):
    _one_checkpoint(tmp_path)
    path = tmp_path / CheckpointStore.name_of(1)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    source, _, _ = build(WORDS)
    with pytest.raises(CheckpointError, match="checksum"):
        enable(source, tmp_path)


def test_half_written_temporary_file_is_ignored_and_removed(tmp_path):
    _one_checkpoint(tmp_path)
    (tmp_path / ".tmp-abc-checkpoint-0000000002.ckpt").write_bytes(b"millstream-checkpoint 1 9")
    source, _, _ = build(WORDS)
    checkpoints = enable(source, tmp_path, interval=None)
    assert checkpoints.restored == 1
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_checkpoint_of_another_graph_is_refused_naming_the_nodes(tmp_path):
    _one_checkpoint(tmp_path)
    source = TestingSource(WORDS, stream_name="words")
    source.map(str.upper).accumulate(lambda a, b: a + b, start="")
    with pytest.raises(GraphMismatchError) as info:
        enable(source, tmp_path)
    message = str(info.value)
    assert "words/map#1/frequencies" in message and "words/map/accumulate" in message
    assert "rename=" in message and "drop=" in message


def test_rename_drop_and_fresh_let_a_changed_graph_go_on(tmp_path):
    _one_checkpoint(tmp_path)
    saved = pickle.loads(CheckpointStore(tmp_path).read(1))["nodes"]
    source = TestingSource(WORDS, stream_name="words")
    freq = source.map(str.upper).frequencies(stream_name="counts")
    later = source.map(len).accumulate(lambda a, b: a + b, start=0)
    checkpoints = enable(
        source,
        tmp_path,
        rename={"words/map#1/frequencies": "counts"},
        drop=["words/map#2/accumulate"],
        fresh=["words/map#2/accumulate"],
    )
    assert checkpoints.restored == 1
    assert freq.snapshot() == saved["words/map#1/frequencies"]["state"]
    assert later.snapshot()["state"] == 0


def test_a_failed_restore_leaves_every_node_as_it_was(tmp_path):
    _one_checkpoint(tmp_path)
    store = CheckpointStore(tmp_path)
    record = pickle.loads(store.read(1))
    record["nodes"]["words/map#2/accumulate"]["state"] = None  # junk for one node
    store.write(2, pickle.dumps(record))
    source, freq, total = build(WORDS)
    before = (freq.snapshot(), total.snapshot(), source.snapshot())
    with pytest.raises(StateError, match="accumulate"):
        enable(source, tmp_path)
    assert (freq.snapshot(), total.snapshot(), source.snapshot()) == before


def test_enable_after_start_is_refused(tmp_path):
    source, _, _ = build(WORDS)
    source.start()
    try:
        with pytest.raises(RuntimeError, match="before start"):
            enable(source, tmp_path)
    finally:
        source.stop()


def test_fsspec_url_location():
    location = f"memory://millstream-ck-{random.randrange(10**9)}"
    source, freq, _total = build(WORDS[:200])
    checkpoints = enable(source, location, interval=None)
    run_pipeline(source)
    assert checkpoints.close().id == 1
    source, freq2, _total2 = build(WORDS[:200])
    assert enable(source, location, interval=None).restored == 1
    assert freq2.snapshot() == freq.snapshot()


def test_checkpoint_from_another_thread_while_a_source_is_held_by_backpressure(tmp_path):
    """A slow async sink keeps the source awaiting; a checkpoint still completes and is
    consistent (the source position counts exactly the elements the sink received)."""
    import asyncio

    source = TestingSource(list(range(200)), stream_name="numbers")
    seen = []

    async def slow(x):
        await asyncio.sleep(0.001)
        seen.append(x)

    source.sink(slow)
    counted = source.accumulate(lambda a, b: a + 1, start=0)
    checkpoints = enable(source, tmp_path, interval=None)
    source.start()
    infos = []
    while not source.stopped and len(infos) < 5:
        info = checkpoints.checkpoint()
        if info is not None:
            state = pickle.loads(CheckpointStore(tmp_path).read(info.id))["nodes"]
            assert state["numbers"]["state"] == state["numbers/accumulate"]["state"]["state"]
            infos.append(info)
        time.sleep(0.01)
    source.stop()
    assert infos and counted.snapshot()["state"] >= 1


def test_checkpoint_while_a_source_waits_on_zip_for_another_held_source(tmp_path):
    """``a`` runs ahead and waits on zip's maxsize for ``b``; the checkpoint holds ``b``:
    the element ``a`` waits with is already in zip's buffer, so the checkpoint completes
    (it used to wait forever) and the run then ends with every pair counted once."""
    a = TestingSource(list(range(300)), stream_name="a")
    b = TestingSource([TestingSource.PAUSE(0.3), *range(300)], stream_name="b")
    pairs = a.zip(b, maxsize=2).accumulate(lambda n, pair: n + 1, start=0, stream_name="n")
    checkpoints = enable(a, tmp_path, interval=None)
    a.start()
    b.start()
    time.sleep(0.1)  # a is ahead, waiting for room in zip
    info = checkpoints.checkpoint(timeout=10)
    assert info is not None and info.held_s < 1
    saved = pickle.loads(CheckpointStore(tmp_path).read(info.id))["nodes"]
    assert saved["a"]["state"] >= 2 and saved["n"]["state"]["state"] == 0
    wait_for(lambda: a.stopped and b.stopped, 10)
    assert pairs.snapshot()["state"] == 300
    checkpoints.close()


def test_close_waits_for_a_checkpoint_in_progress(tmp_path):
    from millstream.core.failpoints import configure

    source, _, _ = build(WORDS, paused=True)
    configure("after_snapshot:sleep(0.3)")
    try:
        checkpoints = enable(source, tmp_path, interval=0.01)
        source.start()
        wait_for(lambda: checkpoints._lock is not None and checkpoints._lock.locked(), 5)
        info = checkpoints.close()  # while the periodic one sleeps at after_snapshot
    finally:
        configure("")
    source.stop()
    ids = CheckpointStore(tmp_path).ids()
    assert len(ids) == len(set(ids)) and ids[0] == checkpoints.last.id
    for checkpoint_id in ids:  # every file whole
        assert pickle.loads(CheckpointStore(tmp_path).read(checkpoint_id))["id"] == checkpoint_id
    assert info is None or info.id == ids[0]

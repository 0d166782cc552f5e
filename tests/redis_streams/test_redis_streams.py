"""``from_redis_stream`` and ``to_redis_stream`` against a real redis-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from millstream import Stream
from millstream.exceptions import RedisConnectError, RedisStreamError
from millstream.testing import wait_for

from .server import _free_port


def _pending(rclient, key, group="g"):
    return rclient.xpending(key, group)["pending"]


def _write(rclient, key, n, start=0):
    pipe = rclient.pipeline(transaction=False)
    for i in range(start, start + n):
        pipe.xadd(key, {"i": i, "word": f"w{i}"})
    return pipe.execute()


def test_round_trip(redis_url, rclient, key):
    source = Stream()
    out = source.to_redis_stream(redis_url, key, batch_size=7)
    for i in range(250):
        source.emit({"i": i, "word": f"w{i}"})
    out.flush()
    assert rclient.xlen(key) == 250 and out.written == 250

    reader = Stream.from_redis_stream(redis_url, key, "g", "c1", count=16, max_in_flight=40)
    got = reader.sink_to_list()
    reader.start()
    wait_for(lambda: len(got) == 250, 10)
    wait_for(lambda: _pending(rclient, key) == 0, 5)
    assert got == [{"i": str(i), "word": f"w{i}"} for i in range(250)]
    last = rclient.xrevrange(key, count=1)[0][0]
    wait_for(lambda: reader.metrics["lag"] == 0, 5)
    metrics = reader.metrics
    assert metrics["position"] == {key: last} and metrics["backlog"] == 0
    reader.stop()
    assert reader.acked == 250 and reader.error is None
    out.destroy()


@pytest.mark.parametrize("protocol", [2, 3])
def test_with_id_bytes_and_several_streams(redis_url, rclient, key, protocol):
    other = key + "-b"
    ids = _write(rclient, key, 3) + _write(rclient, other, 2, start=3)
    source = Stream.from_redis_stream(
        redis_url,
        [key, other],
        "g",
        "c1",
        with_id=True,
        decode=False,
        client_kwargs={"protocol": protocol},
    )
    got = source.sink_to_list()
    source.start()
    wait_for(lambda: len(got) == 5, 10)
    source.stop()
    assert sorted(i.decode() for i, _ in got) == sorted(ids)
    assert {f[b"i"] for _, f in got} == {b"0", b"1", b"2", b"3", b"4"}
    assert _pending(rclient, key) == 0 and _pending(rclient, other) == 0


def test_ack_only_after_processing(redis_url, rclient, key):
    _write(rclient, key, 5)
    gate = threading.Event()
    done = []

    async def slow(x):
        await asyncio.to_thread(gate.wait)
        done.append(x)

    source = Stream.from_redis_stream(redis_url, key, "g", "c1")
    source.buffer(10).sink(slow)
    source.start()
    wait_for(lambda: _pending(rclient, key) == 5, 5)
    wait_for(lambda: source.metrics["backlog"] == 5, 5)
    assert done == []
    gate.set()
    wait_for(lambda: len(done) == 5, 5)
    wait_for(lambda: _pending(rclient, key) == 0, 5)
    source.stop()


def test_backpressure_bounds_in_flight(redis_url, rclient, key):
    _write(rclient, key, 50)
    gate = threading.Event()

    async def slow(x):
        await asyncio.to_thread(gate.wait)

    source = Stream.from_redis_stream(redis_url, key, "g", "c1", max_in_flight=8, count=3)
    source.buffer(100).sink(slow)
    source.start()
    wait_for(lambda: source.metrics["backlog"] == 8, 5)
    time.sleep(0.3)
    assert source.metrics["backlog"] == 8 and _pending(rclient, key) <= 8
    gate.set()
    wait_for(lambda: source.acked == 50, 10)
    source.stop()


def test_claims_a_dead_consumers_entries(redis_url, rclient, key):
    ids = _write(rclient, key, 20)
    rclient.xgroup_create(key, "g", id="0")
    read = rclient.xreadgroup("g", "dead", {key: ">"}, count=100)  # read, never acked
    assert len(read[0][1]) == 20 and _pending(rclient, key) == 20
    _write(rclient, key, 5, start=20)
    source = Stream.from_redis_stream(
        redis_url, key, "g", "alive", claim_min_idle=0.3, claim_interval=0.1, with_id=True
    )
    got = source.sink_to_list()
    source.start()

    def show() -> None:
        print(len(got), source.claimed, source.acked, source.error, rclient.xpending(key, "g"))

    wait_for(lambda: len(got) >= 25, 20, fail_func=show)
    wait_for(lambda: _pending(rclient, key) == 0, 5, fail_func=show)
    source.stop()
    assert len(got) == 25 and source.claimed == 20, (len(got), source.claimed)
    # every entry of the dead consumer came (ids compare as strings: no sorting by them)
    seen = [i for i, _ in got]
    assert len(set(seen)) == 25 and set(ids) <= set(seen)
    consumers = {c["name"]: c["pending"] for c in rclient.xinfo_consumers(key, "g")}
    assert consumers["dead"] == 0


def test_restart_reads_own_pending_again(redis_url, rclient, key):
    _write(rclient, key, 4)
    first = Stream.from_redis_stream(redis_url, key, "g", "c1", drain_timeout=0.2)

    async def never(x):
        await asyncio.sleep(3600)

    first.sink(never)
    first.start()
    wait_for(lambda: _pending(rclient, key) >= 1, 5)
    first.stop()  # the element in the sink is not acknowledged
    assert _pending(rclient, key) >= 1
    second = Stream.from_redis_stream(redis_url, key, "g", "c1", claim_min_idle=None)
    got = second.sink_to_list()
    second.start()
    wait_for(lambda: len(got) == 4, 10)
    wait_for(lambda: _pending(rclient, key) == 0, 5)
    second.stop()
    assert [x["i"] for x in got] == ["0", "1", "2", "3"]


def test_failure_stops_and_leaves_the_entry_pending(redis_url, rclient, key):
    ids = _write(rclient, key, 5)

    def check(x):
        if x["i"] == "2":
            raise ValueError("bad entry")
        return x

    source = Stream.from_redis_stream(redis_url, key, "g", "c1")
    got = source.map(check).sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, 10)
    assert isinstance(source.error, ValueError)
    assert f"entry {ids[2]}" in "".join(getattr(source.error, "__notes__", []))
    # the failed entry stays pending, and so do those read with it and not emitted
    pending = rclient.xpending_range(key, "g", "-", "+", 10)
    assert [p["message_id"] for p in pending] == ids[2:]
    assert [x["i"] for x in got] == ["0", "1"]


def test_failure_left_pending_and_claimed_again(redis_url, rclient, key):
    ids = _write(rclient, key, 4)
    tries = []

    def check(x):
        tries.append(x["i"])
        if x["i"] == "1" and tries.count("1") == 1:
            raise ValueError("first try fails")
        return x

    source = Stream.from_redis_stream(
        redis_url, key, "g", "c1", on_failure="leave", claim_min_idle=0.3, claim_interval=0.1
    )
    got = source.map(check).sink_to_list()
    source.start()
    wait_for(lambda: len(got) == 3, 10)
    wait_for(
        lambda: (
            [p["message_id"] for p in rclient.xpending_range(key, "g", "-", "+", 10)] == [ids[1]]
        ),
        5,
    )
    wait_for(lambda: len(got) == 4, 10)  # claimed again after claim_min_idle
    wait_for(lambda: _pending(rclient, key) == 0, 5)
    source.stop()
    assert source.left_pending == 1 and source.error is None
    assert sorted(x["i"] for x in got) == ["0", "1", "2", "3"]


def test_failure_dead_letter(redis_url, rclient, key):
    ids = _write(rclient, key, 3)

    def check(x):
        if x["i"] == "1":
            raise ValueError("poison")
        return x

    source = Stream.from_redis_stream(redis_url, key, "g", "c1", on_failure="dead_letter")
    got = source.map(check).sink_to_list()
    source.start()
    wait_for(lambda: source.dead_lettered == 1 and len(got) == 2, 10)
    wait_for(lambda: _pending(rclient, key) == 0, 5)
    source.stop()
    [(_, dead)] = rclient.xrange(key + ":dead")
    assert dead["i"] == "1" and dead["id"] == ids[1] and dead["stream"] == key
    assert "poison" in dead["error"]


def test_unreachable_server():
    port = _free_port()
    source = Stream.from_redis_stream(f"redis://127.0.0.1:{port}", "s", "g", "c")
    with pytest.raises(RedisConnectError, match=f"127.0.0.1:{port}"):
        source.start()
    sink_in = Stream()
    out = sink_in.to_redis_stream(f"redis://127.0.0.1:{port}", "s")
    sink_in.emit({"a": 1})
    with pytest.raises(RedisConnectError, match=f"127.0.0.1:{port}"):
        out.flush()
    out.destroy()


def test_wrong_type_and_missing_group(redis_url, rclient, key):
    rclient.set(key, "a string")
    source = Stream.from_redis_stream(redis_url, key, "g", "c")
    with pytest.raises(RedisStreamError, match=f"{key!r} holds a string"):
        source.start()
    sink_in = Stream()
    out = sink_in.to_redis_stream(redis_url, key)
    sink_in.emit({"a": 1})
    with pytest.raises(RedisStreamError, match="holds a string"):
        out.flush()
    out.destroy()
    other = key + "-new"
    missing = Stream.from_redis_stream(redis_url, other, "g", "c", create_group=False)
    with pytest.raises(RedisStreamError, match="no consumer group 'g'"):
        missing.start()


def test_to_redis_stream_maxlen_and_bad_elements(redis_url, rclient, key):
    source = Stream()
    out = source.to_redis_stream(redis_url, key, maxlen=100, approximate=False, batch_size=50)
    for i in range(1000):
        source.emit({"i": i, "f": 0.5, "b": b"\x00"})
    out.flush()
    assert rclient.xlen(key) == 100
    assert rclient.xrange(key, count=1)[0][1] == {"i": "900", "f": "0.5", "b": "\x00"}
    with pytest.raises(TypeError, match="values must be str, bytes, int or float"):
        source.emit({"x": None})
    with pytest.raises(TypeError, match="non-empty dict"):
        source.emit([1, 2])
    out.destroy()


def test_pipeline_between_streams_acks_after_write(redis_url, rclient, key):
    _write(rclient, key, 300)
    target = key + "-out"
    source = Stream.from_redis_stream(redis_url, key, "g", "c1", count=50)
    source.map(lambda f: {**f, "seen": 1}).to_redis_stream(redis_url, target, batch_size=20)
    source.start()
    wait_for(lambda: source.acked == 300, 10)
    source.stop()
    assert rclient.xlen(target) == 300 and _pending(rclient, key) == 0


def test_import_is_lazy_and_hint_when_missing():
    code = (
        "import sys, millstream\n"
        "assert 'redis' not in sys.modules\n"
        "sys.modules['redis'] = None; sys.modules['redis.asyncio'] = None\n"
        "from millstream.connectors.redis import redis_module\n"
        "try:\n    redis_module()\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "Redis Streams need redis-py (redis>=5): pip install 'millstream[redis]'"
    )


def test_checkpoints_acknowledge_what_a_completed_checkpoint_covers(
    redis_url, rclient, key, tmp_path
):
    from millstream.checkpoint import enable

    _write(rclient, key, 6)
    source = Stream.from_redis_stream(redis_url, key, "g", "c1", stream_name="src")
    totals = source.map(lambda f: int(f["i"])).accumulate(lambda a, x: a + x, start=0)
    got = totals.sink_to_list()
    checkpoints = enable(source, str(tmp_path / "cp"), interval=None)
    source.start()
    wait_for(lambda: len(got) == 6, 10)
    time.sleep(0.3)
    assert _pending(rclient, key) == 6  # done, not acknowledged before a checkpoint
    info = checkpoints.checkpoint()
    assert info is not None
    wait_for(lambda: _pending(rclient, key) == 0, 5)
    assert source.snapshot() == {"acks": 1} and got[-1] == 15
    checkpoints.close()
    source.stop()

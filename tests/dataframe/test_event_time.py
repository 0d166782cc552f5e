"""Event time for streaming frames: ``sdf.with_timestamps(...)`` against pandas on the
input sorted by event time, less the rows its late policy drops."""

from __future__ import annotations

import asyncio
import itertools
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from frames_testing import assert_frame_equal, assert_series_equal, to_pandas
from hypothesis import given, settings
from hypothesis import strategies as st

from doc_pages import python_blocks
from millstream import ManualClock, RefCounter, Stream
from millstream.core import await_all
from millstream.core.hold import Hold
from millstream.dataframe import DataFrame, EventTimeOrder, Streaming, map_partitions
from millstream.dataframe.event_time import with_timestamps
from millstream.exceptions import StateError
from millstream.testing import wait_for
from millstream.time import Tumbling, watermark

T0 = pd.Timestamp("2024-05-01 12:00:00")


def seconds(*s: float) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([T0 + pd.Timedelta(seconds=v) for v in s])


def frame(xd: Any, times: list[float], xs: list[float] | None = None, **cols: Any) -> Any:
    xs = list(range(len(times))) if xs is None else xs
    return xd.DataFrame({"x": [float(v) for v in xs], **cols}, index=seconds(*times))


def example(xd: Any, **cols: Any) -> Any:
    return frame(xd, [0], **{k: v[:1] for k, v in cols.items()}).iloc[:0]


def build(xd: Any, ex: Any = None, **kwargs: Any) -> tuple[Any, Any, list, list]:
    sdf = DataFrame(example=example(xd) if ex is None else ex)
    ordered = sdf.with_timestamps(**kwargs)
    return sdf, ordered, ordered.stream.sink_to_list(), ordered.late.stream.sink_to_list()


def reference(times: list[list[float]], ooo: float) -> list[bool]:
    """Which rows (in input order) are late: older than the watermark passed on before
    their chunk (the watermark: the largest time so far minus ``ooo``)."""
    emitted, largest, late = -np.inf, -np.inf, []
    for chunk in times:
        late.extend(t < emitted for t in chunk)
        if chunk:
            largest = max(largest, *chunk)
        emitted = max(emitted, largest - ooo)
    return late


def concat(chunks: list[Any]) -> Any:
    return pd.concat([to_pandas(c) for c in chunks])


# -- order and the watermark ------------------------------------------------------------
def test_out_of_order_chunks_come_out_sorted_once_the_watermark_passes(xd: Any) -> None:
    sdf, ordered, out, _ = build(xd, max_out_of_orderness="2s")
    sdf.emit(frame(xd, [5, 3, 9], [1, 2, 3]))
    assert [to_pandas(c).index.tolist() for c in out] == [list(seconds(3, 5))]
    assert ordered.stream.watermark == (T0 + pd.Timedelta(seconds=7)).timestamp()
    sdf.emit(frame(xd, [8, 12], [4, 5]))  # watermark 10
    assert_frame_equal(out[1], frame(xd, [8, 9], [4, 3]))
    assert ordered.stream.late_count == 0
    assert ordered.stream.end_of_input() == []
    assert_frame_equal(out[2], frame(xd, [12], [5]))
    assert ordered.stream.watermark == float("inf")


def test_equal_times_keep_their_arrival_order_and_numbers_work(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"t": [0], "x": [0]}).iloc[:0])
    ordered = sdf.with_timestamps(on="t", max_out_of_orderness=1)
    out = ordered.stream.sink_to_list()
    sdf.emit(xd.DataFrame({"t": [2, 1, 2, 4, 3], "x": [1, 2, 3, 4, 5]}))  # watermark 3
    sdf.emit(xd.DataFrame({"t": [3, 2, 6], "x": [6, 7, 8]}))  # 2 is late
    ordered.stream.end_of_input()
    result = concat(out)
    assert result.t.tolist() == [1, 2, 2, 3, 3, 4, 6]
    assert result.x.tolist() == [2, 1, 3, 5, 6, 4, 8]
    assert result.index.tolist() == [1, 0, 2, 4, 0, 3, 2]  # the index is kept
    assert ordered.stream.late_count == 1


def test_nothing_is_emitted_until_the_watermark_passes_a_row(xd: Any) -> None:
    sdf, ordered, out, _ = build(xd, max_out_of_orderness=10)
    sdf.emit(frame(xd, [1, 2]))
    sdf.emit(frame(xd, [], []))
    assert out == [] and ordered.stream.watermark == T0.timestamp() + 2 - 10


# -- late rows --------------------------------------------------------------------------
CHUNKS_LATE = [[5, 1, 6], [3, 9], [2, 8, 12], [4, 15]]  # ooo 2: 3, 2, 4 and 8 are late


def emit_all(xd: Any, sdf: Any, chunks: list[list[float]] = CHUNKS_LATE) -> Any:
    whole, n = [], 0
    for times in chunks:
        chunk = frame(xd, times, list(range(n, n + len(times))))
        n += len(times)
        whole.append(to_pandas(chunk))
        sdf.emit(chunk)
    return pd.concat(whole) if whole else to_pandas(example(xd))


def test_late_drop_counts_and_drops_older_rows(xd: Any) -> None:
    sdf, ordered, out, late = build(xd, max_out_of_orderness=2)
    whole = emit_all(xd, sdf)
    ordered.stream.end_of_input()
    is_late = reference(CHUNKS_LATE, 2)
    assert sum(is_late) == ordered.stream.late_count == ordered.stream.dropped_count == 3
    expected = whole[[not v for v in is_late]].sort_index(kind="stable")
    pd.testing.assert_frame_equal(concat(out), expected)
    assert late == []


def test_late_side_sends_the_late_rows_to_the_late_frame(xd: Any) -> None:
    sdf, ordered, out, late = build(xd, max_out_of_orderness=2, late="side")
    whole = emit_all(xd, sdf)
    ordered.stream.end_of_input()
    is_late = np.array(reference(CHUNKS_LATE, 2))
    pd.testing.assert_frame_equal(concat(out), whole[~is_late].sort_index(kind="stable"))
    pd.testing.assert_frame_equal(concat(late), whole[is_late])
    assert ordered.stream.late_count == 3 and ordered.stream.dropped_count == 0
    assert type(ordered.late) is DataFrame


def test_late_update_passes_late_rows_on_after_the_on_time_rows(xd: Any) -> None:
    sdf, ordered, out, late = build(xd, max_out_of_orderness=2, late="update")
    total = ordered.x.sum().stream.sink_to_list()
    whole = emit_all(xd, sdf)
    ordered.stream.end_of_input()
    # the chunk [2, 8, 12] came when 7 had been passed on: 8 and 9 go, then 2 alone
    indexes = [to_pandas(c).index for c in out]
    assert [list(i) for i in indexes[1:5]] == [
        list(seconds(5, 6)),  # watermark 7
        list(seconds(3)),  # late for 4
        list(seconds(8, 9)),  # watermark 10
        list(seconds(2)),  # late for 7
    ]
    assert ordered.stream.late_count == 3 and ordered.stream.dropped_count == 0
    assert late == []
    assert total[-1] == whole.x.sum()  # a whole-history aggregation counts every row


def test_allowed_lateness_bounds_the_late_rows_passed_on(xd: Any) -> None:
    sdf, ordered, out, _ = build(xd, max_out_of_orderness=2, late="update", allowed_lateness="2s")
    whole = emit_all(xd, sdf)
    ordered.stream.end_of_input()
    # late: 3 (watermark 4: 1 s late), 2 (7: 5 s), 4 (10: 6 s): only 3 is passed on
    assert ordered.stream.late_count == 3 and ordered.stream.dropped_count == 2
    kept = concat(out).sort_index(kind="stable")
    pd.testing.assert_frame_equal(kept, whole.drop(seconds(2, 4)).sort_index(kind="stable"))


def test_rows_after_the_end_of_input_are_late(xd: Any) -> None:
    sdf, ordered, out, late = build(xd, late="side")
    sdf.emit(frame(xd, [1]))
    ordered.stream.end_of_input()
    sdf.emit(frame(xd, [100]))
    assert len(out) == 1 and len(late) == 1 and ordered.stream.late_count == 1


# -- partitions -------------------------------------------------------------------------
def partitioned(xd: Any, rows: list[tuple[str, float]]) -> Any:
    return frame(xd, [t for _, t in rows], sensor=[p for p, _ in rows])


def test_the_slowest_partition_holds_the_watermark(xd: Any) -> None:
    ex = partitioned(xd, [("a", 0)]).iloc[:0]
    sdf, ordered, out, _ = build(xd, ex, partition="sensor")
    sdf.emit(partitioned(xd, [("a", 10), ("b", 4)]))
    sdf.emit(partitioned(xd, [("b", 7), ("a", 12)]))
    assert concat(out).index.tolist() == list(seconds(4, 7))
    sdf.emit(partitioned(xd, [("b", 15)]))
    assert concat(out).index.tolist() == list(seconds(4, 7, 10, 12))
    assert sorted(ordered.stream.tracker.partitions) == ["a", "b"]


def test_declared_partitions_hold_the_watermark_until_they_report(xd: Any) -> None:
    ex = partitioned(xd, [("a", 0)]).iloc[:0]
    sdf, ordered, out, _ = build(xd, ex, partition="sensor", partitions=["a", "b"])
    sdf.emit(partitioned(xd, [("a", 10)]))
    assert out == [] and ordered.stream.watermark == -np.inf
    sdf.emit(partitioned(xd, [("b", 4)]))
    assert concat(out).index.tolist() == list(seconds(4))


def test_an_idle_partition_stops_holding_the_watermark(xd: Any) -> None:
    clock = ManualClock()
    ex = partitioned(xd, [("a", 0)]).iloc[:0]
    sdf, ordered, out, _ = build(xd, ex, partition="sensor", idle_timeout=5, clock=clock)
    sdf.emit(partitioned(xd, [("a", 3), ("b", 4)]))
    clock.advance(3)
    sdf.emit(partitioned(xd, [("a", 25)]))
    assert concat(out).index.tolist() == list(seconds(3, 4))
    clock.advance(2)  # b silent for 5 s: the timer passes on what a alone allows
    wait_for(lambda: len(out) == 3, 5)
    assert concat(out).index.tolist() == list(seconds(3, 4, 25))
    assert ordered.stream.tracker.idle_partitions() == ["b"]


def test_a_checkpoint_hold_delays_the_idle_release(xd: Any) -> None:
    clock = ManualClock()
    ex = partitioned(xd, [("a", 0)]).iloc[:0]
    sdf, ordered, out, _ = build(xd, ex, partition="sensor", idle_timeout=5, clock=clock)
    node = ordered.stream
    node.hold = Hold()
    node.hold.close()
    sdf.emit(partitioned(xd, [("a", 3), ("b", 4), ("a", 25)]))
    clock.advance(5)  # both idle: the largest counts, but the hold is closed
    assert len(out) == 1 and node.watermark < node.tracker.watermark
    node.loop.asyncio_loop.call_soon_threadsafe(node.hold.open)
    wait_for(lambda: len(out) == 2, 5)
    assert concat(out).index.tolist() == list(seconds(3, 4, 25))


# -- end of input -----------------------------------------------------------------------
def test_a_bounded_source_flushes_the_held_rows_at_its_end(xd: Any) -> None:
    chunks = [frame(xd, [3, 1]), frame(xd, [2, 7])]
    source = Stream.from_iterable(chunks)
    ordered = source.to_dataframe(example(xd)).with_timestamps(max_out_of_orderness=10)
    out = ordered.stream.sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, 5)
    wait_for(lambda: len(out) == 1, 5)
    assert to_pandas(out[0]).index.tolist() == list(seconds(1, 2, 3, 7))
    assert ordered.stream.watermark == float("inf")


# -- state ------------------------------------------------------------------------------
def test_snapshot_restore_mid_stream_equals_the_uninterrupted_run(xd: Any) -> None:
    chunks = [frame(xd, t, list(range(10 * i, 10 * i + len(t)))) for i, t in enumerate(CHUNKS_LATE)]

    def run(split: int | None) -> tuple[Any, int]:
        sdf, ordered, out, late = build(xd, max_out_of_orderness=2, late="side")
        collected = [out]
        for i, chunk in enumerate(chunks):
            if i == split:
                state = pickle.loads(pickle.dumps(ordered.stream.snapshot()))
                sdf, ordered, out, late2 = build(xd, max_out_of_orderness=2, late="side")
                ordered.stream.restore(state)
                collected.append(out)
                late.extend(late2)
            sdf.emit(chunk)
        ordered.stream.end_of_input()
        return concat([c for L in collected for c in L]), ordered.stream.late_count

    whole, count = run(None)
    for split in range(1, len(chunks)):
        assert_frame_equal(run(split)[0], whole)
        assert run(split)[1] == count


def test_snapshot_is_plain_and_round_trips(xd: Any) -> None:
    sdf, ordered, _, _ = build(xd, max_out_of_orderness=5)
    node = ordered.stream
    empty = node.snapshot()
    assert empty["rows"] is None
    sdf.emit(frame(xd, [4, 2, 9]))
    state = node.snapshot()
    assert pickle.loads(pickle.dumps(state)) == state
    fresh = build(xd, max_out_of_orderness=5)[1].stream
    fresh.restore(state)
    assert fresh.snapshot() == state
    assert fresh.watermark == node.watermark


def test_restore_checks_the_state_first(xd: Any) -> None:
    sdf, ordered, _out, _ = build(xd, max_out_of_orderness=5)
    sdf.emit(frame(xd, [4]))
    node = ordered.stream
    before = node.snapshot()
    for bad in (None, {**before, "late_count": -1}, {**before, "rows": "x"}):
        with pytest.raises(StateError):
            node.restore(bad)
    assert node.snapshot() == before


def test_index_name_and_dtypes_survive_a_snapshot(xd: Any) -> None:
    ex = xd.DataFrame({"x": [0], "k": ["a"]}, index=pd.DatetimeIndex([T0], name="at")).iloc[:0]
    sdf, ordered, _, _ = build(xd, ex, max_out_of_orderness=60)
    chunk = xd.DataFrame(
        {"x": [1, 2], "k": ["a", "b"]}, index=pd.DatetimeIndex(seconds(3, 1), name="at")
    )
    sdf.emit(chunk)
    _fresh_sdf, fresh, out, _ = build(xd, ex, max_out_of_orderness=60)
    fresh.stream.restore(ordered.stream.snapshot())
    fresh.stream.end_of_input()
    assert_frame_equal(out[0], chunk.sort_index())


# -- refs -------------------------------------------------------------------------------
def test_held_rows_hold_their_chunks_refs_until_passed_on(xd: Any) -> None:
    sdf, ordered, _out, _ = build(xd, max_out_of_orderness=5)
    done: list[int] = []

    def emit(i: int, times: list[float]) -> None:
        ref = RefCounter(cb=lambda: done.append(i))
        sdf.stream.emit(frame(xd, times), metadata=[{"ref": ref}])

    emit(0, [1, 2])
    emit(1, [4])
    assert done == []
    emit(2, [7])  # watermark 2: chunk 0 is out, chunk 1 still held
    assert done == [0]
    emit(3, [20])  # watermark 15: all but chunk 3 out
    assert done == [0, 1, 2]
    ordered.stream.end_of_input()
    assert done == [0, 1, 2, 3]


def test_rows_passed_on_at_once_and_dropped_rows_release_at_once(xd: Any) -> None:
    sdf, ordered, _out, _ = build(xd)
    done: list[str] = []
    sdf.stream.emit(frame(xd, [5]), metadata=[{"ref": RefCounter(cb=lambda: done.append("a"))}])
    sdf.stream.emit(frame(xd, [1]), metadata=[{"ref": RefCounter(cb=lambda: done.append("late"))}])
    assert done == ["a", "late"] and ordered.stream.dropped_count == 1


def test_refs_wait_for_downstream_and_restore_fails_the_held_ones(xd: Any) -> None:
    sdf, ordered, _out, _ = build(xd, max_out_of_orderness=5)
    refs = [RefCounter() for _ in range(2)]
    sdf.stream.emit(frame(xd, [1]), metadata=[{"ref": refs[0]}])
    sdf.stream.emit(frame(xd, [2]), metadata=[{"ref": refs[1]}])
    assert [r.count for r in refs] == [1, 1]  # retained by the stage
    ordered.stream.restore(ordered.stream.snapshot())
    assert [r.count for r in refs] == [0, 0] and all(r.failed for r in refs)


def test_a_released_chunks_refs_wait_for_downstream_to_finish(xd: Any) -> None:
    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[None]] = []

        class Slow(Stream):
            def update(self, x: Any, who: Any = None, metadata: Any = None) -> Any:
                waiting.append(loop.create_future())
                return [waiting[-1]]

        node = EventTimeOrder(None, max_out_of_orderness=5)
        Slow(node)
        ref = RefCounter()
        node.update(frame(xd, [1]), metadata=[{"ref": ref}])
        held = ref.count  # retained while the row is held
        pending = node.update(frame(xd, [20]))
        passed_on = ref.count  # the row is out, downstream still busy
        waiting[0].set_result(None)
        await await_all(pending)
        return held, passed_on, ref.count

    assert asyncio.run(main()) == (1, 1, 0)


# -- downstream -------------------------------------------------------------------------
def test_cumsum_and_running_sums_equal_pandas_on_the_sorted_rows(xd: Any) -> None:
    sdf, ordered, _, _ = build(xd, max_out_of_orderness=2)
    cums = ordered.x.cumsum().stream.sink_to_list()
    sums = ordered.sum().stream.sink_to_list()
    whole = emit_all(xd, sdf)
    ordered.stream.end_of_input()
    kept = whole[[not v for v in reference(CHUNKS_LATE, 2)]].sort_index(kind="stable")
    pd.testing.assert_series_equal(concat(cums), kept.x.cumsum())
    pd.testing.assert_series_equal(to_pandas(sums[-1]), kept.sum())


def test_pandas_time_rolling_on_the_output_equals_pandas_on_the_sorted_input(xd: Any) -> None:
    sdf, ordered, out, _ = build(xd, max_out_of_orderness=3)
    whole = emit_all(xd, sdf, [[5, 1, 6], [3, 4, 9], [8, 7, 12], [11, 15]])
    ordered.stream.end_of_input()
    assert ordered.stream.late_count == 0
    result = concat(out)
    assert result.index.is_monotonic_increasing
    expected = whole.sort_index(kind="stable")
    assert_series_equal(result.x.rolling("4s").sum(), expected.x.rolling("4s").sum())


def test_watermark_downstream_and_a_time_window_on_rows(xd: Any) -> None:
    sdf, ordered, _out, _ = build(xd, max_out_of_orderness=2)
    below = map_partitions(_times_and_values, ordered.x)
    rows = below.stream.flatten()
    sums = rows.window(Tumbling(10), "sum", value=1, timestamp=_first).sink_to_list()
    emit_all(xd, sdf, [[1, 3, 2], [11, 9], [24]])
    assert watermark(rows) == ordered.stream.watermark == T0.timestamp() + 22
    ordered.stream.end_of_input()
    assert [r.value for r in sums] == [0 + 1 + 2 + 4.0, 3.0, 5.0]
    sdf, ordered, _, _ = build(xd)
    ordered.stream.window(Tumbling(10), "count")  # chunks have no single time
    with pytest.raises(TypeError, match="pass timestamp= to the window"):
        sdf.emit(frame(xd, [1]))


def _times_and_values(x: Any) -> list[tuple[float, float]]:
    x = to_pandas(x)
    return [(t.timestamp(), v) for t, v in zip(x.index, x.tolist(), strict=True)]


def _first(pair: tuple[float, float]) -> float:
    return pair[0]


# -- time windows, rolling and windowed groupby after the stage ---------------------------
def keyed(xd: Any, chunks: list[list[float]]) -> tuple[Any, list[Any]]:
    """Frames of ``chunks`` (their times) with ``x`` numbered in input order and ``k``
    cycling a, b, c; and the pandas concatenation."""
    frames, n = [], 0
    for times in chunks:
        xs = list(range(n, n + len(times)))
        frames.append(frame(xd, times, xs, k=["abc"[i % 3] for i in xs]))
        n += len(times)
    return frames, pd.concat([to_pandas(f) for f in frames])


def in_time(df: pd.DataFrame, span: str) -> pd.DataFrame:
    """The rows of ``df`` within ``span`` of its newest row (Streamz's time window)."""
    return df[df.index > df.index[-1] - pd.Timedelta(span)]


def in_span(df: pd.DataFrame, span: str) -> pd.DataFrame:
    """The rows of ``df`` (any order) in ``(newest - span, newest]``, sorted (stable)."""
    df = df.sort_index(kind="stable")
    return df[df.index > df.index.max() - pd.Timedelta(span)]


def late_rows_dropped(whole: pd.DataFrame, chunks: list[list[float]], ooo: float) -> Any:
    return whole[~np.array(reference(chunks, ooo), dtype=bool)].sort_index(kind="stable")


@pytest.mark.parametrize("late", ["drop", "side"])
def test_a_time_window_after_the_stage_equals_pandas_on_the_sorted_rows(xd: Any, late: str) -> None:
    frames, whole = keyed(xd, CHUNKS_LATE)
    sdf = DataFrame(example=frames[0].iloc[:0])
    ordered = sdf.with_timestamps(max_out_of_orderness=2, late=late)
    out = ordered.stream.sink_to_list()
    sums = ordered.window("4s").x.sum().stream.sink_to_list()
    means = ordered[["x"]].window(value="4s").mean().stream.sink_to_list()
    for f in frames:
        sdf.emit(f)
    ordered.stream.end_of_input()
    assert len(sums) == len(out) == len(means)
    for i in range(len(out)):
        so_far = concat(out[: i + 1])
        assert sums[i] == in_time(so_far, "4s").x.sum()
        assert_series_equal(means[i], in_time(so_far, "4s")[["x"]].mean())
    kept = late_rows_dropped(whole, CHUNKS_LATE, 2)
    pd.testing.assert_frame_equal(concat(out), kept)
    assert sums[-1] == in_time(kept, "4s").x.sum()


def test_time_rolling_after_the_stage_equals_pandas_on_the_sorted_rows(xd: Any) -> None:
    frames, whole = keyed(xd, CHUNKS_LATE)
    sdf = DataFrame(example=frames[0].iloc[:0])
    ordered = sdf.with_timestamps(max_out_of_orderness="2s")
    sums = ordered.rolling("4s").x.sum().stream.sink_to_list()
    means = ordered[["x"]].rolling("3s").mean().stream.sink_to_list()
    for f in frames:
        sdf.emit(f)
    ordered.stream.end_of_input()
    kept = late_rows_dropped(whole, CHUNKS_LATE, 2)
    assert_series_equal(concat(sums), kept.x.rolling("4s").sum())
    assert_frame_equal(concat(means), kept[["x"]].rolling("3s").mean())


def test_a_windowed_groupby_after_the_stage_equals_pandas_on_the_sorted_rows(xd: Any) -> None:
    frames, whole = keyed(xd, CHUNKS_LATE)
    sdf = DataFrame(example=frames[0].iloc[:0])
    ordered = sdf.with_timestamps(max_out_of_orderness=2)
    out = ordered.stream.sink_to_list()
    sums = ordered.window("5s").groupby("k").x.sum().stream.sink_to_list()
    for f in frames:
        sdf.emit(f)
    ordered.stream.end_of_input()
    for i in range(len(out)):
        expected = in_time(concat(out[: i + 1]), "5s").groupby("k").x.sum()
        assert_series_equal(sums[i], expected, check_names=False)
    kept = late_rows_dropped(whole, CHUNKS_LATE, 2)
    assert_series_equal(sums[-1], in_time(kept, "5s").groupby("k").x.sum(), check_names=False)


def test_whole_history_groupby_with_late_update_counts_every_row(xd: Any) -> None:
    frames, whole = keyed(xd, CHUNKS_LATE)
    sdf = DataFrame(example=frames[0].iloc[:0])
    ordered = sdf.with_timestamps(max_out_of_orderness=2, late="update")
    sums = ordered.groupby("k").x.sum().stream.sink_to_list()
    for f in frames:
        sdf.emit(f)
    ordered.stream.end_of_input()
    assert ordered.stream.late_count == 3
    assert_series_equal(sums[-1], whole.groupby("k").x.sum(), check_names=False)


def test_a_time_window_takes_the_late_chunks_of_late_update(xd: Any) -> None:
    """A late chunk goes back in time: a time window adds its rows within the window of
    the newest row and ignores the older ones (they would have left already)."""
    frames, _ = keyed(xd, CHUNKS_LATE)
    sdf = DataFrame(example=frames[0].iloc[:0])
    ordered = sdf.with_timestamps(max_out_of_orderness=2, late="update")
    out = ordered.stream.sink_to_list()
    window = ordered.window("4s").x.sum().stream
    sums = window.sink_to_list()
    for f in frames:
        sdf.emit(f)
    assert [to_pandas(c).index.tolist() for c in out] == [
        list(seconds(1)),
        list(seconds(5, 6)),
        list(seconds(3)),  # late: newest 6s, in (2s, 6s]: added
        list(seconds(8, 9)),
        list(seconds(2)),  # late: newest 9s, out of (5s, 9s]: ignored
        list(seconds(12)),
        list(seconds(4)),  # late: ignored
    ]
    assert sums == [1.0, 2.0, 5.0, 12.0, 12.0, 11.0, 11.0]
    for i in range(len(out)):
        assert sums[i] == in_span(concat(out[: i + 1]), "4s").x.sum()
    assert window.state.ignored == 2


def _ordered_sum_and_rows(sdf: Any) -> tuple[Any, Any]:
    ordered = sdf.with_timestamps(max_out_of_orderness=2, late="side")
    return ordered, ordered.x.sum()


def test_on_dask_the_stage_runs_here_and_gives_the_local_results(client: Any) -> None:
    chunks = [frame(pd, t, list(range(10 * i, 10 * i + len(t)))) for i, t in enumerate(CHUNKS_LATE)]
    sdf = DataFrame(example=example(pd))
    ordered, total = _ordered_sum_and_rows(sdf)
    local_rows, local_sums = ordered.stream.sink_to_list(), total.stream.sink_to_list()
    for chunk in chunks:
        sdf.emit(chunk)

    source = Stream()
    on_dask = source.scatter().to_dataframe(example(pd))
    d_ordered, d_total = _ordered_sum_and_rows(on_dask)
    rows = d_ordered.stream.gather().sink_to_list()
    late = d_ordered.late.stream.gather().sink_to_list()
    sums = d_total.stream.gather().sink_to_list()
    for chunk in chunks:
        source.emit(chunk)
    wait_for(lambda: len(sums) == len(local_sums) and len(late) == 3, 30)
    pd.testing.assert_frame_equal(concat(rows), concat(local_rows))
    assert sums == local_sums
    assert d_ordered.stage.late_count == 3 and watermark(d_total.stream) == ordered.stage.watermark


# -- arguments --------------------------------------------------------------------------
def test_bad_arguments_fail_when_built(xd: Any) -> None:
    sdf = DataFrame(example=example(xd))
    with pytest.raises(ValueError, match="late must be"):
        sdf.with_timestamps(late="keep")
    with pytest.raises(ValueError, match="allowed_lateness needs late='update'"):
        sdf.with_timestamps(allowed_lateness=3)
    with pytest.raises(KeyError, match="'t' is not a column"):
        sdf.with_timestamps(on="t")
    with pytest.raises(ValueError, match="max_out_of_orderness must not be negative"):
        sdf.with_timestamps(max_out_of_orderness=-1)
    assert sdf.stream.downstreams == []
    with pytest.raises(TypeError, match="names a column"):
        sdf.x.with_timestamps(on="x")
    with pytest.raises(TypeError, match="needs DataFrame or Series chunks"):
        with_timestamps(Streaming(example=pd.Index([1])))


def test_bad_event_times_name_the_stage(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"t": [0.0], "s": ["a"]}).iloc[:0])
    ordered = sdf.with_timestamps(on="t")
    with pytest.raises(ValueError, match=r"(?s)with_timestamps: on='t'.*NaN"):
        sdf.emit(xd.DataFrame({"t": [1.0, None], "s": ["a", "b"]}))
    by_s = sdf.with_timestamps(on="s")
    with pytest.raises(TypeError, match="must be datetimes, timedeltas or numbers"):
        sdf.emit(xd.DataFrame({"t": [1.0], "s": ["a"]}))
    assert ordered.stream.late_count == 0 and by_s is not None


def test_timezone_aware_times_and_a_series(xd: Any) -> None:
    index = pd.DatetimeIndex(["2024-05-01 14:00:02", "2024-05-01 14:00:01"], tz="Europe/Paris")
    s = DataFrame(example=xd.DataFrame({"x": [0.0]}, index=index[:1]).iloc[:0]).x
    ordered = s.with_timestamps()
    out = ordered.stream.sink_to_list()
    s.emit(xd.Series([1.0, 2.0], index=index, name="x"))
    assert ordered.stream.watermark == pd.Timestamp("2024-05-01 12:00:02", tz="UTC").timestamp()
    assert to_pandas(out[0]).tolist() == [2.0, 1.0]
    assert isinstance(ordered.stream, EventTimeOrder)


# -- properties -------------------------------------------------------------------------
@st.composite
def nearly_ordered(draw: Any) -> tuple[list[list[float]], float]:
    """Chunks of times, each at most ``ooo`` behind the largest time before it."""
    ooo = draw(st.integers(0, 5))
    n = draw(st.integers(0, 30))
    steps = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    lags = draw(st.lists(st.integers(0, ooo), min_size=n, max_size=n))
    largest, times = 0, []
    for step, lag in zip(steps, lags, strict=True):
        largest += step
        times.append(float(max(0, largest - lag)))
        largest = max(largest, times[-1])
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    return [times[a:b] for a, b in itertools.pairwise(bounds)], float(ooo)


@settings(max_examples=60, deadline=None)
@given(nearly_ordered())
def test_within_max_out_of_orderness_nothing_is_late(case: tuple[list[list[float]], float]) -> None:
    chunks, ooo = case
    import pandas as xd

    sdf, ordered, out, _ = build(xd, max_out_of_orderness=ooo)
    sums = ordered.x.sum().stream.sink_to_list()
    whole = emit_all(xd, sdf, chunks)
    ordered.stream.end_of_input()
    assert ordered.stream.late_count == 0
    if len(whole):
        expected = whole.sort_index(kind="stable")
        pd.testing.assert_frame_equal(concat(out), expected)
        assert all(c.index.is_monotonic_increasing and len(c) for c in out)
        assert sums[-1] == expected.x.sum()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3)), max_size=30),
    st.lists(st.integers(0, 30), max_size=5),
)
def test_partitions_each_in_order_lose_nothing(
    steps: list[tuple[str, int]], cuts: list[int]
) -> None:
    """Each partition in order, the partitions declared: whatever the interleaving and the
    chunking, nothing is late and the rows come out sorted."""
    import pandas as xd

    clocks = {"a": 0, "b": 0, "c": 0}
    rows = []
    for p, step in steps:
        clocks[p] += step
        rows.append((p, float(clocks[p])))
    ex = partitioned(xd, [("a", 0)]).iloc[:0]
    sdf, ordered, out, _ = build(xd, ex, partition="sensor", partitions="abc")
    bounds = [0, *sorted(c for c in cuts if c <= len(rows)), len(rows)]
    chunks = [rows[a:b] for a, b in itertools.pairwise(bounds)]
    sent = [partitioned(xd, c) for c in chunks if c]
    for chunk in sent:
        sdf.emit(chunk)
    ordered.stream.end_of_input()
    assert ordered.stream.late_count == 0
    if sent:
        expected = pd.concat(sent).sort_index(kind="stable")
        pd.testing.assert_frame_equal(concat(out), expected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 30), max_size=6), max_size=8),
    st.integers(0, 4),
    st.sampled_from(["drop", "side", "update"]),
)
def test_any_disorder_matches_the_reference(chunks: list[list[int]], ooo: int, late: str) -> None:
    import pandas as xd

    times = [[float(t) for t in c] for c in chunks]
    sdf, ordered, out, side = build(xd, max_out_of_orderness=ooo, late=late)
    whole = emit_all(xd, sdf, times)
    ordered.stream.end_of_input()
    is_late = np.array(reference(times, ooo), dtype=bool)
    assert ordered.stream.late_count == is_late.sum()
    if not len(whole):
        return
    on_time = whole[~is_late].sort_index(kind="stable")
    result = concat(out) if out else whole.iloc[:0]
    if late == "update":  # every row, the late ones in chunks of their own
        pd.testing.assert_frame_equal(result.sort_values("x"), whole.sort_values("x"))
    else:
        pd.testing.assert_frame_equal(result, on_time)
    if late == "side" and is_late.any():
        pd.testing.assert_frame_equal(
            concat(side).sort_values("x"), whole[is_late].sort_values("x")
        )


@settings(max_examples=30, deadline=None)
@given(nearly_ordered())
def test_windows_and_rolling_on_nearly_ordered_input_equal_pandas(
    case: tuple[list[list[float]], float],
) -> None:
    import pandas as xd

    chunks, ooo = case
    frames, whole = keyed(xd, chunks)
    if not len(whole):
        return
    sdf = DataFrame(example=frames[0].iloc[:0])
    ordered = sdf.with_timestamps(max_out_of_orderness=ooo)
    window = ordered.window("3s").x.sum().stream.sink_to_list()
    rolling = ordered.rolling("3s").x.mean().stream.sink_to_list()
    grouped = ordered.window("3s").groupby("k").x.count().stream.sink_to_list()
    for f in frames:
        if len(f):
            sdf.emit(f)
    ordered.stream.end_of_input()
    expected = whole.sort_index(kind="stable")
    assert window[-1] == in_time(expected, "3s").x.sum()
    pd.testing.assert_series_equal(concat(rolling), expected.x.rolling("3s").mean())
    pd.testing.assert_series_equal(
        grouped[-1], in_time(expected, "3s").groupby("k").x.count(), check_names=False
    )


# -- late='update' through windows and rolling --------------------------------------------
def late_update_pipeline(xd: Any, ex: Any, lateness: float | None, span: str) -> dict[str, Any]:
    """``with_timestamps(late='update')`` into a time window, a windowed groupby and a
    time-based rolling sum; the nodes and their outputs."""
    sdf = DataFrame(example=ex)
    ordered = sdf.with_timestamps(late="update", allowed_lateness=lateness)
    nodes = {
        "ordered": ordered.stream,
        "window": ordered.window(span).x.sum().stream,
        "grouped": ordered.window(span).groupby("k").x.sum().stream,
        "rolling": ordered.rolling(span).x.sum().stream,
    }
    return {"sdf": sdf, "nodes": nodes, "out": {k: n.sink_to_list() for k, n in nodes.items()}}


def corrected_rows(before: pd.DataFrame, new: pd.DataFrame, span: str) -> list[Any]:
    """The rows of ``before`` whose rolling window ``(t - span, t]`` gains a row of
    ``new`` (unique times): the corrections a late chunk brings."""
    t, w = before.index, pd.Timedelta(span)
    return [r for r in t if ((new.index > r - w) & (new.index < r)).any()]


def rolling_reference(chunks: list[Any], span: str, lateness: float | None) -> list[Any]:
    """What rolling emits per chunk (unique times): the chunk's rows not older than the
    newest row before minus ``span + lateness``, and the rows kept whose window gains one
    of them, valued as pandas' rolling over the rows kept and the chunk's, sorted."""
    w, extra = pd.Timedelta(span), pd.Timedelta(seconds=lateness or 0)
    kept, expected = to_pandas(chunks[0]).iloc[:0], []
    for chunk in chunks:
        chunk = to_pandas(chunk)
        if len(kept):
            chunk = chunk[chunk.index > kept.index.max() - w - extra]
        merged = pd.concat([kept, chunk]).sort_index(kind="stable")
        labels = sorted([*chunk.index, *corrected_rows(kept, chunk, span)])
        expected.append(merged.x.rolling(w).sum().loc[labels])
        kept = merged[merged.index > merged.index.max() - w - extra]
    return expected


def check_late_update(out: dict[str, list], span: str, lateness: float | None) -> None:
    """Each result against pandas on the rows passed on so far (unique times)."""
    chunks = out["ordered"]
    assert len(out["window"]) == len(out["grouped"]) == len(out["rolling"]) == len(chunks)
    for i in range(len(chunks)):
        rows = in_span(concat(chunks[: i + 1]), span)
        assert out["window"][i] == pytest.approx(rows.x.sum())
        assert_series_equal(out["grouped"][i], rows.groupby("k").x.sum(), check_names=False)
    for ours, expected in zip(
        out["rolling"], rolling_reference(chunks, span, lateness), strict=True
    ):
        assert_series_equal(ours, expected)


def unique_times_chunks(draw: Any) -> list[list[float]]:
    """Chunks of distinct times 0..n-1, each moved back by up to 6 places."""
    n = draw(st.integers(1, 25))
    shifts = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    times = sorted(range(n), key=lambda i: i + shifts[i])
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    return [[float(t) for t in times[a:b]] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=50, deadline=None)
@given(st.data(), st.sampled_from([None, 0, 1, 2, 3, 5, 8]), st.sampled_from(["2s", "3s", "5s"]))
def test_late_update_through_windows_and_rolling_equals_pandas(
    data: Any, lateness: float | None, span: str
) -> None:
    """Whatever the chunking and lateness: after each chunk the window is the aggregate of
    the rows so far within ``span`` of the newest; rolling emits each chunk's rows and
    the corrected rows, as pandas' rolling over the rows kept and the chunk's, sorted."""
    import pandas as xd

    chunks = unique_times_chunks(data.draw)
    frames, whole = keyed(xd, chunks)
    run = late_update_pipeline(xd, frames[0].iloc[:0], lateness, span)
    for f in frames:
        run["sdf"].emit(f)
    run["nodes"]["ordered"].end_of_input()
    check_late_update(run["out"], span, lateness)
    assert run["nodes"]["ordered"].dropped_count == len(whole) - len(concat(run["out"]["ordered"]))


def test_late_update_rolling_and_windows_by_hand(xd: Any) -> None:
    frames, _ = keyed(xd, [[0, 2, 5], [8], [4], [9], [6.5]])
    run = late_update_pipeline(xd, frames[0].iloc[:0], 5, "3s")
    for f in frames:
        run["sdf"].emit(f)
    out = run["out"]
    assert [to_pandas(c).index.tolist() for c in out["ordered"]] == [
        list(seconds(0, 2, 5)),
        list(seconds(8)),
        list(seconds(4)),
        list(seconds(9)),
        list(seconds(6.5)),
    ]
    assert out["window"] == [2.0, 3.0, 3.0, 8.0, 14.0]  # 4s is out of (5s, 8s]: ignored
    # the late row at 4s: its value, then 5s (corrected: 1 + 4 + 2); 6.5s corrects 8s, 9s
    late = to_pandas(out["rolling"][2])
    assert late.index.tolist() == list(seconds(4, 5)) and late.tolist() == [5.0, 6.0]
    assert to_pandas(out["rolling"][4]).index.tolist() == list(seconds(6.5, 8, 9))
    check_late_update(out, "3s", 5)
    # rows at most allowed_lateness older than the newest: as pandas over every row
    passed = concat(out["ordered"]).sort_index()
    finals = pd.concat([to_pandas(c) for c in out["rolling"]]).groupby(level=0).last()
    assert_series_equal(finals, passed.x.rolling("3s").sum())
    assert run["nodes"]["window"].state.ignored == 1


def test_late_update_window_and_rolling_snapshot_restore_mid_stream(xd: Any) -> None:
    frames, _ = keyed(xd, [[0, 2, 5], [8, 3], [4, 11], [9, 10], [6.5, 14], [12, 13]])
    whole_run = late_update_pipeline(xd, frames[0].iloc[:0], 4, "3s")
    for f in frames:
        whole_run["sdf"].emit(f)
    first = late_update_pipeline(xd, frames[0].iloc[:0], 4, "3s")
    for f in frames[:3]:
        first["sdf"].emit(f)
    saved = pickle.dumps({k: n.snapshot() for k, n in first["nodes"].items()})
    second = late_update_pipeline(xd, frames[0].iloc[:0], 4, "3s")  # a new process, say
    for k, state in pickle.loads(saved).items():
        second["nodes"][k].restore(state)
    for f in frames[3:]:
        second["sdf"].emit(f)
    done = len(first["out"]["window"])
    assert second["out"]["window"] == whole_run["out"]["window"][done:]
    for name in ("grouped", "rolling"):
        theirs = whole_run["out"][name][done:]
        assert len(second["out"][name]) == len(theirs)
        for a, b in zip(second["out"][name], theirs, strict=True):
            assert_series_equal(a, b)
    assert second["nodes"]["window"].state.ignored == whole_run["nodes"]["window"].state.ignored


def test_without_allowed_lateness_rolling_keeps_only_its_window(xd: Any) -> None:
    """``allowed_lateness=None``: rolling keeps the rows of its window only; a late row
    within it gets its value over the rows kept, an older one is ignored."""
    frames, _ = keyed(xd, [[0, 1, 2, 10], [8.5], [6]])
    run = late_update_pipeline(xd, frames[0].iloc[:0], None, "2s")
    for f in frames:
        run["sdf"].emit(f)
    rolling = [to_pandas(c) for c in run["out"]["rolling"]]
    # 8.5s: over the rows kept (10s only) and itself; 10s corrected
    assert rolling[1].index.tolist() == list(seconds(8.5, 10)) and rolling[1].tolist() == [4.0, 7.0]
    assert len(rolling[2]) == 0  # 6s: older than 10s - 2s, ignored
    assert run["out"]["window"] == [3.0, 7.0, 7.0]


@pytest.mark.parametrize("operation", ["sum", "mean", "max", "count"])
def test_rolling_takes_unsorted_and_older_chunks_without_the_stage(xd: Any, operation: str) -> None:
    """No stage: rolling keeps its window only; chunks not sorted or older than the newest
    row give their rows and the corrected ones, as pandas over the rows kept and theirs."""
    chunks = [[3, 0, 1], [5, 4.5], [6, 2.5], [9], [8.5, 7]]
    frames, _ = keyed(xd, chunks)
    frames[2].loc[frames[2].index[0], "x"] = np.nan
    sdf = DataFrame(example=frames[0].iloc[:0])
    rolled = sdf[["x"]].rolling("2s")
    out = getattr(rolled, operation)().stream.sink_to_list()
    for f in frames:
        sdf.emit(f)
    w, kept = pd.Timedelta("2s"), to_pandas(frames[0]).iloc[:0][["x"]]
    for ours, chunk in zip(out, frames, strict=True):
        chunk = to_pandas(chunk)[["x"]]
        if len(kept):
            chunk = chunk[chunk.index > kept.index.max() - w]
        merged = pd.concat([kept, chunk]).sort_index(kind="stable")
        labels = sorted([*chunk.index, *corrected_rows(kept, chunk, "2s")])
        assert_frame_equal(ours, getattr(merged.rolling(w), operation)().loc[labels])
        kept = merged[merged.index > merged.index.max() - w]
    indexes = [to_pandas(c).index.tolist() for c in out]
    assert indexes[1:] == [
        list(seconds(4.5, 5)),  # sorted
        list(seconds(6)),  # 2.5s: older than 5s - 2s, ignored
        list(seconds(9)),
        list(seconds(8.5, 9)),  # 7s ignored; 8.5s, then 9s corrected
    ]


# -- the docs page ------------------------------------------------------------------------
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_docs_section_has_runnable_examples() -> None:
    """docs/dataframes.md's "## Event time" section shows each part of this file; its
    blocks run in tests/dataframe/test_dataframes_docs.py with the rest of the page."""
    text = (DOCS / "dataframes.md").read_text()
    start = text.index("## Event time")
    end = text.find("\n## ", start + 1)
    section = text[start : None if end < 0 else end]
    assert len([b for b in python_blocks(section, "dataframes.md") if b[2]]) >= 9

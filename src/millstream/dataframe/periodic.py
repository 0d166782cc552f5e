"""Frames made on a timer: ``PeriodicDataFrame`` (``DataFrame.from_periodic``) and
``Random`` (``DataFrame.random``), Streamz's demo and polling sources.

Every ``interval`` a :class:`PeriodicTicks` source (a :func:`~millstream.sources.from_periodic`
that sleeps before its first call) emits ``{'last': previous time, 'now': time}``, and
``datafn(last=..., now=..., **kwargs)`` turns that into the next chunk. The source starts,
stops, waits for downstream (backpressure) and runs on the event loop like any other
source; ``stop()`` returns once its task has ended.

>>> import pandas as pd
>>> sdf = Random(freq='10ms', interval='50ms', start=False)
>>> list(sdf.columns), type(sdf.example.index).__name__
(['x', 'y', 'z'], 'DatetimeIndex')
>>> chunks = sdf.stream.sink_to_list()
>>> sdf.start()
>>> from millstream.testing import wait_for
>>> wait_for(lambda: len(chunks) >= 2, 5)
>>> sdf.stop()
>>> sdf.source.work_task.done()
True
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .._utils import func_repr
from ..sources.periodic import from_periodic
from .frames import DataFrame

__all__ = [
    "PeriodicDataFrame",
    "PeriodicTicks",
    "Random",
    "random_datablock",
    "random_datapoint",
]


def random_datapoint(now: Any = None, **kwargs: Any) -> pd.DataFrame:
    """One row with a uniform random column ``a``, indexed at ``now`` (default: now).

    >>> random_datapoint(pd.Timestamp('2026-01-01')).index[0]
    Timestamp('2026-01-01 00:00:00')
    """
    if now is None:
        now = pd.Timestamp.now()
    return pd.DataFrame({"a": np.random.random(1)}, index=[now])


def random_datablock(last: Any, now: Any, **kwargs: Any) -> pd.DataFrame:
    """Random rows every ``freq`` (default 100ms) after ``last`` up to ``now``.

    The index is ``date_range(last + freq, now, freq=freq)``; column ``x`` is uniform on
    [0, 1), ``y`` Poisson (mean 1) and ``z`` standard normal.

    >>> t = pd.Timestamp('2026-01-01')
    >>> df = random_datablock(t, t + pd.Timedelta('1s'), freq=pd.Timedelta('250ms'))
    >>> [str(i.time()) for i in df.index], list(df.columns)
    (['00:00:00.250000', '00:00:00.500000', '00:00:00.750000', '00:00:01'], ['x', 'y', 'z'])
    """
    freq = pd.Timedelta(kwargs.get("freq", "100ms"))
    index = pd.date_range(start=last + freq, end=now, freq=freq)
    n = len(index)
    return pd.DataFrame(
        {
            "x": np.random.random(n),
            "y": np.random.poisson(size=n),
            "z": np.random.normal(0, 1, size=n),
        },
        index=index,
    )


class PeriodicTicks(from_periodic):
    """Emit ``{'last': t0, 'now': t1}`` every ``interval`` seconds (``pandas.Timestamp``
    wall-clock times): ``last`` is the previous ``now``, or the time of ``start()``.

    >>> ticks = PeriodicTicks(0.01)
    >>> L = ticks.sink_to_list()
    >>> ticks.start()
    >>> from millstream.testing import wait_for
    >>> wait_for(lambda: len(L) >= 2, 5)
    >>> ticks.stop()
    >>> L[1]['last'] == L[0]['now'] and L[0]['last'] < L[0]['now']
    True
    """

    def __init__(self, interval: float | str, **kwargs: Any):
        self.last: pd.Timestamp | None = None
        super().__init__(self._tick, interval, wait_first=True, **kwargs)

    def start(self) -> None:
        if self.stopped:
            self.last = pd.Timestamp.now()
        super().start()

    def _tick(self) -> dict[str, pd.Timestamp]:
        now = pd.Timestamp.now()
        last = now if self.last is None else self.last
        self.last = now
        return {"last": last, "now": now}


class _CallDatafn:
    """``datafn(**tick, **kwargs)``, picklable (it runs on Dask workers with ``dask=True``).

    It takes the name of ``datafn``, so that an error names the user's function."""

    def __init__(self, datafn: Callable[..., Any], kwargs: dict[str, Any]):
        self.datafn = datafn
        self.kwargs = kwargs
        self.__qualname__ = getattr(datafn, "__qualname__", type(datafn).__name__)

    def __call__(self, tick: dict[str, Any]) -> Any:
        return self.datafn(**tick, **self.kwargs)

    def __repr__(self) -> str:
        return f"datafn {func_repr(self.datafn)}"


class PeriodicDataFrame(DataFrame):
    """A DataFrame of ``datafn(last=..., now=..., **kwargs)`` every ``interval``.

    As in Streamz, the example is ``datafn(last=now, now=now, **kwargs)`` (called once
    here), ``start=True`` starts at once, and the source stops when this object is
    garbage collected (as Streamz's ``__del__`` does; keep a reference to it while you use
    what you built on it). ``stop()`` ends the source's task before it returns.

    Parameters
    ----------
    datafn : callable
        ``datafn(last, now, **kwargs)`` returns the chunk for the time since ``last``.
    interval : str or float
        The period (a pandas duration such as ``'500ms'``, or seconds).
    dask : bool
        Call ``datafn`` on the workers of the default Dask client: the stream then
        carries futures (a ``DaskStream``), as in Streamz.
    start : bool
        Start at once.
    **kwargs
        Passed to ``datafn`` on each call.

    Examples
    --------
    >>> def hello(last, now, **kwargs):
    ...     return pd.DataFrame({'seconds': [(now - last).total_seconds()]})
    >>> sdf = DataFrame.from_periodic(datafn=hello, interval='20ms')
    >>> from millstream.testing import wait_for
    >>> L = sdf.seconds.stream.sink_to_list()
    >>> wait_for(lambda: len(L) >= 2, 5)
    >>> sdf.stop()
    >>> 0.01 < float(L[-1].iloc[0]) < 2
    True
    """

    def __init__(
        self,
        datafn: Callable[..., Any] = random_datablock,
        interval: str | float = "500ms",
        dask: bool = False,
        start: bool = True,
        **kwargs: Any,
    ):
        if isinstance(interval, (int, float)):
            self.interval = float(interval)
        else:
            self.interval = pd.Timedelta(interval).total_seconds()
        self.datafn = datafn
        self.kwargs = kwargs
        #: the source of the ticks (``sdf.stream`` is below it)
        self.source = PeriodicTicks(self.interval)
        self.loop = self.source.loop
        call = _CallDatafn(datafn, kwargs)
        # the methods of Stream are registered by the layers above core
        source: Any = self.source
        stream = source.scatter().map(call) if dask else source.map(call)
        now = pd.Timestamp.now()
        example = datafn(last=now, now=now, **kwargs)
        super().__init__(stream, example)
        # stop() on garbage collection, as Streamz's __del__ (which may run on any thread)
        self._finalizer = weakref.finalize(self, self.source.stop)
        if start:
            self.start()

    def start(self) -> None:
        """Start emitting (again, after ``stop()``)."""
        self.source.start()

    def stop(self) -> None:
        """Stop emitting; from outside the loop, returns once the source's task has ended."""
        self.source.stop()


class Random(PeriodicDataFrame):
    """Random rows every ``freq``, emitted in chunks every ``interval`` (``DataFrame.random``).

    Columns ``x`` (uniform), ``y`` (Poisson) and ``z`` (normal) on a DatetimeIndex
    (see :func:`random_datablock`).

    >>> sdf = Random(start=False)
    >>> sdf.interval, sdf.kwargs['freq']
    (0.5, Timedelta('0 days 00:00:00.100000'))
    """

    def __init__(
        self,
        freq: str = "100ms",
        interval: str | float = "500ms",
        dask: bool = False,
        start: bool = True,
        datafn: Callable[..., Any] = random_datablock,
    ):
        super().__init__(datafn, interval, dask, start, freq=pd.Timedelta(freq))


DataFrame.register_api(staticmethod, "from_periodic")(PeriodicDataFrame)
DataFrame.register_api(staticmethod, "random")(Random)

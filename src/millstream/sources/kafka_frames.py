"""JSON-lines Kafka batches as frames: ``from_kafka_batched(..., engine='cudf')`` (cuDF,
as Streamz's cuStreamz path) or ``engine='pandas'``.

Each batch (the values of one partition's records, one JSON object each) becomes one
frame: the values are joined with newlines and read with ``read_json(..., lines=True)``
of the engine's package (``cudf.read_json`` on the GPU, ``pandas.read_json`` with
``dtype=False`` otherwise: each column has its JSON type in every batch, as with cudf).
A batch with no value left (only tombstones) becomes an empty frame.

>>> to_frame = JsonLinesFrame('pandas')
>>> to_frame([b'{"x": 1, "name": "a"}', b'{"x": 2, "name": "b"}'])
   x name
0  1    a
1  2    b
>>> len(to_frame([]))
0
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from ..kafka.batch import get_message_batch

__all__ = ["ENGINES", "INSTALL", "JsonLinesFrame", "ReadJsonLinesFrame", "frame_package"]

#: The ``engine=`` values that read batches into frames.
ENGINES = ("cudf", "pandas")

#: How to install each engine's package.
INSTALL = {
    "cudf": "pip install cudf-cu12 --extra-index-url=https://pypi.nvidia.com",
    "pandas": "pip install 'millstream[dataframe]'",
}


def frame_package(engine: str, where: str = "from_kafka_batched") -> ModuleType:
    """The package of ``engine`` (``cudf`` or ``pandas``), or a one-line ImportError
    saying how to install it.

    >>> frame_package('pandas').__name__
    'pandas'
    >>> frame_package('polars')
    Traceback (most recent call last):
    ...
    ValueError: from_kafka_batched: engine must be None, 'cudf' or 'pandas', got 'polars'
    """
    if engine not in ENGINES:
        raise ValueError(f"{where}: engine must be None, 'cudf' or 'pandas', got {engine!r}")
    try:
        return importlib.import_module(engine)
    except ImportError as e:
        raise ImportError(
            f"{where}(engine={engine!r}) needs {engine}, which cannot be imported ({e}); "
            f"install it with: {INSTALL[engine]}"
        ) from None


class JsonLinesFrame:
    """``records -> frame``: one JSON object per record value (bytes or str); picklable."""

    __slots__ = ("engine",)

    def __init__(self, engine: str):
        frame_package(engine)
        self.engine = engine

    def __call__(self, records: Sequence[Any]) -> Any:
        package = frame_package(self.engine)
        if not records:
            return package.DataFrame()
        data = b"\n".join(v.encode() if isinstance(v, str) else v for v in records)
        if self.engine == "pandas":
            # the JSON types as they are (as cudf reads them): no per-batch guessing that
            # turns 1.0, 2.0 into integers in one batch and not in the next
            return package.read_json(io.BytesIO(data), lines=True, dtype=False)
        return package.read_json(io.BytesIO(data), lines=True)

    def __repr__(self) -> str:
        return f"JsonLinesFrame({self.engine!r})"


class ReadJsonLinesFrame:
    """``get_message_batch`` then :class:`JsonLinesFrame`: what the Dask workers run for
    ``from_kafka_batched(..., dask=True, engine=...)`` (Streamz's ``get_message_batch_cudf``).
    Keys are not read (as in Streamz: a frame holds the values)."""

    __slots__ = ("to_frame",)

    def __init__(self, engine: str):
        self.to_frame = JsonLinesFrame(engine)

    def __call__(
        self,
        kafka_params: Mapping[str, Any],
        topic: str,
        partition: int,
        keys: bool,
        low: int,
        high: int,
        timeout: float | None = None,
    ) -> Any:
        records = get_message_batch(kafka_params, topic, partition, False, low, high, timeout)
        return self.to_frame(records)

    def __repr__(self) -> str:
        return f"ReadJsonLinesFrame({self.to_frame.engine!r})"

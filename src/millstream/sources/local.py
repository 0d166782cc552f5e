"""The local sources: importing this module registers them on ``Stream``.

``from_periodic`` (:mod:`.periodic`), ``from_textfile`` and ``filenames``
(:mod:`.files`), ``from_parquet``, ``from_csv`` and ``from_jsonl``
(:mod:`.file_readers`), ``from_tcp``, ``from_http_server``, ``from_websocket``,
``from_q`` and ``from_mqtt`` (:mod:`.network`), ``from_process`` (:mod:`.process`).
"""

from __future__ import annotations

from .file_readers import from_csv, from_jsonl, from_parquet
from .files import filenames, from_textfile
from .network import from_http_server, from_mqtt, from_q, from_tcp, from_websocket
from .periodic import PeriodicCallback, from_periodic
from .process import from_process

__all__ = [
    "PeriodicCallback",
    "filenames",
    "from_csv",
    "from_http_server",
    "from_jsonl",
    "from_mqtt",
    "from_parquet",
    "from_periodic",
    "from_process",
    "from_q",
    "from_tcp",
    "from_textfile",
    "from_websocket",
]

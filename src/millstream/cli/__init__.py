"""The ``millstream`` command line: ``wordcount`` (of a file or a Kafka topic), ``load-kafka``.

Run it as ``millstream ...`` (the installed console script) or ``python -m millstream ...``.
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]

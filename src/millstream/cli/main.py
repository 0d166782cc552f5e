"""Entry point of the ``millstream`` command (console script and ``python -m millstream``):
it builds the parser and hands each command to its module.

- ``wordcount [PATH|-]``: :mod:`millstream.cli.wordcount` (a file, stdin or the shipped text);
- ``wordcount --kafka ... --topic ...``: :mod:`millstream.cli.kafka`;
- ``load-kafka``: :mod:`millstream.cli.load_kafka`;
- ``run MODULE:ATTRIBUTE``: :mod:`millstream.cli.run` (a pipeline of the user's, in production).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import kafka, load_kafka, run, wordcount
from ._env import EnvArgumentParser

__all__ = ["build_parser", "main"]


def _version() -> str:
    from .._version import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``millstream`` argument parser, with one sub-parser per command.

    Examples
    --------
    >>> args = build_parser().parse_args(['wordcount', '-', '--top', '3'])
    >>> args.command, args.path, args.top, args.raw
    ('wordcount', '-', 3, False)
    """
    parser = EnvArgumentParser(
        prog="millstream",
        description="millstream: Streamz-compatible stream processing on asyncio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    wc = commands.add_parser(
        "wordcount",
        help="count the words of a text or a Kafka topic live, with a Streamz-style pipeline",
        description=(
            "Stream a text line by line (or the records of a Kafka topic, with --kafka "
            "and --topic) through "
            "source.map(normalize).map(str.split).flatten().frequencies() "
            "and show the most frequent words, with the elapsed time, the current "
            "lines/s (over the last second) and, with Kafka, the consumer lag. "
            "On a terminal the table updates a few times per second; otherwise "
            "only the final table is printed."
        ),
    )
    wordcount.add_arguments(wc)
    kafka.add_wordcount_arguments(wc)
    load = commands.add_parser(
        "load-kafka",
        help="write a text into a Kafka topic, one record per line",
        description=(
            "Write a text into a Kafka topic, one record per line (UTF-8, without the "
            "newline; the lines go to the partitions in turn), and print how many records "
            "were written; `millstream wordcount "
            "--kafka ... --topic ...` then counts them. Exit code 1 when the broker does "
            "not answer, the topic does not exist (without --create) or a record is not "
            "delivered."
        ),
    )
    load_kafka.add_load_arguments(load)
    run_parser = commands.add_parser(
        "run",
        help="run a pipeline defined in a module (the way to run in production)",
        description=(
            "Import MODULE (from the current directory or sys.path) and take ATTRIBUTE: a "
            "node of a pipeline, or a function returning one (called with no arguments). "
            "Start every source of its graph and run until they end or SIGTERM/SIGINT; "
            "then stop the sources (in-flight work is finished), take a last checkpoint "
            "(--checkpoint) and exit 0. A pipeline error exits 1 with the error on stderr; "
            "a MODULE:ATTRIBUTE that names no pipeline exits 2."
        ),
    )
    run.add_run_arguments(run_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``millstream`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Usage errors return 2 (with argparse's message on stderr) instead of exiting.

    Examples
    --------
    >>> main(['wordcount', '--top', '0'])
    2
    """
    try:
        parser = build_parser()  # a bad MILLSTREAM_* value is a usage error here
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "run":
            return run.run_pipeline_command(args)
        if args.command == "load-kafka":
            return load_kafka.run_load(args)
        if kafka.wants_kafka(args):
            return kafka.run_wordcount(args)
        return wordcount.run(args)
    except BrokenPipeError:
        # The reader went away (e.g. `millstream wordcount | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

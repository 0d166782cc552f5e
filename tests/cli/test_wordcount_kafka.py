"""``millstream load-kafka`` and ``millstream wordcount --kafka`` against a real broker.

Counts are checked against an independent ``collections.Counter`` over the loaded text.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

from kafka._helpers import delete_topics, unique_topic_name
from millstream.cli import kafka as cli_kafka
from millstream.cli import main
from millstream.cli.main import build_parser

ROW = re.compile(r"^│\s*(\d+)\s*│\s*(\S+)\s*│\s*(\d+)\s*│\s*[\d.]+%\s*│$", re.MULTILINE)

TEXT = """\
The quick brown fox -- jumps over the lazy dog.
THE DOG sleeps; the fox doesn't sleep, 'tis said.

  Dog's day: dog, Dog, DOG!   fox_fox \u2019tis caf\u00e9
a a a b b b c c
"""

MORE = "the end of the fox\nzebra zebra\n"


def words(line: str) -> list[str]:
    """An oracle written apart from the CLI: words are runs of letters/digits joined by '."""
    return re.findall(r"[^\W_]+(?:'[^\W_]+)*", line.lower().replace("\u2019", "'"))


def counter(text: str) -> Counter[str]:
    return Counter(w for line in text.splitlines() for w in words(line))


def ranked(c: Counter[str], n: int) -> list[tuple[int, str, int]]:
    top = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [(i, w, n) for i, (w, n) in enumerate(top, 1)]


def rows(output: str) -> list[tuple[int, str, int]]:
    return [(int(r), w, int(c)) for r, w, c in ROW.findall(output)]


def stats(output: str) -> tuple[int, int, int]:
    m = re.search(r"([\d,]+) lines, ([\d,]+) words \(([\d,]+) distinct\)", output)
    assert m, output
    return tuple(int(g.replace(",", "")) for g in m.groups())  # type: ignore[return-value]


def opticks() -> str:
    return (resources.files("millstream") / "data" / "opticks.txt").read_text(encoding="utf-8")


@pytest.fixture
def new_topic(kafka_admin) -> Iterator[str]:
    """A topic name that does not exist yet (for --create), deleted after the test."""
    name = unique_topic_name("millstream-cli")
    yield name
    delete_topics(kafka_admin, [name])


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def load(bootstrap: str, topic: str, *extra: str) -> int:
    return main(["load-kafka", *extra, "--kafka", bootstrap, "--topic", topic])


def count(bootstrap: str, topic: str, *extra: str) -> int:
    return main(["wordcount", "--kafka", bootstrap, "--topic", topic, "--exit-at-end", *extra])


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-probe"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


# -- load then count -----------------------------------------------------------------------


def test_load_creates_topic_and_wordcount_matches_counter(
    kafka_bootstrap: str, new_topic: str, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load(kafka_bootstrap, new_topic, str(text_file), "--create", "--partitions", "3") == 0
    out, err = capsys.readouterr()
    assert err == ""
    n_lines = len(TEXT.splitlines())
    assert out == (
        f"created Kafka topic {new_topic!r} with 3 partition(s)\n"
        f"wrote {n_lines} records (the lines of {text_file}) to Kafka topic {new_topic!r} "
        f"at {kafka_bootstrap}\n"
    )
    assert end_offsets(kafka_bootstrap, new_topic, 3) == [2, 2, 1]  # the lines in turn

    assert count(kafka_bootstrap, new_topic, "--top", "6", "--group", new_topic) == 0
    out, err = capsys.readouterr()
    assert err == ""
    expected = counter(TEXT)
    assert rows(out) == ranked(expected, 6)
    assert rows(out)[:2] == [(1, "dog", 5), (2, "fox", 4)]  # by hand
    assert stats(out) == (n_lines, sum(expected.values()), len(expected))  # empty line included
    assert out.startswith(f"Top 6 words in Kafka topic {new_topic}\n")
    assert "\x1b" not in out


def test_group_resumes_and_from_beginning_reads_all(
    kafka_bootstrap: str, kafka_topic, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = kafka_topic(partitions=2)
    group = f"{topic}-group"
    assert load(kafka_bootstrap, topic, str(text_file)) == 0
    assert count(kafka_bootstrap, topic, "--group", group) == 0
    assert stats(capsys.readouterr().out)[0] == len(TEXT.splitlines())

    assert count(kafka_bootstrap, topic, "--group", group) == 0  # all committed: nothing new
    assert stats(capsys.readouterr().out) == (0, 0, 0)

    more = Path(text_file.parent / "more.txt")
    more.write_text(MORE, encoding="utf-8")
    assert load(kafka_bootstrap, topic, str(more)) == 0
    capsys.readouterr()
    assert count(kafka_bootstrap, topic, "--group", group, "--top", "3") == 0
    out = capsys.readouterr().out
    assert rows(out) == ranked(counter(MORE), 3)
    assert stats(out)[0] == 2

    # without a group: the whole topic, and nothing committed (the group is unchanged)
    for _ in range(2):
        assert count(kafka_bootstrap, topic, "--from-beginning", "--top", "50") == 0
        out = capsys.readouterr().out
        assert rows(out) == ranked(counter(TEXT + MORE), 50)
    assert count(kafka_bootstrap, topic, "--group", group) == 0
    assert stats(capsys.readouterr().out) == (0, 0, 0)


def test_console_scripts_load_and_count_the_default_text(kafka_bootstrap: str, kafka_topic) -> None:
    topic = kafka_topic(partitions=3)
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["COLUMNS"] = "100"
    base = [sys.executable, "-m", "millstream"]
    proc = subprocess.run(
        [*base, "load-kafka", "--kafka", kafka_bootstrap, "--topic", topic],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = opticks().splitlines()
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (
        f"wrote {len(lines)} records (the lines of Newton's Opticks) to Kafka topic "
        f"{topic!r} at {kafka_bootstrap}\n"
    )
    proc = subprocess.run(
        [*base, "wordcount", "--kafka", kafka_bootstrap, "--topic", topic, "--exit-at-end",
         "--group", topic],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (0, "")
    expected = counter(opticks())
    assert rows(proc.stdout) == ranked(expected, 10)
    assert stats(proc.stdout) == (len(lines), sum(expected.values()), len(expected))
    assert proc.stdout.count("Top 10 words") == 1  # piped: only the final table


def test_load_from_stdin_and_raw_count(
    kafka_bootstrap: str,
    kafka_topic,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = kafka_topic()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(TEXT.encode()), "ascii"))
    assert load(kafka_bootstrap, topic, "-") == 0
    assert "(the lines of <stdin>)" in capsys.readouterr().out
    assert count(kafka_bootstrap, topic, "--raw", "--top", "4", "--from-beginning") == 0
    raw = Counter(w for line in TEXT.splitlines() for w in line.split())
    assert rows(capsys.readouterr().out) == ranked(raw, 4)


def test_idle_exit_ends_after_the_quiet_time(
    kafka_bootstrap: str, kafka_topic, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = kafka_topic()
    started = time.monotonic()
    args = ["wordcount", "--kafka", kafka_bootstrap, "--topic", topic, "--idle-exit", "0.5"]
    assert main(args) == 0  # an empty topic: nothing ever comes
    assert 0.5 <= time.monotonic() - started < 5
    assert stats(capsys.readouterr().out) == (0, 0, 0)

    assert load(kafka_bootstrap, topic, str(text_file)) == 0
    capsys.readouterr()
    assert main([*args[:-1], "1.5", "--from-beginning"]) == 0
    assert rows(capsys.readouterr().out) == ranked(counter(TEXT), 10)


def test_live_table_on_a_terminal(
    kafka_bootstrap: str, kafka_topic, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    topic = kafka_topic()
    assert load(kafka_bootstrap, topic, str(text_file)) == 0
    buffer = TTY()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    argv = ["wordcount", "--kafka", kafka_bootstrap, "--topic", topic, "--from-beginning"]
    args = build_parser().parse_args([*argv, "--idle-exit", "0.6", "--top", "2"])
    assert cli_kafka.run_wordcount(args, console) == 0  # wordcount --kafka's own runner
    out = buffer.getvalue()
    heading = f"Top 2 words in Kafka topic {topic}"
    assert out.count(heading) >= 2  # live frames, then the final table
    assert rows(out[out.rindex(heading) :]) == ranked(counter(TEXT), 2)


def test_ctrl_c_prints_the_counts_so_far(
    kafka_bootstrap: str,
    kafka_topic,
    text_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = kafka_topic()
    assert load(kafka_bootstrap, topic, str(text_file)) == 0
    capsys.readouterr()
    end = {0: len(TEXT.splitlines())}

    def wait(self: cli_kafka._KafkaWordCount, ends: object) -> None:
        deadline = time.monotonic() + 10
        while not self.reader.reached(end) and time.monotonic() < deadline:
            time.sleep(0.02)
        raise KeyboardInterrupt  # Ctrl-C once the whole text has been read

    monkeypatch.setattr(cli_kafka._KafkaWordCount, "_wait", wait)
    argv = ["wordcount", "--kafka", kafka_bootstrap, "--topic", topic, "--group", topic]
    assert main(argv) == 130
    out, err = capsys.readouterr()
    assert rows(out) == ranked(counter(TEXT), 10)
    assert err == "millstream wordcount: interrupted (counts so far above)\n"
    # what was counted before Ctrl-C was committed: the group has nothing left to read
    monkeypatch.undo()
    assert count(kafka_bootstrap, topic, "--group", topic) == 0
    assert stats(capsys.readouterr().out) == (0, 0, 0)


# -- errors --------------------------------------------------------------------------------


def test_no_broker_is_one_line_exit_1(unused_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap = f"127.0.0.1:{unused_port}"
    no_broker = f"no Kafka broker answered at {bootstrap} within 0.5 s"
    assert main(["wordcount", "--kafka", bootstrap, "--topic", "t", "--timeout", "0.5"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"millstream wordcount: error: {no_broker}\n"
    assert main(["load-kafka", "--kafka", bootstrap, "--topic", "t", "--timeout", "0.5"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"millstream load-kafka: error: {no_broker}\n"


def test_verbose_shows_the_client_log(unused_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap = f"127.0.0.1:{unused_port}"
    argv = ["wordcount", "--kafka", bootstrap, "--topic", "t", "--timeout", "0.5", "--verbose"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KafkaConnectError" in err
    assert err.endswith(f"error: no Kafka broker answered at {bootstrap} within 0.5 s\n")


def test_unknown_topic_is_one_line_exit_1(
    kafka_bootstrap: str, new_topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert count(kafka_bootstrap, new_topic) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"millstream wordcount: error: Kafka topic {new_topic!r} does not exist at "
        f"{kafka_bootstrap} (create it with: millstream load-kafka --kafka {kafka_bootstrap} "
        f"--topic {new_topic} --create)\n"
    )
    assert load(kafka_bootstrap, new_topic) == 1  # no --create: not created behind our back
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"millstream load-kafka: error: Kafka topic {new_topic!r} does not exist at "
        f"{kafka_bootstrap} (add --create)\n"
    )
    assert count(kafka_bootstrap, new_topic) == 1


def test_missing_input_file(kafka_bootstrap: str, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.txt"
    assert load(kafka_bootstrap, "t", str(missing)) == 2
    assert capsys.readouterr() == ("", f"millstream load-kafka: error: no such file: {missing}\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--topic", "t"], "--topic needs --kafka BOOTSTRAP"),
        (["--kafka", "h:1"], "--kafka needs --topic TOPIC"),
        (["--exit-at-end"], "--exit-at-end needs --kafka BOOTSTRAP and --topic TOPIC"),
        (["--group", "g"], "--group needs --kafka BOOTSTRAP and --topic TOPIC"),
        (["x.txt", "--kafka", "h:1", "--topic", "t"], "give either a PATH or --kafka, not both"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys) -> None:
    assert main(["wordcount", *argv]) == 2
    assert capsys.readouterr() == ("", f"millstream wordcount: error: {message}\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["wordcount", "--kafka", "h:1", "--topic", "t", "--group", "g", "--from-beginning"],
        ["wordcount", "--kafka", "h:1", "--topic", "t", "--idle-exit", "0"],
        ["wordcount", "--kafka", "h:1", "--topic", "t", "--timeout", "soon"],
        ["load-kafka", "--topic", "t"],
        ["load-kafka", "--kafka", "h:1", "--topic", "t", "--partitions", "0"],
    ],
)
def test_argparse_errors_exit_2(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    assert "usage: millstream" in capsys.readouterr().err


def test_help_documents_the_kafka_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wordcount", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--kafka BOOTSTRAP", "--topic TOPIC", "--group GROUP", "--from-beginning",
                   "--exit-at-end", "--idle-exit SECONDS", "from_kafka_batched"):  # fmt: skip
        assert option in text
    assert main(["load-kafka", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--create", "--partitions N", "one record per line", "standard input"):
        assert option in text
    assert main(["--help"]) == 0
    assert "load-kafka" in capsys.readouterr().out


def test_the_command_line_does_not_import_confluent_kafka() -> None:
    code = (
        "import sys; from millstream.cli.main import build_parser; "
        "build_parser().parse_args(['wordcount', '--kafka', 'h:1', '--topic', 't']); "
        "print(sorted(n for n in ('confluent_kafka', 'dask', 'distributed') if n in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "[]\n"), proc.stderr

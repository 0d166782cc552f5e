"""Every option of every command also comes from a MILLSTREAM_* environment variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from millstream.cli.main import build_parser, main

COMMANDS = {
    "wordcount": [
        "top", "json", "checkpoint", "checkpoint_interval", "raw", "kafka", "topic",
        "timeout", "verbose", "group", "from_beginning", "exit_at_end", "idle_exit",
        "to_topic", "exactly_once",
    ],
    "load-kafka": ["kafka", "topic", "timeout", "verbose", "create", "partitions"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_names_the_variable_of_every_option(command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "millstream", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    ).stdout
    for dest in COMMANDS[command]:
        assert f"[env: MILLSTREAM_{dest.upper()}]" in out, dest


def test_variables_are_defaults_and_the_command_line_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MILLSTREAM_TOP", "3")
    monkeypatch.setenv("MILLSTREAM_JSON", "yes")
    monkeypatch.setenv("MILLSTREAM_CHECKPOINT_INTERVAL", "500ms")
    args = build_parser().parse_args(["wordcount", "-"])
    assert (args.top, args.json, args.checkpoint_interval) == (3, True, 0.5)
    args = build_parser().parse_args(["wordcount", "-", "--top", "7"])
    assert args.top == 7
    monkeypatch.setenv("MILLSTREAM_JSON", "off")
    assert build_parser().parse_args(["wordcount"]).json is False


def test_required_options_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["load-kafka"]) == 2  # --kafka and --topic are required
    monkeypatch.setenv("MILLSTREAM_KAFKA", "localhost:1")
    monkeypatch.setenv("MILLSTREAM_TOPIC", "t")
    args = build_parser().parse_args(["load-kafka", "-"])
    assert (args.kafka, args.topic) == ("localhost:1", "t")


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("MILLSTREAM_TOP", "zero", "MILLSTREAM_TOP='zero': expected a whole number >= 1"),
        ("MILLSTREAM_RAW", "maybe", "MILLSTREAM_RAW='maybe': expected one of 1/0, true/false"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str,
    message: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(name, value)
    assert main(["wordcount", "-"]) == 2
    assert message in capsys.readouterr().err


def test_the_word_count_shows_as_many_rows_as_the_variable_says() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "millstream", "wordcount", "-"],
        input="a b a c a b d\n",
        capture_output=True,
        text=True,
        check=True,
        env={"MILLSTREAM_TOP": "2", "PATH": "", "COLUMNS": "120"},
    ).stdout
    assert " a " in out and " b " in out and " c " not in out and " d " not in out

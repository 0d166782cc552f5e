"""The Kafka commands' errors by cause: the classifier and the retry, with real
``confluent_kafka.KafkaError`` / ``KafkaException`` objects, then through the command
against the session's broker, and the one-line error when confluent-kafka is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from millstream.cli import kafka as cli_kafka
from millstream.cli import main
from millstream.exceptions import KafkaConnectError, UnknownTopicError
from millstream.kafka.errors import (
    KafkaNotReady,
    KafkaProblem,
    classify_kafka_error,
    retry_retriable,
)

TEXT = "to be or not to be\nthat is the question\n"


def kafka_exception(code: int, *args: Any, **kwargs: Any) -> KafkaException:
    return KafkaException(KafkaError(code, *args, **kwargs))


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as e:
        return e


# -- the classifier --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (KafkaError._TRANSPORT, "unreachable"),
        (KafkaError._ALL_BROKERS_DOWN, "unreachable"),
        (KafkaError._TIMED_OUT, "unreachable"),
        (KafkaError.UNKNOWN_TOPIC_OR_PART, "unknown-topic"),
        (KafkaError._UNKNOWN_TOPIC, "unknown-topic"),
        (KafkaError.NOT_COORDINATOR, "retriable"),
        (KafkaError.COORDINATOR_LOAD_IN_PROGRESS, "retriable"),
        (KafkaError.COORDINATOR_NOT_AVAILABLE, "retriable"),
        (KafkaError.LEADER_NOT_AVAILABLE, "retriable"),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, "other"),
        (KafkaError.INVALID_REPLICATION_FACTOR, "other"),
    ],
)
def test_kafka_exceptions_are_classified_by_code(code: int, kind: str) -> None:
    error = KafkaError(code)
    problem = classify_kafka_error(KafkaException(error))
    assert problem == KafkaProblem(kind, error.name(), error.str())


def test_an_error_librdkafka_marks_retriable_is_retriable() -> None:
    code = KafkaError.INVALID_REPLICATION_FACTOR
    assert classify_kafka_error(kafka_exception(code)).kind == "other"
    assert classify_kafka_error(kafka_exception(code, "try again", retriable=True)) == (
        KafkaProblem("retriable", "INVALID_REPLICATION_FACTOR", "try again")
    )


def test_millstream_errors_are_classified_by_their_kafka_cause() -> None:
    no_answer = KafkaConnectError("no Kafka broker answered")
    assert classify_kafka_error(no_answer).kind == "unreachable"
    timed_out = raised_from(KafkaConnectError("x"), kafka_exception(KafkaError._TIMED_OUT))
    assert classify_kafka_error(timed_out).kind == "unreachable"
    # the broker answered, it just was not ready: not "no broker"
    not_ready = raised_from(KafkaConnectError("x"), kafka_exception(KafkaError.NOT_COORDINATOR))
    assert classify_kafka_error(not_ready).kind == "retriable"
    assert classify_kafka_error(UnknownTopicError("no topic t")).kind == "unknown-topic"
    assert classify_kafka_error(ValueError("a bug")) == KafkaProblem(
        "not-kafka", "ValueError", "a bug"
    )


# -- the retry -------------------------------------------------------------------------------


def failing(*errors: BaseException, result: str = "done") -> tuple[Callable[[float], str], list]:
    """A step that raises ``errors`` in turn, then returns ``result``; and its calls."""
    calls: list[float] = []
    pending = list(errors)

    def step(seconds_left: float) -> str:
        calls.append(seconds_left)
        if pending:
            raise pending.pop(0)
        return result

    return step, calls


def test_a_retriable_error_followed_by_success_is_retried() -> None:
    step, calls = failing(
        kafka_exception(KafkaError.NOT_COORDINATOR),
        kafka_exception(KafkaError.COORDINATOR_LOAD_IN_PROGRESS),
    )
    assert retry_retriable(step, timeout=5, pause=0.01) == "done"
    assert len(calls) == 3
    assert calls[0] <= 5 and calls[2] < calls[0]  # each try gets what is left of the bound


def test_a_non_retriable_error_is_raised_at_once() -> None:
    denied = kafka_exception(KafkaError.GROUP_AUTHORIZATION_FAILED)
    step, calls = failing(denied)
    with pytest.raises(KafkaException) as caught:
        retry_retriable(step, timeout=5, pause=0.01)
    assert caught.value is denied and len(calls) == 1
    step, calls = failing(kafka_exception(KafkaError._TRANSPORT))
    with pytest.raises(KafkaException):
        retry_retriable(step, timeout=5, pause=0.01)
    assert len(calls) == 1


def test_retriable_errors_until_the_time_bound_end_in_not_ready() -> None:
    step, calls = failing(*[kafka_exception(KafkaError.NOT_COORDINATOR)] * 1000)
    started = time.monotonic()
    with pytest.raises(KafkaNotReady) as caught:
        retry_retriable(step, timeout=0.3, pause=0.02)
    assert 0.25 <= time.monotonic() - started < 2
    assert len(calls) > 3
    assert caught.value.problem.name == "NOT_COORDINATOR"
    assert str(caught.value) == "not ready within 0.3 s: NOT_COORDINATOR (Broker: Not coordinator)"
    assert classify_kafka_error(caught.value).kind == "retriable"


# -- through the command, against the session's broker ---------------------------------------


@pytest.fixture
def loaded_topic(kafka_bootstrap: str, kafka_topic, tmp_path: Path, capsys) -> str:
    topic = kafka_topic()
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert main(["load-kafka", str(path), "--kafka", kafka_bootstrap, "--topic", topic]) == 0
    capsys.readouterr()
    return topic


def ends_failing_with(monkeypatch: pytest.MonkeyPatch, *errors: BaseException) -> list[int]:
    """Make the --exit-at-end probe raise ``errors`` in turn before it answers."""
    real = cli_kafka._ends_to_read
    pending = list(errors)
    calls: list[int] = []

    def probe(*args: Any) -> dict[int, int]:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return real(*args)

    monkeypatch.setattr(cli_kafka, "_ends_to_read", probe)
    return calls


def count(bootstrap: str, topic: str, *extra: str) -> int:
    argv = ["wordcount", "--kafka", bootstrap, "--topic", topic, "--exit-at-end", "--group"]
    return main([*argv, f"{topic}-group", "--top", "3", *extra])


def test_command_retries_not_coordinator_and_counts(
    kafka_bootstrap: str, loaded_topic: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    calls = ends_failing_with(
        monkeypatch,
        kafka_exception(KafkaError.NOT_COORDINATOR),
        kafka_exception(KafkaError.COORDINATOR_LOAD_IN_PROGRESS),
    )
    assert count(kafka_bootstrap, loaded_topic) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(calls) == 3
    assert "│ 1 │ be   │     2 │" in out and "│ 2 │ to   │     2 │" in out
    assert "2 lines, 10 words (8 distinct)" in out


def test_command_retries_a_failed_start_with_a_new_source(
    kafka_bootstrap: str, loaded_topic: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real_build = cli_kafka._KafkaWordCount._build
    builds: list[Any] = []

    def build(self: Any, connect_timeout: float) -> None:
        real_build(self, connect_timeout)
        builds.append(self.source)
        if len(builds) == 1:  # the first source fails to start, as on a fresh broker
            source = self.source

            def start() -> None:
                source.error = kafka_exception(KafkaError.COORDINATOR_NOT_AVAILABLE)
                raise source.error

            source.start = start

    monkeypatch.setattr(cli_kafka._KafkaWordCount, "_build", build)
    assert count(kafka_bootstrap, loaded_topic) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(builds) == 2
    assert "2 lines, 10 words (8 distinct)" in out


def test_command_shows_a_non_retriable_error_by_name(
    kafka_bootstrap: str, loaded_topic: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    calls = ends_failing_with(monkeypatch, kafka_exception(KafkaError.GROUP_AUTHORIZATION_FAILED))
    assert count(kafka_bootstrap, loaded_topic) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(calls) == 1
    assert err == (
        f"millstream wordcount: error: Kafka error at {kafka_bootstrap}: "
        "GROUP_AUTHORIZATION_FAILED (Broker: Group authorization failed)\n"
    )
    ends_failing_with(monkeypatch, kafka_exception(KafkaError.GROUP_AUTHORIZATION_FAILED))
    assert count(kafka_bootstrap, loaded_topic, "--verbose") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KafkaException" in err
    assert err.endswith("GROUP_AUTHORIZATION_FAILED (Broker: Group authorization failed)\n")


def test_command_gives_up_on_a_broker_never_ready(
    kafka_bootstrap: str, loaded_topic: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    ends_failing_with(monkeypatch, *[kafka_exception(KafkaError.NOT_COORDINATOR)] * 1000)
    started = time.monotonic()
    assert count(kafka_bootstrap, loaded_topic, "--timeout", "1") == 1
    assert time.monotonic() - started < 6
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"millstream wordcount: error: the Kafka broker at {kafka_bootstrap} was not ready "
        "within 1 s: NOT_COORDINATOR (Broker: Not coordinator)\n"
    )


# -- without confluent-kafka -----------------------------------------------------------------


@pytest.fixture
def without_confluent_kafka(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``import confluent_kafka`` fails, as after ``pip install .``."""
    shadow = tmp_path / "shadow" / "confluent_kafka"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError('No module named confluent_kafka (test shadow)', "
        "name='confluent_kafka')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(shadow.parent), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    return env


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["wordcount", "--kafka", "127.0.0.1:9", "--topic", "t", "--exit-at-end"],
            "millstream wordcount: error: --kafka needs confluent-kafka, which is not "
            "installed: pip install 'millstream[kafka]'\n",
        ),
        (
            ["load-kafka", "--kafka", "127.0.0.1:9", "--topic", "t", "--create"],
            "millstream load-kafka: error: load-kafka needs confluent-kafka, which is not "
            "installed: pip install 'millstream[kafka]'\n",
        ),
    ],
)
def test_missing_confluent_kafka_is_one_line_exit_1(
    without_confluent_kafka: dict[str, str], argv: list[str], message: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "millstream", *argv],
        capture_output=True, text=True, env=without_confluent_kafka, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", message)


def test_without_confluent_kafka_the_rest_still_works(
    without_confluent_kafka: dict[str, str],
) -> None:
    base = [sys.executable, "-m", "millstream"]
    env = without_confluent_kafka
    proc = subprocess.run(
        [*base, "wordcount", "-", "--top", "1"], input="b a b\n", capture_output=True,
        text=True, env=env, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "│ 1 │ b    │     2 │" in proc.stdout
    proc = subprocess.run(
        [*base, "wordcount", "--topic", "t"], capture_output=True, text=True, env=env,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (
        2,
        "millstream wordcount: error: --topic needs --kafka BOOTSTRAP\n",
    )

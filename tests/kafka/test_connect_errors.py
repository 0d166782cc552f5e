"""millstream.kafka.consumer.call_until_ready: retriable Kafka errors are waited out, the
others are reported by cause (real confluent_kafka error objects, no broker needed)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from millstream.exceptions import KafkaConnectError
from millstream.kafka.consumer import call_until_ready


def answers(*items):
    calls = []

    def call(seconds_left):
        calls.append(seconds_left)
        item = items[len(calls) - 1]
        if isinstance(item, BaseException):
            raise item
        return item

    return call, calls


def test_a_retriable_error_is_tried_again_until_the_broker_answers():
    call, calls = answers(
        KafkaException(KafkaError(KafkaError.NOT_COORDINATOR)),
        KafkaException(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)),
        ["offsets"],
    )
    assert call_until_ready("node", "h:1", "the offsets", call, timeout=5) == ["offsets"]
    assert len(calls) == 3 and all(0 < s <= 5 for s in calls)


def test_no_broker_is_reported_as_unreachable():
    call, _ = answers(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    with pytest.raises(KafkaConnectError, match=r"node: no Kafka broker answered at .*'h:1'"):
        call_until_ready("node", "h:1", "the offsets", call, timeout=5)


def test_another_error_is_shown_by_its_kafka_name_at_once():
    call, calls = answers(KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)))
    with pytest.raises(KafkaConnectError, match="refused the offsets: GROUP_AUTHORIZATION_FAILED"):
        call_until_ready("node", "h:1", "the offsets", call, timeout=5)
    assert len(calls) == 1


def test_a_broker_still_not_ready_at_the_deadline_is_named_with_the_last_error():
    error = KafkaException(KafkaError(KafkaError.NOT_COORDINATOR))
    call, calls = answers(*[error] * 1000)
    expected = r"not ready for the offsets within .*NOT_COORDINATOR"
    with pytest.raises(KafkaConnectError, match=expected):
        call_until_ready("node", "h:1", "the offsets", call, timeout=0.5)
    assert len(calls) >= 2

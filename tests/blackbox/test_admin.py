"""CreateTopics / DeleteTopics through confluent_kafka.admin.AdminClient and
kafka-python's KafkaAdminClient, with Kafka's error codes."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from bb_clients import (Rec, admin, ck_consume, ck_produce, create_topic, now_ms,
                        unique_topic, wait_topic)

TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
UNKNOWN_TOPIC_OR_PARTITION = 3


def _ck_create_error(bootstrap, topic, partitions, rf=1):
    a = admin(bootstrap)  # must outlive the futures
    fs = a.create_topics([NewTopic(topic, partitions, rf)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=20)
    return ei.value.args[0]


def _all_topics(bootstrap):
    # Listing all topics never auto-creates (asking for one topic by name can).
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def _wait_gone(bootstrap, topic, timeout=15):
    deadline = time.monotonic() + timeout
    while topic in _all_topics(bootstrap):
        assert time.monotonic() < deadline, "topic %s still listed after delete" % topic
        time.sleep(0.2)


# ------------------------------------------------------------------ confluent


def test_confluent_create_list_delete(broker):
    a = admin(broker.bootstrap)
    t = unique_topic("adm-ck")
    fs = a.create_topics([NewTopic(t, 3, 1)], request_timeout=15)
    assert fs[t].result(timeout=20) is None
    md = wait_topic(broker.bootstrap, t, 3)
    assert sorted(md.topics[t].partitions) == [0, 1, 2]
    assert t in _all_topics(broker.bootstrap)

    err = _ck_create_error(broker.bootstrap, t, 3)
    assert err.code() == TOPIC_ALREADY_EXISTS, err

    ck_produce(broker.bootstrap, t, [Rec(b"k", b"before delete", (), now_ms())])

    fs = a.delete_topics([t], request_timeout=15)
    assert fs[t].result(timeout=20) is None
    _wait_gone(broker.bootstrap, t)

    # Recreated under the same name it starts empty.
    create_topic(broker.bootstrap, t, 2)
    assert ck_consume(broker.bootstrap, t, partitions=range(2), expected=0) == []
    ck_produce(broker.bootstrap, t, [Rec(b"k", b"after", (), now_ms())])
    got = ck_consume(broker.bootstrap, t, partitions=range(2), expected=1)
    assert [(r.partition, r.offset, r.value) for r in got] == [(0, 0, b"after")]


def test_confluent_create_several_at_once(broker):
    names = [unique_topic("adm-multi") for _ in range(3)]
    a = admin(broker.bootstrap)  # must outlive the futures
    fs = a.create_topics([NewTopic(n, i + 1, 1) for i, n in enumerate(names)],
                         request_timeout=15)
    for n in names:
        fs[n].result(timeout=20)
    for i, n in enumerate(names):
        wait_topic(broker.bootstrap, n, i + 1)


def test_confluent_create_invalid_partitions(broker):
    t = unique_topic("adm-bad")
    err = _ck_create_error(broker.bootstrap, t, 0)
    assert err.code() == INVALID_PARTITIONS, err
    assert t not in _all_topics(broker.bootstrap)


def test_confluent_create_invalid_replication_factor(broker):
    t = unique_topic("adm-rf")
    err = _ck_create_error(broker.bootstrap, t, 1, rf=3)  # one broker only
    assert err.code() == INVALID_REPLICATION_FACTOR, err
    assert t not in _all_topics(broker.bootstrap)


def test_confluent_create_invalid_topic_name(broker):
    err = _ck_create_error(broker.bootstrap, "bad/name", 1)
    assert err.code() == KafkaError.TOPIC_EXCEPTION, err  # INVALID_TOPIC_EXCEPTION (17)


def test_confluent_delete_unknown_topic(broker):
    t = unique_topic("adm-nope")
    a = admin(broker.bootstrap)  # must outlive the futures
    fs = a.delete_topics([t], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[t].result(timeout=20)
    assert ei.value.args[0].code() == UNKNOWN_TOPIC_OR_PARTITION, ei.value


# ------------------------------------------------------------------ kafka-python


def _kp_admin(bootstrap):
    from kafka.admin import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)


def test_kafka_python_admin_create_list_delete(broker):
    from kafka.admin import NewTopic as KNewTopic
    from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
    a = _kp_admin(broker.bootstrap)
    try:
        t = unique_topic("adm-kp")
        resp = a.create_topics([KNewTopic(t, 4, 1)], timeout_ms=10000)
        assert [(e[0], e[1]) for e in resp.topic_errors] == [(t, 0)]
        wait_topic(broker.bootstrap, t, 4)
        assert t in a.list_topics()

        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([KNewTopic(t, 4, 1)], timeout_ms=10000)

        resp = a.delete_topics([t], timeout_ms=10000)
        assert [(e[0], e[1]) for e in resp.topic_error_codes] == [(t, 0)]
        _wait_gone(broker.bootstrap, t)

        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_topics([t], timeout_ms=10000)
    finally:
        a.close()


def test_kafka_python_admin_invalid_partitions(broker):
    from kafka.admin import NewTopic as KNewTopic
    from kafka.errors import InvalidPartitionsError, InvalidReplicationFactorError
    a = _kp_admin(broker.bootstrap)
    try:
        t = unique_topic("adm-kpbad")
        with pytest.raises(InvalidPartitionsError):
            a.create_topics([KNewTopic(t, 0, 1)], timeout_ms=10000)
        with pytest.raises(InvalidReplicationFactorError):
            a.create_topics([KNewTopic(t, 1, 2)], timeout_ms=10000)
        assert t not in a.list_topics()
    finally:
        a.close()

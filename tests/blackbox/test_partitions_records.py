"""CreatePartitions (then keyed records spread over the new count), DeleteRecords
(then consumption from the new low watermark), DescribeLogDirs and
DescribeCluster, through real clients and hand-built requests."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewPartitions

from bb_admin import (delete_records, describe_cluster, describe_log_dirs, kjs_admin, kjs_admin_ok, watermarks)
from bb_clients import (Rec, admin, ck_consume, ck_produce, create_topic, kjs_available, kp_consume, kp_produce,
                        unique_topic, wait_topic)


def test_create_partitions_then_produce_by_key(broker):
    from kafka.partitioner.default import murmur2
    topic = create_topic(broker.bootstrap, unique_topic("parts"), partitions=2)
    a = admin(broker.bootstrap)
    a.create_partitions([NewPartitions(topic, 5)])[topic].result(10)
    wait_topic(broker.bootstrap, topic, 5)
    # Never fewer, never the same.
    for n, words in ((3, "higher than the requested"), (5, "already has")):
        with pytest.raises(KafkaException) as e:
            a.create_partitions([NewPartitions(topic, n)])[topic].result(10)
        assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS and words in e.value.args[0].str()
    # kafka-python's default partitioner (murmur2) spreads keys over the 5 partitions.
    recs = [Rec(b"key-%d" % i, b"v%d" % i) for i in range(100)]
    placed = kp_produce(broker.bootstrap, topic, recs, default_partition=None)
    for r, (p, _off) in zip(recs, placed):
        assert p == (murmur2(r.key) & 0x7fffffff) % 5
    assert len({p for p, _ in placed}) == 5
    got = ck_consume(broker.bootstrap, topic, partitions=range(5), expected=100)
    assert sorted(r.value for r in got) == sorted(r.value for r in recs)


def test_create_partitions_kafka_python_and_kafkajs(broker):
    from kafka.admin import KafkaAdminClient, NewPartitions as KNewPartitions
    topic = create_topic(broker.bootstrap, unique_topic("parts-kp"), partitions=1)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        resp = a.create_partitions({topic: KNewPartitions(3)})
        assert [e[1] for e in resp.topic_errors] == [0]
    finally:
        a.close()
    wait_topic(broker.bootstrap, topic, 3)
    if not kjs_available():
        return
    kjs_admin_ok(broker.bootstrap, [{"op": "createPartitions", "topicPartitions": [{"topic": topic, "count": 4}]}])
    wait_topic(broker.bootstrap, topic, 4)
    bad = kjs_admin(broker.bootstrap, [{"op": "createPartitions", "topicPartitions": [{"topic": topic, "count": 2}]}])
    assert "error" in bad[0]


def test_delete_records_then_consume_from_low_watermark(broker):
    topic = create_topic(broker.bootstrap, unique_topic("delrec"), partitions=2)
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), None, i % 2) for i in range(40)]
    ck_produce(broker.bootstrap, topic, recs, default_partition=None)
    res = delete_records(broker.bootstrap, topic, {0: 7, 1: -1})
    assert res == {0: (7, 0), 1: (20, 0)}
    assert watermarks(broker.bootstrap, topic, 0) == (7, 20)
    got = ck_consume(broker.bootstrap, topic, partitions=(0,), expected=13)
    assert [r.offset for r in got] == list(range(7, 20))
    assert [r.value for r in got] == [b"v%d" % (2 * o) for o in range(7, 20)]
    # Below the low watermark: no change; above the high watermark: OFFSET_OUT_OF_RANGE.
    assert delete_records(broker.bootstrap, topic, {0: 3}) == {0: (7, 0)}
    assert delete_records(broker.bootstrap, topic, {0: 99})[0][1] == 1
    got_kp = kp_consume(broker.bootstrap, topic, partitions=(0,), expected=13)
    assert got_kp[0].offset == 7
    if kjs_available():
        kjs_admin_ok(broker.bootstrap, [{"op": "deleteTopicRecords", "topic": topic,
                                         "partitions": [{"partition": 0, "offset": "12"}]}])
        assert watermarks(broker.bootstrap, topic, 0) == (12, 20)
    # Compacted-only topics refuse DeleteRecords, as Kafka does.
    compacted = create_topic(broker.bootstrap, unique_topic("delrec-c"), config={"cleanup.policy": "compact"})
    assert delete_records(broker.bootstrap, compacted, {0: 0})[0][1] == 44


def test_low_watermark_survives_restart(broker_factory):
    b = broker_factory()
    topic = create_topic(b.bootstrap, unique_topic("delrec-rs"))
    ck_produce(b.bootstrap, topic, [Rec(b"k", b"v%d" % i) for i in range(10)])
    assert delete_records(b.bootstrap, topic, {0: 6}, version=1) == {0: (6, 0)}
    b.restart()
    assert watermarks(b.bootstrap, topic) == (6, 10)


def test_describe_log_dirs_and_cluster(broker):
    topic = create_topic(broker.bootstrap, unique_topic("logdirs"), partitions=2)
    ck_produce(broker.bootstrap, topic, [Rec(b"k", b"x" * 1000, (), None, 1)], default_partition=None)
    sizes = describe_log_dirs(broker.bootstrap)
    assert sizes[(topic, 0)] == 0
    assert sizes[(topic, 1)] > 1000
    for v in (0, 1):
        err, cluster_id, controller, brokers = describe_cluster(broker.bootstrap, version=v)
        assert err == 0 and cluster_id and controller == 1
        assert [(bid, port) for bid, _host, port in brokers] == [(1, broker.port)]

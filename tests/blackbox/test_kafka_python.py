"""kafka-python 2.0.2: produce, then assign + seek_to_beginning (no group_id),
everything byte-exact. kafka-python probes the broker at bootstrap with
ApiVersions v0 and Metadata v0 pipelined on one connection."""

from kafka import KafkaProducer, TopicPartition

from bb_clients import (Rec, assert_same, create_topic, kp_consume, kp_consumer,
                        kp_produce, now_ms, sample_records, unique_topic)


def test_kafka_python_infers_modern_broker(broker):
    """Without api_version, kafka-python sends ApiVersions v0 + Metadata v0
    back to back and infers a broker version from the answer. Anything below
    0.11 would mean magic-1 messages and no headers."""
    c = kp_consumer(broker.bootstrap)
    try:
        inferred = c.config["api_version"]
    finally:
        c.close()
    assert inferred >= (0, 11), "kafka-python inferred broker version %r" % (inferred,)

    p = KafkaProducer(bootstrap_servers=broker.bootstrap, max_block_ms=15000)
    try:
        assert p.config["api_version"] >= (0, 11)
    finally:
        p.close(timeout=5)


def test_kafka_python_roundtrip_byte_exact(broker):
    t = create_topic(broker.bootstrap, unique_topic("kp-rt"), 1)
    recs = sample_records(n_extra=50)
    offsets = kp_produce(broker.bootstrap, t, recs)
    assert offsets == [(0, i) for i in range(len(recs))], offsets
    got = kp_consume(broker.bootstrap, t, expected=len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))


def test_kafka_python_gzip_batches(broker):
    t = create_topic(broker.bootstrap, unique_topic("kp-gz"), 1)
    recs = [Rec(b"k%d" % i, b"gzip me " * 40 + b"%d" % i, (("i", b"%d" % i),), now_ms())
            for i in range(300)]
    kp_produce(broker.bootstrap, t, recs, compression_type="gzip", linger_ms=50)
    got = kp_consume(broker.bootstrap, t, expected=len(recs))
    assert_same(got, recs)


def test_kafka_python_seek_and_positions(broker):
    t = create_topic(broker.bootstrap, unique_topic("kp-seek"), 2)
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), now_ms(), partition=i % 2) for i in range(20)]
    kp_produce(broker.bootstrap, t, recs)
    c = kp_consumer(broker.bootstrap)
    try:
        tp0, tp1 = TopicPartition(t, 0), TopicPartition(t, 1)
        c.assign([tp0, tp1])
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 10, tp1: 10}
        c.seek(tp1, 7)
        c.seek_to_end(tp0)
        got = []
        import time
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=200).items():
                got.extend(msgs)
        assert [(m.partition, m.offset, m.value) for m in got] == [
            (1, 7, b"v15"), (1, 8, b"v17"), (1, 9, b"v19")]
        assert c.position(tp0) == 10
    finally:
        c.close()


def test_kafka_python_partitions_for_topic(broker):
    t = create_topic(broker.bootstrap, unique_topic("kp-parts"), 5)
    c = kp_consumer(broker.bootstrap)
    try:
        assert c.partitions_for_topic(t) == {0, 1, 2, 3, 4}
        assert t in c.topics()
    finally:
        c.close()

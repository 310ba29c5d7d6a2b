"""confluent-kafka (librdkafka 2.0.2): produce, then assign-based consume (no
group), everything byte-exact."""

import confluent_kafka
from confluent_kafka import TopicPartition

from bb_clients import (Rec, assert_same, ck_consume, ck_consumer, ck_produce,
                        create_topic, now_ms, sample_records, unique_topic)


def test_confluent_roundtrip_byte_exact(broker):
    t = create_topic(broker.bootstrap, unique_topic("ck-rt"), 1)
    recs = sample_records(n_extra=50)
    offsets = ck_produce(broker.bootstrap, t, recs)
    assert offsets == [(0, i) for i in range(len(recs))], offsets

    got = ck_consume(broker.bootstrap, t, expected=len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))
    assert all(r.partition == 0 for r in got)


def test_confluent_null_header_value_and_duplicate_header_keys(broker):
    t = create_topic(broker.bootstrap, unique_topic("ck-hdr"), 1)
    ts = now_ms()
    recs = [
        Rec(b"k", b"v", (("nullval", None), ("dup", b"1"), ("dup", b"2"), ("", b"empty-name")), ts),
        Rec(b"k2", b"v2", tuple(("h%03d" % i, b"%d" % i) for i in range(100)), ts + 1),
    ]
    ck_produce(broker.bootstrap, t, recs)
    got = ck_consume(broker.bootstrap, t, expected=len(recs))
    assert_same(got, recs)


def test_confluent_compressed_batches(broker):
    """librdkafka compresses when the broker's Produce range includes v0
    (see compatibility.md); whatever it sends must read back the same."""
    t = create_topic(broker.bootstrap, unique_topic("ck-comp"), 1)
    recs = []
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        batch = [Rec(b"%s-%d" % (codec.encode(), i), (b"compress me %d " % i) * 50,
                     (("codec", codec.encode()),), now_ms()) for i in range(200)]
        ck_produce(broker.bootstrap, t, batch, **{"compression.type": codec,
                                                 "linger.ms": 50})
        recs += batch
    got = ck_consume(broker.bootstrap, t, expected=len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))


def test_confluent_consume_from_explicit_offset(broker):
    t = create_topic(broker.bootstrap, unique_topic("ck-off"), 1)
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), now_ms()) for i in range(10)]
    ck_produce(broker.bootstrap, t, recs)
    got = ck_consume(broker.bootstrap, t, expected=3, start=7)
    assert [r.offset for r in got] == [7, 8, 9]
    assert_same(got, recs[7:])

    # OFFSET_END: nothing until something new arrives.
    got = ck_consume(broker.bootstrap, t, expected=0, start=confluent_kafka.OFFSET_END)
    assert got == []


def test_confluent_multiple_partitions(broker):
    t = create_topic(broker.bootstrap, unique_topic("ck-mp"), 4)
    recs = [Rec(b"k%d" % i, b"v%d" % i, (("p", b"%d" % (i % 4)),), now_ms(), partition=i % 4)
            for i in range(40)]
    results = ck_produce(broker.bootstrap, t, recs)
    assert [p for p, _ in results] == [i % 4 for i in range(40)]
    for p in range(4):
        assert [o for (pp, o) in results if pp == p] == list(range(10))
    got = ck_consume(broker.bootstrap, t, partitions=range(4), expected=40)
    for p in range(4):
        part = [r for r in got if r.partition == p]
        assert [r.offset for r in part] == list(range(10))
        assert_same(part, [r for r in recs if r.partition == p])


def test_confluent_consume_from_offset_beyond_end_resets(broker):
    """An out-of-range fetch offset gets OFFSET_OUT_OF_RANGE from the broker;
    librdkafka then applies auto.offset.reset=earliest."""
    t = create_topic(broker.bootstrap, unique_topic("ck-oor"), 1)
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), now_ms()) for i in range(3)]
    ck_produce(broker.bootstrap, t, recs)
    got = ck_consume(broker.bootstrap, t, expected=3, start=1000)
    assert [r.offset for r in got] == [0, 1, 2]


def test_confluent_watermarks(broker):
    t = create_topic(broker.bootstrap, unique_topic("ck-wm"), 2)
    ck_produce(broker.bootstrap, t, [Rec(b"k", b"v", (), now_ms(), partition=1)] * 5)
    c = ck_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False) == (0, 0)
        assert c.get_watermark_offsets(TopicPartition(t, 1), timeout=10, cached=False) == (0, 5)
    finally:
        c.close()

"""ListOffsets: earliest, latest and by timestamp, through confluent-kafka and
kafka-python (kafkajs and kcat have their own checks in their files)."""

import confluent_kafka
from confluent_kafka import TopicPartition

from bb_clients import Rec, ck_consumer, ck_produce, create_topic, kp_consumer, now_ms, unique_topic


def _setup(broker, parts=1):
    t = create_topic(broker.bootstrap, unique_topic("lo"), parts)
    base = now_ms() - 3_600_000
    # Partition 0: ten records one second apart, produced one batch each.
    for i in range(10):
        ck_produce(broker.bootstrap, t, [Rec(b"k%d" % i, b"v%d" % i, (), base + i * 1000)])
    return t, base


def test_list_offsets_confluent(broker):
    t, base = _setup(broker, parts=2)
    c = ck_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False) == (0, 10)
        assert c.get_watermark_offsets(TopicPartition(t, 1), timeout=10, cached=False) == (0, 0)

        def lookup(ts, p=0):
            res = c.offsets_for_times([TopicPartition(t, p, ts)], timeout=10)
            assert res[0].error is None, res[0].error
            return res[0].offset

        assert lookup(base - 10_000) == 0
        assert lookup(base) == 0
        assert lookup(base + 1) == 1
        assert lookup(base + 3000) == 3
        assert lookup(base + 3500) == 4
        assert lookup(base + 9000) == 9
        assert lookup(base + 9001) == confluent_kafka.OFFSET_END  # -1: no such record
        assert lookup(base, p=1) == confluent_kafka.OFFSET_END   # empty partition
    finally:
        c.close()


def test_list_offsets_kafka_python(broker):
    from kafka import TopicPartition as KTP
    t, base = _setup(broker, parts=2)
    c = kp_consumer(broker.bootstrap)
    try:
        tp0, tp1 = KTP(t, 0), KTP(t, 1)
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 10, tp1: 0}
        res = c.offsets_for_times({tp0: base + 3500, tp1: base})
        assert res[tp1] is None
        assert (res[tp0].offset, res[tp0].timestamp) == (4, base + 4000)
        res = c.offsets_for_times({tp0: base - 1})
        assert (res[tp0].offset, res[tp0].timestamp) == (0, base)
        assert c.offsets_for_times({tp0: base + 20_000})[tp0] is None

        # Latest moves as records arrive.
        ck_produce(broker.bootstrap, t, [Rec(b"k", b"more", (), base + 50_000)] * 3)
        assert c.end_offsets([tp0]) == {tp0: 13}
        res = c.offsets_for_times({tp0: base + 20_000})
        assert (res[tp0].offset, res[tp0].timestamp) == (10, base + 50_000)
    finally:
        c.close()


def test_list_offsets_by_timestamp_out_of_order(broker):
    """Timestamps need not increase with offsets: the answer is the first
    offset whose timestamp is >= the target."""
    from kafka import TopicPartition as KTP
    t = create_topic(broker.bootstrap, unique_topic("lo-ooo"), 1)
    base = now_ms() - 3_600_000
    for ts in (base + 5000, base + 1000, base + 9000, base + 2000):
        ck_produce(broker.bootstrap, t, [Rec(b"k", b"v", (), ts)])
    c = kp_consumer(broker.bootstrap)
    try:
        tp = KTP(t, 0)
        assert c.offsets_for_times({tp: base + 500})[tp].offset == 0
        assert c.offsets_for_times({tp: base + 5000})[tp].offset == 0
        r = c.offsets_for_times({tp: base + 6000})[tp]
        assert (r.offset, r.timestamp) == (2, base + 9000)
        assert c.offsets_for_times({tp: base + 9001})[tp] is None
    finally:
        c.close()


def test_list_offsets_within_one_batch(broker):
    """Lookup inside a single multi-record batch must resolve to the record,
    not the batch's base offset."""
    t = create_topic(broker.bootstrap, unique_topic("lo-batch"), 1)
    base = now_ms() - 3_600_000
    ck_produce(broker.bootstrap, t, [Rec(b"k", b"v%d" % i, (), base + i * 10) for i in range(50)],
               **{"linger.ms": 200})
    c = ck_consumer(broker.bootstrap)
    try:
        res = c.offsets_for_times([TopicPartition(t, 0, base + 255)], timeout=10)
        assert res[0].offset == 26
    finally:
        c.close()

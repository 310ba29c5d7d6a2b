"""Retention (cleanup.policy=delete): whole segments older than retention.ms or
beyond retention.bytes go, checked every log.retention.check.interval.ms; the
log start offset moves forward, survives a restart, and consumers below it get
OFFSET_OUT_OF_RANGE and reset."""

import time

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, TopicPartition

from bb_admin import describe_log_dirs, wait_for, watermarks
from bb_clients import (Rec, ck_consume, ck_consumer, ck_produce, create_topic, kp_consume, now_ms,
                        unique_topic)

FAST = {"log.retention.check.interval.ms": "300"}


def produce_n(bootstrap, topic, n, ts, size=200, tag="v"):
    recs = [Rec(b"k%d" % i, (tag + "%05d" % i).encode() + b"x" * size, (), ts + i) for i in range(n)]
    ck_produce(bootstrap, topic, recs, **{"linger.ms": 0, "batch.num.messages": 1})
    return recs


@pytest.mark.deadline(90)
def test_retention_by_time_moves_the_log_start(broker_factory):
    b = broker_factory(FAST)
    topic = unique_topic("ret-time")
    create_topic(b.bootstrap, topic, config={"segment.bytes": "2000", "retention.ms": "3000"})
    old = now_ms() - 3_600_000  # an hour old: expired as soon as its segment is closed
    produce_n(b.bootstrap, topic, 40, old)
    # Fresh records keep the newest segments alive.
    fresh = produce_n(b.bootstrap, topic, 10, now_ms(), tag="fresh")
    low, high = wait_for("retention to delete the old segments",
                         lambda: (lambda lh: lh if lh[0] >= 40 - 10 else None)(watermarks(b.bootstrap, topic)),
                         timeout=30)
    assert high == 50
    # Every old record older than retention is gone, the fresh ones remain.
    got = ck_consume(b.bootstrap, topic, expected=high - low)
    assert got[0].offset == low
    assert [r.value for r in got[-10:]] == [r.value for r in fresh]

    # The log start offset is persisted: a restart keeps it.
    b.restart()
    low2, high2 = watermarks(b.bootstrap, topic)
    assert (low2, high2) == (low, high) or low2 >= low


@pytest.mark.deadline(90)
def test_consumer_below_log_start_gets_out_of_range_and_resets(broker_factory):
    b = broker_factory(FAST)
    topic = unique_topic("ret-oor")
    # The old records are 10 minutes past retention.ms; the 3 new ones stay for
    # its 60 s (with 2 s they too expired on a loaded machine before the reads).
    create_topic(b.bootstrap, topic, config={"segment.bytes": "1500", "retention.ms": "60000"})
    produce_n(b.bootstrap, topic, 30, now_ms() - 600_000)
    produce_n(b.bootstrap, topic, 3, now_ms(), tag="new")
    low, high = wait_for("log start to move", lambda: (lambda lh: lh if lh[0] > 0 else None)(
        watermarks(b.bootstrap, topic)))
    # Asking for offset 0 explicitly: OFFSET_OUT_OF_RANGE, then auto.offset.reset=earliest.
    got = ck_consume(b.bootstrap, topic, expected=high - low, start=0, **{"auto.offset.reset": "earliest"})
    assert got[0].offset == low
    # With auto.offset.reset=error the consumer sees the error itself.
    c = ck_consumer(b.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        err = None
        while time.monotonic() < deadline and err is None:
            m = c.poll(0.2)
            if m is not None and m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()
    # kafka-python resets too (earliest).
    got_kp = kp_consume(b.bootstrap, topic, expected=high - low)
    assert got_kp[0].offset == low


@pytest.mark.deadline(90)
def test_retention_by_size(broker_factory):
    b = broker_factory(FAST)
    topic = unique_topic("ret-size")
    create_topic(b.bootstrap, topic, config={"segment.bytes": "4000", "retention.bytes": "10000"})
    produce_n(b.bootstrap, topic, 200, now_ms(), size=150)

    def small_enough():
        sizes = describe_log_dirs(b.bootstrap)
        size = sizes.get((topic, 0))
        return size if size is not None and size <= 10000 + 4000 else None

    size = wait_for("retention.bytes to apply", small_enough)
    low, high = watermarks(b.bootstrap, topic)
    assert high == 200 and low > 0
    got = ck_consume(b.bootstrap, topic, expected=high - low)
    assert len(got) == high - low and got[-1].value.startswith(b"v00199")
    assert size > 0


@pytest.mark.deadline(90)
def test_broker_default_retention_and_topic_override(broker_factory):
    b = broker_factory(dict(FAST, **{"log.retention.ms": "2000", "log.segment.bytes": "1500"}))
    t_default = unique_topic("ret-bdef")
    t_keep = unique_topic("ret-keep")
    create_topic(b.bootstrap, t_default)
    create_topic(b.bootstrap, t_keep, config={"retention.ms": "-1"})
    old = now_ms() - 3_600_000
    for t in (t_default, t_keep):
        produce_n(b.bootstrap, t, 30, old)
        produce_n(b.bootstrap, t, 2, now_ms(), tag="new")
    wait_for("broker default retention", lambda: watermarks(b.bootstrap, t_default)[0] > 0)
    time.sleep(1.0)
    assert watermarks(b.bootstrap, t_keep) == (0, 32)

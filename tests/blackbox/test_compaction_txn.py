"""Compaction of transactional data: the cleaner removes the records of
aborted transactions (flushed to the log before the abort, so they are
there to remove), an aborted write never wins over a committed one, and
after cleaning read_committed and read_uncommitted consumers alike see the
latest committed value of every key."""

import pytest
from confluent_kafka import Producer

from bb_admin import wait_for
from bb_clients import Rec, ck_consume, ck_produce, create_topic, now_ms, unique_topic

FAST = {"log.cleaner.backoff.ms": "100", "log.retention.check.interval.ms": "300"}
COMPACT = {"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01",
           "delete.retention.ms": "1000"}


def read_map(bootstrap, topic, isolation):
    m = {}
    for r in ck_consume(bootstrap, topic, expected=0, **{"isolation.level": isolation}):
        m[r.key] = r.value
    return m


@pytest.mark.deadline(150)
def test_compaction_removes_aborted_records_and_keeps_committed_latest(broker_factory):
    b = broker_factory(FAST)
    topic = unique_topic("compact-txn")
    create_topic(b.bootstrap, topic, config=COMPACT)
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "ctx-" + topic, "linger.ms": 2})
    p.init_transactions(30)
    committed = {}
    for r in range(6):
        p.begin_transaction()
        for k in range(20):
            key, value = b"key-%02d" % k, b"c%d-%d-" % (r, k) + b"x" * 40
            p.produce(topic, key=key, value=value, partition=0)
            committed[key] = value
        p.commit_transaction(30)
        # An aborted transaction over half the keys, after the commit: in
        # the log it is the latest write of those keys.
        p.begin_transaction()
        for k in range(0, 20, 2):
            p.produce(topic, key=b"key-%02d" % k, value=b"aborted-%d" % r + b"y" * 40, partition=0)
        p.produce(topic, key=b"only-aborted", value=b"never", partition=0)
        p.flush(30)
        p.abort_transaction(30)
    # Plain updates of other keys roll the segments so the transactions are cleanable.
    ts = now_ms()
    tail = [Rec(b"tail-%d" % (i % 3), b"t%d-" % i + b"z" * 40, (), ts) for i in range(90)]
    ck_produce(b.bootstrap, topic, tail, **{"linger.ms": 2})
    for rec in tail:
        committed[rec.key] = rec.value

    # (The cleaner may already be at work: a read_uncommitted consumer sees
    # the aborted writes only until it has cleaned them.)
    assert read_map(b.bootstrap, topic, "read_committed") == committed

    def cleaned():
        return read_map(b.bootstrap, topic, "read_uncommitted") == committed

    wait_for("the cleaner to remove the aborted records", cleaned, timeout=60)
    assert read_map(b.bootstrap, topic, "read_committed") == committed

    # The producer still works after its batches were cleaned, and so does a restart.
    p.begin_transaction()
    p.produce(topic, key=b"key-00", value=b"after-clean", partition=0)
    p.commit_transaction(30)
    committed[b"key-00"] = b"after-clean"
    b.restart()
    assert read_map(b.bootstrap, topic, "read_committed") == committed
    assert read_map(b.bootstrap, topic, "read_uncommitted") == committed

"""Compaction (cleanup.policy=compact): the cleaner keeps the latest record of
every key at its original offset, removes tombstones after delete.retention.ms,
rejects keyless records, and survives kill -9 in the middle of a clean."""

import os
import time

import pytest
from confluent_kafka import KafkaError

from bb_admin import wait_for, watermarks
from bb_clients import Rec, ck_consume, ck_produce, create_topic, kcat_consume, kp_consume, now_ms, unique_topic

FAST = {"log.cleaner.backoff.ms": "100", "log.retention.check.interval.ms": "300"}
COMPACT = {"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"}


def produce_updates(bootstrap, topic, keys, rounds, tombstone_every=0, tag="r", size=40):
    """rounds of updates of `keys` keys; returns the expected final map (None = deleted)."""
    recs = []
    expected = {}
    ts = now_ms()
    for r in range(rounds):
        for k in range(keys):
            key = b"key-%04d" % k
            value = (b"%s%d-%d-" % (tag.encode(), r, k)) + b"x" * size
            if tombstone_every and r == rounds - 1 and k % tombstone_every == 0:
                value = None
            recs.append(Rec(key, value, (), ts))
            expected[key] = value
    ck_produce(bootstrap, topic, recs, **{"linger.ms": 2})
    return expected


def read_map(bootstrap, topic):
    low, high = watermarks(bootstrap, topic)
    got = ck_consume(bootstrap, topic, expected=0)
    m = {}
    for r in got:
        m[r.key] = r.value
    return m, got, low, high


def compacted(bootstrap, topic, expected, max_records):
    m, got, _, _ = read_map(bootstrap, topic)
    if m != expected:
        return None
    return got if len(got) <= max_records else None


@pytest.mark.deadline(120)
def test_compaction_keeps_latest_value_per_key(broker_factory):
    b = broker_factory(FAST)
    topic = unique_topic("compact")
    create_topic(b.bootstrap, topic, config=dict(COMPACT, **{"delete.retention.ms": "2000"}))
    expected = produce_updates(b.bootstrap, topic, keys=50, rounds=10, tombstone_every=5)
    # Roll the active segment so the last round becomes cleanable.
    expected.update(produce_updates(b.bootstrap, topic, keys=3, rounds=30, tag="tail"))
    total = 50 * 10 + 3 * 30
    got = wait_for("the cleaner to compact", lambda: compacted(b.bootstrap, topic, expected, total // 3), timeout=60)
    # Offsets are preserved: every kept record is at the offset it was written at (gaps appear).
    offsets = [r.offset for r in got]
    assert offsets == sorted(offsets) and offsets[-1] < total
    assert watermarks(b.bootstrap, topic)[1] == total
    # Tombstones are still there for delete.retention.ms ...
    assert any(r.value is None for r in got)
    # ... then removed by a later clean.
    time.sleep(2.5)
    expected.update(produce_updates(b.bootstrap, topic, keys=3, rounds=40, tag="later"))
    live = {k: v for k, v in expected.items() if v is not None}

    def tombstones_gone():
        m, recs, _, _ = read_map(b.bootstrap, topic)
        return recs if m == live else None

    wait_for("tombstones to be removed", tombstones_gone, timeout=60)
    # Other clients read the same map.
    kp = {r.key: r.value for r in kp_consume(b.bootstrap, topic)}
    assert kp == live
    kc = {k: v for k, v in ((r.key, r.value) for r in kcat_consume(b.bootstrap, topic, partition=0))}
    assert {k: v for k, v in kc.items()} == live
    # And after a restart.
    b.restart()
    assert read_map(b.bootstrap, topic)[0] == live


def test_keyless_records_are_rejected_on_compacted_topics(broker_factory):
    b = broker_factory(FAST)
    topic = unique_topic("compact-nokey")
    create_topic(b.bootstrap, topic, config={"cleanup.policy": "compact"})
    with pytest.raises(AssertionError) as e:
        ck_produce(b.bootstrap, topic, [Rec(None, b"no key")], **{"message.send.max.retries": 0})
    assert "INVALID_RECORD" in str(e.value) or "87" in str(e.value)
    ck_produce(b.bootstrap, topic, [Rec(b"k", b"with key")])
    assert watermarks(b.bootstrap, topic) == (0, 1)


def _partition_dir(b, topic):
    return os.path.join(b.data_dir, topic + "-0")


def _mid_clean(path):
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(n.endswith((".cleaned", ".swap", ".deleted")) or n == "cleaner-swap" for n in names)


@pytest.mark.slow
@pytest.mark.deadline(180)
def test_kill9_during_compaction_loses_nothing(broker_factory):
    b = broker_factory(dict(FAST, **{"log.cleaner.backoff.ms": "20"}))
    topic = unique_topic("compact-kill")
    create_topic(b.bootstrap, topic, config={"cleanup.policy": "compact", "segment.bytes": "65536",
                                              "min.cleanable.dirty.ratio": "0.01"})
    path = _partition_dir(b, topic)
    expected = {}
    hits = 0
    for round_no in range(4):
        expected.update(produce_updates(b.bootstrap, topic, keys=1000, rounds=4, tombstone_every=7,
                                        tag="k%d-" % round_no, size=200))
        expected.update(produce_updates(b.bootstrap, topic, keys=2, rounds=400, tag="roll%d-" % round_no))
        # Kill -9 as soon as a clean is in flight (its files are on disk).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _mid_clean(path):
            time.sleep(0.0005)
        hits += _mid_clean(path)
        b.kill9()
        b.start()
        m, _, _, _ = read_map(b.bootstrap, topic)
        assert m == expected, "round %d: %d keys differ" % (
            round_no, sum(1 for k in set(m) | set(expected) if m.get(k, b"?") != expected.get(k, b"?")))
        assert not _mid_clean(path)
    assert hits >= 1, "no kill landed during a clean"
    # Eventually compacted, with nothing lost.
    wait_for("compaction after the crashes",
             lambda: compacted(b.bootstrap, topic, expected, len(expected) + 900), timeout=60)

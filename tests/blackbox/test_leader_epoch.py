"""Leader epochs in the log (KIP-101, KIP-320): every batch a leader appends
carries its leader epoch, the partition keeps a leader-epoch-checkpoint, and
OffsetForLeaderEpoch answers where an epoch ends, with Kafka's fencing
errors. Clients that get leader epochs from Metadata (librdkafka, the Java
client) send it after a leader change to detect truncation."""

import os

from bb_clients import Rec, ck_consume, ck_produce, create_topic, now_ms, unique_topic
from bb_wire import (API_FETCH, API_LIST_OFFSETS, Conn, fetch_v4_body, i8, i32, i64, parse_fetch_v4,
                     parse_record_batches, string)

API_OFFSET_FOR_LEADER_EPOCH = 23
UNKNOWN_TOPIC_OR_PARTITION = 3
UNKNOWN_LEADER_EPOCH = 75
FENCED_LEADER_EPOCH = 74


def offset_for_leader_epoch(bootstrap, topic, queries, version=3):
    """queries: [(partition, current_leader_epoch, leader_epoch)] ->
    {partition: (error, leader_epoch, end_offset)} (v2/v3, not flexible)."""
    body = (i32(-1) if version >= 3 else b"") + i32(1) + string(topic) + i32(len(queries))
    for p, current, epoch in queries:
        body += i32(p) + i32(current) + i32(epoch)
    with Conn(bootstrap) as c:
        r = c.call(API_OFFSET_FOR_LEADER_EPOCH, version, body)
        r.i32()  # throttle
        out = {}
        for _name, parts in r.array(lambda t: (t.string(), t.array(lambda p: (p.i16(), p.i32(), p.i32(), p.i64())))):
            for err, part, epoch, end in parts:
                out[part] = (err, epoch, end)
        return out


def fetched_batches_epochs(bootstrap, topic):
    with Conn(bootstrap) as c:
        r = parse_fetch_v4(c.call(API_FETCH, 4, fetch_v4_body(topic, 0, 0, 100)))
        return [rec["leader_epoch"] for rec in parse_record_batches(r[topic][0]["records"])]


def test_batches_carry_the_leader_epoch_and_offset_for_leader_epoch_answers(broker_factory):
    b = broker_factory()
    t = unique_topic("epochs")
    create_topic(b.bootstrap, t, 1)
    ck_produce(b.bootstrap, t, [Rec(b"k%d" % i, b"v%d" % i, (), now_ms()) for i in range(5)])
    epochs = set(fetched_batches_epochs(b.bootstrap, t))
    assert len(epochs) == 1 and min(epochs) >= 0, "batches must carry the leader epoch: %r" % epochs
    (e,) = epochs

    # The leader's own epoch ends at the log end; a later one is unknown.
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, -1, e)]) == {0: (0, e, 5)}
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, e, e)])[0] == (0, e, 5)
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, -1, e + 1)])[0] == (0, -1, -1)
    # Fencing by the current leader epoch the client believes in.
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, e + 3, e)])[0][0] == UNKNOWN_LEADER_EPOCH
    if e > 0:
        assert offset_for_leader_epoch(b.bootstrap, t, [(0, e - 1, e)])[0][0] == FENCED_LEADER_EPOCH
    assert offset_for_leader_epoch(b.bootstrap, t, [(7, -1, e)])[7][0] == UNKNOWN_TOPIC_OR_PARTITION
    assert offset_for_leader_epoch(b.bootstrap, unique_topic("none"), [(0, -1, 0)])[0][0] == \
        UNKNOWN_TOPIC_OR_PARTITION
    # v2 (no replica id) answers the same.
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, -1, e)], version=2)[0] == (0, e, 5)

    # The cache is on disk in Kafka's format and survives a restart and a crash.
    path = os.path.join(b.data_dir, "%s-0" % t, "leader-epoch-checkpoint")
    with open(path) as f:
        assert f.read() == "0\n1\n%d 0\n" % e
    b.restart()
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, -1, e)])[0] == (0, e, 5)
    b.kill9()
    b.start()
    ck_produce(b.bootstrap, t, [Rec(b"k", b"after", (), now_ms())])
    # A restarted broker re-registers, and its partitions may get a new leader
    # epoch: then epoch e ends where the new one starts.
    after = fetched_batches_epochs(b.bootstrap, t)
    e2 = after[-1]
    assert after[:5] == [e] * 5 and e2 >= e
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, -1, e2)])[0] == (0, e2, 6)
    assert offset_for_leader_epoch(b.bootstrap, t, [(0, -1, e)])[0] == (0, e, 5 if e2 > e else 6)
    assert len(ck_consume(b.bootstrap, t, expected=6)) == 6
    # ListOffsets v4+ names the epoch that wrote the offset (the latest for the log end).
    assert list_offsets_v4(b.bootstrap, t, -1, timestamp=-1) == (0, 6, e2)
    assert list_offsets_v4(b.bootstrap, t, -1, timestamp=-2) == (0, 0, e)


def fetch_v9_error(bootstrap, topic, current_leader_epoch):
    """Fetch v9 of partition 0 from offset 0 with a current leader epoch: the partition's error code."""
    part = i32(0) + i32(current_leader_epoch) + i64(0) + i64(-1) + i32(1 << 20)
    body = (i32(-1) + i32(0) + i32(1) + i32(1 << 20) + i8(0) + i32(0) + i32(-1)
            + i32(1) + string(topic) + i32(1) + part + i32(0))
    with Conn(bootstrap) as c:
        r = c.call(API_FETCH, 9, body)
        r.i32()  # throttle
        assert r.i16() == 0
        r.i32()  # session
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1
        assert r.i32() == 0
        return r.i16()


def list_offsets_v4(bootstrap, topic, current_leader_epoch, timestamp=-1):
    """ListOffsets v4 of partition 0 -> (error, offset, leader_epoch)."""
    body = i32(-1) + i8(0) + i32(1) + string(topic) + i32(1) + i32(0) + i32(current_leader_epoch) + i64(timestamp)
    with Conn(bootstrap) as c:
        r = c.call(API_LIST_OFFSETS, 4, body)
        r.i32()
        (_, parts), = r.array(lambda t: (t.string(), t.array(lambda p: (p.i32(), p.i16(), p.i64(), p.i64(), p.i32()))))
        (_, err, _ts, offset, epoch), = parts
        return err, offset, epoch


def test_fetch_and_list_offsets_are_fenced_by_the_current_leader_epoch(broker):
    t = unique_topic("fence")
    create_topic(broker.bootstrap, t, 1)
    ck_produce(broker.bootstrap, t, [Rec(b"k", b"v", (), now_ms())])
    (e,) = set(fetched_batches_epochs(broker.bootstrap, t))
    assert fetch_v9_error(broker.bootstrap, t, -1) == 0
    assert fetch_v9_error(broker.bootstrap, t, e) == 0
    assert fetch_v9_error(broker.bootstrap, t, e + 1) == UNKNOWN_LEADER_EPOCH
    assert list_offsets_v4(broker.bootstrap, t, e) == (0, 1, e)
    assert list_offsets_v4(broker.bootstrap, t, -1)[:2] == (0, 1)
    assert list_offsets_v4(broker.bootstrap, t, e + 2)[0] == UNKNOWN_LEADER_EPOCH
    if e > 0:
        assert fetch_v9_error(broker.bootstrap, t, e - 1) == FENCED_LEADER_EPOCH
        assert list_offsets_v4(broker.bootstrap, t, e - 1)[0] == FENCED_LEADER_EPOCH
    # Real clients, which send the epoch Metadata gave them, are unaffected.
    assert len(ck_consume(broker.bootstrap, t, expected=1)) == 1

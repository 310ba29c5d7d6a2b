"""Leader epochs in the log (KIP-101, KIP-320): every batch a leader appends
carries its leader epoch, the partition keeps a leader-epoch-checkpoint, and
OffsetForLeaderEpoch answers where an epoch ends, with Kafka's fencing
errors. Clients that get leader epochs from Metadata (librdkafka, the Java
client) send it after a leader change to detect truncation."""

import os

from bb_clients import Rec, ck_consume, ck_produce, create_topic, now_ms, unique_topic
from bb_wire import API_FETCH, Conn, fetch_v4_body, i32, parse_fetch_v4, parse_record_batches, string

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

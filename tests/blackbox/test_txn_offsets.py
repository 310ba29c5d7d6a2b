"""Transactional offset commits (TxnOffsetCommit v3) against a real broker,
on the raw wire.

What is checked now: a TxnOffsetCommit is accepted and written to
__consumer_offsets but stays pending: OffsetFetch returns the last committed
offset, and UNSTABLE_OFFSET_COMMIT with require_stable (v7+); a restart
(which reloads __consumer_offsets) keeps it pending. A COMMIT or ABORT marker
is then written into the group's __consumer_offsets partition with
WriteTxnMarkers, and after a restart the load applies the committed offsets
and drops the aborted ones.

Not yet checked (the transaction coordinator is being written): the full test
will take the producer id from InitProducerId with a transactional id, add
the group with AddOffsetsToTxn, commit it with EndTxn (the coordinator then
writes the markers itself), and see the offsets become visible to OffsetFetch
right after EndTxn (here: right after the marker); likewise an aborted transaction's
offsets never becoming visible, a fenced producer epoch being refused
(INVALID_PRODUCER_EPOCH), and a real transactional client (confluent-kafka's
send_offsets_to_transaction) consuming-transforming-producing exactly once.
"""

import time

from bb_clients import create_topic, unique_topic
from bb_wire import Conn, compact_string, compact_topic_partition_errors, i8, i16, i32, i64, string, uvarint, \
    write_txn_markers_v1

OVERRIDES = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "3",
}
OFFSETS_PARTITIONS = 3

API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_TXN_OFFSET_COMMIT = 28

COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
UNSTABLE_OFFSET_COMMIT = 88
RETRIABLE = {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR}


def java_hash(s):
    h = 0
    for ch in s:  # ASCII group ids only
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group):
    h = java_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % OFFSETS_PARTITIONS


def find_coordinator(conn, group):
    r = conn.call(API_FIND_COORDINATOR, 0, string(group))
    return r.i16()


def txn_offset_commit_v3(conn, txn_id, group, pid, epoch, offsets, generation=-1, member="", instance=None):
    """offsets: {topic: {partition: offset}} -> {topic: {partition: error}}."""
    def partition(p, o):
        return i32(p) + i64(o) + i32(-1) + compact_string("m") + uvarint(0)

    def topic(name, parts):
        return (compact_string(name) + uvarint(len(parts) + 1)
                + b"".join(partition(p, o) for p, o in parts.items()) + uvarint(0))

    body = (compact_string(txn_id) + compact_string(group) + i64(pid) + i16(epoch) + i32(generation)
            + compact_string(member) + compact_string(instance)
            + uvarint(len(offsets) + 1) + b"".join(topic(n, ps) for n, ps in offsets.items()) + uvarint(0))
    r = conn.call(API_TXN_OFFSET_COMMIT, 3, body, header_version=2, flexible_response_header=True)
    r.i32()  # throttle
    out = dict(r.compact_array(compact_topic_partition_errors))
    r.tagged_fields()
    assert r.remaining() == 0
    return out


def offset_fetch_v7(conn, group, topic, partitions, require_stable):
    """-> (group error, {partition: (offset, error)})."""
    body = (compact_string(group) + uvarint(2) + compact_string(topic) + uvarint(len(partitions) + 1)
            + b"".join(i32(p) for p in partitions) + uvarint(0) + i8(1 if require_stable else 0) + uvarint(0))
    r = conn.call(API_OFFSET_FETCH, 7, body, header_version=2, flexible_response_header=True)
    r.i32()  # throttle

    def part(rr):
        p, off, _epoch, _md, err = rr.i32(), rr.i64(), rr.i32(), rr.compact_string(), rr.i16()
        rr.tagged_fields()
        return p, (off, err)

    def topic_result(rr):
        name = rr.compact_string()
        parts = dict(rr.compact_array(part))
        rr.tagged_fields()
        return name, parts

    topics = dict(r.compact_array(topic_result))
    err = r.i16()
    r.tagged_fields()
    return err, topics.get(topic, {})


def retry(fn, ok, what, timeout=30):
    """Calls fn() until ok(result), on a fresh connection each time."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if ok(got):
            return got
        assert time.monotonic() < deadline, "%s: still %r" % (what, got)
        time.sleep(0.2)


def test_txn_offset_commit_stays_pending_until_its_marker_and_across_restarts(broker_factory):
    b = broker_factory(overrides=OVERRIDES)
    t = create_topic(b.bootstrap, unique_topic("txnoff"), 2)
    group = unique_topic("txg")
    pid, epoch = 770001, 0

    def conn_call(fn):
        with Conn(b.bootstrap) as c:
            return fn(c)

    retry(lambda: conn_call(lambda c: find_coordinator(c, group)), lambda e: e == 0, "FindCoordinator")
    got = retry(lambda: conn_call(lambda c: txn_offset_commit_v3(c, "tx-1", group, pid, epoch, {t: {0: 42, 1: 7}})),
                lambda r: not any(e in RETRIABLE for e in r[t].values()), "TxnOffsetCommit")
    assert got == {t: {0: 0, 1: 0}}, got
    # Unknown partitions are refused per partition, the rest accepted.
    with Conn(b.bootstrap) as c:
        got = txn_offset_commit_v3(c, "tx-1", group, pid, epoch, {t: {1: 8, 9: 1}})
    assert got == {t: {1: 0, 9: 3}}, got

    def fetch(require_stable):
        return retry(lambda: conn_call(lambda c: offset_fetch_v7(c, group, t, [0, 1, 2], require_stable)),
                     lambda r: r[0] not in RETRIABLE, "OffsetFetch")

    def assert_pending():
        assert fetch(False) == (0, {0: (-1, 0), 1: (-1, 0), 2: (-1, 0)})
        assert fetch(True) == (0, {0: (-1, UNSTABLE_OFFSET_COMMIT), 1: (-1, UNSTABLE_OFFSET_COMMIT),
                                   2: (-1, 0)})

    assert_pending()
    b.restart()
    assert_pending()

    # The transaction's COMMIT marker in the group's __consumer_offsets
    # partition applies the offsets at once (WriteTxnMarkers tells the group
    # coordinator), and the load after a restart applies it again.
    p = offsets_partition(group)
    with Conn(b.bootstrap) as c:
        got = write_txn_markers_v1(c, [(pid, epoch, True, 0, {"__consumer_offsets": [p]})])
    assert got == [(pid, {"__consumer_offsets": {p: 0}})], got
    assert fetch(True) == (0, {0: (42, 0), 1: (8, 0), 2: (-1, 0)})
    b.restart()
    assert fetch(True) == (0, {0: (42, 0), 1: (8, 0), 2: (-1, 0)})

    # A second transaction of the same producer, aborted: its offsets go.
    with Conn(b.bootstrap) as c:
        got = txn_offset_commit_v3(c, "tx-1", group, pid, epoch, {t: {0: 99}})
        assert got == {t: {0: 0}}, got
        assert offset_fetch_v7(c, group, t, [0], True) == (0, {0: (-1, UNSTABLE_OFFSET_COMMIT)})
        got = write_txn_markers_v1(c, [(pid, epoch, False, 0, {"__consumer_offsets": [p]})])
        assert got == [(pid, {"__consumer_offsets": {p: 0}})], got
    assert fetch(True) == (0, {0: (42, 0), 1: (8, 0), 2: (-1, 0)})
    b.restart()
    assert fetch(True) == (0, {0: (42, 0), 1: (8, 0), 2: (-1, 0)})

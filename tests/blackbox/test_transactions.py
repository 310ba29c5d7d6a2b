"""Transactions, the partition side, against a real broker: WriteTxnMarkers
writes COMMIT/ABORT control batches that occupy offsets and that consumers
never see, refuses markers from fenced producer or coordinator epochs, and
Fetch answers read_committed with the last stable offset."""

from bb_clients import ck_consume, create_topic, now_ms, unique_topic
from bb_wire import Conn, fetch_v4_body, parse_fetch_v4, parse_record_batches, produce_v3, record_batch, \
    write_txn_markers_v1

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PRODUCER_EPOCH = 47
TRANSACTION_COORDINATOR_FENCED = 52


def idempotent(pid, epoch, seq, n=3):
    ts = now_ms()
    return record_batch([(None, b"v%d" % (seq + i), [], ts + i) for i in range(n)], ts,
                        producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def fetch(conn, topic, offset, isolation_level):
    r = conn.call(1, 4, fetch_v4_body(topic, 0, offset, 100, isolation_level=isolation_level))
    return parse_fetch_v4(r)[topic][0]


def test_markers_occupy_offsets_consumers_skip_them_and_fenced_ones_are_refused(broker):
    t = create_topic(broker.bootstrap, unique_topic("markers"), 1)
    with Conn(broker.bootstrap) as c:
        assert produce_v3(c, t, 0, idempotent(5000, 3, 0))["base_offset"] == 0
        got = write_txn_markers_v1(c, [(5000, 3, True, 1, {t: [0]}), (5001, 0, False, 1, {t: [0, 9]})])
        assert got == [(5000, {t: {0: 0}}), (5001, {t: {0: 0, 9: UNKNOWN_TOPIC_OR_PARTITION}})], got
        # An older producer epoch, then an older coordinator epoch.
        got = write_txn_markers_v1(c, [(5000, 2, True, 1, {t: [0]}), (5000, 3, False, 0, {t: [0]})])
        assert got == [(5000, {t: {0: INVALID_PRODUCER_EPOCH}}), (5000, {t: {0: TRANSACTION_COORDINATOR_FENCED}})]
        assert produce_v3(c, t, 0, idempotent(5000, 3, 3))["base_offset"] == 5
        part = fetch(c, t, 0, 0)
        batches = parse_record_batches(part["records"])
        assert [(b["offset"], b["control"]) for b in batches] == [
            (0, False), (1, False), (2, False), (3, True), (4, True), (5, False), (6, False), (7, False)]
        # Nothing is open: the last stable offset is the high watermark, nothing aborted.
        part = fetch(c, t, 0, 1)
        assert (part["high_watermark"], part["last_stable_offset"], part["aborted"]) == (8, 8, []), part
    got = ck_consume(broker.bootstrap, t, expected=6)
    assert [(r.offset, r.value) for r in got] == [(i, b"v%d" % i) for i in range(3)] + \
        [(5 + i, b"v%d" % (3 + i)) for i in range(3)]

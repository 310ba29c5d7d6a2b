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


def test_idle_transactional_ids_expire(broker_factory):
    """transactional.id.expiration.ms: an id with no transaction open is
    forgotten after that long (a tombstone in __transaction_state), so its
    next InitProducerId gets a new producer id, also after a restart."""
    import time
    from bb_wire import init_producer_id
    b = broker_factory({"transactional.id.expiration.ms": 1500,
                        "transaction.remove.expired.transaction.cleanup.interval.ms": 200})

    def init(c, txn_id):
        deadline = time.monotonic() + 30
        while True:
            err, pid, epoch = init_producer_id(c, 1, transactional_id=txn_id, transaction_timeout_ms=60000)
            if err not in (14, 15, 16, 51):
                assert err == 0
                return pid, epoch
            assert time.monotonic() < deadline, "InitProducerId: still error %d" % err
            time.sleep(0.1)

    with Conn(b.bootstrap) as c:
        first = init(c, "expiring")
        assert init(c, "expiring") == (first[0], first[1] + 1)  # kept while in use
        time.sleep(3)
        second = init(c, "expiring")
        assert second[0] != first[0] and second[1] == 0, (first, second)
    assert "expired 1 idle transactional ids" in b.log_text()
    # The tombstone is in the log: after a restart the id is still the new one
    # (the old record does not come back), until it expires again.
    b.restart({"transactional.id.expiration.ms": 600000})
    with Conn(b.bootstrap) as c:
        assert init(c, "expiring") == (second[0], 1)

"""Idempotent producers against real gregor processes: a retried batch is
written once and answered with its original offset, sequence gaps and fenced
epochs get Kafka's errors, and the producer state survives restarts, crashes
and a leader change (it is rebuilt from the replicated log).

The batches here are hand-built (bb_wire), so each retry is exactly the bytes
a client would resend after a lost response; the real clients' idempotence is
exercised in test_idempotent_clients.py.
"""

import time

from bb_admin import wait_for
from bb_broker import SANITIZED
from bb_clients import ck_consume, create_topic, now_ms, unique_topic
from bb_wire import Conn, compact_string, i32, produce_v3, record_batch, uvarint

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
TRANSACTIONAL = 0x10
SLOW = 3 if SANITIZED else 1


def batch(pid, epoch, seq, n=3, tag="r", attributes=0):
    ts = now_ms()
    return record_batch([(b"k%d" % i, ("%s-%d-%d" % (tag, seq, i)).encode(), [], ts + i) for i in range(n)], ts,
                        producer_id=pid, producer_epoch=epoch, base_sequence=seq, attributes=attributes)


def plain_batch(value):
    ts = now_ms()
    return record_batch([(None, value, [], ts)], ts)


def describe_producers(conn, topic, partitions):
    """DescribeProducers v0 (flexible): {partition: (error, [(id, epoch, last_seq, last_ts, txn_start)])}."""
    body = (uvarint(2) + compact_string(topic) + uvarint(len(partitions) + 1)
            + b"".join(i32(p) for p in partitions) + uvarint(0) + uvarint(0))
    r = conn.call(61, 0, body, header_version=2, flexible_response_header=True)
    r.i32()  # throttle

    def producer(rr):
        p = (rr.i64(), rr.i32(), rr.i32(), rr.i64(), rr.i32(), rr.i64())
        rr.tagged_fields()
        return p

    def partition(rr):
        index, err, _msg = rr.i32(), rr.i16(), rr.compact_string()
        ps = rr.compact_array(producer)
        rr.tagged_fields()
        return index, (err, [(pid, ep, seq, ts, txn) for pid, ep, seq, ts, _ce, txn in ps])

    def topic_(rr):
        name, parts = rr.compact_string(), rr.compact_array(partition)
        rr.tagged_fields()
        return name, dict(parts)

    topics = dict(r.compact_array(topic_))
    r.tagged_fields()
    return topics[topic]


def values(bootstrap, topic, expected):
    return [r.value.decode() for r in ck_consume(bootstrap, topic, expected=expected)]


def test_a_retried_batch_is_written_once_and_answered_with_its_offset(broker):
    t = create_topic(broker.bootstrap, unique_topic("idem"), 1)
    first = batch(1000, 0, 0)
    with Conn(broker.bootstrap) as c:
        r = produce_v3(c, t, 0, first)
        assert (r["error_code"], r["base_offset"]) == (0, 0), r
        r = produce_v3(c, t, 0, plain_batch(b"plain"))
        assert (r["error_code"], r["base_offset"]) == (0, 3), r
        # The response was "lost": the client sends the same bytes again.
        for _ in range(2):
            r = produce_v3(c, t, 0, first)
            assert (r["error_code"], r["base_offset"]) == (0, 0), r
        # With acks=1 too.
        r = produce_v3(c, t, 0, first, acks=1)
        assert (r["error_code"], r["base_offset"]) == (0, 0), r
        second = batch(1000, 0, 3)
        assert produce_v3(c, t, 0, second)["base_offset"] == 4
        assert produce_v3(c, t, 0, first)["base_offset"] == 0  # still among the last five
        assert produce_v3(c, t, 0, second)["base_offset"] == 4
    assert values(broker.bootstrap, t, 7) == ["r-0-0", "r-0-1", "r-0-2", "plain", "r-3-0", "r-3-1", "r-3-2"]


def test_gaps_old_epochs_and_unverified_transactions_are_refused(broker):
    t = create_topic(broker.bootstrap, unique_topic("idem-err"), 1)
    with Conn(broker.bootstrap) as c:
        assert produce_v3(c, t, 0, batch(2000, 1, 0))["error_code"] == 0
        # A gap: sequences 3 and 4 never arrived.
        r = produce_v3(c, t, 0, batch(2000, 1, 5))
        assert r["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER and r["base_offset"] == -1, r
        # The next epoch starts again at 0; anything else is out of order.
        assert produce_v3(c, t, 0, batch(2000, 2, 7))["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce_v3(c, t, 0, batch(2000, 2, 0, tag="e2"))["error_code"] == 0
        # The old epoch is fenced, even for what would be its next batch.
        assert produce_v3(c, t, 0, batch(2000, 1, 3))["error_code"] == INVALID_PRODUCER_EPOCH
        # A transactional batch no coordinator has verified (KIP-890).
        r = produce_v3(c, t, 0, batch(2001, 0, 0, attributes=TRANSACTIONAL))
        assert r["error_code"] == INVALID_TXN_STATE, r
        # Other producers are not affected.
        assert produce_v3(c, t, 0, batch(2002, 0, 17, n=1, tag="other"))["error_code"] == 0
    assert values(broker.bootstrap, t, 7) == ["r-0-0", "r-0-1", "r-0-2", "e2-0-0", "e2-0-1", "e2-0-2", "other-17-0"]
    # kafka-transactions.sh describe-producers sees both, with their last sequences.
    with Conn(broker.bootstrap) as c:
        got = describe_producers(c, t, [0, 7])
    assert got[7] == (3, []), got  # UNKNOWN_TOPIC_OR_PARTITION
    err, producers = got[0]
    assert err == 0
    assert sorted((pid, ep, seq, txn) for pid, ep, seq, _, txn in producers) == [(2000, 2, 2, -1), (2002, 0, 17, -1)]
    assert all(ts > 0 for _, _, _, ts, _ in producers)


def test_the_state_survives_a_clean_restart_and_a_kill9(broker_factory):
    b = broker_factory(overrides={"log.segment.bytes": "1024"})
    t = create_topic(b.bootstrap, unique_topic("idem-restart"), 1)
    sent = []
    with Conn(b.bootstrap) as c:
        for i in range(20):  # several segments, each roll with its snapshot
            sent.append(batch(3000, 0, i * 3))
            assert produce_v3(c, t, 0, sent[-1])["base_offset"] == i * 3
    b.restart()
    with Conn(b.bootstrap) as c:
        # The snapshot written at shutdown keeps each producer's last batch.
        assert produce_v3(c, t, 0, sent[-1])["base_offset"] == 57
        sent.append(batch(3000, 0, 60))
        assert produce_v3(c, t, 0, sent[-1])["base_offset"] == 60
        sent.append(batch(3000, 0, 63))
        assert produce_v3(c, t, 0, sent[-1])["base_offset"] == 63
    b.kill9()
    b.start()
    with Conn(b.bootstrap) as c:
        # Recovery replays the batches after the last snapshot.
        assert produce_v3(c, t, 0, sent[-2])["base_offset"] == 60
        assert produce_v3(c, t, 0, sent[-1])["base_offset"] == 63
        assert produce_v3(c, t, 0, batch(3000, 0, 70))["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce_v3(c, t, 0, batch(3000, 0, 66))["base_offset"] == 66
    assert len(ck_consume(b.bootstrap, t, expected=69)) == 69
    assert any(n.endswith(".snapshot") for n in _files(b.data_dir, t))


def _files(data_dir, topic):
    import os
    out = []
    for root, _, names in os.walk(data_dir):
        if os.path.basename(root) == topic + "-0":
            out += names
    return out


def test_a_new_leader_recognises_a_retry_of_what_the_old_one_acknowledged(cluster_factory):
    from test_replication import FAST_LAG, create_topic as create_replicated, full_isr, wait_state
    c = cluster_factory(3, overrides=FAST_LAG)
    c.wait_brokers({1, 2, 3})
    t = unique_topic("idem-failover")
    create_replicated(c.bootstrap(), t, rf=3, configs={"min.insync.replicas": "2"})
    (leader, _, _), = wait_state(c.bootstrap(), t, full_isr, "full ISR").values()
    first, second = batch(4000, 0, 0), batch(4000, 0, 3)
    with Conn(c.nodes[leader].bootstrap) as conn:
        assert produce_v3(conn, t, 0, first)["base_offset"] == 0
        assert produce_v3(conn, t, 0, second)["base_offset"] == 3
    c.nodes[leader].kill9()
    parts = wait_state(c.bootstrap(), t, lambda ps: ps[0][0] not in (-1, leader), "a new leader")
    new_leader = parts[0][0]

    # The producer's retry of its last batch (say its response was lost with
    # the old leader) reaches the new one, which has the state from the log.
    def answered():
        with Conn(c.nodes[new_leader].bootstrap) as conn:
            r = produce_v3(conn, t, 0, second)
            return r if r["error_code"] == 0 else None
    r = wait_for("the new leader %d accepts produce" % new_leader, answered, 20 * SLOW)
    assert r["base_offset"] == 3, r
    with Conn(c.nodes[new_leader].bootstrap) as conn:
        assert produce_v3(conn, t, 0, batch(4000, 0, 6))["base_offset"] == 6
    got = [r.value.decode() for r in ck_consume(c.bootstrap(), t, expected=9)]
    assert got == ["r-%d-%d" % (s, i) for s in (0, 3, 6) for i in range(3)]

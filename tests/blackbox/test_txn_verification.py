"""KIP-890 part 1 against real brokers: a partition leader writes a
transactional batch that would open its producer's transaction only after the
transaction coordinator confirms the partition is in that producer's ongoing
transaction (AddPartitionsToTxn v4, verify_only). So a late write after the
transaction ended, a write to a partition never added, or one from a fenced
epoch is refused instead of leaving a "hanging" transaction that holds the
last stable offset back for ever (the anomaly Jepsen found in Kafka and
Bufstream). On a cluster the leader asks a coordinator on another broker."""

import time

import confluent_kafka as ck

from bb_broker import SANITIZED
from bb_clients import create_topic, unique_topic
from bb_wire import (Conn, array, i8, i16, i32, i64, init_producer_id, produce_v3, stable_offsets as offsets, string,
                     txn_batch, wait_stable as wait_stable_within)

SLOW = 3 if SANITIZED else 1
NONE = 0
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
RETRIABLE = (14, 15, 16, 51)  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS
NOT_ENOUGH_REPLICAS = 19  # what a leader answers while the coordinator is busy or moving (retriable)
API_ADD_PARTITIONS_TO_TXN = 24
API_END_TXN = 26


def retry(call, what, timeout=30 * SLOW):
    """call() -> (error, ...); retried while the coordinator is not ready."""
    deadline = time.monotonic() + timeout
    while True:
        out = call()
        if out[0] not in RETRIABLE:
            return out
        assert time.monotonic() < deadline, "%s: still error %d" % (what, out[0])
        time.sleep(0.1)


def init(c, txn_id):
    err, pid, epoch = retry(lambda: init_producer_id(c, 1, transactional_id=txn_id, transaction_timeout_ms=60000),
                            "InitProducerId " + txn_id)
    assert err == NONE
    return pid, epoch


def add_partitions(c, txn_id, pid, epoch, topic, partitions):
    """AddPartitionsToTxn v1: {partition: error}."""
    def call():
        body = string(txn_id) + i64(pid) + i16(epoch) + array([string(topic) + array([i32(p) for p in partitions])])
        r = c.call(API_ADD_PARTITIONS_TO_TXN, 1, body)
        r.i32()
        res = dict(r.array(lambda rr: (rr.string(), dict(rr.array(lambda x: (x.i32(), x.i16()))))))[topic]
        return (max(res.values()), res)
    return retry(call, "AddPartitionsToTxn")[1]


def end_txn(c, txn_id, pid, epoch, commit):
    def call():
        r = c.call(API_END_TXN, 1, string(txn_id) + i64(pid) + i16(epoch) + i8(1 if commit else 0))
        r.i32()
        return (r.i16(),)
    return retry(call, "EndTxn")[0]


def wait_stable(c, topic, partition=0, timeout=15 * SLOW):
    return wait_stable_within(c, topic, partition, timeout)


def produce_txn(c, topic, partition, batch, txn, timeout=15 * SLOW):
    """A transactional Produce, retried as a client would while the leader
    answers NOT_ENOUGH_REPLICAS (e.g. the coordinator still writing the
    previous transaction's CompleteAbort: CONCURRENT_TRANSACTIONS there)."""
    deadline = time.monotonic() + timeout
    while True:
        r = produce_v3(c, topic, partition, batch, transactional_id=txn)
        if r["error_code"] != NOT_ENOUGH_REPLICAS:
            return r
        assert time.monotonic() < deadline, "still NOT_ENOUGH_REPLICAS"
        time.sleep(0.05)


def test_only_verified_batches_open_a_transaction(broker):
    t = create_topic(broker.bootstrap, unique_topic("verify"), 2)
    txn = "verify-" + t
    with Conn(broker.bootstrap) as c:
        pid, epoch = init(c, txn)
        # A partition never added to the transaction: refused, nothing written.
        r = produce_txn(c, t, 0, txn_batch(pid, epoch, 0), txn)
        assert r["error_code"] == INVALID_TXN_STATE, r
        assert offsets(c, t) == (0, 0)

        # Added: written; the next batch joins the open transaction.
        assert add_partitions(c, txn, pid, epoch, t, [0]) == {0: NONE}
        assert produce_txn(c, t, 0, txn_batch(pid, epoch, 0), txn)["base_offset"] == 0
        assert produce_txn(c, t, 0, txn_batch(pid, epoch, 2), txn)["base_offset"] == 2
        # Partition 1 is still not in it.
        r = produce_txn(c, t, 1, txn_batch(pid, epoch, 0), txn)
        assert r["error_code"] == INVALID_TXN_STATE, r
        assert offsets(c, t) == (4, 0)  # open: the LSO waits at its first offset

        assert end_txn(c, txn, pid, epoch, commit=False) == NONE
        assert wait_stable(c, t) == 5  # the ABORT marker at offset 4

        # A late write of the same epoch after the abort (a retry that lost
        # its way, a zombie): without verification it would open a
        # transaction no coordinator knows, and the LSO would never move.
        r = produce_txn(c, t, 0, txn_batch(pid, epoch, 4), txn)
        assert r["error_code"] == INVALID_TXN_STATE, r
        assert offsets(c, t) == (5, 5)

        # A fenced epoch, and a producer id the transactional id does not have.
        pid2, epoch2 = init(c, txn)
        assert (pid2, epoch2) == (pid, epoch + 1)
        assert produce_txn(c, t, 1, txn_batch(pid, epoch, 0), txn)["error_code"] == \
            INVALID_PRODUCER_EPOCH
        assert produce_txn(c, t, 1, txn_batch(pid + 1, 0, 0), txn)["error_code"] == \
            INVALID_PRODUCER_ID_MAPPING
        # A transactional batch in a request without a transactional id.
        assert produce_v3(c, t, 1, txn_batch(pid2, epoch2, 0))["error_code"] == INVALID_TXN_STATE
        assert offsets(c, t, 1) == (0, 0)

        # The good path still works and commits.
        assert add_partitions(c, txn, pid2, epoch2, t, [0, 1]) == {0: NONE, 1: NONE}
        assert produce_txn(c, t, 1, txn_batch(pid2, epoch2, 0), txn)["base_offset"] == 0
        assert end_txn(c, txn, pid2, epoch2, commit=True) == NONE
        assert wait_stable(c, t, 1) == 3


def consume_committed(bootstrap, topic, partitions, expect, timeout=30 * SLOW):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "v-" + topic, "isolation.level": "read_committed",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value().decode())
        end = time.monotonic() + 1.0  # and nothing more
        while time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value().decode())
    finally:
        c.close()
    return got


def test_leaders_verify_with_a_coordinator_on_another_broker(cluster_factory):
    """Six partitions over three brokers: most leaders are not the
    transaction coordinator and ask it over the inter-broker listener."""
    cl = cluster_factory(3)
    bs = cl.bootstrap()
    t = create_topic(bs, unique_topic("verify-cluster"), 6)
    p = ck.Producer({"bootstrap.servers": bs, "transactional.id": "vc-" + t, "linger.ms": 5})
    p.init_transactions(30 * SLOW)
    want = []
    for round_ in range(3):
        p.begin_transaction()
        vals = ["r%d-%d" % (round_, i) for i in range(30)]
        for i, v in enumerate(vals):
            p.produce(t, value=v.encode(), partition=i % 6)
        if round_ == 1:
            p.flush(30 * SLOW)  # on the logs, then aborted
            p.abort_transaction(30 * SLOW)
        else:
            p.commit_transaction(30 * SLOW)
            want += vals
    got = consume_committed(bs, t, 6, len(want))
    assert sorted(got) == sorted(want)

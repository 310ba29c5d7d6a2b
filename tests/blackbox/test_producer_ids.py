"""Producer ids for idempotent producers (InitProducerId), handed out as Apache
Kafka's KRaft brokers do: each broker takes blocks of ids from the active
controller (AllocateProducerIds, written to the metadata log), so ids are
distinct across brokers, restarts and controller failovers. A producer
without a transactional id gets a fresh id and epoch 0 on every call;
a transactional id keeps its producer id and gets the next epoch.

What is not tested here: deduplication of retried batches (the partition log
does not keep producer state yet).
"""

import time

from bb_broker import SANITIZED
from bb_clients import ck_produce, ck_consume, create_topic, sample_records, unique_topic
from bb_wire import (API_INIT_PRODUCER_ID, Conn, api_versions_v0, fetch_v4_body, init_producer_id,
                     parse_fetch_v4, parse_record_batches)

SLOW = 3 if SANITIZED else 1
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_REQUEST = 42
BLOCK = 1000  # ids per AllocateProducerIds


def new_id(conn, version=4, timeout=20 * SLOW, **kw):
    """A producer id from InitProducerId, retrying while the broker waits for
    its block (COORDINATOR_LOAD_IN_PROGRESS, as a client would). Returns
    (producer_id, retries)."""
    deadline = time.monotonic() + timeout
    retries = 0
    while True:
        err, pid, epoch = init_producer_id(conn, version, **kw)
        if err != COORDINATOR_LOAD_IN_PROGRESS:
            assert (err, epoch) == (NONE, 0), "InitProducerId v%d: error %d, id %d, epoch %d" % (
                version, err, pid, epoch)
            assert pid >= 0
            return pid, retries
        assert (pid, epoch) == (-1, -1)
        retries += 1
        assert time.monotonic() < deadline, "no producer id within %ds" % timeout
        time.sleep(0.05)


def ids_from(bootstrap, n, version=4):
    with Conn(bootstrap) as c:
        return [new_id(c, version)[0] for _ in range(n)]


def idempotent_produce(bootstrap, topic, n=10):
    """confluent-kafka with enable.idempotence=True: every record delivered."""
    recs = sample_records()[:n]
    ck_produce(bootstrap, topic, recs, **{"enable.idempotence": True})
    return recs


def batch_producer_ids(bootstrap, topic):
    """{offset: (producer_id, producer_epoch)} of partition 0, as stored."""
    with Conn(bootstrap) as c:
        r = c.call(1, 4, fetch_v4_body(topic, 0, 0, 100))
        part = parse_fetch_v4(r)[topic][0]
        assert part["error_code"] == 0
        return {rec["offset"]: (rec["producer_id"], rec["producer_epoch"])
                for rec in parse_record_batches(part["records"] or b"")}


# ------------------------------------------------------------------ one broker


def test_init_producer_id_on_the_wire(broker_factory):
    b = broker_factory()
    with Conn(b.bootstrap) as c:
        err, keys = api_versions_v0(c)
        assert err == 0
        assert keys[API_INIT_PRODUCER_ID] == (0, 4)
        assert 67 not in keys, "AllocateProducerIds is for the controller listener only"

        # Every version, a new id each call (the first call may have to wait
        # for the broker's first block).
        ids = []
        for v in range(5):
            for _ in range(3):
                ids.append(new_id(c, v)[0])
        assert len(set(ids)) == len(ids)

        # v3+: a producer that names its current id and epoch (KIP-360) gets
        # a fresh id with epoch 0, as Kafka gives one to a producer without a
        # transactional id.
        bumped, _ = new_id(c, 4, producer_id=ids[-1], producer_epoch=0)
        assert bumped not in ids
        ids.append(bumped)
        # The id without the epoch (or the other way round) is malformed.
        assert init_producer_id(c, 3, producer_id=ids[0]) == (INVALID_REQUEST, -1, -1)
        assert init_producer_id(c, 4, producer_epoch=3) == (INVALID_REQUEST, -1, -1)

        # A transactional id is served by its transaction coordinator (which
        # may first create __transaction_state: retry as a client would): the
        # same id keeps its producer id and the epoch goes up by one per call.
        txn = []
        for v in (0, 2, 4):
            deadline = time.monotonic() + 30 * SLOW
            while True:
                err, pid, epoch = init_producer_id(c, v, transactional_id="txn-a", transaction_timeout_ms=60000)
                if err not in (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR):
                    break
                assert time.monotonic() < deadline, "InitProducerId for txn-a: still error %d" % err
                time.sleep(0.1)
            assert err == NONE
            txn.append((pid, epoch))
        assert len({pid for pid, _ in txn}) == 1 and txn[0][0] not in ids
        assert [e for _, e in txn] == [txn[0][1], txn[0][1] + 1, txn[0][1] + 2]
        assert init_producer_id(c, 4, transactional_id="", transaction_timeout_ms=60000) == (
            INVALID_REQUEST, -1, -1)

        # Past the first block: the broker asked for the next one ahead of
        # time, and ids go on without a repeat.
        start = time.monotonic()
        retries = 0
        for _ in range(BLOCK + 200):
            pid, r = new_id(c)
            ids.append(pid)
            retries += r
        print("%d ids in %.2fs, %d answers to wait for a block" % (BLOCK + 200, time.monotonic() - start, retries))
    assert len(set(ids)) == len(ids)
    assert max(ids) >= BLOCK

    # After a restart the broker takes a new block from the metadata log:
    # every id is above all those given before.
    b.restart()
    after = ids_from(b.bootstrap, 20)
    assert min(after) > max(ids), (min(after), max(ids))
    assert len(set(after)) == len(after)


def test_idempotent_confluent_producer(broker):
    topic = create_topic(broker.bootstrap, unique_topic("idem"))
    recs = idempotent_produce(broker.bootstrap, topic)
    got = ck_consume(broker.bootstrap, topic, expected=len(recs))
    assert [r.value for r in got] == [r.value for r in recs]
    first = batch_producer_ids(broker.bootstrap, topic)
    assert len(first) == len(recs)
    pids = {pid for pid, _ in first.values()}
    assert len(pids) == 1 and min(pids) >= 0, first
    assert {e for _, e in first.values()} == {0}

    # A second producer gets another id.
    more = idempotent_produce(broker.bootstrap, topic, 5)
    second = {pid for off, (pid, _) in batch_producer_ids(broker.bootstrap, topic).items() if off >= len(recs)}
    assert len(second) == 1 and second.isdisjoint(pids), (pids, second)
    assert len(ck_consume(broker.bootstrap, topic, expected=len(recs) + len(more))) == len(recs) + len(more)


# ------------------------------------------------------------------ three brokers


def test_brokers_never_hand_out_the_same_id(cluster_factory):
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    seen = {}  # id -> node

    def take(i, n):
        for pid in ids_from(c.nodes[i].bootstrap, n):
            assert pid not in seen, "id %d from node %d was given by node %d" % (pid, i, seen[pid])
            seen[pid] = i

    # Interleaved, so that the blocks are taken in turns.
    for _ in range(3):
        for i in c.ids:
            take(i, 150)
    # Each broker has its own block.
    blocks = {i: {pid // BLOCK for pid, node in seen.items() if node == i} for i in c.ids}
    for i in c.ids:
        for j in c.ids:
            if i < j:
                assert blocks[i].isdisjoint(blocks[j]), blocks

    # An idempotent producer through every node.
    topic = unique_topic("idem3")
    create_topic(c.bootstrap(), topic)
    for i in c.ids:
        idempotent_produce(c.nodes[i].bootstrap, topic, 3)

    # The active controller dies: the next blocks come from the new one, from
    # the replicated log, and still never repeat an id.
    old, _ = c.wait_quorum_leader()
    c.nodes[old].kill9()
    c.wait_quorum_leader(exclude={old}, timeout=30 * SLOW)
    for i in c.live():
        take(i, BLOCK)  # each crosses into a block the new controller gave
    assert len(seen) == 3 * 3 * 150 + 2 * BLOCK

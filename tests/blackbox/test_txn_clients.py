"""Real clients' transactions against a real broker: librdkafka
(confluent-kafka) and kafkajs drive the transaction coordinator end to end
(InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
EndTxn, the markers) and consumers check what became visible.

- commit and abort over several partitions: read_committed sees the
  committed records only, read_uncommitted sees the aborted ones too (they
  were flushed to the log before the abort);
- zombie fencing: a second producer with the same transactional.id aborts the
  first one's open transaction and the first is fenced on its next call;
- consume-transform-produce with send_offsets_to_transaction: the group's
  offsets move on commit only;
- transaction.timeout.ms: the coordinator aborts a transaction left open
  past it, and refuses a timeout above transaction.max.timeout.ms;
- lost InitProducerId, Produce, AddPartitionsToTxn and EndTxn responses
  (bb_proxy): every record once.
"""

import time

import pytest
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from bb_broker import SANITIZED
from bb_clients import ck_consume, create_topic, kjs_available, kjs_ok, unique_topic

SLOW = 3 if SANITIZED else 1
PRODUCE = 0
INIT_PRODUCER_ID = 22
ADD_PARTITIONS_TO_TXN = 24
ADD_OFFSETS_TO_TXN = 25
END_TXN = 26
TXN_OFFSET_COMMIT = 28
COMMITTED = {"isolation.level": "read_committed"}
UNCOMMITTED = {"isolation.level": "read_uncommitted"}


def txn_producer(bootstrap, txn_id, **conf):
    p = Producer(dict({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
                       "socket.timeout.ms": 5000, "retry.backoff.ms": 50}, **conf))
    p.init_transactions(30 * SLOW)
    return p


def produce_txn(p, topic, values, partitions, commit):
    p.begin_transaction()
    for i, v in enumerate(values):
        p.produce(topic, v, partition=i % partitions)
    # On the log before the decision, so an abort has records to hide.
    assert p.flush(30 * SLOW) == 0
    if commit:
        p.commit_transaction(30 * SLOW)
    else:
        p.abort_transaction(30 * SLOW)


def values(recs):
    return sorted(r.value for r in recs)


def committed_offsets(bootstrap, group, topic, partitions):
    """The group's committed offsets as OffsetFetch answers them now
    (read_uncommitted: librdkafka does not ask for stable offsets, so a
    pending transactional commit shows as the previous one)."""
    c = Consumer(dict({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False},
                      **UNCOMMITTED))
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15 * SLOW)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_commit_and_abort_over_three_partitions(broker):
    t = create_topic(broker.bootstrap, unique_topic("txn-ca"), 3)
    p = txn_producer(broker.bootstrap, "ca-" + t)
    first = [b"c1-%d" % i for i in range(30)]
    aborted = [b"a-%d" % i for i in range(30)]
    last = [b"c2-%d" % i for i in range(30)]
    produce_txn(p, t, first, 3, commit=True)
    produce_txn(p, t, aborted, 3, commit=False)
    produce_txn(p, t, last, 3, commit=True)
    p.flush(10)

    parts = (0, 1, 2)
    assert values(ck_consume(broker.bootstrap, t, parts, expected=60, **COMMITTED)) == sorted(first + last)
    got = ck_consume(broker.bootstrap, t, parts, expected=90, **UNCOMMITTED)
    assert values(got) == sorted(first + aborted + last)
    # Each partition: 10 + marker, 10 + marker, 10 + marker; offsets in order.
    for part in parts:
        offs = [r.offset for r in got if r.partition == part]
        assert offs == list(range(10)) + list(range(11, 21)) + list(range(22, 32)), (part, offs)


def test_interleaved_transactions_on_one_partition(broker):
    """Three producers' transactions interleave on one partition; the middle
    one aborts. read_committed must skip exactly its records (the aborted
    transactions list Fetch returns), whatever sits between them."""
    t = create_topic(broker.bootstrap, unique_topic("txn-interleave"), 1)
    ps = [txn_producer(broker.bootstrap, "il%d-%s" % (i, t)) for i in range(3)]
    for p in ps:
        p.begin_transaction()
    for rnd in range(5):
        for i, p in enumerate(ps):
            p.produce(t, b"p%d-%d" % (i, rnd), partition=0)
            assert p.flush(30 * SLOW) == 0
    ps[1].abort_transaction(30 * SLOW)
    ps[2].commit_transaction(30 * SLOW)
    ps[0].commit_transaction(30 * SLOW)
    got = [r.value for r in ck_consume(broker.bootstrap, t, expected=10, **COMMITTED)]
    assert got == [b"p%d-%d" % (i, rnd) for rnd in range(5) for i in (0, 2)]
    assert len(ck_consume(broker.bootstrap, t, expected=15, **UNCOMMITTED)) == 15


def test_librdkafka_recovers_from_an_abortable_error(broker):
    """A record the broker refuses (MESSAGE_TOO_LARGE for the topic's
    max.message.bytes) leaves librdkafka's transaction abortable and its
    sequence numbers with a gap. librdkafka 2.0.2 does not bump its epoch for
    that error, so its next transaction hits OUT_OF_ORDER_SEQUENCE_NUMBER
    (as it would on Kafka, whose partitions check sequences across
    transactions too) and is abortable "with epoch bump": after that abort it
    bumps (KIP-360 InitProducerId naming its own id and epoch) and goes on."""
    t = create_topic(broker.bootstrap, unique_topic("txn-abortable"), 1, config={"max.message.bytes": "2000"})
    p = txn_producer(broker.bootstrap, "ab-" + t)
    errors = []
    p.begin_transaction()
    p.produce(t, b"small-0", partition=0)
    p.flush(30 * SLOW)
    p.produce(t, b"x" * 5000, partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30 * SLOW)
    assert errors and errors[0] is not None, errors
    with pytest.raises(KafkaException) as e:
        p.commit_transaction(30 * SLOW)
    assert e.value.args[0].txn_requires_abort(), e.value.args[0]
    p.abort_transaction(30 * SLOW)
    vals = [b"after-%d" % i for i in range(5)]
    for attempt in range(3):
        try:
            produce_txn(p, t, vals, 1, commit=True)
            break
        except KafkaException as e:
            assert e.args[0].txn_requires_abort() and attempt < 2, e.args[0]
            p.abort_transaction(30 * SLOW)
    got = ck_consume(broker.bootstrap, t, expected=5, **COMMITTED)
    assert [r.value for r in got] == [b"after-%d" % i for i in range(5)]


def fenced(exc):
    err = exc.args[0]
    return err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH)


def test_second_producer_fences_the_zombie_and_aborts_its_transaction(broker):
    t = create_topic(broker.bootstrap, unique_topic("txn-zombie"), 2)
    txn = "zombie-" + t
    zombie = txn_producer(broker.bootstrap, txn)
    zombie.begin_transaction()
    for i in range(20):
        zombie.produce(t, b"z-%d" % i, partition=i % 2)
    assert zombie.flush(30 * SLOW) == 0

    # The new instance's InitProducerId bumps the epoch and aborts the open
    # transaction (its records are on the log, so markers are needed).
    fresh = txn_producer(broker.bootstrap, txn)
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(30 * SLOW)
    assert fenced(e.value), e.value.args[0]

    produce_txn(fresh, t, [b"f-%d" % i for i in range(10)], 2, commit=True)
    got = ck_consume(broker.bootstrap, t, (0, 1), expected=10, **COMMITTED)
    assert values(got) == sorted(b"f-%d" % i for i in range(10))
    assert len(ck_consume(broker.bootstrap, t, (0, 1), expected=30, **UNCOMMITTED)) == 30


def test_consume_transform_produce_moves_offsets_only_on_commit(broker):
    src = create_topic(broker.bootstrap, unique_topic("ctp-in"), 1)
    dst = create_topic(broker.bootstrap, unique_topic("ctp-out"), 1)
    group = "ctp-" + src
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(src, b"in-%d" % i, partition=0)
    assert plain.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([src])
    p = txn_producer(broker.bootstrap, "ctp-" + src)
    try:
        def transform(n, commit, before):
            msgs = []
            deadline = time.monotonic() + 30 * SLOW
            while len(msgs) < n:
                assert time.monotonic() < deadline, "consumed %d of %d" % (len(msgs), n)
                m = consumer.poll(0.2)
                if m is not None and not m.error():
                    msgs.append(m)
            p.begin_transaction()
            for m in msgs:
                p.produce(dst, m.value().replace(b"in", b"out"), partition=0)
            p.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                          consumer.consumer_group_metadata(), 30 * SLOW)
            assert p.flush(30 * SLOW) == 0
            # Pending until the transaction ends: still the previous commit.
            assert committed_offsets(broker.bootstrap, group, src, 1) == {0: before}
            if commit:
                p.commit_transaction(30 * SLOW)
            else:
                p.abort_transaction(30 * SLOW)

        transform(5, commit=True, before=OFFSET_INVALID)
        assert committed_offsets(broker.bootstrap, group, src, 1) == {0: 5}
        transform(5, commit=False, before=5)
        assert committed_offsets(broker.bootstrap, group, src, 1) == {0: 5}
    finally:
        consumer.close()
    assert [r.value for r in ck_consume(broker.bootstrap, dst, expected=5, **COMMITTED)] == \
        [b"out-%d" % i for i in range(5)]
    assert len(ck_consume(broker.bootstrap, dst, expected=10, **UNCOMMITTED)) == 10


def test_offsets_from_a_stale_group_generation_are_refused(broker_factory):
    """KIP-447: send_offsets_to_transaction carries the consumer's group
    generation and member id; after a rebalance moved the group on, the old
    generation's offsets are refused and the transaction must be aborted, so
    a zombie consumer cannot commit offsets for partitions it lost."""
    b = broker_factory({"group.initial.rebalance.delay.ms": "0"})
    src = create_topic(b.bootstrap, unique_topic("stale-in"), 2)
    group = "stale-" + src

    def member():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False,
                      "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        c.subscribe([src])
        return c

    def wait_assigned(c, n):
        deadline = time.monotonic() + 30 * SLOW
        while len(c.assignment()) != n:
            assert time.monotonic() < deadline, c.assignment()
            c.poll(0.2)

    first = member()
    try:
        wait_assigned(first, 2)
        stale = first.consumer_group_metadata()
        second = member()
        try:
            deadline = time.monotonic() + 30 * SLOW
            while len(second.assignment()) != 1 or len(first.assignment()) != 1:
                assert time.monotonic() < deadline, (first.assignment(), second.assignment())
                first.poll(0.1)
                second.poll(0.1)
            p = txn_producer(b.bootstrap, "stale-" + src)
            p.begin_transaction()
            with pytest.raises(KafkaException) as e:
                p.send_offsets_to_transaction([TopicPartition(src, 0, 5)], stale, 30 * SLOW)
            assert e.value.args[0].txn_requires_abort() or e.value.args[0].fatal(), e.value.args[0]
            err = e.value.args[0]
            assert err.code() in (KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
                                  KafkaError.FENCED_INSTANCE_ID, KafkaError.REBALANCE_IN_PROGRESS), err
            if err.txn_requires_abort():
                p.abort_transaction(30 * SLOW)
            assert committed_offsets(b.bootstrap, group, src, 1)[0] == OFFSET_INVALID
        finally:
            second.close()
    finally:
        first.close()


def test_coordinator_aborts_a_timed_out_transaction(broker_factory):
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    t = create_topic(b.bootstrap, unique_topic("txn-timeout"), 1)
    p = txn_producer(b.bootstrap, "to-" + t, **{"transaction.timeout.ms": 2000, "message.timeout.ms": 2000,
                                                  "socket.timeout.ms": 2000})
    p.begin_transaction()
    for i in range(5):
        p.produce(t, b"late-%d" % i, partition=0)
    assert p.flush(30 * SLOW) == 0
    plain = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(3):
        plain.produce(t, b"after-%d" % i, partition=0)
    assert plain.flush(30) == 0

    # Left open: read_committed waits behind it until the coordinator aborts
    # it (2 s timeout, checked every 200 ms), then reads past it.
    got = ck_consume(b.bootstrap, t, expected=3, timeout=20 * SLOW, **COMMITTED)
    assert [r.value for r in got] == [b"after-%d" % i for i in range(3)]
    with pytest.raises(KafkaException) as e:
        p.commit_transaction(30 * SLOW)
    err = e.value.args[0]
    assert fenced(e.value) or err.txn_requires_abort(), err


def test_transaction_timeout_above_the_maximum_is_refused(broker_factory):
    b = broker_factory({"transaction.max.timeout.ms": "5000"})
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": unique_topic("too-long"),
                  "transaction.timeout.ms": 10000})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(30 * SLOW)
    assert e.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, e.value.args[0]
    # Within the maximum it works.
    txn_producer(b.bootstrap, unique_topic("ok-timeout"), **{"transaction.timeout.ms": 5000})


def test_lost_responses_inside_transactions_write_each_record_once(proxied):
    b, proxy = proxied
    t = create_topic(b.bootstrap, unique_topic("txn-lossy"), 2)
    proxy.drop_responses(INIT_PRODUCER_ID, 1)
    p = txn_producer("127.0.0.1:%d" % proxy.port, "lossy-" + t,
                     **{"message.timeout.ms": 60000, "transaction.timeout.ms": 60000})
    assert proxy.dropped_count(INIT_PRODUCER_ID) == 1
    sent = []
    for r, drops in enumerate([{}, {PRODUCE: 1, ADD_PARTITIONS_TO_TXN: 1}, {PRODUCE: 2, END_TXN: 1}, {END_TXN: 1}]):
        for api, n in drops.items():
            proxy.drop_responses(api, n)
        vals = [b"r%d-%d" % (r, i) for i in range(40)]
        produce_txn(p, t, vals, 2, commit=True)
        sent += vals
    assert (proxy.dropped_count(PRODUCE), proxy.dropped_count(ADD_PARTITIONS_TO_TXN), proxy.dropped_count(END_TXN)) \
        == (3, 1, 2)
    got = ck_consume(b.bootstrap, t, (0, 1), expected=len(sent), **COMMITTED)
    assert sorted(r.value for r in got) == sorted(sent)  # once each
    for part in (0, 1):  # and in order
        vals = [r.value for r in got if r.partition == part]
        assert vals == [v for i, v in enumerate(sent) if i % 40 % 2 == part]


def test_lost_add_offsets_and_txn_offset_commit_responses(proxied):
    """send_offsets_to_transaction whose AddOffsetsToTxn and TxnOffsetCommit
    answers are lost: the retries land once, the offsets move on commit."""
    b, proxy = proxied
    via = "127.0.0.1:%d" % proxy.port
    t = create_topic(b.bootstrap, unique_topic("txn-lossy-offsets"), 1)
    group = "lossy-" + t
    p = txn_producer(via, "lo-" + t)
    for n, drops in ((3, {ADD_OFFSETS_TO_TXN: 1}), (7, {TXN_OFFSET_COMMIT: 1})):
        for api, k in drops.items():
            proxy.drop_responses(api, k)
        p.begin_transaction()
        p.produce(t, b"at-%d" % n, partition=0)
        p.send_offsets_to_transaction([TopicPartition(t, 0, n)], _group_metadata(via, group), 30 * SLOW)
        p.commit_transaction(30 * SLOW)
        assert committed_offsets(b.bootstrap, group, t, 1) == {0: n}
    assert (proxy.dropped_count(ADD_OFFSETS_TO_TXN), proxy.dropped_count(TXN_OFFSET_COMMIT)) == (1, 1)
    assert [r.value for r in ck_consume(b.bootstrap, t, expected=2, **COMMITTED)] == [b"at-3", b"at-7"]


def _group_metadata(bootstrap, group):
    """A consumer's group metadata without joining (generation -1), as a
    consumer that assigns its partitions itself has."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return c.consumer_group_metadata()
    finally:
        c.close()


@pytest.mark.skipif(not kjs_available(), reason="kafkajs not installed: run scripts/install-deps.sh")
def test_kafkajs_transactions_send_offsets_commit_and_abort(broker):
    t = create_topic(broker.bootstrap, unique_topic("kjs-txn"), 2)
    group = "kjs-txn-" + t
    txn = "kjs-" + t

    def step(tag, offset, abort):
        return {"op": "transaction", "transactionalId": txn, "abort": abort,
                "sends": [{"topic": t, "messages": [{"value": _b64(b"%s-%d" % (tag, i)), "partition": i % 2}
                                                    for i in range(10)]}],
                "offsets": {"groupId": group,
                            "topics": [{"topic": t, "partitions": [{"partition": 0, "offset": str(offset)}]}]}}

    kjs_ok(broker.bootstrap, [step(b"k1", 7, False), step(b"ka", 9, True)])
    assert committed_offsets(broker.bootstrap, group, t, 1) == {0: 7}
    got = ck_consume(broker.bootstrap, t, (0, 1), expected=10, **COMMITTED)
    assert values(got) == sorted(b"k1-%d" % i for i in range(10))
    assert len(ck_consume(broker.bootstrap, t, (0, 1), expected=20, **UNCOMMITTED)) == 20


@pytest.mark.skipif(not kjs_available(), reason="kafkajs not installed: run scripts/install-deps.sh")
def test_kafkajs_transaction_with_a_lost_produce_response(proxied):
    """kafkajs's idempotent retry of a transactional send whose answer was
    lost: each record once. (A lost EndTxn answer is not tried: kafkajs
    2.2.4's commit() does not retry EndTxn, it throws
    KafkaJSConnectionClosedError to the application.)"""
    b, proxy = proxied
    t = create_topic(b.bootstrap, unique_topic("kjs-txn-lossy"), 1)
    msgs = [{"value": _b64(b"L-%d" % i), "partition": 0} for i in range(30)]
    proxy.drop_responses(PRODUCE, 1)
    kjs_ok("127.0.0.1:%d" % proxy.port, [{"op": "transaction", "transactionalId": "kl-" + t,
                                          "sends": [{"topic": t, "messages": msgs[:15]},
                                                    {"topic": t, "messages": msgs[15:]}]}])
    assert proxy.dropped_count(PRODUCE) == 1
    got = ck_consume(b.bootstrap, t, expected=30, **COMMITTED)
    assert [r.value for r in got] == [b"L-%d" % i for i in range(30)]


def _b64(b):
    import base64
    return base64.b64encode(b).decode()


@pytest.mark.deadline(240)
def test_a_commit_outlives_its_coordinators_death(cluster_factory):
    """Three brokers, everything replicated three ways: the broker that
    coordinates the transactional id is killed (-9) with a transaction
    open. Another broker takes over its __transaction_state partition,
    reloads the transaction, and the producer's commit goes through there."""
    from confluent_kafka.admin import NewTopic
    from bb_clients import admin, wait_topic
    from bb_wire import Conn, find_coordinator_v1
    cl = cluster_factory(3)
    bs = cl.bootstrap()
    t = unique_topic("txn-failover")
    a = admin(bs)
    a.create_topics([NewTopic(t, num_partitions=6, replication_factor=3,
                              config={"min.insync.replicas": "2"})])[t].result(30)
    wait_topic(bs, t, 6)
    txn = "fo-" + t
    p = txn_producer(bs, txn, **{"transaction.timeout.ms": 120000, "message.timeout.ms": 120000})
    first = [b"a-%d" % i for i in range(30)]
    produce_txn(p, t, first, 6, commit=True)

    p.begin_transaction()
    second = [b"b-%d" % i for i in range(30)]
    for i, v in enumerate(second):
        p.produce(t, v, partition=i % 6)
    assert p.flush(60 * SLOW) == 0
    with Conn(cl.nodes[cl.ids[0]].bootstrap) as c:
        err, node, _, _ = find_coordinator_v1(c, txn)
    assert err == 0 and node in cl.nodes, (err, node)
    cl.nodes[node].kill9()
    p.commit_transaction(120 * SLOW)

    live = cl.bootstrap([i for i in cl.ids if i != node])
    got = ck_consume(live, t, tuple(range(6)), expected=60, timeout=60 * SLOW, **COMMITTED)
    assert sorted(r.value for r in got) == sorted(first + second)

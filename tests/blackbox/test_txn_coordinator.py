"""The transaction coordinator on the raw wire, with bad input: wrong
producer ids and epochs, unknown transactional ids, EndTxn with nothing
added, unknown topics, markers for producers nobody knows. Each gets the
error Kafka's TransactionCoordinator answers (PRODUCER_FENCED from the
versions that know it, INVALID_PRODUCER_EPOCH before), and afterwards a good
transaction still works and the log reads back intact.

Also ListTransactions' filters, DescribeTransactions, and the coordinator's
state surviving a kill -9 (reloaded from __transaction_state): an ongoing
transaction is still there and commits; one committed just before the kill
completes.
"""

import time
import uuid

from bb_broker import SANITIZED
from bb_clients import ck_consume, create_topic, now_ms, unique_topic
import bb_wire
from bb_wire import (Conn, add_offsets_to_txn, add_partitions_to_txn, add_partitions_to_txn_v4,
                     describe_transactions_v0, end_txn, fetch_v4_body, find_coordinator_v1, init_producer_id, list_transactions_v0, parse_fetch_v4,
                     parse_record_batches, produce_v3, stable_offsets as offsets, txn_batch, write_txn_markers_v1)

SLOW = 3 if SANITIZED else 1
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90
TRANSACTIONAL_ID_NOT_FOUND = 105
# COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS
RETRIABLE = (14, 15, 16, CONCURRENT_TRANSACTIONS)


def retry(call, timeout=30 * SLOW):
    """call() -> an error code or a tuple starting with one; called again
    while the coordinator is loading or a transition is in flight."""
    deadline = time.monotonic() + timeout
    while True:
        out = call()
        err = out[0] if isinstance(out, tuple) else out
        if err not in RETRIABLE:
            return out
        assert time.monotonic() < deadline, "still error %d after %d s" % (err, timeout)
        time.sleep(0.1)


def init(c, txn, timeout_ms=60000):
    err, pid, epoch = retry(lambda: init_producer_id(c, 1, transactional_id=txn, transaction_timeout_ms=timeout_ms))
    assert err == NONE, err
    return pid, epoch


def add(c, txn, pid, epoch, topics, version=2):
    """Retried as a whole while retriable: {topic: {partition: error}}."""
    def call():
        res = add_partitions_to_txn(c, version, txn, pid, epoch, topics)
        return (max(e for ps in res.values() for e in ps.values()), res)
    return retry(call)[1]


def end(c, txn, pid, epoch, commit, version=2):
    return retry(lambda: end_txn(c, version, txn, pid, epoch, commit))


def describe(c, txn):
    return retry(lambda: (lambda d: (d["error"], d))(describe_transactions_v0(c, [txn])[txn]))[1]


def wait_stable(c, topic, partition=0):
    return bb_wire.wait_stable(c, topic, partition, timeout=15 * SLOW)


def all_batches(c, topic, partition=0):
    part = parse_fetch_v4(c.call(1, 4, fetch_v4_body(topic, partition, 0, 0)))[topic][partition]
    return [(r["offset"], r["control"], r["value"] if not r["control"] else None)
            for r in parse_record_batches(part["records"])]


def test_bad_transactional_requests_get_kafkas_errors_and_a_good_transaction_still_works(broker):
    t = create_topic(broker.bootstrap, unique_topic("txn-bad"), 2)
    txn = "bad-" + t
    with Conn(broker.bootstrap) as c:
        err, node, host, port = retry(lambda: find_coordinator_v1(c, txn))
        assert (err, node, "%s:%d" % (host, port)) == (NONE, 1, broker.bootstrap)

        # An id the coordinator has never seen.
        ghost = "ghost-" + uuid.uuid4().hex
        assert add_partitions_to_txn(c, 2, ghost, 1234, 0, {t: [0]}) == {t: {0: INVALID_PRODUCER_ID_MAPPING}}
        assert add_offsets_to_txn(c, 2, ghost, 1234, 0, "g") == INVALID_PRODUCER_ID_MAPPING
        assert end_txn(c, 2, ghost, 1234, 0, True) == INVALID_PRODUCER_ID_MAPPING
        assert describe_transactions_v0(c, [ghost])[ghost]["error"] == TRANSACTIONAL_ID_NOT_FOUND

        # Timeouts outside (0, transaction.max.timeout.ms].
        for bad in (0, -5, 900001):
            assert init_producer_id(c, 1, transactional_id=txn, transaction_timeout_ms=bad)[0] == \
                INVALID_TRANSACTION_TIMEOUT, bad
        # An empty transactional id; an id named without its epoch.
        assert init_producer_id(c, 1, transactional_id="", transaction_timeout_ms=60000)[0] == INVALID_REQUEST
        assert init_producer_id(c, 4, transactional_id=txn, transaction_timeout_ms=60000, producer_id=5,
                                producer_epoch=-1)[0] == INVALID_REQUEST
        pid, epoch0 = init(c, txn)
        pid_again, epoch = init(c, txn)  # a second instance: the same id, the epoch bumped
        assert (pid_again, epoch) == (pid, epoch0 + 1)
        old = epoch0

        # KIP-360 InitProducerId naming an id and epoch that are not its own.
        assert init_producer_id(c, 4, transactional_id=txn, transaction_timeout_ms=60000,
                                producer_id=pid + 7, producer_epoch=epoch)[0] == PRODUCER_FENCED
        assert init_producer_id(c, 3, transactional_id=txn, transaction_timeout_ms=60000,
                                producer_id=pid + 7, producer_epoch=epoch)[0] == INVALID_PRODUCER_EPOCH

        # Nothing added yet: there is no transaction to end.
        assert end(c, txn, pid, epoch, True) == INVALID_TXN_STATE
        assert end(c, txn, pid, epoch, False) == INVALID_TXN_STATE

        # Another producer id, an old epoch: per version.
        assert add_partitions_to_txn(c, 2, txn, pid + 1, epoch, {t: [0]}) == {t: {0: INVALID_PRODUCER_ID_MAPPING}}
        assert add_partitions_to_txn(c, 2, txn, pid, old, {t: [0]}) == {t: {0: PRODUCER_FENCED}}
        assert add_partitions_to_txn(c, 1, txn, pid, old, {t: [0]}) == {t: {0: INVALID_PRODUCER_EPOCH}}
        assert add_partitions_to_txn(c, 2, txn, pid, epoch + 1, {t: [0]}) == {t: {0: PRODUCER_FENCED}}
        assert add_offsets_to_txn(c, 2, txn, pid, old, "g") == PRODUCER_FENCED
        assert add_offsets_to_txn(c, 0, txn, pid, old, "g") == INVALID_PRODUCER_EPOCH

        # An unknown topic or partition: nothing of the request is attempted.
        missing = "no-such-" + uuid.uuid4().hex[:8]
        assert add_partitions_to_txn(c, 2, txn, pid, epoch, {t: [0, 99], missing: [0]}) == {
            t: {0: OPERATION_NOT_ATTEMPTED, 99: UNKNOWN_TOPIC_OR_PARTITION},
            missing: {0: UNKNOWN_TOPIC_OR_PARTITION}}
        d = describe(c, txn)
        assert (d["state"], d["topics"], d["producer_id"], d["producer_epoch"]) == ("Empty", {}, pid, epoch), d

        # The good path, with bad requests in the middle of it.
        assert add(c, txn, pid, epoch, {t: [0, 1]}) == {t: {0: NONE, 1: NONE}}
        assert retry(lambda: add_offsets_to_txn(c, 2, txn, pid, epoch, "grp-" + t)) == NONE
        for p in (0, 1):
            r = produce_v3(c, t, p, txn_batch(pid, epoch, 0, tag="p%d" % p), transactional_id=txn)
            assert r["base_offset"] == 0, r
        assert end_txn(c, 1, txn, pid, old, True) == INVALID_PRODUCER_EPOCH
        assert end_txn(c, 2, txn, pid, old, True) == PRODUCER_FENCED
        assert end_txn(c, 2, txn, pid + 1, epoch, True) == INVALID_PRODUCER_ID_MAPPING
        assert add_partitions_to_txn(c, 2, txn, pid, old, {t: [0]}) == {t: {0: PRODUCER_FENCED}}
        d = describe(c, txn)
        assert d["state"] == "Ongoing" and d["topics"][t] == [0, 1] and d["producer_epoch"] == epoch, d
        assert offsets(c, t) == (2, 0)

        assert end(c, txn, pid, epoch, True) == NONE
        for p in (0, 1):
            assert wait_stable(c, t, p) == 3
        # A retried commit is answered NONE; an abort of it is refused.
        assert end(c, txn, pid, epoch, True) == NONE
        assert end(c, txn, pid, epoch, False) == INVALID_TXN_STATE
        d = describe(c, txn)
        assert (d["state"], d["topics"], d["producer_epoch"]) == ("CompleteCommit", {}, epoch), d
        for p in (0, 1):
            assert all_batches(c, t, p) == [(0, False, b"p%d-0" % p), (1, False, b"p%d-1" % p), (2, True, None)]
    got = ck_consume(broker.bootstrap, t, (0, 1), expected=4, **{"isolation.level": "read_committed"})
    assert sorted(r.value for r in got) == [b"p0-0", b"p0-1", b"p1-0", b"p1-1"]


def test_markers_for_unknown_producers_leave_the_log_readable(broker):
    t = create_topic(broker.bootstrap, unique_topic("txn-ghost-marker"), 1)
    txn = "gm-" + t
    with Conn(broker.bootstrap) as c:
        init(c, txn)
        pid, epoch = init(c, txn)  # epoch 1, so there is an older one
        assert add(c, txn, pid, epoch, {t: [0]}) == {t: {0: NONE}}
        assert produce_v3(c, t, 0, txn_batch(pid, epoch, 0, tag="open"), transactional_id=txn)["base_offset"] == 0
        # Kafka writes a marker for a producer it has no state for (there is
        # nothing to end) and refuses one from an older epoch of a known one.
        stranger = pid + 100000
        got = write_txn_markers_v1(c, [(stranger, 0, True, 0, {t: [0]}), (stranger + 1, 3, False, 0, {t: [0]})])
        assert got == [(stranger, {t: {0: NONE}}), (stranger + 1, {t: {0: NONE}})], got
        assert write_txn_markers_v1(c, [(pid, epoch - 1, False, 0, {t: [0]})]) == \
            [(pid, {t: {0: INVALID_PRODUCER_EPOCH}})]
        # The real transaction is still open and holds the stable offset.
        assert offsets(c, t) == (4, 0)
        assert describe(c, txn)["state"] == "Ongoing"
        assert produce_v3(c, t, 0, txn_batch(pid, epoch, 2, tag="open"), transactional_id=txn)["base_offset"] == 4
        assert end(c, txn, pid, epoch, True) == NONE
        assert wait_stable(c, t) == 7
        assert all_batches(c, t) == [(0, False, b"open-0"), (1, False, b"open-1"), (2, True, None), (3, True, None),
                                     (4, False, b"open-2"), (5, False, b"open-3"), (6, True, None)]
    got = ck_consume(broker.bootstrap, t, expected=4, **{"isolation.level": "read_committed"})
    assert [r.value for r in got] == [b"open-%d" % i for i in range(4)]


def test_list_and_describe_transactions(broker):
    t = create_topic(broker.bootstrap, unique_topic("txn-list"), 2)
    ongoing, done, empty = "lo-" + t, "ld-" + t, "le-" + t
    with Conn(broker.bootstrap) as c:
        before = now_ms()
        pid_o, ep_o = init(c, ongoing, timeout_ms=45000)
        pid_d, ep_d = init(c, done)
        pid_e, ep_e = init(c, empty)
        assert add(c, ongoing, pid_o, ep_o, {t: [1, 0]}) == {t: {0: NONE, 1: NONE}}
        assert add(c, done, pid_d, ep_d, {t: [1]}) == {t: {1: NONE}}
        assert end(c, done, pid_d, ep_d, True) == NONE
        deadline = time.monotonic() + 15 * SLOW
        while describe(c, done)["state"] != "CompleteCommit":
            assert time.monotonic() < deadline, describe(c, done)
            time.sleep(0.05)

        ours = {ongoing, done, empty}

        def listed(**kw):
            err, unknown, states = retry(lambda: list_transactions_v0(c, **kw))
            assert err == NONE
            return unknown, sorted(s for s in states if s[0] in ours)

        assert listed() == ([], sorted([(ongoing, pid_o, "Ongoing"), (done, pid_d, "CompleteCommit"),
                                        (empty, pid_e, "Empty")]))
        assert listed(states=["Ongoing"]) == ([], [(ongoing, pid_o, "Ongoing")])
        assert listed(states=["Empty", "Bogus"]) == (["Bogus"], [(empty, pid_e, "Empty")])
        assert listed(states=["Bogus"]) == (["Bogus"], [])
        assert listed(producer_ids=[pid_d, pid_e]) == ([], sorted([(done, pid_d, "CompleteCommit"),
                                                                    (empty, pid_e, "Empty")]))
        assert listed(states=["Ongoing"], producer_ids=[pid_d]) == ([], [])
        # v1: only transactions started at least that long ago. (Empty ones,
        # never started, are left out of the check: Gregor skips them.)
        time.sleep(0.3)
        started = ["Ongoing", "CompleteCommit"]
        assert listed(states=started, min_duration_ms=200) == \
            ([], sorted([(ongoing, pid_o, "Ongoing"), (done, pid_d, "CompleteCommit")]))
        assert listed(states=started, min_duration_ms=600000) == ([], [])

        got = describe_transactions_v0(c, [ongoing, done, "nobody-" + t])
        o = got[ongoing]
        assert (o["error"], o["state"], o["timeout_ms"], o["producer_id"], o["producer_epoch"], o["topics"]) == \
            (NONE, "Ongoing", 45000, pid_o, ep_o, {t: [0, 1]}), o
        assert before <= o["start_ms"] <= now_ms(), o
        d = got[done]
        assert (d["error"], d["state"], d["producer_id"], d["topics"]) == (NONE, "CompleteCommit", pid_d, {}), d
        assert got["nobody-" + t]["error"] == TRANSACTIONAL_ID_NOT_FOUND
        assert end(c, ongoing, pid_o, ep_o, False) == NONE


def test_coordinator_state_survives_kill9(broker_factory):
    b = broker_factory()
    t = create_topic(b.bootstrap, unique_topic("txn-restart"), 2)
    open_txn, closing_txn = "ro-" + t, "rc-" + t
    with Conn(b.bootstrap) as c:
        pid_o, ep_o = init(c, open_txn)
        assert add(c, open_txn, pid_o, ep_o, {t: [0]}) == {t: {0: NONE}}
        assert produce_v3(c, t, 0, txn_batch(pid_o, ep_o, 0, tag="o"), transactional_id=open_txn)["base_offset"] == 0
        pid_c, ep_c = init(c, closing_txn)
        assert add(c, closing_txn, pid_c, ep_c, {t: [1]}) == {t: {1: NONE}}
        assert produce_v3(c, t, 1, txn_batch(pid_c, ep_c, 0, tag="c"), transactional_id=closing_txn)["base_offset"] == 0
        # Killed right after the commit is accepted: its markers may or may
        # not be out; after the reload the coordinator must finish it.
        assert end(c, closing_txn, pid_c, ep_c, True) == NONE
    b.kill9()
    b.start()
    with Conn(b.bootstrap) as c:
        d = describe(c, open_txn)
        assert (d["state"], d["producer_id"], d["producer_epoch"], d["topics"]) == \
            ("Ongoing", pid_o, ep_o, {t: [0]}), d
        assert offsets(c, t, 0) == (2, 0)  # still open on the partition too
        # Its COMMIT marker; a second one when the first was written before
        # the kill but the completion was not (Kafka resends them as well).
        assert wait_stable(c, t, 1) in (3, 4)
        assert all_batches(c, t, 1)[:3] == [(0, False, b"c-0"), (1, False, b"c-1"), (2, True, None)]
        assert all(control for (_, control, _) in all_batches(c, t, 1)[2:])
        deadline = time.monotonic() + 15 * SLOW
        while describe(c, closing_txn)["state"] != "CompleteCommit":
            assert time.monotonic() < deadline, describe(c, closing_txn)
            time.sleep(0.1)

        # The reloaded transaction goes on: one more batch, then commit.
        assert produce_v3(c, t, 0, txn_batch(pid_o, ep_o, 2, tag="o"), transactional_id=open_txn)["base_offset"] == 2
        assert end(c, open_txn, pid_o, ep_o, True) == NONE
        assert wait_stable(c, t, 0) == 5
        # And the fencing state was reloaded too: the old epoch stays fenced.
        pid2, ep2 = init(c, open_txn)
        assert (pid2, ep2) == (pid_o, ep_o + 1)
        assert add_partitions_to_txn(c, 2, open_txn, pid_o, ep_o, {t: [0]}) == {t: {0: PRODUCER_FENCED}}
    got = ck_consume(b.bootstrap, t, (0, 1), expected=6, **{"isolation.level": "read_committed"})
    assert sorted(r.value for r in got) == sorted([b"o-%d" % i for i in range(4)] + [b"c-0", b"c-1"])


def init_v4(c, txn, pid, epoch, timeout_ms=60000):
    """KIP-360 InitProducerId naming the producer's current id and epoch."""
    return retry(lambda: init_producer_id(c, 4, transactional_id=txn, transaction_timeout_ms=timeout_ms,
                                          producer_id=pid, producer_epoch=epoch))


def test_a_zombie_cannot_take_the_new_instances_epoch(broker):
    """KIP-360: InitProducerId naming the previous epoch is a retry of a bump
    that succeeded only if that producer did the bump. Once another instance
    initialized (no id named) or the coordinator fenced the epoch, the old
    epoch is fenced: Kafka resets lastProducerEpoch to -1 there."""
    t = create_topic(broker.bootstrap, unique_topic("txn-kip360"), 1)
    txn = "kip360-" + t
    with Conn(broker.bootstrap) as c:
        pid, e0 = init(c, txn)
        # The same producer bumps its own epoch; a retry of it (answer lost)
        # gets the same answer again, without another bump.
        assert init_v4(c, txn, pid, e0) == (NONE, pid, e0 + 1)
        assert init_v4(c, txn, pid, e0) == (NONE, pid, e0 + 1)
        e1 = e0 + 1
        # A new instance takes over: the old one must not get its epoch.
        assert init(c, txn) == (pid, e1 + 1)
        assert init_v4(c, txn, pid, e1)[0] == PRODUCER_FENCED
        assert init_v4(c, txn, pid, e1 + 1) == (NONE, pid, e1 + 2)

        # The new instance opens a transaction; a third one fences it.
        e = e1 + 2
        assert add(c, txn, pid, e, {t: [0]}) == {t: {0: NONE}}
        assert produce_v3(c, t, 0, txn_batch(pid, e, 0, tag="z"), transactional_id=txn)["base_offset"] == 0
        err, pid3, e3 = retry(lambda: init_producer_id(c, 4, transactional_id=txn, transaction_timeout_ms=60000))
        assert (err, pid3, e3) == (NONE, pid, e + 2)  # one bump fences and aborts, one initializes
        assert init_v4(c, txn, pid, e)[0] == PRODUCER_FENCED
        assert init_v4(c, txn, pid, e + 1)[0] == PRODUCER_FENCED
        assert wait_stable(c, t) == 3  # the aborted batch and its marker
        d = describe(c, txn)
        assert (d["state"], d["producer_epoch"]) == ("Empty", e3), d


def test_the_coordinator_fences_a_timed_out_transactions_producer(broker_factory):
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"})
    t = create_topic(b.bootstrap, unique_topic("txn-timeout-raw"), 1)
    txn = "tor-" + t
    with Conn(b.bootstrap) as c:
        pid, e = init(c, txn, timeout_ms=500)
        assert add(c, txn, pid, e, {t: [0]}) == {t: {0: NONE}}
        assert produce_v3(c, t, 0, txn_batch(pid, e, 0, tag="late"), transactional_id=txn)["base_offset"] == 0
        deadline = time.monotonic() + 15 * SLOW
        while describe(c, txn)["state"] != "CompleteAbort":
            assert time.monotonic() < deadline, describe(c, txn)
            time.sleep(0.05)
        d = describe(c, txn)
        assert (d["producer_id"], d["producer_epoch"], d["topics"]) == (pid, e + 1, {}), d
        assert wait_stable(c, t) == 3
        # The producer that let it time out is fenced, whatever it tries.
        assert end_txn(c, 2, txn, pid, e, True) == PRODUCER_FENCED
        assert add_partitions_to_txn(c, 2, txn, pid, e, {t: [0]}) == {t: {0: PRODUCER_FENCED}}
        assert init_v4(c, txn, pid, e)[0] == PRODUCER_FENCED
        assert produce_v3(c, t, 0, txn_batch(pid, e, 2, tag="late"), transactional_id=txn)["error_code"] == \
            INVALID_PRODUCER_EPOCH
        # A new instance goes on from the fenced epoch.
        assert init(c, txn) == (pid, e + 2)
        assert all_batches(c, t) == [(0, False, b"late-0"), (1, False, b"late-1"), (2, True, None)]


def test_a_topic_deleted_inside_a_transaction_does_not_wedge_it(broker):
    """The markers for a partition deleted since it was added are dropped
    (Kafka's marker sender does the same); the rest of the transaction
    completes and the transactional id goes on."""
    from bb_clients import admin
    keep = create_topic(broker.bootstrap, unique_topic("txn-keep"), 1)
    gone = create_topic(broker.bootstrap, unique_topic("txn-gone"), 1)
    txn = "del-" + keep
    with Conn(broker.bootstrap) as c:
        pid, e = init(c, txn)
        assert add(c, txn, pid, e, {keep: [0], gone: [0]}) == {keep: {0: NONE}, gone: {0: NONE}}
        for t in (keep, gone):
            assert produce_v3(c, t, 0, txn_batch(pid, e, 0, tag=t), transactional_id=txn)["base_offset"] == 0
        a = admin(broker.bootstrap)  # kept alive until the deletion is answered
        a.delete_topics([gone], operation_timeout=15)[gone].result(15)
        deadline = time.monotonic() + 15 * SLOW
        while describe(c, txn)["state"] == "Ongoing" and end(c, txn, pid, e, True) != NONE:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        deadline = time.monotonic() + 15 * SLOW
        while describe(c, txn)["state"] != "CompleteCommit":
            assert time.monotonic() < deadline, describe(c, txn)
            time.sleep(0.1)
        assert wait_stable(c, keep) == 3
        pid2, e2 = init(c, txn)
        assert (pid2, e2) == (pid, e + 1)
    got = ck_consume(broker.bootstrap, keep, expected=2, **{"isolation.level": "read_committed"})
    assert [r.value for r in got] == [("%s-%d" % (keep, i)).encode() for i in range(2)]


def test_a_transaction_left_open_across_a_restart_still_times_out(broker_factory):
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"})
    t = create_topic(b.bootstrap, unique_topic("txn-restart-timeout"), 1)
    txn = "rto-" + t
    with Conn(b.bootstrap) as c:
        init(c, txn, timeout_ms=60000)
        pid, e = init(c, txn, timeout_ms=3000)  # a new timeout with the new instance
        assert describe(c, txn)["timeout_ms"] == 3000
        assert add(c, txn, pid, e, {t: [0]}) == {t: {0: NONE}}
        assert produce_v3(c, t, 0, txn_batch(pid, e, 0, tag="x"), transactional_id=txn)["base_offset"] == 0
    b.kill9()
    b.start()
    with Conn(b.bootstrap) as c:
        deadline = time.monotonic() + 20 * SLOW
        while describe(c, txn)["state"] != "CompleteAbort":
            assert time.monotonic() < deadline, describe(c, txn)
            time.sleep(0.1)
        assert describe(c, txn)["producer_epoch"] == e + 1
        assert wait_stable(c, t) == 3
    assert ck_consume(b.bootstrap, t, expected=0, **{"isolation.level": "read_committed"}) == []


def test_flexible_and_batched_versions(broker):
    """The flexible encodings (AddPartitionsToTxn v3, AddOffsetsToTxn v3,
    EndTxn v3) and AddPartitionsToTxn v4's batch of transactions, each
    answered on its own."""
    t = create_topic(broker.bootstrap, unique_topic("txn-flex"), 2)
    a, z = "fa-" + t, "fz-" + t
    with Conn(broker.bootstrap) as c:
        pid_a, ep_a = init(c, a)
        pid_z, ep_z = init(c, z)
        assert retry(lambda: (lambda r: (max(r[t].values()), r))(
            add_partitions_to_txn(c, 3, a, pid_a, ep_a, {t: [0]})))[1] == {t: {0: NONE}}
        assert add_partitions_to_txn(c, 3, a, pid_a, ep_a + 1, {t: [0]}) == {t: {0: PRODUCER_FENCED}}
        assert retry(lambda: add_offsets_to_txn(c, 3, a, pid_a, ep_a, "g-" + t)) == NONE
        assert add_offsets_to_txn(c, 3, a, pid_a + 1, ep_a, "g-" + t) == INVALID_PRODUCER_ID_MAPPING
        # v4: z's partitions added, a's verified, an unknown id refused.
        err, res = add_partitions_to_txn_v4(c, [(z, pid_z, ep_z, False, {t: [1]}),
                                                 (a, pid_a, ep_a, True, {t: [0, 1]}),
                                                 ("nobody-" + t, 1, 0, False, {t: [0]})])
        assert err == NONE
        assert res == {z: {t: {1: NONE}}, a: {t: {0: NONE, 1: INVALID_TXN_STATE}},
                       "nobody-" + t: {t: {0: INVALID_PRODUCER_ID_MAPPING}}}, res
        assert describe(c, z)["topics"] == {t: [1]}
        assert sorted(describe(c, a)["topics"]) == ["__consumer_offsets", t]
        assert end_txn(c, 3, a, pid_a, ep_a - 1 if ep_a else ep_a + 1, True) == PRODUCER_FENCED
        assert retry(lambda: end_txn(c, 3, a, pid_a, ep_a, True)) == NONE
        assert retry(lambda: end_txn(c, 3, z, pid_z, ep_z, False)) == NONE
        assert wait_stable(c, t, 0) == 1 and wait_stable(c, t, 1) == 1

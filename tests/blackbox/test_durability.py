"""Restarts: clean stop and restart keeps every record and topic; kill -9 in
the middle of an acks=all stream keeps every acknowledged record exactly once
and in order; a data dir formatted for another node.id is refused; a
server.properties given with --config works."""

import os
import struct
import threading
import time

import pytest
from confluent_kafka import Producer

from bb_clients import (Rec, admin, assert_same, ck_consume, ck_produce, create_topic,
                        kp_consume, now_ms, sample_records, unique_topic, wait_topic)


def _all_topics(bootstrap):
    return set(admin(bootstrap).list_topics(timeout=10).topics)


@pytest.mark.deadline(180)
def test_clean_restart_keeps_records_and_topics(broker_factory):
    b = broker_factory()
    ta = create_topic(b.bootstrap, unique_topic("rs-a"), 3)
    tb = create_topic(b.bootstrap, unique_topic("rs-b"), 1)
    tdel = create_topic(b.bootstrap, unique_topic("rs-del"), 1)
    recs_a = [Rec(b"k%d" % i, b"value %d" % i, (("i", b"%d" % i),), now_ms() - 1000 + i,
                  partition=i % 3) for i in range(1500)]
    recs_b = sample_records()
    ck_produce(b.bootstrap, ta, recs_a, timeout=60)
    ck_produce(b.bootstrap, tb, recs_b)
    a = admin(b.bootstrap)  # must outlive the futures
    fs = a.delete_topics([tdel], request_timeout=15)
    fs[tdel].result(timeout=20)
    before_a = ck_consume(b.bootstrap, ta, partitions=range(3), expected=len(recs_a))

    rc = b.stop()
    assert rc == 0, "SIGTERM should be a clean shutdown, exit code %s" % rc
    b.start()

    wait_topic(b.bootstrap, ta, 3)
    wait_topic(b.bootstrap, tb, 1)
    topics = _all_topics(b.bootstrap)
    assert ta in topics and tb in topics
    assert tdel not in topics, "a deleted topic came back after restart"

    after_a = ck_consume(b.bootstrap, ta, partitions=range(3), expected=len(recs_a), timeout=60)
    assert [(r.partition, r.offset) for r in after_a] == [(r.partition, r.offset) for r in before_a]
    assert_same(after_a, before_a)
    assert_same(kp_consume(b.bootstrap, tb, expected=len(recs_b)), recs_b)

    # New records continue the offsets.
    res = ck_produce(b.bootstrap, tb, [Rec(b"after", b"restart", (), now_ms())])
    assert res == [(0, len(recs_b))]

    # And a second restart (now with records written after recovery) too.
    assert b.stop() == 0
    b.start()
    got = ck_consume(b.bootstrap, tb, expected=len(recs_b) + 1)
    assert [r.value for r in got][-1] == b"restart"
    assert_same(got[:-1], recs_b)


def _active_segment(b, topic):
    """Path of partition 0's newest .log file, the one appends go to."""
    d = os.path.join(b.data_dir, topic + "-0")
    return os.path.join(d, max(n for n in os.listdir(d) if n.endswith(".log")))


def _batches_end(path):
    """(where the last whole batch of a .log ends, the file's length): record
    batches are a base offset (8 bytes), a length (4) and that many bytes."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        length = struct.unpack(">i", data[pos + 8:pos + 12])[0]
        if length <= 0 or pos + 12 + length > len(data):
            break
        pos += 12 + length
    return pos, len(data)


# pad=1000: the partition takes tens of megabytes before the kill, in batches
# that span many pages, and the active segment must still end at its last
# whole batch after recovery.
@pytest.mark.slow
@pytest.mark.deadline(240)
@pytest.mark.parametrize("pad", [0, 1000])
def test_kill9_during_acks_all_stream(broker_factory, pad):
    b = broker_factory()
    t = create_topic(b.bootstrap, unique_topic("k9"), 1)
    padding = b"." * pad

    acked = []            # sequence numbers, in delivery-report order
    failed = []
    lock = threading.Lock()
    killed = threading.Event()
    at_kill = {}

    p = Producer({
        "bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2,
        # No retries: a record is either acknowledged once or reported failed,
        # so an acknowledged record can never legitimately appear twice.
        "message.send.max.retries": 0, "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 5,
        "message.timeout.ms": 5000, "socket.timeout.ms": 5000,
        "reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 500,
    })

    def on_delivery(err, msg):
        seq = int(msg.value().split(b":")[0])
        with lock:
            (failed if err else acked).append(seq)

    sent = [0]

    def killer():
        # kill -9 from another thread while the main thread keeps producing.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                n = len(acked)
            if n >= 3000:
                break
            time.sleep(0.001)
        at_kill["sent"] = sent[0]
        with lock:
            at_kill["acked"] = len(acked)
        b.kill9()
        killed.set()

    kt = threading.Thread(target=killer, daemon=True)
    kt.start()
    deadline = time.monotonic() + 60
    stop_at = None
    i = 0
    while stop_at is None or time.monotonic() < stop_at:
        assert time.monotonic() < deadline, "only %d records acknowledged in 60 s" % len(acked)
        try:
            p.produce(t, key=b"k", value=b"%d:payload-%d" % (i, i) + padding, partition=0,
                      on_delivery=on_delivery)
            i += 1
            sent[0] = i
        except BufferError:
            p.poll(0.01)
        if i % 50 == 0:
            p.poll(0)
        if stop_at is None and killed.is_set():
            stop_at = time.monotonic() + 0.3  # keep sending into the dead broker a little
    kt.join(10)
    # Everything still queued fails (broker down, no retries); give it time.
    remaining = p.flush(30)
    assert remaining == 0, "%d records neither acknowledged nor failed" % remaining
    with lock:
        acked_set = list(acked)
    assert len(acked_set) + len(failed) == i
    assert at_kill["sent"] > at_kill["acked"], (
        "the kill did not land mid-stream: %r" % at_kill)

    b.start()
    wait_topic(b.bootstrap, t, 1, timeout=30)
    end, length = _batches_end(_active_segment(b, t))
    assert end == length, "recovery left %d bytes after the last batch" % (length - end)
    got = ck_consume(b.bootstrap, t, expected=len(acked_set), timeout=90)
    seqs = [int(r.value.split(b":")[0]) for r in got]

    print("kill -9 stats: sent %d, acked %d, failed %d; at the kill %r; found %d after restart"
          % (i, len(acked_set), len(failed), at_kill, len(got)))
    assert [r.offset for r in got] == list(range(len(got))), "offset gaps after recovery"
    assert len(seqs) == len(set(seqs)), "duplicated records after kill -9"
    assert seqs == sorted(seqs), "records out of order after kill -9"
    missing = sorted(set(acked_set) - set(seqs))
    assert not missing, ("%d acknowledged records lost by kill -9, first %r (acked %d, "
                         "found %d)" % (len(missing), missing[:10], len(acked_set), len(seqs)))
    # Delivery reports for one partition come back in order.
    assert acked_set == sorted(acked_set)
    for r in got:
        s = int(r.value.split(b":")[0])
        assert r.value == b"%d:payload-%d" % (s, s) + padding

    # The partition keeps working after recovery.
    res = ck_produce(b.bootstrap, t, [Rec(b"k", b"after-recovery", (), now_ms())])
    assert res == [(0, len(got))]


def test_data_dir_of_another_node_id_is_refused(broker_factory):
    b = broker_factory(node_id=1)
    t = create_topic(b.bootstrap, unique_topic("nid"), 1)
    assert b.stop() == 0

    b.node_id = 2
    b.spawn()
    rc = b.wait_exit(20)
    if rc is None:
        b.kill9()
        pytest.fail("gregor started on a data dir formatted for node.id=1 with node.id=2")
    assert rc != 0, "exit code 0 on a node.id mismatch"
    log = b.log_text().split("===== start #2")[-1]
    assert "meta.properties" in log or "node.id" in log, (
        "no clear message about meta.properties/node.id:\n" + log[-3000:])

    # The right node.id still starts and has the data.
    b.node_id = 1
    b.start()
    wait_topic(b.bootstrap, t, 1)


def test_config_file(broker_factory):
    b = broker_factory(use_config_file=True, overrides={"num.partitions": 2})
    t = unique_topic("cfg")
    ck_produce(b.bootstrap, t, [Rec(b"k", b"via auto-create", (), now_ms())])
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert len(md.topics[t].partitions) == 2  # num.partitions from the file
    assert b.stop() == 0
    b.start()
    got = ck_consume(b.bootstrap, t, partitions=range(2), expected=1)
    assert [r.value for r in got] == [b"via auto-create"]

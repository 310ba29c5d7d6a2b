"""Partitions replicated the Kafka way, between real gregor processes: followers
fetch from the leader, the ISR shrinks and grows through AlterPartition, the
high watermark is what the ISR has, acks=all waits for it, and a leader's
death loses nothing that was acknowledged. What is asserted is what a user of
Apache Kafka sees with the same settings, through real clients.
"""

import signal
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

import bb_admin
from bb_broker import SANITIZED
from bb_cluster import FAST_SESSION
from bb_clients import Rec, admin, ck_consume, ck_produce, unique_topic

SLOW = 3 if SANITIZED else 1
# A follower out of touch this long leaves the ISR (Kafka's default is 30 s).
FAST_LAG = dict(FAST_SESSION, **{"replica.lag.time.max.ms": 3000})


def create_topic(bootstrap, name, partitions=1, rf=3, configs=None):
    a = admin(bootstrap)  # must outlive the futures
    fs = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=rf, config=configs or {})], request_timeout=20)
    for f in fs.values():
        f.result(timeout=20)


def partitions_of(bootstrap, topic):
    """{partition: (leader, [replicas], [isr])} from Metadata."""
    t = admin(bootstrap).list_topics(topic=topic, timeout=10).topics[topic]
    assert t.error is None, t.error
    return {p.id: (p.leader, list(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


def wait_state(bootstrap, topic, pred, what, timeout=30):
    def ok():
        try:
            parts = partitions_of(bootstrap, topic)
        except (KafkaException, KeyError, AssertionError):
            return None
        return parts if parts and pred(parts) else None
    return bb_admin.wait_for("%s: %s" % (topic, what), ok, timeout * SLOW)


def full_isr(parts):
    return all(l >= 0 and isr == sorted(reps) for l, reps, isr in parts.values())


def replica_sizes(cluster, topic):
    """{partition: [size in bytes on each live node that has it]} from DescribeLogDirs."""
    out = {}
    for i in cluster.live():
        for (name, p), size in bb_admin.describe_log_dirs(cluster.nodes[i].bootstrap).items():
            if name == topic:
                out.setdefault(p, []).append(size)
    return out


def one_partition_cluster(cluster_factory, prefix, configs=None, rf=3, overrides=FAST_LAG, per_node=None):
    """Three nodes and a one-partition topic with its full ISR: (cluster, bootstrap, topic, leader, replicas)."""
    c = cluster_factory(3, overrides=overrides, per_node=per_node)
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    t = unique_topic(prefix)
    create_topic(b, t, rf=rf, configs=configs)
    (leader, replicas, _), = wait_state(b, t, full_isr, "full ISR").values()
    return c, b, t, leader, replicas


def recs(prefix, n):
    return [Rec(("k%d" % i).encode(), ("%s-%d" % (prefix, i)).encode()) for i in range(n)]


def values(got):
    return [r.value for r in got]


def test_followers_copy_every_record_and_the_isr_stays_full(cluster_factory):
    c = cluster_factory(3, overrides=FAST_LAG)
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    t = unique_topic("repl")
    create_topic(b, t, partitions=3)
    wait_state(b, t, full_isr, "led, full ISR")
    sent = recs("a", 300)
    for p in range(3):
        ck_produce(b, t, sent[p * 100:(p + 1) * 100], default_partition=p, acks="all")
    # Every replica of every partition holds the same bytes: the leader's batches, copied.
    def copied():
        sizes = replica_sizes(c, t)
        return sizes if len(sizes) == 3 and all(len(v) == 3 and len(set(v)) == 1 and v[0] > 0
                                                for v in sizes.values()) else None
    bb_admin.wait_for("every replica of %s holds the same bytes" % t, copied, 20 * SLOW)
    # And the ISR did not shrink meanwhile (followers keep up).
    time.sleep(4)
    assert full_isr(partitions_of(b, t)), partitions_of(b, t)
    for p in range(3):
        got = ck_consume(b, t, partitions=(p,), expected=100)
        assert values(got) == [r.value for r in sent[p * 100:(p + 1) * 100]]


def test_kill9_of_the_leader_loses_no_acknowledged_record(cluster_factory):
    c, b, t, leader, _ = one_partition_cluster(cluster_factory, "failover", configs={"min.insync.replicas": "2"})
    first = recs("before", 200)
    ck_produce(b, t, first, acks="all")
    c.nodes[leader].kill9()
    # A new leader from the ISR; every acknowledged record is on it.
    parts = wait_state(c.bootstrap(), t, lambda ps: ps[0][0] not in (-1, leader), "a new leader")
    assert parts[0][0] != leader
    second = recs("after", 50)
    ck_produce(c.bootstrap(), t, second, acks="all")
    got = ck_consume(c.bootstrap(), t, expected=250)
    assert values(got) == values(first) + values(second)
    # The old leader comes back as a follower, catches up and rejoins the ISR.
    c.nodes[leader].start()
    wait_state(c.bootstrap(), t, lambda ps: ps[0][2] == [1, 2, 3], "the old leader back in the ISR", 40)
    got = ck_consume(c.nodes[leader].bootstrap, t, expected=250) if partitions_of(b, t)[0][0] == leader else got
    assert values(got) == values(first) + values(second)


def test_a_stopped_follower_leaves_the_isr_and_rejoins(cluster_factory):
    c, b, t, leader, replicas = one_partition_cluster(cluster_factory, "isr")
    follower = [r for r in replicas if r != leader][0]
    c.nodes[follower].sigstop()
    try:
        # acks=all goes on with two in sync once the lag time passes.
        ck_produce(c.bootstrap([i for i in c.ids if i != follower]), t, recs("x", 20), acks="all",
                   **{"message.timeout.ms": 30000 * SLOW})
        wait_state(b, t, lambda ps: follower not in ps[0][2], "follower %d out of the ISR" % follower)
    finally:
        c.nodes[follower].sigcont()
    wait_state(b, t, lambda ps: ps[0][2] == sorted(replicas), "follower %d back in the ISR" % follower, 40)


def test_acks_all_below_min_insync_replicas_is_refused_and_acks_1_is_not(cluster_factory):
    c, b, t, leader, replicas = one_partition_cluster(cluster_factory, "minisr", configs={"min.insync.replicas": "3"})
    follower = [r for r in replicas if r != leader][0]
    c.nodes[follower].kill9()
    wait_state(c.bootstrap(), t, lambda ps: len(ps[0][2]) == 2, "ISR of two")
    live = c.bootstrap()
    with pytest.raises(AssertionError, match="NOT_ENOUGH_REPLICAS"):
        ck_produce(live, t, recs("refused", 1), acks="all", retries=0, **{"message.timeout.ms": 5000})
    # acks=1 is written, but (KIP-966) not committed on fewer copies than
    # min.insync.replicas: consumers see it once the third replica is back.
    ck_produce(live, t, recs("one", 3), acks="1")
    assert bb_admin.watermarks(live, t)[1] == 0
    c.nodes[follower].start()
    wait_state(c.bootstrap(), t, lambda ps: len(ps[0][2]) == 3, "ISR of three again", 40)
    assert values(ck_consume(c.bootstrap(), t, expected=3)) == values(recs("one", 3))


def test_consumers_never_see_past_the_high_watermark(cluster_factory):
    # Long enough that the stopped follower stays in the ISR while we look.
    slow = 12000 * SLOW
    c, b, t, leader, replicas = one_partition_cluster(
        cluster_factory, "hw", overrides={"broker.session.timeout.ms": slow, "broker.heartbeat.interval.ms": 500,
                                          "replica.lag.time.max.ms": slow})
    ck_produce(b, t, recs("committed", 5), acks="all")
    follower = [r for r in replicas if r != leader][0]
    c.nodes[follower].sigstop()
    try:
        lb = c.nodes[leader].bootstrap
        # Written by the leader, acknowledged with acks=1, but not on every
        # in-sync replica: not committed.
        ck_produce(lb, t, recs("pending", 5), acks="1", **{"message.timeout.ms": 5000})
        assert bb_admin.watermarks(lb, t)[1] == 5, "ListOffsets latest must be the high watermark"
        got = ck_consume(lb, t, expected=5, timeout=10)
        assert values(got) == values(recs("committed", 5))
    finally:
        c.nodes[follower].sigcont()
    # Once the follower has them, they are there.
    bb_admin.wait_for("high watermark 10", lambda: bb_admin.watermarks(b, t)[1] == 10, 20 * SLOW)
    assert values(ck_consume(b, t, expected=10)) == values(recs("committed", 5)) + values(recs("pending", 5))


def test_reassignment_to_a_new_replica_completes_once_it_caught_up(cluster_factory):
    c, b, t, leader, reps = one_partition_cluster(cluster_factory, "grow", rf=2)
    ck_produce(b, t, recs("r", 100), acks="all")
    spare = ({1, 2, 3} - set(reps)).pop()
    bb_admin.kjs_admin_ok(b, [{"op": "alterPartitionReassignments", "topics": [
        {"topic": t, "partitionAssignment": [{"partition": 0, "replicas": [spare, reps[0]]}]}]}])
    wait_state(b, t, lambda ps: ps[0][1] == [spare, reps[0]] and ps[0][2] == sorted([spare, reps[0]]),
               "replicas %s in sync" % [spare, reps[0]], 40)
    got = ck_consume(b, t, expected=100)
    assert values(got) == values(recs("r", 100))


def offsets_partition(group, partitions):
    """Kafka's partition of __consumer_offsets for a group: abs(hashCode) % n."""
    h = 0
    for ch in group:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def test_committed_offsets_survive_the_loss_of_the_coordinator(cluster_factory):
    from confluent_kafka import Consumer, TopicPartition
    c = cluster_factory(3, overrides=dict(FAST_LAG, **{"offsets.topic.num.partitions": 5}))
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    t = unique_topic("grp")
    create_topic(b, t)
    wait_state(b, t, full_isr, "full ISR")
    ck_produce(b, t, recs("g", 100), acks="all")
    group = "g-" + t

    def consumer(bootstrap):
        return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "socket.timeout.ms": 10000, "fetch.wait.max.ms": 100})

    def consume(cons, n, timeout=30 * SLOW):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        assert len(got) == n, "consumed %d of %d" % (len(got), n)
        return got

    first = consumer(b)
    first.subscribe([t])
    got = consume(first, 50)
    first.commit(offsets=[TopicPartition(t, 0, got[-1].offset() + 1)], asynchronous=False)
    first.close()
    # The coordinator is the leader of the group's __consumer_offsets partition.
    p = offsets_partition(group, 5)
    parts = wait_state(b, "__consumer_offsets", lambda ps: len(ps) == 5 and full_isr(ps), "offsets topic in sync")
    coordinator = parts[p][0]
    c.nodes[coordinator].kill9()
    wait_state(c.bootstrap(), "__consumer_offsets", lambda ps: ps[p][0] not in (-1, coordinator),
               "a new leader for __consumer_offsets-%d" % p)
    # A new member of the group starts where the group committed, on the new coordinator.
    second = consumer(c.bootstrap())
    try:
        second.subscribe([t])
        rest = consume(second, 50)
        assert [m.value() for m in rest] == values(recs("g", 100))[50:]
        committed = second.committed([TopicPartition(t, 0)], timeout=10 * SLOW)
        assert committed[0].offset == 50
    finally:
        second.close()


def test_a_consumer_reads_from_the_replica_in_its_rack(cluster_factory):
    """KIP-392: with replica.selector.class set to the rack-aware selector, a
    consumer with client.rack reads from the in-sync replica in its rack."""
    from bb_clients import run
    racks = {1: "r1", 2: "r2", 3: "r3"}
    c, b, t, leader, replicas = one_partition_cluster(
        cluster_factory, "rack",
        overrides=dict(FAST_LAG, **{"replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector"}),
        per_node={i: {"broker.rack": r} for i, r in racks.items()})
    ck_produce(b, t, recs("r", 20), acks="all")
    follower = [r for r in replicas if r != leader][0]
    p = run(["kcat", "-C", "-b", b, "-t", t, "-p", "0", "-o", "beginning", "-e", "-f", "%s\n",
             "-X", "client.rack=" + racks[follower], "-d", "fetch"], timeout=60)
    assert p.stdout.decode().split() == [v.decode() for v in values(recs("r", 20))]
    log = p.stderr.decode()
    # librdkafka says where it was sent: "migrating from broker <leader> to <follower> ...: preferred replica updated".
    assert "migrating from broker %d to %d" % (leader, follower) in log and "preferred replica updated" in log, \
        log[-3000:]
    # The leader's own rack reads from the leader.
    p = run(["kcat", "-C", "-b", b, "-t", t, "-p", "0", "-o", "beginning", "-e", "-f", "%s\n",
             "-X", "client.rack=" + racks[leader], "-d", "fetch"], timeout=60)
    assert p.stdout.decode().split() == [v.decode() for v in values(recs("r", 20))]
    assert "preferred replica updated" not in p.stderr.decode()


def test_an_out_of_sync_replica_leads_only_with_unclean_election_enabled(cluster_factory):
    """Kafka before 0.11 elected an out-of-sync replica by default and lost
    acknowledged records silently. Here the partition stays offline until
    unclean.leader.election.enable is set for it, and the election says so."""
    c, b, t, leader, replicas = one_partition_cluster(cluster_factory, "unclean", rf=2)
    follower = [r for r in replicas if r != leader][0]
    c.nodes[follower].kill9()
    wait_state(c.bootstrap(), t, lambda ps: ps[0][2] == [leader], "ISR of the leader alone")
    ck_produce(c.bootstrap(), t, recs("only-on-leader", 5), acks="all")
    c.nodes[leader].kill9()
    c.nodes[follower].start()
    wait_state(c.bootstrap(), t, lambda ps: ps[0][0] == -1, "partition offline")
    time.sleep(3 * SLOW)  # the controller's periodic check runs every second
    assert partitions_of(c.bootstrap(), t)[0][0] == -1, "an out-of-sync replica was elected without consent"
    results = bb_admin.incremental_alter_configs(c.nodes[follower].bootstrap, [(2, t, [("unclean.leader.election.enable", 0,
                                                                          "true")])])
    assert [r[0] for r in results] == [0], results
    wait_state(c.bootstrap(), t, lambda ps: ps[0][0] == follower, "the out-of-sync replica elected")
    logs = "".join(c.nodes[i].log_text() for i in c.live())
    assert any("unclean" in line.lower() and t in line for line in logs.splitlines()), "no log line names it"
    # It serves from its own log: what only the old leader had is gone, as the setting warned.
    ck_produce(c.bootstrap(), t, recs("after", 3), acks="all")
    assert values(ck_consume(c.bootstrap(), t, expected=3)) == values(recs("after", 3))


def test_deleted_records_stay_deleted_after_a_failover_and_hw_is_checkpointed(cluster_factory):
    import os
    c, b, t, leader, replicas = one_partition_cluster(cluster_factory, "delrec")
    ck_produce(b, t, recs("d", 50), acks="all")
    out = bb_admin.delete_records(c.nodes[leader].bootstrap, t, {0: 30})
    assert out[0] == (30, 0), out
    # Followers move their log start with the leader's (they learn it from fetches).
    time.sleep(2 * SLOW)
    c.nodes[leader].kill9()
    wait_state(c.bootstrap(), t, lambda ps: ps[0][0] not in (-1, leader), "a new leader")
    low, high = bb_admin.watermarks(c.bootstrap(), t)
    assert (low, high) == (30, 50)
    assert values(ck_consume(c.bootstrap(), t, expected=20)) == values(recs("d", 50))[30:]
    # A follower stopped cleanly wrote its high watermark to its log dir's checkpoint.
    follower = [r for r in c.live() if r in replicas][0]
    c.nodes[follower].stop()
    path = os.path.join(c.nodes[follower].data_dir, "replication-offset-checkpoint")
    lines = open(path).read().split("\n")
    assert lines[0] == "0" and ("%s 0 50" % t) in lines, lines

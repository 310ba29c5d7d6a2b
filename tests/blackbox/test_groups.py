"""Consumer groups and committed offsets with real clients: librdkafka
(confluent-kafka, kcat), kafka-python and kafkajs.

Every broker here runs with group.initial.rebalance.delay.ms=0 and a low
group.min.session.timeout.ms so that rebalances and session expiry take
seconds, and every wait is bounded.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from bb_clients import (JS_DIR, ck_produce, create_topic, kjs_available, run,
                        unique_topic, Rec)

GROUP_OVERRIDES = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "num.partitions": "1",
}
SESSION_MS = 4000


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(overrides=GROUP_OVERRIDES)


def produce_values(bootstrap, topic, values, partitions):
    """Produce values round-robin over partitions; returns {value: partition}."""
    recs = [Rec(None, v.encode(), (), None, i % partitions) for i, v in enumerate(values)]
    ck_produce(bootstrap, topic, recs)
    return {v: i % partitions for i, v in enumerate(values)}


def group_consumer(bootstrap, group, strategy="range", **conf):
    c = {"bootstrap.servers": bootstrap, "group.id": group,
         "auto.offset.reset": "earliest", "enable.auto.commit": False,
         "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 300,
         "partition.assignment.strategy": strategy,
         "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000,
         "topic.metadata.refresh.interval.ms": 5000}
    c.update(conf)
    return Consumer(c)


class Member:
    """A confluent consumer in a group, polled by the test thread. It commits
    after processing each message (so, in steady state, nothing is read twice)."""

    def __init__(self, bootstrap, group, topic, strategy="range", name=None, **conf):
        self.name = name or "m"
        self.revoked = 0
        self.c = group_consumer(bootstrap, group, strategy, **conf)
        self.c.subscribe([topic], on_revoke=self._on_revoke)
        self.values = []
        self.closed = False

    def _on_revoke(self, consumer, partitions):
        if partitions:
            self.revoked += 1

    def poll(self, timeout=0.05):
        if self.closed:
            return
        m = self.c.poll(timeout)
        if m is None:
            return
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                return
            raise AssertionError("%s: consumer error %s" % (self.name, m.error()))
        self.values.append(m.value().decode())
        self.c.commit(message=m, asynchronous=False)

    def assignment(self):
        return set() if self.closed else {tp.partition for tp in self.c.assignment()}

    def close(self):
        if not self.closed:
            self.c.close()
            self.closed = True


def poll_until(members, cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.poll(0.02)
        if cond():
            return
    raise AssertionError("timed out after %ss waiting for %s; assignments %s, consumed %s" % (
        timeout, what, {m.name: sorted(m.assignment()) for m in members},
        {m.name: len(m.values) for m in members}))


def balanced(members, partitions):
    live = [m for m in members if not m.closed]
    sets = [m.assignment() for m in live]
    owned = [p for s in sets for p in s]
    return (sorted(owned) == list(range(partitions))          # each partition exactly once
            and all(len(s) > 0 for s in sets[:partitions]))   # everyone has work


def consumed(members):
    return [v for m in members for v in m.values]


# ------------------------------------------------------------------ librdkafka


def test_groups_one_then_three_consumers_share_six_partitions(gbroker):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp"), 6)
    group = unique_topic("g")
    first = ["a%d" % i for i in range(60)]
    produce_values(b, t, first, 6)

    m1 = Member(b, group, t, name="m1")
    members = [m1]
    try:
        poll_until(members, lambda: balanced(members, 6) and len(consumed(members)) >= 60, 30,
                   "one consumer owning all six partitions")
        assert m1.assignment() == set(range(6))

        m2 = Member(b, group, t, name="m2")
        m3 = Member(b, group, t, name="m3")
        members += [m2, m3]
        poll_until(members, lambda: balanced(members, 6) and all(len(m.assignment()) == 2 for m in members),
                   30, "three consumers with two partitions each")

        second = ["b%d" % i for i in range(60)]
        produce_values(b, t, second, 6)
        poll_until(members, lambda: set(consumed(members)) >= set(first + second), 30, "all records")
        values = consumed(members)
        assert sorted(values) == sorted(first + second), "lost or duplicated records"
        # Each member read only its own partitions' records after the rebalance.
        owners = {p: m.name for m in members for p in m.assignment()}
        for m in members:
            for v in m.values:
                if v.startswith("b"):
                    assert owners[int(v[1:]) % 6] == m.name
    finally:
        for m in members:
            m.close()


def test_groups_leave_crash_and_join_lose_nothing(gbroker, tmp_path):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-churn"), 6)
    group = unique_topic("g")

    # A member in another process that we will kill -9 (a crash: no LeaveGroup).
    out = tmp_path / "victim.txt"
    script = r"""
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "session.timeout.ms": %d, "heartbeat.interval.ms": 300,
              "fetch.wait.max.ms": 100})
c.subscribe([sys.argv[3]])
with open(sys.argv[4], "a") as f:
    while True:
        m = c.poll(0.05)
        if m is None or m.error():
            continue
        f.write(m.value().decode() + "\n"); f.flush()
        c.commit(message=m, asynchronous=False)
""" % SESSION_MS
    victim = subprocess.Popen([sys.executable, "-c", script, b, group, t, str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    m1 = Member(b, group, t, name="m1")
    m2 = Member(b, group, t, name="m2")
    members = [m1, m2]
    produced = []
    try:
        batch = ["w%d" % i for i in range(60)]
        produced += batch
        produce_values(b, t, batch, 6)

        def victim_values():
            return out.read_text().split() if out.exists() else []

        poll_until(members, lambda: set(consumed(members)) | set(victim_values()) >= set(produced)
                   and len(m1.assignment()) + len(m2.assignment()) == 4, 40,
                   "three members consuming")

        # Steady state with commits after processing: nothing read twice.
        all_values = consumed(members) + victim_values()
        assert sorted(all_values) == sorted(produced)

        # The crash: its partitions move once its session times out.
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        batch = ["x%d" % i for i in range(60)]
        produced += batch
        produce_values(b, t, batch, 6)
        poll_until(members, lambda: balanced(members, 6) and set(consumed(members)) | set(victim_values())
                   >= set(produced), 40, "the survivors to take over after the session timeout")

        # A clean leave: the other member takes everything, nothing read twice.
        before = len(consumed(members))
        m2.close()
        batch = ["y%d" % i for i in range(30)]
        produced += batch
        produce_values(b, t, batch, 6)
        poll_until([m1], lambda: m1.assignment() == set(range(6)) and set(m1.values) >= set(batch), 30,
                   "m1 to own all partitions after m2 left")

        # And a join.
        m3 = Member(b, group, t, name="m3")
        members = [m1, m3]
        batch = ["z%d" % i for i in range(30)]
        produced += batch
        produce_values(b, t, batch, 6)
        poll_until(members, lambda: balanced(members, 6) and set(m1.values + m3.values + m2.values)
                   >= set(produced) - set(victim_values()), 30, "m3 to join")
        got = m1.values + m2.values + m3.values + victim_values()
        assert set(got) == set(produced), "lost records: %s" % sorted(set(produced) - set(got))[:10]
        # Only the crash may cause re-reads (of what the victim read but had not committed).
        dups = {v for v in got if got.count(v) > 1}
        assert all(v.startswith("w") or v.startswith("x") for v in dups), sorted(dups)[:10]
        assert before <= len(consumed([m1, m2]))
    finally:
        if victim.poll() is None:
            victim.kill()
        for m in members + [m2]:
            m.close()


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_groups_librdkafka_assignors(gbroker, strategy):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-" + strategy), 6)
    group = unique_topic("g")
    values = ["v%d" % i for i in range(36)]
    produce_values(b, t, values, 6)
    members = [Member(b, group, t, strategy, name="m%d" % i) for i in range(2)]
    try:
        poll_until(members, lambda: balanced(members, 6) and all(len(m.assignment()) == 3 for m in members)
                   and sorted(consumed(members)) == sorted(values), 40,
                   "two %s members with three partitions each" % strategy)
        if strategy == "roundrobin":
            assert {frozenset(m.assignment()) for m in members} == {frozenset({0, 2, 4}), frozenset({1, 3, 5})}
        if strategy == "range":
            assert {frozenset(m.assignment()) for m in members} == {frozenset({0, 1, 2}), frozenset({3, 4, 5})}
    finally:
        for m in members:
            m.close()


def test_groups_committed_offsets_survive_consumer_and_broker_restarts(gbroker):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-durable"), 3)
    group = unique_topic("g")
    values = ["d%d" % i for i in range(90)]
    produce_values(b, t, values, 3)

    def consume_some(n):
        m = Member(b, group, t, name="c")
        try:
            poll_until([m], lambda: len(m.values) >= n, 30, "%d records" % n)
            return m.values
        finally:
            m.close()

    def committed():
        c = group_consumer(b, group)
        try:
            return {tp.partition: tp.offset for tp in
                    c.committed([TopicPartition(t, p) for p in range(3)], timeout=10)}
        finally:
            c.close()

    seen = consume_some(20)
    offsets = committed()
    # librdkafka reports "no commit" as -1001.
    assert sum(max(o, 0) for o in offsets.values()) == len(seen)

    # Consumer restart: resume exactly after what was committed.
    seen += consume_some(20)
    assert len(set(seen)) == len(seen) == 40

    # Clean broker restart.
    offsets = committed()
    gbroker.restart()
    assert committed() == offsets
    seen += consume_some(20)
    assert len(set(seen)) == len(seen) == 60

    # kill -9 of the broker.
    offsets = committed()
    gbroker.kill9()
    gbroker.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            got = committed()
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert got == offsets
    rest = []
    m = Member(b, group, t, name="c")
    try:
        poll_until([m], lambda: len(seen) + len(m.values) >= 90, 30, "the rest")
        rest = m.values
    finally:
        m.close()
    assert sorted(seen + rest) == sorted(values)


def test_groups_auto_offset_reset(gbroker):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-reset"), 1)
    produce_values(b, t, ["old%d" % i for i in range(5)], 1)

    # latest: only records produced after the assignment.
    m = Member(b, unique_topic("g"), t, name="latest", **{"auto.offset.reset": "latest"})
    try:
        poll_until([m], lambda: m.assignment() == {0}, 20, "assignment")
        # Wait for the position to be resolved before producing.
        time.sleep(1.0)
        for _ in range(10):
            m.poll(0.05)
        produce_values(b, t, ["new%d" % i for i in range(3)], 1)
        poll_until([m], lambda: len(m.values) >= 3, 20, "new records")
        assert m.values == ["new0", "new1", "new2"]
    finally:
        m.close()

    # none (librdkafka spells it "error"): no committed offset is an error for the client.
    c = group_consumer(b, unique_topic("g"), **{"auto.offset.reset": "error"})
    try:
        c.subscribe([t])
        deadline = time.monotonic() + 20
        err = None
        while time.monotonic() < deadline and err is None:
            msg = c.poll(0.1)
            if msg is not None and msg.error() and msg.error().code() != KafkaError._PARTITION_EOF:
                err = msg.error()
            elif msg is not None and not msg.error():
                raise AssertionError("auto.offset.reset=error consumed %r" % msg.value())
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()

    # kafka-python's "none" raises NoOffsetForPartitionError.
    from kafka import KafkaConsumer
    from kafka.consumer.fetcher import NoOffsetForPartitionError
    kc = KafkaConsumer(t, bootstrap_servers=b, group_id=unique_topic("g"), auto_offset_reset="none",
                       enable_auto_commit=False, session_timeout_ms=6000, request_timeout_ms=15000)
    try:
        with pytest.raises(NoOffsetForPartitionError):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                kc.poll(timeout_ms=200)
    finally:
        kc.close()


def test_groups_standalone_consumer_commits_for_a_group(gbroker):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-solo"), 2)
    group = unique_topic("g")
    c = group_consumer(b, group)
    try:
        c.assign([TopicPartition(t, 0, 0), TopicPartition(t, 1, 0)])
        c.commit(offsets=[TopicPartition(t, 0, 7), TopicPartition(t, 1, 3)], asynchronous=False)
        got = c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=10)
        assert [tp.offset for tp in got] == [7, 3]
    finally:
        c.close()
    # A partition without a commit reads back as "no offset" (-1001 in librdkafka).
    c = group_consumer(b, unique_topic("g"))
    try:
        got = c.committed([TopicPartition(t, 0)], timeout=10)
        assert got[0].offset == -1001
    finally:
        c.close()


def test_groups_static_members_rejoin_without_rebalance(gbroker):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-static"), 4)
    group = unique_topic("g")
    produce_values(b, t, ["s%d" % i for i in range(8)], 4)
    conf = {"session.timeout.ms": 10000}
    a = Member(b, group, t, name="a", **{"group.instance.id": "inst-a"}, **conf)
    bm = Member(b, group, t, name="b", **{"group.instance.id": "inst-b"}, **conf)
    members = [a, bm]
    try:
        poll_until(members, lambda: balanced(members, 4) and len(consumed(members)) >= 8, 30, "two static members")
        a_parts = a.assignment()
        b_parts = bm.assignment()
        revokes = a.revoked
        log_before = gbroker.log_text().count("preparing to rebalance group " + group)

        # b restarts (static members send no LeaveGroup) and rejoins under the same instance id.
        bm.close()
        bm2 = Member(b, group, t, name="b2", **{"group.instance.id": "inst-b"}, **conf)
        members = [a, bm2]
        poll_until(members, lambda: bm2.assignment() == b_parts, 20, "b to get its partitions back")
        for _ in range(20):
            a.poll(0.05)
        assert a.assignment() == a_parts
        assert a.revoked == revokes, "a's partitions were revoked: a rebalance happened"
        assert gbroker.log_text().count("preparing to rebalance group " + group) == log_before
    finally:
        for m in members + [bm]:
            m.close()


def test_groups_kcat_balanced_consumer(gbroker):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-kcat"), 3)
    values = ["k%d" % i for i in range(30)]
    produce_values(b, t, values, 3)
    p = run(["kcat", "-b", b, "-G", unique_topic("g"), "-o", "beginning", "-e", "-q",
             "-f", "%s\\n", "-X", "session.timeout.ms=6000", t], timeout=60)
    assert sorted(p.stdout.decode().split()) == sorted(values)


# ------------------------------------------------------------------ admin


def test_groups_list_describe_delete_with_admin_clients(gbroker):
    from kafka import KafkaAdminClient
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-admin"), 2)
    produce_values(b, t, ["a%d" % i for i in range(4)], 2)
    active = unique_topic("g-active")
    idle = unique_topic("g-idle")
    m = Member(b, active, t, name="m")
    try:
        poll_until([m], lambda: len(m.values) >= 4, 30, "the active member")
        c = group_consumer(b, idle)
        c.commit(offsets=[TopicPartition(t, 0, 2)], asynchronous=False)
        c.close()

        # confluent-kafka (ListGroups / DescribeGroups through librdkafka)
        from confluent_kafka.admin import AdminClient
        groups = {g.id: g for g in AdminClient({"bootstrap.servers": b}).list_groups(timeout=10)}
        assert groups[active].state == "Stable" and groups[active].protocol == "range"
        assert len(groups[active].members) == 1
        assert groups[idle].state == "Empty"

        ka = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=10000)
        try:
            listed = dict(ka.list_consumer_groups())
            assert listed[active] == "consumer" and idle in listed
            desc = {d.group: d for d in ka.describe_consumer_groups([active, idle])}
            assert desc[active].state == "Stable"
            assert desc[active].protocol == "range"
            assert len(desc[active].members) == 1
            assert desc[idle].state == "Empty"
            offs = ka.list_consumer_group_offsets(idle)
            assert {tp.partition: o.offset for tp, o in offs.items()} == {0: 2}
            res = dict(ka.delete_consumer_groups([active, idle]))
            assert res[idle] is None or getattr(res[idle], "errno", 0) == 0, res
            assert res[active] is not None and res[active].errno == 68, res  # NON_EMPTY_GROUP
            assert idle not in dict(ka.list_consumer_groups())
            assert ka.list_consumer_group_offsets(idle) == {}
        finally:
            ka.close()
    finally:
        m.close()


# ------------------------------------------------------------------ kafka-python


def test_groups_kafka_python_group(gbroker):
    import threading
    from kafka import KafkaConsumer
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-kp"), 4)
    group = unique_topic("g")
    values = ["p%d" % i for i in range(40)]
    produce_values(b, t, values, 4)
    got = {0: [], 1: []}
    parts = {0: set(), 1: set()}
    stop = threading.Event()
    errors = []

    # kafka-python joins inside poll(), blocking until the rebalance
    # completes: each consumer needs its own thread.
    def run(i):
        try:
            c = KafkaConsumer(t, bootstrap_servers=b, group_id=group, auto_offset_reset="earliest",
                              enable_auto_commit=False, session_timeout_ms=6000,
                              heartbeat_interval_ms=500, fetch_max_wait_ms=100,
                              max_poll_interval_ms=10000, request_timeout_ms=15000)
            try:
                while not stop.is_set():
                    for tp, msgs in c.poll(timeout_ms=100).items():
                        got[i] += [m.value.decode() for m in msgs]
                        c.commit()
                    parts[i] = {tp.partition for tp in c.assignment()}
            finally:
                c.close()
        except Exception as e:  # reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for th in threads:
        th.start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not errors:
            if sorted(got[0] + got[1]) == sorted(values) and len(parts[0]) == 2 and len(parts[1]) == 2:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for th in threads:
            th.join(20)
    assert not errors, errors
    assert sorted(parts[0] | parts[1]) == [0, 1, 2, 3] and not parts[0] & parts[1], parts
    assert sorted(got[0] + got[1]) == sorted(values)
    # Their commits are visible to another client.
    c = group_consumer(b, group)
    try:
        offs = c.committed([TopicPartition(t, p) for p in range(4)], timeout=10)
        assert sum(tp.offset for tp in offs) == 40
    finally:
        c.close()


# ------------------------------------------------------------------ kafkajs


def kjs_groups(bootstrap, steps, timeout=90):
    req = json.dumps({"brokers": [bootstrap], "steps": steps})
    p = subprocess.run(["node", os.path.join(JS_DIR, "kjs_groups.js")], input=req.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, cwd=JS_DIR)
    lines = [l for l in p.stdout.decode().splitlines() if l.startswith("KJS_RESULT ")]
    assert p.returncode == 0 and lines, "kjs_groups.js exited %d\n%s\n%s" % (
        p.returncode, p.stdout.decode()[-2000:], p.stderr.decode()[-3000:])
    results = json.loads(lines[-1][len("KJS_RESULT "):])
    for s, r in zip(steps, results):
        assert "error" not in r, "kafkajs %s failed: %r" % (s["op"], r["error"])
    return [r["ok"] for r in results]


@pytest.mark.skipif(not kjs_available(), reason="kafkajs not installed")
def test_groups_kafkajs_group_and_admin(gbroker):
    b = gbroker.bootstrap
    t = create_topic(b, unique_topic("grp-kjs"), 4)
    group = unique_topic("g")
    values = ["j%d" % i for i in range(40)]
    produce_values(b, t, values, 4)
    res, listed, desc, offs = kjs_groups(b, [
        {"op": "consume", "groupId": group, "topic": t, "expected": 40, "members": 2,
         "partitions": 4, "timeoutMs": 40000},
        {"op": "listGroups"},
        {"op": "describeGroups", "groupIds": [group]},
        {"op": "fetchOffsets", "groupId": group, "topics": [t]},
    ])
    assert sorted(m["value"] for m in res["messages"]) == sorted(values)
    owned = sorted(p for ps in res["assignments"].values() for p in ps)
    assert owned == [0, 1, 2, 3], res["assignments"]
    assert group in [g["groupId"] for g in listed["groups"]]
    assert desc["groups"][0]["state"] == "Empty"  # both members left on disconnect
    parts = offs[0]["partitions"]
    assert sum(int(p["offset"]) for p in parts) == 40, parts
    deleted, = kjs_groups(b, [{"op": "deleteGroups", "groupIds": [group]}])
    assert deleted[0]["errorCode"] == 0

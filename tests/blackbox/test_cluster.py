"""Three real gregor processes on 127.0.0.1 form one KRaft cluster: every node
is a broker and a controller voter. What is asserted is what a user of Apache
Kafka would see with the same settings: the cluster lists its brokers and its
active controller through kcat, confluent-kafka and kafkajs; replicas land on
distinct brokers with leaders spread; the quorum survives kill -9 and SIGSTOP
of a voter; restarts lose no metadata; a broker that stops heartbeating is
fenced and comes back; a node of another cluster is refused by name.

Data replication (followers, ISR, acks=all, leader failover) is tested in
test_replication.py.
"""

import os
import re
import signal
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

import bb_admin
from bb_broker import SANITIZED, Broker, free_port, gregor_bin
from bb_cluster import FAST_SESSION
from bb_clients import (Rec, admin, ck_consume, ck_produce, kcat_produce, kjs_available, now_ms, run,
                        unique_topic, wait_topic)
from bb_wire import Conn, api_versions_v0, compact_string, frame, i16, i32, i64, request_header, uvarint

INVALID_REPLICATION_FACTOR = 38
SLOW = 3 if SANITIZED else 1
CLUSTER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")


# ------------------------------------------------------------------ helpers


def create_topics(bootstrap, topics, timeout=20):
    """topics: [(name, partitions, replication_factor)]; raises the first failure."""
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(n, num_partitions=p, replication_factor=rf) for n, p, rf in topics],
                         request_timeout=timeout)
    for f in fs.values():
        f.result(timeout=timeout)


def partitions_of(bootstrap, topic):
    """{partition: (leader, [replicas], [isr])} as confluent-kafka's metadata shows it."""
    md = admin(bootstrap).list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, "metadata for %s: %s" % (topic, t.error)
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}


def wait_partitions(bootstrap, topic, n, pred=lambda parts: True, timeout=30):
    def ready():
        try:
            parts = partitions_of(bootstrap, topic)
        except (KeyError, KafkaException, AssertionError):
            return None
        if len(parts) == n and all(l >= 0 for l, _, _ in parts.values()) and pred(parts):
            return parts
        return None
    return bb_admin.wait_for("%s with %d led partitions via %s" % (topic, n, bootstrap), ready, timeout)


def kcat_brokers(bootstrap):
    """kcat -L: ({broker id}, controller id or None)."""
    out = run(["kcat", "-b", bootstrap, "-L", "-m", "10"], timeout=30).stdout.decode()
    ids = set()
    controller = None
    for m in re.finditer(r"broker (\d+) at \S+( \(controller\))?", out):
        ids.add(int(m.group(1)))
        if m.group(2):
            assert controller is None, "kcat shows two controllers:\n" + out
            controller = int(m.group(1))
    assert re.search(r"%d brokers:" % len(ids), out), out
    return ids, controller


def kjs_describe_cluster(bootstrap):
    return bb_admin.kjs_admin_ok(bootstrap, [{"op": "describeCluster"}])[0]


def quorum_replication(cluster, i):
    """`gregor metadata-quorum describe --replication` via node i: {node id: status}."""
    p = run([gregor_bin(), "metadata-quorum", "--bootstrap-server", cluster.nodes[i].bootstrap,
             "describe", "--replication"], timeout=30)
    rows = {}
    for line in p.stdout.decode().splitlines()[1:]:
        cols = line.split()
        if cols and cols[0].isdigit():
            rows[int(cols[0])] = cols[-1]
    return rows


def wait_log(broker, pattern, timeout=30):
    rx = re.compile(pattern)
    return bb_admin.wait_for("log line /%s/ from %r" % (pattern, broker),
                             lambda: rx.search(broker.log_text()), timeout)


def create_until_ok(bootstrap, name, timeout):
    """CreateTopics through one node until it succeeds; returns seconds taken."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        try:
            create_topics(bootstrap, [(name, 1, 1)], timeout=10)
            return time.monotonic() - start
        except KafkaException as e:
            if e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return time.monotonic() - start
            last = e
        time.sleep(0.2)
    raise AssertionError("CreateTopics via %s did not succeed within %ds: %s" % (bootstrap, timeout, last))


# ------------------------------------------------------------------ formation


def test_three_nodes_form_one_cluster_every_client_sees_it(cluster_factory):
    c = cluster_factory(3)
    seen = c.wait_brokers({1, 2, 3})
    controllers = set(seen.values())
    assert len(controllers) == 1, "nodes disagree on the controller: %r" % seen
    controller = controllers.pop()
    leader, epoch = c.wait_quorum_leader()
    assert controller == leader and epoch >= 1

    # One cluster id, derived from controller.quorum.voters, from every node.
    ids = {c.describe_cluster(i)[0] for i in c.ids}
    assert len(ids) == 1 and CLUSTER_ID_RE.match(ids.pop())

    for i in c.ids:
        b = c.nodes[i].bootstrap
        brokers, kcat_controller = kcat_brokers(b)
        assert brokers == {1, 2, 3} and kcat_controller == controller
        md = admin(b).list_topics(timeout=10)
        assert set(md.brokers) == {1, 2, 3}
        assert md.controller_id == controller
        assert {md.brokers[n].port for n in md.brokers} == {c.nodes[n].port for n in c.ids}
    if kjs_available():
        d = kjs_describe_cluster(c.bootstrap([2]))
        assert sorted(x["nodeId"] for x in d["brokers"]) == [1, 2, 3]
        assert d["controller"] == controller

    st = c.quorum_status(3)
    assert int(st["LeaderId"]) == controller
    assert re.sub(r"\s", "", st["CurrentVoters"]).startswith("[1,2,3]") or \
        sorted(int(x) for x in re.findall(r"\d+", st["CurrentVoters"])[:3]) == [1, 2, 3], st
    rows = bb_admin.wait_for("replication rows with one Leader and two Followers",
                             lambda: (lambda r: r if sorted(r.values()) == ["Follower", "Follower", "Leader"]
                                      else None)(quorum_replication(c, 1)), 20)
    assert rows[controller] == "Leader"


def test_replicas_on_distinct_brokers_leaders_spread(cluster_factory):
    c = cluster_factory(3, overrides={"default.replication.factor": 2})
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    t = unique_topic("rf3")
    create_topics(b, [(t, 6, 3)])
    parts = wait_partitions(b, t, 6)
    leaders = {}
    for p, (leader, replicas, isr) in parts.items():
        assert sorted(replicas) == [1, 2, 3], "partition %d replicas %r" % (p, replicas)
        assert leader == replicas[0], "partition %d: leader %d is not the preferred %r" % (p, leader, replicas)
        leaders[leader] = leaders.get(leader, 0) + 1
    assert leaders == {1: 2, 2: 2, 3: 2}, "leaders not spread evenly: %r" % leaders

    # Every node gives the same assignment.
    for i in c.ids:
        assert wait_partitions(c.nodes[i].bootstrap, t, 6,
                               lambda ps: {k: v[:2] for k, v in ps.items()} ==
                                          {k: v[:2] for k, v in parts.items()}, 20)

    # More replicas than brokers: INVALID_REPLICATION_FACTOR, and nothing created.
    with pytest.raises(KafkaException) as e:
        create_topics(b, [(unique_topic("rf4"), 1, 4)])
    assert e.value.args[0].code() == INVALID_REPLICATION_FACTOR

    # An auto-created topic takes default.replication.factor (2).
    auto = unique_topic("auto")
    kcat_produce(c.nodes[3].bootstrap, auto, [(b"k", b"v")], partition=0)
    for _, replicas, _ in wait_partitions(b, auto, 1).values():
        assert len(set(replicas)) == 2

    # Produce to every partition through whichever broker leads it, read back.
    recs = [Rec(b"k%d" % i, b"value-%d" % i, (), now_ms(), i % 6) for i in range(60)]
    ck_produce(b, t, recs, acks=1)
    got = ck_consume(b, t, partitions=range(6), expected=60)
    assert sorted((r.partition, r.value) for r in got) == sorted((r.partition, r.value) for r in recs)


def test_rack_aware_placement(cluster_factory):
    """broker.rack: replicas spread over racks first, as Kafka places them."""
    c = cluster_factory(3, per_node={1: {"broker.rack": "r1"}, 2: {"broker.rack": "r1"},
                                     3: {"broker.rack": "r2"}})
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    t = unique_topic("racks")
    create_topics(b, [(t, 6, 2)])
    parts = wait_partitions(b, t, 6)
    for p, (_, replicas, _) in parts.items():
        assert 3 in replicas and len(set(replicas)) == 2, "partition %d not in both racks: %r" % (p, replicas)
    leaders = [l for l, _, _ in parts.values()]
    assert set(leaders) == {1, 2, 3}, "leaders not spread: %r" % leaders


# ------------------------------------------------------------------ controller failover


def test_kill9_of_active_controller_elects_another(cluster_factory):
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    old, old_epoch = c.wait_quorum_leader()
    create_topics(c.bootstrap(), [(unique_topic("before"), 3, 3)])

    c.nodes[old].kill9()
    killed_at = time.monotonic()
    new, new_epoch = c.wait_quorum_leader(exclude={old}, timeout=30 * SLOW)
    assert new != old and new_epoch > old_epoch
    # CreateTopics through each remaining node works again within seconds.
    taken = []
    for i in c.live():
        taken.append(create_until_ok(c.nodes[i].bootstrap, unique_topic("after"), 30 * SLOW))
    print("new controller %d (epoch %d) %.1fs after kill -9; CreateTopics ok after %s"
          % (new, new_epoch, time.monotonic() - killed_at, ["%.1fs" % t for t in taken]))
    assert time.monotonic() - killed_at < 20 * SLOW

    # Real clients see the new controller (the dead broker goes once fenced).
    live = set(c.live())
    c.wait_brokers(live, timeout=30 * SLOW, controller_not=old)
    for i in live:
        ids, ctl = kcat_brokers(c.nodes[i].bootstrap)
        assert ctl == new and ids == live
        assert admin(c.nodes[i].bootstrap).list_topics(timeout=10).controller_id == new
    if kjs_available():
        assert kjs_describe_cluster(c.bootstrap())["controller"] == new

    # The killed node comes back and rejoins as a broker and a voter.
    c.nodes[old].start(timeout=60 * SLOW)
    c.wait_brokers({1, 2, 3}, timeout=60 * SLOW)
    rows = bb_admin.wait_for("node %d following again" % old,
                             lambda: (lambda r: r if r.get(old) == "Follower" else None)(quorum_replication(c, new)),
                             30 * SLOW)
    assert rows[new] == "Leader"


def test_sigstop_of_a_follower_voter_fences_it_and_sigcont_unfences(cluster_factory):
    c = cluster_factory(3, overrides=FAST_SESSION)
    c.wait_brokers({1, 2, 3})
    leader, epoch = c.wait_quorum_leader()
    t = unique_topic("fence")
    create_topics(c.bootstrap(), [(t, 6, 3)])
    wait_partitions(c.bootstrap(), t, 6)
    victim = next(i for i in c.ids if i != leader)
    others = [i for i in c.ids if i != victim]

    c.nodes[victim].sigstop()
    try:
        # Fenced after broker.session.timeout.ms: no longer listed, leads nothing.
        c.wait_brokers(set(others), via=others, timeout=30 * SLOW)
        parts = wait_partitions(c.nodes[leader].bootstrap, t, 6,
                                lambda ps: all(l != victim for l, _, _ in ps.values()), 30 * SLOW)
        assert all(victim in r for _, r, _ in parts.values())  # still a replica, just not a leader
        # The quorum keeps working without it.
        create_until_ok(c.nodes[others[1]].bootstrap, unique_topic("during"), 20 * SLOW)
        wait_log(c.nodes[leader], r"fenced broker %d: no heartbeat" % victim, 10)
    finally:
        c.nodes[victim].sigcont()

    c.wait_brokers({1, 2, 3}, timeout=30 * SLOW)
    assert c.wait_quorum_leader() == (leader, epoch), "a returning follower must not disturb the leader"
    wait_log(c.nodes[leader], r"unfenced broker %d" % victim, 10)


def test_sigstop_of_the_quorum_leader_elects_another_and_it_rejoins(cluster_factory):
    c = cluster_factory(3, overrides=FAST_SESSION)
    c.wait_brokers({1, 2, 3})
    leader, epoch = c.wait_quorum_leader()
    others = [i for i in c.ids if i != leader]
    c.nodes[leader].sigstop()
    try:
        new, new_epoch = c.wait_quorum_leader(via=others, exclude={leader}, timeout=30 * SLOW)
        assert new_epoch > epoch
        c.wait_brokers(set(others), via=others, timeout=30 * SLOW)
        create_until_ok(c.nodes[others[0]].bootstrap, unique_topic("stopped"), 20 * SLOW)
    finally:
        c.nodes[leader].sigcont()
    # The old leader learns the new epoch and follows; everyone agrees.
    def agreed():
        views = {i: c.quorum_status(i) for i in c.ids}
        pairs = {(s["LeaderId"], s["LeaderEpoch"]) for s in views.values() if s}
        return pairs if len(pairs) == 1 and all(views.values()) else None
    pairs = bb_admin.wait_for("every node naming one leader", agreed, 30 * SLOW)
    assert pairs == {(str(new), str(new_epoch))}
    c.wait_brokers({1, 2, 3}, timeout=30 * SLOW)


# ------------------------------------------------------------------ restarts


@pytest.mark.slow
@pytest.mark.deadline(300)
def test_rolling_restarts_lose_no_metadata(cluster_factory):
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    topics = {unique_topic("keep%d" % i): (i + 1, min(3, i + 1)) for i in range(4)}
    create_topics(b, [(n, p, rf) for n, (p, rf) in topics.items()])
    from confluent_kafka.admin import ConfigResource
    cfg_topic = next(iter(topics))
    a = admin(b)  # must outlive its futures
    fs = a.alter_configs([ConfigResource("topic", cfg_topic, set_config={"retention.ms": "123456789"})])
    for f in fs.values():
        f.result(20)
    before = {t: {p: sorted(r) for p, (_, r, _) in wait_partitions(b, t, n).items()} for t, (n, _) in topics.items()}

    def check(via):
        for t, (n, _) in topics.items():
            parts = wait_partitions(c.nodes[via].bootstrap, t, n, timeout=60 * SLOW)
            assert {p: sorted(r) for p, (_, r, _) in parts.items()} == before[t]
        cfg = bb_admin.describe_topic(c.nodes[via].bootstrap, cfg_topic)
        assert cfg["retention.ms"].value == "123456789"

    # One by one: a clean stop (SIGTERM), then a crash (kill -9).
    for how in ("sigterm", "kill9"):
        for i in c.ids:
            if how == "sigterm":
                assert c.nodes[i].stop() == 0
            else:
                c.nodes[i].kill9()
            c.nodes[i].start(timeout=60 * SLOW)
            c.wait_brokers({1, 2, 3}, timeout=60 * SLOW)
            check(i)
    c.wait_quorum_leader()


def test_a_node_behind_the_snapshot_catches_up(cluster_factory):
    """Snapshots of the metadata image let the leader drop the log before them;
    a node that was down meanwhile gets the snapshot (FetchSnapshot) and then
    the rest of the log, and knows every topic."""
    c = cluster_factory(3, overrides={"metadata.log.max.record.bytes.between.snapshots": 2048})
    c.wait_brokers({1, 2, 3})
    leader, _ = c.wait_quorum_leader()
    away = next(i for i in c.ids if i != leader)
    assert c.nodes[away].stop() == 0
    mark = len(c.nodes[away].log_text())
    names = [unique_topic("snap%d" % i) for i in range(30)]
    via = c.nodes[leader].bootstrap
    create_topics(via, [(n, 2, 2) for n in names])
    wait_log(c.nodes[leader], r"wrote a metadata snapshot up to offset", 30 * SLOW)
    c.nodes[away].start(timeout=60 * SLOW)
    c.wait_brokers({1, 2, 3}, timeout=60 * SLOW)
    md = bb_admin.wait_for("node %d knowing all 30 topics" % away, lambda: (
        lambda m: m if set(names) <= set(m.topics) else None)(
        admin(c.nodes[away].bootstrap).list_topics(timeout=10)), 30 * SLOW)
    assert all(len(md.topics[n].partitions) == 2 for n in names)
    assert re.search(r"installing the leader's snapshot up to offset \d+", c.nodes[away].log_text()[mark:]), \
        c.nodes[away].log_tail()


def test_controlled_shutdown_moves_leaderships_before_exit(cluster_factory):
    c = cluster_factory(3)  # Kafka's 9 s session: the exit must not wait for it
    c.wait_brokers({1, 2, 3})
    t = unique_topic("cs")
    create_topics(c.bootstrap(), [(t, 6, 3)])
    wait_partitions(c.bootstrap(), t, 6)
    leader, _ = c.wait_quorum_leader()
    victim = next(i for i in c.ids if i != leader)
    start = time.monotonic()
    assert c.nodes[victim].stop() == 0
    took = time.monotonic() - start
    others = [i for i in c.ids if i != victim]
    # Right away (no session timeout): unlisted, and leads nothing.
    c.wait_brokers(set(others), via=others, timeout=3 * SLOW)
    parts = partitions_of(c.nodes[leader].bootstrap, t)
    assert all(l in others for l, _, _ in parts.values()), parts
    print("controlled shutdown of node %d took %.1fs" % (victim, took))
    assert took < 9, "controlled shutdown waited for the session timeout (%.1fs)" % took
    wait_log(c.nodes[victim], r"controlled shutdown", 1)


# ------------------------------------------------------------------ cluster ids


def test_explicit_cluster_id_and_a_broker_of_another_cluster_is_refused(cluster_factory, tmp_path):
    cid = run([gregor_bin(), "storage", "random-uuid"]).stdout.decode().strip()
    assert CLUSTER_ID_RE.match(cid)
    c = cluster_factory(3, overrides={"cluster.id": cid})
    c.wait_brokers({1, 2, 3})
    assert {c.describe_cluster(i)[0] for i in c.ids} == {cid}
    assert admin(c.bootstrap()).list_topics(timeout=10).cluster_id == cid

    # A broker-only node configured for another cluster is refused by the controller.
    other = run([gregor_bin(), "storage", "random-uuid"]).stdout.decode().strip()
    d = tmp_path / "stranger"
    d.mkdir()
    stranger = Broker(str(d / "data"), str(d / "gregor.log"), node_id=9, overrides={
        "process.roles": "broker",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": c.nodes[1].overrides["controller.quorum.voters"],
        "cluster.id": other,
    })
    stranger.spawn()
    try:
        rc = stranger.wait_exit(60 * SLOW)
        assert rc not in (None, 0), "a broker of another cluster must not start"
        assert re.search(r"every other voter of controller.quorum.voters refuses this node: they belong to another "
                         r"cluster than %s" % re.escape(other), stranger.log_text()), stranger.log_tail()
    finally:
        stranger.kill9()
    # The voters name both ids.
    pattern = r"refusing \w+ from node 9: it belongs to cluster %s, this node to cluster %s" % (other, cid)
    assert any(re.search(pattern, c.nodes[i].log_text()) for i in c.ids)
    c.wait_brokers({1, 2, 3})


def test_voter_restarted_with_another_cluster_id_refuses_to_start(cluster_factory):
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    cid = c.describe_cluster(1)[0]
    other = run([gregor_bin(), "storage", "random-uuid"]).stdout.decode().strip()
    n = c.nodes[3]
    assert n.stop() == 0
    n.overrides["cluster.id"] = other
    n.spawn()
    rc = n.wait_exit(30 * SLOW)
    assert rc not in (None, 0)
    assert re.search(r"the log dirs belong to cluster %s but this node is configured for cluster %s"
                     % (re.escape(cid), re.escape(other)), n.log_text()), n.log_tail()
    del n.overrides["cluster.id"]
    n.start(timeout=60 * SLOW)
    c.wait_brokers({1, 2, 3}, timeout=60 * SLOW)


def test_fresh_voter_of_another_cluster_is_refused_naming_both_ids(cluster_factory):
    c = cluster_factory(3, start=False)
    other = run([gregor_bin(), "storage", "random-uuid"]).stdout.decode().strip()
    for i in (1, 2):
        c.nodes[i].spawn()
    c.nodes[3].overrides["cluster.id"] = other
    c.nodes[3].spawn()
    for i in (1, 2):
        c.nodes[i].wait_ready(60 * SLOW)
    c.wait_brokers({1, 2}, via=[1, 2], timeout=60 * SLOW)
    cid = c.describe_cluster(1)[0]
    assert cid != other
    pattern = r"refusing \w+ from node 3: it belongs to cluster %s, this node to cluster %s" % (
        re.escape(other), re.escape(cid))
    bb_admin.wait_for("a node of the cluster refusing node 3",
                      lambda: any(re.search(pattern, c.nodes[i].log_text()) for i in (1, 2)), 30 * SLOW)
    # It never joins: it stops, saying why; the two others keep their quorum.
    assert c.nodes[3].wait_exit(60 * SLOW) not in (None, 0), "node 3 of another cluster kept running"
    assert re.search(r"voter [12] refuses this node", c.nodes[3].log_text())
    assert re.search(r"every other voter of controller.quorum.voters refuses this node", c.nodes[3].log_text())
    assert 3 not in c.describe_cluster(1)[2]
    create_until_ok(c.nodes[2].bootstrap, unique_topic("two"), 20 * SLOW)


# ------------------------------------------------------------------ bad input on the controller listener


API_VOTE = 52
METADATA_TOPIC = "__cluster_metadata"


def vote_v0_body(cluster_id, epoch, candidate, last_epoch, last_offset):
    body = compact_string(cluster_id) if cluster_id is not None else uvarint(0)
    body += uvarint(2) + compact_string(METADATA_TOPIC)
    body += uvarint(2) + i32(0) + i32(epoch) + i32(candidate) + i32(last_epoch) + i64(last_offset) + uvarint(0)
    body += uvarint(0)  # topic tags
    body += uvarint(0)  # request tags
    return body


def parse_vote_v0(r):
    top = r.i16()
    topics = r.compact_array(lambda t: (t.compact_string(), t.compact_array(
        lambda p: (p.i32(), p.i16(), p.i32(), p.i32(), p.boolean(), p.tagged_fields())),
        t.tagged_fields()))
    return top, topics


def test_bad_input_on_the_controller_listener(cluster_factory):
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    leader, epoch = c.wait_quorum_leader()
    node = c.nodes[next(i for i in c.ids if i != leader)]
    ctl = "127.0.0.1:%d" % c.controller_ports[node.node_id]

    def expect_closed(send, what):
        with Conn(ctl) as conn:
            conn.send_raw(send)
            assert conn.wait_closed(10), "controller listener kept the connection open after " + what

    expect_closed(i32(104857600 + 1) + b"\x00" * 32, "an oversized frame")
    expect_closed(i32(-1) + b"\x00" * 16, "a negative frame length")
    expect_closed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "an HTTP request")
    expect_closed(frame(request_header(32000, 0, 1)), "an unknown API key")
    expect_closed(frame(request_header(0, 3, 1) + b"\x00" * 20), "a Produce request")
    wait_log(node, r"API key 0 is not served on the controller listener", 10)
    for seed in range(20):
        import random
        rnd = random.Random(seed)
        with Conn(ctl) as conn:
            payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 300)))
            conn.send_raw(frame(payload))
            conn.wait_closed(2)  # closed or answered with an error; either way alive after
    # A truncated Vote (flexible, garbage body): an error or a closed connection.
    with Conn(ctl) as conn:
        conn.send_raw(frame(request_header(API_VOTE, 0, 7, header_version=2) + b"\x05\xff"))
        conn.wait_closed(5)
    # ApiVersions is served, like on the broker listener.
    with Conn(ctl) as conn:
        err, keys = api_versions_v0(conn)
        assert err == 0 and API_VOTE in keys

    # A Vote from a node that is not a voter, with a far higher epoch, wins nothing
    # and moves no one to the new epoch.
    cid = c.describe_cluster(1)[0]
    with Conn(ctl) as conn:
        r = conn.call(API_VOTE, 0, vote_v0_body(cid, epoch + 1000, 99, epoch + 999, 1 << 40),
                      header_version=2, flexible_response_header=True)
        _top, topics = parse_vote_v0(r)
        granted = [p[4] for _, parts, _ in topics for p in parts]
        assert granted == [False] or _top != 0
    assert c.wait_quorum_leader() == (leader, epoch)

    for i in c.ids:
        assert c.nodes[i].alive(), "node %d died:\n%s" % (i, c.nodes[i].log_tail())
    c.wait_brokers({1, 2, 3})
    create_until_ok(node.bootstrap, unique_topic("after-bad"), 20 * SLOW)
    assert c.wait_quorum_leader() == (leader, epoch)


# ------------------------------------------------------------------ elections and reassignments


def reassign(bootstrap, topic, replicas):
    """AlterPartitionReassignments of partition 0 through kafkajs (confluent-kafka
    1.7 has no such call)."""
    bb_admin.kjs_admin_ok(bootstrap, [{"op": "alterPartitionReassignments",
                                       "topics": [{"topic": topic, "partitionAssignment": [
                                           {"partition": 0, "replicas": replicas}]}]}])


def rotated_rf3_topic(bootstrap, prefix):
    """A one-partition RF 3 topic whose replicas were reordered so that the
    preferred leader is no longer the leader: (topic, leader, new order)."""
    if not kjs_available():
        pytest.skip("kafkajs is not installed (scripts/install-deps.sh installs it)")
    t = unique_topic(prefix)
    create_topics(bootstrap, [(t, 1, 3)])
    (leader, replicas, _), = wait_partitions(bootstrap, t, 1).values()
    new_order = replicas[1:] + replicas[:1]
    reassign(bootstrap, t, new_order)
    return t, leader, new_order


def test_preferred_election_and_reassignment(cluster_factory):
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    t, leader, new_order = rotated_rf3_topic(b, "reassign")
    wait_partitions(b, t, 1, lambda ps: ps[0][1] == new_order, 20)
    # The old leader keeps leading until a preferred election moves it.
    assert partitions_of(b, t)[0][0] == leader
    p = run([gregor_bin(), "leader-election", "--bootstrap-server", b, "--election-type", "preferred",
             "--topic", t, "--partition", "0"], timeout=30)
    assert b"Successfully completed leader election" in p.stdout, p.stdout
    wait_partitions(b, t, 1, lambda ps: ps[0][0] == new_order[0], 20)
    # Every partition already led by its preferred replica: nothing to do, and said so.
    p = run([gregor_bin(), "leader-election", "--bootstrap-server", b, "--election-type", "preferred",
             "--all-topic-partitions"], timeout=30, check=False)
    assert p.returncode == 0 and b"Successfully" not in p.stdout, p.stdout + p.stderr

    # RF 2 moved to the third broker: the new replica catches up from the
    # leader, joins the ISR, and that completes the reassignment.
    t2 = unique_topic("grow")
    create_topics(b, [(t2, 1, 2)])
    (_, reps, _), = wait_partitions(b, t2, 1).values()
    spare = ({1, 2, 3} - set(reps)).pop()
    reassign(b, t2, [spare, reps[0]])
    wait_partitions(b, t2, 1, lambda ps: ps[0][1] == [spare, reps[0]] and sorted(ps[0][2]) == sorted([spare, reps[0]]),
                    30 * SLOW)
    listed = bb_admin.kjs_admin_ok(b, [{"op": "listPartitionReassignments", "topics": [
        {"topic": t2, "partitions": [0]}]}])[0]
    assert not listed["topics"] or not listed["topics"][0]["partitions"], listed


def test_auto_leader_rebalance_moves_leaders_to_preferred(cluster_factory):
    c = cluster_factory(3, overrides={"auto.leader.rebalance.enable": "true",
                                      "leader.imbalance.check.interval.seconds": 1,
                                      "leader.imbalance.per.broker.percentage": 0})
    c.wait_brokers({1, 2, 3})
    b = c.bootstrap()
    t, _, new_order = rotated_rf3_topic(b, "auto")
    wait_partitions(b, t, 1, lambda ps: ps[0][1] == new_order and ps[0][0] == new_order[0], 30 * SLOW)


# ------------------------------------------------------------------ the README's cluster


def test_single_node_quickstart_is_a_cluster_of_one(broker):
    """The quickstart's broker (no controller settings) is its own controller."""
    err, cid, controller, brokers = bb_admin.describe_cluster(broker.bootstrap)
    assert err == 0 and CLUSTER_ID_RE.match(cid)
    assert [b[0] for b in brokers] == [broker.node_id] and controller == broker.node_id
    ids, ctl = kcat_brokers(broker.bootstrap)
    assert ids == {broker.node_id} and ctl == broker.node_id


# ------------------------------------------------------------------ controller.quorum.bootstrap.servers


def test_broker_only_node_finds_the_quorum_through_bootstrap_servers(cluster_factory, tmp_path):
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    cid = c.describe_cluster(1)[0]
    servers = ",".join("127.0.0.1:%d" % c.controller_ports[i] for i in c.ids)

    def broker_only(name, node_id, **extra):
        d = tmp_path / name
        d.mkdir()
        settings = {"process.roles": "broker", "controller.listener.names": "CONTROLLER",
                    "controller.quorum.bootstrap.servers": servers}
        settings.update(extra)
        return Broker(str(d / "data"), str(d / "gregor.log"), node_id=node_id, overrides=settings)

    # Without the cluster's id, a first start cannot format its log dirs: it says so.
    lost = broker_only("no-id", 5)
    lost.spawn()
    assert lost.wait_exit(30 * SLOW) not in (None, 0)
    assert "needs the cluster's id" in lost.log_text(), lost.log_tail()

    # With it, the broker finds the voters, registers, and every client sees 4 brokers.
    b4 = broker_only("b4", 4, **{"cluster.id": cid})
    b4.start(timeout=60 * SLOW)
    try:
        c.wait_brokers({1, 2, 3, 4}, via=c.ids, timeout=30 * SLOW)
        ids, ctl = kcat_brokers(b4.bootstrap)
        assert ids == {1, 2, 3, 4} and ctl in c.ids
        assert re.search(r"the quorum's voters are 1@127.0.0.1:\d+,2@127.0.0.1:\d+,3@127.0.0.1:\d+",
                         b4.log_text()), b4.log_tail()
        t = unique_topic("four")
        create_topics(b4.bootstrap, [(t, 8, 4)])
        parts = wait_partitions(b4.bootstrap, t, 8)
        assert {l for l, _, _ in parts.values()} == {1, 2, 3, 4}
        assert b4.stop() == 0
    finally:
        b4.kill9()

    # A controller must list the voters: the quorum's voter set is static.
    d = tmp_path / "ctl"
    d.mkdir()
    ctl_only = Broker(str(d / "data"), str(d / "gregor.log"), node_id=7, overrides={
        "process.roles": "controller", "controller.listener.names": "CONTROLLER",
        "listeners": "CONTROLLER://127.0.0.1:%d" % free_port(),
        "controller.quorum.bootstrap.servers": servers})
    ctl_only.spawn()
    assert ctl_only.wait_exit(30 * SLOW) not in (None, 0)
    assert "controller.quorum.voters must list the voters" in ctl_only.log_text(), ctl_only.log_tail()


# ------------------------------------------------------------------ AlterPartition


API_ALTER_PARTITION = 56
STALE_BROKER_EPOCH = 77


def alter_partition_v1(controller, broker_id, broker_epoch, topic, partition, leader_epoch, isr, partition_epoch):
    """AlterPartition v1 (flexible) -> (top error, [(partition, error, leader, epoch, isr, partition_epoch)])."""
    part = (i32(partition) + i32(leader_epoch) + uvarint(len(isr) + 1) + b"".join(i32(x) for x in isr)
            + b"\x00" + i32(partition_epoch) + uvarint(0))
    body = i32(broker_id) + i64(broker_epoch) + uvarint(2) + compact_string(topic) + uvarint(2) + part
    body += uvarint(0) + uvarint(0)
    with Conn(controller) as c:
        r = c.call(API_ALTER_PARTITION, 1, body, header_version=2, flexible_response_header=True)
        r.i32()
        top = r.i16()

        def p(x):
            out = (x.i32(), x.i16(), x.i32(), x.i32(), x.compact_array(lambda y: y.i32()), x.i8(), x.i32())
            x.tagged_fields()
            return (out[0], out[1], out[2], out[3], out[4], out[6])

        def t(x):
            x.compact_string()
            parts = x.compact_array(p)
            x.tagged_fields()
            return parts
        topics = r.compact_array(t)
        return top, [p for parts in topics for p in parts]


def test_alter_partition_is_served_on_the_controller_listener_only(cluster_factory):
    """Partition leaders ask the controller for ISR changes (AlterPartition):
    the controller answers a stale broker epoch with STALE_BROKER_EPOCH and
    changes nothing; the client listener does not serve the API."""
    c = cluster_factory(3)
    c.wait_brokers({1, 2, 3})
    t = unique_topic("isr")
    create_topics(c.bootstrap(), [(t, 1, 3)])
    (leader, replicas, isr), = wait_partitions(c.bootstrap(), t, 1).values()
    ctl, _ = c.wait_quorum_leader()
    top, parts = alter_partition_v1("127.0.0.1:%d" % c.controller_ports[ctl], leader, 123456789, t, 0, 0,
                                    [leader], 0)
    assert top == STALE_BROKER_EPOCH and parts == []
    assert sorted(partitions_of(c.bootstrap(), t)[0][2]) == sorted(isr)  # ISR unchanged
    with Conn(c.nodes[leader].bootstrap) as conn:
        conn.send_raw(frame(request_header(API_ALTER_PARTITION, 1, 5, header_version=2) + b"\x00" * 16))
        assert conn.wait_closed(10)

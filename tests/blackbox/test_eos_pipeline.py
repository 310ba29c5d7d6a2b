"""Exactly-once, end to end: a consume-transform-produce pipeline
(eos_pipeline.py: confluent-kafka transactions, send_offsets_to_transaction,
read_committed) is killed with -9 at random points, and so is the broker,
and each is started again; once the pipeline has committed all of its input,
eos_checker.py reads the output back and finds every input record in it
exactly once, in order, no record of an aborted transaction, no transaction
visible only in part, and the group's offsets at the input's end.

- one broker: the pipeline is killed (and kills itself at seeded crash
  points), replaced while stopped and then resumed (a zombie, which must be
  fenced), then the broker is killed under it, then both at once;
- three brokers, every topic with replication factor 3 and
  min.insync.replicas 2: the node leading the pipeline's transaction
  coordinator (FindCoordinator key_type 1), then the leader of an output
  partition, in turn, sometimes with the pipeline; each comes back and the
  ISRs fill again before the next kill. First, though, the group
  coordinator's node, and as soon as the group has moved, its new node.

The faults are drawn from one seed, printed at the start (and on failure with
the command that replays the same schedule; the timing of a real run still
differs). GREGOR_EOS_SEED fixes it; GREGOR_EOS_DEBUG=cgrp (librdkafka debug
contexts) puts the pipeline consumer's group protocol into its log.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from bb_clients import Rec, admin, ck_produce, create_topic, unique_topic
from bb_cluster import FAST_SESSION
from bb_wire import Conn, i8, string
from eos_checker import check

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINE = os.path.join(HERE, "eos_pipeline.py")
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

pytestmark = [pytest.mark.slow]

SINGLE_OVERRIDES = {
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 3,
    "offsets.topic.replication.factor": 1,
    "transaction.state.log.num.partitions": 3,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
}


CLUSTER_OVERRIDES = dict(FAST_SESSION, **{
    "group.initial.rebalance.delay.ms": 0,
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.num.partitions": 3,
    "offsets.topic.replication.factor": 3,
    "transaction.state.log.num.partitions": 3,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
    "replica.lag.time.max.ms": 5000,
})
INTERNAL_TOPICS = ("__transaction_state", "__consumer_offsets")


def seed_for(test, k):
    """The test's seed, printed with the command that replays it (pytest shows
    a failed test's output, whatever failed)."""
    env = os.environ.get("GREGOR_EOS_SEED")
    seed = int(env) if env else random.randrange(1 << 31)
    print("\n[%s] seed %d; %s" % (test, seed, replay_hint(k, seed)), flush=True)
    return seed


def replay_hint(test, seed):
    return ("replay: GREGOR_EOS_SEED=%d GREGOR_BIN=%s %s -m pytest %s -k %s -q -s -p no:cacheprovider"
            % (seed, os.environ.get("GREGOR_BIN", "build/gregor"), PYTHON, os.path.relpath(__file__), test))


def fill_input(bootstrap, topic, partitions, per_partition):
    recs = [Rec(b"k%d-%d" % (p, i), b"in-%d-%d" % (p, i), (), None, p)
            for i in range(per_partition) for p in range(partitions)]
    # Small batches: the pipeline's fetches then interleave the partitions,
    # and its transactions span several of them.
    ck_produce(bootstrap, topic, recs, timeout=60, **{"batch.num.messages": 8})
    return [per_partition] * partitions


class Pipeline:
    """eos_pipeline.py as a subprocess that the test kills and restarts; every
    start gets its own crash seed drawn from the test's rng."""

    def __init__(self, rng, log_path, journal, bootstrap_fn, **args):
        self.rng = rng
        self.log_path = log_path
        self.journal = journal
        self.bootstrap_fn = bootstrap_fn
        self.args = args
        self.proc = None
        self.starts = 0
        self.kills = 0
        self.exits = []  # non-zero exit codes seen

    def start(self):
        self.starts += 1
        cmd = [PYTHON, PIPELINE, "--bootstrap", self.bootstrap_fn(), "--journal", self.journal,
               "--seed", str(self.rng.randrange(1 << 31))]
        for k, v in self.args.items():
            cmd += ["--" + k.replace("_", "-"), str(v)]
        if os.environ.get("GREGOR_EOS_DEBUG"):  # librdkafka debug contexts, into the pipeline's log
            cmd += ["--debug", os.environ["GREGOR_EOS_DEBUG"]]
        with open(self.log_path, "ab") as f:
            f.write(("===== start #%d: %s\n" % (self.starts, " ".join(cmd))).encode())
            f.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f, cwd=HERE)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def zombie(self, resume_after):
        """SIGSTOPs the running process and starts another in its place (same
        transactional.id and group.instance.id), lets that one run for
        resume_after seconds, then SIGCONTs the old one, which must find
        itself fenced. Returns the old process's exit code (None: it did not
        exit within 30 s and was killed)."""
        old = self.proc
        old.send_signal(signal.SIGSTOP)
        self.start()
        time.sleep(resume_after)
        old.send_signal(signal.SIGCONT)
        try:
            return old.wait(timeout=30)
        except subprocess.TimeoutExpired:
            old.kill()
            old.wait(timeout=10)
            return None

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.kills += 1
        self.proc.wait(timeout=10)

    def reap(self):
        """None while running; else its exit code (restarting it unless 0)."""
        rc = self.proc.poll()
        if rc is None or rc == 0:
            return rc
        self.exits.append(rc)
        self.start()
        return rc

    def close(self):
        if self.proc is not None and self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def journal_lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def run_until(pipeline, t, deadline, max_restarts, until=None):
    """Lets the pipeline run for t seconds (restarting it when it exits with
    an error); True if it finished. With until (a probe, tried every 0.5 s)
    it returns False as soon as that holds, and raises if it never does."""
    end = min(time.monotonic() + t, deadline)
    next_probe = 0
    while time.monotonic() < end:
        rc = pipeline.reap()
        if rc == 0:
            return True
        assert pipeline.starts <= max_restarts, "pipeline restarted %d times" % pipeline.starts
        if until is not None and time.monotonic() >= next_probe:
            if until():
                return False
            next_probe = time.monotonic() + 0.5
        time.sleep(0.05)
    if until is not None:
        raise AssertionError("gave up waiting after %.0f s" % t)
    return False


@pytest.mark.deadline(150)
def test_single_broker_pipeline_and_broker_killed(broker_factory, tmp_path):
    seed = seed_for("single_broker", "single")
    rng = random.Random(seed)
    b = broker_factory(overrides=SINGLE_OVERRIDES)
    tin, tout, group = unique_topic("eos-in"), unique_topic("eos-out"), unique_topic("eos-g")
    create_topic(b.bootstrap, tin, 3)
    create_topic(b.bootstrap, tout, 3)
    ends = fill_input(b.bootstrap, tin, 3, 1200)
    journal = str(tmp_path / "journal")
    p = Pipeline(rng, str(tmp_path / "pipeline.log"), journal, lambda: b.bootstrap,
                 input=tin, output=tout, group=group, ends=",".join(map(str, ends)),
                 max_batch=30, pause=0.03, abort_prob=0.1, crash_prob=0.01, max_seconds=100)
    deadline = time.monotonic() + 100
    events = []
    finished = False
    try:
        p.start()
        # The pipeline killed -9 at random points, then started again.
        for k in range(4):
            if run_until(p, rng.uniform(0.5, 3.0), deadline, 40):
                finished = True
                break
            p.kill9()
            events.append("kill pipeline (journal %d)" % journal_lines(journal))
            p.start()
        # A zombie: the pipeline stopped, another started in its place, then
        # the first one resumed; it must be fenced and give up (a zombie that finds
        # nothing to do could exit 0: that would be a failure here too).
        if not finished and not run_until(p, rng.uniform(0.5, 2.0), deadline, 40):
            rc = p.zombie(rng.uniform(1.0, 3.0))
            events.append("zombie (journal %d) exited %s" % (journal_lines(journal), rc))
            assert rc not in (None, 0), "a zombie pipeline was not fenced: exit %s\n%s" % (rc, p.log_tail())
        # The broker killed -9 under the running pipeline, then started again.
        for k in range(3):
            if finished or run_until(p, rng.uniform(0.5, 3.0), deadline, 40):
                finished = True
                break
            b.kill9()
            events.append("kill broker (journal %d)" % journal_lines(journal))
            time.sleep(rng.uniform(0, 0.5))
            b.start()
        # Both at once.
        if not finished and not run_until(p, rng.uniform(0.5, 2.0), deadline, 40):
            p.kill9()
            b.kill9()
            events.append("kill both (journal %d)" % journal_lines(journal))
            b.start()
            p.start()
        finished = finished or run_until(p, 1e9, deadline, 40)
        print("[single_broker] seed %d: %s; pipeline started %d times, exits %s, journal %d lines"
              % (seed, "; ".join(events), p.starts, p.exits, journal_lines(journal)), flush=True)
        assert finished, "the pipeline did not finish in time\n%s\n%s" % (p.log_tail(), replay_hint("single", seed))
        r = check(b.bootstrap, tin, tout, group, journal)
        print("[single_broker] " + r.summary(), flush=True)
        assert r.ok, "%s\n%s\n%s" % (r.summary(), r.details(), replay_hint("single", seed))
    finally:
        p.close()


def test_checker_finds_duplicates_gaps_aborted_reads_and_torn_transactions(broker_factory, tmp_path):
    """The checker itself, on an output written by hand (plain produce, so
    nothing stops a bad record from being read) plus one aborted and one
    open transaction of a real transactional producer."""
    from confluent_kafka import Producer
    b = broker_factory(overrides=SINGLE_OVERRIDES)
    tin, tout, group = unique_topic("chk-in"), unique_topic("chk-out"), unique_topic("chk-g")
    create_topic(b.bootstrap, tin, 2)
    create_topic(b.bootstrap, tout, 2)
    fill_input(b.bootstrap, tin, 2, 4)

    def out(p, off, txn, n, abort=False, value=None):
        h = (("src", b"%d:%d" % (p, off)), ("txn", txn.encode()), ("n", b"%d" % n))
        return Rec(b"k%d-%d" % (p, off), value or b"in-%d-%d:out" % (p, off), h + ((("x", b"1"),) if abort else ()),
                   None, p)

    ck_produce(b.bootstrap, tout, [
        out(0, 0, "A", 2), out(0, 1, "A", 2), out(0, 1, "B", 1), out(0, 3, "C", 1, abort=True),
        out(1, 0, "D", 3), out(1, 1, "D", 3), out(1, 2, "E", 1, value=b"wrong")])
    tp = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": unique_topic("chk-txn"),
                   "transaction.timeout.ms": 60000})
    tp.init_transactions(30)
    tp.begin_transaction()
    tp.produce(tout, value=b"aborted", partition=1, headers=[("src", b"1:3"), ("txn", b"F"), ("n", b"1")])
    tp.flush(30)  # else the abort purges it unsent
    tp.abort_transaction(30)
    tp.begin_transaction()
    tp.produce(tout, value=b"open", partition=0, headers=[("src", b"0:2"), ("txn", b"G"), ("n", b"1")])
    tp.flush(30)
    journal = tmp_path / "journal"
    journal.write_text("abort A\ncommit H\n")

    r = check(b.bootstrap, tin, tout, group, str(journal))
    print(r.summary())
    assert not r.ok
    assert (r.records_in, r.records_committed, r.records_uncommitted, r.txns) == (8, 7, 9, 5), r.summary()
    assert r.missing == [(0, 2), (1, 3)]
    assert r.duplicates == [(0, 1, 2)]
    assert r.out_of_order == [(0, 2, (0, 1), (0, 1))]
    assert r.bad_values == [(1, 2, b"wrong", b"in-1-2:out")]
    assert [(p, off, txn) for p, off, txn, _ in r.aborted_reads] == [(0, 0, "A"), (0, 1, "A"), (0, 3, "C")]
    assert [t[:3] for t in r.torn] == [("D", 2, 3), ("H", 0, None)]
    assert r.unstable == {0: (4, 5)}
    assert r.offsets == {0: (-1001, 4), 1: (-1001, 4)}
    assert not r.misplaced and not r.lost_uncommitted
    tp.abort_transaction(30)


# ------------------------------------------------------------------ three brokers


def find_coordinator(bootstrap, key, key_type):
    """FindCoordinator v1 to one broker, key_type 0 (group) or 1
    (transaction): the node id, or None while there is none."""
    with Conn(bootstrap) as c:
        r = c.call(10, 1, string(key) + i8(key_type))
        r.i32()  # throttle_time_ms
        err = r.i16()
        r.string()  # error_message
        node = r.i32()
    return node if err == 0 else None


def partition_state(bootstrap, topic):
    """{partition: (leader, isr)}, or None if the metadata cannot be had now."""
    try:
        md = admin(bootstrap).list_topics(topic=topic, timeout=5)
    except KafkaException:
        return None
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return {p.id: (p.leader, sorted(p.isrs)) for p in t.partitions.values()}


def all_in_sync(bootstrap, topics, ids):
    """True when every partition of topics is led and has every node in its ISR."""
    for t in topics:
        st = partition_state(bootstrap, t)
        if not st or any(leader < 0 or isr != sorted(ids) for leader, isr in st.values()):
            return False
    return True


@pytest.mark.deadline(180)
def test_three_brokers_coordinator_and_output_leaders_killed(cluster_factory, tmp_path):
    seed = seed_for("three_brokers", "three")
    rng = random.Random(seed)
    c = cluster_factory(3, overrides=CLUSTER_OVERRIDES)
    c.wait_brokers(c.ids)
    tin, tout, group = unique_topic("eos-in"), unique_topic("eos-out"), unique_topic("eos-g")
    a = admin(c.bootstrap())
    fs = a.create_topics([NewTopic(t, num_partitions=3, replication_factor=3, config={"min.insync.replicas": "2"})
                          for t in (tin, tout)], request_timeout=20)
    for f in fs.values():
        f.result(timeout=20)
    all_bootstrap = c.bootstrap(c.ids)  # the dead ones too: a client tries the others
    ends = fill_input(all_bootstrap, tin, 3, 800)
    journal = str(tmp_path / "journal")
    p = Pipeline(rng, str(tmp_path / "pipeline.log"), journal, lambda: all_bootstrap,
                 input=tin, output=tout, group=group, ends=",".join(map(str, ends)),
                 max_batch=30, pause=0.03, abort_prob=0.1, crash_prob=0.005, max_seconds=150)
    txn_id = "%s-i0" % group
    deadline = time.monotonic() + 140
    events = []
    finished = False

    def live_bootstrap():
        return c.bootstrap(c.live())

    def in_sync():
        return all_in_sync(live_bootstrap(), (tin, tout) + INTERNAL_TOPICS, c.ids)

    try:
        p.start()
        finished = run_until(p, 60, deadline, 40, until=in_sync)  # the pipeline made the internal topics
        # The group coordinator's node killed and restarted, then the node the
        # group moved to, before the pipeline's session (10 s) runs out.
        last = None
        for k in range(2):
            if finished or run_until(p, 0.5, deadline, 40):
                finished = True
                break

            def moved():
                nonlocal victim
                victim = find_coordinator(c.nodes[c.live()[0]].bootstrap, group, 0)
                return victim in c.ids and victim != last
            victim = None
            finished = run_until(p, 20, deadline, 40, until=moved)
            if finished:
                break
            c.nodes[victim].kill9()
            events.append("kill node %d (group coordinator), journal %d" % (victim, journal_lines(journal)))
            c.nodes[victim].start()
            last = victim
        if not finished:
            finished = run_until(p, 45, deadline, 40, until=in_sync)
        for k in range(4):
            if finished or run_until(p, rng.uniform(0.5, 2.5), deadline, 40):
                finished = True
                break
            if k % 2 == 0:
                victim = find_coordinator(c.nodes[c.live()[0]].bootstrap, txn_id, 1)
                why = "transaction coordinator"
            else:
                out_part = rng.randrange(3)
                victim, why = partition_state(live_bootstrap(), tout)[out_part][0], "leader of %s-%d" % (
                    tout, out_part)
            assert victim in c.ids, "no %s to kill: %r" % (why, victim)
            also_pipeline = rng.random() < 0.3
            c.nodes[victim].kill9()
            if also_pipeline:
                p.kill9()
            events.append("kill node %d (%s)%s, journal %d" % (victim, why, " and the pipeline" if also_pipeline
                                                               else "", journal_lines(journal)))
            if also_pipeline:
                p.start()
            if run_until(p, rng.uniform(1.0, 4.0), deadline, 40):
                finished = True
            c.nodes[victim].start()
            if not finished:
                finished = run_until(p, 45, deadline, 40, until=in_sync)
        finished = finished or run_until(p, 1e9, deadline, 40)
        print("[three_brokers] seed %d: %s; pipeline started %d times, exits %s, journal %d lines"
              % (seed, "; ".join(events), p.starts, p.exits, journal_lines(journal)), flush=True)
        assert finished, "the pipeline did not finish in time\n%s\n%s" % (p.log_tail(),
                                                                        replay_hint("three", seed))
        for b in c.nodes.values():
            if not b.alive():
                b.start()
        r = check(c.bootstrap(), tin, tout, group, journal)
        print("[three_brokers] " + r.summary(), flush=True)
        assert r.ok, "%s\n%s\n%s" % (r.summary(), r.details(), replay_hint("three", seed))
    finally:
        p.close()

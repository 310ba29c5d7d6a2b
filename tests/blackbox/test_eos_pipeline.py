"""Exactly-once, end to end: a consume-transform-produce pipeline
(eos_pipeline.py: confluent-kafka transactions, send_offsets_to_transaction,
read_committed) is killed with -9 at random points, and so is the broker,
and each is started again; once the pipeline has committed all of its input,
eos_checker.py reads the output back and finds every input record in it
exactly once, in order, no record of an aborted transaction, no transaction
visible only in part, and the group's offsets at the input's end.

The faults are drawn from one seed, printed at the start (and on failure with
the command that replays the same schedule; the timing of a real run still
differs). GREGOR_EOS_SEED fixes it.
"""

import os
import random
import subprocess
import sys
import time

import pytest

from bb_clients import Rec, ck_produce, create_topic, unique_topic
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


def seed_for(test):
    env = os.environ.get("GREGOR_EOS_SEED")
    seed = int(env) if env else random.randrange(1 << 31)
    print("\n[%s] seed %d" % (test, seed), flush=True)
    return seed


def replay_hint(test, seed):
    return ("replay: GREGOR_EOS_SEED=%d GREGOR_BIN=%s %s -m pytest %s -k %s -q -s -p no:cacheprovider"
            % (seed, os.environ.get("GREGOR_BIN", "build/gregor"), PYTHON, os.path.relpath(__file__), test))


def fill_input(bootstrap, topic, partitions, per_partition):
    recs = [Rec(b"k%d-%d" % (p, i), b"in-%d-%d" % (p, i), (), None, p)
            for i in range(per_partition) for p in range(partitions)]
    ck_produce(bootstrap, topic, recs, timeout=60)
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
        with open(self.log_path, "ab") as f:
            f.write(("===== start #%d: %s\n" % (self.starts, " ".join(cmd))).encode())
            f.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f, cwd=HERE)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

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


def run_until(pipeline, t, deadline, max_restarts):
    """Lets the pipeline run for t seconds (restarting it when it exits with
    an error); True if it finished."""
    end = min(time.monotonic() + t, deadline)
    while time.monotonic() < end:
        rc = pipeline.reap()
        if rc == 0:
            return True
        assert pipeline.starts <= max_restarts, "pipeline restarted %d times" % pipeline.starts
        time.sleep(0.05)
    return False


@pytest.mark.deadline(150)
def test_single_broker_pipeline_and_broker_killed(broker_factory, tmp_path):
    seed = seed_for("single_broker")
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

"""Gregor's own C++ producer with a transactional.id (Kafka's transactional
producer API), driven through `gregor perf-producer --transactional-id` and
`gregor console-producer --transactional-id` against a real broker, read back
by confluent-kafka (librdkafka) consumers with isolation.level=read_committed:

- perf-producer commits a transaction every --transaction-duration-ms; a
  read_committed consumer sees exactly the records sent, once each, and the
  stored batches carry the transactional bit;
- console-producer sends its whole input as one transaction;
- a producer killed with SIGKILL in the middle of a transaction leaves its
  records invisible to read_committed; the next producer with the same
  transactional.id fences it (its init_transactions aborts the open
  transaction) and its own records become visible, alone; without a next
  producer, the coordinator aborts it when transaction.timeout.ms passes;
- a producer that was fenced while its transaction was open fails its commit
  with an error that says so;
- transactional.id with enable.idempotence=false is refused.
"""

import re
import signal
import subprocess
import time

from bb_broker import SANITIZED, gregor_bin
from bb_clients import ck_consume, create_topic, unique_topic
# The CLI runner and the raw partition reader (every stored record with its
# batch's producer id, control and transactional bits) of the idempotence tests.
from test_client_idempotence import gregor, read_partition as read_uncommitted

SLOW = 3 if SANITIZED else 1


def committed_values(bootstrap, topic, partitions=(0,), expected=None):
    recs = ck_consume(bootstrap, topic, partitions=partitions, expected=expected, timeout=30 * SLOW,
                      **{"isolation.level": "read_committed"})
    return [r.value.decode() for r in recs]


def data_records(recs):
    return [r for r in recs if not r["control"]]


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def new_topic(broker, prefix, partitions=1):
    """A new topic; returns (bootstrap, topic, a transactional id of its own)."""
    topic = unique_topic(prefix)
    create_topic(broker.bootstrap, topic, partitions)
    return broker.bootstrap, topic, prefix + "-" + topic


def start_console_producer(bootstrap, topic, txn_id, *props):
    args = [gregor_bin(), "console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
            "--transactional-id", txn_id, "--producer-property", "linger.ms=5"]
    for p in props:
        args += ["--producer-property", p]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_perf_producer_commits_every_transaction(broker):
    b, topic, txn_id = new_topic(broker, "txn-perf", 2)
    p = gregor("perf-producer", "--topic", topic, "--num-records", "3000", "--record-size", "20",
               "--throughput", "5000", "--transactional-id", txn_id, "--transaction-duration-ms", "100",
               "--producer-props", "bootstrap.servers=" + b, timeout=90 * SLOW)
    text = p.stdout.decode()
    m = re.search(r"Transactions: (\d+) committed \(transactional id %s, one every 100 ms\)\." % re.escape(txn_id), text)
    assert m, text
    # ~0.6 s of sending at 5,000 records/s: several commits, and the last one at the end.
    assert int(m.group(1)) >= 3, text
    assert "3000 records sent" in text, text
    got = committed_values(b, topic, partitions=(0, 1), expected=3000)
    assert len(got) == 3000
    stored = read_uncommitted(b, topic, 0) + read_uncommitted(b, topic, 1)
    data = data_records(stored)
    assert len(data) == 3000
    assert all(r["transactional"] for r in data)
    assert len({(r["producer_id"], r["producer_epoch"]) for r in data}) == 1
    # Every transaction ended with a COMMIT marker in each partition it wrote.
    assert any(r["control"] for r in stored)


def test_console_producer_input_is_one_transaction(broker):
    b, topic, txn_id = new_topic(broker, "txn-console", 1)
    lines = ["line-%d" % i for i in range(200)]
    gregor("console-producer", "--bootstrap-server", b, "--topic", topic, "--transactional-id", txn_id,
           "--producer-property", "batch.size=600", input="".join(l + "\n" for l in lines).encode(),
           timeout=60 * SLOW)
    assert committed_values(b, topic, expected=200) == lines
    stored = read_uncommitted(b, topic)
    assert [r["value"].decode() for r in data_records(stored)] == lines
    assert len([r for r in stored if r["control"]]) == 1  # one transaction, one marker


def kill_mid_transaction_then_fence(bootstrap, topic, txn_id, start_victim):
    """start_victim() starts a producer that leaves a transaction open with some
    records on the broker; it is killed with SIGKILL; then a console-producer
    with the same transactional id commits "after-*"."""
    victim = start_victim()
    try:
        wait_until(lambda: len(data_records(read_uncommitted(bootstrap, topic))) >= 20, 30 * SLOW,
                   "the first producer's records on the broker")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    sent = len(data_records(read_uncommitted(bootstrap, topic)))
    # Its transaction is open: read_committed sees nothing of it (the last
    # stable offset is where it began).
    assert committed_values(bootstrap, topic) == []
    after = ["after-%d" % i for i in range(5)]
    gregor("console-producer", "--bootstrap-server", bootstrap, "--topic", topic, "--transactional-id", txn_id,
           input="".join(l + "\n" for l in after).encode(), timeout=60 * SLOW)
    assert committed_values(bootstrap, topic, expected=len(after)) == after
    stored = read_uncommitted(bootstrap, topic)
    assert len(data_records(stored)) == sent + len(after)
    # The killed producer's transaction was aborted, the new one committed.
    assert len([r for r in stored if r["control"]]) == 2
    epochs = sorted({r["producer_epoch"] for r in data_records(stored)})
    assert len(epochs) == 2 and epochs[0] < epochs[1], epochs


def test_console_producer_killed_mid_transaction_leaves_nothing_visible(broker):
    b, topic, txn_id = new_topic(broker, "txn-kill-console", 1)

    def victim():
        p = start_console_producer(b, topic, txn_id)
        p.stdin.write("".join("before-%d\n" % i for i in range(50)).encode())
        p.stdin.flush()  # stdin stays open: the transaction too
        return p

    kill_mid_transaction_then_fence(b, topic, txn_id, victim)


def test_perf_producer_killed_mid_transaction_leaves_nothing_visible(broker):
    b, topic, txn_id = new_topic(broker, "txn-kill-perf", 1)

    def victim():
        # One long transaction (60 s), still open when the producer is killed.
        return subprocess.Popen(
            [gregor_bin(), "perf-producer", "--topic", topic, "--num-records", "1000000", "--record-size", "20",
             "--throughput", "500", "--transactional-id", txn_id, "--transaction-duration-ms", "60000",
             "--producer-props", "bootstrap.servers=" + b, "linger.ms=5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    kill_mid_transaction_then_fence(b, topic, txn_id, victim)


def test_coordinator_aborts_a_killed_producers_timed_out_transaction(broker_factory):
    """No second producer this time: the killed producer asked for
    transaction.timeout.ms=1500, and the coordinator aborts its open
    transaction on its own once that passes (bumping the epoch)."""
    broker = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": 200})
    b, topic, txn_id = new_topic(broker, "txn-timeout", 1)
    victim = start_console_producer(b, topic, txn_id, "transaction.timeout.ms=1500")
    try:
        victim.stdin.write("".join("lost-%d\n" % i for i in range(30)).encode())
        victim.stdin.flush()
        wait_until(lambda: len(data_records(read_uncommitted(b, topic))) >= 30, 30 * SLOW, "the records")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    # The ABORT marker arrives without anyone asking; read_committed then
    # reads past the aborted records and finds nothing.
    wait_until(lambda: any(r["control"] for r in read_uncommitted(b, topic)), 30 * SLOW, "the coordinator's abort")
    assert committed_values(b, topic) == []
    assert len(data_records(read_uncommitted(b, topic))) == 30


def test_fenced_producer_fails_its_commit(broker):
    b, topic, txn_id = new_topic(broker, "txn-fenced", 1)
    old = start_console_producer(b, topic, txn_id)
    try:
        old.stdin.write(b"old-0\nold-1\n")
        old.stdin.flush()
        wait_until(lambda: len(data_records(read_uncommitted(b, topic))) >= 2, 30 * SLOW, "the old records")
        gregor("console-producer", "--bootstrap-server", b, "--topic", topic, "--transactional-id", txn_id,
               input=b"new-0\n", timeout=60 * SLOW)
        out, err = old.communicate(b"old-2\n", timeout=60 * SLOW)
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()
    assert old.returncode != 0
    err = err.decode()
    assert "fenced" in err, err
    assert committed_values(b, topic, expected=1) == ["new-0"]


def test_transactional_id_with_idempotence_off_is_refused(broker):
    b, topic, _ = new_topic(broker, "txn-refused", 1)
    p = gregor("perf-producer", "--topic", topic, "--num-records", "10", "--record-size", "10", "--throughput", "-1",
               "--transactional-id", "refused", "--producer-props", "bootstrap.servers=" + b,
               "enable.idempotence=false", check=False)
    err = p.stderr.decode()
    assert p.returncode != 0
    assert "transactional.id" in err and "enable.idempotence=false" in err, err
    assert read_uncommitted(b, topic) == []


def test_console_consumer_read_committed_skips_aborted_and_open_transactions(broker):
    """Our consumer with isolation.level=read_committed (console-consumer
    --isolation-level): aborted transactions' records and the markers are
    skipped, an open transaction holds it at the last stable offset;
    read_uncommitted sees every data record."""
    import confluent_kafka as ck
    bs, topic, txn_id = new_topic(broker, "cc-isolation")
    p = ck.Producer({"bootstrap.servers": bs, "transactional.id": txn_id, "linger.ms": 1})
    p.init_transactions(30 * SLOW)
    for tag, commit in (("a", True), ("b", False), ("c", True), ("d", False)):
        p.begin_transaction()
        for i in range(3):
            p.produce(topic, value=("%s%d" % (tag, i)).encode(), partition=0)
        p.flush(30 * SLOW)  # on the log before the abort
        (p.commit_transaction if commit else p.abort_transaction)(30 * SLOW)
    p.begin_transaction()  # left open: read_committed stops before it
    p.produce(topic, value=b"open", partition=0)
    p.flush(30 * SLOW)

    def consume(level, n):
        out = gregor("console-consumer", "--bootstrap-server", bs, "--topic", topic, "--from-beginning",
                     "--isolation-level", level, "--max-messages", str(n), "--timeout-ms", str(5000 * SLOW),
                     check=False)
        return out.stdout.decode().split() if isinstance(out.stdout, bytes) else out.stdout.split()

    # The first six committed records: b's aborted ones and the markers between are skipped.
    assert consume("read_committed", 6) == ["a0", "a1", "a2", "c0", "c1", "c2"]
    assert consume("read_uncommitted", 13) == ["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2",
                                               "d0", "d1", "d2", "open"]
    p.abort_transaction(30 * SLOW)
    bad = gregor("console-consumer", "--bootstrap-server", bs, "--topic", topic, "--isolation-level", "dirty",
                 "--max-messages", "1", "--timeout-ms", "1000", check=False)
    err = bad.stderr.decode() if isinstance(bad.stderr, bytes) else bad.stderr
    assert bad.returncode != 0 and "isolation.level must be read_committed or read_uncommitted" in err, err

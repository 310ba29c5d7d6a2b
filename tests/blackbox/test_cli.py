"""The `gregor` command-line tools (topics, console-producer, console-consumer,
consumer-groups, configs, perf-producer, perf-consumer), which run on Gregor's
own C++ client, checked against a real broker and against kcat and
confluent-kafka (librdkafka) for byte-exact records and key placement."""

import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer

from bb_broker import free_port, gregor_bin
from bb_clients import create_topic, kcat_consume, kcat_produce, run, unique_topic


def gregor(*args, input=None, timeout=60, check=True):
    return run([gregor_bin()] + list(args), input=input, timeout=timeout, check=check)


def out(p):
    return p.stdout.decode()


# ------------------------------------------------------------------ the README quickstart


def test_quickstart_topics_produce_consume(broker):
    b = broker.bootstrap
    t = unique_topic("quickstart-events")
    assert "Created topic %s." % t in out(gregor("topics", "--create", "--topic", t, "--bootstrap-server", b))
    d = out(gregor("topics", "--describe", "--topic", t, "--bootstrap-server", b))
    assert "Topic: %s\tTopicId: " % t in d and "PartitionCount: 1" in d, d
    assert "\tTopic: %s\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1" % t in d, d
    assert t in out(gregor("topics", "--list", "--bootstrap-server", b)).split()

    gregor("console-producer", "--topic", t, "--bootstrap-server", b,
           input=b"This is my first event\nThis is my second event\n")
    p = gregor("console-consumer", "--topic", t, "--from-beginning", "--bootstrap-server", b,
               "--max-messages", "2", timeout=60)
    assert out(p) == "This is my first event\nThis is my second event\n", out(p)
    assert "Processed a total of 2 messages" in p.stderr.decode()


def test_topics_create_alter_delete(broker):
    b = broker.bootstrap
    t = unique_topic("cli-topics")
    gregor("topics", "--bootstrap-server", b, "--create", "--topic", t, "--partitions", "2",
           "--replication-factor", "1", "--config", "retention.ms=123456", "--config", "cleanup.policy=delete")
    d = out(gregor("topics", "--bootstrap-server", b, "--describe", "--topic", t))
    assert "PartitionCount: 2" in d and "retention.ms=123456" in d, d
    # Creating it again fails, unless --if-not-exists.
    p = gregor("topics", "--bootstrap-server", b, "--create", "--topic", t, check=False)
    assert p.returncode != 0 and "TOPIC_ALREADY_EXISTS" in p.stderr.decode()
    gregor("topics", "--bootstrap-server", b, "--create", "--topic", t, "--if-not-exists")
    gregor("topics", "--bootstrap-server", b, "--alter", "--topic", t, "--partitions", "5")
    assert "PartitionCount: 5" in out(gregor("topics", "--bootstrap-server", b, "--describe", "--topic", t))
    gregor("topics", "--bootstrap-server", b, "--delete", "--topic", t)
    deadline = time.time() + 20
    while t in out(gregor("topics", "--bootstrap-server", b, "--list")).split():
        assert time.time() < deadline, "topic still listed after delete"
        time.sleep(0.2)


# ------------------------------------------------------------------ errors: one line, non-zero


def one_line_error(p):
    err = p.stderr.decode().strip()
    assert p.returncode != 0, (p.returncode, err)
    assert err and len(err.splitlines()) == 1, err
    return err


def test_errors_are_one_clear_line(broker):
    dead = "127.0.0.1:%d" % free_port()
    err = one_line_error(gregor("topics", "--bootstrap-server", dead, "--list", check=False, timeout=60))
    assert dead in err, err
    err = one_line_error(gregor("topics", "--bootstrap-server", broker.bootstrap, "--describe",
                                "--topic", "no-such-topic-xyz", check=False))
    assert "no-such-topic-xyz" in err and "does not exist" in err, err
    err = one_line_error(gregor("topics", "--bootstrap-server", broker.bootstrap, "--lisst", check=False))
    assert "--lisst" in err, err
    err = one_line_error(gregor("console-consumer", "--bootstrap-server", broker.bootstrap,
                                "--topic", "no-such-topic-xyz", check=False))
    assert "no-such-topic-xyz" in err, err
    err = one_line_error(gregor("console-producer", "--bootstrap-server", dead, "--topic", "x",
                                input=b"a\n", check=False, timeout=60))
    assert dead in err, err


# ------------------------------------------------------------------ interop with librdkafka


def test_console_producer_records_read_byte_exact_by_kcat(broker):
    b = broker.bootstrap
    t = create_topic(b, unique_topic("cli-to-kcat"), 1)
    lines = [b"h1:v1,h2:x\tk1:value one", b"\tk2:", b"h3:z\tk3:v:with:colons"]
    gregor("console-producer", "--bootstrap-server", b, "--topic", t, "--property", "parse.key=true",
           "--property", "key.separator=:", "--property", "parse.headers=true",
           "--producer-property", "compression.type=lz4", input=b"\n".join(lines) + b"\n")
    recs = kcat_consume(b, t, partition=0, count=3)
    got = [(r.key, r.value, tuple(r.headers)) for r in recs]
    assert got == [
        (b"k1", b"value one", (("h1", b"v1"), ("h2", b"x"))),
        (b"k2", b"", ()),
        (b"k3", b"v:with:colons", (("h3", b"z"),)),
    ], got


def test_kcat_records_read_byte_exact_by_console_consumer(broker):
    b = broker.bootstrap
    t = create_topic(b, unique_topic("kcat-to-cli"), 1)
    kcat_produce(b, t, [(b"ka", b"alpha"), (b"kb", b"beta gamma")], headers=[("hk", "hv")],
                 extra=["-z", "snappy"])
    p = gregor("console-consumer", "--bootstrap-server", b, "--topic", t, "--from-beginning",
               "--max-messages", "2", "--property", "print.key=true", "--property", "print.headers=true",
               "--property", "print.offset=true", "--property", "key.separator=|")
    assert out(p) == "Offset:0|hk:hv|ka|alpha\nOffset:1|hk:hv|kb|beta gamma\n", out(p)


def test_keyed_records_land_where_librdkafka_murmur2_random_puts_them(broker):
    b = broker.bootstrap
    ours = create_topic(b, unique_topic("keys-ours"), 6)
    theirs = create_topic(b, unique_topic("keys-kcat"), 6)
    keys = [("key-%d" % i).encode() for i in range(60)] + [b"a", b"foobar", b"21", b"x" * 37]
    gregor("console-producer", "--bootstrap-server", b, "--topic", ours, "--property", "parse.key=true",
           input=b"".join(k + b"\tv\n" for k in keys))
    kcat_produce(b, theirs, [(k, b"v") for k in keys], partition=None,
                 extra=["-X", "topic.partitioner=murmur2_random"])
    where_ours = {r.key: r.partition for r in kcat_consume(b, ours, count=len(keys))}
    where_theirs = {r.key: r.partition for r in kcat_consume(b, theirs, count=len(keys))}
    assert len(where_ours) == len(keys)
    assert where_ours == where_theirs
    assert len(set(where_ours.values())) > 1


# ------------------------------------------------------------------ groups and configs


def test_consumer_groups_describe_reset_delete(broker):
    b = broker.bootstrap
    t = create_topic(b, unique_topic("cli-groups"), 2)
    g = unique_topic("cli-group")
    gregor("console-producer", "--bootstrap-server", b, "--topic", t, "--property", "parse.key=true",
           "--property", "key.separator=:", input=b"".join(b"k%d:v%d\n" % (i, i) for i in range(10)))
    p = gregor("console-consumer", "--bootstrap-server", b, "--topic", t, "--group", g, "--from-beginning",
               "--max-messages", "10", timeout=90)
    assert sorted(out(p).split()) == sorted("v%d" % i for i in range(10)), out(p)
    assert g in out(gregor("consumer-groups", "--bootstrap-server", b, "--list")).split()
    d = out(gregor("consumer-groups", "--bootstrap-server", b, "--describe", "--group", g))
    rows = [l.split() for l in d.splitlines() if l.startswith(g)]
    assert len(rows) == 2, d
    assert all(r[5] == "0" for r in rows), d   # LAG 0 everywhere
    assert sum(int(r[3]) for r in rows) == 10, d

    r = out(gregor("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", g,
                   "--topic", t, "--to-earliest", "--execute"))
    assert "NEW-OFFSET" in r
    d = out(gregor("consumer-groups", "--bootstrap-server", b, "--describe", "--group", g))
    rows = [l.split() for l in d.splitlines() if l.startswith(g)]
    assert all(r[3] == "0" for r in rows) and sum(int(r[5]) for r in rows) == 10, d

    gregor("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", g, "--topic",
           t + ":0", "--to-offset", "1", "--execute")
    gregor("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", g, "--all-topics",
           "--to-datetime", "2000-01-01T00:00:00.000", "--execute")
    gregor("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", g, "--all-topics",
           "--to-latest", "--execute")
    d = out(gregor("consumer-groups", "--bootstrap-server", b, "--describe", "--group", g))
    assert all(r.split()[5] == "0" for r in d.splitlines() if r.startswith(g)), d

    gregor("consumer-groups", "--bootstrap-server", b, "--delete", "--group", g)
    assert g not in out(gregor("consumer-groups", "--bootstrap-server", b, "--list")).split()


def test_configs_describe_alter_delete(broker):
    b = broker.bootstrap
    t = create_topic(b, unique_topic("cli-configs"), 1)
    gregor("configs", "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", t,
           "--alter", "--add-config", "retention.ms=86400000,max.message.bytes=200000")
    d = out(gregor("configs", "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", t,
                   "--describe"))
    assert "retention.ms=86400000" in d and "max.message.bytes=200000" in d, d
    gregor("configs", "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", t,
           "--alter", "--delete-config", "retention.ms")
    d = out(gregor("configs", "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", t,
                   "--describe"))
    assert "retention.ms" not in d and "max.message.bytes=200000" in d, d
    d = out(gregor("configs", "--bootstrap-server", b, "--entity-type", "brokers", "--entity-name", "1",
                   "--describe", "--all"))
    assert "All configs for broker 1 are:" in d and "log.retention.hours" in d or "num.partitions" in d, d
    p = gregor("configs", "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", t,
               "--alter", "--add-config", "no.such.config=1", check=False)
    one_line_error(p)


# ------------------------------------------------------------------ a group mixing our consumer and librdkafka


@pytest.mark.deadline(150)
def printed_records(stdout):
    """[(partition, value)] from console-consumer's "Partition:P<TAB>value" lines."""
    recs = [tuple(l.split("\t")) for l in stdout.decode().splitlines()]
    return [(int(p[len("Partition:"):]), v) for p, v in recs]


def test_group_mixing_our_consumer_with_librdkafka(broker):
    b = broker.bootstrap
    t = create_topic(b, unique_topic("mixed-group"), 4)
    g = unique_topic("mixed")
    n = 200
    gregor("console-producer", "--bootstrap-server", b, "--topic", t, "--property", "parse.key=true",
           input=b"".join(b"k%d\tv%d\n" % (i, i) for i in range(n)))
    ours = subprocess.Popen(
        [gregor_bin(), "console-consumer", "--bootstrap-server", b, "--topic", t, "--group", g,
         "--from-beginning", "--timeout-ms", "12000", "--property", "print.partition=true",
         "--consumer-property", "partition.assignment.strategy=range,roundrobin",
         "--consumer-property", "auto.commit.interval.ms=500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        c = Consumer({"bootstrap.servers": b, "group.id": g, "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": "range", "enable.auto.commit": True,
                      "auto.commit.interval.ms": 500, "session.timeout.ms": 10000})
        c.subscribe([t])
        theirs = []
        first_assignment = set()
        everything = {"v%d" % i for i in range(n)}
        ours_recs, stdout, stderr = None, b"", b""
        # Until ours has left (12 s without records) and, between them, every
        # record was read (librdkafka takes ours' partitions over after it left).
        deadline = time.time() + 40
        while time.time() < deadline:
            m = c.poll(0.5)
            if not first_assignment:
                first_assignment = {(tp.topic, tp.partition) for tp in c.assignment()}
            if m is not None and not m.error():
                theirs.append((m.partition(), m.value().decode()))
            if ours_recs is None and ours.poll() is not None:
                stdout, stderr = ours.communicate(timeout=10)
                ours_recs = printed_records(stdout)
            if ours_recs is not None and {v for _, v in ours_recs} | {v for _, v in theirs} == everything:
                break
        c.close()
        if ours_recs is None:
            stdout, stderr = ours.communicate(timeout=60)
            ours_recs = printed_records(stdout)
    finally:
        if ours.poll() is None:
            ours.kill()
    assert ours.returncode == 0, stderr.decode()
    # The two shared the partitions (librdkafka took all of them only after
    # our consumer left), and between them every record was read.
    assert first_assignment and len(first_assignment) < 4, first_assignment
    assert ours_recs
    values = {v for _, v in ours_recs} | {v for _, v in theirs}
    assert values == everything, len(values)


# ------------------------------------------------------------------ perf tools


def test_perf_producer_and_consumer(broker):
    b = broker.bootstrap
    t = create_topic(b, unique_topic("cli-perf"), 2)
    p = gregor("perf-producer", "--topic", t, "--num-records", "5000", "--record-size", "100",
               "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b, "acks=1",
               "linger.ms=5", timeout=90)
    last = out(p).strip().splitlines()[-1]
    assert last.startswith("5000 records sent, ") and "99.9th." in last, out(p)
    p = gregor("perf-consumer", "--bootstrap-server", b, "--topic", t, "--messages", "5000",
               "--group", unique_topic("perf"), timeout=90)
    lines = out(p).strip().splitlines()
    assert lines[0].startswith("start.time, end.time, data.consumed.in.MB"), out(p)
    assert lines[1].split(", ")[4] == "5000", out(p)

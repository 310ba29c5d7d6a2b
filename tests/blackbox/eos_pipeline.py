#!/usr/bin/python3
"""A consume-transform-produce pipeline with exactly-once semantics, driven by
confluent-kafka (librdkafka) transactions, for the black-box tests
(test_eos_pipeline.py) to kill -9 at random points.

It reads the input topic in a consumer group (read_committed, no auto commit,
static membership so a restart takes its partitions back at once), and for
each batch of up to --max-batch records (a few consume() calls) it runs one
transaction: every input
record becomes one output record in the same partition of the output topic,

    key   = the input key
    value = input value + b":out"
    headers: src = b"<input partition>:<input offset>"
             txn = the transaction's tag, b"<instance>.<pid>.<seq>"
             n   = how many records the transaction holds
             x   = b"1" if the pipeline means to abort it (see --abort-prob)

then sends the consumer's positions with send_offsets_to_transaction and
commits. Errors are handled as librdkafka's transactional API says: a
retriable error retries the call, one that requires an abort aborts the
transaction and rewinds the consumer to where the batch began (the committed
offsets), a fatal one exits with status 2 so the harness starts it again (the
next init_transactions fences this instance and aborts what it left open).

--journal FILE gets a line `commit TAG` or `abort TAG` once commit_transaction
or abort_transaction returned, for eos_checker to tell aborted reads from
torn transactions. --crash-prob P makes the pipeline SIGKILL itself with
probability P at each of a few named points (after producing, after sending
the offsets, after committing), seeded by --seed.

The pipeline exits 0 once the group's committed offsets reach --ends.
"""

import argparse
import os
import random
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

OFFSET_INVALID = -1001


def log(*a):
    print("[eos-pipeline %d %.3f]" % (os.getpid(), time.time()), *a, file=sys.stderr, flush=True)


class NeedAbort(Exception):
    pass


class Pipeline:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.ends = {p: int(e) for p, e in enumerate(args.ends.split(","))}
        self.txn_seq = 0
        # One write(2) a line on an O_APPEND descriptor: a kill -9 leaves whole lines.
        self.journal = os.open(args.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if args.journal else None
        self.assigned = set()
        self.committed_ok = 0
        self.aborted = 0
        common = {"bootstrap.servers": args.bootstrap, "socket.timeout.ms": 10000,
                  "topic.metadata.refresh.interval.ms": 2000, "reconnect.backoff.max.ms": 500}
        self.consumer = Consumer(dict(common, **{
            "group.id": args.group,
            "group.instance.id": args.instance,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": args.session_timeout_ms,
            "fetch.wait.max.ms": 100,
            "max.partition.fetch.bytes": 1024,  # a few batches of each partition a fetch
        }, **({"debug": args.debug} if args.debug else {})))
        self.producer = Producer(dict(common, **{
            "transactional.id": "%s-%s" % (args.group, args.instance),
            "transaction.timeout.ms": args.txn_timeout_ms,
            "message.timeout.ms": args.txn_timeout_ms,
            "linger.ms": 5,
        }))

    # ------------------------------------------------------------ helpers

    def maybe_crash(self, where):
        if self.a.crash_prob > 0 and self.rng.random() < self.a.crash_prob:
            log("crash point %s: SIGKILL myself" % where)
            os.kill(os.getpid(), signal.SIGKILL)

    def note(self, what, tag):
        if self.journal is not None:
            os.write(self.journal, ("%s %s\n" % (what, tag)).encode())

    def txn_call(self, what, fn, attempts=60):
        """Calls a transactional API: retries a retriable error (bounded),
        raises NeedAbort when the transaction must be aborted, exits 2 on a
        fatal error and 3 on anything else."""
        for k in range(attempts):
            try:
                return fn()
            except KafkaException as e:
                err = e.args[0]
                if err.fatal():
                    log("%s: fatal error %s: exit 2" % (what, err))
                    sys.exit(2)
                if err.txn_requires_abort():
                    log("%s: %s requires an abort" % (what, err))
                    raise NeedAbort(err)
                if err.retriable():
                    log("%s: retriable %s (attempt %d)" % (what, err, k + 1))
                    time.sleep(0.2)
                    continue
                log("%s: error %s: exit 3" % (what, err))
                sys.exit(3)
        log("%s: still failing after %d attempts: exit 4" % (what, attempts))
        sys.exit(4)

    def on_assign(self, consumer, parts):
        self.assigned = {p.partition for p in parts}
        log("assigned %s" % sorted(self.assigned))

    def on_revoke(self, consumer, parts):
        log("revoked %s" % sorted(p.partition for p in parts))
        self.assigned = set()

    def committed(self):
        """The group's committed offsets of the input partitions, or None
        when they cannot be read now (e.g. an unstable offset)."""
        try:
            got = self.consumer.committed([TopicPartition(self.a.input, p) for p in self.ends], timeout=10)
        except KafkaException as e:
            log("committed(): %s" % e)
            return None
        out = {}
        for tp in got:
            if tp.error:
                log("committed(): partition %d: %s" % (tp.partition, tp.error))
                return None
            out[tp.partition] = tp.offset
        return out

    def rewind(self, starts):
        for p, off in sorted(starts.items()):
            for k in range(50):
                try:
                    self.consumer.seek(TopicPartition(self.a.input, p, off))
                    break
                except KafkaException as e:
                    log("seek %d:%d: %s (attempt %d)" % (p, off, e, k + 1))
                    time.sleep(0.1)
            else:
                log("cannot rewind partition %d to %d: exit 5" % (p, off))
                sys.exit(5)
        log("rewound to %s" % sorted(starts.items()))

    # ------------------------------------------------------------ one transaction

    def run_batch(self, msgs):
        self.txn_seq += 1
        tag = "%s.%d.%d" % (self.a.instance, os.getpid(), self.txn_seq)
        mean_abort = self.a.abort_prob > 0 and self.rng.random() < self.a.abort_prob
        starts, nexts = {}, {}
        for m in msgs:
            starts.setdefault(m.partition(), m.offset())
            nexts[m.partition()] = m.offset() + 1
        self.txn_call("begin_transaction", self.producer.begin_transaction, attempts=1)
        try:
            n = str(len(msgs)).encode()
            for m in msgs:
                headers = [("src", b"%d:%d" % (m.partition(), m.offset())), ("txn", tag.encode()), ("n", n)]
                if mean_abort:
                    headers.append(("x", b"1"))
                value = (m.value() or b"") + b":out"
                while True:
                    try:
                        self.producer.produce(self.a.output, value=value, key=m.key(), partition=m.partition(),
                                              headers=headers)
                        break
                    except BufferError:
                        self.producer.poll(0.05)
                self.producer.poll(0)
            self.maybe_crash("produced")
            if mean_abort:
                self.producer.flush(10)
                raise NeedAbort("meant")
            offsets = [TopicPartition(self.a.input, p, o) for p, o in sorted(nexts.items())]
            meta = self.consumer.consumer_group_metadata()
            self.txn_call("send_offsets_to_transaction",
                          lambda: self.producer.send_offsets_to_transaction(offsets, meta, 30))
            self.maybe_crash("offsets-sent")
            self.txn_call("commit_transaction", lambda: self.producer.commit_transaction(30))
            self.note("commit", tag)
            self.committed_ok += 1
            self.maybe_crash("committed")
        except NeedAbort as e:
            self.txn_call("abort_transaction", lambda: self.producer.abort_transaction(30))
            self.note("abort", tag)
            self.aborted += 1
            log("aborted %s (%s)" % (tag, e))
            self.rewind(starts)

    # ------------------------------------------------------------ main loop

    def run(self):
        self.txn_call("init_transactions", lambda: self.producer.init_transactions(30))
        log("initialized; ends %s" % sorted(self.ends.items()))
        self.consumer.subscribe([self.a.input], on_assign=self.on_assign, on_revoke=self.on_revoke)
        deadline = time.monotonic() + self.a.max_seconds
        idle_checks = 0
        while time.monotonic() < deadline:
            batch = self.rng.randint(1, self.a.max_batch)
            msgs = self.consumer.consume(num_messages=batch, timeout=0.3)
            # librdkafka hands out one partition's messages at a time: a few
            # more calls let a transaction span partitions (and markers).
            for _ in range(3):
                if not msgs or len(msgs) >= batch:
                    break
                msgs += self.consumer.consume(num_messages=batch - len(msgs), timeout=0.05)
            errs = [m for m in msgs if m.error()]
            for m in errs:
                log("consumer: %s" % m.error())
                # e.g. a static member fenced by its successor; such an event
                # comes as code _FATAL, without the fatal flag set.
                if m.error().fatal() or m.error().code() == KafkaError._FATAL:
                    log("fatal consumer error: exit 2")
                    sys.exit(2)
            msgs = [m for m in msgs if not m.error()]
            if msgs:
                self.run_batch(msgs)
                if self.a.pause > 0:
                    time.sleep(self.rng.uniform(0, 2 * self.a.pause))
                continue
            idle_checks += 1
            got = self.committed()
            if got is not None and all(got.get(p) == e for p, e in self.ends.items()):
                log("done: committed %s; %d transactions committed and %d aborted by this process"
                    % (sorted(got.items()), self.committed_ok, self.aborted))
                return 0
            if idle_checks % 10 == 0:
                log("idle; committed %s, assigned %s" % (got, sorted(self.assigned)))
        log("not done after %d s: exit 6" % self.a.max_seconds)
        return 6

    def close(self):
        try:
            self.consumer.close()
        except Exception as e:  # noqa: BLE001 - closing is best effort
            log("consumer close: %s" % e)
        self.producer.flush(5)


def topic_args(doc):
    """The arguments the pipeline and its checker share."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--journal")
    return ap


def parse_args(argv=None):
    ap = topic_args(__doc__)
    ap.add_argument("--instance", default="i0", help="group.instance.id; the transactional.id is GROUP-INSTANCE")
    ap.add_argument("--ends", required=True, help="input end offsets, partition 0 first: 1000,1000,1000")
    ap.add_argument("--max-batch", type=int, default=40, help="records per transaction at most")
    ap.add_argument("--pause", type=float, default=0.0, help="mean seconds between transactions")
    ap.add_argument("--abort-prob", type=float, default=0.1, help="abort this share of transactions on purpose")
    ap.add_argument("--crash-prob", type=float, default=0.0, help="SIGKILL itself at a crash point")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--txn-timeout-ms", type=int, default=20000)
    ap.add_argument("--session-timeout-ms", type=int, default=10000)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--debug", help="librdkafka debug contexts for the consumer, e.g. cgrp")
    return ap.parse_args(argv)


def main(argv=None):
    p = Pipeline(parse_args(argv))
    try:
        rc = p.run()
    except SystemExit as e:
        os._exit(e.code)  # after an error a clean close could hang: the harness restarts us
    except KafkaException as e:  # from a call outside txn_call (produce, flush, consume)
        err = e.args[0]
        log("uncaught %s: exit %d" % (err, 2 if err.fatal() else 3))
        os._exit(2 if err.fatal() else 3)
    p.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Checks what an exactly-once pipeline (eos_pipeline.py) left in its output
topic, reading it back as a client would:

- read_committed: every input record appears exactly once (`missing`,
  `duplicates`), and each output partition holds its input partition's records
  in input order (`out_of_order`);
- aborted reads: records a read_committed read returned although their
  transaction was aborted (the pipeline marks the ones it aborts on purpose
  with header x=1, and its journal names every transaction it aborted);
- torn transactions: a transaction of which a read_committed read returned
  some records but not all (its records carry the count n), or one the
  journal says committed whose records are not all there;
- the read_uncommitted read holds at least what the read_committed one holds
  (`lost_uncommitted`), and reaches the same end (`unstable`: a partition
  whose last stable offset stays below its high watermark, a transaction left
  hanging);
- the group's committed offsets equal the input's end offsets (`offsets`).

Usable as a module (check(...) -> Report) and from the command line:
    eos_checker.py --bootstrap H:P --input IN --output OUT --group G [--journal F]
"""

import collections
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from eos_pipeline import topic_args


def _consumer(bootstrap, isolation, group=None):
    return Consumer({
        "bootstrap.servers": bootstrap, "group.id": group or "eos-check-" + uuid.uuid4().hex[:8],
        "enable.auto.commit": False, "enable.auto.offset.store": False, "enable.partition.eof": True,
        "auto.offset.reset": "earliest", "isolation.level": isolation, "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000, "check.crcs": True,
    })


def partitions_of(bootstrap, topic, timeout=20):
    c = _consumer(bootstrap, "read_uncommitted")
    try:
        deadline = time.monotonic() + timeout
        while True:
            md = c.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                return sorted(t.partitions)
            if time.monotonic() > deadline:
                raise AssertionError("topic %s: no metadata within %ds (%r)" % (topic, timeout, t))
            time.sleep(0.2)
    finally:
        c.close()


def end_offsets(bootstrap, topic, partitions, isolation="read_uncommitted"):
    c = _consumer(bootstrap, isolation)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        c.close()


def read_all(bootstrap, topic, partitions, isolation, timeout=30):
    """Every record of the partitions, read from the beginning to the end
    (EOF, the last stable offset for read_committed): ({partition: [msg]},
    {partition: end offset})."""
    c = _consumer(bootstrap, isolation)
    try:
        c.assign([TopicPartition(topic, p, 0) for p in partitions])
        out = {p: [] for p in partitions}
        ends = {}
        deadline = time.monotonic() + timeout
        while len(ends) < len(partitions):
            if time.monotonic() > deadline:
                raise AssertionError("%s read of %s: no end of partitions %s within %ds"
                                     % (isolation, topic, sorted(set(partitions) - set(ends)), timeout))
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    ends[m.partition()] = m.offset()
                    continue
                raise AssertionError("%s read of %s: %s" % (isolation, topic, m.error()))
            ends.pop(m.partition(), None)
            out[m.partition()].append(m)
        return out, ends
    finally:
        c.close()


class OutRec:
    __slots__ = ("partition", "offset", "key", "value", "src", "txn", "n", "meant_abort")

    def __init__(self, m):
        h = dict(m.headers() or ())
        self.partition, self.offset, self.key, self.value = m.partition(), m.offset(), m.key(), m.value()
        sp, so = h["src"].split(b":")
        self.src = (int(sp), int(so))
        self.txn = h["txn"].decode()
        self.n = int(h["n"])
        self.meant_abort = h.get("x") == b"1"


class Report:
    def __init__(self):
        self.records_in = 0
        self.records_committed = 0
        self.records_uncommitted = 0
        self.txns = 0
        self.multi_partition_txns = 0  # committed transactions over more than one partition
        self.missing = []          # (input partition, offset)
        self.duplicates = []       # (input partition, offset, times)
        self.out_of_order = []     # (output partition, offset, src, previous src)
        self.misplaced = []        # (output partition, offset, src)
        self.bad_values = []       # (output partition, offset, value, expected)
        self.aborted_reads = []    # (output partition, offset, txn tag, why)
        self.torn = []             # (txn tag, committed records, n, why)
        self.lost_uncommitted = []  # (output partition, offset): in read_committed, not read_uncommitted
        self.unstable = {}         # output partition: (last stable offset, high watermark)
        self.offsets = {}          # input partition: (committed, end) where they differ
        self.journal = (0, 0)      # (commits, aborts) it names

    @property
    def ok(self):
        return not (self.missing or self.duplicates or self.out_of_order or self.misplaced or self.bad_values
                    or self.aborted_reads or self.torn or self.lost_uncommitted or self.unstable or self.offsets)

    def summary(self):
        return ("%s: in %d, out committed %d (uncommitted %d) in %d txns (%d over several partitions); "
                "journal %d commits %d aborts; "
                "missing %d, duplicates %d, out of order %d, misplaced %d, bad values %d, aborted reads %d, "
                "torn %d, lost from read_uncommitted %d, unstable partitions %d, offsets off %d"
                % ("OK" if self.ok else "BAD", self.records_in, self.records_committed, self.records_uncommitted,
                   self.txns, self.multi_partition_txns, self.journal[0], self.journal[1], len(self.missing), len(self.duplicates),
                   len(self.out_of_order), len(self.misplaced), len(self.bad_values), len(self.aborted_reads),
                   len(self.torn), len(self.lost_uncommitted), len(self.unstable), len(self.offsets)))

    def details(self, limit=10):
        lines = []
        for name in ("missing", "duplicates", "out_of_order", "misplaced", "bad_values", "aborted_reads", "torn",
                     "lost_uncommitted"):
            v = getattr(self, name)
            if v:
                lines.append("%s (%d): %r%s" % (name, len(v), v[:limit], " ..." if len(v) > limit else ""))
        if self.unstable:
            lines.append("unstable (last stable offset, high watermark): %r" % self.unstable)
        if self.offsets:
            lines.append("group offsets (committed, input end): %r" % self.offsets)
        return "\n".join(lines)


def read_journal(path):
    commits, aborts = set(), set()
    if path:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        (commits if parts[0] == "commit" else aborts).add(parts[1])
        except FileNotFoundError:
            pass
    return commits, aborts


def committed_offsets(bootstrap, group, topic, partitions, timeout=30):
    """The group's committed offsets, retried while they are unstable."""
    c = _consumer(bootstrap, "read_committed", group=group)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
                if not any(tp.error for tp in got):
                    return {tp.partition: tp.offset for tp in got}
                last = [tp.error for tp in got if tp.error]
            except KafkaException as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError("committed offsets of group %s: %s" % (group, last))
            time.sleep(0.3)
    finally:
        c.close()


def check(bootstrap, input_topic, output_topic, group, journal=None, timeout=30):
    r = Report()
    in_parts = partitions_of(bootstrap, input_topic)
    out_parts = partitions_of(bootstrap, output_topic)
    inputs, in_ends = read_all(bootstrap, input_topic, in_parts, "read_committed", timeout)
    r.records_in = sum(len(v) for v in inputs.values())
    expected_value = {(p, m.offset()): (m.value() or b"") + b":out" for p, ms in inputs.items() for m in ms}

    # The uncommitted view first: the committed one must not end beyond it.
    raw, hw = read_all(bootstrap, output_topic, out_parts, "read_uncommitted", timeout)
    got, lso = read_all(bootstrap, output_topic, out_parts, "read_committed", timeout)
    raw = {p: [OutRec(m) for m in ms] for p, ms in raw.items()}
    got = {p: [OutRec(m) for m in ms] for p, ms in got.items()}
    r.records_uncommitted = sum(len(v) for v in raw.values())
    r.records_committed = sum(len(v) for v in got.values())
    for p in out_parts:
        if lso[p] != hw[p]:
            r.unstable[p] = (lso[p], hw[p])
        raw_offsets = {x.offset for x in raw[p]}
        r.lost_uncommitted += [(p, x.offset) for x in got[p] if x.offset not in raw_offsets]

    commits, aborts = read_journal(journal)
    r.journal = (len(commits), len(aborts))

    seen = collections.Counter()
    per_txn = collections.defaultdict(list)
    for p in out_parts:
        prev = None
        for x in got[p]:
            seen[x.src] += 1
            per_txn[x.txn].append(x)
            if x.src[0] != p:
                r.misplaced.append((p, x.offset, x.src))
            if prev is not None and x.src[0] == prev[0] and x.src[1] <= prev[1]:
                r.out_of_order.append((p, x.offset, x.src, prev))
            prev = x.src
            want = expected_value.get(x.src)
            if want is not None and x.value != want:
                r.bad_values.append((p, x.offset, x.value, want))
            if x.meant_abort:
                r.aborted_reads.append((p, x.offset, x.txn, "x=1: the pipeline aborted it on purpose"))
            elif x.txn in aborts:
                r.aborted_reads.append((p, x.offset, x.txn, "the journal says aborted"))
    r.txns = len(per_txn)
    r.multi_partition_txns = sum(1 for xs in per_txn.values() if len({x.partition for x in xs}) > 1)
    for src in sorted(expected_value):
        if seen[src] == 0:
            r.missing.append(src)
    r.duplicates = [(s[0], s[1], k) for s, k in sorted(seen.items()) if k > 1]
    r.misplaced += [(None, None, s) for s in sorted(seen) if s not in expected_value]
    for tag, xs in sorted(per_txn.items()):
        if len(xs) != xs[0].n:
            r.torn.append((tag, len(xs), xs[0].n, "partly visible to read_committed"))
    for tag in sorted(commits - set(per_txn)):
        r.torn.append((tag, 0, None, "the journal says committed; read_committed returned none of it"))

    offs = committed_offsets(bootstrap, group, input_topic, in_parts, timeout)
    for p in in_parts:
        if offs.get(p) != in_ends[p]:
            r.offsets[p] = (offs.get(p), in_ends[p])
    return r


def main(argv=None):
    a = topic_args(__doc__).parse_args(argv)
    r = check(a.bootstrap, a.input, a.output, a.group, a.journal)
    print(r.summary())
    if not r.ok:
        print(r.details())
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())

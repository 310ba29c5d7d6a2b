"""Judges a replication fault run from what the clients saw: the producer's
delivery reports (bb_loadgen's file), the topic as it is afterwards (every
partition read from offset 0 to its high watermark), and the consumer group's
commits and committed() answers.

What it finds (Check):
- lost: an acknowledged record whose value is nowhere in the topic;
- moved: an acknowledged record found, but not at the (partition, offset) it was
  acknowledged at (a truncation and re-append, or a leader that acknowledged
  offsets of its own);
- duplicates: a value in the log more than once (expected now and then without
  idempotence: a retried batch whose first attempt was written);
- order violations: within a partition, the first copy of a producer key's
  record seq N coming after the first copy of a higher seq M of the same key
  (copies after the first are duplicates, not disorder), where the producer was
  told N was written before M (N acknowledged first). When the producer itself
  acknowledged M first, or never had N acknowledged, the client reordered them:
  librdkafka without idempotence counts max.in.flight per connection, so after a
  leader change it sends M to the new leader while N is still in flight to the
  old one, which answers NOT_LEADER (or times out) later and N is retried behind
  M. Those are reported as client_reorders, not failed;
- unacked_in_log: records whose delivery failed or was never reported, found in
  the log anyway (allowed: the broker may write what it could not confirm);
- committed offsets that went back: for each partition, the group's committed
  offset as committed() answered over time, and as the member's own commits
  succeeded, must never decrease (nor vanish once set);
- phantom reads: a record the group member read at (partition, offset) that is
  not there in the final log (it read above what became the high watermark);
- unavailability: for the partitions a fault hit, the time from the fault to the
  next acknowledged record, and the longest gap between acknowledgements from
  the fault on; for the group, the longest gap between its commits.

Usable from the tests and from the campaign (fault_campaign.py):
    log, marks = read_topic(bootstrap, topic, partitions)
    chk = check(parse_acks(acks_file), log, marks, parse_group(group_file), windows=[...])
    chk.ok  /  chk.summary()  /  chk.details()  /  chk.as_dict()
"""

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from bb_loadgen import parse_value

OFFSET_INVALID = -1001


# ------------------------------------------------------------------ inputs


@dataclass
class Acks:
    acked: Dict[Tuple[int, int], Tuple[int, int, float]]  # (key, seq) -> (partition, offset, t_ack)
    failed: Dict[Tuple[int, int], str]                     # (key, seq) -> error
    summary: dict
    tag: Optional[str] = None


def parse_acks(path, tag=None):
    acked, failed, summary = {}, {}, {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 5)
            if parts[0] == "A" and len(parts) == 6:
                p, o, k, s, t = int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4]), float(parts[5])
                acked[(k, s)] = (p, o, t)
            elif parts[0] == "F" and len(parts) >= 4:
                failed[(int(parts[1]), int(parts[2]))] = " ".join(parts[4:])
            elif parts[0] == "S":
                summary = json.loads(line[2:])
    return Acks(acked, failed, summary, tag)


@dataclass
class Group:
    reads: List[Tuple[int, int, str]]                      # (partition, offset, value) as read
    commits: List[Tuple[float, Dict[int, int]]]            # successful commits
    probes: List[Tuple[float, Dict[int, int]]]             # committed() answers
    errors: List[str]


def parse_group(path):
    reads, commits, probes, errors = [], [], [], []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            kind = line[:1]
            if kind == "R":
                _, p, o, v = (line.split(" ", 3) + [""])[:4]
                reads.append((int(p), int(o), v))
            elif kind in "CO" and line[1:2] == " ":
                _, t, js = line.split(" ", 2)
                d = {int(k): v for k, v in json.loads(js).items()}
                (commits if kind == "C" else probes).append((float(t), d))
            elif kind == "E":
                errors.append(line[2:])
    return Group(reads, commits, probes, errors)


def read_topic(bootstrap, topic, partitions, timeout=60):
    """Every partition from offset 0 to its high watermark, through a consumer
    that is in no group (assign + seek). Returns ({partition: [(offset, value)]},
    {partition: (low, high)})."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "checker-" + uuid.uuid4().hex[:8],
                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000, "check.crcs": True,
                  "topic.metadata.refresh.interval.ms": 1000})
    try:
        deadline = time.monotonic() + timeout
        marks = {}
        for p in partitions:
            while True:
                try:
                    marks[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        log = {p: [] for p in partitions}
        todo = {p for p in partitions if marks[p][1] > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        pos = {p: -1 for p in partitions}
        while todo:
            if time.monotonic() > deadline:
                raise AssertionError("checker: reading %s timed out; at %r of high watermarks %r"
                                     % (topic, pos, marks))
            m = c.poll(0.2)
            if m is None:
                continue
            p = m.partition()
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= marks[p][1]:
                        todo.discard(p)
                    continue
                raise AssertionError("checker: consumer error on %s[%s]: %s" % (topic, p, m.error()))
            if m.offset() < marks[p][1]:
                log[p].append((m.offset(), m.value()))
            pos[p] = m.offset()
            if m.offset() + 1 >= marks[p][1]:
                todo.discard(p)
        return log, marks
    finally:
        c.close()


# ------------------------------------------------------------------ the verdict


@dataclass
class Window:
    """A fault: when it started, when it was healed, the partitions it hit, and
    until when its unavailability is measured (default: the end of the load;
    a rolling restart's windows end where the next node's begins)."""
    name: str
    t_fault: float
    t_heal: float
    partitions: List[int]
    until: Optional[float] = None


@dataclass
class Check:
    acked: int = 0
    failed: int = 0
    unreported: int = 0
    log_records: int = 0
    lost: List[tuple] = field(default_factory=list)           # (key, seq, partition, offset)
    moved: List[tuple] = field(default_factory=list)          # (key, seq, acked (p, o), found [(p, o)])
    duplicates: int = 0                                       # extra copies in the log
    duplicated_acked: int = 0                                 # of which acknowledged records
    order_violations: List[tuple] = field(default_factory=list)  # (partition, offset, key, seq, after seq)
    client_reorders: List[tuple] = field(default_factory=list)   # the same, acknowledged in that order
    unacked_in_log: int = 0
    foreign: int = 0                                          # values this load did not write
    low_watermarks: Dict[int, int] = field(default_factory=dict)
    high_watermarks: Dict[int, int] = field(default_factory=dict)
    committed_back: List[tuple] = field(default_factory=list)  # (partition, t, from, to, source)
    committed_beyond_end: List[tuple] = field(default_factory=list)  # (partition, committed, high watermark)
    commit_errors: int = 0
    group_reads: int = 0
    phantom_reads: List[tuple] = field(default_factory=list)  # (partition, offset, value read, value now)
    unavailability: Dict[str, dict] = field(default_factory=dict)  # window name -> figures

    @property
    def ok(self):
        return not self.lost and not self.order_violations and not self.committed_back

    def summary(self):
        u = ""
        for name, f in self.unavailability.items():
            u += " unavail[%s]=%s (first ack %s%s)" % (
                name, _s(f["max_gap_s"]), _s(f["first_ack_s"]),
                ", group commits %s" % _s(f["group_commit_gap_s"]) if "group_commit_gap_s" in f else "")
        return ("acked=%d lost=%d moved=%d dup=%d order=%d client_reorders=%d failed=%d unreported=%d "
                "unacked_in_log=%d commits_back=%d phantom=%d%s"
                % (self.acked, len(self.lost), len(self.moved), self.duplicates, len(self.order_violations),
                   len(self.client_reorders), self.failed, self.unreported, self.unacked_in_log, len(self.committed_back),
                   len(self.phantom_reads), u))

    def details(self, limit=5):
        lines = []

        def some(what, items):
            if items:
                lines.append("%s (%d): %s%s" % (what, len(items), ", ".join(map(str, items[:limit])),
                                                " ..." if len(items) > limit else ""))
        some("lost (key, seq, acked partition, acked offset)", self.lost)
        if self.lost:
            by_p = {}
            for _, _, p, o in self.lost:
                lo, hi = by_p.get(p, (o, o))
                by_p[p] = (min(lo, o), max(hi, o))
            lines.append("lost acknowledged offsets by partition: %s; high watermarks now %s"
                         % (", ".join("p%d %d..%d" % (p, lo, hi) for p, (lo, hi) in sorted(by_p.items())),
                            self.high_watermarks))
        some("moved (key, seq, acked at, found at)", self.moved)
        some("order violations (partition, offset, key, seq, after seq)", self.order_violations)
        some("client reorders (partition, offset, key, seq, after seq)", self.client_reorders)
        some("committed offsets went back (partition, t, from, to, seen by)", self.committed_back)
        some("committed beyond the high watermark (partition, committed, high watermark)",
             self.committed_beyond_end)
        some("phantom reads (partition, offset, read, now)", self.phantom_reads)
        if any(self.low_watermarks.values()):
            lines.append("log start offsets not 0: %s" % self.low_watermarks)
        return "\n".join(lines)

    def as_dict(self):
        return asdict(self)


def _s(x):
    return "-" if x is None else "%.1fs" % x


def check(acks, log, marks, group=None, windows=(), t_end=None, partitions_of_key=None):
    """acks: parse_acks(); log, marks: read_topic(); group: parse_group() or
    None; windows: [Window]; t_end: when the load stopped (bounds the
    unavailability). partitions_of_key(key) -> the partition it must be in
    (default: key % number of partitions)."""
    nparts = len(log)
    where = partitions_of_key or (lambda k: k % nparts)
    r = Check(acked=len(acks.acked), failed=len(acks.failed), unreported=int(acks.summary.get("unreported", 0)))
    r.low_watermarks = {p: m[0] for p, m in marks.items()}
    r.high_watermarks = {p: m[1] for p, m in marks.items()}

    found = {}        # (key, seq) -> [(p, o)]
    at = {}           # (p, o) -> value
    for p in sorted(log):
        newest = {}   # key -> highest seq whose first copy is already seen in p
        for o, v in log[p]:
            at[(p, o)] = v
            r.log_records += 1
            pv = parse_value(v)
            if pv is None or (acks.tag is not None and pv[0] != acks.tag):
                r.foreign += 1
                continue
            _, k, s = pv
            copies = found.setdefault((k, s), [])
            copies.append((p, o))
            if len(copies) > 1:
                r.duplicates += 1
                if (k, s) in acks.acked and len(copies) == 2:
                    r.duplicated_acked += 1
                continue
            if k in newest and s < newest[k]:
                mine, later = acks.acked.get((k, s)), acks.acked.get((k, newest[k]))
                if mine and later and mine[2] < later[2]:
                    r.order_violations.append((p, o, k, s, newest[k]))
                else:
                    r.client_reorders.append((p, o, k, s, newest[k]))
            newest[k] = max(s, newest.get(k, s))

    for (k, s), (p, o, _t) in sorted(acks.acked.items()):
        copies = found.get((k, s))
        if not copies:
            r.lost.append((k, s, p, o))
        elif (p, o) not in copies or p != where(k):
            r.moved.append((k, s, (p, o), copies))
    r.unacked_in_log = sum(1 for ks in found if ks not in acks.acked)

    if group is not None:
        _check_group(r, group, at, marks)
    if t_end is None:
        t_end = max([t for _, _, t in acks.acked.values()] + [w.t_heal for w in windows], default=0.0)
    for w in windows:
        r.unavailability[w.name] = unavailability(acks, w, t_end, w.until)
        if group is not None:
            r.unavailability[w.name]["group_commit_gap_s"] = commit_gap(group, w, t_end, w.until)
    return r


def _check_group(r, group, at, marks):
    r.group_reads = len(group.reads)
    r.commit_errors = len(group.errors)
    for p, o, v in group.reads:
        now = at.get((p, o))
        if now is None or now.decode(errors="replace") != v:
            r.phantom_reads.append((p, o, v, None if now is None else now.decode(errors="replace")))
    # Every observation of a committed offset, in time order: committed() answers
    # and the member's own successful commits (which the coordinator then holds).
    events = sorted([(t, d, "committed()") for t, d in group.probes] + [(t, d, "commit") for t, d in group.commits],
                    key=lambda e: e[0])
    best = {}
    for t, d, source in events:
        for p, off in d.items():
            prev = best.get(p)
            if off == OFFSET_INVALID or off < 0:
                if prev is not None and source == "committed()":
                    r.committed_back.append((p, round(t, 3), prev, off, source))
                continue
            if prev is not None and off < prev:
                r.committed_back.append((p, round(t, 3), prev, off, source))
            best[p] = off if prev is None else max(prev, off)
    for p, off in best.items():
        if p in marks and off > marks[p][1]:
            r.committed_beyond_end.append((p, off, marks[p][1]))


def _outage(t_fault, times, until, t_end):
    """times: sorted event times after t_fault (up to t_end). Returns (first,
    gap): the time from the fault to the first event (None if none), and the
    longest time without one from the fault to `until`, or on to the first
    event if none came before `until` (a window that ends, e.g. at the next
    restart, before its partition recovered still counts the whole outage)."""
    if not times:
        return None, t_end - t_fault
    limit = max(until, times[0])
    gap, prev = 0.0, t_fault
    for t in [t for t in times if t <= limit] + [limit]:
        gap = max(gap, t - prev)
        prev = max(prev, t)
    return times[0] - t_fault, gap


def commit_gap(group, w, t_end, until=None):
    """The longest time from the fault of window w without a successful commit
    of the group member that covered every partition (see _outage)."""
    n = max((len(d) for _, d in group.commits), default=0)
    times = sorted(t for t, d in group.commits
                   if w.t_fault < t <= t_end and len(d) == n and all(v >= 0 for v in d.values()))
    return _outage(w.t_fault, times, t_end if until is None else until, t_end)[1]


def unavailability(acks, w, t_end, until=None):
    """For the partitions of window w: first_ack_s, the time from the fault to
    the next acknowledgement on each (the largest of them), and max_gap_s, the
    longest time without an acknowledgement from the fault on (which also
    covers a few acknowledgements still arriving just after the fault); see
    _outage for `until`."""
    until = t_end if until is None else until
    times = {p: [] for p in w.partitions}
    for p, _, t in acks.acked.values():
        if p in times and w.t_fault < t <= t_end:
            times[p].append(t)
    first, gap, never = 0.0, 0.0, []
    for p, ts in times.items():
        f, g = _outage(w.t_fault, sorted(ts), until, t_end)
        if f is None:
            never.append(p)
        else:
            first = max(first, f)
        gap = max(gap, g)
    return {"first_ack_s": None if never or not times else first, "max_gap_s": gap, "never_acked_after": never,
            "fault_s": w.t_heal - w.t_fault}

"""Thin, bounded wrappers around the real clients the black-box tests drive:
kcat, confluent-kafka (librdkafka), kafka-python and kafkajs (node).

Every wrapper returns records as `Rec` so the tests can compare what one client
wrote with what another read, byte for byte.
"""

import base64
import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional, Tuple

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
JS_DIR = os.path.join(HERE, "js")


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class Rec:
    key: Optional[bytes]
    value: Optional[bytes]
    headers: Tuple[Tuple[str, Optional[bytes]], ...] = ()
    timestamp: Optional[int] = None
    partition: Optional[int] = None
    offset: Optional[int] = field(default=None, compare=False)

    def content(self):
        """What a producer controls: key, value, headers, timestamp."""
        return (self.key, self.value, tuple(self.headers), self.timestamp)


def unique_topic(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def now_ms():
    return int(time.time() * 1000)


def sample_records(ts_base=None, n_extra=0, tag=b""):
    """A set of records covering the awkward cases: binary bytes (all 256
    values), empty key/value, null key, null value, several headers (empty
    value, binary value), explicit timestamps, a larger value."""
    if ts_base is None:
        ts_base = now_ms() - 60_000
    allbytes = bytes(range(256))
    recs = [
        Rec(b"key-1", b"hello" + tag, (("h1", b"v1"), ("h2", b"v2")), ts_base + 1),
        Rec(b"\x00\xffbin\x01key", allbytes + tag, (("bin", allbytes),), ts_base + 2),
        Rec(None, b"null-key" + tag, (), ts_base + 3),
        Rec(b"empty-value", b"", (("empty", b""),), ts_base + 4),
        Rec(b"tombstone", None, (), ts_base + 5),
        Rec(b"", b"empty-key" + tag, (), ts_base + 6),
        Rec(b"big", os.urandom(100_000) + tag, (("n", b"100000"),), ts_base + 7),
        Rec(b"unicode-\xc3\xa9", "gr\u00e9gor \u2603".encode() + tag,
            (("ctype", b"text/plain; charset=utf-8"),), ts_base + 8),
        Rec(b"older-ts", b"timestamps need not increase" + tag, (), ts_base - 5000),
    ]
    for i in range(n_extra):
        recs.append(Rec(b"k%d" % i, b"v%d" % i + tag, (("i", b"%d" % i),), ts_base + 100 + i))
    return recs


def portable_records(ts_base=None, tag=b""):
    """Records every client can both write and read back exactly: binary keys
    and values (never containing kcat's delimiters \\x1e/\\x1f), text headers
    without commas (kcat prints headers as k=v CSV), unique header keys
    (kafkajs keeps headers in an object)."""
    if ts_base is None:
        ts_base = now_ms() - 60_000
    binval = bytes(b for b in range(256) if b not in (0x1E, 0x1F))
    return [
        Rec(b"key-1", b"hello" + tag, (("h1", b"v1"), ("h2", b"v2")), ts_base + 1),
        Rec(b"\x00\xffbin\x01key", binval + tag, (("bin", b"x=y;z"),), ts_base + 2),
        Rec(None, b"null-key" + tag, (), ts_base + 3),
        Rec(b"big", bytes(i % 29 for i in range(50_000)) + tag, (("n", b"50000"),), ts_base + 4),
        Rec(b"unicode-\xc3\xa9", "gr\u00e9gor \u2603".encode() + tag,
            (("ctype", b"text/plain; charset=utf-8"),), ts_base + 5),
        Rec(b"older-ts", b"timestamps need not increase" + tag, (), ts_base - 5000),
    ] + [Rec(b"k%d" % i, b"v%d" % i + tag, (("i", b"%d" % i),), ts_base + 100 + i)
         for i in range(20)]


def describe_diff(got, expected):
    lines = ["got %d records, expected %d" % (len(got), len(expected))]
    names = ("key", "value", "headers", "timestamp")
    for i in range(max(len(got), len(expected))):
        g = got[i].content() if i < len(got) else None
        e = expected[i].content() if i < len(expected) else None
        if g != e:
            lines.append("first difference at index %d (got offset %s):"
                         % (i, got[i].offset if i < len(got) else "-"))
            if g is None or e is None:
                lines.append("  got      %s\n  expected %s" % (_short(g), _short(e)))
            else:
                for n, gv, ev in zip(names, g, e):
                    if gv != ev:
                        lines.append("  %s: got %s\n  %s  expected %s"
                                     % (n, _short(gv), " " * len(n), _short(ev)))
            break
    return "\n".join(lines)


def _short(x, n=300):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def assert_same(got, expected, check_timestamp=True):
    if check_timestamp:
        g = [r.content() for r in got]
        e = [r.content() for r in expected]
    else:
        g = [r.content()[:3] for r in got]
        e = [r.content()[:3] for r in expected]
    assert g == e, describe_diff(got, expected)


# ------------------------------------------------------------------ admin (confluent)


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap, name, partitions=1, config=None, timeout=20):
    a = admin(bootstrap)
    nt = NewTopic(name, num_partitions=partitions, replication_factor=1,
                  config=config or {})
    fs = a.create_topics([nt], request_timeout=timeout)
    fs[name].result(timeout=timeout)
    wait_topic(bootstrap, name, partitions, timeout=timeout)
    return name


def wait_topic(bootstrap, name, partitions, timeout=20):
    """Wait until metadata shows the topic with all partitions led."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions \
                and all(p.leader >= 0 and p.error is None
                        for p in t.partitions.values()):
            return md
        last = t
        time.sleep(0.1)
    raise AssertionError("topic %s not ready with %d partitions within %ds: %r"
                         % (name, partitions, timeout, last))


# ------------------------------------------------------------------ confluent-kafka


def ck_producer(bootstrap, **conf):
    c = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
         "message.timeout.ms": 30000, "socket.timeout.ms": 10000}
    c.update(conf)
    return Producer(c)


def ck_produce(bootstrap, topic, recs, timeout=30, default_partition=0, **conf):
    """Produce recs in order; returns [(partition, offset)] in input order.
    Raises on any delivery error. A record's partition None means
    `default_partition`; default_partition None means the client partitioner."""
    p = ck_producer(bootstrap, **conf)
    results = [None] * len(recs)
    errors = []

    def cb(idx):
        def on_delivery(err, msg):
            if err is not None:
                errors.append((idx, err))
            else:
                results[idx] = (msg.partition(), msg.offset())
        return on_delivery

    for i, r in enumerate(recs):
        kwargs = dict(value=r.value, key=r.key, on_delivery=cb(i))
        part = r.partition if r.partition is not None else default_partition
        if part is not None:
            kwargs["partition"] = part
        if r.timestamp is not None:
            kwargs["timestamp"] = r.timestamp
        if r.headers:
            kwargs["headers"] = list(r.headers)
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, "confluent producer: %d messages undelivered after %ss" % (left, timeout)
    assert not errors, "confluent producer delivery errors: %r" % errors[:5]
    return results


def ck_consumer(bootstrap, **conf):
    c = {"bootstrap.servers": bootstrap,
         "group.id": "bb-" + uuid.uuid4().hex[:8],  # required by the binding; never joined
         "enable.auto.commit": False, "enable.auto.offset.store": False,
         "enable.partition.eof": True, "auto.offset.reset": "earliest",
         "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000,
         "topic.metadata.refresh.interval.ms": 5000,
         "check.crcs": True}
    c.update(conf)
    return Consumer(c)


def ck_msg_to_rec(m):
    ts_type, ts = m.timestamp()
    return Rec(m.key(), m.value(), tuple(m.headers() or ()),
               ts if ts_type != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None,
               m.partition(), m.offset())


def ck_consume(bootstrap, topic, partitions=(0,), expected=None, timeout=30,
               start=confluent_kafka.OFFSET_BEGINNING, **conf):
    """Assign-based consume (no group). Reads until every partition hit EOF
    and at least `expected` records arrived (or just EOF if expected is None).
    Returns records ordered by (partition, offset)."""
    c = ck_consumer(bootstrap, **conf)
    try:
        starts = start if isinstance(start, dict) else {p: start for p in partitions}
        c.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        out = []
        eof = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    if eof >= set(partitions) and (expected is None or len(out) >= expected):
                        break
                    continue
                raise AssertionError("confluent consumer error: %s" % m.error())
            eof.discard(m.partition())
            out.append(ck_msg_to_rec(m))
        else:
            raise AssertionError(
                "confluent consumer: timed out after %ss with %d records (expected %s), "
                "EOF on %s of %s" % (timeout, len(out), expected, sorted(eof), list(partitions)))
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        c.close()


# ------------------------------------------------------------------ kafka-python


def kp_produce(bootstrap, topic, recs, timeout=30, default_partition=0, **cfg):
    from kafka import KafkaProducer
    c = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
             request_timeout_ms=10000, max_block_ms=15000, retries=3)
    c.update(cfg)
    p = KafkaProducer(**c)
    try:
        futs = []
        for r in recs:
            part = r.partition if r.partition is not None else default_partition
            futs.append(p.send(topic, value=r.value, key=r.key, partition=part,
                               timestamp_ms=r.timestamp,
                               headers=list(r.headers) if r.headers else None))
        p.flush(timeout=timeout)
        out = []
        for f in futs:
            md = f.get(timeout=timeout)
            out.append((md.partition, md.offset))
        return out
    finally:
        p.close(timeout=5)


def kp_consumer(bootstrap, **cfg):
    from kafka import KafkaConsumer
    c = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
             auto_offset_reset="earliest", fetch_max_wait_ms=100,
             request_timeout_ms=15000, session_timeout_ms=10000,
             consumer_timeout_ms=1000)
    c.update(cfg)
    return KafkaConsumer(**c)


def kp_msg_to_rec(m):
    return Rec(m.key, m.value, tuple((k, v) for k, v in (m.headers or [])),
               m.timestamp, m.partition, m.offset)


def kp_consume(bootstrap, topic, partitions=(0,), expected=None, timeout=30, **cfg):
    from kafka import TopicPartition as KTP
    c = kp_consumer(bootstrap, **cfg)
    try:
        tps = [KTP(topic, p) for p in partitions]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = []
        deadline = time.monotonic() + timeout
        ends = None
        while time.monotonic() < deadline:
            batch = c.poll(timeout_ms=200)
            for tp, msgs in batch.items():
                out.extend(kp_msg_to_rec(m) for m in msgs)
            if expected is not None and len(out) < expected:
                continue
            if ends is None or not batch:
                ends = c.end_offsets(tps)
            if all(c.position(tp) >= ends[tp] for tp in tps):
                break
        else:
            raise AssertionError("kafka-python consumer: timed out after %ss with %d records "
                                 "(expected %s)" % (timeout, len(out), expected))
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        c.close()


# ------------------------------------------------------------------ kcat

KCAT_FMT = "BEGIN P%p O%o T%T K%K S%S H%h ENDH\\n%k%s\\nEND\\n"
_KCAT_HDR = re.compile(rb"BEGIN P(-?\d+) O(-?\d+) T(-?\d+) K(-?\d+) S(-?\d+) H")


def run(cmd, input=None, timeout=60, check=True):
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\nstderr:\n%s" % (
            " ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-3000:]))
    return p


def parse_kcat_headers(s):
    if not s:
        return ()
    out = []
    for part in s.split(b","):
        if b"=" in part:
            k, v = part.split(b"=", 1)
            out.append((k.decode(), v))
        else:
            out.append((part.decode(), None))
    return tuple(out)


def parse_kcat_output(data):
    out = []
    pos = 0
    while pos < len(data):
        m = _KCAT_HDR.match(data, pos)
        assert m, "unparsable kcat output at %d: %r" % (pos, data[pos:pos + 200])
        part, off, ts, klen, vlen = (int(x) for x in m.groups())
        end_h = data.index(b" ENDH\n", m.end())
        headers = parse_kcat_headers(data[m.end():end_h])
        pos = end_h + len(b" ENDH\n")
        key = None if klen < 0 else data[pos:pos + klen]
        pos += max(klen, 0)
        value = None if vlen < 0 else data[pos:pos + vlen]
        pos += max(vlen, 0)
        assert data[pos:pos + 5] == b"\nEND\n", "kcat framing lost at %d: %r" % (
            pos, data[pos:pos + 50])
        pos += 5
        out.append(Rec(key, value, headers, ts, part, off))
    return out


def kcat_consume(bootstrap, topic, partition=None, offset="beginning", count=None,
                 timeout=60, extra=()):
    cmd = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", str(offset), "-e",
           "-q", "-f", KCAT_FMT, "-m", "15",
           "-X", "socket.timeout.ms=10000", "-X", "fetch.wait.max.ms=100"]
    if partition is not None:
        cmd += ["-p", str(partition)]
    if count is not None:
        cmd += ["-c", str(count)]
    cmd += list(extra)
    p = run(cmd, timeout=timeout)
    return sorted(parse_kcat_output(p.stdout), key=lambda r: (r.partition, r.offset))


KCAT_MSG_DELIM = b"\x1e"
KCAT_KEY_DELIM = b"\x1f"


def kcat_produce(bootstrap, topic, kvs, partition=0, headers=(), null_empty=False,
                 timeout=60, extra=()):
    """kvs: list of (key or None, value bytes). kcat cannot send binary that
    contains its delimiters, nor empty messages (it skips them)."""
    buf = bytearray()
    for k, v in kvs:
        assert KCAT_MSG_DELIM not in v and KCAT_KEY_DELIM not in v
        if k is not None:
            assert KCAT_MSG_DELIM not in k and KCAT_KEY_DELIM not in k
            buf += k + KCAT_KEY_DELIM
        buf += v + KCAT_MSG_DELIM
    cmd = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-D", "\\x1e", "-K", "\\x1f",
           "-m", "15", "-X", "acks=all", "-X", "socket.timeout.ms=10000"]
    if partition is not None:
        cmd += ["-p", str(partition)]
    for hk, hv in headers:
        cmd += ["-H", "%s=%s" % (hk, hv)]
    if null_empty:
        cmd += ["-Z"]
    cmd += list(extra)
    p = run(cmd, input=bytes(buf), timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert "Delivery failed" not in err and "ERROR" not in err, err[-3000:]
    return p


# ------------------------------------------------------------------ kafkajs


def _b64(b):
    return None if b is None else base64.b64encode(b).decode()


def _unb64(s):
    return None if s is None else base64.b64decode(s)


def rec_to_js(r):
    d = {"key": _b64(r.key), "value": _b64(r.value),
         "headers": [[k, _b64(v)] for k, v in r.headers]}
    if r.timestamp is not None:
        d["timestamp"] = str(r.timestamp)
    if r.partition is not None:
        d["partition"] = r.partition
    return d


def rec_from_js(d):
    return Rec(_unb64(d["key"]), _unb64(d["value"]),
               tuple((k, _unb64(v)) for k, v in d["headers"]),
               int(d["timestamp"]), d["partition"], int(d["offset"]))


def kjs_available():
    return os.path.isdir(os.path.join(JS_DIR, "node_modules", "kafkajs"))


class KjsError(Exception):
    pass


def kjs(bootstrap, steps, timeout=90):
    """Run steps in one node process (tests/blackbox/js/kjs.js). Each step is a
    dict with an "op"; returns one result per step: {"ok": ...} or
    {"error": {...}}."""
    req = json.dumps({"brokers": bootstrap.split(","), "steps": steps})
    p = subprocess.run(["node", os.path.join(JS_DIR, "kjs.js")], input=req.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, cwd=JS_DIR)
    lines = [l for l in p.stdout.decode().splitlines() if l.startswith("KJS_RESULT ")]
    if p.returncode != 0 or not lines:
        raise KjsError("kjs.js exited %d\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, p.stdout.decode(errors="replace")[-3000:],
            p.stderr.decode(errors="replace")[-3000:]))
    results = json.loads(lines[-1][len("KJS_RESULT "):])
    return results


def kjs_ok(bootstrap, steps, timeout=90):
    results = kjs(bootstrap, steps, timeout)
    for s, r in zip(steps, results):
        if "error" in r:
            raise KjsError("kafkajs step %s failed: %r" % (s.get("op"), r["error"]))
    return [r["ok"] for r in results]


def kjs_produce(bootstrap, topic, recs, default_partition=0, **opts):
    """Returns kafkajs's send() result. default_partition None means the
    kafkajs DefaultPartitioner (Java-compatible murmur2) picks."""
    msgs = []
    for r in recs:
        m = rec_to_js(r)
        if r.partition is None and default_partition is not None:
            m["partition"] = default_partition
        msgs.append(m)
    step = {"op": "produce", "topic": topic, "messages": msgs}
    step.update(opts)
    return kjs_ok(bootstrap, [step])[0]


def kjs_fetch(bootstrap, topic, partitions=(0,), expected=None, timeout_ms=20000):
    step = {"op": "fetch", "topic": topic, "partitions": list(partitions),
            "expected": expected, "timeoutMs": timeout_ms}
    res = kjs_ok(bootstrap, [step], timeout=timeout_ms / 1000 + 60)[0]
    recs = [rec_from_js(d) for d in res]
    return sorted(recs, key=lambda r: (r.partition, r.offset))


# ------------------------------------------------------------------ health


def assert_healthy(bootstrap, timeout=30):
    """A normal client can still create a topic, produce and consume."""
    t = unique_topic("health")
    create_topic(bootstrap, t, 1, timeout=timeout)
    recs = [Rec(b"k", b"still alive", (("h", b"1"),), now_ms())]
    ck_produce(bootstrap, t, recs, timeout=timeout)
    got = ck_consume(bootstrap, t, expected=1, timeout=timeout)
    assert_same(got, recs)

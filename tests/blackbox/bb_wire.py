"""Hand-built Kafka wire protocol for the black-box tests.

Just enough of the protocol to send requests that no well-behaved client would
send (corrupt CRCs, bad frames, unknown versions) and to read the answers:
primitive encoders/decoders, CRC32C, record batch v2, and a few requests
(ApiVersions, Metadata, Produce, Fetch) written from Kafka's message specs.
"""

import socket
import struct
import time

# ---------------------------------------------------------------- CRC32C

_CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected


def _make_crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------- primitives


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def unzigzag(n):
    return (n >> 1) ^ -(n & 1)


def uvarint(n):
    assert n >= 0
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):
    return uvarint(zigzag(n))


def i8(n):
    return struct.pack(">b", n)


def i16(n):
    return struct.pack(">h", n)


def i32(n):
    return struct.pack(">i", n)


def u32(n):
    return struct.pack(">I", n)


def i64(n):
    return struct.pack(">q", n)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def nbytes(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items):
    """int32-counted array of already-encoded items (None = null array)."""
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(items)


class Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(
                "short read: want %d at %d of %d" % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self):
        return self._unpack(">b", 1)

    def i16(self):
        return self._unpack(">h", 2)

    def i32(self):
        return self._unpack(">i", 4)

    def u32(self):
        return self._unpack(">I", 4)

    def i64(self):
        return self._unpack(">q", 8)

    def boolean(self):
        return self.i8() != 0

    def uvarint(self):
        shift = 0
        result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self):
        return unzigzag(self.uvarint())

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode()

    def compact_string(self):
        n = self.uvarint()
        if n == 0:
            return None
        return self.take(n - 1).decode()

    def nbytes(self):
        n = self.i32()
        if n < 0:
            return None
        return self.take(n)

    def array(self, fn):
        n = self.i32()
        if n < 0:
            return None
        return [fn(self) for _ in range(n)]

    def compact_array(self, fn):
        n = self.uvarint()
        if n == 0:
            return None
        return [fn(self) for _ in range(n - 1)]

    def tagged_fields(self):
        n = self.uvarint()
        fields = {}
        for _ in range(n):
            tag = self.uvarint()
            size = self.uvarint()
            fields[tag] = self.take(size)
        return fields


# ---------------------------------------------------------------- record batch v2


def encode_record(offset_delta, timestamp_delta, key, value, headers=()):
    body = bytearray()
    body += i8(0)  # attributes
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    if key is None:
        body += varint(-1)
    else:
        body += varint(len(key)) + key
    if value is None:
        body += varint(-1)
    else:
        body += varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        hkb = hk.encode()
        body += varint(len(hkb)) + hkb
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records, base_timestamp, base_offset=0, producer_id=-1,
                 producer_epoch=-1, base_sequence=-1, attributes=0,
                 corrupt_crc=False):
    """records: list of (key, value, headers, timestamp).

    Returns the bytes of one uncompressed record batch (magic 2) with a valid
    CRC32C, or a deliberately wrong one when corrupt_crc is set.
    """
    recs = b"".join(
        encode_record(i, ts - base_timestamp, k, v, h)
        for i, (k, v, h, ts) in enumerate(records))
    max_ts = max(ts for (_, _, _, ts) in records)
    after_crc = (i16(attributes) + i32(len(records) - 1) + i64(base_timestamp)
                 + i64(max_ts) + i64(producer_id) + i16(producer_epoch)
                 + i32(base_sequence) + i32(len(records)) + recs)
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    # partitionLeaderEpoch(4) magic(1) crc(4) + the rest
    after_length = i32(-1) + i8(2) + u32(crc) + after_crc
    return i64(base_offset) + i32(len(after_length)) + after_length


def parse_record_batches(data):
    """Parse a records blob (possibly ending in a partial batch) into a list of
    dicts: offset, timestamp, key, value, headers, control, transactional, leader_epoch (the
    batch's partitionLeaderEpoch), producer_id, producer_epoch. Verifies CRC32C."""
    out = []
    r = Reader(data)
    while r.remaining() >= 12:
        base_offset = r.i64()
        length = r.i32()
        if length > r.remaining():
            break  # partial trailing batch
        batch = Reader(r.take(length))
        leader_epoch = batch.i32()  # partitionLeaderEpoch
        magic = batch.i8()
        assert magic == 2, "unexpected magic %d" % magic
        crc = batch.u32()
        rest = batch.data[batch.pos:]
        assert crc32c(rest) == crc, "bad CRC32C in fetched batch"
        attributes = batch.i16()
        assert attributes & 0x7 == 0, "compressed batches not expected here"
        batch.i32()  # last offset delta
        base_ts = batch.i64()
        batch.i64()  # max ts
        producer_id = batch.i64()
        producer_epoch = batch.i16()
        batch.i32()  # base sequence
        count = batch.i32()
        for _ in range(count):
            rlen = batch.varint()
            rec = Reader(batch.take(rlen))
            rec.i8()
            ts_delta = rec.varint()
            off_delta = rec.varint()
            klen = rec.varint()
            key = None if klen < 0 else rec.take(klen)
            vlen = rec.varint()
            value = None if vlen < 0 else rec.take(vlen)
            headers = []
            for _ in range(rec.varint()):
                hk = rec.take(rec.varint()).decode()
                hvl = rec.varint()
                headers.append((hk, None if hvl < 0 else rec.take(hvl)))
            out.append(dict(offset=base_offset + off_delta,
                            timestamp=base_ts + ts_delta, key=key,
                            value=value, headers=headers,
                            control=bool(attributes & 0x20),
                            transactional=bool(attributes & 0x10),
                            leader_epoch=leader_epoch,
                            producer_id=producer_id,
                            producer_epoch=producer_epoch))
    return out


# ---------------------------------------------------------------- framing


def request_header(api_key, api_version, correlation_id, client_id="gregor-bb",
                   header_version=1):
    h = i16(api_key) + i16(api_version) + i32(correlation_id)
    if header_version >= 1:
        h += string(client_id)
    if header_version >= 2:
        h += uvarint(0)  # empty tagged fields
    return h


def frame(payload):
    return i32(len(payload)) + payload


class Conn:
    """A raw TCP connection to the broker that speaks length-prefixed frames."""

    def __init__(self, bootstrap, timeout=10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.next_corr = 1

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def request_bytes(self, api_key, api_version, body, header_version=1,
                      correlation_id=None):
        if correlation_id is None:
            correlation_id = self.next_corr
            self.next_corr += 1
        payload = request_header(api_key, api_version, correlation_id,
                                 header_version=header_version) + body
        return correlation_id, frame(payload)

    def send(self, api_key, api_version, body, header_version=1):
        corr, data = self.request_bytes(api_key, api_version, body,
                                        header_version)
        self.send_raw(data)
        return corr

    def _recv_exact(self, n, deadline):
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for %d bytes (got %d)"
                                   % (n, len(buf)))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(
                    "connection closed by broker after %d of %d bytes"
                    % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        (size,) = struct.unpack(">i", self._recv_exact(4, deadline))
        assert 0 <= size < 200 * 1024 * 1024, "absurd response size %d" % size
        return self._recv_exact(size, deadline)

    def recv_response(self, expected_corr, timeout=None, flexible_header=False):
        """Returns a Reader positioned at the response body."""
        r = Reader(self.recv_frame(timeout))
        corr = r.i32()
        assert corr == expected_corr, (
            "correlation id %d, expected %d" % (corr, expected_corr))
        if flexible_header:
            r.tagged_fields()
        return r

    def call(self, api_key, api_version, body, header_version=1,
             timeout=None, flexible_response_header=False):
        corr = self.send(api_key, api_version, body, header_version)
        return self.recv_response(corr, timeout, flexible_response_header)

    def wait_closed(self, timeout=10.0):
        """True if the broker closes the connection within timeout (any bytes
        it sends first are returned in self.received_before_close)."""
        deadline = time.monotonic() + timeout
        self.received_before_close = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.received_before_close += chunk


# ---------------------------------------------------------------- requests

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22


def api_versions_v0(conn):
    """Returns (error_code, {api_key: (min, max)})."""
    r = conn.call(API_API_VERSIONS, 0, b"")
    return parse_api_versions_v0(r)


def parse_api_versions_v0(r):
    err = r.i16()
    keys = r.array(lambda rr: (rr.i16(), rr.i16(), rr.i16()))
    return err, {k: (lo, hi) for (k, lo, hi) in (keys or [])}


def api_versions_v3(conn, version=3):
    """ApiVersions v3: request header v2, flexible body; the response header is
    always v0 (no tagged fields), a documented Kafka quirk."""
    body = compact_string("gregor-bb") + compact_string("1.0") + uvarint(0)
    r = conn.call(API_API_VERSIONS, version, body, header_version=2)
    err = r.i16()
    if err != 0:
        # A broker that does not know this version answers in the v0 format;
        # callers only need the error here.
        return err, None, None
    keys = r.compact_array(
        lambda rr: (rr.i16(), rr.i16(), rr.i16(), rr.tagged_fields()))
    throttle = r.i32()
    r.tagged_fields()
    assert r.remaining() == 0, "trailing bytes in ApiVersions v3 response"
    return err, {k: (lo, hi) for (k, lo, hi, _) in (keys or [])}, throttle


def metadata_v4_body(topics, allow_auto_create=True):
    t = None if topics is None else [string(name) for name in topics]
    return array(t) + i8(1 if allow_auto_create else 0)


def parse_metadata_v4(r):
    r.i32()  # throttle
    brokers = r.array(lambda rr: dict(node_id=rr.i32(), host=rr.string(),
                                      port=rr.i32(), rack=rr.string()))
    cluster_id = r.string()
    controller_id = r.i32()

    def partition(rr):
        return dict(error_code=rr.i16(), partition=rr.i32(), leader=rr.i32(),
                    replicas=rr.array(lambda x: x.i32()),
                    isr=rr.array(lambda x: x.i32()))

    topics = r.array(lambda rr: dict(error_code=rr.i16(), name=rr.string(),
                                     is_internal=rr.boolean(),
                                     partitions=rr.array(partition)))
    return dict(brokers=brokers, cluster_id=cluster_id,
                controller_id=controller_id,
                topics={t["name"]: t for t in topics})


def metadata_v4(conn, topics, allow_auto_create=True):
    r = conn.call(API_METADATA, 4, metadata_v4_body(topics, allow_auto_create))
    return parse_metadata_v4(r)


def produce_v3_body(topic, partition, records_blob, acks=-1, timeout_ms=10000, transactional_id=None):
    part = i32(partition) + nbytes(records_blob)
    topic_data = string(topic) + array([part])
    return string(transactional_id) + i16(acks) + i32(timeout_ms) + array([topic_data])


def parse_produce_v3(r):
    def part(rr):
        return dict(partition=rr.i32(), error_code=rr.i16(),
                    base_offset=rr.i64(), log_append_time=rr.i64())

    topics = r.array(lambda rr: (rr.string(), rr.array(part)))
    r.i32()  # throttle
    return {name: {p["partition"]: p for p in parts} for name, parts in topics}


def produce_v3(conn, topic, partition, records_blob, acks=-1, timeout=15.0, transactional_id=None):
    """Returns the partition response dict (error_code, base_offset, ...)."""
    r = conn.call(API_PRODUCE, 3,
                  produce_v3_body(topic, partition, records_blob, acks, transactional_id=transactional_id),
                  timeout=timeout)
    resp = parse_produce_v3(r)
    return resp[topic][partition]


def fetch_v4_body(topic, partition, offset, max_wait_ms, min_bytes=1,
                  max_bytes=1 << 20, isolation_level=0):
    part = i32(partition) + i64(offset) + i32(max_bytes)
    t = string(topic) + array([part])
    return (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes)
            + i8(isolation_level) + array([t]))


def parse_fetch_v4(r):
    r.i32()  # throttle

    def part(rr):
        d = dict(partition=rr.i32(), error_code=rr.i16(),
                 high_watermark=rr.i64(), last_stable_offset=rr.i64())
        d["aborted"] = rr.array(lambda x: (x.i64(), x.i64()))
        d["records"] = rr.nbytes()
        return d

    topics = r.array(lambda rr: (rr.string(), rr.array(part)))
    return {name: {p["partition"]: p for p in parts} for name, parts in topics}


def init_producer_id_body(version, transactional_id=None, transaction_timeout_ms=-1,
                          producer_id=-1, producer_epoch=-1):
    """InitProducerId v0-4: v2+ is flexible, v3+ names the producer's current id and epoch."""
    if version < 2:
        return string(transactional_id) + i32(transaction_timeout_ms)
    body = compact_string(transactional_id) + i32(transaction_timeout_ms)
    if version >= 3:
        body += i64(producer_id) + i16(producer_epoch)
    return body + uvarint(0)


def init_producer_id(conn, version=4, **kw):
    """Returns (error_code, producer_id, producer_epoch)."""
    flexible = version >= 2
    r = conn.call(API_INIT_PRODUCER_ID, version, init_producer_id_body(version, **kw),
                  header_version=2 if flexible else 1, flexible_response_header=flexible)
    r.i32()  # throttle
    out = (r.i16(), r.i64(), r.i16())
    if flexible:
        r.tagged_fields()
    assert r.remaining() == 0, "trailing bytes in InitProducerId v%d response" % version
    return out


# ---------------------------------------------------------------- transactions


def compact_topic_partition_errors(rr):
    """A flexible response's topic of (partition_index int32, error_code int16)
    partitions: (name, {partition: error})."""
    def part(r):
        p = (r.i32(), r.i16())
        r.tagged_fields()
        return p

    name, parts = rr.compact_string(), rr.compact_array(part)
    rr.tagged_fields()
    return name, dict(parts)

API_WRITE_TXN_MARKERS = 27


def write_txn_markers_v1(conn, markers):
    """markers: [(producer_id, epoch, commit, coordinator_epoch, {topic: [partitions]})].
    Returns [(producer_id, {topic: {partition: error_code}})]."""
    def topic(name, parts):
        return compact_string(name) + uvarint(len(parts) + 1) + b"".join(i32(p) for p in parts) + uvarint(0)

    def marker(pid, epoch, commit, coord_epoch, topics):
        return (i64(pid) + i16(epoch) + i8(1 if commit else 0)
                + uvarint(len(topics) + 1) + b"".join(topic(n, ps) for n, ps in topics.items())
                + i32(coord_epoch) + uvarint(0))

    body = uvarint(len(markers) + 1) + b"".join(marker(*m) for m in markers) + uvarint(0)
    r = conn.call(API_WRITE_TXN_MARKERS, 1, body, header_version=2, flexible_response_header=True)

    def marker_result(rr):
        pid, topics = rr.i64(), rr.compact_array(compact_topic_partition_errors)
        rr.tagged_fields()
        return pid, dict(topics)

    out = r.compact_array(marker_result)
    r.tagged_fields()
    return out


# ---------------------------------------------------------------- the transaction coordinator

TRANSACTIONAL = 0x10  # record batch attribute
API_FIND_COORDINATOR = 10
API_ADD_PARTITIONS_TO_TXN = 24
API_ADD_OFFSETS_TO_TXN = 25
API_END_TXN = 26
API_DESCRIBE_TRANSACTIONS = 65
API_LIST_TRANSACTIONS = 66


def find_coordinator_v1(conn, key, key_type=1):
    """FindCoordinator v1 (key_type 1: a transactional id): (error, node_id, host, port)."""
    r = conn.call(API_FIND_COORDINATOR, 1, string(key) + i8(key_type))
    r.i32()  # throttle
    err = r.i16()
    r.string()  # error message
    return err, r.i32(), r.string(), r.i32()


def _str(flexible, s):
    return compact_string(s) if flexible else string(s)


def _arr(flexible, items):
    return uvarint(len(items) + 1) + b"".join(items) if flexible else array(items)


def _txn_topics(flexible, topics):
    tag = uvarint(0) if flexible else b""
    return _arr(flexible, [_str(flexible, t) + _arr(flexible, [i32(p) for p in ps]) + tag for t, ps in topics.items()])


def _txn_call(conn, api, version, body):
    """Sends a transaction API request, v3+ flexible; returns the Reader after the throttle time."""
    flexible = version >= 3
    r = conn.call(api, version, body + (uvarint(0) if flexible else b""), header_version=2 if flexible else 1,
                  flexible_response_header=flexible)
    r.i32()  # throttle
    return r


def _txn_topic_results(r, flexible):
    def part(rr):
        out = (rr.i32(), rr.i16())
        if flexible:
            rr.tagged_fields()
        return out

    def topic(rr):
        name = rr.compact_string() if flexible else rr.string()
        parts = (rr.compact_array if flexible else rr.array)(part)
        if flexible:
            rr.tagged_fields()
        return name, dict(parts)

    return dict((r.compact_array if flexible else r.array)(topic))


def add_partitions_to_txn(conn, version, txn_id, pid, epoch, topics):
    """AddPartitionsToTxn v0-3 (one transaction). topics: {topic: [partitions]}
    -> {topic: {partition: error}}."""
    assert version <= 3
    f = version >= 3
    r = _txn_call(conn, API_ADD_PARTITIONS_TO_TXN, version,
                  _str(f, txn_id) + i64(pid) + i16(epoch) + _txn_topics(f, topics))
    return _txn_topic_results(r, f)


def add_partitions_to_txn_v4(conn, txns):
    """AddPartitionsToTxn v4, batched: txns [(txn_id, pid, epoch, verify_only,
    {topic: [partitions]})] -> (error, {txn_id: {topic: {partition: error}}})."""
    body = _arr(True, [compact_string(t) + i64(pid) + i16(ep) + i8(1 if vo else 0) + _txn_topics(True, tps) + uvarint(0)
                       for t, pid, ep, vo, tps in txns])
    r = _txn_call(conn, API_ADD_PARTITIONS_TO_TXN, 4, body)
    err = r.i16()

    def result(rr):
        out = (rr.compact_string(), _txn_topic_results(rr, True))
        rr.tagged_fields()
        return out

    return err, dict(r.compact_array(result))


def add_offsets_to_txn(conn, version, txn_id, pid, epoch, group):
    """AddOffsetsToTxn v0-3: the error code."""
    f = version >= 3
    return _txn_call(conn, API_ADD_OFFSETS_TO_TXN, version,
                     _str(f, txn_id) + i64(pid) + i16(epoch) + _str(f, group)).i16()


def end_txn(conn, version, txn_id, pid, epoch, commit):
    """EndTxn v0-3: the error code."""
    f = version >= 3
    return _txn_call(conn, API_END_TXN, version, _str(f, txn_id) + i64(pid) + i16(epoch) + i8(1 if commit else 0)).i16()


def list_transactions_v0(conn, states=(), producer_ids=(), min_duration_ms=None):
    """ListTransactions v0, or v1 with min_duration_ms (its DurationFilter):
    (error, unknown_state_filters, [(txn_id, pid, state)])."""
    body = (uvarint(len(states) + 1) + b"".join(compact_string(s) for s in states)
            + uvarint(len(producer_ids) + 1) + b"".join(i64(p) for p in producer_ids))
    if min_duration_ms is not None:
        body += i64(min_duration_ms)
    version = 0 if min_duration_ms is None else 1
    r = conn.call(API_LIST_TRANSACTIONS, version, body + uvarint(0), header_version=2, flexible_response_header=True)
    r.i32()  # throttle
    err = r.i16()
    unknown = r.compact_array(lambda rr: rr.compact_string())

    def state(rr):
        s = (rr.compact_string(), rr.i64(), rr.compact_string())
        rr.tagged_fields()
        return s

    states_out = r.compact_array(state)
    r.tagged_fields()
    assert r.remaining() == 0
    return err, unknown, states_out


def describe_transactions_v0(conn, txn_ids):
    """DescribeTransactions v0: {txn_id: dict(error, state, timeout_ms, start_ms,
    producer_id, producer_epoch, topics={topic: [partitions]})}."""
    body = uvarint(len(txn_ids) + 1) + b"".join(compact_string(t) for t in txn_ids) + uvarint(0)
    r = conn.call(API_DESCRIBE_TRANSACTIONS, 0, body, header_version=2, flexible_response_header=True)
    r.i32()  # throttle

    def topic(rr):
        t = (rr.compact_string(), rr.compact_array(lambda x: x.i32()))
        rr.tagged_fields()
        return t

    def txn(rr):
        d = dict(error=rr.i16(), id=rr.compact_string(), state=rr.compact_string(), timeout_ms=rr.i32(),
                 start_ms=rr.i64(), producer_id=rr.i64(), producer_epoch=rr.i16())
        d["topics"] = dict(rr.compact_array(topic))
        rr.tagged_fields()
        return d

    out = r.compact_array(txn)
    r.tagged_fields()
    assert r.remaining() == 0
    return {d.pop("id"): d for d in out}


def txn_batch(pid, epoch, seq, n=2, tag="t"):
    """A transactional batch of n records valued "<tag>-<seq + i>"."""
    ts = int(time.time() * 1000)
    return record_batch([(None, ("%s-%d" % (tag, seq + i)).encode(), [], ts + i) for i in range(n)], ts,
                        producer_id=pid, producer_epoch=epoch, base_sequence=seq, attributes=TRANSACTIONAL)


def stable_offsets(c, topic, partition=0):
    """(high watermark, last stable offset) from a read_committed Fetch."""
    part = parse_fetch_v4(c.call(1, 4, fetch_v4_body(topic, partition, 0, 0, isolation_level=1)))[topic][partition]
    return part["high_watermark"], part["last_stable_offset"]


def wait_stable(c, topic, partition=0, timeout=15):
    """Waits until the last stable offset reaches the high watermark (every
    transaction on the partition closed); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        hw, lso = stable_offsets(c, topic, partition)
        if hw == lso:
            return hw
        assert time.monotonic() < deadline, "last stable offset %d stays below the high watermark %d" % (lso, hw)
        time.sleep(0.05)

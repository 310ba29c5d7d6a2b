"""Per-partition order over 10k keyed records, and keyed records landing on the
partition Kafka's murmur2 partitioner picks."""

import collections

import pytest

from bb_clients import (Rec, ck_consume, ck_produce, create_topic, kcat_consume,
                        kjs_available, kjs_produce, kp_produce, now_ms, unique_topic)


# ------------------------------------------------------------------ Kafka's murmur2

def murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils.murmur2, as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24))
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    extra = length % 4
    tail = length & ~3
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, num_partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


def test_murmur2_matches_kafka_vectors():
    # Values from Kafka's UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


# ------------------------------------------------------------------ order

@pytest.mark.slow
@pytest.mark.deadline(180)
def test_per_partition_order_10k_keyed(broker):
    parts = 4
    n = 10_000
    nkeys = 37
    t = create_topic(broker.bootstrap, unique_topic("order"), parts)
    ts = now_ms()
    recs = []
    seq = collections.Counter()
    for i in range(n):
        k = b"key-%d" % (i % nkeys)
        recs.append(Rec(k, b"%s:%d:%d" % (k, seq[k], i), (), ts + i))
        seq[k] += 1
    results = ck_produce(broker.bootstrap, t, recs, timeout=60, default_partition=None,
                         partitioner="murmur2_random", **{"linger.ms": 20,
                                                          "batch.num.messages": 500})
    # Offsets handed out by the broker: contiguous per partition, in send order.
    by_part = collections.defaultdict(list)
    for (p, off), r in zip(results, recs):
        by_part[p].append((off, r))
    for p, lst in by_part.items():
        assert [off for off, _ in lst] == list(range(len(lst))), "partition %d offsets" % p

    got = ck_consume(broker.bootstrap, t, partitions=range(parts), expected=n, timeout=60)
    assert len(got) == n
    for p in range(parts):
        got_p = [r for r in got if r.partition == p]
        assert [r.offset for r in got_p] == list(range(len(got_p)))
        assert [(r.key, r.value) for r in got_p] == [(r.key, r.value) for _, r in by_part[p]], \
            "partition %d content/order differs" % p
    # Each key lives on one partition and its sequence has no gaps or reorderings.
    per_key = collections.defaultdict(list)
    key_parts = collections.defaultdict(set)
    for r in got:
        k, s, _ = r.value.split(b":")
        per_key[k].append(int(s))
        key_parts[k].add(r.partition)
    for k, seqs in per_key.items():
        assert seqs == list(range(seq[k])), k
        assert len(key_parts[k]) == 1, (k, key_parts[k])

    # A second, independent reader (kcat) sees the same order.
    kc = kcat_consume(broker.bootstrap, t, partition=1)
    assert [(r.offset, r.key, r.value) for r in kc] == [
        (r.offset, r.key, r.value) for r in got if r.partition == 1]


# ------------------------------------------------------------------ murmur2 placement

NPARTS = 7
KEYS = [b"user-%d" % i for i in range(150)] + [b"x", b"\xff\xfe\x00", b"longer-key-" * 7]


def _check_placement(bootstrap, topic):
    got = ck_consume(bootstrap, topic, partitions=range(NPARTS), expected=len(KEYS))
    assert len(got) == len(KEYS)
    wrong = [(r.key, r.partition, kafka_partition(r.key, NPARTS))
             for r in got if r.partition != kafka_partition(r.key, NPARTS)]
    assert not wrong, "records not on murmur2's partition (key, got, want): %r" % wrong[:10]
    assert len({r.partition for r in got}) == NPARTS  # all partitions used


def _recs():
    ts = now_ms()
    return [Rec(k, b"value-of-" + k, (), ts) for k in KEYS]


def test_murmur2_placement_kafka_python(broker):
    t = create_topic(broker.bootstrap, unique_topic("mm-kp"), NPARTS)
    res = kp_produce(broker.bootstrap, t, _recs(), default_partition=None)
    assert [p for p, _ in res] == [kafka_partition(k, NPARTS) for k in KEYS]
    _check_placement(broker.bootstrap, t)


def test_murmur2_placement_confluent(broker):
    t = create_topic(broker.bootstrap, unique_topic("mm-ck"), NPARTS)
    res = ck_produce(broker.bootstrap, t, _recs(), default_partition=None,
                     partitioner="murmur2_random")
    assert [p for p, _ in res] == [kafka_partition(k, NPARTS) for k in KEYS]
    _check_placement(broker.bootstrap, t)


def test_murmur2_placement_kafkajs(broker):
    if not kjs_available():
        pytest.skip("kafkajs not installed")
    t = create_topic(broker.bootstrap, unique_topic("mm-kjs"), NPARTS)
    kjs_produce(broker.bootstrap, t, _recs(), default_partition=None)
    _check_placement(broker.bootstrap, t)

"""Helpers for the log life cycle and admin API black-box tests (retention,
compaction, configs, partitions, records): the kafkajs admin driver and
hand-built requests for the APIs the Debian clients do not send
(IncrementalAlterConfigs, DeleteRecords, DescribeLogDirs, DescribeCluster)."""

import json
import os
import subprocess
import time

from confluent_kafka import TopicPartition

import bb_wire as w
from bb_clients import JS_DIR, KjsError, admin, ck_consumer

API_DELETE_RECORDS = 21
API_DESCRIBE_CONFIGS = 32
API_DESCRIBE_LOG_DIRS = 35
API_INCREMENTAL_ALTER_CONFIGS = 44
API_DESCRIBE_CLUSTER = 60

# Config sources (DescribeConfigs v1+).
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5


def kjs_admin(bootstrap, steps, timeout=90):
    req = json.dumps({"brokers": bootstrap.split(","), "steps": steps})
    p = subprocess.run(["node", os.path.join(JS_DIR, "kjs_admin.js")], input=req.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, cwd=JS_DIR)
    lines = [l for l in p.stdout.decode().splitlines() if l.startswith("KJS_RESULT ")]
    if p.returncode != 0 or not lines:
        raise KjsError("kjs_admin.js exited %d\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, p.stdout.decode(errors="replace")[-3000:], p.stderr.decode(errors="replace")[-3000:]))
    return json.loads(lines[-1][len("KJS_RESULT "):])


def kjs_admin_ok(bootstrap, steps, timeout=90):
    results = kjs_admin(bootstrap, steps, timeout)
    for s, r in zip(steps, results):
        if "error" in r:
            raise KjsError("kafkajs step %s failed: %r" % (s.get("op"), r["error"]))
    return [r["ok"] for r in results]


def watermarks(bootstrap, topic, partition=0):
    c = ck_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def wait_for(what, fn, timeout=30, interval=0.2):
    """Polls fn() until it returns a truthy value; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def describe_topic(bootstrap, topic):
    from confluent_kafka.admin import ConfigResource
    r = ConfigResource("topic", topic)
    a = admin(bootstrap)  # must outlive the future
    return a.describe_configs([r], request_timeout=10)[r].result(10)


# ------------------------------------------------------------------ hand-built requests


def incremental_alter_configs(bootstrap, resources, validate_only=False):
    """resources: [(type, name, [(config, op, value)])] -> [(error_code, message, type, name)] (v0)."""
    body = w.i32(len(resources))
    for rtype, name, configs in resources:
        body += w.i8(rtype) + w.string(name) + w.i32(len(configs))
        for cname, op, value in configs:
            body += w.string(cname) + w.i8(op) + w.string(value)
    body += w.i8(1 if validate_only else 0)
    with w.Conn(bootstrap) as c:
        r = c.call(API_INCREMENTAL_ALTER_CONFIGS, 0, body)
        r.i32()  # throttle
        return r.array(lambda rr: (rr.i16(), rr.string(), rr.i8(), rr.string()))


def delete_records(bootstrap, topic, offsets, version=0):
    """offsets: {partition: offset} -> {partition: (low_watermark, error)}."""
    body = w.i32(1) + w.string(topic) + w.i32(len(offsets))
    for p, o in offsets.items():
        body += w.i32(p) + w.i64(o)
    body += w.i32(10000)
    with w.Conn(bootstrap) as c:
        r = c.call(API_DELETE_RECORDS, version, body)
        r.i32()
        out = {}
        for _name, parts in r.array(lambda rr: (rr.string(), rr.array(lambda p: (p.i32(), p.i64(), p.i16())))):
            for p, low, err in parts:
                out[p] = (low, err)
        return out


def describe_log_dirs(bootstrap):
    """DescribeLogDirs v1, all topics -> {(topic, partition): size}."""
    with w.Conn(bootstrap) as c:
        r = c.call(API_DESCRIBE_LOG_DIRS, 1, w.i32(-1))
        r.i32()
        sizes = {}

        def part(p):
            return (p.i32(), p.i64(), p.i64(), p.boolean())

        for err, _dir, topics in r.array(lambda rr: (rr.i16(), rr.string(),
                                                       rr.array(lambda t: (t.string(), t.array(part))))):
            assert err == 0
            for name, parts in topics:
                for idx, size, _lag, _future in parts:
                    sizes[(name, idx)] = size
        return sizes


def describe_cluster(bootstrap, version=0):
    """DescribeCluster (flexible from v0) -> (error, cluster_id, controller_id, [(id, host, port)])."""
    body = w.i8(0)  # include_cluster_authorized_operations
    if version >= 1:
        body += w.i8(1)  # endpoint_type: brokers
    body += w.uvarint(0)
    with w.Conn(bootstrap) as c:
        r = c.call(API_DESCRIBE_CLUSTER, version, body, header_version=2, flexible_response_header=True)
        r.i32()
        err = r.i16()
        r.compact_string()
        if version >= 1:
            r.i8()
        cluster_id = r.compact_string()
        controller = r.i32()

        def broker(b):
            out = (b.i32(), b.compact_string(), b.i32())
            b.compact_string()
            b.tagged_fields()
            return out

        brokers = r.compact_array(broker)
        return err, cluster_id, controller, brokers

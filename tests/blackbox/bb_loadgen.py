"""Load for the replication fault tests: an acks=all producer and a consumer
group, each in its own process (so a client stuck in librdkafka can never hang
the test, and the test's own waits do not slow the load), writing what they
saw to a file the checker reads afterwards.

producer: confluent_kafka (librdkafka) with acks=all, retries,
  max.in.flight.requests.per.connection=1 and no idempotence (Gregor has none
  yet, so a retried batch may be appended twice: duplicates are reported, not
  failed). It sends at a fixed rate, round robin over `keys` producer keys,
  key j always to partition j % partitions, each value
  b"<tag>|<key>|<seq>" with seq counting up per key. Every delivery report is
  a line of its file:
      A <partition> <offset> <key> <seq> <t_ack>      acknowledged
      F <key> <seq> <t> <error>                        delivery failed
  and at exit one line `S {json summary}`. SIGTERM stops the sending; the
  process then flushes (waits for every outstanding delivery report, at most
  message.timeout.ms) and exits.

consumer: a member of a consumer group (subscribe) that commits its position
  synchronously every `commit_interval` seconds and asks the coordinator for
  the group's committed offsets (committed()) every `probe_interval`:
      R <partition> <offset> <value>                  a record it read
      C <t> <json {partition: offset}>                  it committed these
      E <t> <error>                                   a commit failed
      O <t> <json {partition: offset}>                  committed() answered this
  SIGTERM: one last commit and probe, close (leave the group), exit.

Times are time.monotonic() (CLOCK_MONOTONIC, the same clock in every process
of the machine), so they compare with the fault times the test records.

Run as `python3 bb_loadgen.py produce|consume --bootstrap B --topic T --out F ...`;
Load wraps both for the tests.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

PRODUCER_DEFAULTS = {
    "acks": "all",
    "enable.idempotence": False,
    "max.in.flight.requests.per.connection": 1,
    "retries": 2147483647,
    "retry.backoff.ms": 100,
    "linger.ms": 5,
    # Long enough to ride out a failover (fencing after broker.session.timeout.ms,
    # then an election), short enough that a stuck cluster shows as failed deliveries.
    "message.timeout.ms": 30000,
    # How long one Produce may wait (also the timeout the broker is asked to honour
    # for acks=all); then the batch is retried.
    "request.timeout.ms": 5000,
    "socket.timeout.ms": 10000,
    "topic.metadata.refresh.interval.ms": 1000,
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 1000,
}

CONSUMER_DEFAULTS = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 100,
    "socket.timeout.ms": 10000,
    "topic.metadata.refresh.interval.ms": 1000,
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 1000,
}


def make_value(tag, key, seq):
    return ("%s|%d|%d" % (tag, key, seq)).encode()


def parse_value(v):
    """(tag, key, seq) or None for a value this load did not write."""
    try:
        tag, key, seq = v.decode().split("|")
        return tag, int(key), int(seq)
    except (AttributeError, UnicodeDecodeError, ValueError):
        return None


# ------------------------------------------------------------------ the processes


class _Stop:
    def __init__(self):
        self.stop = False
        signal.signal(signal.SIGTERM, self._on)
        signal.signal(signal.SIGINT, self._on)

    def _on(self, *_):
        self.stop = True


def run_producer(a):
    from confluent_kafka import KafkaException, Producer

    stop = _Stop()
    conf = dict(PRODUCER_DEFAULTS)
    conf.update(json.loads(a.conf))
    conf["bootstrap.servers"] = a.bootstrap
    p = Producer(conf)
    out = open(a.out, "w", buffering=1)
    counts = {"sent": 0, "acked": 0, "failed": 0}
    seq = [0] * a.keys

    def report(err, msg):
        key, s = (int(x) for x in msg.value().decode().split("|")[1:])
        now = time.monotonic()
        if err is None:
            counts["acked"] += 1
            out.write("A %d %d %d %d %.4f\n" % (msg.partition(), msg.offset(), key, s, now))
        else:
            counts["failed"] += 1
            out.write("F %d %d %.4f %s\n" % (key, s, now, str(err).replace("\n", " ")))

    interval = 1.0 / a.rate
    next_at = time.monotonic()
    started = next_at
    key = 0
    while not stop.stop and (a.duration <= 0 or time.monotonic() - started < a.duration):
        now = time.monotonic()
        if now < next_at:
            p.poll(next_at - now)
            continue
        next_at += interval
        if next_at < now - 1.0:  # fell behind (a long poll): do not burst to catch up
            next_at = now
        try:
            p.produce(a.topic, value=make_value(a.tag, key, seq[key]), key=b"%d" % key,
                      partition=key % a.partitions, on_delivery=report)
        except BufferError:
            p.poll(0.05)
            continue
        except KafkaException as e:
            out.write("F %d %d %.4f produce() %s\n" % (key, seq[key], time.monotonic(), e))
        counts["sent"] += 1
        seq[key] += 1
        key = (key + 1) % a.keys
        p.poll(0)
    stopped = time.monotonic()
    left = p.flush(a.drain)
    summary = dict(counts, unreported=left, sent_s=round(stopped - started, 3),
                   drain_s=round(time.monotonic() - stopped, 3), next_seq=seq)
    out.write("S %s\n" % json.dumps(summary))
    out.close()
    # A producer with records still in flight may take long to destroy: the
    # results are written, leave without waiting for it.
    os._exit(0)


def run_consumer(a):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    stop = _Stop()
    conf = dict(CONSUMER_DEFAULTS)
    conf.update(json.loads(a.conf))
    conf.update({"bootstrap.servers": a.bootstrap, "group.id": a.group})
    c = Consumer(conf)
    out = open(a.out, "w", buffering=1)
    tps = [TopicPartition(a.topic, p) for p in range(a.partitions)]
    c.subscribe([a.topic])
    read_since_commit = False
    last_commit = last_probe = time.monotonic()

    def commit():
        try:
            done = c.commit(asynchronous=False)
            out.write("C %.4f %s\n" % (time.monotonic(), json.dumps(
                {tp.partition: tp.offset for tp in done or [] if tp.error is None})))
        except KafkaException as e:
            out.write("E %.4f %s\n" % (time.monotonic(), str(e).replace("\n", " ")))

    def probe():
        try:
            got = c.committed(tps, timeout=a.probe_timeout)
            out.write("O %.4f %s\n" % (time.monotonic(), json.dumps(
                {tp.partition: tp.offset for tp in got if tp.error is None})))
        except KafkaException as e:
            out.write("E %.4f committed() %s\n" % (time.monotonic(), str(e).replace("\n", " ")))

    while not stop.stop:
        m = c.poll(0.1)
        if m is not None and not m.error():
            out.write("R %d %d %s\n" % (m.partition(), m.offset(), (m.value() or b"").decode(errors="replace")))
            read_since_commit = True
        now = time.monotonic()
        if read_since_commit and now - last_commit >= a.commit_interval:
            read_since_commit = False
            last_commit = now
            commit()
        if now - last_probe >= a.probe_interval:
            last_probe = now
            probe()
    if read_since_commit:
        commit()
    probe()
    out.write("S {}\n")
    out.close()
    c.close()
    os._exit(0)


def _stop_with_parent():
    """SIGTERM (a clean stop) when the test process dies, however it dies."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() == 1:
        sys.exit("bb_loadgen: the parent is gone")


def main(argv=None):
    _stop_with_parent()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("role", choices=("produce", "consume"))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--conf", default="{}", help="JSON librdkafka settings over the defaults")
    ap.add_argument("--tag", default="r")
    ap.add_argument("--keys", type=int, default=6)
    ap.add_argument("--rate", type=float, default=300.0, help="records per second")
    ap.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: at SIGTERM)")
    ap.add_argument("--drain", type=float, default=40.0, help="seconds to wait for outstanding deliveries")
    ap.add_argument("--group")
    ap.add_argument("--commit-interval", type=float, default=0.3)
    ap.add_argument("--probe-interval", type=float, default=0.5)
    ap.add_argument("--probe-timeout", type=float, default=3.0)
    a = ap.parse_args(argv)
    if a.role == "produce":
        run_producer(a)
    else:
        run_consumer(a)


# ------------------------------------------------------------------ the test's side


class Load:
    """Starts the producer (and, with group=..., the consumer group member) as
    child processes; stop() ends them and returns what they wrote."""

    def __init__(self, bootstrap, topic, workdir, partitions=3, rate=300, keys=6, tag="r",
                 group=None, producer_conf=None, consumer_conf=None, drain=40.0):
        self.paths = {"produce": os.path.join(workdir, "acks.txt"), "consume": os.path.join(workdir, "group.txt")}
        self.drain = drain
        self.partitions = partitions
        common = ["--bootstrap", bootstrap, "--topic", topic, "--partitions", str(partitions)]
        self.procs = {}
        self.procs["produce"] = self._spawn(["produce", "--out", self.paths["produce"], "--rate", str(rate),
                                             "--keys", str(keys), "--tag", tag, "--drain", str(drain),
                                             "--conf", json.dumps(producer_conf or {})] + common, workdir)
        if group:
            self.procs["consume"] = self._spawn(["consume", "--out", self.paths["consume"], "--group", group,
                                                 "--conf", json.dumps(consumer_conf or {})] + common, workdir)

    @staticmethod
    def _spawn(args, workdir):
        err = open(os.path.join(workdir, "%s.stderr" % args[0]), "wb")
        # A session of its own: a Ctrl-C meant for a campaign must not stop the load mid-run.
        return subprocess.Popen([sys.executable, os.path.abspath(__file__)] + args, stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, cwd=workdir, start_new_session=True)

    def acked_count(self):
        try:
            with open(self.paths["produce"]) as f:
                return sum(1 for line in f if line.startswith("A "))
        except OSError:
            return 0

    def last_acks(self):
        """{partition: time of its latest acknowledgement so far}."""
        out = {}
        try:
            with open(self.paths["produce"]) as f:
                for line in f:
                    if line.startswith("A "):
                        parts = line.split()
                        p, t = int(parts[1]), float(parts[5])
                        out[p] = max(out.get(p, t), t)
        except OSError:
            pass
        return out

    def last_full_commit(self):
        """Time of the group member's latest commit that covered every
        partition (0 if none yet)."""
        last = 0.0
        try:
            with open(self.paths["consume"]) as f:
                for line in f:
                    if line.startswith("C "):
                        _, t, js = line.split(" ", 2)
                        d = json.loads(js)
                        if len(d) == self.partitions and all(v >= 0 for v in d.values()):
                            last = float(t)
        except (OSError, ValueError):
            pass
        return last

    def check_alive(self):
        for role, p in self.procs.items():
            if p.poll() is not None:
                raise AssertionError("the %s process exited early (code %s); see %s.stderr"
                                     % (role, p.returncode, role))

    def stop(self):
        """SIGTERM both, wait for the producer's drain; returns (producer
        file, consumer file or None). A process that overstays is killed."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for role, p in self.procs.items():
            try:
                p.wait(timeout=self.drain + 20 if role == "produce" else 20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        return self.paths["produce"], self.paths["consume"] if "consume" in self.procs else None

    def kill(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


if __name__ == "__main__":
    main()

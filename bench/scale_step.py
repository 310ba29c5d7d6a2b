"""Steps of bench/scale.sh, through librdkafka (confluent_kafka): each prints
its elapsed time and a progress line every few seconds."""
import socket
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PER_TOPIC = 100


def topics(n):
    return ["scale-%04d" % i for i in range(n)]


def wait_listening(port):
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("broker did not listen")


def create(port, n):
    a = AdminClient({"bootstrap.servers": "127.0.0.1:%d" % port})
    t0 = time.monotonic()
    names = topics(n)
    for i in range(0, n, 50):
        fs = a.create_topics([NewTopic(t, PER_TOPIC, 1) for t in names[i:i + 50]], request_timeout=120)
        for f in fs.values():
            f.result(timeout=180)
        print("create: %d/%d topics, %.1f s" % (min(i + 50, n), n, time.monotonic() - t0), flush=True)
    print("create: %d partitions in %.1f s" % (n * PER_TOPIC, time.monotonic() - t0))


def produce_all(port, n):
    p = Producer({"bootstrap.servers": "127.0.0.1:%d" % port, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 300000})
    t0 = time.monotonic()
    errors = []
    done = [0]

    def cb(err, _msg):
        if err:
            errors.append(err)
        done[0] += 1

    for t in topics(n):
        for part in range(PER_TOPIC):
            while True:
                try:
                    p.produce(t, b"x" * 100, partition=part, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.1)
        p.poll(0)
    total = n * PER_TOPIC
    last = time.monotonic()
    while done[0] < total and time.monotonic() - t0 < 600:
        p.poll(0.5)
        if time.monotonic() - last > 5:
            print("produce: %d/%d acked" % (done[0], total), flush=True)
            last = time.monotonic()
    el = time.monotonic() - t0
    if errors or done[0] < total:
        sys.exit("produce: %d errors, %d/%d acked: %s" % (len(errors), done[0], total, errors[:3]))
    print("produce: %d records (one per partition) in %.1f s, %.0f records/s" % (total, el, total / el))


def consume_all(port, n):
    c = Consumer({"bootstrap.servers": "127.0.0.1:%d" % port, "group.id": "scale", "enable.auto.commit": False})
    total = n * PER_TOPIC
    c.assign([TopicPartition(t, p, 0) for t in topics(n) for p in range(PER_TOPIC)])
    t0 = time.monotonic()
    got = 0
    last = t0
    while got < total and time.monotonic() - t0 < 600:
        for m in c.consume(1000, 0.5):
            if not m.error():
                got += 1
        if time.monotonic() - last > 5:
            print("consume: %d/%d" % (got, total), flush=True)
            last = time.monotonic()
    el = time.monotonic() - t0
    c.close()
    if got < total:
        sys.exit("consume: %d/%d records" % (got, total))
    print("consume: %d records in %.1f s, %.0f records/s" % (total, el, total / el))


if __name__ == "__main__":
    step, port = sys.argv[1], int(sys.argv[2])
    if step == "wait-listening":
        wait_listening(port)
    elif step == "create":
        create(port, int(sys.argv[3]))
    elif step == "produce-all":
        produce_all(port, int(sys.argv[3]))
    elif step == "consume-all":
        consume_all(port, int(sys.argv[3]))
    else:
        sys.exit("unknown step " + step)

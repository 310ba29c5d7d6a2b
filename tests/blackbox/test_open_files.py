"""Open files at scale: segment files are held open through a bounded cache
(log.max.open.files), and a broker whose open-files limit cannot hold that
bound plus sockets refuses to start with the numbers."""

import os
import resource
import subprocess

from bb_clients import Rec, ck_consume, ck_produce, create_topic, now_ms, unique_topic, wait_topic

PARTITIONS = 100
BOUND = 64


def _open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _records(tag):
    return [Rec(b"k%d" % p, b"%s-%d" % (tag, p), (), now_ms(), partition=p) for p in range(PARTITIONS)]


def test_many_partitions_under_a_small_bound_survive_restart(broker_factory):
    b = broker_factory(overrides={"log.max.open.files": str(BOUND)})
    topics = [create_topic(b.bootstrap, unique_topic("of%d" % i), PARTITIONS) for i in range(2)]
    for t in topics:
        ck_produce(b.bootstrap, t, _records(b"v"), timeout=60)
    # 200 partitions hold at least 400 segment files (log and offset index);
    # the broker holds at most BOUND of them plus its sockets and own files.
    fds = _open_fds(b.pid)
    assert fds < BOUND + 100, "%d descriptors open with log.max.open.files=%d" % (fds, BOUND)
    for t in topics:
        got = ck_consume(b.bootstrap, t, partitions=range(PARTITIONS), expected=PARTITIONS, timeout=60)
        assert sorted((r.partition, r.value) for r in got) == [(p, b"v-%d" % p) for p in range(PARTITIONS)]

    assert b.stop() == 0
    b.start()
    for t in topics:
        wait_topic(b.bootstrap, t, PARTITIONS)
        ck_produce(b.bootstrap, t, _records(b"w"), timeout=60)
        got = ck_consume(b.bootstrap, t, partitions=range(PARTITIONS), expected=2 * PARTITIONS, timeout=60)
        assert sorted((r.partition, r.offset, r.value) for r in got) == sorted(
            [(p, 0, b"v-%d" % p) for p in range(PARTITIONS)] + [(p, 1, b"w-%d" % p) for p in range(PARTITIONS)])
    fds = _open_fds(b.pid)
    assert fds < BOUND + 100, "%d descriptors open after restart" % fds


def start_with_open_files_limit(b, n):
    """Runs broker b's command under `ulimit -n n`; the finished process."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    return subprocess.run(b.command(), stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
                          preexec_fn=limit, cwd=os.path.dirname(b.log_path))


def test_too_low_open_files_limit_is_refused_with_the_numbers(broker_factory):
    proc = start_with_open_files_limit(broker_factory(start=False), 512)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode()
    assert "open-files limit is 512" in err and "log.max.open.files=10000" in err, err
    assert "ulimit -n 11024" in err, err
    # Below the sockets' share, lowering the bound cannot help: not offered.
    assert "lower log.max.open.files" not in err, err


def test_a_limit_between_the_sockets_share_and_the_need_offers_a_lower_bound(broker_factory):
    proc = start_with_open_files_limit(broker_factory(start=False), 4096)
    assert proc.returncode == 2, proc.stderr
    assert "lower log.max.open.files to at most 3072" in proc.stderr.decode(), proc.stderr

"""Runs the README's quickstart, line by line, against a real broker: the
commands users copy from the README are the commands this test runs."""

import os
import re
import shlex
import subprocess

from bb_broker import gregor_bin

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def quickstart_commands():
    text = open(README).read()
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_quickstart_runs(broker):
    commands = quickstart_commands()
    assert any("console-producer" in c for c in commands), commands
    outputs = []
    for cmd in commands:
        cmd = cmd.replace("127.0.0.1:9092", broker.bootstrap).replace("build/gregor", shlex.quote(gregor_bin()))
        p = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], capture_output=True, timeout=120)
        assert p.returncode == 0, "README command failed (%d): %s\nstdout: %s\nstderr: %s" % (
            p.returncode, cmd, p.stdout.decode()[-2000:], p.stderr.decode()[-2000:])
        outputs.append((cmd, p.stdout.decode(), p.stderr.decode()))

    def output_of(fragment, nth=0):
        found = [o for o in outputs if fragment in o[0]]
        return found[nth][1] + found[nth][2]

    assert "Created topic quickstart-events." in output_of("topics --create")
    assert "PartitionCount: 3" in output_of("topics --describe")
    # Three partitions: the two events come back complete, in any partition order.
    for consumer in (0, 1):
        lines = output_of("console-consumer", consumer).splitlines()
        assert "This is my first event" in lines and "This is my second event" in lines, lines
    assert "quickstart-group" in output_of("consumer-groups --describe")
    assert "retention.ms=86400000" in output_of("configs --describe")
    assert "100000 records sent" in output_of("perf-producer")


def cluster_blocks():
    """The README's three-node cluster: (server commands, client commands)."""
    section = open(README).read().split("## A three-node cluster on one machine", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    lines = [[l for l in b.splitlines() if l.strip() and not l.startswith("#")] for b in blocks[:2]]
    return lines[0], lines[1]


def test_readme_three_node_cluster_runs(tmp_path):
    """The README's three commands form a cluster that the README's client
    commands (kcat, metadata-quorum, topics, leader-election) then use. Its
    ports become free ones and its data dirs go under tmp_path."""
    from bb_broker import Broker, free_port
    import bb_admin
    servers, clients = cluster_blocks()
    assert servers[0].startswith("V=") and len(servers) == 4, servers
    ports = {}
    for p in sorted(set(re.findall(r"127\.0\.0\.1:(\d+)", "\n".join(servers + clients)))):
        ports[p] = str(free_port())

    def local(cmd):
        cmd = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: "127.0.0.1:" + ports[m.group(1)], cmd)
        cmd = cmd.replace("log.dirs=data/", "log.dirs=%s/" % tmp_path)
        return cmd.replace("build/gregor", shlex.quote(gregor_bin()))

    voters = local(servers[0])
    procs = []
    try:
        for i, cmd in enumerate(servers[1:], 1):
            log = open(tmp_path / ("node%d.log" % i), "wb")
            procs.append(subprocess.Popen(["bash", "-c", voters + "; exec " + local(cmd)],
                                          stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        first = local("127.0.0.1:19201").split(":")[1]
        b = Broker(str(tmp_path), str(tmp_path / "unused.log"), port=int(first))
        bb_admin.wait_for("the README's cluster listing 3 brokers", lambda: (
            lambda r: len(r[3]) == 3 if r else False)(_try_describe(b.bootstrap)), 60)
        outputs = {}
        for cmd in clients:
            cmd = cmd.split("  #")[0]
            p = subprocess.run(["bash", "-c", "set -o pipefail; " + local(cmd)], capture_output=True, timeout=120)
            assert p.returncode == 0, "README command failed (%d): %s\n%s%s" % (
                p.returncode, cmd, p.stdout.decode()[-2000:], p.stderr.decode()[-2000:])
            outputs[cmd] = p.stdout.decode()

        def output_of(fragment):
            (out,) = [o for c, o in outputs.items() if fragment in c]
            return out
        assert "3 brokers:" in output_of("kcat") and "(controller)" in output_of("kcat")
        assert re.search(r"CurrentVoters:\s+\[1,\s*2,\s*3\]", output_of("describe --status")), output_of("describe --status")
        assert sorted(re.findall(r"\b(Leader|Follower)\b", output_of("describe --replication"))) == \
            ["Follower", "Follower", "Leader"], output_of("describe --replication")
        assert "Created topic events." in output_of("topics --create")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _try_describe(bootstrap):
    import bb_admin
    try:
        return bb_admin.describe_cluster(bootstrap)
    except OSError:
        return None

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

"""A cluster of real gregor processes on 127.0.0.1 for the multi-node tests.

Every node is a broker and a controller (process.roles=broker,controller), as in
the README's three-command cluster; each has its own PLAINTEXT and CONTROLLER
port, data dir and log. What the tests ask of the cluster they ask as a user
would: over the Kafka protocol (DescribeCluster, Metadata), with the real
clients, and with `gregor metadata-quorum`.
"""

import os
import re
import signal
import subprocess
import time

import bb_admin
from bb_broker import Broker, free_port, gregor_bin
from bb_clients import run

# Short enough that fencing tests run in seconds, long enough for a sanitized
# build on two busy cores (Kafka's defaults are 9000/2000).
FAST_SESSION = {"broker.session.timeout.ms": 4000, "broker.heartbeat.interval.ms": 500}


class Cluster:
    def __init__(self, root, n=3, overrides=None, per_node=None, hosts=None, prefixes=None):
        """n combined broker+controller nodes with ids 1..n under root/.
        overrides apply to every node; per_node[id] to one. hosts[id] is the
        address a node listens on (default 127.0.0.1) and prefixes[id] what
        runs it (e.g. `ip netns exec NS`)."""
        self.root = root
        self.ids = list(range(1, n + 1))
        self.hosts = {i: (hosts or {}).get(i, "127.0.0.1") for i in self.ids}
        # The OS may hand out a port it just gave (free_port closes its socket):
        # every node's two ports must differ.
        ports = set()
        while len(ports) < 2 * n:
            ports.add(free_port())
        ports = sorted(ports)
        self.controller_ports = {i: ports[n + k] for k, i in enumerate(self.ids)}
        broker_ports = {i: ports[k] for k, i in enumerate(self.ids)}
        voters = ",".join("%d@%s:%d" % (i, self.hosts[i], self.controller_ports[i]) for i in self.ids)
        self.nodes = {}
        for i in self.ids:
            d = os.path.join(root, "node%d" % i)
            os.makedirs(os.path.join(d, "data"), exist_ok=True)
            b = Broker(os.path.join(d, "data"), os.path.join(d, "gregor.log"), node_id=i, port=broker_ports[i],
                       host=self.hosts[i], prefix=(prefixes or {}).get(i, ()))
            settings = {
                "process.roles": "broker,controller",
                "listeners": "PLAINTEXT://%s:%d,CONTROLLER://%s:%d"
                             % (b.host, b.port, b.host, self.controller_ports[i]),
                "controller.listener.names": "CONTROLLER",
                "controller.quorum.voters": voters,
            }
            settings.update(overrides or {})
            settings.update((per_node or {}).get(i, {}))
            b.overrides = {k: str(v) for k, v in settings.items()}
            self.nodes[i] = b

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout=None):
        """Starts every node at once (a lone voter cannot elect) and waits
        until each serves clients, which it does once registered."""
        for b in self.nodes.values():
            b.spawn()
        for b in self.nodes.values():
            if timeout:
                b.wait_ready(timeout)
            else:
                b.wait_ready()
        return self

    def stop(self):
        """SIGTERM to every node at once, as an operator stopping the whole
        cluster would: each one's controlled shutdown is answered while the
        quorum is still up, instead of the last node waiting out its session."""
        live = [b for b in self.nodes.values() if b.alive()]
        for b in live:
            b.expected_exit = True
            b.proc.send_signal(signal.SIGTERM)
        for b in live:
            try:
                b.stop()
            except Exception:
                b.kill9()

    def live(self):
        return [i for i in self.ids if self.nodes[i].alive()]

    def bootstrap(self, ids=None):
        return ",".join(self.nodes[i].bootstrap for i in (ids or self.live()))

    # ------------------------------------------------------------ what the nodes say

    def describe_cluster(self, i):
        """DescribeCluster sent to node i only: (cluster_id, controller_id, {id: port})."""
        err, cluster_id, controller, brokers = bb_admin.describe_cluster(self.nodes[i].bootstrap)
        assert err == 0, "DescribeCluster to node %d: error %d" % (i, err)
        return cluster_id, controller, {b[0]: b[2] for b in brokers}

    def quorum_status(self, i, timeout=10):
        """`gregor metadata-quorum describe --status` via node i, as a dict
        (None if it fails or takes over timeout seconds)."""
        try:
            p = run([gregor_bin(), "metadata-quorum", "--bootstrap-server", self.nodes[i].bootstrap,
                     "describe", "--status"], timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None  # a node cut off from the controller waits out request.timeout.ms
        if p.returncode != 0:
            return None
        out = {}
        for line in p.stdout.decode().splitlines():
            m = re.match(r"(\w+):\s+(.*)$", line)
            if m:
                out[m.group(1)] = m.group(2).strip()
        return out

    def wait_quorum_leader(self, via=None, exclude=(), timeout=30):
        """Polls the quorum through live nodes until they name a leader
        (not in exclude) that is alive; returns (leader_id, epoch)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for i in (via or self.live()):
                s = self.quorum_status(i)
                last = (i, s)
                if not s or "LeaderId" not in s:
                    continue
                leader = int(s["LeaderId"])
                if leader in self.ids and leader not in exclude and self.nodes[leader].alive():
                    return leader, int(s["LeaderEpoch"])
            time.sleep(0.2)
        raise AssertionError("no quorum leader outside %r within %ds; last status %r" % (exclude, timeout, last))

    def wait_brokers(self, expected, via=None, timeout=30, controller_not=None):
        """Waits until every node in `via` (default: live ones) lists exactly the
        brokers `expected` and one live controller; returns {via: controller}."""
        expected = set(expected)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            seen = {}
            try:
                for i in (via or self.live()):
                    _, controller, brokers = self.describe_cluster(i)
                    last = (i, controller, sorted(brokers))
                    if set(brokers) != expected or controller not in expected or controller == controller_not:
                        break
                    seen[i] = controller
                else:
                    return seen
            except (OSError, AssertionError) as e:
                last = repr(e)
            time.sleep(0.2)
        raise AssertionError("nodes did not list brokers %s (and a live controller) within %ds; last %r"
                             % (sorted(expected), timeout, last))

    def __repr__(self):
        return "Cluster(%s)" % ", ".join(repr(b) for b in self.nodes.values())

"""Network namespaces for the tests that must cut links (this kernel has no
netem, so faults are nftables drops).

Each node gets its own namespace with a veth pair to a bridge in the test's
(root) namespace: node i is 10.<a>.<b>.i, the bridge 10.<a>.<b>.254, so the
test reaches every node and the nodes reach each other through the bridge.
cut(i, peers) drops everything between node i and those peers, in both
directions, inside node i's namespace; heal(i) removes it. Everything is torn
down by close(), and the names carry a random tag so runs never collide.
Needs root, ip (iproute2) and nft (nftables): scripts/install-deps.sh installs them.
"""

import os
import random
import shutil
import subprocess


def unavailable():
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            return "%s is missing (scripts/install-deps.sh installs iproute2 and nftables)" % tool
    return None


def _sh(args, input=None, check=True):
    p = subprocess.run(args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode().strip()))
    return p


class Net:
    def __init__(self, ids):
        self.tag = "%04x" % random.getrandbits(16)
        # Several Nets may live side by side (fault tests run clusters in parallel):
        # a subnet no interface of this namespace uses yet.
        used = _sh(["ip", "-4", "-o", "addr", "show"]).stdout.decode()
        for _ in range(100):
            self.subnet = "10.%d.%d" % (200 + random.randrange(50), random.randrange(256))
            if " %s." % self.subnet not in used:
                break
        self.bridge = "gbr" + self.tag
        self.ids = list(ids)
        self.made = []  # namespaces, for close()
        try:
            _sh(["ip", "link", "add", self.bridge, "type", "bridge"])
            _sh(["ip", "addr", "add", self.subnet + ".254/24", "dev", self.bridge])
            _sh(["ip", "link", "set", self.bridge, "up"])
            for i in self.ids:
                ns, host_end, ns_end = self.ns(i), "gv%s%dh" % (self.tag, i), "gv%s%dn" % (self.tag, i)
                _sh(["ip", "netns", "add", ns])
                self.made.append(ns)
                _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
                _sh(["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end])
                _sh(["ip", "link", "set", ns_end, "netns", ns])
                _sh(["ip", "link", "set", host_end, "master", self.bridge])
                _sh(["ip", "link", "set", host_end, "up"])
                _sh(["ip", "-n", ns, "addr", "add", "%s/24" % self.addr(i), "dev", ns_end])
                _sh(["ip", "-n", ns, "link", "set", ns_end, "up"])
        except Exception:
            self.close()
            raise

    def ns(self, i):
        return "gregor-%s-%d" % (self.tag, i)

    def addr(self, i):
        return "%s.%d" % (self.subnet, i)

    def prefix(self, i):
        return ["ip", "netns", "exec", self.ns(i)]

    def cut(self, i, peers):
        """Drops every packet between node i and each of peers (both ways)."""
        addrs = ", ".join(self.addr(p) for p in peers)
        rules = ("table inet gregor_cut {\n"
                 "  chain input { type filter hook input priority 0; policy accept; ip saddr { %s } drop; }\n"
                 "  chain output { type filter hook output priority 0; policy accept; ip daddr { %s } drop; }\n"
                 "}\n" % (addrs, addrs))
        _sh(self.prefix(i) + ["nft", "-f", "-"], input=rules.encode())

    def heal(self, i):
        _sh(self.prefix(i) + ["nft", "delete", "table", "inet", "gregor_cut"], check=False)

    def close(self):
        for ns in self.made:
            _sh(["ip", "netns", "del", ns], check=False)
        self.made = []
        _sh(["ip", "link", "del", self.bridge], check=False)

"""Replication under faults, with real processes: three gregor nodes (each a
broker and a controller voter) in their own network namespaces, a topic with
replication factor 3 and min.insync.replicas=2, an acks=all producer and a
consumer group running (bb_loadgen) while one fault is done to the leader of a
partition, then healed; bb_checker judges what the clients saw.

One run (run_once) takes 5-17 s on a fresh topic, so a test or the campaign
(fault_campaign.py) repeats runs against one cluster:
  1. create the topic, wait until every partition is led;
  2. pick the target: the leader of partition (run index % partitions), and a
     group id whose coordinator (Kafka's partition of __consumer_offsets for it)
     that node leads, so the committed offsets are under the fault too;
  3. start the load, wait for acknowledgements on every partition, then WARMUP_S;
  4. the fault, healed (FAULTS below);
  5. wait until all three brokers are registered and every partition is led,
     then until every partition has acknowledgements again (or SETTLE_MAX_S);
  6. stop the load (the producer drains), read the topic, check, delete it.

FAULTS (each names the node, the partition and the partitions the node led at
the time of the fault; the windows are what unavailability is measured over):
  none                   no fault: the baseline, which must be clean
  kill9_leader           kill -9 of the leader; wait for another leader, restart it
  sigstop_leader         SIGSTOP of the leader for broker.session.timeout.ms + 2 s, SIGCONT
  cut_leader_followers   nftables drops between the leader and both followers
                         (clients still reach it) for the same time, then heal
  cut_leader_controller  the same between the leader and the active controller only
                         (a partition led by another node than the controller)
  rolling_restart        SIGTERM of each node in turn (the target first), each
                         restarted and registered again before the next
"""

import os
import shutil
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import List, Optional

from confluent_kafka.admin import NewTopic

import bb_admin
import bb_checker
import bb_netns
import bb_wire as w
from bb_broker import SANITIZED
from bb_cluster import FAST_SESSION, Cluster
from bb_loadgen import Load

SLOW = 3 if SANITIZED else 1
SESSION_MS = FAST_SESSION["broker.session.timeout.ms"]
OVERRIDES = dict(FAST_SESSION, **{
    "replica.lag.time.max.ms": 3000,          # a follower out of touch this long leaves the ISR
    "group.initial.rebalance.delay.ms": 0,    # a new group per run: no 3 s wait to join
    "offsets.topic.num.partitions": 3,        # a small __consumer_offsets
})
PARTITIONS = 3
MIN_ISR = 2
RATE = float(os.environ.get("GREGOR_FAULT_RATE", "300"))    # records per second, over all partitions
# SIGSTOP and cuts last at least HOLD_S (past the session timeout, so the node is
# fenced), and on until the other nodes name another leader (+1 s), at most HOLD_MAX_S
# (a cut-off node that is also the active controller needs an election first).
HOLD_S = SESSION_MS / 1000.0 + 2.0
HOLD_MAX_S = SESSION_MS / 1000.0 + 10.0
ISR_WAIT_S = 30                      # rolling restarts: wait for a full ISR between nodes
GROUP_MAX_S = 20                     # at most this long for the group to commit again after the fault
WARMUP_MAX_S = 20                    # at most this long for the first acknowledgements on every partition
WARMUP_S = 1.0                       # then this much load before the fault, so it has records to lose
SETTLE_S = 0.5                       # load after healthy, before the producer stops
SETTLE_MAX_S = 30                    # at most this long for every partition to acknowledge again
FAULTS = ("kill9_leader", "sigstop_leader", "cut_leader_followers", "cut_leader_controller", "rolling_restart")


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, "log_level": 3})


def unavailable():
    return bb_netns.unavailable()


def java_string_hash(s):
    b = s.encode("utf-16-be")
    h = 0
    for unit in struct.unpack(">%dH" % (len(b) // 2), b):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(group, partitions):
    """Kafka's partitionFor: Utils.abs(groupId.hashCode) % partitions."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


# ------------------------------------------------------------------ the cluster


class FaultCluster:
    """Net + Cluster: three nodes at 10.x addresses, each in its namespace."""

    def __init__(self, root, overrides=None):
        self.root = root
        self.net = bb_netns.Net([1, 2, 3])
        self.cluster = None
        try:
            self.cluster = Cluster(root, 3, dict(OVERRIDES, **(overrides or {})),
                                   hosts={i: self.net.addr(i) for i in self.net.ids},
                                   prefixes={i: self.net.prefix(i) for i in self.net.ids})
            self.cluster.start(timeout=60 * SLOW)
            self.cluster.wait_brokers({1, 2, 3}, timeout=60 * SLOW)
            self._make_offsets_topic()
        except Exception:
            self.close()
            raise

    def _make_offsets_topic(self):
        """Asks for a group's committed offsets once, so that __consumer_offsets
        exists (it is created on first use) and group_for can pick the
        coordinator from the first run on."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap(), "group.id": "faults-warmup", "log_level": 3})
        try:
            c.committed([TopicPartition("faults-warmup", 0)], timeout=15)
        except Exception:
            pass
        finally:
            c.close()
        def led():
            md = self.metadata(self.ids[0], ["__consumer_offsets"])
            t = md and md["topics"].get("__consumer_offsets")
            return t and t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
        try:
            bb_admin.wait_for("__consumer_offsets led", led, 20 * SLOW)
        except AssertionError:
            pass

    @property
    def nodes(self):
        return self.cluster.nodes

    @property
    def ids(self):
        return self.cluster.ids

    def close(self):
        if self.cluster is not None:
            for b in self.cluster.nodes.values():
                if b.alive():
                    b.sigcont()  # a stopped process cannot take SIGTERM
            self.cluster.stop()
        for i in self.net.ids:
            self.net.heal(i)
        self.net.close()

    def bootstrap(self):
        """All three addresses, whatever state they are in (as a client would have)."""
        return ",".join(self.nodes[i].bootstrap for i in self.ids)

    # ------------------------------------------------------------ what the nodes say

    def metadata(self, i, topics, timeout=2.0):
        """Metadata v4 asked of node i alone, or None if it does not answer in time."""
        try:
            with w.Conn(self.nodes[i].bootstrap, timeout=timeout) as c:
                return w.metadata_v4(c, topics, allow_auto_create=False)
        except Exception:
            return None

    def leaders(self, topic, via=None, timeout=2.0):
        """{partition: leader} from the first node of via that knows the topic."""
        for i in via or self.ids:
            md = self.metadata(i, [topic], timeout)
            t = md and md["topics"].get(topic)
            if t and t["error_code"] == 0 and t["partitions"]:
                return {p["partition"]: p["leader"] for p in t["partitions"]}
        return None

    def partition_state(self, topic, i, timeout=2.0):
        """{partition: (leader, replicas, isr)} as node i says."""
        md = self.metadata(i, [topic], timeout)
        t = md and md["topics"].get(topic)
        if not t or t["error_code"] != 0:
            return None
        return {p["partition"]: (p["leader"], sorted(p["replicas"]), sorted(p["isr"])) for p in t["partitions"]}

    def controller(self, via=None):
        for i in via or self.ids:
            md = self.metadata(i, [])
            if md and md["controller_id"] in self.ids:
                return md["controller_id"]
        return None

    def wait_healthy(self, topic=None, timeout=60):
        """Every broker registered (unfenced) as every node says, and every
        partition of topic led by a live broker, the same one on every node."""
        self.cluster.wait_brokers({1, 2, 3}, timeout=timeout * SLOW)
        if topic is None:
            return None

        def agreed():
            views = [self.partition_state(topic, i) for i in self.ids]
            if not all(views) or len(views[0]) != PARTITIONS:
                return None
            leaders = [{p: s[0] for p, s in v.items()} for v in views]
            if any(l != leaders[0] for l in leaders):
                return None
            if any(l not in self.ids or not self.nodes[l].alive() for l in leaders[0].values()):
                return None
            return views[0]
        return bb_admin.wait_for("every partition of %s led, all nodes agreeing" % topic, agreed, timeout * SLOW,
                                 interval=0.25)

    def wait_full_isr(self, topic, timeout):
        """True once every node says every partition's ISR is all its replicas."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            views = [self.partition_state(topic, i) for i in self.ids]
            if all(views) and all(isr == reps for v in views for _, reps, isr in v.values()):
                return True
            time.sleep(0.25)
        return False

    def replica_sizes(self, topic):
        """{partition: {node: bytes}} from DescribeLogDirs of each node."""
        out = {}
        for i in self.ids:
            try:
                sizes = bb_admin.describe_log_dirs(self.nodes[i].bootstrap)
            except Exception:
                continue
            for (name, p), size in sizes.items():
                if name == topic:
                    out.setdefault(p, {})[i] = size
        return out

    def diverged(self, topic, wait_s=3.0):
        """Partitions whose replicas differ in size after up to wait_s (followers
        may be a fetch behind): {partition: {node: bytes}}."""
        deadline = time.monotonic() + wait_s
        while True:
            sizes = self.replica_sizes(topic)
            bad = {p: s for p, s in sizes.items() if len(s) != 3 or len(set(s.values())) != 1}
            if not bad or time.monotonic() > deadline:
                return bad
            time.sleep(0.3)

    # ------------------------------------------------------------ topics, groups

    def create_topic(self, name):
        a = admin(self.bootstrap())
        fs = a.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=3,
                                       config={"min.insync.replicas": str(MIN_ISR)})], request_timeout=20)
        fs[name].result(timeout=30)
        self.wait_healthy(name, timeout=30)
        return self.wait_full_isr(name, 10)

    def delete_topic(self, name):
        try:
            a = admin(self.bootstrap())
            a.delete_topics([name], request_timeout=15)[name].result(timeout=20)
        except Exception:
            pass  # best effort: a fresh topic per run does not depend on it

    def group_for(self, node, tag):
        """A group id whose coordinator is node (the leader of its partition of
        __consumer_offsets), and whether one was found (the topic exists only
        after the first group used it)."""
        md = self.metadata(self.live_ids()[0], ["__consumer_offsets"])
        t = md and md["topics"].get("__consumer_offsets")
        base = "faults-%s" % tag
        if not t or t["error_code"] != 0 or not t["partitions"]:
            return base, False
        leaders = {p["partition"]: p["leader"] for p in t["partitions"]}
        for k in range(500):
            g = "%s-%d" % (base, k)
            if leaders.get(coordinator_partition(g, len(leaders))) == node:
                return g, True
        return base, False

    def live_ids(self):
        return [i for i in self.ids if self.nodes[i].alive()]

    # ------------------------------------------------------------ crashes

    def crashed(self):
        return [i for i in self.ids if self.nodes[i].died_unexpectedly()]

    def revive(self):
        """Restarts nodes that died by themselves (after their crash was recorded)."""
        for i in self.crashed():
            self.nodes[i].start(timeout=60 * SLOW)


# ------------------------------------------------------------------ faults


@dataclass
class Target:
    node: int
    partition: int
    controller: Optional[int]


def _led_by(fc, topic, node, via=None):
    leaders = fc.leaders(topic, via=via) or {}
    return sorted(p for p, l in leaders.items() if l == node)


def _hold(fc, topic, target, affected, via, t_fault, least=HOLD_S, most=HOLD_MAX_S, after=1.0):
    """Holds a fault at least `least` seconds, or longer until via names another
    leader for every affected partition (then `after` more), at most `most`;
    returns the seconds from the fault until that was seen, or None."""
    seen = None
    end, last = t_fault + least * SLOW, t_fault + most * SLOW
    while time.monotonic() < (end if seen is not None or not affected else last):
        if seen is None and affected:
            leaders = fc.leaders(topic, via=via, timeout=1.0)
            if leaders and all(leaders.get(p, -1) not in (-1, target) for p in affected):
                seen = time.monotonic() - t_fault
                end = max(end, time.monotonic() + after)
                continue
        time.sleep(0.2)
    return seen


def _held(fc, topic, tg, name, do, undo, via, **hold):
    """do() to the target, _hold it (watching via), undo(): ([Window], notes)."""
    affected = _led_by(fc, topic, tg.node)
    t_fault = time.monotonic()
    do()
    try:
        failover = _hold(fc, topic, tg.node, affected, via, t_fault, **hold)
    finally:
        undo()
    return [bb_checker.Window(name, t_fault, time.monotonic(), affected)], {"failover_s": failover}


def _others(fc, node):
    return [i for i in fc.ids if i != node]


def fault_none(fc, topic, tg):
    t = time.monotonic()
    time.sleep(HOLD_S * SLOW)
    return [bb_checker.Window("none", t, time.monotonic(), list(range(PARTITIONS)))], {}


def fault_kill9_leader(fc, topic, tg):
    # Restarted once the surviving nodes name another leader (the session timeout fenced it).
    b = fc.nodes[tg.node]
    return _held(fc, topic, tg, "kill9", b.kill9, lambda: b.start(timeout=60 * SLOW), _others(fc, tg.node),
                 least=0, most=SESSION_MS / 1000.0 + 20, after=0)


def fault_sigstop_leader(fc, topic, tg):
    b = fc.nodes[tg.node]
    return _held(fc, topic, tg, "sigstop", b.sigstop, b.sigcont, _others(fc, tg.node))


def fault_cut_leader_followers(fc, topic, tg):
    others = _others(fc, tg.node)
    return _held(fc, topic, tg, "cut", lambda: fc.net.cut(tg.node, others), lambda: fc.net.heal(tg.node), others)


def fault_cut_leader_controller(fc, topic, tg):
    ctl = fc.controller()
    if ctl is None or ctl == tg.node:
        raise AssertionError("the active controller (%s) moved to the target %d before the cut" % (ctl, tg.node))
    windows, notes = _held(fc, topic, tg, "cut", lambda: fc.net.cut(tg.node, [ctl]), lambda: fc.net.heal(tg.node),
                           [ctl])
    notes["controller"] = ctl
    return windows, notes


def fault_rolling_restart(fc, topic, tg):
    order = [tg.node] + [i for i in fc.ids if i != tg.node]
    windows, exits, notes = [], {}, {}
    for i in order:
        affected = _led_by(fc, topic, i)
        t_fault = time.monotonic()
        exits[i] = fc.nodes[i].stop()
        fc.nodes[i].start(timeout=60 * SLOW)
        fc.wait_healthy(topic, timeout=60)
        windows.append(bb_checker.Window("restart-n%d" % i, t_fault, time.monotonic(), affected))
        # As an operator would: the next node only once nothing is under-replicated.
        if not fc.wait_full_isr(topic, ISR_WAIT_S):
            notes.setdefault("isr_not_full_after", []).append(i)
    for w_, nxt in zip(windows, windows[1:]):
        w_.until = nxt.t_fault
    bad = {i: rc for i, rc in exits.items() if rc != 0}
    if bad:
        notes["exit_codes_not_0"] = bad
    return windows, notes


FAULT_FNS = {
    "none": fault_none,
    "kill9_leader": fault_kill9_leader,
    "sigstop_leader": fault_sigstop_leader,
    "cut_leader_followers": fault_cut_leader_followers,
    "cut_leader_controller": fault_cut_leader_controller,
    "rolling_restart": fault_rolling_restart,
}


def choose_target(fc, fault, topic, index):
    leaders = fc.leaders(topic)
    ctl = fc.controller()
    parts = sorted(leaders)
    if fault == "cut_leader_controller":
        parts = [p for p in parts if leaders[p] != ctl]
        if not parts:
            return None
    p = parts[index % len(parts)]
    return Target(leaders[p], p, ctl)


# ------------------------------------------------------------------ one run


@dataclass
class RunResult:
    fault: str
    index: int
    topic: str
    target: Optional[int] = None
    partition: Optional[int] = None
    controller: Optional[int] = None
    group: Optional[str] = None
    group_on_target: bool = False
    check: Optional[bb_checker.Check] = None
    notes: dict = field(default_factory=dict)
    crashed: List[int] = field(default_factory=list)
    error: Optional[str] = None
    took_s: float = 0.0

    @property
    def ok(self):
        return self.error is None and not self.crashed and self.check is not None and self.check.ok

    def line(self):
        head = "%s #%d target=n%s(p%s%s) ctl=n%s" % (
            self.fault, self.index, self.target, self.partition,
            ", group coordinator" if self.group_on_target else "", self.controller)
        body = self.check.summary() if self.check else "not checked"
        extra = " ".join("%s=%s" % (k, ("%.1fs" % v) if isinstance(v, float) else v)
                         for k, v in sorted(self.notes.items()))
        s = "%s %s %s took=%.1fs" % (head, body, extra, self.took_s)
        if self.crashed:
            s += " CRASHED=%s" % self.crashed
        if self.error:
            s += " ERROR: %s" % self.error.splitlines()[0][:300]
        return s

    def as_dict(self):
        d = {k: getattr(self, k) for k in ("fault", "index", "topic", "target", "partition", "controller",
                                            "group", "group_on_target", "notes", "crashed", "error", "took_s")}
        d["ok"] = self.ok
        d["check"] = self.check.as_dict() if self.check else None
        return d


def run_once(fc, fault, index, workdir, rate=RATE, keep_files=False):
    """One run of fault (a key of FAULT_FNS) on a fresh topic; never raises for
    what the cluster does (that goes into the result), only for harness bugs."""
    t0 = time.monotonic()
    rundir = os.path.join(workdir, "%s-%04d" % (fault, index))
    os.makedirs(rundir, exist_ok=True)
    tag = "%s%d" % (uuid.uuid4().hex[:6], index)
    topic = "faults-%s-%s" % (fault.replace("_", "-"), tag)
    res = RunResult(fault, index, topic)
    load = None
    windows, t_end = [], None
    try:
        fc.wait_healthy(timeout=60)
        fc.create_topic(topic)
        tg = choose_target(fc, fault, topic, index)
        if tg is None:
            raise AssertionError("no partition led by another node than the controller")
        res.target, res.partition, res.controller = tg.node, tg.partition, tg.controller
        res.group, res.group_on_target = fc.group_for(tg.node, tag)
        load = Load(fc.bootstrap(), topic, rundir, partitions=PARTITIONS, rate=rate, tag=tag, group=res.group)
        bb_admin.wait_for("acknowledgements on every partition",
                          lambda: load.check_alive() or len(load.last_acks()) == PARTITIONS, WARMUP_MAX_S * SLOW)
        time.sleep(WARMUP_S)
        windows, notes = FAULT_FNS[fault](fc, topic, tg)
        res.notes.update(notes)
        fc.wait_healthy(topic, timeout=60)
        t_healthy = time.monotonic()
        res.notes["healthy_s"] = t_healthy - windows[0].t_fault
        time.sleep(SETTLE_S)
        try:
            bb_admin.wait_for("acknowledgements on every partition after the fault",
                              lambda: all(t > t_healthy for t in load.last_acks().values())
                              and len(load.last_acks()) == PARTITIONS, SETTLE_MAX_S * SLOW, interval=0.25)
        except AssertionError:
            res.notes["not_acking_again"] = sorted(p for p in range(PARTITIONS)
                                                   if load.last_acks().get(p, 0) <= t_healthy)
        if res.group:
            try:
                bb_admin.wait_for("the group committing every partition again",
                                  lambda: load.last_full_commit() > t_healthy, GROUP_MAX_S * SLOW, interval=0.25)
            except AssertionError:
                res.notes["group_not_committing"] = True
        t_end = time.monotonic()
    except Exception as e:  # the fault or the cluster misbehaved: still check what was acknowledged
        _heal_everything(fc)
        if type(e).__name__ == "DeadlineExceeded":  # the test's time is up (conftest): not the cluster's doing
            raise
        res.error = "%s: %s" % (type(e).__name__, e)
    finally:
        if load is not None:
            t_end = t_end or time.monotonic()
            acks_path, group_path = load.stop()
    if load is not None:
        try:
            log, marks = bb_checker.read_topic(fc.bootstrap(), topic, range(PARTITIONS), timeout=60 * SLOW)
            acks = bb_checker.parse_acks(acks_path, tag)
            group = bb_checker.parse_group(group_path) if group_path and os.path.exists(group_path) else None
            res.check = bb_checker.check(acks, log, marks, group, windows, t_end)
            if not res.check.ok or keep_files:
                with open(os.path.join(rundir, "log.txt"), "w") as f:
                    f.write("# partition offset value, as read from 0 to the high watermarks %r\n" % marks)
                    for p in sorted(log):
                        for o, v in log[p]:
                            f.write("%d %d %s\n" % (p, o, v.decode(errors="replace") if v is not None else None))
            div = fc.diverged(topic)
            if div:
                res.notes["replicas_differ"] = {p: s for p, s in sorted(div.items())}
        except Exception as e:
            res.error = (res.error + "; " if res.error else "") + "checking: %s: %s" % (type(e).__name__, e)
    res.crashed = fc.crashed()
    if res.crashed:
        fc.revive()
    fc.delete_topic(topic)
    res.took_s = time.monotonic() - t0
    if res.ok and not keep_files:
        shutil.rmtree(rundir, ignore_errors=True)
    return res


def _heal_everything(fc):
    for i in fc.ids:
        fc.net.heal(i)
        b = fc.nodes[i]
        if b.alive():
            b.sigcont()
        elif b.proc is not None and b.expected_exit:
            try:
                b.start(timeout=60 * SLOW)
            except Exception:
                pass

"""Fixtures for Gregor's black-box tests: real broker processes on 127.0.0.1.

- `broker`: a broker shared by the tests of one module (started on first use,
  restarted with a fresh data dir if an earlier test killed it). A test that
  lets it die fails.
- `broker_factory`: `make(overrides={...}, node_id=1, start=True,
  use_config_file=False)` returns a private Broker (see bb_broker.Broker:
  .bootstrap, .data_dir, .restart(), .kill9(), .stop()). All are stopped at
  teardown.

When a test fails, the tail of every broker log it used is attached to the
report. Each test runs under a deadline (default 120 s, `@pytest.mark.deadline(s)`
to change it, tripled when GREGOR_SANITIZED=1) so nothing can hang the suite.
"""

import faulthandler
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from bb_broker import Broker  # noqa: E402

DEFAULT_DEADLINE_S = int(os.environ.get("GREGOR_TEST_DEADLINE", "120"))
# A sanitizer build (GREGOR_SANITIZED=1) runs several times slower.
SLOWDOWN = 3 if os.environ.get("GREGOR_SANITIZED") == "1" else 1


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "deadline(seconds): per-test time limit (SIGALRM)")
    config.addinivalue_line(
        "markers", "slow: long-running (10k-record streams, kill -9); deselect with -m 'not slow'")


# ------------------------------------------------------------------ deadlines


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("deadline")
    seconds = (int(marker.args[0]) if marker else DEFAULT_DEADLINE_S) * SLOWDOWN

    def on_alarm(signum, frame):
        raise DeadlineExceeded("test exceeded its %d s deadline" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    # Last resort if the alarm cannot interrupt (stuck in C code): dump stacks.
    faulthandler.dump_traceback_later(seconds + 60, exit=False)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------ logs on failure


def _register(item, broker, log_offset=0):
    lst = getattr(item, "_gregor_brokers", None)
    if lst is None:
        lst = item._gregor_brokers = []
    lst.append((broker, log_offset))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for broker, offset in getattr(item, "_gregor_brokers", []):
            text = broker.log_text()[offset:]
            tail = "\n".join(text.splitlines()[-100:])
            rep.sections.append(
                ("gregor log %s (tail, %s)" % (broker.bootstrap, rep.when),
                 tail or "(empty)"))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def _shared_broker(tmp_path_factory):
    holder = {"n": 0, "broker": None}

    def get():
        b = holder["broker"]
        if b is None or not b.alive():
            if b is not None:
                b.kill9()
            holder["n"] += 1
            d = tmp_path_factory.mktemp("shared")
            data = d / "data"
            data.mkdir()
            b = Broker(str(data), str(d / "gregor.log"))
            b.start()
            holder["broker"] = b
        return b

    yield get
    b = holder["broker"]
    if b is not None and b.alive():
        try:
            b.stop()
        except Exception:
            b.kill9()


@pytest.fixture
def broker(_shared_broker, request):
    b = _shared_broker()
    _register(request.node, b, len(b.log_text()))
    yield b
    if b.died_unexpectedly():
        pytest.fail("gregor (pid %s) died during the test, exit code %s"
                    % (b.pid, b.proc.returncode))


@pytest.fixture
def broker_factory(tmp_path, request):
    made = []

    def make(overrides=None, node_id=1, start=True, use_config_file=False,
             data_dir=None):
        d = tmp_path / ("b%d" % len(made))
        d.mkdir()
        data = data_dir or str(d / "data")
        os.makedirs(data, exist_ok=True)
        b = Broker(data, str(d / "gregor.log"), node_id=node_id,
                   overrides=overrides, use_config_file=use_config_file)
        made.append(b)
        _register(request.node, b)
        if start:
            b.start()
        return b

    yield make
    died = [b for b in made if b.died_unexpectedly()]
    for b in made:
        if b.alive():
            try:
                b.stop()
            except Exception:
                b.kill9()
    if died:
        pytest.fail("gregor died during the test: %s"
                    % ", ".join("%r exit %s" % (b, b.proc.returncode)
                                for b in died))


@pytest.fixture
def cluster_factory(tmp_path, request):
    """make(n=3, overrides={...}, per_node={id: {...}}, start=True, hosts=None,
    prefixes=None) -> a bb_cluster.Cluster of n broker+controller processes. Every node is stopped
    at teardown; a node that died without the test killing it fails the test."""
    from bb_cluster import Cluster
    made = []

    def make(n=3, overrides=None, per_node=None, start=True, hosts=None, prefixes=None):
        c = Cluster(str(tmp_path / ("cluster%d" % len(made))), n, overrides, per_node, hosts, prefixes)
        made.append(c)
        for b in c.nodes.values():
            _register(request.node, b)
        if start:
            c.start()
        return c

    yield make
    died = [b for c in made for b in c.nodes.values() if b.died_unexpectedly()]
    for c in made:
        c.stop()
    if died:
        pytest.fail("gregor died during the test: %s"
                    % ", ".join("%r exit %s" % (b, b.proc.returncode) for b in died))


@pytest.fixture
def proxied(broker_factory):
    """A broker whose clients all go through a bb_proxy.Proxy (it advertises the
    proxy's port), which can lose responses: (broker, proxy)."""
    from bb_proxy import Proxy
    b = broker_factory(start=False)
    proxy = Proxy(b.port)
    b.overrides["advertised.listeners"] = "PLAINTEXT://127.0.0.1:%d" % proxy.port
    b.start()
    yield b, proxy
    proxy.close()


@pytest.fixture
def register_broker(request):
    """register(broker): attach the tail of broker's log (from now on) to this
    test's report if it fails; for brokers made outside the factories above
    (e.g. a module-scoped cluster)."""
    def register(b):
        _register(request.node, b, len(b.log_text()))
    return register

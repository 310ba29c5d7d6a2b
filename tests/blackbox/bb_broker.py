"""Start, stop, kill and restart a real gregor broker process for the tests."""

import ctypes
import os
import signal
import socket
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SANITIZED = os.environ.get("GREGOR_SANITIZED") == "1"
START_TIMEOUT_S = float(os.environ.get("GREGOR_START_TIMEOUT", "60" if SANITIZED else "20"))
STOP_TIMEOUT_S = 60.0 if SANITIZED else 20.0


def gregor_bin():
    return os.environ.get("GREGOR_BIN", os.path.join(REPO, "build", "gregor"))


def bench_bin(name, env_var):
    """A program of bench/: $env_var, else beside the broker under test (<build>/bench/),
    else the release build's (build/bench/; the sanitized build has no bench). The path
    returned may not exist: callers skip with a hint then."""
    env = os.environ.get(env_var)
    if env:
        return env
    candidates = [
        os.path.join(os.path.dirname(os.path.abspath(gregor_bin())), "bench", name),
        os.path.join(REPO, "build", "bench", name),
    ]
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return candidates[-1]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, timeout=0.2, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_PR_SET_PDEATHSIG = 1
try:
    # Loaded up front: the child after fork() should only make the call.
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent():
    # If pytest itself dies (or is killed), take the broker with it.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


class BrokerError(Exception):
    pass


class Broker:
    """One gregor broker process with its own port and data dir.

    The port and data dir stay the same across restart(), so clients and
    on-disk state carry over. Every wait is bounded.
    """

    def __init__(self, data_dir, log_path, port=None, node_id=1, overrides=None,
                 use_config_file=False, host="127.0.0.1", prefix=()):
        """host: the address it listens on; prefix: what runs the command
        (e.g. `ip netns exec NS` for a node in its own network namespace)."""
        self.host = host
        self.prefix = list(prefix)
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.node_id = node_id
        self.overrides = dict(overrides or {})
        self.use_config_file = use_config_file
        self.proc = None
        self.starts = 0
        self.expected_exit = True  # no process yet

    # ------------------------------------------------------------ properties

    @property
    def bootstrap(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def settings(self, extra=None):
        s = {
            "listeners": "PLAINTEXT://%s:%d" % (self.host, self.port),
            "log.dirs": self.data_dir,
            "node.id": str(self.node_id),
        }
        s.update({k: str(v) for k, v in self.overrides.items()})
        if extra:
            s.update({k: str(v) for k, v in extra.items()})
        return s

    def command(self, extra=None):
        s = self.settings(extra)
        cmd = self.prefix + [gregor_bin(), "server"]
        if self.use_config_file:
            path = os.path.join(os.path.dirname(self.log_path),
                                "server-%d.properties" % (self.starts + 1))
            with open(path, "w") as f:
                f.write("# written by tests/blackbox\n")
                for k, v in s.items():
                    f.write("%s=%s\n" % (k, v))
            cmd += ["--config", path]
        else:
            for k, v in s.items():
                cmd += ["--override", "%s=%s" % (k, v)]
        return cmd

    # ------------------------------------------------------------ lifecycle

    def spawn(self, extra=None):
        """Start the process without waiting for readiness."""
        assert not self.alive(), "broker already running"
        binary = gregor_bin()
        if not os.access(binary, os.X_OK):
            raise BrokerError("gregor binary not found at %s (set GREGOR_BIN)"
                              % binary)
        self.starts += 1
        cmd = self.command(extra)
        with open(self.log_path, "ab") as log:
            log.write(("\n===== start #%d: %s\n" % (self.starts, " ".join(cmd)))
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=os.path.dirname(self.log_path),
                preexec_fn=_die_with_parent)
        self.expected_exit = False
        return self.proc

    def start(self, extra=None, timeout=START_TIMEOUT_S):
        self.spawn(extra)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.expected_exit = True
                raise BrokerError(
                    "gregor exited with code %s before listening on %s\n%s"
                    % (self.proc.returncode, self.bootstrap, self.log_tail()))
            if port_open(self.port, host=self.host):
                return
            time.sleep(0.05)
        raise BrokerError("gregor did not listen on %s within %.0f s\n%s"
                          % (self.bootstrap, timeout, self.log_tail()))

    def wait_exit(self, timeout):
        """Wait for the process to exit by itself; returns the exit code or
        None on timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.expected_exit = True
        return rc

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM and wait. Returns the exit code; raises if the broker does
        not exit in time (it is then killed with SIGKILL)."""
        if self.proc is None:
            return None
        self.expected_exit = True
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise BrokerError("gregor did not exit within %.0f s of SIGTERM\n%s"
                              % (timeout, self.log_tail()))
        return rc

    def kill9(self):
        if self.proc is None:
            return
        self.expected_exit = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        # The kernel may hold the port briefly; the next start must still bind.

    def restart(self, extra=None, timeout=START_TIMEOUT_S):
        if self.alive():
            self.stop()
        return self.start(extra, timeout)

    def sigstop(self):
        self.proc.send_signal(signal.SIGSTOP)

    def sigcont(self):
        self.proc.send_signal(signal.SIGCONT)

    # ------------------------------------------------------------ logs

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=80):
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:])

    def died_unexpectedly(self):
        return (self.proc is not None and not self.expected_exit
                and self.proc.poll() is not None)

    def __repr__(self):
        return "Broker(%s, pid=%s, dir=%s)" % (self.bootstrap, self.pid,
                                              self.data_dir)

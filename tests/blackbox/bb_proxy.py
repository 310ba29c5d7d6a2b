"""A TCP proxy between real clients and one broker that can lose responses.

The broker advertises the proxy's port (advertised.listeners), so every
connection a client makes goes through it. `drop_responses(api_key, n)` makes
the proxy swallow the next n responses to requests of that API and close the
client's connection instead: the broker did the work, the client never heard,
exactly what a retry after a lost response looks like to the broker.
"""

import socket
import struct
import threading


class Proxy:
    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.to_drop = {}   # api_key -> responses still to drop
        self.dropped = {}   # api_key -> responses dropped so far
        self.closing = False
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_responses(self, api_key, n):
        with self.lock:
            self.to_drop[api_key] = self.to_drop.get(api_key, 0) + n

    def dropped_count(self, api_key):
        with self.lock:
            return self.dropped.get(api_key, 0)

    def close(self):
        self.closing = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            for s in self.sockets:
                _close(s)

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            pending = {}  # correlation id -> api key, requests not yet answered
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._requests, args=(client, server, pending), daemon=True).start()
            threading.Thread(target=self._responses, args=(server, client, pending), daemon=True).start()

    def _requests(self, client, server, pending):
        try:
            while True:
                frame = _read_frame(client)
                if frame is None:
                    break
                api_key, _version, corr = struct.unpack(">hhi", frame[4:12])
                with self.lock:
                    pending[corr] = api_key
                server.sendall(frame)
        except OSError:
            pass
        _close(client)
        _close(server)

    def _responses(self, server, client, pending):
        try:
            while True:
                frame = _read_frame(server)
                if frame is None:
                    break
                (corr,) = struct.unpack(">i", frame[4:8])
                with self.lock:
                    api_key = pending.pop(corr, None)
                    drop = self.to_drop.get(api_key, 0) > 0
                    if drop:
                        self.to_drop[api_key] -= 1
                        self.dropped[api_key] = self.dropped.get(api_key, 0) + 1
                if drop:
                    break  # the response is lost with the connection
                client.sendall(frame)
        except OSError:
            pass
        _close(client)
        _close(server)


def _read_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_frame(s):
    head = _read_exact(s, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    body = _read_exact(s, size)
    return None if body is None else head + body


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass

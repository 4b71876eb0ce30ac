"""What the county-hub and region-server fixtures share: one of our HTTP servers running as a
real process on a free loopback port (plain or HTTPS), its log file, and plain HTTP
requests to it with http.client (no code of ours on the client side).

    class Hub(Service): ...     (hubfixture.py)
    class Region(Service): ...  (regionfixture.py)

A subclass sets `name` (for messages), `start_seconds`, `stop_seconds` and
`request_seconds`, keeps its log at self.log_path, and starts its server with
self.launch(argv, env)."""

import http.client
import json
import signal
import socket
import ssl
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:400]!r}>"


class Service:
    name = "server"
    start_seconds = 30  # the longest a start may take before /healthz answers 200
    stop_seconds = 15   # the longest stop() waits after the signal before SIGKILL
    request_seconds = 30

    def __init__(self, log_path):
        self.log_path = log_path
        self.port = None
        self.proc = None
        self.log = None
        self.tls = None  # while serving HTTPS: an object with .cert, .key, .cacert paths

    def launch(self, argv, env, tls=None):
        """Runs argv (which must listen on self.port, set by the caller from free_port())
        with its output appended to the log, and waits until GET /healthz answers 200.
        tls: serve HTTPS, and talk to it trusting tls.cacert."""
        self.tls = tls
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(a) for a in argv], stdout=self.log, stderr=self.log,
                                     env=env)
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited: {self.log_text()}"
            try:
                if self.request("GET", "/healthz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start: {self.log_text()}")

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Sends sig and waits for the exit; returns the exit code (None if not running)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout or self.stop_seconds)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
        return code

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def connection(self, timeout=None):
        timeout = timeout or self.request_seconds
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls.cacert))
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=None):
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def metric(self, name):
        """The value of one line of GET /metrics (Prometheus text)."""
        for line in self.request("GET", "/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise KeyError(name)

"""A fault-injecting HTTP proxy to put between school-agent and a county hub.

Each request to POST /v1/submissions is handled by the next mode of `proxy.script` (then
by `proxy.default`):

  pass            forward to the upstream hub and relay its answer
  drop_body       read half the request body, then close the connection (no answer)
  drop_response   forward to the upstream (the hub stores the return), then close the
                  connection without relaying the answer: the response is lost
  status:N        answer N with a JSON error body (e.g. status:500, status:422)
  busy:S          answer 503 {"error":"busy"} with Retry-After: S
  stall           read the request and never answer (until the proxy stops)
  forge           forward to the upstream, then answer 201 with the same receipt payload
                  signed by another key (an attacker's)
  tamper:FIELD    forward, then answer a receipt whose FIELD differs, signed by the
                  county key the test gives (sha256, submission_id, ...)

Without an upstream, "pass" answers with a receipt made here and signed with the county
key the test gives (python3-jwcrypto, independent of our C code): a stand-in for the hub
that checks nothing, for tests of the agent's side of the protocol. A resend of the same
submission id gets the same receipt bytes with 200, as docs/PROTOCOL.md requires.

Every request is recorded in `proxy.requests` (headers, raw body, gunzipped JWS, mode,
upstream status); `proxy.connections` counts TCP connections (keep-alive reuses one)."""

import base64
import gzip
import hashlib
import http.client
import http.server
import json
import socket
import threading

from jwcrypto import jwk

from hubfixture import sign


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jws_payload(text):
    """The payload bytes of a flattened JWS (not verified)."""
    return b64url_decode(json.loads(text)["payload"])


class FaultProxy:
    def __init__(self, upstream=None, county_key=None, county_id="654201",
                 received_at="2024-05-03T09:12:05+08:00", tls=None):
        self.upstream = upstream  # (host, port) or None
        self.tls = tls  # an ssl.SSLContext to serve HTTPS with, or None
        self.county_key = county_key  # jwcrypto key with its private part, or None
        self.county_id = county_id
        self.received_at = received_at
        self.script = []
        self.default = "pass"
        self.requests = []
        self.connections = 0
        self.receipts = {}  # made here: submission id -> (payload sha256, receipt bytes)
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends stalls
        self.server = None

    # lifecycle ----------------------------------------------------------------------
    def start(self):
        proxy = self

        class Handler(ProxyHandler):
            pass

        Handler.proxy = proxy
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def next_mode(self):
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    # answers ------------------------------------------------------------------------
    def forward(self, method, path, headers, body):
        """(status, headers, body) from the upstream, or a receipt made here."""
        if self.upstream is None:
            return self.make_receipt(body)
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            keep = {k: v for k, v in headers.items()
                    if k.lower() in ("content-type", "content-encoding", "accept")}
            conn.request(method, path, body=body, headers=keep)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def make_receipt(self, body):
        assert self.county_key is not None, "no upstream and no county key to sign with"
        text = gzip.decompress(body).decode()
        payload = jws_payload(text)
        p = json.loads(payload)
        digest = hashlib.sha256(payload).hexdigest()
        with self.lock:
            known = self.receipts.get(p["submission_id"])
            if known and known[0] == digest:
                return 200, {"Content-Type": "application/jose+json"}, known[1]
            if known:
                return 409, {"Content-Type": "application/json"}, json.dumps(
                    {"error": "conflict", "message": "other bytes", "details": []}).encode()
            receipt = {"type": "receipt", "submission_id": p["submission_id"],
                       "school_id": p["school_id"], "county_id": p["county_id"],
                       "form": p["form"], "period": p["period"], "sha256": digest,
                       "received_at": self.received_at, "on_time": True}
            signed = sign(self.county_key, json.dumps(receipt).encode(),
                          kid=self.county_id).encode()
            self.receipts[p["submission_id"]] = (digest, signed)
        return 201, {"Content-Type": "application/jose+json"}, signed

    def resign(self, receipt_body, key, change=None):
        """The receipt's payload, optionally changed, signed with key under the county's kid."""
        payload = json.loads(jws_payload(receipt_body.decode()))
        if change:
            field = change
            payload[field] = ("0" * 64 if field == "sha256" else
                              "00000000-0000-7000-8000-000000000000" if field == "submission_id"
                              else "999999")
        return sign(key, json.dumps(payload).encode(), kid=self.county_id).encode()


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls
    proxy = None

    def setup(self):
        super().setup()
        with self.proxy.lock:
            self.proxy.connections += 1

    def log_message(self, fmt, *args):  # quiet
        pass

    def answer(self, status, headers, body):
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() in ("content-type", "retry-after"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drop(self):
        """Closes the connection at once (an RST if data is unread)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        status, headers, body = self.proxy.forward("GET", self.path, dict(self.headers), None)
        self.answer(status, headers, body)

    def do_POST(self):
        proxy = self.proxy
        mode = proxy.next_mode()
        length = int(self.headers.get("Content-Length", "0"))
        record = {"mode": mode, "headers": dict(self.headers), "path": self.path,
                  "upstream_status": None}
        with proxy.lock:
            proxy.requests.append(record)
        if mode == "drop_body":
            record["body"] = self.rfile.read(length // 2)
            self.drop()
            return
        body = self.rfile.read(length)
        record["body"] = body
        try:
            record["jws"] = gzip.decompress(body).decode()
        except (OSError, UnicodeDecodeError, EOFError):
            record["jws"] = None
        if mode == "stall":
            proxy.release.wait(120)
            self.drop()
            return
        if mode.startswith("status:"):
            code = int(mode.split(":")[1])
            self.answer(code, {"Content-Type": "application/json"}, json.dumps(
                {"error": "injected", "message": f"injected {code}", "details": [],
                 "reason": "expired"}).encode())
            return
        if mode.startswith("busy:"):
            self.answer(503, {"Content-Type": "application/json",
                              "Retry-After": mode.split(":")[1]},
                        json.dumps({"error": "busy", "message": "try later",
                                    "details": []}).encode())
            return
        status, headers, answer = proxy.forward("POST", self.path, dict(self.headers), body)
        record["upstream_status"] = status
        record["upstream_body"] = answer
        if mode == "drop_response":
            self.drop()
            return
        if mode == "forge" and status in (200, 201):
            attacker = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=proxy.county_id)
            answer = proxy.resign(answer, attacker)
        elif mode.startswith("tamper:") and status in (200, 201):
            answer = proxy.resign(answer, proxy.county_key, change=mode.split(":")[1])
        self.answer(status, headers, answer)

"""TLS on both hops (DESIGN section 10): a throwaway CA and a server certificate for
127.0.0.1 made here with the openssl command, then

- school-agent -> county-hub over HTTPS: with --cacert the return is delivered and its
  receipt verified (by the agent, and here with jwcrypto); without it the agent stops at
  the certificate, says so, and keeps the return queued;
- county-hub -> region-server over HTTPS: the forwarder trusts the region's certificate
  only through region_cacert (verification is on by default), and everything arrives;
- a plain-HTTP client of a TLS port gets no HTTP answer;
- plain HTTP on an address other than loopback is refused unless asked for explicitly;
- hub.json's tls_cert and tls_key, and a certificate that does not go with its key."""

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import psycopg2
import pytest

from agentfixture import EX_OK, EX_TEMPFAIL, Agent
from faultproxy import jws_payload
from hubfixture import BINARY as HUB_BINARY
from hubfixture import DEFAULT_CLOCK, SCHEMAS, Hub, free_port, submission, verify_receipt
from pgfixture import pg_server  # noqa: F401  (a fixture)
from regionfixture import REGION, Region

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="the openssl command is needed (scripts/install-deps)")

EX_CONFIG = 78
FAST = dict(forward_backoff_base_ms=100, forward_backoff_max_ms=300, forward_poll_ms=100)


class Tls:
    """A CA (cacert) and a certificate for 127.0.0.1 (cert, key) that it signed."""

    def __init__(self, folder, name="server"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cacert = self.folder / "ca.pem"
        self.cert = self.folder / f"{name}.pem"
        self.key = self.folder / f"{name}.key"
        ca_key = self.folder / "ca.key"
        csr = self.folder / f"{name}.csr"
        ext = self.folder / f"{name}.ext"
        ext.write_text("subjectAltName = IP:127.0.0.1\n"
                       "basicConstraints = critical, CA:FALSE\n"
                       "keyUsage = critical, digitalSignature\n"
                       "extendedKeyUsage = serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", self.cacert, "-days", "2",
                "-subj", "/CN=returns test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", *ec, "-keyout", self.key, "-out", csr, "-subj", "/CN=127.0.0.1")
        openssl("x509", "-req", "-in", csr, "-CA", self.cacert, "-CAkey", ca_key,
                "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", ext)


def openssl(*args):
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, (args, proc.stderr)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return Tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_tls(tmp_path_factory):
    """Another CA and certificate: trusting this CA does not make the first one valid."""
    return Tls(tmp_path_factory.mktemp("tls-other"))


@pytest.fixture
def https_hub(tmp_path, tls):
    hub = Hub(tmp_path / "hub")
    hub.init()
    hub.start(tls=tls)
    yield hub
    hub.stop()


def agent_of(hub, tmp_path):
    """A school-agent that knows the hub by its https:// URL, in the hub's roster."""
    a = Agent(tmp_path / "agent", hub.url(), hub.dir / "county.pub.jwk")
    hub.add_school(key=a.public_key())
    return a


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def plain_http_exchange(port):
    """Sends a plain-HTTP request to port and returns whatever comes back before the
    server closes the connection (or the timeout)."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return data


# --- school-agent -> county-hub -----------------------------------------------------------

def test_agent_syncs_over_https_with_its_cacert(https_hub, tmp_path, tls):
    hub = https_hub
    assert hub.url().startswith("https://")
    a = agent_of(hub, tmp_path)
    ids = [a.submit("incident"), a.submit("summary", None, "--period", "2024-P2")]
    r = a.run("sync", "--cacert", tls.cacert)
    assert r.returncode == EX_OK, r.stderr + hub.log_text()
    assert a.outbox() == [] and a.sent() == sorted(ids)
    for sid in ids:
        payload = jws_payload((a.dir / "sent" / f"{sid}.jws").read_text())
        receipt = verify_receipt(hub, (a.dir / "sent" / f"{sid}.receipt").read_bytes(), payload)
        assert receipt["submission_id"] == sid
        assert receipt["sha256"] == hashlib.sha256(payload).hexdigest()
    assert sorted(r[0] for r in hub.query("SELECT submission_id FROM submissions")) == sorted(ids)
    assert "serving HTTPS on 127.0.0.1" in hub.log_text()


def test_agent_without_the_cacert_stops_at_the_certificate(https_hub, tmp_path, tls,
                                                            other_tls):
    hub = https_hub
    a = agent_of(hub, tmp_path)
    sid = a.submit("incident")
    # the system's CAs do not know the test CA, and another CA is no better
    for extra in ([], ["--cacert", other_tls.cacert]):
        r = a.run("sync", "--now", *extra)
        assert r.returncode == EX_TEMPFAIL, r.stderr
        assert "certificate" in r.stderr.lower(), r.stderr
        assert a.outbox() == [sid] and a.sent() == []
    assert hub.query("SELECT count(*) FROM submissions") == [(0,)]
    assert a.status()[sid]["state"] == "queued"
    # the right CA delivers it
    r = a.run("sync", "--now", "--cacert", tls.cacert)
    assert r.returncode == EX_OK, r.stderr
    assert a.sent() == [sid]


def test_plain_http_to_the_hubs_tls_port_gets_no_answer(https_hub):
    data = plain_http_exchange(https_hub.port)
    assert not data.startswith(b"HTTP/"), data[:200]
    # the port still serves HTTPS afterwards
    assert https_hub.get("/healthz").status == 200


def test_hub_json_tls_keys_serve_https(tmp_path, tls):
    hub = Hub(tmp_path / "hub")
    hub.init()
    hub.write_config(tls_cert=str(tls.cert), tls_key=str(tls.key))
    port = free_port()
    log = open(tmp_path / "hub.log", "wb")
    proc = subprocess.Popen([str(HUB_BINARY), "serve", "--dir", str(hub.dir), "--schemas-dir",
                             str(SCHEMAS), "--listen", f"127.0.0.1:{port}"],
                            stdout=log, stderr=log,
                            env=dict(os.environ, RETURNS_CLOCK=hub.clock))
    context = ssl.create_default_context(cafile=str(tls.cacert))
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (tmp_path / "hub.log").read_text()
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz",
                                            context=context, timeout=5) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "hub.log").read_text()
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        log.close()


def test_a_key_that_is_not_the_certificates_is_refused_at_start(tmp_path, tls, other_tls):
    hub = Hub(tmp_path / "hub")
    hub.init()
    r = hub.cmd("serve", "--listen", f"127.0.0.1:{free_port()}", "--tls-cert", tls.cert,
                "--tls-key", other_tls.key, check=False)
    assert r.returncode != 0
    assert "cannot serve HTTPS" in r.stderr.decode(), r.stderr
    r = hub.cmd("serve", "--listen", f"127.0.0.1:{free_port()}", "--tls-cert", tls.cert,
                check=False)
    assert r.returncode != 0
    assert "both the TLS certificate and its key" in r.stderr.decode(), r.stderr
    r = hub.cmd("serve", "--listen", f"127.0.0.1:{free_port()}", "--tls-cert",
                tmp_path / "missing.pem", "--tls-key", tls.key, check=False)
    assert r.returncode != 0
    assert "missing.pem" in r.stderr.decode(), r.stderr


# --- plain HTTP beyond loopback -------------------------------------------------------------

def test_hub_refuses_plain_http_beyond_loopback_unless_asked(tmp_path):
    hub = Hub(tmp_path / "hub")
    hub.init()
    port = free_port()
    r = hub.cmd("serve", "--listen", f"0.0.0.0:{port}", check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "refusing plain HTTP on 0.0.0.0" in err and "--insecure-plain-http" in err, err
    # asked for explicitly: it serves, with a warning in its log
    log = open(tmp_path / "hub.log", "wb")
    proc = subprocess.Popen([str(HUB_BINARY), "serve", "--dir", str(hub.dir), "--schemas-dir",
                             str(SCHEMAS), "--listen", f"0.0.0.0:{port}",
                             "--insecure-plain-http"],
                            stdout=log, stderr=log,
                            env=dict(os.environ, RETURNS_CLOCK=hub.clock))
    try:
        hub.port = port
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (tmp_path / "hub.log").read_text()
            try:
                if hub.get("/healthz").status == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        log.close()
    text = (tmp_path / "hub.log").read_text()
    assert "clear text" in text and "warning" in text, text


def test_region_refuses_plain_http_beyond_loopback(tmp_path):
    # refused before it connects to any database
    r = subprocess.run([str(REGION), "serve", "--db", "host=/nonexistent dbname=none",
                        "--listen", f"0.0.0.0:{free_port()}", "--schemas-dir", str(SCHEMAS)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == EX_CONFIG, r.stderr
    assert "refusing plain HTTP on 0.0.0.0" in r.stderr, r.stderr


# --- county-hub -> region-server ------------------------------------------------------------

def region_rows(region, sql):
    conn = psycopg2.connect(region.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture
def https_region(pg_server, tmp_path, tls):
    region = Region(pg_server, "region_tls", tmp_path / "region")
    region.migrate()
    region.start(clock=DEFAULT_CLOCK, tls=tls)
    yield region
    region.stop()


def test_hub_forwards_to_the_region_over_https(https_region, tmp_path, tls):
    region = https_region
    assert region.url().startswith("https://")
    assert region.request("GET", "/healthz").status == 200
    assert not plain_http_exchange(region.port).startswith(b"HTTP/")

    hub = Hub(tmp_path / "hub")
    hub.init()
    hub.add_school()
    region.add_county(hub.county_id, "伊宁市", hub.county_public_key())
    # without the region's CA the forwarder refuses the certificate: nothing leaves
    hub.start(tls=tls, region_url=region.url(), **FAST)
    p = submission("incident", period="2024-06")
    p["data"].update(occurred_on="2024-06-01", discovered_on="2024-06-01",
                     reported_on="2024-06-03")
    assert hub.post(p).status == 201
    wait_for(lambda: hub.metric("county_hub_forward_failures_total") >= 2,
             what="failed attempts to forward")
    assert "certificate" in hub.log_text().lower(), hub.log_text()[-2000:]
    assert hub.query("SELECT count(*) FROM outbox WHERE done_ms IS NULL")[0][0] > 0
    assert region_rows(region, "SELECT count(*) FROM submissions") == [(0,)]
    hub.stop()

    # with region_cacert everything arrives, once
    hub.start(tls=tls, region_url=region.url(), region_cacert=str(tls.cacert), **FAST)
    wait_for(lambda: hub.query("SELECT count(*) FROM outbox WHERE done_ms IS NULL")[0][0] == 0,
             what="the hub's outbox to drain")
    assert hub.metric("county_hub_forward_rejected_total") == 0, region.log_text()[-2000:]
    held = region_rows(region, "SELECT submission_id::text, jws FROM submissions")
    assert held == hub.query("SELECT submission_id, jws FROM submissions")
    assert "forwarding the outbox to 'https://127.0.0.1" in hub.log_text()
    hub.stop()


def test_region_cacert_must_be_readable(tmp_path, tls):
    hub = Hub(tmp_path / "hub")
    hub.init()
    hub.write_config(region_url="https://127.0.0.1:9", region_cacert=str(tmp_path / "no.pem"))
    r = hub.cmd("serve", "--listen", f"127.0.0.1:{free_port()}", check=False)
    assert r.returncode != 0
    assert "no.pem" in r.stderr.decode(), r.stderr

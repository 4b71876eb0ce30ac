"""A real region-server for integration tests: a fresh database on the session's PostgreSQL
(pgfixture.pg_server), `region-server serve` on a free loopback port (migrating at start),
counties and tokens added with the real commands, and helpers to build county-signed
ingest batches exactly as docs/PROTOCOL.md fixes them, with python3-jwcrypto (an
independent JOSE implementation), and to ask the inspection API.

    from regionfixture import Region, county_batch, county_item, inspect_json  # noqa: F401
"""

import gzip
import json
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlencode

from jwcrypto import jws
from jwcrypto.common import json_encode

from servicefixture import Response, Service, free_port  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parent.parent.parent
REGION = Path(os.environ.get("REGION_SERVER", ROOT / "region-server" / "region-server"))
REGION_QUERY = Path(os.environ.get("REGION_QUERY", ROOT / "region-server" / "region-query"))
SCHEMAS = ROOT / "schemas"
DEFAULT_CLOCK = "2024-12-01T10:00:00+08:00"


def canonical(obj):
    """JSON bytes as the tiers write them: UTF-8, no spaces."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def county_sign(key, county_id, payload):
    """A flattened JWS of payload (dict or bytes) signed with the county's key."""
    data = payload if isinstance(payload, bytes) else canonical(payload)
    token = jws.JWS(data)
    token.add_signature(key, alg="EdDSA", protected=json_encode({"alg": "EdDSA", "kid": county_id}))
    return token.serialize()


def county_batch(key, county_id, items, batch_id=None, sent_at="2024-12-01T10:00:00+08:00",
                 extra=None):
    """The gzipped body of POST /v1/ingest: a county-signed batch of items."""
    payload = {"type": "batch", "county_id": county_id, "batch_id": batch_id or str(uuid.uuid4()),
               "sent_at": sent_at, "items": items}
    payload.update(extra or {})
    return gzip.compress(county_sign(key, county_id, payload).encode()), payload["batch_id"]


class Region(Service):
    name = "region-server"
    stop_seconds = 30
    request_seconds = 60

    def __init__(self, pg_server, dbname, folder):
        assert REGION.exists(), f"{REGION} is missing: run make first"
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder / "region.log")
        self.dsn = pg_server.new_database(dbname)
        self.folder = folder

    # commands ---------------------------------------------------------------------------
    def run(self, *args, check=0, env=None):
        proc = subprocess.run([str(REGION), *map(str, args)], capture_output=True, text=True,
                              timeout=120, env=env)
        if check is not None:
            assert proc.returncode == check, (args, proc.returncode, proc.stderr)
        return proc

    def migrate(self):
        return self.run("migrate", "--db", self.dsn, "--schemas-dir", SCHEMAS)

    def add_county(self, county_id, name, key):
        """Registers the county with the public part of key (a jwcrypto JWK)."""
        obj = json.loads(key.export_public())
        obj["kid"] = county_id
        path = self.folder / f"hub-{county_id}.pub.jwk"
        path.write_text(json.dumps(obj))
        return self.run("county", "add", "--county-id", county_id, "--name", name, "--key", path,
                        "--db", self.dsn)

    def token(self, name, role, county=None):
        args = ["token", "add", "--name", name, "--role", role, "--db", self.dsn]
        if county:
            args += ["--county", county]
        return self.run(*args).stdout.strip()

    # server -----------------------------------------------------------------------------
    def start(self, clock=DEFAULT_CLOCK, extra=(), tls=None):
        """tls (an object with .cert, .key and .cacert paths): serve HTTPS with that
        certificate and key, and talk to it trusting that CA."""
        self.port = free_port()
        tls_args = ["--tls-cert", tls.cert, "--tls-key", tls.key] if tls else []
        return self.launch([REGION, "serve", "--db", self.dsn, "--listen",
                            f"127.0.0.1:{self.port}", "--schemas-dir", SCHEMAS, *tls_args,
                            *extra], dict(os.environ, RETURNS_CLOCK=clock), tls)

    # HTTP -------------------------------------------------------------------------------
    def ingest(self, body, content_type="application/jose+json", encoding="gzip"):
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if encoding:
            headers["Content-Encoding"] = encoding
        return self.request("POST", "/v1/ingest", body, headers)

    def inspect(self, name, token=None, headers=None, **params):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return self.request("GET", f"/v1/inspections/{name}" + (f"?{query}" if query else ""),
                            headers=h)


def inspect_json(region, name, token, **params):
    """The tables of a JSON answer, by name: {table: [row dicts]}; asserts 200."""
    r = region.inspect(name, token, **params)
    assert r.status == 200, r
    doc = r.json()
    assert doc["query"] == name
    tables = {}
    for t in doc["tables"]:
        for row in t["rows"]:
            assert list(row) == t["columns"], (list(row), t["columns"])
        tables[t["name"]] = t["rows"]
    return tables

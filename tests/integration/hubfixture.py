"""A real county-hub for integration tests: `county-hub init` in a temporary folder,
schools registered with keys made by python3-jwcrypto, `county-hub serve` on a free
loopback port with a fixed RETURNS_CLOCK, and helpers to sign, gzip and upload returns.

Import what you need in a test module:

    from hubfixture import Hub, hub, school_key, sign, submission  # noqa: F401

`hub` is a pytest fixture: a Hub that is initialised (county 654201, one school
2165000123 in the roster) but not started; call hub.start() (optionally with config
overrides) and it is stopped at the end of the test. Everything is independent of our
C JOSE code: keys and signatures come from jwcrypto, receipts are verified with it."""

import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from jwcrypto import jwk, jws
from jwcrypto.common import json_encode

from servicefixture import Response, Service, free_port  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parent.parent.parent
BINARY = Path(os.environ.get("COUNTY_HUB", ROOT / "county-hub" / "county-hub"))
SCHEMAS = ROOT / "schemas"
DATA = ROOT / "tests" / "data"
COUNTY_ID = "654201"
SCHOOL_ID = "2165000123"
DEFAULT_CLOCK = "2024-06-10T10:00:00+08:00"


def school_key(kid=SCHOOL_ID):
    """A new Ed25519 key pair (jwcrypto) named kid."""
    return jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=kid)


def sign(key, payload, kid=None, alg="EdDSA"):
    """Flattened JSON JWS of payload (bytes) made by jwcrypto."""
    token = jws.JWS(payload)
    if alg != "EdDSA":
        token.allowed_algs = [alg]
    token.add_signature(key, alg=alg, protected=json_encode({"alg": alg, "kid": kid or key["kid"]}))
    return token.serialize()


def submission(form="incident", period=None, school_id=SCHOOL_ID, county_id=COUNTY_ID,
               data=None, submission_id=None, supersedes=None, **extra):
    """A payload dict built from the examples of tests/data/submissions."""
    examples = {
        "incident": "good-incident.json",
        "summary": "good-summary-phase.json",
        "rectification": "good-rectification-empty.json",
    }
    if form in examples:
        p = json.loads((DATA / "submissions" / examples[form]).read_text())
    else:
        p = json.loads((DATA / "submissions" / "good-incident.json").read_text())
        p["form"] = form
        p["data"] = json.loads((DATA / "returns" / form / "good-forms-md-example.json").read_text())
        p["period"] = "2024-P1"
    p["submission_id"] = submission_id or str(uuid.uuid4())
    p["school_id"] = school_id
    p["county_id"] = county_id
    p["supersedes"] = supersedes
    if period:
        p["period"] = period
    if data is not None:
        p["data"] = data
    p.update(extra)
    return p


def payload_bytes(p):
    return json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode()


class Hub(Service):
    name = "county-hub"

    def __init__(self, folder, county_id=COUNTY_ID, clock=DEFAULT_CLOCK):
        assert BINARY.exists(), f"{BINARY} is missing: run make first"
        folder = Path(folder)
        super().__init__(folder.parent / (folder.name + ".log"))
        self.dir = folder
        self.county_id = county_id
        self.clock = clock
        self.keys = {}

    # commands -----------------------------------------------------------------------
    def run(self, *args, check=True, clock=None):
        env = dict(os.environ, RETURNS_CLOCK=clock or self.clock)
        proc = subprocess.run([str(BINARY), *map(str, args)], capture_output=True, env=env,
                              timeout=60)
        if check:
            assert proc.returncode == 0, (args, proc.stderr.decode())
        return proc

    def cmd(self, command, *args, check=True, clock=None):
        """county-hub COMMAND --dir DIR ARGS..."""
        words = command.split()
        return self.run(*words, "--dir", self.dir, "--schemas-dir", SCHEMAS, *args, check=check,
                        clock=clock)

    def init(self, *args):
        return self.run("init", "--dir", self.dir, "--county-id", self.county_id, *args)

    def add_school(self, school_id=SCHOOL_ID, name="乌鲁木齐市第一中学", key=None, *args):
        key = key or school_key(school_id)
        pub = self.dir.parent / f"{school_id}-{len(self.keys)}.pub.jwk"
        pub.write_text(key.export_public())
        self.cmd("roster add", "--school-id", school_id, "--name", name, "--key", pub, *args)
        self.keys[school_id] = key
        return key

    def county_public_key(self):
        return jwk.JWK.from_json((self.dir / "county.pub.jwk").read_text())

    # server -------------------------------------------------------------------------
    def write_config(self, **overrides):
        path = self.dir / "hub.json"
        config = json.loads(path.read_text())
        config.update(overrides)
        path.write_text(json.dumps(config))

    def start(self, clock=None, tls=None, **config):
        """Starts `serve` on a free port; config keys go to hub.json. tls (an object with
        .cert, .key and .cacert paths): serve HTTPS with that certificate and key, and
        talk to it trusting that CA."""
        if config:
            self.write_config(**config)
        self.port = free_port()
        args = [BINARY, "serve", "--dir", self.dir, "--schemas-dir", SCHEMAS,
                "--listen", f"127.0.0.1:{self.port}"]
        if tls:
            args += ["--tls-cert", tls.cert, "--tls-key", tls.key]
        return self.launch(args, dict(os.environ, RETURNS_CLOCK=clock or self.clock), tls)

    # HTTP ---------------------------------------------------------------------------
    def post_raw(self, body, content_type="application/jose+json", encoding="gzip",
                 headers=None):
        h = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        if encoding is not None:
            h["Content-Encoding"] = encoding
        h.update(headers or {})
        return self.request("POST", "/v1/submissions", body, h)

    def post(self, p, key=None, kid=None):
        """Signs payload p (dict or bytes) with the school's key, gzips and uploads it."""
        data = p if isinstance(p, bytes) else payload_bytes(p)
        if key is None:
            school = json.loads(data)["school_id"]
            key = self.keys.get(school) or self.keys[SCHOOL_ID]
        return self.post_raw(gzip.compress(sign(key, data, kid=kid).encode()))

    # store --------------------------------------------------------------------------
    def db(self):
        conn = sqlite3.connect(f"file:{self.dir / 'hub.sqlite'}?mode=ro", uri=True, timeout=10)
        return conn

    def query(self, sql, *params):
        conn = self.db()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def counts(self):
        """(submission rows, outbox rows of kind submission)."""
        return (self.query("SELECT count(*) FROM submissions")[0][0],
                self.query("SELECT count(*) FROM outbox WHERE kind = 'submission'")[0][0])


def verify_receipt(hub, body, payload):
    """The receipt's payload after checking it with jwcrypto against county.pub.jwk."""
    token = jws.JWS()
    token.deserialize(body.decode() if isinstance(body, bytes) else body)
    token.verify(hub.county_public_key())
    header = token.jose_header
    assert header == {"alg": "EdDSA", "kid": hub.county_id}
    receipt = json.loads(token.payload)
    assert receipt["sha256"] == hashlib.sha256(payload).hexdigest()
    return receipt


@pytest.fixture
def hub(tmp_path):
    h = Hub(tmp_path / "hub")
    h.init()
    h.add_school()
    yield h
    h.stop()


# --- an independent roll-up and display width, for checking the hub's figures -------------

def _resolve(schema, node):
    """node with its local $ref followed; annotations beside a $ref win."""
    hops = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/") and hops < 16, ref
        target = schema
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        merged = dict(target)
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        node = merged
        hops += 1
    return node


def _rollup_key(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def _aggregate(schema, node, values):
    out = {}
    for name, prop in node.get("properties", {}).items():
        prop = _resolve(schema, prop)
        vals = [v.get(name) for v in values if isinstance(v, dict)]
        kind = prop.get("x-rollup")
        if kind is None and "properties" in prop:
            sub = _aggregate(schema, prop, [v for v in vals if isinstance(v, dict)])
            if sub:
                out[name] = sub
        elif kind == "none":
            continue
        elif kind == "sum":
            out[name] = sum(v for v in vals if isinstance(v, int) and not isinstance(v, bool))
        elif kind == "max":
            nums = [v for v in vals if isinstance(v, int) and not isinstance(v, bool)]
            out[name] = max(nums) if nums else None
        elif kind == "count_true":
            out[name] = sum(1 for v in vals if v is True)
        elif kind == "count_by":
            counts = {}
            for v in vals:
                keys = {_rollup_key(e) for e in v} if isinstance(v, list) else (
                    set() if v is None else {_rollup_key(v)})
                for k in keys:
                    counts[k] = counts.get(k, 0) + 1
            out[name] = dict(sorted(counts.items(), key=lambda kv: kv[0].encode()))
        elif kind == "count":
            elements = [e for v in vals if isinstance(v, list) for e in v]
            sub = {"count": len(elements)}
            sub.update(_aggregate(schema, _resolve(schema, prop["items"]), elements))
            out[name] = sub
        else:
            raise AssertionError(f"x-rollup {kind!r} of {name} not known to the test")
    return out


def independent_rollup(form, datas):
    """The roll-up of docs/FORMS-FORMAT.md over the data of datas, computed here from the
    form's schema, independently of common/rollup (x-rollup-derived is not supported)."""
    schema = json.loads((SCHEMAS / "forms" / f"{form}.schema.json").read_text())
    assert "x-rollup-derived" not in schema, "derived counts are not implemented in the test"
    result = {}
    if schema.get("x-rollup") == "count":
        result["returns"] = len(datas)
    result.update(_aggregate(schema, schema, list(datas)))
    return result


def display_width(text):
    """Terminal columns of text (East Asian Wide and Fullwidth take two), by Python's
    unicodedata: an independent check of the hub's table alignment."""
    import unicodedata
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def county_jws_payload(hub, text):
    """The payload (parsed) of a county-signed JWS after checking it with jwcrypto."""
    token = jws.JWS()
    token.deserialize(text)
    token.verify(hub.county_public_key())
    assert token.jose_header == {"alg": "EdDSA", "kid": hub.county_id}
    return json.loads(token.payload)

"""A school-agent folder for integration tests: `school-agent init` in a temporary folder
against a county key made by python3-jwcrypto, and helpers to run its commands.

    from agentfixture import Agent, county_key  # noqa: F401
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from jwcrypto import jwk

ROOT = Path(__file__).resolve().parent.parent.parent
BINARY = Path(os.environ.get("SCHOOL_AGENT", ROOT / "school-agent" / "school-agent"))
SCHEMAS = ROOT / "schemas"
DATA = ROOT / "tests" / "data"
RETURNS = DATA / "returns"
SCHOOL_ID = "2165000123"
COUNTY_ID = "654201"
CLOCK = "2024-05-03T09:12:00+08:00"

EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CANTCREAT = 0, 64, 65, 66, 73
EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 75, 77, 78


def good(form):
    return RETURNS / form / "good-forms-md-example.json"


def load_return(form):
    return json.loads(good(form).read_text(encoding="utf-8"))


class Agent:
    def __init__(self, folder, hub_url, county_public_path, clock=CLOCK):
        assert BINARY.exists(), f"{BINARY} is missing: run make first"
        self.dir = Path(folder)
        self.clock = clock
        self.init_result = self.run("init", "--dir", self.dir, "--school-id", SCHOOL_ID,
                                    "--county-id", COUNTY_ID, "--hub", hub_url,
                                    "--county-key", county_public_path,
                                    "--schemas-dir", SCHEMAS, "--name", "乌鲁木齐市第一中学",
                                    dir_flag=False)
        assert self.init_result.returncode == 0, self.init_result.stderr

    def env(self, clock=None):
        return dict(os.environ, RETURNS_CLOCK=clock or self.clock)

    def run(self, command, *args, dir_flag=True, clock=None, timeout=120, input=None):
        argv = [str(BINARY), command]
        if dir_flag:
            argv += ["--dir", str(self.dir)]
        argv += [str(a) for a in args]
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(clock),
                              timeout=timeout, input=input)

    def popen(self, command, *args, clock=None, **kw):
        argv = [str(BINARY), command, "--dir", str(self.dir), *map(str, args)]
        return subprocess.Popen(argv, env=self.env(clock), **kw)

    def submit(self, form, path=None, *args, data=None, tmp=None):
        if data is not None:
            path = Path(tmp or self.dir.parent) / f"{form}-{len(self.ids())}.json"
            path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        r = self.run("submit", "--form", form, path or good(form), *args)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout.strip()

    def folder(self, name):
        return sorted(p.name[:-4] for p in (self.dir / name).glob("*.jws"))

    def outbox(self):
        return self.folder("outbox")

    def sent(self):
        return self.folder("sent")

    def rejected(self):
        return self.folder("rejected")

    def ids(self):
        return self.outbox() + self.sent() + self.rejected()

    def status(self):
        r = self.run("status", "--json")
        assert r.returncode == 0, r.stderr
        return {row["submission_id"]: row for row in json.loads(r.stdout)}

    def public_key(self):
        return jwk.JWK.from_json((self.dir / "school.pub.jwk").read_text())

    def private_key(self):
        return jwk.JWK.from_json((self.dir / "school.jwk").read_text())


def county_key(tmp_path, kid=COUNTY_ID):
    """A county key pair (jwcrypto) and the path of its public half."""
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=kid)
    path = tmp_path / "county.pub.jwk"
    path.write_text(key.export_public())
    return key, path


@pytest.fixture
def offline_agent(tmp_path):
    """An agent whose hub is a closed loopback port: it never gets an answer."""
    key, path = county_key(tmp_path)
    a = Agent(tmp_path / "agent", "http://127.0.0.1:9", path)
    a.county_key = key
    return a

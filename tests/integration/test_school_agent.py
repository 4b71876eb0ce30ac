"""school-agent's offline commands (init, validate, submit, status, due) with the real
binary. Signatures are checked with python3-jwcrypto and payloads with python3-jsonschema,
independently of our C code. The agent's clock is fixed at 2024-05-03T09:12:00+08:00
unless a test says otherwise.

The sync tests are in test_school_agent_sync.py, CSV import in test_school_agent_import.py."""

import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import time
import uuid

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jwcrypto import jwk, jws

from agentfixture import (BINARY, CLOCK, COUNTY_ID, EX_CANTCREAT, EX_CONFIG, EX_DATAERR,  # noqa
                          EX_NOPERM, EX_OK, EX_USAGE, RETURNS, SCHEMAS, SCHOOL_ID, Agent,
                          county_key, good, load_return, offline_agent)
from faultproxy import jws_payload

STRACE = shutil.which("strace") or "strace"  # scripts/install-deps installs it
# LeakSanitizer cannot run under ptrace: a sanitizer build is traced with leak checks off.
NO_LEAK_CHECK = {"ASAN_OPTIONS": "detect_leaks=0"}


def verify_jws(text, public_key):
    token = jws.JWS()
    token.deserialize(text)
    token.verify(public_key)
    assert token.jose_header == {"alg": "EdDSA", "kid": SCHOOL_ID}
    return token.payload


# ------------------------------------------------------------------------------- init


def test_init_sets_up_the_folder(tmp_path):
    key, path = county_key(tmp_path)
    a = Agent(tmp_path / "agent", "https://hub.example:8443/", path)
    d = a.dir
    for name in ("outbox", "sent", "rejected"):
        assert (d / name).is_dir()
    assert stat.S_IMODE(os.stat(d / "school.jwk").st_mode) == 0o600
    private = a.private_key()
    public = a.public_key()
    assert private.has_private and not public.has_private
    assert private["kid"] == public["kid"] == SCHOOL_ID
    assert private.thumbprint() == public.thumbprint()
    # stdout: the public JWK and its RFC 7638 thumbprint, as jwcrypto computes it
    lines = a.init_result.stdout.splitlines()
    printed = jwk.JWK.from_json(lines[0])
    assert not printed.has_private and printed.thumbprint() == public.thumbprint()
    assert lines[1] == f"thumbprint: {public.thumbprint()}"
    # the county key is kept under the county's id
    county = jwk.JWK.from_json((d / "county.pub.jwk").read_text())
    assert county.thumbprint() == key.thumbprint() and county["kid"] == COUNTY_ID
    config = json.loads((d / "agent.json").read_text())
    assert config["school_id"] == SCHOOL_ID and config["county_id"] == COUNTY_ID
    assert config["hub"] == "https://hub.example:8443/"
    assert config["name"] == "乌鲁木齐市第一中学"


def test_init_refuses_bad_arguments(tmp_path):
    key, path = county_key(tmp_path)
    private = tmp_path / "county.jwk"
    private.write_text(key.export_private())
    private.chmod(0o600)
    other = tmp_path / "other.pub.jwk"
    other.write_text(jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="654202").export_public())

    def init(folder, *args, school=SCHOOL_ID, county=COUNTY_ID, hub="https://hub.example",
             key_path=path):
        return subprocess.run([str(BINARY), "init", "--dir", str(tmp_path / folder),
                               "--school-id", school, "--county-id", county, "--hub", hub,
                               "--county-key", str(key_path), *args],
                              capture_output=True, text=True, timeout=30)

    assert init("a", school="216500012").returncode == EX_USAGE
    assert init("b", county="65420X").returncode == EX_USAGE
    # plain HTTP only to loopback
    assert init("c", hub="http://hub.example").returncode == EX_USAGE
    assert init("d", hub="ftp://127.0.0.1").returncode == EX_USAGE
    assert init("e", key_path=private).returncode == EX_DATAERR
    assert init("f", key_path=other).returncode == EX_DATAERR
    assert init("g", key_path=tmp_path / "missing.jwk").returncode != 0
    for folder in "abcdefg":
        assert not (tmp_path / folder / "agent.json").exists()
    # once set up, a folder is left alone: the key is not replaced
    assert init("h", hub="http://127.0.0.1:8080").returncode == EX_OK
    before = (tmp_path / "h" / "school.jwk").read_bytes()
    assert init("h").returncode == EX_CANTCREAT
    assert (tmp_path / "h" / "school.jwk").read_bytes() == before


def test_commands_need_an_initialised_folder(tmp_path):
    for cmd in (["status"], ["due"], ["sync"], ["submit", "--form", "incident",
                                                 str(good("incident"))]):
        r = subprocess.run([str(BINARY), cmd[0], "--dir", str(tmp_path), *cmd[1:]],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == EX_CONFIG, (cmd, r.stderr)
        assert "school-agent init" in r.stderr


def test_usage_errors(offline_agent):
    assert offline_agent.run("submit").returncode == EX_USAGE
    assert offline_agent.run("submit", "--form", "incident").returncode == EX_USAGE
    assert offline_agent.run("submit", "--bogus", "x").returncode == EX_USAGE
    assert offline_agent.run("submit", "--form", "nope", good("incident")).returncode == EX_USAGE
    assert offline_agent.run("submit", "--form", "incident", good("incident"),
                             "--supersedes", "not-an-id").returncode == EX_USAGE
    assert offline_agent.run("due", "--as-of", "2024-13-01").returncode == EX_USAGE
    assert offline_agent.run("status", "extra").returncode == EX_USAGE
    r = subprocess.run([str(BINARY), "frobnicate"], capture_output=True, text=True)
    assert r.returncode == EX_USAGE
    r = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("init", "validate", "submit", "import", "sync", "status", "requeue", "due",
                "run"):
        assert re.search(rf"^  {cmd} ", r.stdout, re.M), cmd
        h = subprocess.run([str(BINARY), cmd, "--help"], capture_output=True, text=True)
        assert h.returncode == 0 and h.stdout.startswith("usage: school-agent " + cmd), cmd


# ----------------------------------------------------------------------------- submit

SUBMISSION_VALIDATOR = Draft202012Validator(
    json.loads((SCHEMAS / "submission.schema.json").read_text()), format_checker=FormatChecker())


@pytest.mark.parametrize("form,period", [("incident", None), ("incident", "2024-05"),
                                         ("screening", "2024-P1"), ("summary", "2024-P2"),
                                         ("rectification", "2024-04")])
def test_submit_queues_a_signed_return(offline_agent, form, period):
    a = offline_agent
    data = load_return(form)
    if form == "rectification":
        data["as_of"] = "2024-04-30"
        for item in data["items"]:
            item["found_on"] = "2024-04-10"
    args = ["--period", period] if period else []
    sid = a.submit(form, None, *args, data=data)
    assert a.outbox() == [sid]
    text = (a.dir / "outbox" / f"{sid}.jws").read_text()
    payload = verify_jws(text, a.public_key())
    p = json.loads(payload)
    # DESIGN §4, members in its order, and the bytes are what was signed
    assert list(p) == ["form", "form_version", "submission_id", "school_id", "county_id",
                       "period", "created_at", "supersedes", "data"]
    assert p["form"] == form and p["form_version"] == 1
    assert p["submission_id"] == sid
    assert uuid.UUID(sid).version == 7
    # UUIDv7: the first 48 bits are the clock's milliseconds
    assert int(sid.replace("-", "")[:12], 16) == 1714698720000
    assert p["school_id"] == SCHOOL_ID and p["county_id"] == COUNTY_ID
    assert p["period"] == (period or "2024-05")
    assert p["created_at"] == CLOCK
    assert p["supersedes"] is None
    assert p["data"] == data
    assert not list(SUBMISSION_VALIDATOR.iter_errors(p))
    assert stat.S_IMODE(os.stat(a.dir / "outbox" / f"{sid}.jws").st_mode) == 0o600


def test_submit_supersedes(offline_agent):
    a = offline_agent
    first = a.submit("incident")
    second = a.submit("incident", None, "--supersedes", first)
    p = json.loads(verify_jws((a.dir / "outbox" / f"{second}.jws").read_text(), a.public_key()))
    assert p["supersedes"] == first
    # an id this folder does not know is queued anyway, with a warning
    unknown = str(uuid.uuid4())
    r = a.run("submit", "--form", "incident", good("incident"), "--supersedes", unknown)
    assert r.returncode == 0 and "warning" in r.stderr and unknown in r.stderr


def bad_examples(form, prefix):
    return sorted((RETURNS / form).glob(f"{prefix}-*.json"))


@pytest.mark.parametrize("path", bad_examples("incident", "bad-schema")[:4] +
                         bad_examples("incident", "bad-rules") +
                         bad_examples("incident", "bad-privacy"), ids=lambda p: p.name)
def test_submit_refuses_what_the_hub_would_refuse(offline_agent, path):
    a = offline_agent
    r = a.run("submit", "--form", "incident", "--period", "2024-05", path)
    assert r.returncode == EX_DATAERR, r.stdout + r.stderr
    expected = [line.rsplit(" ", 1) for line in path.with_suffix(".expect").read_text()
                .splitlines() if line.strip() and not line.startswith("#")]
    for ptr, keyword in expected:
        assert f"{path}: " in r.stdout and f"({keyword})" in r.stdout, (ptr, keyword, r.stdout)
    assert a.ids() == []
    assert list((a.dir / "outbox").iterdir()) == []


def test_submit_checks_the_period(offline_agent, tmp_path):
    a = offline_agent
    # the event's month decides an incident's period
    r = a.run("submit", "--form", "incident", "--period", "2024-06", good("incident"))
    assert r.returncode == EX_DATAERR
    assert "/occurred_on: the period of this incident is 2024-05" in r.stdout
    # not a period of the form, or of the campaign
    for form, period in [("screening", "2024-05"), ("screening", "2024-P9"),
                         ("rectification", "2024-P1"), ("rectification", "2024-12"),
                         ("summary", "2023-P1")]:
        r = a.run("submit", "--form", form, "--period", period, good(form))
        assert r.returncode == EX_DATAERR, (form, period, r.stdout)
        assert f"'{period}' is not a period of the form '{form}'" in r.stdout
    # a phase form needs --period
    r = a.run("submit", "--form", "screening", good("screening"))
    assert r.returncode == EX_DATAERR and "--period" in r.stdout
    # an event outside the campaign's months
    data = load_return("incident")
    data.update(occurred_on="2023-05-02", discovered_on="2023-05-02", reported_on="2023-05-03")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert a.run("submit", "--form", "incident", path).returncode == EX_DATAERR
    assert a.ids() == []


def test_submit_warns_about_a_locked_period(offline_agent):
    """screening 2024-P1 is due 2024-04-30 and locks 30 days later: the return is still
    queued (the county may grant an exception) with a warning."""
    a = offline_agent
    r = a.run("submit", "--form", "screening", "--period", "2024-P1", good("screening"),
              clock="2024-06-10T10:00:00+08:00")
    assert r.returncode == 0, r.stdout
    assert "warning: (document): the period 2024-P1 locked after 2024-05-30" in r.stdout
    assert a.outbox() == [r.stdout.strip().splitlines()[-1]]


def test_submit_refuses_a_readable_private_key(offline_agent):
    a = offline_agent
    os.chmod(a.dir / "school.jwk", 0o644)
    r = a.run("submit", "--form", "incident", good("incident"))
    assert r.returncode == EX_NOPERM, r.stderr
    assert a.ids() == []


def test_submit_refuses_malformed_files(offline_agent, tmp_path):
    a = offline_agent
    for i, text in enumerate([b"", b"{", b'{"a": 1, "a": 2}', b"\xff{}", b"[" * 10000]):
        path = tmp_path / f"bad{i}.json"
        path.write_bytes(text)
        r = a.run("submit", "--form", "incident", "--period", "2024-05", path)
        assert r.returncode == EX_DATAERR, (text[:10], r.stdout, r.stderr)
    assert a.run("submit", "--form", "incident", tmp_path / "missing.json").returncode == 66
    assert a.ids() == []


def trace_syscalls(a, tmp_path, *args):
    log = tmp_path / "strace.log"
    argv = ["strace", "-f", "-qq", "-o", str(log), "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close",
            str(BINARY), "submit", "--dir", str(a.dir), *map(str, args)]
    r = subprocess.run(argv, capture_output=True, text=True, env={**a.env(), **NO_LEAK_CHECK},
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), log.read_text().splitlines()


def test_submit_is_durable_before_it_reports(offline_agent, tmp_path):
    """The order of system calls that makes a queued return survive a power cut: the
    file is written under a temporary name and fsynced, renamed to <id>.jws, and the
    outbox folder is fsynced, all before the id is printed."""
    a = offline_agent
    sid, lines = trace_syscalls(a, tmp_path, "--form", "incident", good("incident"))
    final = str(a.dir / "outbox" / f"{sid}.jws")
    outbox = str(a.dir / "outbox")
    events = []
    fds = {}
    for line in lines:
        m = re.search(r'openat\(AT_FDCWD, "([^"]+)", ([^)]*)\) = (\d+)', line)
        if m:
            fds[m.group(3)] = m.group(1)
            events.append(("open", m.group(1)))
        m = re.search(r"\bf(?:data)?sync\((\d+)\)\s*= 0", line)
        if m:
            events.append(("fsync", fds.get(m.group(1))))
        m = re.search(r'rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"',
                      line)
        if m:
            events.append(("rename", m.group(1), m.group(2)))
    renames = [e for e in events if e[0] == "rename" and e[2] == final]
    assert len(renames) == 1, events
    tmp = renames[0][1]
    assert tmp != final and tmp.startswith(outbox + "/")
    i_rename = events.index(renames[0])
    assert ("fsync", tmp) in events[:i_rename], "the file must be fsynced before the rename"
    assert ("fsync", outbox) in events[i_rename:], "the folder must be fsynced after it"
    assert ("open", final) not in events, "the final name is never written in place"


def test_submit_survives_kill_9(offline_agent, tmp_path):
    """kill -9 right after the id is printed: the return is complete and valid; killed at
    random points, the outbox holds only complete returns, and a leftover temporary file
    is never taken for a queued return."""
    a = offline_agent
    p = a.popen("submit", "--form", "incident", good("incident"), stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL)
    sid = p.stdout.readline().decode().strip()
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    text = (a.dir / "outbox" / f"{sid}.jws").read_text()
    assert json.loads(verify_jws(text, a.public_key()))["submission_id"] == sid

    rng = random.Random(7)
    printed = {sid}
    for _ in range(25):
        p = a.popen("submit", "--form", "incident", good("incident"), stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.03))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        printed.update(out.decode().split())
    for path in (a.dir / "outbox").glob("*.jws"):
        verify_jws(path.read_text(), a.public_key())
    assert printed <= set(a.outbox())

    # a torn temporary file, as a crash before the rename leaves it
    torn = a.dir / "outbox" / f"{uuid.uuid4()}.jws.tmp.4242"
    torn.write_text(text[: len(text) // 2])
    ids = set(a.status())
    assert ids == set(a.outbox()) and all(i in ids for i in printed)


def test_submit_works_offline(offline_agent):
    """submit never opens a network socket."""
    a = offline_agent
    log = a.dir.parent / "net.log"
    r = subprocess.run([STRACE, "-f", "-qq", "-e", "trace=socket,connect", "-o", str(log),
                        str(BINARY), "submit", "--dir", str(a.dir), "--form", "incident",
                        str(good("incident"))],
                       capture_output=True, text=True, env={**a.env(), **NO_LEAK_CHECK},
                       timeout=60)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert "AF_INET" not in text and "connect(" not in text, text
    assert a.outbox() == [r.stdout.strip()]


# ----------------------------------------------------------------------------- status


def test_status_lists_queued_returns(offline_agent):
    a = offline_agent
    first = a.submit("incident")
    second = a.submit("screening", None, "--period", "2024-P1")
    rows = a.status()
    assert list(rows) == sorted([first, second])
    assert rows[first]["form"] == "incident" and rows[first]["period"] == "2024-05"
    assert rows[second]["form"] == "screening" and rows[second]["period"] == "2024-P1"
    for row in rows.values():
        assert row["state"] == "queued" and row["received_at"] is None
        assert row["on_time"] is None and row["created_at"] == CLOCK
    text = a.run("status")
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].split()[:4] == ["SUBMISSION", "FORM", "PERIOD", "STATE"]
    assert len(text.stdout.splitlines()) == 3


def test_status_never_shows_sent_without_a_verified_receipt(offline_agent, tmp_path):
    """A return moved to sent/ by hand, with a receipt signed by another key or for other
    bytes, is shown "unverified", not "sent"."""
    from hubfixture import sign

    a = offline_agent
    sid = a.submit("incident")
    jws_text = (a.dir / "outbox" / f"{sid}.jws").read_text()
    payload = jws_payload(jws_text)
    import hashlib
    receipt = {"type": "receipt", "submission_id": sid, "school_id": SCHOOL_ID,
               "county_id": COUNTY_ID, "form": "incident", "period": "2024-05",
               "sha256": hashlib.sha256(payload).hexdigest(),
               "received_at": "2024-05-03T09:12:05+08:00", "on_time": True}
    os.rename(a.dir / "outbox" / f"{sid}.jws", a.dir / "sent" / f"{sid}.jws")
    assert a.status()[sid]["state"] == "unverified"  # no receipt at all
    attacker = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=COUNTY_ID)
    (a.dir / "sent" / f"{sid}.receipt").write_text(
        sign(attacker, json.dumps(receipt).encode(), kid=COUNTY_ID))
    row = a.status()[sid]
    assert row["state"] == "unverified" and "signature" in row["reason"]
    (a.dir / "sent" / f"{sid}.receipt").write_text(
        sign(a.county_key, json.dumps(dict(receipt, sha256="0" * 64)).encode(), kid=COUNTY_ID))
    assert a.status()[sid]["state"] == "unverified"
    (a.dir / "sent" / f"{sid}.receipt").write_text(
        sign(a.county_key, json.dumps(receipt).encode(), kid=COUNTY_ID))
    row = a.status()[sid]
    assert row["state"] == "sent" and row["on_time"] is True
    assert row["received_at"] == "2024-05-03T09:12:05+08:00"


# -------------------------------------------------------------------------------- due


def due(a, *args, clock=None):
    r = a.run("due", "--json", *args, clock=clock)
    assert r.returncode == 0, r.stderr
    return {(row["form"], row["period"]): row for row in json.loads(r.stdout)}


def test_due_lists_the_schools_scheduled_returns(offline_agent):
    a = offline_agent
    rows = due(a)  # 2024-05-03
    assert set(rows) == {("screening", "2024-P1"), ("summary", "2024-P1"),
                         ("summary", "2024-P2"), ("rectification", "2024-03"),
                         ("rectification", "2024-04"), ("rectification", "2024-05")}
    assert rows[("screening", "2024-P1")]["state"] == "late"
    assert rows[("screening", "2024-P1")]["due"] == "2024-04-30"
    assert rows[("screening", "2024-P1")]["days_left"] == -3
    assert rows[("rectification", "2024-04")]["state"] == "due"
    assert rows[("rectification", "2024-04")]["due"] == "2024-05-05"
    assert rows[("rectification", "2024-04")]["days_left"] == 2
    # --as-of moves the day; nothing is expected before the campaign
    assert due(a, "--as-of", "2024-02-20") == {}
    early = due(a, "--as-of", "2024-03-01")
    assert set(early) == {("screening", "2024-P1"), ("summary", "2024-P1"),
                          ("rectification", "2024-03")}
    assert all(r["state"] == "due" for r in early.values())
    # a queued return is shown as such; incidents are never expected
    a.submit("screening", None, "--period", "2024-P1")
    a.submit("incident")
    rows = due(a)
    assert rows[("screening", "2024-P1")]["state"] == "queued"
    assert not any(form == "incident" for form, _ in rows)


def test_due_honours_opening_dates(tmp_path):
    key, path = county_key(tmp_path)
    a = Agent(tmp_path / "agent", "http://127.0.0.1:9", path)
    config = json.loads((a.dir / "agent.json").read_text())
    config["opened_on"] = "2024-05-01"
    (a.dir / "agent.json").write_text(json.dumps(config))
    rows = due(a)
    assert ("screening", "2024-P1") not in rows and ("rectification", "2024-04") not in rows
    assert ("rectification", "2024-05") in rows

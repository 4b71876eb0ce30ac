"""county-hub against the table of docs/PROTOCOL.md, with the real binary and returns
signed by python3-jwcrypto (an independent signer); receipts are verified with jwcrypto
against county.pub.jwk. The store is read with Python's sqlite3 module.

The hub runs with RETURNS_CLOCK fixed at 2024-06-10T10:00:00+08:00 unless a test says
otherwise: rectification 2024-03 and screening 2024-P1 have expired by then (423
expired), incidents of 2024-05 and summaries of 2024-P2 are open."""

import base64
import gzip
import hashlib
import json
import os
import signal
import socket
import sqlite3
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from jwcrypto import jwk

from hubfixture import (COUNTY_ID, DATA, SCHOOL_ID, Hub, hub, payload_bytes,  # noqa: F401
                        school_key, sign, submission, verify_receipt)

OTHER_SCHOOL = "2165000124"


def fresh_incident(**kw):
    """An incident of 2024-06, reported on the hub's day: on time."""
    kw.setdefault("period", "2024-06")
    form = kw.pop("form", "incident")
    p = submission("incident", **kw)
    p["form"] = form
    p["data"].update(occurred_on="2024-06-09", discovered_on="2024-06-09",
                     reported_on="2024-06-10")
    return p


def expect_error(r, status, code):
    assert r.status == status, r
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    return body


# --- init and roster ----------------------------------------------------------------------

def test_init_makes_config_keys_and_store(tmp_path):
    h = Hub(tmp_path / "hub")
    h.init("--region", "http://127.0.0.1:9/")
    assert stat.S_IMODE(os.stat(h.dir / "county.jwk").st_mode) == 0o600
    private = jwk.JWK.from_json((h.dir / "county.jwk").read_text())
    public = h.county_public_key()
    assert private.has_private and not public.has_private
    assert private["kid"] == public["kid"] == COUNTY_ID
    assert private.thumbprint() == public.thumbprint()
    config = json.loads((h.dir / "hub.json").read_text())
    assert config == {"county_id": COUNTY_ID, "listen": "127.0.0.1:8401",
                      "region_url": "http://127.0.0.1:9/"}
    assert h.query("PRAGMA user_version") == [(2,)]
    assert h.query("PRAGMA journal_mode") == [("wal",)]

    # a second init never replaces the key schools trust
    before = (h.dir / "county.jwk").read_bytes()
    proc = h.run("init", "--dir", h.dir, "--county-id", COUNTY_ID, check=False)
    assert proc.returncode != 0 and b"already exists" in proc.stderr
    assert (h.dir / "county.jwk").read_bytes() == before

    proc = h.run("init", "--dir", tmp_path / "x", "--county-id", "65420", check=False)
    assert proc.returncode != 0 and b"6-digit" in proc.stderr


def test_roster_add_list_remove(hub, tmp_path):
    # kid must be the school id or absent (then it is set)
    wrong = school_key("2165000999")
    path = tmp_path / "wrong.pub.jwk"
    path.write_text(wrong.export_public())
    proc = hub.cmd("roster add", "--school-id", OTHER_SCHOOL, "--name", "x", "--key", path,
                   check=False)
    assert proc.returncode != 0 and b"not the school id" in proc.stderr

    nokid = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    path = tmp_path / "nokid.pub.jwk"
    path.write_text(nokid.export_public())
    hub.cmd("roster add", "--school-id", OTHER_SCHOOL, "--name", "第二中学", "--key", path,
            "--type", "senior", "--opened", "2024-03-01")

    # a private key is refused: it must never leave the school
    priv = tmp_path / "priv.jwk"
    priv.write_text(school_key("2165000125").export_private())
    priv.chmod(0o600)
    proc = hub.cmd("roster add", "--school-id", "2165000125", "--name", "x", "--key", priv,
                   check=False)
    assert proc.returncode != 0 and b"private key" in proc.stderr

    proc = hub.cmd("roster add", "--school-id", "216500012", "--name", "x", "--key", path,
                   check=False)
    assert proc.returncode != 0 and b"10-digit" in proc.stderr
    # already there
    proc = hub.cmd("roster add", "--school-id", OTHER_SCHOOL, "--name", "x", "--key", path,
                   check=False)
    assert proc.returncode != 0 and b"already in the roster" in proc.stderr

    listed = json.loads(hub.cmd("roster list", "--json").stdout)
    assert [s["school_id"] for s in listed] == [SCHOOL_ID, OTHER_SCHOOL]
    assert listed[1]["name"] == "第二中学" and listed[1]["type"] == "senior"
    assert listed[1]["opened_on"] == "2024-03-01" and listed[1]["closed_from"] is None
    assert listed[1]["key_thumbprint"] == nokid.thumbprint()
    text = hub.cmd("roster list").stdout.decode()
    assert "第二中学" in text and nokid.thumbprint() in text

    hub.cmd("roster remove", "--school-id", OTHER_SCHOOL, "--on", "2024-06-01")
    listed = json.loads(hub.cmd("roster list", "--json").stdout)
    assert listed[1]["closed_from"] == "2024-06-01"  # stays in the history
    # every roster change queues the whole roster, versioned and signed by the county
    # (docs/PROTOCOL.md): the fixture's add, this add, the removal
    rows = hub.query("SELECT ref, body FROM outbox WHERE kind = 'roster' ORDER BY id")
    assert [r[0] for r in rows] == ["1", "2", "3"]
    from jwcrypto import jws
    token = jws.JWS()
    token.deserialize(rows[-1][1])
    token.verify(hub.county_public_key())
    assert token.jose_header == {"alg": "EdDSA", "kid": COUNTY_ID}
    roster = json.loads(token.payload)
    assert set(roster) == {"type", "county_id", "version", "issued_at", "schools"}
    assert (roster["type"], roster["county_id"], roster["version"]) == ("roster", COUNTY_ID, 3)
    schools = {s["school_id"]: s for s in roster["schools"]}
    assert set(schools) == {SCHOOL_ID, OTHER_SCHOOL}
    other = schools[OTHER_SCHOOL]
    assert set(other) == {"school_id", "name", "type", "opened", "closed", "key"}
    # "closed" is the last open day: the day before the first closed day
    assert (other["name"], other["type"], other["opened"], other["closed"]) == (
        "第二中学", "senior", "2024-03-01", "2024-05-31")
    assert other["key"]["kid"] == OTHER_SCHOOL and "d" not in other["key"]
    assert jwk.JWK(**other["key"]).thumbprint() == nokid.thumbprint()
    first = schools[SCHOOL_ID]
    assert (first["type"], first["opened"], first["closed"]) == (None, None, None)
    assert jwk.JWK(**first["key"]).thumbprint() == hub.keys[SCHOOL_ID].thumbprint()


def test_roster_import(hub, tmp_path):
    k1, k2 = school_key("2165000201"), school_key("2165000202")
    (tmp_path / "k1.pub.jwk").write_text(k1.export_public())
    x2 = json.loads(k2.export_public())["x"]
    good = ("school_id,name,type,opened,closed,key_file,key_x\r\n"
            "2165000201,第一小学,primary,,,k1.pub.jwk,\r\n"
            f"2165000202,\"Second, School\",junior,2024-03-01,2024-09-01,,{x2}\r\n")
    (tmp_path / "good.csv").write_text(good)
    proc = hub.cmd("roster import", tmp_path / "good.csv")
    assert b"2 schools added, 0 updated" in proc.stderr, proc.stderr
    proc = hub.cmd("roster import", tmp_path / "good.csv")  # again: nothing changes
    assert b"0 schools added, 0 updated" in proc.stderr, proc.stderr
    # one whole roster per import that changed something (and one for the fixture's add)
    assert hub.query("SELECT count(*) FROM outbox WHERE kind = 'roster'") == [(2,)]
    listed = {s["school_id"]: s for s in json.loads(hub.cmd("roster list", "--json").stdout)}
    assert listed["2165000201"]["name"] == "第一小学"
    assert listed["2165000202"]["name"] == "Second, School"
    assert listed["2165000202"]["closed_from"] == "2024-09-01"
    assert listed["2165000202"]["key_thumbprint"] == k2.thumbprint()

    # an error names its line, and nothing of the file is imported
    bad = ("school_id,name,key_x\n"
           f"2165000301,Fine,{x2}\n"
           "2165000302,Broken,not-a-key\n")
    (tmp_path / "bad.csv").write_text(bad)
    proc = hub.cmd("roster import", tmp_path / "bad.csv", check=False)
    assert proc.returncode != 0 and b"line 3" in proc.stderr, proc.stderr
    ids = [s["school_id"] for s in json.loads(hub.cmd("roster list", "--json").stdout)]
    assert "2165000301" not in ids

    dup = f"school_id,name,key_x\n2165000401,A,{x2}\n2165000401,B,{x2}\n"
    (tmp_path / "dup.csv").write_text(dup)
    proc = hub.cmd("roster import", tmp_path / "dup.csv", check=False)
    assert proc.returncode != 0 and b"line 3" in proc.stderr and b"line 2" in proc.stderr

    (tmp_path / "unknown.csv").write_text("school_id,name,key,colour\n")
    proc = hub.cmd("roster import", tmp_path / "unknown.csv", check=False)
    assert proc.returncode != 0 and b"unknown column" in proc.stderr


# --- accepting -----------------------------------------------------------------------------

def test_accept_stores_and_answers_signed_receipt(hub):
    hub.start()
    p = fresh_incident()
    data = payload_bytes(p)
    r = hub.post(data)
    assert r.status == 201, r
    assert r.headers["content-type"] == "application/jose+json"
    receipt = verify_receipt(hub, r.body, data)
    assert receipt == {
        "type": "receipt", "submission_id": p["submission_id"], "school_id": SCHOOL_ID,
        "county_id": COUNTY_ID, "form": "incident", "period": "2024-06",
        "sha256": hashlib.sha256(data).hexdigest(),
        "received_at": "2024-06-10T10:00:00+08:00", "on_time": True,
    }
    rows = hub.query("SELECT school_id, form, form_version, period, payload, payload_sha256,"
                     " on_time, receipt, supersedes FROM submissions")
    assert rows == [(SCHOOL_ID, "incident", 1, "2024-06", data.decode(),
                     hashlib.sha256(data).hexdigest(), 1, r.body.decode(), None)]
    assert hub.query("SELECT kind, ref, body, done_ms FROM outbox WHERE kind='submission'") == [
        ("submission", p["submission_id"], None, None)]
    # the stored JWS is the school's, untouched: it still verifies
    stored = hub.query("SELECT jws FROM submissions")[0][0]
    from jwcrypto import jws
    token = jws.JWS()
    token.deserialize(stored)
    token.verify(hub.keys[SCHOOL_ID])
    assert token.payload == data

    again = hub.get(f"/v1/submissions/{p['submission_id']}/receipt")
    assert again.status == 200 and again.body == r.body
    assert hub.get(f"/v1/submissions/{uuid.uuid4()}/receipt").status == 404
    assert hub.metric("county_hub_accepted_total") == 1


def test_on_time_follows_the_calendar(hub):
    hub.start()
    late = submission("incident")  # reported 2024-05-03, received 2024-06-10
    r = hub.post(late)
    assert r.status == 201 and verify_receipt(hub, r.body, payload_bytes(late))["on_time"] is False
    # rectification 2024-05 is due 2024-06-05: late, but not expired
    rect = submission("rectification", period="2024-05",
                      data={"as_of": "2024-05-31", "items": []})
    r = hub.post(rect)
    assert r.status == 201 and verify_receipt(hub, r.body, payload_bytes(rect))["on_time"] is False
    summ = submission("summary", period="2024-P2")
    r = hub.post(summ)
    assert r.status == 201 and verify_receipt(hub, r.body, payload_bytes(summ))["on_time"] is True
    assert hub.query("SELECT on_time FROM submissions ORDER BY received_ms, rowid") == [
        (0,), (0,), (1,)]


def test_duplicate_in_a_row_is_one_row_same_receipt(hub):
    hub.start()
    p = fresh_incident()
    first, second = hub.post(p), hub.post(p)
    assert (first.status, second.status) == (201, 200)
    assert first.body == second.body
    assert hub.counts() == (1, 1)
    assert hub.metric("county_hub_duplicates_total") == 1


def test_duplicate_at_once_is_one_row_same_receipt(hub):
    hub.start()
    p = fresh_incident()
    body = gzip.compress(sign(hub.keys[SCHOOL_ID], payload_bytes(p)).encode())
    barrier = threading.Barrier(8)

    def send(_):
        barrier.wait()
        return hub.post_raw(body)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * 7 + [201], answers
    assert len({a.body for a in answers}) == 1
    assert hub.counts() == (1, 1)


def test_same_id_other_bytes_is_a_conflict(hub):
    hub.start()
    p = fresh_incident()
    assert hub.post(p).status == 201
    other = dict(p, data=dict(p["data"], level=1))
    body = expect_error(hub.post(other), 409, "conflict")
    assert "other bytes" in body["message"]
    assert hub.counts() == (1, 1)

    # at once: one is stored, the other conflicts
    q = fresh_incident()
    variants = [q, dict(q, data=dict(q["data"], level=1))]
    bodies = [gzip.compress(sign(hub.keys[SCHOOL_ID], payload_bytes(v)).encode())
              for v in variants]
    barrier = threading.Barrier(2)

    def send(b):
        barrier.wait()
        return hub.post_raw(b)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(send, bodies))
    assert sorted(a.status for a in answers) == [201, 409], answers
    assert hub.counts() == (2, 2)


def test_correction_supersedes_a_stored_return(hub):
    hub.start()
    original = submission("incident")
    assert hub.post(original).status == 201
    correction = json.loads((DATA / "submissions" / "good-correction.json").read_text())
    correction["supersedes"] = original["submission_id"]
    correction["submission_id"] = str(uuid.uuid4())
    assert hub.post(correction).status == 201
    assert hub.query("SELECT supersedes FROM submissions WHERE submission_id = ?",
                     correction["submission_id"]) == [(original["submission_id"],)]

    for target in (str(uuid.uuid4()),  # unknown
                   hub.query("SELECT submission_id FROM submissions LIMIT 1")[0][0]):
        p = fresh_incident(supersedes=target)  # 2024-06: not the period of the target
        body = expect_error(hub.post(p), 422, "invalid")
        assert [d["pointer"] for d in body["details"]] == ["/supersedes"]
    assert hub.counts() == (2, 2)


# --- every refusal of the table ---------------------------------------------------------------

def raw_exchange(port, request_bytes, timeout=10):
    """Sends bytes as they are and reads one answer (up to its Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request_bytes)
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_too_large_before_reading_the_body(hub):
    hub.start(body_max=4096)
    # only the headers are sent: the answer comes without the body being read
    head = (f"POST /v1/submissions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/jose+json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: 5000\r\n\r\n").encode()
    answer = raw_exchange(hub.port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"error":"too_large"' in answer


def test_too_large_while_reading_a_chunked_body(hub):
    hub.start(body_max=4096)
    chunk = b"x" * 3000
    req = (b"POST /v1/submissions HTTP/1.1\r\nHost: x\r\n"
           b"Content-Type: application/jose+json\r\nContent-Encoding: gzip\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(2):
        req += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    req += b"0\r\n\r\n"
    answer = raw_exchange(hub.port, req)
    assert answer.startswith(b"HTTP/1.1 413"), answer


def test_inflate_caps(hub):
    hub.start(inflate_max=100000, inflate_ratio=20)
    bomb = gzip.compress(b"{" + b" " * 2_000_000)
    expect_error(hub.post_raw(bomb), 413, "too_large")
    # past the ratio cap (above its 64 KiB floor) but under the output cap
    ratio = gzip.compress(b" " * 90000)
    expect_error(hub.post_raw(ratio), 413, "too_large")


def test_refusals_leave_nothing_behind(hub, tmp_path):
    other = school_key(OTHER_SCHOOL)
    hub.add_school(OTHER_SCHOOL, "第二中学", other)
    stranger = school_key("2165000999")
    hub.start()
    key = hub.keys[SCHOOL_ID]
    good = payload_bytes(fresh_incident())

    def signed(p, k=key, kid=None):
        return gzip.compress(sign(k, payload_bytes(p) if isinstance(p, dict) else p, kid).encode())

    cases = []
    # 415
    cases.append((hub.post_raw(signed(fresh_incident()), content_type="application/json"),
                  415, "unsupported_media_type"))
    cases.append((hub.post_raw(signed(fresh_incident()), content_type=None),
                  415, "unsupported_media_type"))
    cases.append((hub.post_raw(signed(fresh_incident()), encoding=None),
                  415, "unsupported_media_type"))
    cases.append((hub.post_raw(signed(fresh_incident()), encoding="deflate"),
                  415, "unsupported_media_type"))
    # 400
    cases.append((hub.post_raw(b"\x1f\x8b\x08\x00garbage"), 400, "malformed"))
    cases.append((hub.post_raw(sign(key, good).encode()), 400, "malformed"))  # not gzipped
    cases.append((hub.post_raw(gzip.compress(b'{"payload":"e30"}')), 400, "malformed"))
    cases.append((hub.post_raw(signed(b"{not json")), 400, "malformed"))
    dup_member = good[:-1] + b',"form":"incident"}'
    cases.append((hub.post_raw(signed(dup_member)), 400, "malformed"))
    # 401
    cases.append((hub.post_raw(signed(fresh_incident(school_id="2165000999"), stranger)),
                  401, "unauthenticated"))
    cases.append((hub.post_raw(signed(fresh_incident(), other, kid=SCHOOL_ID)),
                  401, "unauthenticated"))  # signature by another key
    hs = jwk.JWK.generate(kty="oct", size=256)
    cases.append((hub.post_raw(gzip.compress(sign(hs, good, kid=SCHOOL_ID, alg="HS256").encode())),
                  401, "unauthenticated"))
    text = sign(key, good)
    env = json.loads(text)
    sig = bytearray(base64.urlsafe_b64decode(env["signature"] + "=="))
    sig[0] ^= 1
    env["signature"] = base64.urlsafe_b64encode(bytes(sig)).rstrip(b"=").decode()
    cases.append((hub.post_raw(gzip.compress(json.dumps(env).encode())), 401, "unauthenticated"))
    # 403
    cases.append((hub.post_raw(signed(fresh_incident(school_id=OTHER_SCHOOL), key, SCHOOL_ID)),
                  403, "forbidden"))
    cases.append((hub.post_raw(signed(fresh_incident(county_id="654202"))), 403, "forbidden"))
    # 422: the form's schema and rules, with every problem listed
    bad = fresh_incident()
    bad["data"]["victims"] = {"female": -1, "male": 0}
    bad["data"]["level"] = 7
    r = hub.post(bad)
    body = expect_error(r, 422, "invalid")
    pointers = {d["pointer"] for d in body["details"]}
    assert {"/data/victims/female", "/data/level"} <= pointers, body
    assert all(set(d) == {"pointer", "keyword", "message"} for d in body["details"])
    cases.append((r, 422, "invalid"))
    # 422: the privacy guard
    priv = fresh_incident()
    priv["data"]["summary"] = "家长电话13800138000"
    body = expect_error(hub.post(priv), 422, "invalid")
    assert [d["pointer"] for d in body["details"]] == ["/data/summary"]
    # 422: the envelope schema, an unknown form
    body = expect_error(hub.post(fresh_incident(period="2024-6")), 422, "invalid")
    assert "/period" in {d["pointer"] for d in body["details"]}
    body = expect_error(hub.post(fresh_incident(form="drowning")), 422, "invalid")
    assert "/form" in {d["pointer"] for d in body["details"]}
    # 422: a period the calendar does not have, or not the month of the event
    body = expect_error(hub.post(submission("summary", period="2024-P9")), 422, "invalid")
    assert [d["pointer"] for d in body["details"]] == ["/period"]
    body = expect_error(hub.post(submission("rectification", period="2024-12",
                                            data={"as_of": "2024-12-31", "items": []})),
                        422, "invalid")
    assert [d["pointer"] for d in body["details"]] == ["/period"]
    body = expect_error(hub.post(fresh_incident(period="2024-07")), 422, "invalid")
    assert [d["pointer"] for d in body["details"]] == ["/period"]
    # 423 expired: rectification 2024-03 locked at the end of 2024-05-05
    body = expect_error(hub.post(submission("rectification", period="2024-03")), 423, "locked")
    assert body["reason"] == "expired"
    # 405, 404
    r = hub.request("GET", "/v1/submissions")
    assert r.status == 405 and "POST" in r.headers["allow"]
    assert hub.request("DELETE", "/healthz").status == 405
    assert hub.request("POST", f"/v1/submissions/{uuid.uuid4()}/receipt").status == 405
    assert hub.get("/v2/anything").status == 404
    assert hub.get("/v1/submissions/not-a-uuid/receipt").status == 404

    for r, status, code in cases:
        expect_error(r, status, code)
    assert hub.counts() == (0, 0)
    assert hub.metric('county_hub_rejected_total{reason="malformed"}') == 5
    assert hub.metric('county_hub_rejected_total{reason="unauthenticated"}') == 4
    assert hub.metric('county_hub_rejected_total{reason="unsupported_media_type"}') == 4
    assert hub.metric("county_hub_accepted_total") == 0
    log = hub.log_text()
    assert "rejected upload status=422" in log and "13800138000" not in log
    assert "课间" not in log


def test_school_open_on_the_receive_date(hub):
    k = school_key(OTHER_SCHOOL)
    hub.add_school(OTHER_SCHOOL, "第二中学", k, "--opened", "2024-07-01")
    hub.start()
    body = expect_error(hub.post(fresh_incident(school_id=OTHER_SCHOOL)), 401, "unauthenticated")
    assert "opens on 2024-07-01" in body["message"]
    hub.cmd("roster remove", "--school-id", SCHOOL_ID, "--on", "2024-06-10")
    body = expect_error(hub.post(fresh_incident()), 401, "unauthenticated")
    assert "closed" in body["message"]
    assert hub.counts() == (0, 0)


def test_approve_then_submit_is_locked(hub):
    hub.add_school(OTHER_SCHOOL, "第二中学")
    hub.start()
    assert hub.post(submission("summary", period="2024-P2")).status == 201
    hub.cmd("approve", "--form", "summary", "--period", "2024-P2")
    body = expect_error(hub.post(submission("summary", period="2024-P2")), 423, "locked")
    assert body["reason"] == "approved"
    # other periods and forms are not locked
    assert hub.post(fresh_incident()).status == 201
    # an exception lets one school through, and only that one
    hub.cmd("unlock", "--school", SCHOOL_ID, "--form", "summary", "--period", "2024-P2")
    assert hub.post(submission("summary", period="2024-P2")).status == 201
    body = expect_error(hub.post(submission("summary", period="2024-P2", school_id=OTHER_SCHOOL)),
                        423, "locked")
    assert body["reason"] == "approved"
    hub.cmd("unlock", "--school", SCHOOL_ID, "--form", "summary", "--period", "2024-P2",
            "--revoke")
    expect_error(hub.post(submission("summary", period="2024-P2")), 423, "locked")
    hub.cmd("unapprove", "--form", "summary", "--period", "2024-P2")
    assert hub.post(submission("summary", period="2024-P2", school_id=OTHER_SCHOOL)).status == 201
    assert hub.counts() == (4, 4)

    proc = hub.cmd("approve", "--form", "summary", "--period", "2024-05", check=False)
    assert proc.returncode != 0 and b"not a period" in proc.stderr


def test_expired_period_and_its_exception(hub):
    hub.start()
    p = submission("screening", period="2024-P1")
    body = expect_error(hub.post(p), 423, "locked")
    assert body["reason"] == "expired"
    hub.cmd("unlock", "--school", SCHOOL_ID, "--form", "screening", "--period", "2024-P1")
    r = hub.post(p)
    assert r.status == 201
    assert verify_receipt(hub, r.body, payload_bytes(p))["on_time"] is False
    # an identical resend after the lock still gets its receipt
    hub.cmd("unlock", "--school", SCHOOL_ID, "--form", "screening", "--period", "2024-P1",
            "--revoke")
    again = hub.post(p)
    assert again.status == 200 and again.body == r.body


def test_busy_store_answers_503_with_retry_after(hub):
    hub.start(busy_timeout_ms=300)
    blocker = sqlite3.connect(hub.dir / "hub.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        r = hub.post(fresh_incident())
        expect_error(r, 503, "busy")
        assert int(r.headers["retry-after"]) > 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert hub.counts() == (0, 0)
    assert hub.post(fresh_incident()).status == 201


def test_full_queue_answers_503(hub):
    hub.start(busy_timeout_ms=5000, queue_max=1, group_max=1)
    blocker = sqlite3.connect(hub.dir / "hub.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    answers = {}

    def send(name):
        answers[name] = hub.post(fresh_incident())

    first = threading.Thread(target=send, args=("first",))
    first.start()
    time.sleep(0.5)  # the writer holds the first, blocked on the lock
    second = threading.Thread(target=send, args=("second",))
    second.start()
    time.sleep(0.5)  # the second waits in the queue, which is now full
    third = hub.post(fresh_incident())
    expect_error(third, 503, "busy")
    assert "retry-after" in third.headers
    blocker.execute("ROLLBACK")
    blocker.close()
    first.join()
    second.join()
    assert (answers["first"].status, answers["second"].status) == (201, 201)
    assert hub.counts() == (2, 2)


def test_store_full_answers_507(hub):
    hub.start(min_free_bytes=1 << 52)
    head = (f"POST /v1/submissions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/jose+json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: 1000\r\n\r\n").encode()
    answer = raw_exchange(hub.port, head)  # before the body is read
    assert answer.startswith(b"HTTP/1.1 507"), answer
    assert b'"error":"store_full"' in answer
    hub.stop()

    # the store's own cap: SQLITE_FULL from the writer
    size = os.path.getsize(hub.dir / "hub.sqlite")
    hub.start(store_max_bytes=size + 8192, min_free_bytes=0)
    statuses = [hub.post(fresh_incident()).status for _ in range(40)]
    assert 507 in statuses, statuses
    stored = statuses.count(201)
    assert hub.counts() == (stored, stored)
    assert set(statuses) <= {201, 507}


def test_metrics_and_health(hub):
    hub.start()
    assert hub.get("/healthz").status == 200
    hub.post(fresh_incident())
    text = hub.get("/metrics").body.decode()
    for name in ("county_hub_accepted_total 1", "county_hub_store_commit_seconds_count 1",
                 "county_hub_commit_group_size_sum 1", "county_hub_queue_depth 0",
                 # the roster, the upload, and the roll-up of its (form, period)
                 "county_hub_outbox_depth 3",
                 'county_hub_rejected_total{reason="conflict"} 0'):
        assert name in text, text


# --- limits, crashes, shutdown -----------------------------------------------------------------

def test_slow_client_is_cut_off_while_others_are_served(hub):
    hub.start(request_timeout=2, idle_timeout=30)
    slow = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
    request = (b"POST /v1/submissions HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/jose+json\r\nContent-Encoding: gzip\r\n"
               b"Content-Length: 100000\r\n\r\n" + b"x" * 1000)
    start = time.monotonic()
    cut = None
    served = 0
    for i, byte in enumerate(request):
        try:
            slow.send(bytes([byte]))
        except OSError:
            cut = time.monotonic() - start
            break
        if i % 4 == 0:
            assert hub.post(fresh_incident()).status == 201  # others are served meanwhile
            served += 1
        time.sleep(0.1)
        if time.monotonic() - start > 8:
            break
    if cut is None:
        slow.settimeout(5)
        try:
            cut = time.monotonic() - start if slow.recv(100) == b"" else None
        except OSError:
            cut = time.monotonic() - start
    slow.close()
    assert cut is not None and cut < 6, f"slow client still connected after {cut}"
    assert served >= 3
    assert "cut off a connection" in hub.log_text()


def test_crash_right_after_201_keeps_the_row(hub):
    hub.start()
    p = fresh_incident()
    r = hub.post(p)
    assert r.status == 201
    assert hub.kill9() == -signal.SIGKILL
    hub.start()
    again = hub.get(f"/v1/submissions/{p['submission_id']}/receipt")
    assert again.status == 200 and again.body == r.body
    assert hub.counts() == (1, 1)
    assert hub.post(p).status == 200


def test_sigterm_exits_cleanly(hub):
    hub.start()
    assert hub.post(fresh_incident()).status == 201
    assert hub.stop(signal.SIGTERM) == 0
    assert "stopped" in hub.log_text()
    assert hub.counts() == (1, 1)


def test_connection_memory_and_count_limits(hub):
    hub.start(connection_memory=8192, max_connections=4, idle_timeout=30)
    # headers beyond the per-connection memory are refused, not buffered
    big = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 20000 + b"\r\n\r\n")
    answer = raw_exchange(hub.port, big)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert hub.get("/healthz").status == 200

    # past max_connections a new connection waits unserved (MHD stops accepting, the
    # kernel holds it in the backlog) until a slot frees; the held ones still work
    held = [socket.create_connection(("127.0.0.1", hub.port), timeout=5) for _ in range(4)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", hub.port), timeout=1)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(TimeoutError):
        extra.recv(100)
    held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert held[0].recv(100).startswith(b"HTTP/1.1 200")
    held.pop().close()
    extra.settimeout(5)
    assert extra.recv(100).startswith(b"HTTP/1.1 200")
    extra.close()
    for s in held:
        s.close()

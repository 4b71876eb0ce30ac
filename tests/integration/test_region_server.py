"""region-server serve (issue 5) on a real PostgreSQL (scripts/pg-tmp): POST /v1/ingest fed
with county-signed batches built here with python3-jwcrypto exactly as docs/PROTOCOL.md
fixes them, and by a real county-hub forwarding to it; GET /v1/inspections/<name> checked
against figures computed in this file from the returns it sent (the oracle of
test_region_db.py, written independently of the SQL); access (401, 403, a county viewer
held to its county), the audit log, CSV for Excel, public=1 small-cell suppression,
/metrics, and a clean stop on SIGTERM.

Run from tests/integration by `make integration` (binaries built by `make`)."""

import copy
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import time
import uuid

import psycopg2
import pytest
from jwcrypto import jwk
from jwcrypto.common import base64url_encode

from hubfixture import Hub, independent_rollup, payload_bytes, school_key, submission
from pgfixture import pg_server  # noqa: F401  (a fixture)
from regionfixture import (REGION_QUERY, ROOT, Region, canonical, county_batch, county_sign,
                           inspect_json)
from test_region_db import (A, B, COUNTY_NAMES, DataSet, current, d, deadline,
                            first_received, incident_heads, overdue_oracle, sign, t)

BATCH_SIZE = 9  # items per batch: several batches per county, rosters in the first


# --- the data set, as the counties forward it ----------------------------------------------


class Forwarded:
    """test_region_db's data set, sent through POST /v1/ingest: each county's rosters, then
    its returns in the order its hub received them, then its roll-ups. The returns
    test_region_db stores as unverified are sent with a signature that does not verify;
    B2's summary, whose receipt names another hash, is refused too: neither is held, so
    the oracle treats both as not verified."""

    def __init__(self):
        self.data = DataSet()
        self.items = {A: [], B: []}    # county -> [(item, expected status, Return or None)]
        self.tampered = []             # returns sent with a payload their signature misses
        for county in (A, B):
            self.add_rosters(county)
        for r in sorted(self.data.returns, key=lambda r: (r.hub, r.created)):
            self.add_return(r)
        self.add_rollups()

    def add_rosters(self, county):
        data = self.data
        for version, schools in data.rosters[county].items():
            payload = {
                "type": "roster", "county_id": county, "version": version,
                "issued_at": f"2024-0{version + 1}-20T00:00:00+08:00",
                "schools": [{
                    "school_id": x.id, "name": x.name, "type": "school",
                    "opened": x.opened and x.opened.isoformat(),
                    "closed": x.closed and x.closed.isoformat(),
                    "key": json.loads(x.key.export_public()),
                } for x in schools],
            }
            self.items[county].append(
                ({"kind": "roster", "jws": county_sign(data.hub_keys[county], county, payload)},
                 "stored", None))

    def add_return(self, r):
        key = self.data.hub_keys[r.county]
        text = r.jws
        status = "stored"
        if not r.verified:
            # the school's signature over other bytes: a payload changed on the way
            env = json.loads(text)
            tampered = dict(r.payload, data=dict(r.payload["data"]))
            tampered["data"]["x_tampered"] = 1
            env["payload"] = base64url_encode(canonical(tampered))
            text = json.dumps(env)
            self.tampered.append((r, text))
            status = "rejected"
        elif r.receipt_sha != r.sha256:
            r.verified = False  # refused for its receipt: not held at the region
            status = "rejected"
        self.items[r.county].append(({"kind": "submission", "jws": text,
                                      "receipt": r.receipt(key)}, status, r))

    def listing(self, county, form, period, when):
        known = [r for r in self.data.returns if r.hub <= when and r.verified]
        return [r for r in current(known)
                if r.form == form and r.period == period and r.county == county]

    def rollup_payload(self, county, form, period, when, status, listed, rollup=None):
        datas = [r.data for r in listed]
        expected = [x for x in self.data.expected(form, period, county)]
        got = {r.school.id for r in listed}
        dl = deadline(form, period)
        on_time = [r for r in listed if first_received(self.data.returns, form, period,
                                                       r.school) < dl]
        return {
            "type": "rollup", "county_id": county, "form": form, "period": period,
            "status": status, "computed_at": when.isoformat(), "expected": len(expected),
            "received": len(listed), "on_time": len(on_time),
            "rollup": rollup if rollup is not None else independent_rollup(form, datas),
            "submissions": [{"submission_id": r.id, "sha256": r.sha256} for r in listed],
            "missing": sorted(x.id for x in expected if x.id not in got),
        }

    def add_rollups(self):
        data = self.data
        form, period = "screening", "2024-P1"
        at = t("2024-05-02T00:00")
        # A: honest, computed before A3's correction arrived (stale, not wrong)
        listed = self.listing(A, form, period, at)
        self.rollup_a = self.rollup_payload(A, form, period, at, "final", listed)
        self.items[A].append(({"kind": "rollup", "jws": county_sign(data.hub_keys[A], A,
                                                                     self.rollup_a)},
                              "stored", None))
        # B: its figures changed after they were computed from the returns it lists
        listed = self.listing(B, form, period, at)
        honest = independent_rollup(form, [r.data for r in listed])
        forged = copy.deepcopy(honest)
        forged["students_screened"] += 40
        self.rollup_b = self.rollup_payload(B, form, period, at, "final", listed, forged)
        self.rollup_b_honest = honest
        self.items[B].append(({"kind": "rollup", "jws": county_sign(data.hub_keys[B], B,
                                                                     self.rollup_b)},
                              "rejected", None))

    def batches(self, county):
        items = self.items[county]
        for i in range(0, len(items), BATCH_SIZE):
            yield items[i:i + BATCH_SIZE]


@pytest.fixture(scope="module")
def fwd():
    return Forwarded()


@pytest.fixture(scope="module")
def region(pg_server, tmp_path_factory, fwd):
    r = Region(pg_server, "region_server", tmp_path_factory.mktemp("region"))
    r.migrate()
    for county in (A, B):
        r.add_county(county, COUNTY_NAMES[county], fwd.data.hub_keys[county])
    r.tokens = {
        "inspector": r.token("督导组", "region-inspector"),
        "viewer_a": r.token("viewer-a", "county-viewer", A),
        "viewer_b": r.token("viewer-b", "county-viewer", B),
    }
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def ingested(region, fwd):
    """Every batch sent once; the answers, by county, in order."""
    answers = {A: [], B: []}
    sent = {A: [], B: []}
    for county in (A, B):
        for chunk in fwd.batches(county):
            body, batch_id = county_batch(fwd.data.hub_keys[county], county,
                                          [item for item, _, _ in chunk])
            res = region.ingest(body)
            assert res.status == 200, (res, region.log_text()[-3000:])
            doc = res.json()
            assert doc["batch_id"] == batch_id
            answers[county].append((chunk, doc))
            sent[county].append((body, batch_id, chunk))
    return {"answers": answers, "sent": sent}


def db_query(region, sql, params=None):
    conn = psycopg2.connect(region.dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


# --- ingest ---------------------------------------------------------------------------------


def test_every_item_is_answered_as_expected(ingested):
    for county in (A, B):
        for chunk, doc in ingested["answers"][county]:
            results = doc["results"]
            assert [x["index"] for x in results] == list(range(len(chunk)))
            for (item, want, r), got in zip(chunk, results):
                assert got["status"] == want, (item["kind"], r and r.id, got)
                assert ("reason" in got) == (want == "rejected")


def test_held_returns_are_exactly_the_verified_ones(region, fwd, ingested):
    rows = db_query(region, "SELECT submission_id::text, jws, payload_sha256, receipt_jws, "
                            "signature_verified, receipt_verified, roster_version, "
                            "hub_received_at, created_at, on_time, batch_id::text "
                            "FROM submissions")
    held = {r[0]: r for r in rows}
    want = {r.id: r for r in fwd.data.returns if r.verified}
    assert set(held) == set(want)
    batch_of = {}
    for county in (A, B):
        for body, batch_id, chunk in ingested["sent"][county]:
            for item, _, r in chunk:
                if r is not None:
                    batch_of[r.id] = batch_id
    for sid, r in want.items():
        _, text, sha, receipt, sig_ok, receipt_ok, roster_version, hub_at, created, on_time, \
            batch_id = held[sid]
        assert text == r.jws  # byte for byte as the school signed it
        assert sha == r.sha256 == hashlib.sha256(r.payload_bytes).hexdigest()
        assert json.loads(receipt)["signature"]
        assert sig_ok and receipt_ok
        assert roster_version == fwd.data.roster_versions[r.county]
        assert (hub_at, created, on_time) == (r.hub, r.created, r.on_time)
        assert batch_id == batch_of[sid]
    # the payload as jsonb is the signed payload
    for sid, payload in db_query(region, "SELECT submission_id::text, payload FROM submissions"):
        assert payload == want[sid].payload
    # the returns that count are those of the oracle
    heads = sorted(r[0] for r in db_query(region, "SELECT submission_id::text "
                                                  "FROM submission_current"))
    assert heads == sorted(r.id for r in current(fwd.data.returns))


def test_rosters_are_kept_with_every_version(region, fwd, ingested):
    rows = db_query(region, "SELECT county_id, version, count(*) FROM roster_schools "
                            "GROUP BY 1, 2 ORDER BY 1, 2")
    assert rows == [(A, 1, 4), (A, 2, 5), (B, 1, 3)]
    assert db_query(region, "SELECT county_id, roster_version FROM counties ORDER BY 1") == [
        (A, 2), (B, 1)]
    name = db_query(region, "SELECT name FROM roster_schools WHERE county_id = %s AND "
                            "version = 1 AND school_id = '6542010004'", (A,))
    assert name == [("旧名",)]


def test_rejected_items_are_integrity_findings(region, fwd, ingested):
    rows = db_query(region, "SELECT county_id, kind, detail, evidence FROM integrity_findings")
    bad_signature = [r for r in rows if r[1] == "signature_invalid"]
    assert sorted(r[3] for r in bad_signature) == sorted(text for _, text in fwd.tampered)
    assert all("unauthenticated" in r[2] for r in bad_signature)
    receipts = [r for r in rows if r[1] == "receipt_invalid"]
    assert len(receipts) == 1 and receipts[0][0] == B
    assert "another payload hash" in receipts[0][2]
    mismatch = [r for r in rows if r[1] == "rollup_mismatch"]
    assert len(mismatch) == 1 and mismatch[0][0] == B
    assert "students_screened" in mismatch[0][2]
    assert len(rows) == len(fwd.tampered) + 2


def test_a_tampered_rollup_is_stored_and_flagged(region, fwd, ingested):
    rows = db_query(region, "SELECT county_id, status, expected, received, on_time, rollup, "
                            "signature_verified FROM rollups ORDER BY county_id")
    assert [r[0] for r in rows] == [A, B]
    a, b = rows
    assert a[5] == fwd.rollup_a["rollup"] and b[5] == fwd.rollup_b["rollup"]
    assert a[6] and b[6]
    listed = db_query(region, "SELECT county_id, count(*) FROM rollup_submissions GROUP BY 1 "
                              "ORDER BY 1")
    assert listed == [(A, len(fwd.rollup_a["submissions"])),
                      (B, len(fwd.rollup_b["submissions"]))]
    answer = [doc for chunk, doc in ingested["answers"][B]][-1]["results"][-1]
    assert answer["status"] == "rejected"
    assert "does not match" in answer["reason"]


def test_a_batch_delivered_twice_is_stored_once(region, ingested):
    before = db_query(region, "SELECT (SELECT count(*) FROM submissions), "
                              "(SELECT count(*) FROM rosters), (SELECT count(*) FROM rollups), "
                              "(SELECT count(*) FROM integrity_findings)")
    for county in (A, B):
        for (body, batch_id, chunk), (_, first) in zip(ingested["sent"][county],
                                                       ingested["answers"][county]):
            res = region.ingest(body)
            assert res.status == 200
            doc = res.json()
            assert doc["batch_id"] == batch_id
            for (item, _, _), was, now in zip(chunk, first["results"], doc["results"]):
                # what was stored is a duplicate now, the flagged roll-up too (it is stored);
                # what was refused is refused again
                held = was["status"] in ("stored", "duplicate") or item["kind"] == "rollup"
                assert now["status"] == ("duplicate" if held else "rejected"), (was, now)
    after = db_query(region, "SELECT (SELECT count(*) FROM submissions), "
                             "(SELECT count(*) FROM rosters), (SELECT count(*) FROM rollups), "
                             "(SELECT count(*) FROM integrity_findings)")
    assert after == before


def test_a_return_twice_in_one_batch(region, fwd, ingested):
    r = fwd.data.returns[0]
    key = fwd.data.hub_keys[r.county]
    item = {"kind": "submission", "jws": r.jws, "receipt": r.receipt(key)}
    body, _ = county_batch(key, r.county, [item, item])
    res = region.ingest(body)
    assert res.status == 200
    assert [x["status"] for x in res.json()["results"]] == ["duplicate", "duplicate"]


def test_the_same_new_returns_sent_at_once_are_stored_once(region, fwd, ingested):
    """Several copies of one batch at the same moment (a hub that timed out and sent
    again): every answer is 200, each return is stored by exactly one of them, and the
    others call it a duplicate."""
    import threading
    data = fwd.data
    key = data.hub_keys[A]
    items = []
    # big enough for the copies to overlap: one stores, and the others, having looked
    # before it committed, find out on the unique key and are applied again (ingest.c)
    for i, x in enumerate(data.schools[s] for s in ("A1", "A2", "A3") for _ in range(100)):
        p = {"form": "summary", "form_version": 1, "submission_id": str(uuid.uuid4()),
             "school_id": x.id, "county_id": A, "period": "2024-P3",
             "created_at": f"2024-11-2{i % 9}T09:00:00+08:00", "supersedes": None,
             "data": json.loads((ROOT / "tests/data/returns/summary/good-forms-md-example.json")
                                .read_text())}
        raw = canonical(p)
        receipt = sign(key, A, canonical({
            "type": "receipt", "submission_id": p["submission_id"], "school_id": x.id,
            "county_id": A, "form": "summary", "period": "2024-P3",
            "sha256": hashlib.sha256(raw).hexdigest(),
            "received_at": "2024-11-29T10:00:00+08:00", "on_time": True}))
        items.append({"kind": "submission", "jws": sign(x.key, x.id, raw), "receipt": receipt})
    body, _ = county_batch(key, A, items)
    answers = [None] * 4

    def send(k):
        answers[k] = region.ingest(body)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(a.status == 200 for a in answers), answers
    for i in range(len(items)):
        statuses = sorted(a.json()["results"][i]["status"] for a in answers)
        assert statuses == ["duplicate", "duplicate", "duplicate", "stored"], statuses
    ids = [json.loads(jws_payload(item["jws"]))["submission_id"] for item in items]
    assert db_query(region, "SELECT count(*) FROM submissions WHERE submission_id = "
                            "ANY(%s::uuid[])", (ids,)) == [(len(items),)]


def jws_payload(text):
    from jwcrypto.common import base64url_decode
    return base64url_decode(json.loads(text)["payload"])


def test_another_payload_under_a_held_id_is_refused(region, fwd, ingested):
    """The school signs a second, different return with the id of one the region holds:
    refused and recorded, and the held one stays."""
    data = fwd.data
    r = next(x for x in data.returns if x.verified and x.form == "summary")
    payload = dict(r.payload, data=dict(r.payload["data"], training_sessions=99))
    raw = canonical(payload)
    text = sign(r.school.key, r.school.id, raw)
    sha = hashlib.sha256(raw).hexdigest()
    receipt = sign(data.hub_keys[r.county], r.county, canonical({
        "type": "receipt", "submission_id": r.id, "school_id": r.school.id,
        "county_id": r.county, "form": r.form, "period": r.period, "sha256": sha,
        "received_at": r.hub.isoformat(), "on_time": r.on_time}))
    body, _ = county_batch(data.hub_keys[r.county], r.county,
                           [{"kind": "submission", "jws": text, "receipt": receipt}])
    res = region.ingest(body)
    assert res.status == 200
    result = res.json()["results"][0]
    assert result["status"] == "rejected" and "another payload" in result["reason"]
    assert db_query(region, "SELECT payload_sha256, jws FROM submissions WHERE "
                            "submission_id = %s", (r.id,)) == [(r.sha256, r.jws)]
    rows = db_query(region, "SELECT kind, detail FROM integrity_findings WHERE "
                            "submission_id = %s", (r.id,))
    assert len(rows) == 1 and rows[0][0] == "sha256_conflict"
    assert r.sha256 in rows[0][1]


def test_a_return_from_a_school_not_in_the_roster(region, fwd, ingested):
    data = fwd.data
    stranger = school_key("6542019999")
    p = submission("summary", period="2024-P1", school_id="6542019999", county_id=A)
    raw = payload_bytes(p)
    text = sign(stranger, "6542019999", raw)
    receipt = sign(data.hub_keys[A], A, canonical({
        "type": "receipt", "submission_id": p["submission_id"], "school_id": "6542019999",
        "county_id": A, "form": "summary", "period": "2024-P1",
        "sha256": hashlib.sha256(raw).hexdigest(), "received_at": "2024-04-28T10:00:00+08:00",
        "on_time": True}))
    body, _ = county_batch(data.hub_keys[A], A,
                           [{"kind": "submission", "jws": text, "receipt": receipt}])
    res = region.ingest(body)
    assert res.status == 200
    result = res.json()["results"][0]
    assert result["status"] == "rejected" and "not in the county's roster" in result["reason"]
    assert db_query(region, "SELECT count(*) FROM submissions WHERE submission_id = %s",
                    (p["submission_id"],)) == [(0,)]


# --- refusals of a whole batch --------------------------------------------------------------


def counts(region):
    return db_query(region, "SELECT (SELECT count(*) FROM submissions), "
                            "(SELECT count(*) FROM rosters), (SELECT count(*) FROM rollups)")


def test_refused_batches_leave_nothing(region, fwd, ingested):
    data = fwd.data
    before = counts(region)
    r = next(x for x in data.returns if x.county == A and x.verified)
    fresh = dict(r.payload, submission_id=str(uuid.uuid4()))
    item = {"kind": "submission", "jws": sign(r.school.key, r.school.id, canonical(fresh)),
            "receipt": "x"}
    good, _ = county_batch(data.hub_keys[A], A, [item])
    other_key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    cases = [
        (region.ingest(b"not gzip"), 400),
        (region.ingest(gzip.compress(b"{not a jws")), 400),
        (region.ingest(gzip.compress(good) + b"x"), 400),  # bytes after the gzip member
        (region.ingest(county_batch(other_key, A, [item])[0]), 401),  # another key
        (region.ingest(county_batch(other_key, "659999", [item])[0]), 401),  # unknown county
        # (items that do not compress away: the ratio cap must not be what refuses it)
        (region.ingest(county_batch(data.hub_keys[A], A, [
            {"kind": "submission", "jws": os.urandom(200).hex(), "receipt": "x"}
            for _ in range(1001)])[0]), 413),
        (region.ingest(county_batch(data.hub_keys[A], A, [item], extra={"county_id": B})[0]),
         400),
        (region.ingest(county_batch(data.hub_keys[A], A, [item], batch_id="nope")[0]), 400),
        (region.ingest(good, encoding=None), 415),
        (region.ingest(good, content_type="application/json"), 415),
        (region.ingest(gzip.compress(b"{" + b" " * (17 * 1024 * 1024) + b"}")), 413),
    ]
    for res, want in cases:
        assert res.status == want, res
        assert res.json()["error"]
    assert "at most 1000 items" in cases[5][0].json()["message"]
    assert region.request("GET", "/v1/ingest").status == 405
    assert counts(region) == before


# --- inspections against the oracle ----------------------------------------------------------


def names_of(data):
    return {x.id: x.name for x in data.schools.values()}


def late_oracle(data, form, period, county=None):
    dl = deadline(form, period)
    counties, schools = [], []
    for c in (A, B):
        if county and c != county:
            continue
        exp = data.expected(form, period, c)
        firsts = [(x, first_received(data.returns, form, period, x)) for x in exp]
        received = [f for _, f in firsts if f]
        on_time = [f for f in received if f < dl]
        n = len(exp)
        counties.append({
            "county_id": c, "county_name": COUNTY_NAMES[c], "expected": n,
            "received": len(received), "on_time": len(on_time),
            "late": len(received) - len(on_time), "missing": n - len(received),
            "completeness": round(len(received) / n, 4) if n else None,
            "timeliness": round(len(on_time) / n, 4) if n else None})
        for x, f in firsts:
            if f is None:
                schools.append((c, x.id, x.name, "missing", None))
            elif f >= dl:
                schools.append((c, x.id, x.name, "late", (f - dl) // dt.timedelta(days=1) + 1))
    return counties, sorted(schools)


@pytest.mark.parametrize("form,period", [("summary", "2024-P1"), ("screening", "2024-P1"),
                                         ("rectification", "2024-06")])
@pytest.mark.parametrize("county", [None, A])
def test_late_returns(region, fwd, ingested, form, period, county):
    tables = inspect_json(region, "late-returns", region.tokens["inspector"], form=form,
                          period=period, county=county)
    counties, schools = late_oracle(fwd.data, form, period, county)
    assert tables["counties"] == counties
    got = sorted((s["county_id"], s["school_id"], s["school_name"], s["status"],
                  s["days_late"]) for s in tables["schools"])
    assert got == schools
    dl = deadline(form, period)
    assert all(dt.datetime.fromisoformat(s["deadline"]) == dl for s in tables["schools"])


def test_late_returns_spot_check(region, ingested):
    """Written out by hand: A as in test_region_db; B's late B2 summary is not held here
    (its receipt named another hash), so B2 is missing rather than late."""
    tables = inspect_json(region, "late-returns", region.tokens["inspector"], form="summary",
                          period="2024-P1")
    got = {c["county_id"]: (c["expected"], c["received"], c["on_time"], c["late"], c["missing"])
           for c in tables["counties"]}
    assert got == {A: (4, 3, 2, 1, 1), B: (3, 1, 1, 0, 2)}


@pytest.mark.parametrize("start,end", [("2024-01-01", "2024-12-31"), ("2024-05-01", "2024-05-31"),
                                       ("2023-01-01", "2023-12-31")])
@pytest.mark.parametrize("county", [None, B])
def test_incidents(region, fwd, ingested, start, end, county):
    data = fwd.data
    tables = inspect_json(region, "incidents", region.tokens["inspector"], **{
        "from": start, "to": end, "county": county})
    want = {}
    for r in incident_heads(data, d(start), d(end), county):
        victims, perps = sum(r.data["victims"].values()), sum(r.data["perpetrators"].values())
        for type_ in [None, *r.data["types"]]:
            k = (r.county, COUNTY_NAMES[r.county], r.data["level"], type_)
            n, v, p = want.get(k, (0, 0, 0))
            want[k] = (n + 1, v + victims, p + perps)
    got = {(x["county_id"], x["county_name"], x["level"], x["type"]):
           (x["incidents"], x["victims"], x["perpetrators"]) for x in tables["counts"]}
    assert got == want
    names = names_of(data)
    level3 = [r for r in incident_heads(data, d(start), d(end), county) if r.data["level"] == 3]
    rows = tables["level3"]
    assert sorted(x["submission_id"] for x in rows) == sorted(r.id for r in level3)
    by_id = {r.id: r for r in level3}
    for x in rows:
        r = by_id[x["submission_id"]]
        assert (x["county_id"], x["county_name"], x["school_id"], x["school_name"]) == (
            r.county, COUNTY_NAMES[r.county], r.school.id, names[r.school.id])
        assert (x["incident_ref"], x["occurred_on"], x["types"], x["measures"], x["status"]) == (
            r.data["incident_ref"], r.data["occurred_on"], r.data["types"], r.data["measures"],
            r.data["status"])
    assert [x["occurred_on"] for x in rows] == sorted(x["occurred_on"] for x in rows)
    # the level-3 list alone, for notices
    alone = inspect_json(region, "level3", region.tokens["inspector"], **{
        "from": start, "to": end, "county": county})
    assert alone == {"level3": rows}


@pytest.mark.parametrize("as_of", ["2024-06-15", "2024-06-30", "2024-07-10", "2024-12-31"])
def test_overdue_rectification(region, fwd, ingested, as_of):
    tables = inspect_json(region, "overdue-rectification", region.tokens["inspector"],
                          as_of=as_of)
    cols = ["county_id", "county_name", "school_id", "school_name", "item_id", "category",
            "source", "problem", "measure", "responsible_role", "deadline", "status",
            "days_overdue", "ledger_period", "ledger_as_of", "submission_id"]
    got = sorted(tuple(d(x[c]) if c in ("deadline", "ledger_as_of") else x[c] for c in cols)
                 for x in tables["items"])
    assert got == overdue_oracle(fwd.data, d(as_of))
    assert len(got) > 0 or as_of == "2024-06-15"


@pytest.mark.parametrize("year,min_level", [(2024, 2), (2024, 1), (2024, 3), (2023, 2)])
def test_follow_up(region, fwd, ingested, year, min_level):
    data = fwd.data
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    want = {}
    for r in incident_heads(data, start, end):
        if r.data["level"] < min_level:
            continue
        k = (r.county, r.school.id)
        n, mx, n3, od = want.get(k, (0, None, 0, 0))
        want[k] = (n + 1, max(mx or 0, r.data["level"]), n3 + (r.data["level"] == 3), od)
    for o in overdue_oracle(data, end):
        k = (o[0], o[2])
        n, mx, n3, od = want.get(k, (0, None, 0, 0))
        want[k] = (n, mx, n3, od + 1)
    params = {"year": year}
    if min_level != 2:
        params["min_level"] = min_level
    tables = inspect_json(region, "follow-up", region.tokens["inspector"], **params)
    names = names_of(data)
    got = {(x["county_id"], x["school_id"]): (x["incidents"], x["max_level"], x["level3"],
                                              x["overdue_items"])
           for x in tables["schools"]}
    assert got == want
    assert all(x["school_name"] == names[x["school_id"]] for x in tables["schools"])


@pytest.mark.parametrize("period", ["2024-P1", "2024-P2"])
def test_screening_coverage(region, fwd, ingested, period):
    data = fwd.data
    heads_ = {(r.county, r.school.id): r for r in current(data.returns)
              if r.form == "screening" and r.period == period}
    schools = {(x.county, x.id): x for x in data.expected("screening", period)}
    for (c, s), r in heads_.items():
        schools.setdefault((c, s), r.school)
    tables = inspect_json(region, "screening-coverage", region.tokens["inspector"],
                          period=period)
    want_schools = []
    for (c, s), x in sorted(schools.items()):
        r = heads_.get((c, s))
        row = {"county_id": c, "county_name": COUNTY_NAMES[c], "school_id": s,
               "school_name": x.name, "reported": r is not None}
        if r:
            e, n = r.data["students_enrolled"], r.data["students_screened"]
            row.update(students_enrolled=e, students_screened=n, coverage=round(n / e, 4),
                       committee_established=r.data["committee_established"],
                       reporting_channel_published=r.data["reporting_channel_published"],
                       submission_id=r.id)
        else:
            row.update(students_enrolled=None, students_screened=None, coverage=None,
                       committee_established=None, reporting_channel_published=None,
                       submission_id=None)
        want_schools.append(row)
    assert tables["schools"] == want_schools
    want = []
    for c in (A, B):
        mine = [w for w in want_schools if w["county_id"] == c]
        rep = [w for w in mine if w["reported"]]
        e = sum(w["students_enrolled"] for w in rep)
        n = sum(w["students_screened"] for w in rep)
        want.append({"county_id": c, "county_name": COUNTY_NAMES[c], "schools": len(mine),
                     "reported": len(rep), "students_enrolled": e, "students_screened": n,
                     "coverage": round(n / e, 4) if e else None,
                     "without_committee": sum(1 for w in rep if not w["committee_established"]),
                     "without_reporting_channel": sum(
                         1 for w in rep if not w["reporting_channel_published"])})
    assert tables["counties"] == want


def test_rollup_integrity(region, fwd, ingested):
    tables = inspect_json(region, "rollup-integrity", region.tokens["inspector"],
                          form="screening", period="2024-P1")
    got = {x["county_id"]: x for x in tables["counties"]}
    a, b = got[A], got[B]
    # A: honest and stale (computed before A3's correction): nothing wrong
    assert a["ok"] is True and a["findings"] == 0 and a["listed"] == len(fwd.rollup_a["submissions"])
    assert (a["expected_county"], a["received_county"], a["on_time_county"]) == (
        fwd.rollup_a["expected"], fwd.rollup_a["received"], fwd.rollup_a["on_time"])
    assert (a["expected_region"], a["received_region"], a["on_time_region"]) == (
        a["expected_county"], a["received_county"], a["on_time_county"])
    # B: its returns agree, its roll-up object does not: one finding, not ok
    assert b["ok"] is False and b["findings"] == 1
    assert b["missing_at_region"] == b["sha256_differs"] == b["not_in_rollup"] == 0
    assert tables["mismatches"] == []
    findings = tables["findings"]
    assert [f["kind"] for f in findings] == ["rollup_mismatch"]
    assert findings[0]["county_id"] == B and "students_screened" in findings[0]["detail"]


def test_chain_of_custody(region, fwd, ingested):
    data = fwd.data
    orig, fix = data.a3_screening, data.a3_screening_fix
    tables = inspect_json(region, "chain-of-custody", region.tokens["inspector"],
                          submission_id=orig.id)
    (c,) = tables["chain"]
    assert (c["submission_id"], c["county_id"], c["county_name"], c["school_id"],
            c["school_name"], c["form"], c["period"], c["payload_sha256"]) == (
        orig.id, A, "伊宁市", orig.school.id, orig.school.name, "screening", "2024-P1",
        orig.sha256)
    assert c["signature_verified"] and c["receipt_verified"] and c["receipt_matches"]
    assert c["roster_version"] == 2 and c["on_time"] is True
    assert dt.datetime.fromisoformat(c["hub_received_at"]) == orig.hub
    assert dt.datetime.fromisoformat(c["school_created_at"]) == orig.created
    # the region's clock (RETURNS_CLOCK) stamped its receive time
    assert dt.datetime.fromisoformat(c["region_received_at"]) == t("2024-12-01T10:00")
    assert c["superseded_by"] == fix.id and c["counts"] is False and c["in_rollups"] == 1
    assert tables["findings"] == []
    missing = inspect_json(region, "chain-of-custody", region.tokens["inspector"],
                           submission_id=str(uuid.uuid4()))
    assert missing == {"chain": [], "findings": []}


# --- access, audit ------------------------------------------------------------------------


def test_no_token_or_a_bad_one_is_401(region, ingested):
    for token in (None, "rgn_" + "A" * 43):
        res = region.inspect("late-returns", token, form="summary", period="2024-P1")
        assert res.status == 401 and res.headers["www-authenticate"].startswith("Bearer")
    res = region.inspect("late-returns", headers={"Authorization": "Basic eDp5"},
                         form="summary", period="2024-P1")
    assert res.status == 401


def test_a_county_viewer_sees_its_own_county_only(region, fwd, ingested):
    viewer = region.tokens["viewer_a"]
    res = region.inspect("late-returns", viewer, form="summary", period="2024-P1", county=B)
    assert res.status == 403 and res.json()["error"] == "forbidden"
    for name, params in [("incidents", {"from": "2024-01-01", "to": "2024-12-31"}),
                         ("overdue-rectification", {"as_of": "2024-12-31"}),
                         ("screening-coverage", {"period": "2024-P1"}),
                         ("rollup-integrity", {"form": "screening", "period": "2024-P1"}),
                         ("follow-up", {"year": 2024})]:
        assert region.inspect(name, viewer, county=B, **params).status == 403
        own = inspect_json(region, name, viewer, **params)
        everyone = inspect_json(region, name, region.tokens["inspector"], **params)
        for table, rows in own.items():
            assert all(r.get("county_id") in (A, None) for r in rows), (name, table)
            assert rows == [r for r in everyone[table] if r.get("county_id") in (A, None)]
        assert inspect_json(region, name, viewer, county=A, **params) == own
    # a return of another county is not shown
    b_return = next(r for r in fwd.data.returns if r.county == B and r.verified)
    assert inspect_json(region, "chain-of-custody", viewer, submission_id=b_return.id) == {
        "chain": [], "findings": []}
    mine = inspect_json(region, "chain-of-custody", region.tokens["viewer_b"],
                        submission_id=b_return.id)
    assert len(mine["chain"]) == 1


def test_every_call_is_audited(region, ingested):
    before = db_query(region, "SELECT max(audit_id) FROM audit_log")[0][0] or 0
    inspect_json(region, "incidents", region.tokens["viewer_a"], **{
        "from": "2024-01-01", "to": "2024-12-31"})
    tables = inspect_json(region, "late-returns", region.tokens["inspector"], form="summary",
                          period="2024-P1")
    region.inspect("late-returns", region.tokens["viewer_a"], form="summary",
                   period="2024-P1", format="csv")
    rows = db_query(region, "SELECT who, role, county_id, query, parameters, rows_returned, at "
                            "FROM audit_log WHERE audit_id > %s ORDER BY audit_id", (before,))
    assert [r[:4] for r in rows] == [
        ("viewer-a", "county-viewer", A, "incidents"),
        ("督导组", "region-inspector", None, "late-returns"),
        ("viewer-a", "county-viewer", A, "late-returns")]
    assert rows[0][4] == {"from": "2024-01-01", "to": "2024-12-31", "county": A,
                          "format": "json", "public": False}
    assert rows[1][5] == len(tables["counties"]) + len(tables["schools"])
    assert rows[2][4]["format"] == "csv" and rows[2][5] == 1  # the counties table only
    assert all(r[6] == t("2024-12-01T10:00") for r in rows)  # the region's clock
    # refused calls read nothing and leave no audit row
    region.inspect("late-returns", region.tokens["viewer_a"], form="summary",
                   period="2024-P1", county=B)
    region.inspect("late-returns", None, form="summary", period="2024-P1")
    assert db_query(region, "SELECT count(*) FROM audit_log WHERE audit_id > %s",
                    (before,)) == [(3,)]


def test_bad_parameters_are_400(region, ingested):
    tok = region.tokens["inspector"]
    for name, params in [("late-returns", {"form": "summary"}),
                         ("late-returns", {"form": "summary", "period": "2024-P9"}),
                         ("late-returns", {"form": "summary", "period": "2024-P1",
                                           "contry": A}),
                         ("late-returns", {"form": "Summary; DROP", "period": "2024-P1"}),
                         ("incidents", {"from": "2024-02-30", "to": "2024-12-31"}),
                         ("follow-up", {"year": "20x4"}),
                         ("follow-up", {"year": 2024, "min_level": 4}),
                         ("chain-of-custody", {"submission_id": "not-a-uuid"}),
                         ("late-returns", {"form": "summary", "period": "2024-P1",
                                           "format": "xml"}),
                         ("overdue-rectification", {"as_of": "2024-06-30", "public": 1})]:
        res = region.inspect(name, tok, **params)
        assert res.status == 400, (name, params, res)
        assert res.json()["error"] == "bad_request"
    assert region.inspect("no-such-query", tok).status == 404
    listing = region.request("GET", "/v1/inspections").json()["queries"]
    assert "late-returns" in listing and "chain-of-custody" in listing


# --- CSV -------------------------------------------------------------------------------------


def read_csv(body):
    assert body.startswith(b"\xef\xbb\xbf"), body[:20]
    text = body[3:].decode("utf-8")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_has_the_bom_and_chinese_text(region, fwd, ingested):
    tok = region.tokens["inspector"]
    res = region.inspect("late-returns", tok, form="summary", period="2024-P1", format="csv",
                         table="schools")
    assert res.status == 200 and res.headers["content-type"].startswith("text/csv")
    rows = read_csv(res.body)
    _, schools = late_oracle(fwd.data, "summary", "2024-P1")
    assert sorted((r["county_id"], r["school_id"], r["school_name"], r["status"],
                   int(r["days_late"]) if r["days_late"] else None) for r in rows) == schools
    assert "伊宁市第四小学" in [r["school_name"] for r in rows]
    # Accept: text/csv gives the first table
    res = region.inspect("late-returns", tok, headers={"Accept": "text/csv"}, form="summary",
                         period="2024-P1")
    rows = read_csv(res.body)
    assert [r["county_name"] for r in rows] == ["伊宁市", "奎屯市"]
    assert list(rows[0]) == ["county_id", "county_name", "expected", "received", "on_time",
                             "late", "missing", "completeness", "timeliness"]
    # ?format=json wins over Accept
    res = region.inspect("late-returns", tok, headers={"Accept": "text/csv"}, form="summary",
                         period="2024-P1", format="json")
    assert res.json()["query"] == "late-returns"
    # arrays are joined, fields with commas and quotes quoted (RFC 4180)
    res = region.inspect("incidents", tok, format="csv", table="level3", **{
        "from": "2024-01-01", "to": "2024-12-31"})
    rows = read_csv(res.body)
    level3 = [r for r in incident_heads(fwd.data, d("2024-01-01"), d("2024-12-31"))
              if r.data["level"] == 3]
    assert sorted(r["submission_id"] for r in rows) == sorted(r.id for r in level3)
    for row in rows:
        r = next(x for x in level3 if x.id == row["submission_id"])
        assert row["types"] == "; ".join(r.data["types"])
        assert row["measures"] == "; ".join(r.data["measures"])


# --- public=1 ------------------------------------------------------------------------------


def check_lines(rows, key_of, measures):
    """Every published sum (a margin and the rows it adds up) hides no count alone."""
    hidden = lambda v: v in ("<5", "x")  # noqa: E731
    for line in key_of(rows):
        for m in measures:
            n = sum(1 for r in line if hidden(r[m]))
            assert n != 1, (m, line)


def test_public_incidents_suppress_small_cells(region, fwd, ingested):
    tok = region.tokens["inspector"]
    res = region.inspect("incidents", tok, public=1, **{"from": "2024-01-01",
                                                         "to": "2024-12-31"})
    doc = res.json()
    assert doc["public"] is True and [x["name"] for x in doc["tables"]] == ["counts"]
    rows = doc["tables"][0]["rows"]
    full = inspect_json(region, "incidents", tok, **{"from": "2024-01-01",
                                                    "to": "2024-12-31"})["counts"]
    true = {(x["county_id"], x["level"], x["type"]): x for x in full}
    measures = ("incidents", "victims", "perpetrators")
    # every row of the function is there, a count 1-4 as "<5", others as they are or "x"
    for key, x in true.items():
        (p,) = [r for r in rows if (r["county_id"], r["level"], r["type"]) == key]
        for m in measures:
            if 1 <= x[m] <= 4:
                assert p[m] == "<5"
            else:
                assert p[m] in (x[m], "x")
    # the margins add up the true counts
    for p in rows:
        if p["county_id"] is not None and p["level"] is not None:
            continue
        parts = [x for k, x in true.items() if k[2] == p["type"]
                 and (p["county_id"] is None or k[0] == p["county_id"])
                 and (p["level"] is None or k[1] == p["level"])]
        assert parts
        for m in measures:
            total = sum(x[m] for x in parts)
            if 1 <= total <= 4:
                assert p[m] == "<5"
            else:
                assert p[m] in (total, "x")
        if p["county_id"] is None:
            assert p["county_name"] == "合计"

    def lines(rows_):
        types = {r["type"] for r in rows_}
        for ty in types:
            mine = [r for r in rows_ if r["type"] == ty]
            for m in mine:
                if m["county_id"] is not None and m["level"] is None:
                    yield [m] + [r for r in mine if r["county_id"] == m["county_id"]
                                 and r["level"] is not None]
                if m["county_id"] is None and m["level"] is not None:
                    yield [m] + [r for r in mine if r["level"] == m["level"]
                                 and r["county_id"] is not None]
                if m["county_id"] is None and m["level"] is None:
                    yield [m] + [r for r in mine if r["county_id"] is not None
                                 and r["level"] is None]
                    yield [m] + [r for r in mine if r["county_id"] is None
                                 and r["level"] is not None]

    check_lines(rows, lines, measures)
    assert any(r[m] == "<5" for r in rows for m in measures)  # the data has small cells


def test_public_late_returns(region, fwd, ingested):
    tok = region.tokens["inspector"]
    doc = region.inspect("late-returns", tok, public=1, form="summary", period="2024-P1").json()
    assert [x["name"] for x in doc["tables"]] == ["counties"]
    rows = doc["tables"][0]["rows"]
    counties, _ = late_oracle(fwd.data, "summary", "2024-P1")
    assert [r["county_id"] for r in rows] == [A, B, None]
    assert rows[-1]["county_name"] == "合计"
    measures = ("expected", "received", "on_time", "late", "missing")
    total = {m: sum(c[m] for c in counties) for m in measures}
    for r, c in zip(rows, counties + [total]):
        for m in measures:
            if 1 <= c[m] <= 4:
                assert r[m] == "<5"
            else:
                assert r[m] in (c[m], "x")
        hidden = {m for m in measures if r[m] in ("<5", "x")}
        if hidden & {"received", "expected"}:
            assert r["completeness"] == "x"
        if hidden & {"on_time", "expected"}:
            assert r["timeliness"] == "x"

    def lines(rows_):
        for r in rows_:
            yield [{"v": r["received"]}, {"v": r["on_time"]}, {"v": r["late"]}]
            yield [{"v": r["expected"]}, {"v": r["received"]}, {"v": r["missing"]}]
        for m in measures:
            yield [{"v": r[m]} for r in rows_]

    check_lines(rows, lines, ("v",))
    # every county figure of this small data set is 0-4: the zeros shown, the rest hidden
    assert all(r[m] in ("<5", "x") or c[m] == 0 for r, c in zip(rows, counties)
               for m in measures)
    assert any(r[m] == 0 for r in rows for m in measures)


def test_public_has_no_school_lists(region, ingested):
    tok = region.tokens["inspector"]
    for name, params in [("overdue-rectification", {"as_of": "2024-12-31"}),
                         ("follow-up", {"year": 2024}),
                         ("level3", {"from": "2024-01-01", "to": "2024-12-31"}),
                         ("chain-of-custody", {"submission_id": str(uuid.uuid4())})]:
        res = region.inspect(name, tok, public=1, **params)
        assert res.status == 400 and "no public form" in res.json()["message"]
    res = region.inspect("late-returns", tok, public=1, form="summary", period="2024-P1",
                         table="schools")
    assert res.status == 400


# --- metrics, health, shutdown ---------------------------------------------------------------


def test_metrics(region, fwd, ingested):
    stored = sum(1 for c in (A, B) for _, s, _ in fwd.items[c] if s == "stored")
    assert region.metric('region_ingest_items_total{status="stored"}') >= stored
    assert region.metric('region_ingest_items_total{status="rejected"}') >= 1
    assert region.metric('region_ingest_batches_total{code="200"}') >= 2
    assert region.metric("region_ingest_seconds_count") >= 2
    assert region.metric('region_inspection_calls_total{query="late-returns",outcome="ok"}') >= 1
    assert region.metric('region_inspection_calls_total{query="late-returns",'
                         'outcome="denied"}') >= 1


def test_sigterm_stops_cleanly(pg_server, tmp_path):
    r = Region(pg_server, "region_sigterm", tmp_path)
    r.start()
    assert r.request("GET", "/healthz").body == b"ok\n"
    assert r.stop() == 0
    assert "stopped" in r.log_text()


# --- a real county hub forwarding to the region ------------------------------------------------


def wait_for(predicate, timeout=30, what="condition"):
    deadline_ = time.monotonic() + timeout
    while time.monotonic() < deadline_:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_hub_forwards_to_the_region(pg_server, tmp_path):
    """county-hub serve --region URL, schools uploading to it, and everything it forwards
    verified and stored by the region: the same JWS bytes, the receipts, the roster, the
    roll-ups (recomputed here without a finding), visible to the inspection queries."""
    other = "2165000124"
    hub = Hub(tmp_path / "hub")
    hub.init()
    hub.add_school()
    hub.add_school(other, "第二中学")
    region = Region(pg_server, "region_from_hub", tmp_path / "region")
    region.migrate()
    region.add_county(hub.county_id, "伊宁市", hub.county_public_key())
    token = region.token("督导组", "region-inspector")
    region.start(clock=hub.clock)
    try:
        hub.start(region_url=region.url(), forward_backoff_base_ms=100,
                  forward_backoff_max_ms=400, forward_poll_ms=100, rollup_interval_ms=0,
                  forward_linger_ms=0)
        sent = []
        for i in range(8):
            p = submission("incident", period="2024-06",
                           school_id=other if i % 3 == 0 else "2165000123")
            level = 1 + i % 2
            p["data"].update(occurred_on=f"2024-06-{1 + i:02d}",
                             discovered_on=f"2024-06-{1 + i:02d}", reported_on="2024-06-10",
                             level=level)
            assert hub.post(p).status == 201
            sent.append(p)
        fix = copy.deepcopy(sent[0])
        fix.update(submission_id=str(uuid.uuid4()), supersedes=sent[0]["submission_id"])
        fix["data"]["level"] = 2
        assert hub.post(fix).status == 201
        sent.append(fix)
        summary = submission("summary", period="2024-P2")
        assert hub.post(summary).status == 201
        sent.append(summary)
        wait_for(lambda: hub.query("SELECT count(*) FROM outbox WHERE done_ms IS NULL")[0][0]
                 == 0, what="the hub's outbox to drain")
        assert hub.metric("county_hub_forward_rejected_total") == 0, region.log_text()[-2000:]

        # the same bytes as the hub holds, with their receipts verified
        held = dict(db_query(region, "SELECT submission_id::text, jws FROM submissions "
                                     "WHERE signature_verified AND receipt_verified"))
        at_hub = dict(hub.query("SELECT submission_id, jws FROM submissions"))
        assert held == at_hub and set(held) == {p["submission_id"] for p in sent}
        assert db_query(region, "SELECT count(*) FROM integrity_findings") == [(0,)]
        # a roster for each school added, every version kept
        assert db_query(region, "SELECT version, count(*) FROM roster_schools GROUP BY 1 "
                                "ORDER BY 1") == [(1, 1), (2, 2)]
        assert db_query(region, "SELECT roster_version FROM counties") == [(2,)]

        # each (form, period)'s latest roll-up is the hub's figure, and checks out here
        for form, period in (("incident", "2024-06"), ("summary", "2024-P2")):
            now = hub.get(f"/v1/rollups?form={form}&period={period}").json()
            rows = db_query(region, "SELECT expected, received, on_time, rollup FROM rollups "
                                    "WHERE form = %s AND period = %s ORDER BY computed_at DESC "
                                    "LIMIT 1", (form, period))
            assert rows == [(now["expected"], now["received"], now["on_time"], now["rollup"])]
            tables = inspect_json(region, "rollup-integrity", token, form=form, period=period)
            (row,) = tables["counties"]
            assert row["ok"] is True and row["findings"] == 0, tables
            assert tables["mismatches"] == []

        # the inspections see what the schools sent (the correction in place of the first)
        counting = [p for p in sent if p["form"] == "incident" and p is not sent[0]]
        tables = inspect_json(region, "incidents", token, **{"from": "2024-06-01",
                                                            "to": "2024-06-30"})
        by_level = {x["level"]: x["incidents"] for x in tables["counts"] if x["type"] is None}
        want = {}
        for p in counting:
            want[p["data"]["level"]] = want.get(p["data"]["level"], 0) + 1
        assert by_level == want
        tables = inspect_json(region, "chain-of-custody", token,
                              submission_id=summary["submission_id"])
        (c,) = tables["chain"]
        assert c["signature_verified"] and c["receipt_verified"] and c["receipt_matches"]
        assert c["school_name"] == "乌鲁木齐市第一中学" and c["counts"] is True
        receipt = json.loads(hub.get(f"/v1/submissions/{summary['submission_id']}/receipt")
                             .body)
        assert receipt["signature"]

        # approving sends the final roll-up
        hub.cmd("approve", "--form", "summary", "--period", "2024-P2")
        wait_for(lambda: db_query(region, "SELECT count(*) FROM rollups WHERE form = 'summary' "
                                          "AND status = 'final'")[0][0] == 1,
                 what="the final roll-up")
        (row,) = inspect_json(region, "rollup-integrity", token, form="summary",
                              period="2024-P2")["counties"]
        assert row["status"] == "final" and row["ok"] is True
    finally:
        hub.stop()
        region.stop()


# --- region-query -----------------------------------------------------------------------------


def region_query(region, *args, token=None):
    assert REGION_QUERY.exists(), f"{REGION_QUERY} is missing: run make first"
    cmd = [str(REGION_QUERY), *map(str, args), "--server", region.url()]
    if token:
        cmd += ["--token", token]
    return subprocess.run(cmd, capture_output=True, timeout=60)


def by_display_columns(line):
    """line as a list with one entry per terminal column (a wide character fills two)."""
    from hubfixture import display_width
    cols = []
    for ch in line:
        cols.extend([ch] + [""] * (display_width(ch) - 1))
    return cols


def test_region_query_aligns_chinese_tables(region, fwd, ingested):
    tok = region.tokens["inspector"]
    proc = region_query(region, "screening-coverage", "--param", "period=2024-P1", token=tok)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    want = inspect_json(region, "screening-coverage", tok, period="2024-P1")
    blocks = text.split("\n\n")
    assert len(blocks) == 2
    for block, name in zip(blocks, ("counties", "schools")):
        lines = block.rstrip("\n").split("\n")
        assert lines[0] == f"{name} ({len(want[name])} row{'' if len(want[name]) == 1 else 's'})"
        header, rule, rows = lines[1], lines[2], lines[3:]
        # the column starts, read off the rule of dashes
        starts = [0] + [i + 2 for i in range(len(rule) - 1) if rule[i:i + 2] == "  " and
                        rule[i + 2] == "-"]
        names = [h for h in header.split(" ") if h]
        assert len(starts) == len(names)
        assert len(rows) == len(want[name])
        for line, row in zip(rows, want[name]):
            cols = by_display_columns(line)
            for k, col in enumerate(names):
                end = starts[k + 1] - 2 if k + 1 < len(starts) else len(cols)
                cell = "".join(cols[starts[k]:end]).strip()
                if k + 1 < len(starts):
                    assert "".join(cols[end:end + 2]) in ("  ", ""), (line, col)
                v = row[col]
                expect = ("" if v is None else "true" if v is True else "false" if v is False
                          else f"{v:g}" if isinstance(v, float) else str(v))
                assert cell == expect, (col, cell, expect, line)
    assert "伊宁市第一中学" in text


def test_region_query_csv_json_and_errors(region, ingested):
    tok = region.tokens["inspector"]
    proc = region_query(region, "late-returns", "--param", "form=summary", "--param",
                        "period=2024-P1", "--format", "csv", token=tok)
    assert proc.returncode == 0
    rows = read_csv(proc.stdout)
    assert [r["county_name"] for r in rows] == ["伊宁市", "奎屯市"]
    proc = region_query(region, "late-returns", "--param", "form=summary", "--param",
                        "period=2024-P1", "--format", "json", token=tok)
    assert json.loads(proc.stdout)["query"] == "late-returns"
    # flags before the query's name count too
    proc = region_query(region, "--param", "form=summary", "late-returns", "--param",
                        "period=2024-P1", "--format", "json", token=tok)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["parameters"]["form"] == "summary"
    # the exit codes of sysexits.h
    proc = region_query(region, "late-returns", "--param", "form=summary", token=tok)
    assert proc.returncode == 65 and b"needs period" in proc.stderr
    proc = region_query(region, "late-returns", "--param", "form=summary", "--param",
                        "period=2024-P1", "--param", f"county={B}",
                        token=region.tokens["viewer_a"])
    assert proc.returncode == 77 and b"403" in proc.stderr
    proc = region_query(region, "late-returns", "--param", "form=summary", "--param",
                        "period=2024-P1", token="rgn_wrong")
    assert proc.returncode == 77
    proc = region_query(region, "late-returns", token=None)
    assert proc.returncode == 64 and b"token" in proc.stderr
    proc = subprocess.run([str(REGION_QUERY), "late-returns", "--token", tok, "--server",
                           "http://127.0.0.1:1"], capture_output=True, timeout=60)
    assert proc.returncode == 69

"""region-server's POST /v1/ingest (issue 5) beyond the data set of test_region_server.py: the
limits of a batch (JSON values, nesting, the size of one item or receipt), batches large
enough to be checked on several threads answered item by item in order, a roster within
such a batch, and a roster version that another transaction commits between the check and
the store (the returns after it are then checked again). Batches are built here with
python3-jwcrypto, independent of the server's C JOSE code.

Run from tests/integration by `make integration` (binaries built by `make`)."""

import hashlib
import json
import os
import re
import threading
import time

import psycopg2
import pytest
from jwcrypto import jwk
from jwcrypto.common import base64url_encode

from hubfixture import payload_bytes, school_key, submission
from pgfixture import pg_server  # noqa: F401  (a fixture)
from regionfixture import Region, county_batch, county_sign

C = "654301"  # the county of this module
SCHOOLS = [f"65430100{i:02d}" for i in range(1, 7)]


class County:
    """A county's key, its schools' keys, and the items its hub would forward."""

    def __init__(self, county_id):
        self.id = county_id
        self.key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=county_id)
        self.schools = {s: school_key(s) for s in SCHOOLS}

    def roster(self, version, schools):
        payload = {
            "type": "roster", "county_id": self.id, "version": version,
            "issued_at": f"2024-0{version}-20T00:00:00+08:00",
            "schools": [{"school_id": s, "name": f"学校{s[-2:]}", "type": "primary",
                         "opened": None, "closed": None,
                         "key": json.loads(self.schools[s].export_public())}
                        for s in schools],
        }
        return {"kind": "roster", "jws": county_sign(self.key, self.id, payload)}

    def receipt(self, p, raw, **change):
        r = {"type": "receipt", "submission_id": p["submission_id"],
             "school_id": p["school_id"], "county_id": self.id, "form": p["form"],
             "period": p["period"], "sha256": hashlib.sha256(raw).hexdigest(),
             "received_at": "2024-11-29T10:00:00+08:00", "on_time": True}
        r.update(change)
        return county_sign(self.key, self.id, r)

    def submission(self, school, tamper=False, receipt=None):
        """A summary return of school, its payload changed after signing when tamper."""
        p = submission("summary", school_id=school, county_id=self.id)
        raw = payload_bytes(p)
        text = county_sign(self.schools[school], school, raw)
        if tamper:
            env = json.loads(text)
            changed = dict(p, data=dict(p["data"], training_sessions=77))
            env["payload"] = base64url_encode(payload_bytes(changed))
            text = json.dumps(env)
        item = {"kind": "submission", "jws": text,
                "receipt": receipt if receipt is not None else self.receipt(p, raw)}
        return item, p

    def batch(self, items, **extra):
        return county_batch(self.key, self.id, items, extra=extra or None)[0]


@pytest.fixture(scope="module")
def county():
    return County(C)


@pytest.fixture(scope="module")
def region(pg_server, tmp_path_factory, county):
    r = Region(pg_server, "region_ingest", tmp_path_factory.mktemp("region_ingest"))
    r.migrate()
    r.add_county(C, "测试县", county.key)
    r.start()
    # the roster every test starts from: version 1, the first four schools
    res = r.ingest(county.batch([county.roster(1, SCHOOLS[:4])]))
    assert res.status == 200 and res.json()["results"][0]["status"] == "stored", res
    yield r
    r.stop()


def db_query(region, sql, params=None):
    conn = psycopg2.connect(region.dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def held(region, ids):
    rows = db_query(region, "SELECT submission_id::text FROM submissions "
                            "WHERE submission_id = ANY(%s::uuid[])", (list(ids),))
    return {r[0] for r in rows}


def findings(region, kind):
    return db_query(region, "SELECT submission_id::text, detail, length(evidence) "
                            "FROM integrity_findings WHERE kind = %s", (kind,))


# --- limits of a batch ------------------------------------------------------------------------


def test_a_batch_of_too_many_json_values_is_413(region, county):
    item, _ = county.submission(SCHOOLS[0])
    res = region.ingest(county.batch([item], padding=[0] * 20001))
    assert res.status == 413, res
    assert res.json()["error"] == "too_large"
    assert "more than 20000 JSON arrays, objects and commas" in res.json()["message"]
    # one value short of the limit is a batch like any other
    res = region.ingest(county.batch([item], padding=[0] * 19000))
    assert res.status == 200, res
    assert res.json()["results"][0]["status"] == "stored"


def test_a_batch_nested_deeper_than_8_is_400(region, county):
    deep = 1
    for _ in range(8):
        deep = [deep]
    res = region.ingest(county.batch([], padding=deep))  # 9 levels with the batch
    assert res.status == 400, res
    assert res.json()["error"] == "malformed"
    assert "deep" in res.json()["message"]
    res = region.ingest(county.batch([], padding=deep[0]))
    assert res.status == 200, res


def test_an_item_over_8_mib_is_rejected_and_the_others_stored(region, county):
    good, p = county.submission(SCHOOLS[1])
    # random hex: it does not compress away, so the ratio cap is not what refuses it
    big = {"kind": "submission", "jws": os.urandom(4 * 1024 * 1024 + 1).hex(),
           "receipt": good["receipt"]}
    res = region.ingest(county.batch([big, good]))
    assert res.status == 200, res
    first, second = res.json()["results"]
    assert first["status"] == "rejected"
    assert "a JWS of 8388610 bytes is larger than the limit of 8388608" in first["reason"]
    assert second["status"] == "stored"
    assert held(region, [p["submission_id"]]) == {p["submission_id"]}
    rows = [r for r in findings(region, "malformed_item") if "8388610" in r[1]]
    assert len(rows) == 1 and rows[0][2] == 1024 * 1024  # the evidence, cut at 1 MiB


def test_a_receipt_over_64_kib_is_rejected(region, county):
    item, p = county.submission(SCHOOLS[2])
    env = json.loads(item["receipt"])
    env["header"] = {"x": "y" * (64 * 1024)}
    item["receipt"] = json.dumps(env)
    res = region.ingest(county.batch([item]))
    assert res.status == 200, res
    result = res.json()["results"][0]
    assert result["status"] == "rejected"
    assert "receipt is larger than the limit of 65536 bytes" in result["reason"]
    assert held(region, [p["submission_id"]]) == set()


# --- batches checked on several threads ---------------------------------------------------


def test_a_large_batch_is_answered_item_by_item(region, county):
    """Returns good and bad in a known pattern, more than enough for several threads:
    each answer is the one of its own item, in order."""
    items, want, ids = [], [], {}
    for i in range(240):
        school = SCHOOLS[i % 4]
        kind = i % 5
        if kind == 1:
            item, p = county.submission(school, tamper=True)
            want.append(("rejected", "unauthenticated"))
        elif kind == 3:
            item, p = county.submission(school, receipt=county.receipt(
                submission("summary", school_id=school, county_id=C), b"other"))
            want.append(("rejected", "receipt"))
        elif i % 7 == 6:
            item, p = county.submission(SCHOOLS[5])  # not in the roster
            want.append(("rejected", "not in the county's roster"))
        else:
            item, p = county.submission(school)
            want.append(("stored", None))
        items.append(item)
        ids[i] = p["submission_id"]
    res = region.ingest(county.batch(items))
    assert res.status == 200, res
    results = res.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    for i, (r, (status, why)) in enumerate(zip(results, want)):
        assert r["status"] == status, (i, r)
        if why:
            assert why in r["reason"], (i, r)
    stored = {ids[i] for i, (status, _) in enumerate(want) if status == "stored"}
    assert held(region, ids.values()) == stored


def test_a_roster_within_a_large_batch_keys_the_returns_after_it(region, county):
    """The fifth school is in roster version 2 only: its returns before that roster are
    refused, those after it stored, wherever the threads take them."""
    before = [county.submission(SCHOOLS[4]) for _ in range(40)]
    others = [county.submission(SCHOOLS[i % 4]) for i in range(40)]
    after = [county.submission(SCHOOLS[4]) for _ in range(40)]
    items = ([x for x, _ in before] + [x for x, _ in others] +
             [county.roster(2, SCHOOLS[:5])] + [x for x, _ in after])
    res = region.ingest(county.batch(items))
    assert res.status == 200, res
    statuses = [r["status"] for r in res.json()["results"]]
    assert statuses == ["rejected"] * 40 + ["stored"] * 81  # the roster among them
    assert all("(version 1)" in r["reason"] for r in res.json()["results"][:40])
    got = held(region, [p["submission_id"] for _, p in before + others + after])
    assert got == {p["submission_id"] for _, p in others + after}
    rows = db_query(region, "SELECT roster_version, count(*) FROM submissions "
                            "WHERE school_id = %s GROUP BY 1", (SCHOOLS[4],))
    assert rows == [(2, 40)]


# --- a roster held meanwhile ---------------------------------------------------------------


def test_a_roster_version_committed_meanwhile_rechecks_the_returns_after_it(region, county):
    """Another transaction holds version 3 of the roster, not yet committed, when the batch
    arrives: the check verifies the sixth school's return with the batch's version 3 (the
    committed roster is version 2). The store then finds version 3 held with another text:
    the roster is rejected, and the return, checked again with the roster it really
    follows (version 2 after the tests before, without that school), is rejected too."""
    item, p = county.submission(SCHOOLS[5])
    body = county.batch([county.roster(3, SCHOOLS), item])
    conn = psycopg2.connect(region.dsn)
    answers = []
    try:
        cur = conn.cursor()
        cur.execute("INSERT INTO rosters (county_id, version, issued_at, jws, "
                    "region_received_at) VALUES (%s, 3, now(), 'another text', now())", (C,))
        sender = threading.Thread(target=lambda: answers.append(region.ingest(body)))
        sender.start()
        # the store waits on the uncommitted version 3: commit it then
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cur2 = psycopg2.connect(region.dsn)
            try:
                with cur2.cursor() as c2:
                    c2.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                               "current_database() AND wait_event_type = 'Lock' AND "
                               "query LIKE 'INSERT INTO rosters%%'")
                    waiting = c2.fetchone()[0]
            finally:
                cur2.close()
            if waiting:
                break
            assert sender.is_alive(), answers
            time.sleep(0.05)
        else:
            raise AssertionError("the ingest never waited on the roster")
        conn.commit()
        sender.join(60)
    finally:
        conn.close()
    assert answers and answers[0].status == 200, answers
    roster, ret = answers[0].json()["results"]
    assert roster["status"] == "rejected" and "held already with another text" in \
        roster["reason"]
    assert ret["status"] == "rejected", ret
    assert re.search(f'school "{SCHOOLS[5]}" is not in the county\'s roster \\(version [12]\\)',
                     ret["reason"]), ret
    assert held(region, [p["submission_id"]]) == set()

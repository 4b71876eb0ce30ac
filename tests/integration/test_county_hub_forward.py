"""county-hub's forwarder against a small region written here (the real region-server's
ingest is built elsewhere): a Python HTTP receiver that implements POST /v1/ingest as
docs/PROTOCOL.md fixes it and checks everything with python3-jwcrypto, an independent
JOSE implementation: the county's batch signature, each county-signed roster and roll-up,
each school's JWS against the key the county's roster gave for that school, and each
receipt. It answers per item "stored", "duplicate" (idempotent on submission_id, roster
version and roll-up computed_at) or "rejected", after which it "commits".

The hub runs with small backoffs (forward_backoff_base_ms/max_ms) so the tests are quick."""

import gzip
import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from jwcrypto import jwk, jws

from hubfixture import (COUNTY_ID, SCHOOL_ID, free_port, hub, independent_rollup,  # noqa: F401
                        payload_bytes, submission)

OTHER = "2165000124"
# every change's roll-up sent at once (rollup_interval_ms=0), no lingering between batches
# (forward_linger_ms=0): each has its own test
FAST = dict(forward_backoff_base_ms=100, forward_backoff_max_ms=400, forward_poll_ms=100,
            rollup_interval_ms=0, forward_linger_ms=0)


class Region:
    """The receiving end of POST /v1/ingest."""

    def __init__(self, county_key, port=None):
        self.county_key = county_key
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.rosters = {}         # version -> {school_id: JWK}
        self.stream = []          # (kind, payload) in the order stored
        self.submissions = {}     # submission_id -> payload
        self.arrived = set()      # submission_ids that came, stored or not
        self.rollups = {}         # (form, period, computed_at) -> payload
        self.rollup_times = []    # monotonic time each new roll-up was stored
        self.requests = []        # (monotonic time, HTTP status answered)
        self.problems = []        # anything that did not verify
        self.duplicates = 0
        self.answered = 0         # items answered in confirmed batches
        self.fail_next = 0        # answer this many requests with 500
        self.bad_answer_next = 0  # answer this many with a 200 that does not match
        self.reject = set()       # submission_ids to answer "rejected"
        self.server = None

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        region = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, answer = region.ingest(self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def verify_county(self, text):
        token = jws.JWS()
        token.deserialize(text)
        token.verify(self.county_key)
        assert token.jose_header == {"alg": "EdDSA", "kid": COUNTY_ID}, token.jose_header
        return json.loads(token.payload)

    def ingest(self, path, headers, body):
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.requests.append((time.monotonic(), 500))
                return 500, {"error": "unavailable"}
            try:
                assert path == "/v1/ingest", path
                assert headers["Content-Type"] == "application/jose+json"
                assert headers["Content-Encoding"] == "gzip"
                batch = self.verify_county(gzip.decompress(body).decode())
                assert batch["type"] == "batch" and batch["county_id"] == COUNTY_ID
                assert uuid.UUID(batch["batch_id"]).version == 7
                assert 1 <= len(batch["items"]) <= 1000
            except Exception as e:  # noqa: BLE001 - the hub must never send this
                self.problems.append(f"batch: {e!r}")
                self.requests.append((time.monotonic(), 400))
                return 400, {"error": "malformed", "message": str(e)}
            results = [self.item(i, item) for i, item in enumerate(batch["items"])]
            self.requests.append((time.monotonic(), 200))
            if self.bad_answer_next > 0:
                self.bad_answer_next -= 1
                return 200, {"batch_id": str(uuid.uuid4()), "results": results}
            self.answered += len(results)
            return 200, {"batch_id": batch["batch_id"], "results": results}

    def item(self, index, item):
        kind = item["kind"]
        try:
            if kind == "roster":
                roster = self.verify_county(item["jws"])
                assert roster["type"] == "roster" and roster["county_id"] == COUNTY_ID
                if roster["version"] in self.rosters:
                    self.duplicates += 1
                    return {"index": index, "status": "duplicate"}
                assert not self.rosters or roster["version"] > max(self.rosters)
                self.rosters[roster["version"]] = {
                    s["school_id"]: jwk.JWK(**s["key"]) for s in roster["schools"]}
                self.stream.append(("roster", roster))
            elif kind == "submission":
                token = jws.JWS()
                token.deserialize(item["jws"])
                kid = token.jose_header["kid"]
                key = self.rosters[max(self.rosters)][kid]  # the latest roster's key
                token.verify(key)
                payload = json.loads(token.payload)
                receipt = self.verify_county(item["receipt"])
                assert receipt["submission_id"] == payload["submission_id"]
                assert receipt["sha256"] == hashlib.sha256(token.payload).hexdigest()
                sid = payload["submission_id"]
                self.arrived.add(sid)
                if sid in self.reject:
                    return {"index": index, "status": "rejected",
                            "reason": "integrity: refused by the test"}
                if sid in self.submissions:
                    self.duplicates += 1
                    return {"index": index, "status": "duplicate"}
                self.submissions[sid] = payload
                self.stream.append(("submission", payload))
            elif kind == "rollup":
                rollup = self.verify_county(item["jws"])
                assert rollup["type"] == "rollup" and rollup["county_id"] == COUNTY_ID
                for s in rollup["submissions"]:  # its returns came first
                    assert s["submission_id"] in self.arrived, s
                key = (rollup["form"], rollup["period"], rollup["computed_at"])
                if key in self.rollups:
                    self.duplicates += 1
                    return {"index": index, "status": "duplicate"}
                self.rollups[key] = rollup
                self.rollup_times.append(time.monotonic())
                self.stream.append(("rollup", rollup))
            else:
                raise AssertionError(f"unknown kind {kind}")
        except Exception as e:  # noqa: BLE001
            self.problems.append(f"item {index} ({kind}): {e!r}")
            return {"index": index, "status": "rejected", "reason": repr(e)}
        return {"index": index, "status": "stored"}

    def submission_ids(self):
        with self.lock:
            return [p["submission_id"] for kind, p in self.stream if kind == "submission"]

    def latest_rollup(self, form, period):
        with self.lock:
            mine = [r for (f, p, _), r in self.rollups.items() if (f, p) == (form, period)]
        return max(mine, key=lambda r: r["computed_at"]) if mine else None


@pytest.fixture
def region(hub):
    r = Region(hub.county_public_key())
    yield r
    r.stop()


def incident_of(day, school=SCHOOL_ID):
    """An incident of 2024-06 reported on day (the hub's clock is 2024-06-10)."""
    p = submission("incident", period="2024-06", school_id=school)
    p["data"].update(occurred_on=f"2024-06-{day:02d}", discovered_on=f"2024-06-{day:02d}",
                     reported_on="2024-06-10")
    return p


def wait_for(predicate, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def outbox_empty(hub):
    return hub.query("SELECT count(*) FROM outbox WHERE done_ms IS NULL")[0][0] == 0


def hub_order(hub):
    return [r[0] for r in hub.query("SELECT ref FROM outbox WHERE kind = 'submission'"
                                    " ORDER BY id")]


def test_after_a_batch_not_full_the_next_one_gathers(hub, region):
    """forward_linger_ms: returns uploaded while the forwarder lingers after a small batch
    leave together, in one batch, rather than one batch each."""
    region.start()
    hub.start(region_url=region.url(), **dict(FAST, forward_linger_ms=3000))
    assert hub.post(incident_of(1)).status == 201
    wait_for(lambda: outbox_empty(hub), what="the first return")
    before = len(region.requests)
    later = [incident_of(2 + i) for i in range(5)]
    for p in later:
        assert hub.post(p).status == 201
    wait_for(lambda: outbox_empty(hub), what="the five returns")
    assert len(region.requests) == before + 1
    assert set(region.submission_ids()[-5:]) == {p["submission_id"] for p in later}
    assert region.problems == [] and region.duplicates == 0


def test_rollups_are_paced_returns_are_not(hub, region):
    """A second change within rollup_interval_ms: its return goes at once, the roll-up of
    its form and period waits for the interval and then carries both returns."""
    interval = 8.0
    region.start()
    hub.start(region_url=region.url(), **dict(FAST, rollup_interval_ms=int(interval * 1000)))
    first = incident_of(3)
    assert hub.post(first).status == 201
    wait_for(lambda: region.latest_rollup("incident", "2024-06") is not None,
             what="the first roll-up")
    second = incident_of(4)
    assert hub.post(second).status == 201
    wait_for(lambda: second["submission_id"] in region.submission_ids(),
             what="the second return")
    # the return went ahead of the held roll-up, which still waits in the outbox
    assert len(region.rollups) == 1
    assert hub.query("SELECT count(*) FROM outbox WHERE kind = 'rollup' AND done_ms IS NULL"
                     )[0][0] == 1
    wait_for(lambda: len(region.rollups) == 2, timeout=interval + 20,
             what="the held roll-up")
    latest = region.latest_rollup("incident", "2024-06")
    assert {s["submission_id"] for s in latest["submissions"]} == {
        first["submission_id"], second["submission_id"]}
    # held for the interval, counted from when the first was computed (a little before
    # the region stored it)
    assert region.rollup_times[1] - region.rollup_times[0] >= interval - 1.0
    # approval is not held: the final roll-up goes at once, well within the interval
    hub.cmd("approve", "--form", "incident", "--period", "2024-06")
    wait_for(lambda: region.latest_rollup("incident", "2024-06")["status"] == "final",
             timeout=interval / 2, what="the final roll-up")
    wait_for(lambda: outbox_empty(hub), what="the outbox to drain")
    assert region.problems == [] and region.duplicates == 0


def test_everything_arrives_verified_and_in_order(hub, region):
    hub.add_school(OTHER, "第二中学")
    region.start()
    hub.start(region_url=region.url(), **FAST)
    sent = []
    for i in range(12):
        p = incident_of(1 + i % 9, SCHOOL_ID if i % 2 else OTHER)
        assert hub.post(p).status == 201
        sent.append(p)
    summary = submission("summary", period="2024-P2")
    assert hub.post(summary).status == 201
    sent.append(summary)
    wait_for(lambda: outbox_empty(hub), what="the outbox to drain")
    assert region.problems == []
    # the roster came before every return, and the returns in the hub's order
    kinds = [k for k, _ in region.stream]
    assert kinds.index("roster") < kinds.index("submission")
    assert region.submission_ids() == hub_order(hub)
    assert set(region.submission_ids()) == {p["submission_id"] for p in sent}
    # the latest roll-up of each (form, period) is the hub's current figure
    for form, period in (("incident", "2024-06"), ("summary", "2024-P2")):
        latest = region.latest_rollup(form, period)
        now = hub.get(f"/v1/rollups?form={form}&period={period}").json()
        assert latest is not None and latest["status"] == "provisional"
        for name in ("expected", "received", "on_time", "rollup", "missing"):
            assert latest[name] == now[name], name
        assert {s["submission_id"] for s in latest["submissions"]} == {
            s["submission_id"] for s in now["submissions"]}
    latest = region.latest_rollup("incident", "2024-06")
    assert latest["rollup"] == independent_rollup(
        "incident", [p["data"] for p in sent if p["form"] == "incident"])
    # (roll-ups replaced while their batch was in flight count too: they were sent)
    assert hub.metric("county_hub_forwarded_items_total") == region.answered
    assert hub.metric("county_hub_forward_failures_total") == 0
    assert hub.metric("county_hub_outbox_depth") == 0

    # approving sends the final roll-up; a new school's roster goes too
    hub.cmd("approve", "--form", "summary", "--period", "2024-P2")
    hub.add_school("2165000125", "第三小学")
    wait_for(lambda: (region.latest_rollup("summary", "2024-P2") or {}).get("status") == "final"
             and max(region.rosters) == 3, what="the final roll-up and roster 3")
    assert "2165000125" in region.rosters[3]
    assert region.duplicates == 0 and region.problems == []


def test_region_down_then_up_loses_nothing_and_duplicates_nothing(hub, region):
    hub.start(region_url=region.url(), **FAST)  # nobody listens there yet
    sent = []
    for i in range(30):
        p = incident_of(1 + i % 9)
        r = hub.post(p)
        assert r.status == 201, r  # the region being down never stops the hub accepting
        sent.append(p["submission_id"])
    wait_for(lambda: hub.metric("county_hub_forward_failures_total") >= 2,
             what="failed attempts")
    assert hub.metric("county_hub_outbox_depth") >= 30
    assert "cannot forward to the region" in hub.log_text()
    assert "retrying in" in hub.log_text()
    # failures are noted on the rows
    wait_for(lambda: hub.query("SELECT min(attempts) FROM outbox"
                               " WHERE kind = 'submission'")[0][0] >= 1,
             what="failed attempts noted on every return")
    assert "Couldn't connect" in hub.query("SELECT last_error FROM outbox"
                                           " WHERE kind = 'submission' LIMIT 1")[0][0]

    # a restart while down keeps everything queued
    hub.stop()
    hub.start(region_url=region.url(), **FAST)
    for i in range(5):
        p = incident_of(1 + i)
        assert hub.post(p).status == 201
        sent.append(p["submission_id"])

    region.start()
    wait_for(lambda: outbox_empty(hub), what="the outbox to drain")
    assert region.problems == []
    assert region.submission_ids() == sent == hub_order(hub)  # once each, in order
    assert region.duplicates == 0
    assert hub.metric("county_hub_outbox_depth") == 0


def test_500_is_retried_with_backoff(hub, region):
    region.fail_next = 10 ** 6
    region.start()
    # hub.json may name the region "region" too
    hub.start(region=region.url(), forward_backoff_base_ms=200,
              forward_backoff_max_ms=800, forward_poll_ms=100)
    p = incident_of(3)
    assert hub.post(p).status == 201
    time.sleep(3)
    with region.lock:
        attempts = len(region.requests)
        region.fail_next = 0
    # full jitter draws each wait from [0, min(800, 200 * 2^n)] ms: about 8 attempts in
    # 3 s (a client that does not back off would make thousands)
    assert 3 <= attempts <= 40, attempts
    wait_for(lambda: outbox_empty(hub), what="the outbox to drain")
    assert region.submission_ids() == [p["submission_id"]]
    failures = hub.metric("county_hub_forward_failures_total")
    assert failures >= attempts
    assert "the region answered 500" in hub.log_text()
    # waits never exceed the cap (plus the time to answer)
    times = [t for t, _ in region.requests]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 0.8 + 0.5, gaps


def test_an_answer_for_another_batch_is_not_a_confirmation(hub, region):
    region.bad_answer_next = 2
    region.start()
    hub.start(region_url=region.url(), **FAST)
    p = incident_of(4)
    assert hub.post(p).status == 201
    wait_for(lambda: outbox_empty(hub), what="the outbox to drain")
    # the region stored it on the first attempt; the resends were duplicates, not losses
    assert region.submission_ids() == [p["submission_id"]]
    assert region.duplicates >= 2
    assert hub.metric("county_hub_forward_failures_total") == 2
    assert "not for this batch" in hub.log_text()


def test_a_rejected_item_is_counted_and_does_not_block_the_queue(hub, region):
    region.start()
    hub.start(region_url=region.url(), forward_batch_max=3, **FAST)
    returns = [incident_of(1 + i) for i in range(8)]
    ids = [p["submission_id"] for p in returns]
    region.reject.add(ids[2])
    for p in returns:
        assert hub.post(p).status == 201
    wait_for(lambda: outbox_empty(hub), what="the outbox to drain")
    assert region.submission_ids() == [i for i in ids if i != ids[2]]
    assert hub.metric("county_hub_forward_rejected_total") == 1
    [(note,)] = hub.query("SELECT last_error FROM outbox WHERE ref = ?", ids[2])
    assert "rejected by the region" in note and "refused by the test" in note
    assert f'the region rejected submission "{ids[2]}"' in hub.log_text()
    assert region.problems == []


# The schema of a version-1 store (county-hub before whole rosters), frozen here.
V1_SCHEMA = """
CREATE TABLE schools (school_id TEXT PRIMARY KEY CHECK (length(school_id) = 10),
 name TEXT NOT NULL, type TEXT NOT NULL DEFAULT '', opened_on TEXT, closed_from TEXT,
 public_key BLOB NOT NULL CHECK (length(public_key) = 32), updated_at TEXT NOT NULL) STRICT;
CREATE TABLE submissions (submission_id TEXT PRIMARY KEY,
 school_id TEXT NOT NULL REFERENCES schools (school_id), form TEXT NOT NULL,
 form_version INTEGER NOT NULL, period TEXT NOT NULL, created_at TEXT NOT NULL,
 supersedes TEXT REFERENCES submissions (submission_id), payload_sha256 TEXT NOT NULL,
 payload TEXT NOT NULL, jws TEXT NOT NULL, received_at TEXT NOT NULL,
 received_ms INTEGER NOT NULL, on_time INTEGER CHECK (on_time IN (0, 1)),
 receipt TEXT NOT NULL) STRICT;
CREATE INDEX submissions_by_period ON submissions (form, period, school_id, received_ms);
CREATE INDEX submissions_by_supersedes ON submissions (supersedes) WHERE supersedes IS NOT NULL;
CREATE TABLE outbox (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, body TEXT,
 created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
 next_attempt_ms INTEGER NOT NULL DEFAULT 0, last_error TEXT, done_ms INTEGER) STRICT;
CREATE INDEX outbox_pending ON outbox (next_attempt_ms) WHERE done_ms IS NULL;
CREATE TABLE approvals (form TEXT NOT NULL, period TEXT NOT NULL, approved_at TEXT NOT NULL,
 PRIMARY KEY (form, period)) STRICT;
CREATE TABLE lock_exceptions (school_id TEXT NOT NULL REFERENCES schools (school_id),
 form TEXT NOT NULL, period TEXT NOT NULL, granted_at TEXT NOT NULL,
 PRIMARY KEY (school_id, form, period)) STRICT;
PRAGMA user_version = 1;
"""


def test_a_version_1_store_gets_its_roster_before_its_returns(tmp_path):
    import base64
    import sqlite3
    from hubfixture import Hub, county_jws_payload, school_key
    h = Hub(tmp_path / "old")
    h.init()
    (h.dir / "hub.sqlite").unlink()
    db = sqlite3.connect(h.dir / "hub.sqlite")
    db.executescript(V1_SCHEMA)
    keys = {}
    for school, name in ((SCHOOL_ID, "乌鲁木齐市第一中学"), (OTHER, "第二中学")):
        keys[school] = school_key(school)
        x = json.loads(keys[school].export_public())["x"]
        db.execute("INSERT INTO schools VALUES (?, ?, '', NULL, NULL, ?, '2024-06-01')",
                   (school, name, base64.urlsafe_b64decode(x + "=")))
        db.execute("INSERT INTO outbox (kind, ref, body, created_ms) VALUES"
                   " ('roster', ?, 'a per-school entry', 1)", (school,))
    db.execute("INSERT INTO outbox (kind, ref, body, created_ms) VALUES"
               " ('submission', 'returns-come-after-the-roster', NULL, 2)")
    db.commit()
    db.close()
    try:
        h.start()
        assert h.query("PRAGMA user_version") == [(2,)]
        rows = h.query("SELECT id, kind, ref, done_ms IS NULL, body FROM outbox ORDER BY id")
        assert [r[:4] for r in rows] == [(1, "roster", "1", 1), (2, "roster_entry", OTHER, 0),
                                         (3, "submission", "returns-come-after-the-roster", 1)]
        roster = county_jws_payload(h, rows[0][4])
        assert roster["version"] == 1
        assert {s["school_id"]: jwk.JWK(**s["key"]).thumbprint() for s in roster["schools"]} \
            == {k: v.thumbprint() for k, v in keys.items()}
        # a new roster change gets the next version, at the end
        h.keys.update(keys)
        h.add_school("2165000125", "第三小学")
        assert h.query("SELECT ref FROM outbox WHERE kind = 'roster' ORDER BY id") == [
            ("1",), ("2",)]
        # a restart does not queue it again
        h.stop()
        h.start()
        assert h.query("SELECT count(*) FROM outbox WHERE kind = 'roster'") == [(2,)]
    finally:
        h.stop()


def test_plain_http_only_to_loopback(hub):
    hub.write_config(region_url="http://192.0.2.1:8402")
    proc = hub.cmd("serve", "--listen", f"127.0.0.1:{free_port()}", check=False)
    assert proc.returncode != 0 and b"must be https://" in proc.stderr

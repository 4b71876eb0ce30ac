"""The region's PostgreSQL store (issue 5) on a real PostgreSQL started by scripts/pg-tmp:
`region-server migrate` (idempotent, refuses edited migrations, safe when concurrent),
`county add`, `token add`, the append-only audit log, the heads kept by triggers, and
each inspection function on a small hand-made data set, checked against figures this file
computes on its own in Python from the same returns (and from the campaign file, read here
independently of common/calendar).

The returns are real: payloads built from tests/data/returns/ examples, signed as JWS by
jwcrypto with per-school Ed25519 keys, with receipts signed by the hub's key; they are
inserted with psycopg2 the way the ingest will store them (the ingest itself comes later).

Run from tests/integration by `make integration` (binaries built by `make`)."""

import copy
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from jwcrypto import jwk, jws

from pgfixture import pg_server, pg_tmp, start_server  # noqa: F401  (pg_server: a fixture)

ROOT = Path(__file__).resolve().parent.parent.parent
REGION = Path(os.environ.get("REGION_SERVER", ROOT / "region-server" / "region-server"))
SCHEMAS = ROOT / "schemas"
RETURNS = ROOT / "tests" / "data" / "returns"
TZ = dt.timezone(dt.timedelta(hours=8))

MIGRATIONS = len(list((SCHEMAS / "region").glob("*.sql")))
A, B = "654201", "654202"
COUNTY_NAMES = {A: "伊宁市", B: "奎屯市"}


def region(*args, check=None, env=None):
    assert REGION.exists(), f"{REGION} is missing: run make first"
    proc = subprocess.run(
        [str(REGION), *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def t(s):
    """An instant written as local time in the campaign's offset."""
    return dt.datetime.fromisoformat(s).replace(tzinfo=TZ)


def d(s):
    return dt.date.fromisoformat(s)


def example(form, name="good-forms-md-example"):
    return json.loads((RETURNS / form / f"{name}.json").read_text())


def query(dsn, sql, params=None):
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def execute(dsn, sql, params=None):
    query(dsn, sql, params)


# --- the campaign calendar, read independently of common/calendar -----------------------

CAMPAIGN = json.loads((SCHEMAS / "campaigns" / "2024-anti-bullying.json").read_text())
PHASES = {p["id"]: (d(p["start"]), d(p["end"])) for p in CAMPAIGN["phases"]}


def month_range(period):
    y, m = map(int, period.split("-"))
    start = dt.date(y, m, 1)
    nxt = dt.date(y + m // 12, m % 12 + 1, 1)
    return start, nxt - dt.timedelta(days=1)


def period_dates(form, period):
    if CAMPAIGN["forms"][form]["period_type"] == "phase":
        return PHASES[period]
    return month_range(period)


def due_date(form, period):
    f = CAMPAIGN["forms"][form]
    start, end = period_dates(form, period)
    if f["due"] == "phase_end" or f["due"] == "month_end":
        return end
    if "next_month_day" in f["due"]:
        nxt = end + dt.timedelta(days=1)
        return nxt.replace(day=f["due"]["next_month_day"])
    return end + dt.timedelta(days=f["due"]["days_after_end"])


def deadline(form, period):
    """The first instant after the due day (DESIGN section 6)."""
    due = due_date(form, period)
    return dt.datetime.combine(due + dt.timedelta(days=1), dt.time(0), TZ)


def required(form, period):
    f = CAMPAIGN["forms"][form]
    if f["period_type"] == "phase":
        return period in f["required_in"]
    return f["period_type"] == "monthly"


# --- keys, rosters, returns ----------------------------------------------------------------


def b64url_json(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def sign(key, kid, payload_bytes):
    token = jws.JWS(payload_bytes)
    token.add_signature(key, alg="EdDSA", protected=json.dumps({"alg": "EdDSA", "kid": kid}))
    return token.serialize()  # flattened JSON serialization


class School:
    def __init__(self, county, school_id, name, opened=None, closed=None):
        self.county, self.id, self.name = county, school_id, name
        self.opened, self.closed = opened, closed
        self.key = jwk.JWK.generate(kty="OKP", crv="Ed25519")

    def open_during(self, start, end):
        return (self.opened is None or self.opened <= end) and (
            self.closed is None or self.closed >= start
        )


class Return:
    """One school return as the region stores it, plus what the Python oracle needs."""

    def __init__(self, school, form, period, data, created, hub, supersedes=None,
                 verified=True, receipt_sha=None):
        self.id = str(uuid.uuid4())
        self.school, self.form, self.period, self.data = school, form, period, data
        self.created, self.hub = created, hub
        self.supersedes = supersedes.id if isinstance(supersedes, Return) else supersedes
        self.verified = verified
        self.payload = {
            "form": form, "form_version": 1, "submission_id": self.id,
            "school_id": school.id, "county_id": school.county, "period": period,
            "created_at": created.isoformat(), "supersedes": self.supersedes, "data": data,
        }
        self.payload_bytes = b64url_json(self.payload)
        self.sha256 = hashlib.sha256(self.payload_bytes).hexdigest()
        self.jws = sign(school.key, school.id, self.payload_bytes)
        self.on_time = self.hub_on_time()
        self.receipt_sha = receipt_sha or self.sha256

    def hub_on_time(self):
        if self.form == "incident":
            disc, rep = d(self.data["discovered_on"]), d(self.data["reported_on"])
            end = dt.datetime.combine(rep + dt.timedelta(days=2), dt.time(0), TZ)
            return rep <= disc + dt.timedelta(days=1) and self.hub < end
        return self.hub < deadline(self.form, self.period)

    def receipt(self, hub_key):
        body = {
            "type": "receipt", "submission_id": self.id, "school_id": self.school.id,
            "county_id": self.school.county, "form": self.form, "period": self.period,
            "sha256": self.receipt_sha, "received_at": self.hub.isoformat(),
            "on_time": self.on_time,
        }
        return sign(hub_key, self.school.county, b64url_json(body))

    @property
    def county(self):
        return self.school.county


COLUMNS = (
    "submission_id, county_id, school_id, form, form_version, period, payload, jws, "
    "payload_sha256, receipt_jws, receipt_verified, created_at, hub_received_at, "
    "region_received_at, on_time, supersedes, signature_verified, roster_version"
)


def row(r, hub_key, roster_version):
    return (
        r.id, r.county, r.school.id, r.form, 1, r.period, json.dumps(r.payload, ensure_ascii=False),
        r.jws, r.sha256, r.receipt(hub_key), True, r.created, r.hub,
        r.hub + dt.timedelta(minutes=3), r.on_time, r.supersedes, r.verified, roster_version,
    )


def insert_returns(dsn, returns, hub_keys, roster_versions):
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO submissions ({COLUMNS}) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (submission_id) DO NOTHING",
                [row(r, hub_keys[r.county], roster_versions[r.county]) for r in returns],
            )
    finally:
        conn.close()


# --- the Python oracle ------------------------------------------------------------------


def current(returns):
    """The returns that count (the region's rule, written independently)."""
    verified = [r for r in returns if r.verified]
    displaced = {(r.supersedes, r.school.id) for r in verified if r.supersedes}
    live = [r for r in verified if (r.id, r.school.id) not in displaced]
    heads = [r for r in live if r.form == "incident"]
    latest = {}
    for r in live:
        if r.form == "incident":
            continue
        k = (r.form, r.period, r.county, r.school.id)
        if k not in latest or (r.hub, r.created, r.id) > (
            latest[k].hub, latest[k].created, latest[k].id
        ):
            latest[k] = r
    return heads + list(latest.values())


def first_received(returns, form, period, school):
    times = [r.hub for r in returns
             if r.verified and r.form == form and r.period == period and r.school is school]
    return min(times) if times else None


# --- the data set -------------------------------------------------------------------------


class DataSet:
    def __init__(self):
        self.hub_keys = {c: jwk.JWK.generate(kty="OKP", crv="Ed25519") for c in (A, B)}
        s = {}
        s["A1"] = School(A, "6542010001", "伊宁市第一中学")
        s["A2"] = School(A, "6542010002", "伊宁市第二中学")
        s["A3"] = School(A, "6542010003", "伊宁市实验小学")
        s["A4"] = School(A, "6542010004", "伊宁市第四小学", closed=d("2024-04-15"))
        s["A5"] = School(A, "6542010005", "伊宁市新区学校", opened=d("2024-06-01"))
        s["B1"] = School(B, "6542020001", "奎屯市第一中学")
        s["B2"] = School(B, "6542020002", "奎屯市第二中学")
        s["B3"] = School(B, "6542020003", "奎屯市第三小学")
        self.schools = s
        # A's first roster lacks A5 and names A4 open: the current roster (version 2) rules
        self.rosters = {
            A: {1: [s["A1"], s["A2"], s["A3"], School(A, "6542010004", "旧名")],
                2: [s["A1"], s["A2"], s["A3"], s["A4"], s["A5"]]},
            B: {1: [s["B1"], s["B2"], s["B3"]]},
        }
        self.roster_versions = {A: 2, B: 1}
        self.returns = []
        self.build()

    def add(self, *args, **kwargs):
        r = Return(*args, **kwargs)
        self.returns.append(r)
        return r

    def build(self):
        s, add = self.schools, self.add
        summary = example("summary")
        # summary 2024-P1 (deadline 2024-05-01T00:00+08:00)
        add(s["A1"], "summary", "2024-P1", summary, t("2024-04-28T09:00"), t("2024-04-28T10:00"))
        add(s["A2"], "summary", "2024-P1", summary, t("2024-05-01T08:50"), t("2024-05-01T09:00"))
        a3 = add(s["A3"], "summary", "2024-P1", summary, t("2024-04-30T23:59"),
                 t("2024-04-30T23:59:59"))
        fixed = dict(summary, training_sessions=7)
        self.a3_summary_fix = add(s["A3"], "summary", "2024-P1", fixed, t("2024-05-03T09:00"),
                                  t("2024-05-03T10:00"), supersedes=a3)
        add(s["A5"], "summary", "2024-P1", summary, t("2024-06-02T09:00"), t("2024-06-02T09:05"))
        add(s["B1"], "summary", "2024-P1", summary, t("2024-04-20T09:00"), t("2024-04-20T09:01"))
        # sent again later without naming the first: the later one counts
        add(s["B1"], "summary", "2024-P1", dict(summary, parent_outreach=13),
            t("2024-04-25T09:00"), t("2024-04-25T09:01"))
        self.b2_summary = add(s["B2"], "summary", "2024-P1", summary, t("2024-05-03T07:00"),
                              t("2024-05-03T08:00"), receipt_sha="0" * 64)
        add(s["B3"], "summary", "2024-P1", summary, t("2024-04-21T09:00"), t("2024-04-21T09:01"),
            verified=False)

        # screening 2024-P1
        def scr(enrolled, screened, committee=True, channel=True):
            return dict(example("screening"), students_enrolled=enrolled,
                        students_screened=screened, committee_established=committee,
                        reporting_channel_published=channel)

        add(s["A1"], "screening", "2024-P1", scr(1200, 1180), t("2024-04-20T09:00"),
            t("2024-04-20T09:00:05"))
        add(s["A2"], "screening", "2024-P1", scr(800, 800, committee=False),
            t("2024-04-25T09:00"), t("2024-04-25T09:00:05"))
        self.a3_screening = add(s["A3"], "screening", "2024-P1", scr(500, 450, channel=False),
                                t("2024-04-29T09:00"), t("2024-04-29T09:00:05"))
        self.a3_screening_fix = add(s["A3"], "screening", "2024-P1",
                                    scr(500, 480, channel=False), t("2024-05-04T09:00"),
                                    t("2024-05-04T09:00:05"), supersedes=self.a3_screening)
        self.b1_screening = add(s["B1"], "screening", "2024-P1", scr(300, 290),
                                t("2024-04-22T09:00"), t("2024-04-22T09:00:05"))
        self.b3_screening = add(s["B3"], "screening", "2024-P1", scr(100, 100, channel=False),
                                t("2024-04-23T09:00"), t("2024-04-23T09:00:05"))
        # an optional re-screening in 2024-P2, sent twice with the same created_at: the one
        # the hub received last counts
        add(s["A1"], "screening", "2024-P2", scr(1210, 1200), t("2024-09-20T09:00"),
            t("2024-09-20T09:00:05"))
        add(s["A1"], "screening", "2024-P2", scr(1210, 1210), t("2024-09-20T09:00"),
            t("2024-09-20T09:30"))
        # "latest" is the hub's receive order, as in the county's roll-up: A2's return made
        # first but received last (it waited in the agent's outbox) counts
        add(s["A2"], "screening", "2024-P2", scr(800, 790), t("2024-09-21T09:00"),
            t("2024-09-21T10:00"))
        add(s["A2"], "screening", "2024-P2", scr(800, 800), t("2024-09-20T09:00"),
            t("2024-09-21T11:00"))

        # incidents
        inc = example("incident")
        add(s["A1"], "incident", "2024-05", inc, t("2024-05-03T09:00"), t("2024-05-03T09:10"))
        cyber = dict(inc, incident_ref="2024-020", occurred_on="2024-05-20",
                     discovered_on="2024-05-20", reported_on="2024-05-21", level=1,
                     types=["cyber"], victims={"female": 2, "male": 0},
                     perpetrators={"female": 1, "male": 0}, measures=["education"])
        first = add(s["A1"], "incident", "2024-05", cyber, t("2024-05-21T09:00"),
                    t("2024-05-21T09:05"))
        add(s["A1"], "incident", "2024-05", dict(cyber, level=2, types=["cyber", "verbal"]),
            t("2024-05-25T09:00"), t("2024-05-25T09:05"), supersedes=first)
        level3 = example("incident", "good-closed-level3")
        add(s["A2"], "incident", "2024-06", level3, t("2024-06-12T18:00"), t("2024-06-12T18:30"))
        moved = dict(level3, incident_ref="2024-031", occurred_on="2024-07-01",
                     discovered_on="2024-07-01", reported_on="2024-07-02", status="open",
                     closed_on=None, types=["physical"])
        wrong = add(s["A3"], "incident", "2024-07", moved, t("2024-07-02T09:00"),
                    t("2024-07-02T09:05"))
        # a correction moving the event into the previous month (another period)
        self.a3_moved = add(s["A3"], "incident", "2024-06",
                            dict(moved, occurred_on="2024-06-30", discovered_on="2024-07-01"),
                            t("2024-07-03T09:00"), t("2024-07-03T09:05"), supersedes=wrong)
        add(s["B1"], "incident", "2024-05",
            dict(inc, incident_ref="B-1", occurred_on="2024-05-15", discovered_on="2024-05-15",
                 reported_on="2024-05-16", level=1, types=["relational"],
                 measures=["education"]),
            t("2024-05-16T09:00"), t("2024-05-19T09:00"))
        add(s["B2"], "incident", "2023-11",
            dict(inc, incident_ref="B-2", occurred_on="2023-11-20", discovered_on="2023-11-20",
                 reported_on="2023-11-20", level=2),
            t("2023-11-20T12:00"), t("2023-11-20T12:05"))
        add(s["B3"], "incident", "2024-05", dict(level3, incident_ref="B-3"),
            t("2024-06-12T18:00"), t("2024-06-12T18:30"), verified=False)

        # rectification ledgers
        def item(item_id, dl, status, completed=None):
            base = example("rectification")["items"][0]
            return dict(base, item_id=item_id, deadline=dl, status=status, completed_on=completed,
                        found_on="2024-04-01")

        add(s["A1"], "rectification", "2024-05",
            {"as_of": "2024-05-31", "items": [item("R-001", "2024-05-15", "in_progress"),
                                              item("R-002", "2024-06-30", "open")]},
            t("2024-06-03T09:00"), t("2024-06-03T09:01"))
        add(s["A1"], "rectification", "2024-06",
            {"as_of": "2024-06-30", "items": [item("R-001", "2024-05-15", "done", "2024-06-10"),
                                              item("R-002", "2024-06-30", "in_progress"),
                                              item("R-003", "2024-06-01", "open")]},
            t("2024-07-04T09:00"), t("2024-07-04T09:01"))
        add(s["A2"], "rectification", "2024-06", example("rectification", "good-mixed-statuses"),
            t("2024-07-08T09:00"), t("2024-07-08T09:01"))
        add(s["B1"], "rectification", "2024-06", example("rectification", "good-empty-items"),
            t("2024-07-01T09:00"), t("2024-07-01T09:01"))
        add(s["B2"], "rectification", "2024-05",
            {"as_of": "2024-05-31",
             "items": [item("R-009", "2024-05-20", "verified", "2024-05-19")]},
            t("2024-06-01T09:00"), t("2024-06-01T09:01"))

    # the rosters as the county signs them (PROTOCOL.md), stored with their schools
    def store_rosters(self, dsn):
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                for county, versions in self.rosters.items():
                    for version, schools in versions.items():
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
                        cur.execute(
                            "INSERT INTO rosters (county_id, version, issued_at, jws) "
                            "VALUES (%s, %s, %s, %s)",
                            (county, version, payload["issued_at"],
                             sign(self.hub_keys[county], county, b64url_json(payload))))
                        for x in schools:
                            cur.execute(
                                "INSERT INTO roster_schools (county_id, version, school_id, "
                                "name, type, opened, closed, public_key) "
                                "VALUES (%s, %s, %s, %s, 'school', %s, %s, %s)",
                                (county, version, x.id, x.name, x.opened, x.closed,
                                 x.key.export_public()))
        finally:
            conn.close()

    def expected(self, form, period, county=None):
        start, end = period_dates(form, period)
        latest = [x for c, v in self.roster_versions.items() for x in self.rosters[c][v]]
        return [x for x in latest
                if x.open_during(start, end) and (county is None or x.county == county)]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("keys")


def write_hub_key(folder, county, key, private=False):
    path = folder / f"hub-{county}{'' if private else '.pub'}.jwk"
    text = key.export_private() if private else key.export_public()
    obj = json.loads(text)
    obj["kid"] = county
    path.write_text(json.dumps(obj))
    if private:
        path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def data():
    return DataSet()


@pytest.fixture(scope="module")
def db(pg_server, data, keys_dir):
    """A migrated database holding the data set."""
    dsn = pg_server.new_database("region_inspections")
    region("migrate", "--db", dsn, check=0)
    for county in (A, B):
        key = write_hub_key(keys_dir, county, data.hub_keys[county])
        region("county", "add", "--county-id", county, "--name", COUNTY_NAMES[county],
               "--key", key, "--db", dsn, check=0)
    data.store_rosters(dsn)
    insert_returns(dsn, data.returns, data.hub_keys, data.roster_versions)
    return dsn


# --- pg-tmp ---------------------------------------------------------------------------------


def test_pg_tmp_is_idempotent_and_durable(tmp_path):
    folder = tmp_path / "pg"
    server = start_server(folder)
    try:
        again = pg_tmp("start", folder)
        assert again.returncode == 0 and again.stdout.strip() == server.conninfo
        status = pg_tmp("status", folder)
        assert status.returncode == 0 and status.stdout.strip() == server.conninfo
        assert query(server.conninfo, "SHOW fsync") == [("on",)]
        assert query(server.conninfo, "SHOW listen_addresses") == [("127.0.0.1",)]
        assert query(server.conninfo, "SHOW server_encoding") == [("UTF8",)]
        execute(server.conninfo, "CREATE TABLE kept (v text)")
        execute(server.conninfo, "INSERT INTO kept VALUES ('欺凌防治')")
        # the TCP port answers too
        port = server.conninfo.split("port=")[1].split()[0]
        tcp = f"host=127.0.0.1 port={port} dbname=postgres user=postgres"
        assert query(tcp, "SELECT count(*) FROM kept") == [(1,)]

        assert pg_tmp("stop", folder).returncode == 0
        assert pg_tmp("stop", folder).returncode == 0
        assert pg_tmp("status", folder).returncode == 1
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(server.conninfo).close()
        restarted = pg_tmp("start", folder)
        assert restarted.returncode == 0
        assert query(restarted.stdout.strip(), "SELECT v FROM kept") == [("欺凌防治",)]
    finally:
        assert pg_tmp("destroy", folder).returncode == 0
    assert not folder.exists()
    assert pg_tmp("destroy", folder).returncode == 0
    assert pg_tmp("stop", folder).returncode == 0


def test_pg_tmp_copied_cluster_uses_its_own_socket(tmp_path):
    """A stopped cluster folder copied with cp -a starts on its own socket folder, beside
    the original, each with its own data."""
    folder = tmp_path / "pg"
    server = start_server(folder)
    elsewhere = Path(tempfile.mkdtemp(prefix="pg-tmp-copy.", dir="/tmp"))
    elsewhere.chmod(0o755)
    copied = elsewhere / "copy"
    try:
        execute(server.conninfo, "CREATE TABLE kept (v text)")
        assert pg_tmp("stop", folder).returncode == 0
        # the cluster folder itself: DIR, or where DIR/cluster points
        original = (folder / "cluster").resolve() if (folder / "cluster").is_symlink() \
            else folder.resolve()
        subprocess.run(["cp", "-a", str(original), str(copied)], check=True, timeout=120)

        proc = pg_tmp("start", copied)
        assert proc.returncode == 0, proc.stderr
        copy_dsn = proc.stdout.strip()
        assert f"host={copied}/socket " in copy_dsn
        assert query(copy_dsn, "SHOW unix_socket_directories") == [(f'"{copied}/socket"',)]
        assert [p.name for p in (copied / "socket").glob(".s.PGSQL.*")] != []
        assert list((original / "socket").glob(".s.PGSQL.*")) == []
        execute(copy_dsn, "INSERT INTO kept VALUES ('copy')")

        # the original starts beside it, on its own socket, and does not see the copy's row
        proc = pg_tmp("start", folder)
        assert proc.returncode == 0, proc.stderr
        first_dsn = proc.stdout.strip()
        assert f"host={original}/socket " in first_dsn
        assert query(first_dsn, "SHOW unix_socket_directories") == [(f'"{original}/socket"',)]
        assert query(first_dsn, "SELECT count(*) FROM kept") == [(0,)]
        assert query(copy_dsn, "SELECT v FROM kept") == [("copy",)]
    finally:
        assert pg_tmp("destroy", copied).returncode == 0
        assert pg_tmp("destroy", folder).returncode == 0
        shutil.rmtree(elsewhere, ignore_errors=True)


# --- migrate --------------------------------------------------------------------------------


def schema_dump(dsn):
    proc = subprocess.run(["pg_dump", "--schema-only", "--no-owner", dsn],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # newer pg_dump fences its output with a random key
    return "\n".join(x for x in proc.stdout.splitlines()
                     if not x.startswith(("\\restrict", "\\unrestrict")))


def test_migrate_twice_is_idempotent(pg_server):
    dsn = pg_server.new_database("region_migrate")
    first = region("migrate", "--db", dsn, check=0)
    files = sorted(p.name for p in (SCHEMAS / "region").glob("*.sql"))
    assert f"({len(files)} migrations applied now)" in first.stderr
    applied = query(dsn, "SELECT version, name, sha256 FROM schema_migrations ORDER BY version")
    assert [a[1] for a in applied] == files
    for version, name, sha in applied:
        assert version == int(name[:3])
        assert sha == hashlib.sha256((SCHEMAS / "region" / name).read_bytes()).hexdigest()
    dump = schema_dump(dsn)
    periods = query(dsn, "SELECT * FROM periods ORDER BY form, period")
    forms = query(dsn, "SELECT * FROM forms ORDER BY form")

    again = region("migrate", "--db", dsn, check=0)
    assert "0 migrations applied" in again.stderr
    assert schema_dump(dsn) == dump
    assert query(dsn, "SELECT * FROM periods ORDER BY form, period") == periods
    assert query(dsn, "SELECT * FROM forms ORDER BY form") == forms
    assert query(dsn, "SELECT count(*) FROM schema_migrations") == [(len(files),)]


def test_migrate_stores_the_calendar(pg_server):
    dsn = pg_server.new_database("region_calendar")
    region("migrate", "--db", dsn, check=0)
    forms = dict(query(dsn, "SELECT form, period_type FROM forms"))
    assert forms == {f: v["period_type"] for f, v in CAMPAIGN["forms"].items()}
    assert query(dsn, "SELECT event_field FROM forms WHERE form = 'incident'") == [("occurred_on",)]
    rows = query(dsn, "SELECT form, period, required, start_date, end_date, due_date, deadline, "
                      "expires_at FROM periods")
    got = {(r[0], r[1]): r[2:] for r in rows}
    want = {}
    months = [f"2024-{m:02d}" for m in range(3, 12)]
    for form, f in CAMPAIGN["forms"].items():
        if f["period_type"] == "phase":
            ids = list(PHASES)
        else:
            ids = months
        for period in ids:
            start, end = period_dates(form, period)
            if f["period_type"] == "event":
                expiry = dt.datetime.combine(d("2024-11-30") + dt.timedelta(days=31),
                                             dt.time(0), TZ)
                want[(form, period)] = (False, start, end, None, None, expiry)
            else:
                due = due_date(form, period)
                expiry = dt.datetime.combine(due + dt.timedelta(days=31), dt.time(0), TZ)
                want[(form, period)] = (required(form, period), start, end, due,
                                        deadline(form, period), expiry)
    assert got == want


def test_migrate_refuses_edited_and_unknown_migrations(pg_server, tmp_path):
    dsn = pg_server.new_database("region_edited")
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    region("migrate", "--db", dsn, "--schemas-dir", schemas, check=0)
    first = sorted((schemas / "region").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    proc = region("migrate", "--db", dsn, "--schemas-dir", schemas, check=65)
    assert first.name in proc.stderr and "new migration" in proc.stderr

    shutil.rmtree(schemas)
    shutil.copytree(SCHEMAS, schemas)
    execute(dsn, "INSERT INTO schema_migrations (version, name, sha256) "
                 "VALUES (999, '999_future.sql', repeat('a', 64))")
    proc = region("migrate", "--db", dsn, "--schemas-dir", schemas, check=65)
    assert "999_future.sql" in proc.stderr and "older than the database" in proc.stderr

    (schemas / "region" / "006_Bad-Name.sql").write_text("SELECT 1;")
    proc = region("migrate", "--db", dsn, "--schemas-dir", schemas, check=65)
    assert "006_Bad-Name.sql" in proc.stderr


def test_failed_migration_leaves_nothing(pg_server, tmp_path):
    dsn = pg_server.new_database("region_failed")
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    (schemas / "region" / "900_broken.sql").write_text(
        "CREATE TABLE half_done (x int);\nSELECT no_such_function();\n")
    proc = region("migrate", "--db", dsn, "--schemas-dir", schemas)
    assert proc.returncode != 0 and "900_broken.sql" in proc.stderr
    assert query(dsn, "SELECT to_regclass('half_done')") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM schema_migrations") == [(MIGRATIONS,)]
    (schemas / "region" / "900_broken.sql").unlink()
    region("migrate", "--db", dsn, "--schemas-dir", schemas, check=0)


def test_concurrent_migrations_take_turns(pg_server):
    dsn = pg_server.new_database("region_concurrent")
    procs = [subprocess.Popen([str(REGION), "migrate", "--db", dsn], stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert all(rc == 0 for rc, _ in results), results
    assert query(dsn, "SELECT count(*), count(DISTINCT version) FROM schema_migrations") == [
        (MIGRATIONS, MIGRATIONS)]


def test_migrate_uses_pg_environment(pg_server):
    dsn = pg_server.new_database("region_env")
    params = dict(kv.split("=", 1) for kv in dsn.split())
    env = dict(os.environ, PGHOST=params["host"], PGPORT=params["port"],
               PGDATABASE=params["dbname"], PGUSER=params["user"])
    region("migrate", env=env, check=0)
    assert query(dsn, "SELECT count(*) FROM schema_migrations") == [(MIGRATIONS,)]


def test_migrate_without_database_fails_cleanly(tmp_path):
    proc = region("migrate", "--db", f"host={tmp_path} port=1 connect_timeout=2", check=69)
    assert "cannot connect" in proc.stderr and proc.stderr.count("\n") == 1


# --- county add, token add ----------------------------------------------------------------


def test_county_add(pg_server, tmp_path):
    dsn = pg_server.new_database("region_counties")
    region("migrate", "--db", dsn, check=0)
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    pub = write_hub_key(tmp_path, A, key)
    region("county", "add", "--county-id", A, "--name", "伊宁市", "--key", pub, "--db", dsn,
           check=0)
    stored = query(dsn, "SELECT county_id, name, hub_key FROM counties")
    assert len(stored) == 1 and stored[0][:2] == (A, "伊宁市")
    hub_key = stored[0][2]
    assert "d" not in hub_key
    assert jwk.JWK(**hub_key).thumbprint() == key.thumbprint()
    # again, the same: fine; another name or key: refused, nothing changed
    region("county", "add", "--county-id", A, "--name", "伊宁市", "--key", pub, "--db", dsn,
           check=0)
    region("county", "add", "--county-id", A, "--name", "伊宁", "--key", pub, "--db", dsn,
           check=65)
    (tmp_path / "other").mkdir()
    other = write_hub_key(tmp_path / "other", A, jwk.JWK.generate(kty="OKP", crv="Ed25519"))
    region("county", "add", "--county-id", A, "--name", "伊宁市", "--key", other, "--db", dsn,
           check=65)
    assert query(dsn, "SELECT county_id, name, hub_key FROM counties") == stored
    # a private key, a key named for another county, a bad code, a missing file
    private = write_hub_key(tmp_path, B, key, private=True)
    region("county", "add", "--county-id", B, "--name", "x", "--key", private, "--db", dsn,
           check=65)
    region("county", "add", "--county-id", B, "--name", "x", "--key", pub, "--db", dsn,
           check=65)
    region("county", "add", "--county-id", "65420", "--name", "x", "--key", pub, "--db", dsn,
           check=65)
    region("county", "add", "--county-id", B, "--name", "x", "--key", tmp_path / "none.jwk",
           "--db", dsn, check=66)
    region("county", "add", "--county-id", B, "--db", dsn, check=64)
    assert query(dsn, "SELECT count(*) FROM counties") == [(1,)]


def test_token_add_stores_only_a_hash(pg_server, tmp_path):
    dsn = pg_server.new_database("region_tokens")
    region("migrate", "--db", dsn, check=0)
    pub = write_hub_key(tmp_path, A, jwk.JWK.generate(kty="OKP", crv="Ed25519"))
    region("county", "add", "--county-id", A, "--name", "伊宁市", "--key", pub, "--db", dsn,
           check=0)
    inspector = region("token", "add", "--name", "督导组", "--role", "region-inspector",
                       "--db", dsn, check=0).stdout
    viewer = region("token", "add", "--name", "viewer-a", "--role", "county-viewer",
                    "--county", A, "--db", dsn, check=0).stdout
    tokens = [inspector.strip(), viewer.strip()]
    assert inspector.count("\n") == 1 and viewer.count("\n") == 1
    assert tokens[0] != tokens[1] and all(len(x) >= 40 for x in tokens)
    rows = query(dsn, "SELECT name, role, county_id, secret_sha256 FROM tokens ORDER BY name")
    assert rows == [
        ("viewer-a", "county-viewer", A, hashlib.sha256(tokens[1].encode()).hexdigest()),
        ("督导组", "region-inspector", None, hashlib.sha256(tokens[0].encode()).hexdigest()),
    ]
    # the token itself is nowhere in the table
    text = json.dumps(query(dsn, "SELECT to_jsonb(t) FROM tokens t"), ensure_ascii=False)
    assert tokens[0] not in text and tokens[1] not in text
    # refused: a taken name, an unknown county, a viewer without county, an inspector with
    # one, an unknown role
    region("token", "add", "--name", "viewer-a", "--role", "region-inspector", "--db", dsn,
           check=65)
    region("token", "add", "--name", "b", "--role", "county-viewer", "--county", "999999",
           "--db", dsn, check=65)
    region("token", "add", "--name", "c", "--role", "county-viewer", "--db", dsn, check=64)
    region("token", "add", "--name", "d", "--role", "region-inspector", "--county", A,
           "--db", dsn, check=64)
    region("token", "add", "--name", "e", "--role", "admin", "--db", dsn, check=64)
    assert query(dsn, "SELECT count(*) FROM tokens") == [(2,)]


# --- audit log ----------------------------------------------------------------------------


def test_audit_log_is_append_only(db):
    execute(db, "INSERT INTO audit_log (who, role, county_id, query, parameters, rows_returned) "
                "VALUES ('viewer-a', 'county-viewer', %s, 'incidents', %s, 3)",
            (A, json.dumps({"from": "2024-05-01", "to": "2024-05-31"})))
    before = query(db, "SELECT * FROM audit_log")
    assert len(before) == 1
    for sql in ("UPDATE audit_log SET rows_returned = 0",
                "DELETE FROM audit_log",
                "TRUNCATE audit_log"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege) as e:
            execute(db, sql)
        assert "append-only" in str(e.value)
    assert query(db, "SELECT * FROM audit_log") == before
    # appending still works
    execute(db, "INSERT INTO audit_log (who, query) VALUES ('督导组', 'late_returns')")
    assert query(db, "SELECT count(*) FROM audit_log") == [(2,)]


# --- the returns that count ---------------------------------------------------------------


def heads(dsn):
    return sorted(str(r[0]) for r in query(dsn, "SELECT submission_id FROM submission_current"))


def test_heads_follow_the_rule(db, data):
    assert heads(db) == sorted(r.id for r in current(data.returns))
    # the view shows every stored column of those
    rows = query(db, "SELECT submission_id, payload_sha256, jws FROM current_submissions")
    by_id = {r.id: r for r in data.returns}
    assert sorted(str(r[0]) for r in rows) == heads(db)
    for sid, sha, text in rows:
        assert by_id[str(sid)].sha256 == sha and by_id[str(sid)].jws == text


def test_heads_follow_inserts_updates_deletes_and_copy(pg_server, data):
    dsn = pg_server.new_database("region_heads")
    region("migrate", "--db", dsn, check=0)
    for county in (A, B):
        execute(dsn, "INSERT INTO counties (county_id, name, hub_key) VALUES (%s, %s, %s)",
                (county, COUNTY_NAMES[county], data.hub_keys[county].export_public()))
    returns = copy.copy(data.returns)
    # COPY, as the bulk ingest may store them, in two batches (corrections in the second)
    first = [r for r in returns if r.supersedes is None]
    later = [r for r in returns if r.supersedes is not None]
    for batch in (first, later):
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("CREATE TEMP TABLE batch (LIKE submissions INCLUDING DEFAULTS) "
                            "ON COMMIT DROP")
                cur.executemany(f"INSERT INTO batch ({COLUMNS}) VALUES "
                                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                                [row(r, data.hub_keys[r.county], 1) for r in batch])
                buf = io.StringIO()
                cur.copy_expert(f"COPY (SELECT {COLUMNS} FROM batch) TO STDOUT", buf)
                buf.seek(0)
                cur.copy_expert(f"COPY submissions ({COLUMNS}) FROM STDIN", buf)
        finally:
            conn.close()
    assert heads(dsn) == sorted(r.id for r in current(returns))
    # the same rows again: nothing changes
    insert_returns(dsn, returns, data.hub_keys, {A: 1, B: 1})
    assert heads(dsn) == sorted(r.id for r in current(returns))
    # a correction removed: the original counts again
    fix = data.a3_screening_fix
    execute(dsn, "DELETE FROM submissions WHERE submission_id = %s", (fix.id,))
    returns.remove(fix)
    assert data.a3_screening.id in heads(dsn)
    assert heads(dsn) == sorted(r.id for r in current(returns))
    # a signature found bad after all: the return stops counting (and its earlier one
    # counts instead, for the cross-period incident correction)
    execute(dsn, "UPDATE submissions SET signature_verified = false WHERE submission_id = %s",
            (data.a3_moved.id,))
    moved = copy.copy(data.a3_moved)
    moved.verified = False
    returns[returns.index(data.a3_moved)] = moved
    assert heads(dsn) == sorted(r.id for r in current(returns))
    # the figures copied into the heads are those of the payloads
    rows = query(dsn, "SELECT submission_id, level, types, victims, perpetrators, ref_date "
                      "FROM submission_current WHERE form = 'incident'")
    by_id = {r.id: r for r in returns}
    for sid, level, types, victims, perpetrators, ref_date in rows:
        data_ = by_id[str(sid)].data
        assert level == data_["level"] and types == data_["types"]
        assert victims == sum(data_["victims"].values())
        assert perpetrators == sum(data_["perpetrators"].values())
        assert ref_date == data_["occurred_on"]


# --- inspections ----------------------------------------------------------------------------


@pytest.mark.parametrize("form,period", [("summary", "2024-P1"), ("screening", "2024-P1"),
                                         ("rectification", "2024-06")])
@pytest.mark.parametrize("county", [None, A, B])
def test_late_returns(db, data, form, period, county):
    dl = deadline(form, period)
    want, late = {}, []
    for c in (A, B):
        if county and c != county:
            continue
        exp = data.expected(form, period, c)
        firsts = [(x, first_received(data.returns, form, period, x)) for x in exp]
        received = [f for _, f in firsts if f]
        on_time = [f for f in received if f < dl]
        n = len(exp)
        want[c] = (COUNTY_NAMES[c], n, len(received), len(on_time),
                   len(received) - len(on_time), n - len(received),
                   round(len(received) / n, 4) if n else None,
                   round(len(on_time) / n, 4) if n else None)
        for x, f in firsts:
            if f is None:
                late.append((c, x.id, "missing", None))
            elif f >= dl:
                days = (f - dl) // dt.timedelta(days=1) + 1
                late.append((c, x.id, "late", days))
    rows = query(db, "SELECT * FROM late_returns(%s, %s, %s)", (form, period, county))
    got = {r[0]: (r[1], *r[2:7], *(None if v is None else float(v) for v in r[7:9]))
           for r in rows}
    assert got == want
    rows = query(db, "SELECT county_id, school_id, status, days_late, deadline, school_name "
                     "FROM late_schools(%s, %s, %s)", (form, period, county))
    assert sorted(r[:4] for r in rows) == sorted(late)
    assert all(r[4] == dl for r in rows)
    names = {x.id: x.name for x in data.schools.values()}
    assert all(r[5] == names[r[1]] for r in rows)


def test_late_returns_spot_checks(db):
    """A few figures written out by hand, so the oracle above cannot be wrong alone."""
    rows = {r[0]: r[2:7] for r in query(db, "SELECT * FROM late_returns('summary', '2024-P1')")}
    # A: A1-A4 expected (A5 opened in June); A1, A3 on time (A3's late correction does not
    # count against it), A2 late, A4 missing. B: B1 on time, B2 late, B3 only unverified.
    assert rows == {A: (4, 3, 2, 1, 1), B: (3, 2, 1, 1, 1)}
    late = query(db, "SELECT school_id, status, days_late FROM late_schools('summary', "
                     "'2024-P1') ORDER BY school_id")
    assert late == [("6542010002", "late", 1), ("6542010004", "missing", None),
                    ("6542020002", "late", 3), ("6542020003", "missing", None)]


@pytest.mark.parametrize("form,period", [("screening", "2024-P2"), ("incident", "2024-05"),
                                         ("summary", "2024-P9"), ("nosuch", "2024-P1")])
def test_late_returns_refuses_periods_nobody_is_late_for(db, form, period):
    for fn in ("late_returns", "late_schools"):
        with pytest.raises(psycopg2.errors.InvalidParameterValue):
            query(db, f"SELECT * FROM {fn}(%s, %s)", (form, period))


def incident_heads(data, start, end, county=None):
    return [r for r in current(data.returns)
            if r.form == "incident" and start <= d(r.data["occurred_on"]) <= end
            and (county is None or r.county == county)]


@pytest.mark.parametrize("start,end", [("2024-01-01", "2024-12-31"), ("2024-05-01", "2024-05-31"),
                                       ("2024-06-01", "2024-06-30"), ("2023-01-01", "2023-12-31")])
@pytest.mark.parametrize("county", [None, A, B])
def test_incidents(db, data, start, end, county):
    want = {}
    for r in incident_heads(data, d(start), d(end), county):
        victims, perps = sum(r.data["victims"].values()), sum(r.data["perpetrators"].values())
        for type_ in [None, *r.data["types"]]:
            k = (r.county, COUNTY_NAMES[r.county], r.data["level"], type_)
            n, v, p = want.get(k, (0, 0, 0))
            want[k] = (n + 1, v + victims, p + perps)
    rows = query(db, "SELECT * FROM incidents(%s, %s, %s)", (start, end, county))
    assert {r[:4]: r[4:] for r in rows} == want
    assert len(rows) == len(want)


def test_incidents_spot_check(db):
    rows = query(db, "SELECT county_id, level, type, incidents FROM incidents('2024-05-01', "
                     "'2024-05-31') WHERE type IS NULL")
    # A1's cyber incident counts once, as corrected to level 2; B3's is not verified
    assert rows == [(A, 2, None, 2), (B, 1, None, 1)]


@pytest.mark.parametrize("county", [None, A, B])
def test_incidents_level3(db, data, county):
    want = sorted(
        (r.county, COUNTY_NAMES[r.county], r.school.id, r.school.name, r.data["incident_ref"],
         d(r.data["occurred_on"]), d(r.data["discovered_on"]), d(r.data["reported_on"]),
         r.data["types"], r.data["measures"], r.data["status"],
         r.data["closed_on"] and d(r.data["closed_on"]), r.id)
        for r in incident_heads(data, d("2024-01-01"), d("2024-12-31"), county)
        if r.data["level"] == 3)
    rows = query(db, "SELECT * FROM incidents_level3('2024-01-01', '2024-12-31', %s)", (county,))
    got = [(*r[:12], str(r[12])) for r in rows]
    assert sorted(got) == want
    assert [r[5] for r in got] == sorted(r[5] for r in got)  # by day, for a notice
    if county != B:
        assert data.a3_moved.id in [r[12] for r in got]


def overdue_oracle(data, as_of, county=None):
    ledgers = {}
    for r in current(data.returns):
        if r.form != "rectification" or d(r.data["as_of"]) > as_of:
            continue
        if county and r.county != county:
            continue
        k = (r.county, r.school.id)
        if k not in ledgers or (r.data["as_of"], r.period) > (ledgers[k].data["as_of"],
                                                              ledgers[k].period):
            ledgers[k] = r
    out = []
    for (c, s), r in ledgers.items():
        for it in r.data["items"]:
            if it["status"] not in ("done", "verified") and d(it["deadline"]) < as_of:
                out.append((c, COUNTY_NAMES[c], s, r.school.name, it["item_id"],
                            it["category"], it["source"], it["problem"], it["measure"],
                            it["responsible_role"], d(it["deadline"]), it["status"],
                            (as_of - d(it["deadline"])).days, r.period, d(r.data["as_of"]),
                            r.id))
    return sorted(out)


@pytest.mark.parametrize("as_of", ["2024-05-31", "2024-06-15", "2024-06-30", "2024-07-10",
                                   "2024-12-31"])
@pytest.mark.parametrize("county", [None, A, B])
def test_overdue_rectification(db, data, as_of, county):
    rows = query(db, "SELECT * FROM overdue_rectification(%s, %s)", (as_of, county))
    got = [(*r[:15], str(r[15])) for r in rows]
    assert sorted(got) == overdue_oracle(data, d(as_of), county)
    assert got == sorted(got, key=lambda r: (r[0], r[2], r[10], r[4]))


def test_overdue_rectification_spot_check(db):
    rows = query(db, "SELECT school_id, item_id, days_overdue, ledger_period "
                     "FROM overdue_rectification('2024-06-15')")
    # A1's May ledger (its June one is as of 06-30, after the day asked about)
    assert rows == [("6542010001", "R-001", 31, "2024-05")]
    # on its deadline day an item is not overdue yet (A1's R-002, due 06-30)
    rows = query(db, "SELECT school_id, item_id, days_overdue FROM "
                     "overdue_rectification('2024-06-30')")
    assert rows == [("6542010001", "R-003", 29), ("6542010002", "R-002", 15),
                    ("6542010002", "r-005", 5)]
    rows = query(db, "SELECT school_id, item_id, days_overdue FROM "
                     "overdue_rectification('2024-07-10')")
    assert rows == [("6542010001", "R-003", 39), ("6542010001", "R-002", 10),
                    ("6542010002", "R-002", 25), ("6542010002", "r-005", 15)]


@pytest.mark.parametrize("year,min_level", [(2024, 2), (2024, 3), (2024, 1), (2023, 2)])
@pytest.mark.parametrize("county", [None, A, B])
def test_follow_up(db, data, year, min_level, county):
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    want = {}
    for r in incident_heads(data, start, end, county):
        if r.data["level"] < min_level:
            continue
        k = (r.county, r.school.id)
        n, mx, n3, od = want.get(k, (0, None, 0, 0))
        want[k] = (n + 1, max(mx or 0, r.data["level"]), n3 + (r.data["level"] == 3), od)
    for o in overdue_oracle(data, end, county):
        k = (o[0], o[2])
        n, mx, n3, od = want.get(k, (0, None, 0, 0))
        want[k] = (n, mx, n3, od + 1)
    rows = query(db, "SELECT * FROM follow_up(%s, %s, %s)", (year, min_level, county))
    names = {x.id: x.name for x in data.schools.values()}
    assert all(r[1] == COUNTY_NAMES[r[0]] and r[3] == names[r[2]] for r in rows)
    assert {(r[0], r[2]): r[4:] for r in rows} == want
    assert len(rows) == len(want)


def test_follow_up_default_level(db):
    assert query(db, "SELECT * FROM follow_up(2024)") == query(
        db, "SELECT * FROM follow_up(2024, 2)")


@pytest.mark.parametrize("period", ["2024-P1", "2024-P2"])
@pytest.mark.parametrize("county", [None, A, B])
def test_screening_coverage(db, data, period, county):
    heads_ = {(r.county, r.school.id): r for r in current(data.returns)
              if r.form == "screening" and r.period == period}
    schools = {(x.county, x.id): x for x in data.expected("screening", period, county)}
    for (c, s), r in heads_.items():
        if county is None or c == county:
            schools.setdefault((c, s), r.school)
    want_schools = []
    for (c, s), x in sorted(schools.items()):
        r = heads_.get((c, s))
        if r:
            e, n = r.data["students_enrolled"], r.data["students_screened"]
            want_schools.append((c, COUNTY_NAMES[c], s, x.name, True, e, n, round(n / e, 4),
                                 r.data["committee_established"],
                                 r.data["reporting_channel_published"], r.id))
        else:
            want_schools.append((c, COUNTY_NAMES[c], s, x.name, False, None, None, None, None,
                                 None, None))
    rows = query(db, "SELECT * FROM screening_coverage_schools(%s, %s)", (period, county))
    got = [(*r[:7], None if r[7] is None else float(r[7]), *r[8:10],
            None if r[10] is None else str(r[10])) for r in rows]
    assert got == want_schools

    want = []
    for c in (A, B):
        if county and c != county:
            continue
        mine = [w for w in want_schools if w[0] == c]
        rep = [w for w in mine if w[4]]
        e, n = sum(w[5] for w in rep), sum(w[6] for w in rep)
        want.append((c, COUNTY_NAMES[c], len(mine), len(rep), e, n,
                     round(n / e, 4) if e else None, sum(1 for w in rep if not w[8]),
                     sum(1 for w in rep if not w[9])))
    rows = query(db, "SELECT * FROM screening_coverage(%s, %s)", (period, county))
    assert [(*r[:6], None if r[6] is None else float(r[6]), *r[7:]) for r in rows] == want


def test_screening_coverage_spot_check(db):
    rows = query(db, "SELECT county_id, schools, reported, students_enrolled, students_screened, "
                     "without_committee, without_reporting_channel "
                     "FROM screening_coverage('2024-P1')")
    # A3 counts with its correction (480 screened); A4 did not report, A5 was not open
    assert rows == [(A, 4, 3, 2500, 2460, 1, 1), (B, 3, 2, 400, 390, 0, 1)]
    rows = query(db, "SELECT school_id, students_screened FROM "
                     "screening_coverage_schools('2024-P2') WHERE reported")
    assert rows == [("6542010001", 1210), ("6542010002", 800)]


# --- roll-ups -----------------------------------------------------------------------------


def insert_rollup(dsn, data, county, form, period, computed_at, status, expected, received,
                  on_time, listed, findings=()):
    payload = {
        "type": "rollup", "county_id": county, "form": form, "period": period, "status": status,
        "computed_at": computed_at.isoformat(), "expected": expected, "received": received,
        "on_time": on_time, "rollup": {"students_enrolled": 0},
        "submissions": [{"submission_id": sid, "sha256": sha} for sid, sha in listed],
        "missing": [],
    }
    text = sign(data.hub_keys[county], county, b64url_json(payload))
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO rollups (county_id, form, period, status, computed_at, expected, "
                "received, on_time, rollup, payload, jws, signature_verified) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true) RETURNING rollup_id",
                (county, form, period, status, computed_at, expected, received, on_time,
                 json.dumps(payload["rollup"]), json.dumps(payload), text))
            rollup_id = cur.fetchone()[0]
            for sid, sha in listed:
                cur.execute("INSERT INTO rollup_submissions VALUES (%s, %s, %s, %s)",
                            (county, rollup_id, sid, sha))
            for detail in findings:
                cur.execute("INSERT INTO integrity_findings (county_id, kind, form, period, "
                            "detail) VALUES (%s, 'rollup_mismatch', %s, %s, %s)",
                            (county, form, period, detail))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def rollups(db, data):
    """A's roll-ups of screening 2024-P1 are honest (the final one computed before A3's
    correction arrived: stale, not wrong); B's is tampered with."""
    form, period = "screening", "2024-P1"
    at = t("2024-05-02T00:00")

    def listing(county, when):
        known = [r for r in data.returns if r.hub <= when]
        return [(r.id, r.sha256) for r in current(known)
                if r.form == form and r.period == period and r.county == county]

    insert_rollup(db, data, A, form, period, t("2024-04-26T00:00"), "provisional", 4, 2, 2,
                  listing(A, t("2024-04-26T00:00")))
    insert_rollup(db, data, A, form, period, at, "final", 4, 3, 3, listing(A, at))
    ghost = str(uuid.uuid4())
    insert_rollup(db, data, B, form, period, at, "final", 3, 3, 3,
                  [(data.b1_screening.id, "f" * 64), (ghost, "e" * 64)],
                  findings=["roll-up object differs from the one recomputed"])
    return {"ghost": ghost, "at": at}


def test_rollup_integrity(db, data, rollups):
    rows = query(db, "SELECT * FROM rollup_integrity('screening', '2024-P1')")
    got = {r[0]: r for r in rows}
    a, b = got[A], got[B]
    # A: the final roll-up; expected 4 (A1-A4), received and on time 3 (A1-A3 by 05-02)
    assert a[1:5] == ("伊宁市", "final", rollups["at"], 4)
    assert a[5:10] == (4, 3, 3, 3, 3)
    assert a[10:] == (3, 0, 0, 0, 0, 0, True)
    # B: claims 3 received; the region holds B1 and B3; B1 listed with another hash, a
    # return the region never got listed, B3 left out, and one finding from the ingest
    assert b[2] == "final" and b[4:10] == (3, 3, 3, 2, 3, 2)
    assert b[10:] == (2, 1, 1, 0, 1, 1, False)
    assert query(db, "SELECT * FROM rollup_integrity('screening', '2024-P1', %s)", (B,)) == [b]
    # a form and period without roll-ups: every county, nothing to judge
    rows = query(db, "SELECT county_id, status, ok FROM rollup_integrity('summary', '2024-P1')")
    assert rows == [(A, None, None), (B, None, None)]


def test_rollup_mismatches(db, data, rollups):
    rows = query(db, "SELECT county_id, submission_id, school_id, problem, county_sha256, "
                     "region_sha256 FROM rollup_mismatches('screening', '2024-P1')")
    got = sorted((r[0], str(r[1]), r[2], r[3], r[4], r[5]) for r in rows)
    b1, b3 = data.b1_screening, data.b3_screening
    assert got == sorted([
        (B, rollups["ghost"], None, "missing_at_region", "e" * 64, None),
        (B, b1.id, b1.school.id, "sha256_differs", "f" * 64, b1.sha256),
        (B, b3.id, b3.school.id, "not_in_rollup", None, b3.sha256),
    ])
    # had A's roll-up been computed after A3's correction arrived, listing the original
    # would be wrong
    insert_rollup(db, data, A, "screening", "2024-P1", t("2024-05-05T00:00"), "final", 4, 3, 3,
                  [(r.id, r.sha256) for r in data.returns
                   if r.form == "screening" and r.period == "2024-P1" and r.county == A
                   and r is not data.a3_screening_fix])
    try:
        rows = query(db, "SELECT submission_id, problem FROM rollup_mismatches('screening', "
                         "'2024-P1', %s)", (A,))
        assert sorted((str(r[0]), r[1]) for r in rows) == sorted([
            (data.a3_screening.id, "not_current"), (data.a3_screening_fix.id, "not_in_rollup")])
        assert query(db, "SELECT ok FROM rollup_integrity('screening', '2024-P1', %s)",
                     (A,)) == [(False,)]
    finally:
        execute(db, "DELETE FROM rollups WHERE county_id = %s AND computed_at = %s",
                (A, t("2024-05-05T00:00")))


def kept_comparisons_drift(dsn):
    """What the kept comparisons of the latest roll-ups (rollup_checks, rollup_check_rows)
    hold that comparisons made from scratch do not, and the other way round."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE kept_n AS SELECT * FROM rollup_checks; "
                        "CREATE TEMP TABLE kept AS SELECT * FROM rollup_check_rows")
            cur.execute("SELECT rollup_checks_refresh(array_agg(county_id), array_agg(form), "
                        "array_agg(period)) FROM (SELECT DISTINCT county_id, form, period "
                        "FROM rollups) k")
            cur.execute("(SELECT 'kept', * FROM kept_n EXCEPT SELECT 'kept', * FROM rollup_checks) "
                        "UNION ALL (SELECT 'made', * FROM rollup_checks "
                        "EXCEPT SELECT 'made', * FROM kept_n)")
            drift = cur.fetchall()
            cur.execute("(SELECT 'kept', * FROM kept EXCEPT ALL "
                        "SELECT 'kept', * FROM rollup_check_rows) UNION ALL "
                        "(SELECT 'made', * FROM rollup_check_rows EXCEPT ALL "
                        "SELECT 'made', * FROM kept)")
            return drift + cur.fetchall()
    finally:
        conn.rollback()
        conn.close()


def test_rollup_integrity_judges_the_latest_of_many_versions(db, data, rollups):
    """A hub forwards a roll-up each time its figures change: only the latest verified one
    of a county is judged, whatever order the versions arrived in; an older one that
    disagrees with the region (stale, or even wrong) is no mismatch."""
    form, period = "summary", "2024-P1"
    expected = [s for s in data.schools.values() if s.county == A
                and s.open_during(*period_dates(form, period))]

    def honest(when):
        known = [r for r in data.returns if r.hub <= when]
        listed = [r for r in current(known)
                  if r.form == form and r.period == period and r.county == A]
        got = [r for r in listed if r.school in expected]
        on_time = [r for r in got if first_received(known, form, period, r.school)
                   < deadline(form, period)]
        return listed, len(got), len(on_time)

    latest = t("2024-05-04T00:00")
    listed, received, on_time = honest(latest)
    early, early_received, early_on_time = honest(t("2024-04-29T00:00"))
    assert len(listed) == 3 and (received, on_time) == (3, 2) and len(early) == 1
    # the latest arrives first: the older versions get higher rollup_ids
    versions = [
        (latest, "final", received, on_time, [(r.id, r.sha256) for r in listed]),
        (t("2024-04-29T00:00"), "provisional", early_received, early_on_time,
         [(r.id, r.sha256) for r in early]),
        # wrong as well as stale: a hash the region does not hold, A2 left out
        (t("2024-05-02T00:00"), "provisional", 3, 3,
         [(r.id, "d" * 64) for r in listed if r.school is not data.schools["A2"]]),
        # the newest of all, but its signature did not verify: never the county's word
        (t("2024-05-06T00:00"), "final", 9, 9, []),
    ]
    try:
        for when, status, got, in_time, rows in versions:
            insert_rollup(db, data, A, form, period, when, status, len(expected), got, in_time,
                          rows)
        execute(db, "UPDATE rollups SET signature_verified = false WHERE county_id = %s "
                    "AND computed_at = %s", (A, t("2024-05-06T00:00")))
        ids = query(db, "SELECT rollup_id FROM rollups WHERE county_id = %s AND form = %s "
                        "AND period = %s ORDER BY computed_at", (A, form, period))
        assert [i for (i,) in ids] != sorted(i for (i,) in ids)

        want = (A, COUNTY_NAMES[A], "final", latest, len(expected), len(expected), received,
                received, on_time, on_time, len(listed), 0, 0, 0, 0, 0, True)
        rows = query(db, "SELECT * FROM rollup_integrity(%s, %s)", (form, period))
        assert rows[0] == want and [(r[0], r[2], r[16]) for r in rows[1:]] == [(B, None, None)]
        assert query(db, "SELECT * FROM rollup_integrity(%s, %s, %s)",
                     (form, period, A)) == [want]
        assert query(db, "SELECT county_id, computed_at, status FROM rollup_latest(%s, %s)",
                     (form, period)) == [(A, latest, "final")]
        for county in (None, A):
            assert query(db, "SELECT * FROM rollup_mismatches(%s, %s, %s)",
                         (form, period, county)) == []
        # what is kept for each county's latest roll-up follows every version written
        kept = query(db, "SELECT rollup_id, listed FROM rollup_checks WHERE county_id = %s "
                         "AND form = %s AND period = %s", (A, form, period))
        assert kept == [(ids[2][0], len(listed))] and kept_comparisons_drift(db) == []
        # once the wrong version is the latest verified one, it is judged
        execute(db, "DELETE FROM rollups WHERE county_id = %s AND computed_at >= %s",
                (A, latest))
        rows = query(db, "SELECT problem, count(*) FROM rollup_mismatches(%s, %s) GROUP BY 1 "
                         "ORDER BY 1", (form, period))
        assert rows == [("not_in_rollup", 1), ("sha256_differs", 2)]
        assert kept_comparisons_drift(db) == []
    finally:
        execute(db, "DELETE FROM rollups WHERE county_id = %s AND form = %s AND period = %s",
                (A, form, period))


# --- chain of custody -----------------------------------------------------------------------


def test_chain_of_custody(db, data, rollups):
    cols = ["submission_id", "county_id", "county_name", "school_id", "school_name", "form",
            "period", "payload_sha256", "signature_verified", "roster_version",
            "receipt_verified", "receipt_matches", "on_time", "school_created_at",
            "hub_received_at", "region_received_at", "supersedes", "superseded_by", "counts",
            "in_rollups", "findings", "batch_id"]

    def chain(r):
        rows = query(db, "SELECT * FROM chain_of_custody(%s)", (r.id,))
        assert len(rows) == 1
        return dict(zip(cols, rows[0]))

    orig, fix = data.a3_screening, data.a3_screening_fix
    c = chain(orig)
    assert (str(c["submission_id"]), c["county_id"], c["county_name"], c["school_id"],
            c["school_name"], c["form"], c["period"]) == (
        orig.id, A, "伊宁市", orig.school.id, orig.school.name, "screening", "2024-P1")
    assert c["payload_sha256"] == orig.sha256 == hashlib.sha256(orig.payload_bytes).hexdigest()
    assert c["signature_verified"] and c["roster_version"] == 2 and c["receipt_verified"]
    assert c["receipt_matches"] is True and c["on_time"] is True
    assert (c["school_created_at"], c["hub_received_at"], c["region_received_at"]) == (
        orig.created, orig.hub, orig.hub + dt.timedelta(minutes=3))
    assert c["supersedes"] is None and str(c["superseded_by"]) == fix.id
    assert c["counts"] is False and c["in_rollups"] == 1 and c["findings"] == 0
    c = chain(fix)
    assert str(c["supersedes"]) == orig.id and c["superseded_by"] is None and c["counts"]
    assert c["in_rollups"] == 0
    # listed by B's roll-up with another hash: not counted as covered
    assert chain(data.b1_screening)["in_rollups"] == 0
    # a receipt naming another payload hash does not match
    c = chain(data.b2_summary)
    assert c["receipt_matches"] is False and c["on_time"] is False
    # a finding about a return is shown with it
    execute(db, "INSERT INTO integrity_findings (county_id, kind, submission_id, detail) "
                "VALUES (%s, 'receipt_mismatch', %s, 'receipt names another hash')",
            (B, data.b2_summary.id))
    assert chain(data.b2_summary)["findings"] == 1
    assert query(db, "SELECT * FROM chain_of_custody(%s)", (str(uuid.uuid4()),)) == []


def test_jws_payload_reads_what_was_signed(db, data):
    r = data.returns[0]
    rows = query(db, "SELECT jws_payload(jws), jws_payload(receipt_jws) FROM submissions "
                     "WHERE submission_id = %s", (r.id,))
    assert rows[0][0] == r.payload and rows[0][1]["sha256"] == r.sha256
    assert query(db, "SELECT jws_payload('not a jws'), jws_payload('{\"payload\": 5}')") == [
        (None, None)]

"""The per-(form, period, county) figures (period_counts) and screening-coverage's school
list (screening_schools) that the transaction storing a batch of returns keeps current by
adding the difference the batch makes (schemas/region/009_incremental_counts.sql), checked
after every step of a sequence that changes them every way a county can: first returns,
resends, corrections (one into another period), late returns, returns of schools outside
the roster, screening figures that are missing, a return found unverified, one deleted, a
roster change, a deadline change, the calendar stored again as `migrate` does, a period not
in the calendar, a county whose roster comes after its returns, and rebuilds of the heads.

After each step, both tables must equal (a) a recount from scratch by the database
(period_counts_recount(), screening_schools_rebuild()) and (b) the same figures computed
here in Python from the returns, the rosters and the campaign file; the inspections that
read them are compared with (b) at the end. Each batch is one INSERT statement in one
transaction, as the ingest's one COPY, and the ordinary batches must be adjusted without any
recount.

Run from tests/integration by `make integration` (binaries built by `make`)."""

import datetime as dt
import shutil
from decimal import ROUND_HALF_UP, Decimal

import psycopg2
import psycopg2.extras
import pytest
from jwcrypto import jwk

from pgfixture import pg_server  # noqa: F401  (a fixture)
from test_region_db import (COLUMNS, PHASES, SCHEMAS, CAMPAIGN, Return, School, b64url_json,
                            current, deadline, example, month_range, query, region, row, sign, t)

A, B, C = "654201", "654202", "654203"
NAMES = {A: "伊宁市", B: "奎屯市", C: "霍城县"}
MONTHS = [f"2024-{m:02d}" for m in range(3, 12)]  # the campaign's months (migrate's event months)


def d(s):
    return dt.date.fromisoformat(s)


# --- the Python oracle ----------------------------------------------------------------------


def period_type(form):
    f = CAMPAIGN["forms"].get(form)
    return f and f["period_type"]


def calendar(world, form, period):
    """(start, end, deadline) of a period of the calendar as migrate stores it, or None."""
    kind = period_type(form)
    if kind == "phase" and period in PHASES:
        start, end = PHASES[period]
    elif kind in ("monthly", "event") and period in MONTHS:
        start, end = month_range(period)
    else:
        return None
    if kind == "event":
        return start, end, None
    return start, end, world.deadlines.get((form, period), deadline(form, period))


def json_int(v):
    """What the generated columns make of a member: a 32-bit integer, else None."""
    if isinstance(v, bool) or not isinstance(v, int) or not -2**31 <= v < 2**31:
        return None
    return v


def json_bool(v):
    return v if isinstance(v, bool) else None


def screening_figures(r):
    x = r.data if r.form == "screening" else {}
    return (json_int(x.get("students_enrolled")), json_int(x.get("students_screened")),
            json_bool(x.get("committee_established")),
            json_bool(x.get("reporting_channel_published")))


def coverage(enrolled, screened):
    if enrolled is None or screened is None or enrolled == 0:
        return None
    return (Decimal(screened) / Decimal(enrolled)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


class World:
    """What the database was told: the current rosters, the returns, a changed deadline."""

    def __init__(self):
        self.hub_keys = {c: jwk.JWK.generate(kty="OKP", crv="Ed25519") for c in NAMES}
        self.rosters = {}          # county -> (version, [School])
        self.returns = []
        self.deadlines = {}        # (form, period) -> a deadline changed in periods

    def heads(self):
        return [r for r in current(self.returns) if r.form != "incident"]

    def first_received(self, form, period, school_id):
        return min(r.hub for r in self.returns if r.verified and r.form == form
                   and r.period == period and r.school.id == school_id)

    def expected(self, county, cal):
        _, schools = self.rosters.get(county, (None, []))
        return {x.id: x for x in schools if cal and x.open_during(cal[0], cal[1])}

    def counts(self, form, period, county):
        """The period_counts row of a key, in the table's column order."""
        cal = calendar(self, form, period)
        expected = self.expected(county, cal)
        heads = [r for r in self.heads() if (r.form, r.period, r.county) == (form, period, county)]
        received = [r for r in heads if r.school.id in expected]
        on_time = [r for r in received if cal[2] is not None
                   and self.first_received(form, period, r.school.id) < cal[2]]
        figures = [screening_figures(r) for r in heads]
        enrolled = [f[0] for f in figures if f[0] is not None]
        screened = [f[1] for f in figures if f[1] is not None]
        return (form, period, county, len(expected), len(heads), len(received), len(on_time),
                sum(enrolled) if enrolled else None, sum(screened) if screened else None,
                sum(1 for f in figures if f[2] is False), sum(1 for f in figures if f[3] is False),
                len(enrolled), len(screened))

    def screening_rows(self):
        """The rows of screening_schools, sorted by their key."""
        out = {}
        for period in PHASES:
            cal = calendar(self, "screening", period)
            for county in NAMES:
                for x in self.expected(county, cal).values():
                    out[(period, county, x.id)] = (x.name, None, None, None, None, None, None)
        for r in self.heads():
            if r.form != "screening":
                continue
            _, roster = self.rosters.get(r.county, (None, []))
            name = next((x.name for x in roster if x.id == r.school.id), None)
            e, s, committee, channel = screening_figures(r)
            out[(r.period, r.county, r.school.id)] = (name, r.id, e, s, coverage(e, s), committee,
                                                       channel)
        return [(*k, *v) for k, v in sorted(out.items())]


# --- the database side ----------------------------------------------------------------------


def connect(dsn):
    conn = psycopg2.connect(dsn)
    psycopg2.extras.register_uuid(conn_or_curs=conn)
    return conn


def in_batch(dsn, sql, params=None):
    """Runs one statement in a transaction of its own, as the ingest stores a batch; returns
    the calls of the count functions it made (pg_stat_xact_user_functions)."""
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL track_functions = 'all'")
            if isinstance(params, list):
                psycopg2.extras.execute_values(cur, sql, params, page_size=len(params))
            else:
                cur.execute(sql, params)
            cur.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions "
                        "WHERE funcname IN ('period_counts_adjust', 'period_counts_recount')")
            return dict(cur.fetchall())
    finally:
        conn.close()


def store(dsn, world, returns):
    """One batch of returns: one INSERT of all of them, in one transaction."""
    world.returns.extend(returns)
    versions = {c: v for c, (v, _) in world.rosters.items()}
    return in_batch(dsn, f"INSERT INTO submissions ({COLUMNS}) VALUES %s",
                    [row(r, world.hub_keys[r.county], versions.get(r.county)) for r in returns])


def store_roster(dsn, world, county, version, schools):
    payload = {"type": "roster", "county_id": county, "version": version,
               "issued_at": f"2024-0{version + 1}-20T00:00:00+08:00",
               "schools": [{"school_id": x.id, "name": x.name} for x in schools]}
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO rosters (county_id, version, issued_at, jws) "
                        "VALUES (%s, %s, %s, %s)",
                        (county, version, payload["issued_at"],
                         sign(world.hub_keys[county], county, b64url_json(payload))))
            for x in schools:
                cur.execute("INSERT INTO roster_schools (county_id, version, school_id, name, "
                            "type, opened, closed, public_key) "
                            "VALUES (%s, %s, %s, %s, 'school', %s, %s, %s)",
                            (county, version, x.id, x.name, x.opened, x.closed,
                             x.key.export_public()))
    finally:
        conn.close()
    world.rosters[county] = (version, list(schools))


def recount_differences(dsn):
    """What a recount from scratch changes in period_counts and screening_schools (rolled
    back): rows only kept ("kept") and rows only recounted ("recounted")."""
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE kept_counts AS SELECT * FROM period_counts")
            cur.execute("CREATE TEMP TABLE kept_schools AS SELECT * FROM screening_schools")
            cur.execute("SELECT period_counts_recount(array_agg(form), array_agg(period), "
                        "array_agg(county_id)) FROM ("
                        " SELECT form, period, county_id FROM period_counts UNION"
                        " SELECT form, period, county_id FROM submission_current"
                        " WHERE NOT is_event) k")
            cur.execute("SELECT screening_schools_rebuild(NULL, NULL)")
            out = []
            for table, kept in (("period_counts", "kept_counts"),
                                ("screening_schools", "kept_schools")):
                cur.execute(f"(SELECT 'kept', * FROM {kept} EXCEPT SELECT 'kept', * FROM {table})"
                            f" UNION ALL (SELECT 'recounted', * FROM {table}"
                            f" EXCEPT SELECT 'recounted', * FROM {kept})")
                out += [(table, *r) for r in cur.fetchall()]
            return out
    finally:
        conn.rollback()
        conn.close()


def check(dsn, world, step):
    assert recount_differences(dsn) == [], step
    rows = {r[:3]: r for r in query(dsn, "SELECT * FROM period_counts")}
    # every key of the calendar in the counties with a roster, every key with a head
    keys = {(f, p, c) for f in CAMPAIGN["forms"] for p in [*PHASES, *MONTHS] for c in world.rosters
            if calendar(world, f, p)}
    keys |= {(r.form, r.period, r.county) for r in world.heads()}
    assert keys <= set(rows), (step, keys - set(rows))
    for k, got in sorted(rows.items()):
        assert got == world.counts(*k), (step, k)
    got = query(dsn, "SELECT * FROM screening_schools ORDER BY period, county_id, school_id")
    assert [(*r[:4], r[4] and str(r[4]), *r[5:]) for r in got] == world.screening_rows(), step


# --- the sequence ----------------------------------------------------------------------------


class OffCalendar(Return):
    """A return of a period the calendar does not have: the hub's receipt has no verdict."""

    def hub_on_time(self):
        return None


def scr(enrolled, screened, committee=True, channel=True):
    return dict(example("screening"), students_enrolled=enrolled, students_screened=screened,
                committee_established=committee, reporting_channel_published=channel)


@pytest.fixture(scope="module")
def db(pg_server):
    dsn = pg_server.new_database("region_counts")
    region("migrate", "--db", dsn, "--schemas-dir", SCHEMAS, check=0)
    return dsn


def test_counts_follow_every_batch(db):
    w = World()
    for county in NAMES:
        query(db, "INSERT INTO counties (county_id, name, hub_key) VALUES (%s, %s, %s)",
              (county, NAMES[county], w.hub_keys[county].export_public()))
    s = {
        "A1": School(A, "6542010001", "第一中学"),
        "A2": School(A, "6542010002", "第二中学"),
        "A3": School(A, "6542010003", "实验小学"),
        "A4": School(A, "6542010004", "第四小学", closed=d("2024-04-15")),
        "A5": School(A, "6542010005", "新区学校", opened=d("2024-06-01")),
        "X": School(A, "6542019999", "民办学校"),  # in A's roster from version 2 on
        "B1": School(B, "6542020001", "奎屯一中"),
        "B2": School(B, "6542020002", "奎屯二中"),
        "B3": School(B, "6542020003", "奎屯三小"),
        "C1": School(C, "6542030001", "霍城一中"),
    }
    store_roster(db, w, A, 1, [s["A1"], s["A2"], s["A3"], s["A4"], s["A5"]])
    store_roster(db, w, B, 1, [s["B1"], s["B2"], s["B3"]])
    check(db, w, "rosters")
    summary, inc = example("summary"), example("incident")
    P1, P2 = "2024-P1", "2024-P2"

    def ret(school, form, period, data, hub, kind=Return, **kw):
        return kind(s[school], form, period, data, t(hub) - dt.timedelta(minutes=5), t(hub), **kw)

    def batch(step, returns, recounts=0):
        calls = store(db, w, returns)
        assert calls.get("period_counts_adjust") == 1, (step, calls)
        assert calls.get("period_counts_recount", 0) == recounts, (step, calls)
        check(db, w, step)

    a1_sum = ret("A1", "summary", P1, summary, "2024-04-20T09:00")
    a2_sum = ret("A2", "summary", P1, summary, "2024-04-25T09:00")
    a2_scr = ret("A2", "screening", P1, scr(800, 800, committee=False), "2024-04-25T10:00")
    a1_inc = ret("A1", "incident", "2024-05", inc, "2024-05-03T09:10")
    b1_sum = ret("B1", "summary", P1, summary, "2024-04-21T09:00")
    b1_scr = ret("B1", "screening", P1, scr(300, 290, channel=False), "2024-04-21T10:00")
    batch("first returns", [
        a1_sum, a2_sum, b1_sum, a2_scr, b1_scr, a1_inc,
        ret("A1", "screening", P1, scr(1200, 1180), "2024-04-20T10:00"),
        ret("A1", "rectification", "2024-05", {"as_of": "2024-05-31", "items": []},
            "2024-06-01T09:00"),
    ])
    a1_resent = ret("A1", "summary", P1, dict(summary, parent_outreach=13), "2024-04-28T09:00")
    a2_scr_fix = ret("A2", "screening", P1, scr(800, 780), "2024-04-29T09:00",
                     supersedes=a2_scr)
    a3_scr = ret("A3", "screening", P1, scr("unknown", 400), "2024-04-27T09:00")
    batch("resends, corrections, outside the roster, a figure missing", [
        a1_resent, a2_scr_fix, a3_scr,
        ret("X", "summary", P1, summary, "2024-04-26T09:00"),
        ret("X", "screening", P1, scr(100, 90, committee="yes"), "2024-04-26T10:00"),
    ])
    batch("late returns, a correction after the deadline, an incident moved", [
        ret("A3", "summary", P1, summary, "2024-05-03T09:00"),
        ret("B2", "summary", P1, summary, "2024-05-02T09:00"),
        ret("B2", "screening", P1, scr(500, 0), "2024-05-05T09:00"),
        ret("A2", "summary", P1, dict(summary, training_sessions=9), "2024-05-04T09:00",
            supersedes=a2_sum),
        ret("A1", "incident", "2024-06", dict(inc, occurred_on="2024-06-01",
                                              discovered_on="2024-06-01",
                                              reported_on="2024-06-02"),
            "2024-06-02T09:00", supersedes=a1_inc),
        ret("A2", "rectification", "2024-05", {"as_of": "2024-05-31", "items": []},
            "2024-06-10T09:00"),
    ])
    batch("a correction into another period", [
        ret("B1", "summary", P2, summary, "2024-06-03T09:00", supersedes=b1_sum),
        ret("A1", "summary", P2, summary, "2024-06-03T10:00"),
    ])

    # a return found unverified: the one it corrected counts again
    calls = in_batch(db, "UPDATE submissions SET signature_verified = false "
                         "WHERE submission_id = %s", (a2_scr_fix.id,))
    a2_scr_fix.verified = False
    assert calls == {"period_counts_adjust": 1}, calls
    check(db, w, "a return unverified")
    calls = in_batch(db, "DELETE FROM submissions WHERE submission_id = %s", (b1_scr.id,))
    w.returns.remove(b1_scr)
    assert calls == {"period_counts_adjust": 1}, calls
    check(db, w, "a return deleted")

    # A's roster version 2: A3 leaves it, X joins it
    store_roster(db, w, A, 2, [s["A1"], s["A2"], s["A4"], s["A5"], s["X"]])
    check(db, w, "a new roster")
    batch("after the roster change", [
        ret("A3", "screening", P1, scr(450, 400), "2024-05-06T09:00", supersedes=a3_scr),
        ret("X", "summary", P1, summary, "2024-05-06T10:00"),
    ])

    # summary 2024-P1 due three days later: A4's return of 05-02 is on time, X's first not
    query(db, "UPDATE periods SET due_date = due_date + 3, deadline = deadline + interval '3 days'"
              " WHERE form = 'summary' AND period = %s", (P1,))
    w.deadlines[("summary", P1)] = deadline("summary", P1) + dt.timedelta(days=3)
    check(db, w, "a deadline changed")
    batch("after the deadline change", [
        ret("A4", "summary", P1, summary, "2024-05-02T09:00"),
        ret("A5", "summary", P1, summary, "2024-06-02T09:00"),  # not open during P1
    ])
    # migrate deletes and stores the calendar again: the deadline of the campaign file
    region("migrate", "--db", db, "--schemas-dir", SCHEMAS, check=0)
    w.deadlines.clear()
    check(db, w, "the calendar stored again")

    # screening 2024-P2 (optional): the sums go to NULL when no head gives a value, and back
    a1_p2 = ret("A1", "screening", P2, scr(1210, 1200), "2024-09-20T09:00")
    a2_p2 = ret("A2", "screening", P2, scr(800, "n/a", channel=None), "2024-09-20T10:00")
    batch("screening 2024-P2", [a1_p2, a2_p2])
    batch("no value left", [
        ret("A1", "screening", P2, scr("many", None), "2024-09-21T09:00", supersedes=a1_p2),
        ret("A2", "screening", P2, scr(None, "n/a"), "2024-09-21T10:00", supersedes=a2_p2),
    ])
    assert query(db, "SELECT heads, enrolled, screened, enrolled_heads FROM period_counts "
                     "WHERE form = 'screening' AND period = %s AND county_id = %s",
                 (P2, A)) == [(2, None, None, 0)]
    batch("a value again", [ret("A2", "screening", P2, scr(810, 0), "2024-09-22T10:00")])

    # a period not in the calendar is recounted (received and on time stay 0)
    batch("a period not in the calendar", [ret("A1", "summary", "2024-P9", summary,
                                               "2024-11-02T09:00", kind=OffCalendar)], recounts=1)
    batch("again", [ret("A1", "summary", "2024-P9", summary, "2024-11-03T09:00",
                        kind=OffCalendar)], recounts=1)
    # a county whose returns come before its roster
    # (the calendar's deadline coming back above recounted summary 2024-P1 in every county)
    c1 = ret("C1", "summary", P2, summary, "2024-06-22T09:00")
    batch("a county without a roster", [c1], recounts=1)
    store_roster(db, w, C, 1, [s["C1"]])
    check(db, w, "its roster")
    batch("and then", [ret("C1", "summary", P2, summary, "2024-06-23T09:00", supersedes=c1)])

    query(db, "SELECT submission_current_rebuild('screening')")
    check(db, w, "screening's heads rebuilt")
    query(db, "SELECT submission_current_rebuild()")
    check(db, w, "every head rebuilt")

    # what the inspections show, against the oracle
    for form, period in (("summary", P1), ("summary", P2), ("screening", P1),
                         ("rectification", "2024-05")):
        want = []
        for county in NAMES:
            _, e, _, got, on_time = w.counts(form, period, county)[2:7]
            want.append((county, NAMES[county], e, got, on_time, got - on_time, e - got))
        rows = query(db, "SELECT * FROM late_returns(%s, %s)", (form, period))
        assert [r[:7] for r in rows] == want, (form, period)
    for period in (P1, P2):
        want = []
        for county in NAMES:
            n = w.counts("screening", period, county)
            mine = [r for r in w.screening_rows() if r[:2] == (period, county)]
            want.append((county, NAMES[county], len(mine), n[4], n[7] or 0, n[8] or 0,
                         coverage(n[7], n[8]), n[9], n[10]))
        assert query(db, "SELECT * FROM screening_coverage(%s)", (period,)) == want, period


def test_migration_counts_the_heads_that_gave_a_value(pg_server, tmp_path):
    """009 on a database that already holds returns fills the new columns from them."""
    dsn = pg_server.new_database("region_counts_upgrade")
    before = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, before)
    for f in (before / "region").glob("*.sql"):
        if int(f.name[:3]) >= 9:
            f.unlink()
    region("migrate", "--db", dsn, "--schemas-dir", before, check=0)
    w = World()
    query(dsn, "INSERT INTO counties (county_id, name, hub_key) VALUES (%s, %s, %s)",
          (A, NAMES[A], w.hub_keys[A].export_public()))
    schools = [School(A, f"65420100{i:02d}", f"学校{i}") for i in range(1, 5)]
    store_roster(dsn, w, A, 1, schools[:3])
    figures = [(1200, 1180), ("?", 500), (None, None), (300, 290)]
    for x, (e, n) in zip(schools, figures):
        r = Return(x, "screening", "2024-P1", scr(e, n), t("2024-04-20T09:00"),
                   t("2024-04-20T09:05"))
        w.returns.append(r)
        query(dsn, f"INSERT INTO submissions ({COLUMNS}) VALUES "
                   "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
              row(r, w.hub_keys[A], 1))
    region("migrate", "--db", dsn, "--schemas-dir", SCHEMAS, check=0)
    assert query(dsn, "SELECT enrolled, screened, enrolled_heads, screened_heads "
                      "FROM period_counts WHERE form = 'screening' AND period = '2024-P1'") == [
        (1500, 1970, 2, 3)]
    check(dsn, w, "009 applied")

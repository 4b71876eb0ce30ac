"""The rows that overdue-rectification, follow-up and the incident queries read
(schemas/region/010_kept_items.sql): ledger_items (one row per open item of each current
rectification ledger) and incident_items (one row per current incident report), kept by
statement triggers on submission_current in the transaction that stores a return.

After every step of a sequence that changes them every way the region can (first returns,
corrections that supersede, a later ledger that moves the next as-of day of the earlier one,
the same rows sent again, deletes, a signature found bad, a rebuild of the heads), both
tables must equal (a) a recomputation from scratch written here in SQL from the stored
payloads (not from submission_current's open_items or next_ref_date) and (b) the items and
incidents that count by the Python oracle of test_region_db.py. The check is shown to catch
a missing trigger, and 010 applied to a database that already holds returns fills both.

Since 011_cheaper_triggers.sql one trigger function keeps both tables and the roll-up
comparisons of 008: heads updated in place every way (nothing copied, the next ledger's day
alone, the copied columns, the submission_id, many ways in one statement) and deleted must
leave the kept rows equal to 010's ledger_items_of() and incident_items_of() over the heads
as they stand, and rollup_checks to comparisons made afresh; 011 applied to a database kept
by 010 keeps its rows.

Run from tests/integration by `make integration` (binaries built by `make`)."""

import copy
import shutil

import psycopg2.errors
import pytest

from pgfixture import pg_server  # noqa: F401  (a fixture)
from test_region_db import (A, B, COUNTY_NAMES, SCHEMAS, DataSet, Return, current, execute,
                            d, insert_returns, insert_rollup, kept_comparisons_drift, query,
                            region, t)

LEDGER_COLUMNS = ("submission_id, county_id, school_id, period, ref_date, next_ref_date, "
                  "deadline, deadline_on, ref_on, item_id, category, source, problem, measure, "
                  "responsible_role, status")

# From scratch: each current ledger's items that are not done or verified and have a string
# deadline, with the as-of day of the school's next current ledger (ref_date, then period).
LEDGER_SCRATCH = """
WITH heads AS (
	SELECT h.submission_id, h.county_id, h.school_id, h.period, h.ref_date,
		lead(h.ref_date) OVER (PARTITION BY h.county_id, h.school_id
				       ORDER BY h.ref_date, h.period) AS next
	FROM submission_current h
	WHERE h.form = 'rectification' AND NOT h.is_event AND h.ref_date IS NOT NULL
)
SELECT h.submission_id, h.county_id, h.school_id, h.period, h.ref_date,
	coalesce(h.next, '9999-12-31'), it ->> 'deadline', (it ->> 'deadline')::date,
	h.ref_date::date, it ->> 'item_id', it ->> 'category', it ->> 'source',
	it ->> 'problem', it ->> 'measure', it ->> 'responsible_role', it ->> 'status'
FROM heads h
JOIN submissions s ON s.submission_id = h.submission_id
CROSS JOIN LATERAL jsonb_array_elements(s.payload -> 'data' -> 'items') AS it
WHERE coalesce(it ->> 'status', '') NOT IN ('done', 'verified')
	AND jsonb_typeof(it -> 'deadline') = 'string'
"""

INCIDENT_COLUMNS = ("submission_id, county_id, school_id, occurred_on, level, types, victims, "
                    "perpetrators, occurred_date, incident_ref, discovered_on, reported_on, "
                    "measures, status, closed_on")

INCIDENT_SCRATCH = """
SELECT s.submission_id, s.county_id, s.school_id, d ->> 'occurred_on', (d ->> 'level')::int,
	ARRAY(SELECT jsonb_array_elements_text(d -> 'types')),
	(d -> 'victims' ->> 'male')::int + (d -> 'victims' ->> 'female')::int,
	(d -> 'perpetrators' ->> 'male')::int + (d -> 'perpetrators' ->> 'female')::int,
	(d ->> 'occurred_on')::date, d ->> 'incident_ref', (d ->> 'discovered_on')::date,
	(d ->> 'reported_on')::date, ARRAY(SELECT jsonb_array_elements_text(d -> 'measures')),
	d ->> 'status', (d ->> 'closed_on')::date
FROM submission_current h
JOIN submissions s ON s.submission_id = h.submission_id
CROSS JOIN LATERAL (SELECT s.payload -> 'data' AS d) p
WHERE h.form = 'incident' AND h.is_event
"""


def differences(dsn, table, columns, scratch):
    """The rows of the kept table and of the recomputation that the other lacks."""
    return query(dsn, f"""
        (SELECT 'kept', {columns} FROM {table} EXCEPT ALL SELECT 'kept', * FROM ({scratch}) x)
        UNION ALL
        (SELECT 'scratch', * FROM ({scratch}) x EXCEPT ALL SELECT 'scratch', {columns}
         FROM {table})""")


def oracle_items(returns):
    """(submission_id, item_id, deadline) of the open items of the ledgers that count."""
    return sorted((r.id, it["item_id"], it["deadline"])
                  for r in current(returns) if r.form == "rectification"
                  for it in r.data["items"]
                  if it.get("status") not in ("done", "verified")
                  and isinstance(it.get("deadline"), str))


def oracle_incidents(returns):
    return sorted((r.id, r.data["level"]) for r in current(returns) if r.form == "incident")


def check(dsn, returns, step):
    assert differences(dsn, "ledger_items", LEDGER_COLUMNS, LEDGER_SCRATCH) == [], step
    assert differences(dsn, "incident_items", INCIDENT_COLUMNS, INCIDENT_SCRATCH) == [], step
    assert sorted((str(a), b, c) for a, b, c in query(
        dsn, "SELECT submission_id, item_id, deadline FROM ledger_items")) == \
        oracle_items(returns), step
    assert sorted((str(a), b) for a, b in query(
        dsn, "SELECT submission_id, level FROM incident_items")) == \
        oracle_incidents(returns), step
    # numbered 1.. in each ledger, as the items of open_items
    assert query(dsn, "SELECT submission_id FROM ledger_items GROUP BY submission_id "
                      "HAVING min(n) <> 1 OR max(n) <> count(*)") == [], step


# From submission_current as it stands, by 010's functions (what the triggers must keep
# when a head is updated in place, which the recomputation from payloads cannot follow).
HEADS = "ARRAY(SELECT submission_id FROM submission_current)"


def drift_from_heads(dsn):
    """The rows of the kept tables and of a recomputation from the heads that the other
    lacks, and the roll-up comparisons that differ from ones made now."""
    drift = []
    for table in ("ledger_items", "incident_items"):
        drift += query(dsn, f"""
            (SELECT 'kept', * FROM {table}
             EXCEPT ALL SELECT 'kept', * FROM {table}_of({HEADS}))
            UNION ALL
            (SELECT 'made', * FROM {table}_of({HEADS})
             EXCEPT ALL SELECT 'made', * FROM {table})""")
    return drift + kept_comparisons_drift(dsn)


def item(item_id, deadline, status):
    base = {"item_id": item_id, "category": "facilities", "source": "self_check",
            "problem": "监控盲区", "measure": "加装摄像头",
            "responsible_role": "总务主任",
            "found_on": "2024-04-01", "deadline": deadline, "status": status,
            "completed_on": "2024-07-01" if status in ("done", "verified") else None}
    return base


def new_database(pg_server, data, name, schemas=SCHEMAS):
    dsn = pg_server.new_database(name)
    region("migrate", "--db", dsn, "--schemas-dir", schemas, check=0)
    for county in (A, B):
        execute(dsn, "INSERT INTO counties (county_id, name, hub_key) VALUES (%s, %s, %s)",
                (county, COUNTY_NAMES[county], data.hub_keys[county].export_public()))
    data.store_rosters(dsn)
    return dsn


@pytest.fixture(scope="module")
def data():
    return DataSet()


def test_kept_items_follow_every_change(pg_server, data):
    dsn = new_database(pg_server, data, "region_kept_items")
    s = data.schools
    returns = copy.copy(data.returns)
    first = [r for r in returns if r.supersedes is None]
    check(dsn, [], "empty")
    insert_returns(dsn, first, data.hub_keys, data.roster_versions)
    check(dsn, first, "first returns")
    insert_returns(dsn, returns, data.hub_keys, data.roster_versions)
    check(dsn, returns, "corrections")
    assert query(dsn, "SELECT count(*) FROM ledger_items") != [(0,)]

    # A1's June ledger corrected (one item done, one added), then a July ledger: the June
    # ledger's items get a next as-of day, by the UPDATE of submission_current_order()
    june = next(r for r in returns if r.school is s["A1"] and r.form == "rectification"
                and r.period == "2024-06")
    fixed = Return(s["A1"], "rectification", "2024-06",
                   {"as_of": "2024-06-30",
                    "items": [item("R-002", "2024-06-30", "done"),
                              item("R-003", "2024-06-01", "in_progress"),
                              item("R-004", "2024-06-20", "open")]},
                   t("2024-07-05T09:00"), t("2024-07-05T09:01"), supersedes=june)
    july = Return(s["A1"], "rectification", "2024-07",
                  {"as_of": "2024-07-31",
                   "items": [item("R-003", "2024-06-01", "open"),
                             item("R-004", "2024-08-20", "open"),
                             item("R-005", 20240901, "open")]},
                  t("2024-08-02T09:00"), t("2024-08-02T09:01"))
    # an incident report corrected into a higher level
    a2_inc = next(r for r in returns if r.school is s["A2"] and r.form == "incident")
    raised = Return(s["A2"], "incident", a2_inc.period, dict(a2_inc.data, level=2),
                    t("2024-06-13T09:00"), t("2024-06-13T09:05"), supersedes=a2_inc)
    for r in (fixed, july, raised):
        returns.append(r)
        insert_returns(dsn, [r], data.hub_keys, data.roster_versions)
        check(dsn, returns, f"{r.form} {r.period}")
    assert query(dsn, "SELECT DISTINCT next_ref_date FROM ledger_items "
                      "WHERE submission_id = %s", (fixed.id,)) == [("2024-07-31",)]
    # the same rows again: nothing changes
    insert_returns(dsn, returns, data.hub_keys, data.roster_versions)
    check(dsn, returns, "sent again")

    # deletes: the July ledger (June's next day goes back), the incident correction
    for r in (july, raised):
        execute(dsn, "DELETE FROM submissions WHERE submission_id = %s", (r.id,))
        returns.remove(r)
        check(dsn, returns, f"deleted {r.form} {r.period}")
    assert query(dsn, "SELECT DISTINCT next_ref_date FROM ledger_items "
                      "WHERE submission_id = %s", (fixed.id,)) == [("9999-12-31",)]
    # a signature found bad: the ledger correction and an incident stop counting
    for r in (fixed, data.a3_moved):
        execute(dsn, "UPDATE submissions SET signature_verified = false "
                     "WHERE submission_id = %s", (r.id,))
        bad = copy.copy(r)
        bad.verified = False
        returns[returns.index(r)] = bad
        check(dsn, returns, f"unverified {r.form} {r.period}")
    # the heads rebuilt
    query(dsn, "SELECT submission_current_rebuild()")
    check(dsn, returns, "rebuilt")
    # what the inspections answer from the kept rows
    rows = query(dsn, "SELECT school_id, item_id, days_overdue FROM "
                      "overdue_rectification('2024-07-10', %s)", (A,))
    want = sorted((r.school.id, it["item_id"], (d("2024-07-10") - d(it["deadline"])).days)
                  for r in current(returns)
                  if r.form == "rectification" and r.county == A
                  and r.data["as_of"] <= "2024-07-10"
                  and not any(x.form == "rectification" and x.school is r.school
                              and r.data["as_of"] < x.data["as_of"] <= "2024-07-10"
                              for x in current(returns))
                  for it in r.data["items"]
                  if it.get("status") not in ("done", "verified")
                  and isinstance(it.get("deadline"), str) and it["deadline"] < "2024-07-10")
    assert sorted(rows) == want and want


def test_kept_rows_follow_updates_of_the_heads(pg_server, data):
    """Heads updated in place, one way at a time and many ways in one statement: an update
    that changes nothing the kept rows copy leaves them alone, one that moves only the next
    ledger's day moves it, any other change of what they copy rewrites them; deletes and
    a changed submission_id too. The roll-up comparisons follow the heads they read."""
    dsn = new_database(pg_server, data, "region_kept_updates")
    insert_returns(dsn, data.returns, data.hub_keys, data.roster_versions)
    ledgers = [str(x) for x, in query(
        dsn, "SELECT submission_id FROM submission_current "
             "WHERE jsonb_array_length(open_items) >= 1 ORDER BY submission_id")]
    incidents = [str(x) for x, in query(
        dsn, "SELECT submission_id FROM incident_items ORDER BY submission_id")]
    assert len(ledgers) >= 3 and len(incidents) >= 2
    # a roll-up of the first ledger's county, form and period listing its current returns
    county, form, period = query(dsn, "SELECT county_id, form, period FROM submission_current "
                                      "WHERE submission_id = %s", (ledgers[0],))[0]
    listed = [(str(i), h) for i, h in query(
        dsn, "SELECT submission_id, payload_sha256 FROM submission_current "
             "WHERE county_id = %s AND form = %s AND period = %s", (county, form, period))]
    insert_rollup(dsn, data, county, form, period, t("2024-12-01T00:00"), "final", 9, 9, 9,
                  listed)
    key = (county, form, period)
    assert query(dsn, "SELECT listed FROM rollup_checks WHERE (county_id, form, period) = "
                      "(%s, %s, %s)", key) == [(len(listed),)]
    assert drift_from_heads(dsn) == []

    def places():
        return query(dsn, "SELECT 'l', submission_id, n, ctid::text FROM ledger_items "
                          "UNION ALL SELECT 'i', submission_id, 0, ctid::text "
                          "FROM incident_items ORDER BY 1, 2, 3")

    def update(step, sql, params=None):
        execute(dsn, sql, params)
        assert drift_from_heads(dsn) == [], step

    # what no kept row copies: not a row rewritten
    before = places()
    update("nothing copied", "UPDATE submission_current SET on_time = NOT coalesce(on_time, "
           "false), first_received_at = first_received_at + interval '1 s', "
           "enrolled = 7 WHERE submission_id = ANY (%s::uuid[])", (ledgers + incidents,))
    assert places() == before
    update("empty update", "UPDATE submission_current SET level = 1 WHERE false")

    # the next ledger's day alone, there and back
    update("next day", "UPDATE submission_current SET next_ref_date = '2024-12-31' "
           "WHERE submission_id = %s", (ledgers[0],))
    assert query(dsn, "SELECT DISTINCT next_ref_date FROM ledger_items WHERE submission_id = "
                      "%s", (ledgers[0],)) == [("2024-12-31",)]
    update("next day gone", "UPDATE submission_current SET next_ref_date = NULL "
           "WHERE submission_id = %s", (ledgers[0],))
    assert query(dsn, "SELECT DISTINCT next_ref_date FROM ledger_items WHERE submission_id = "
                      "%s", (ledgers[0],)) == [("9999-12-31",)]

    # one statement, each head changed another way: the as-of day, the items (the first
    # one dropped), the next day, an incident's level, a listed return's hash
    update("many ways", """
        UPDATE submission_current SET
            ref_date = CASE WHEN submission_id = %(a)s THEN '2024-06-29' ELSE ref_date END,
            open_items = CASE WHEN submission_id = %(b)s THEN open_items - 0
                              ELSE open_items END,
            next_ref_date = CASE WHEN submission_id = %(c)s THEN '2025-01-31'
                                 ELSE next_ref_date END,
            level = CASE WHEN submission_id = %(i)s THEN 3 ELSE level END,
            payload_sha256 = CASE WHEN submission_id = %(a)s THEN repeat('0', 64)
                                  ELSE payload_sha256 END
        WHERE submission_id = ANY (%(all)s::uuid[])""",
           {"a": ledgers[0], "b": ledgers[1], "c": ledgers[2], "i": incidents[0],
            "all": ledgers[:3] + incidents[:1]})
    assert query(dsn, "SELECT DISTINCT ref_date FROM ledger_items WHERE submission_id = %s",
                 (ledgers[0],)) == [("2024-06-29",)]
    assert query(dsn, "SELECT level FROM incident_items WHERE submission_id = %s",
                 (incidents[0],)) == [(3,)]
    assert query(dsn, "SELECT listed_id::text FROM rollup_check_rows WHERE (county_id, form, "
                      "period) = (%s, %s, %s)", key) == [(ledgers[0],)]

    # a ledger's items gone, a head given another submission_id, and heads deleted
    update("items gone", "UPDATE submission_current SET open_items = NULL "
           "WHERE submission_id = %s", (ledgers[1],))
    assert query(dsn, "SELECT count(*) FROM ledger_items WHERE submission_id = %s",
                 (ledgers[1],)) == [(0,)]
    update("another id", "UPDATE submission_current SET submission_id = "
           "'01900000-0000-7000-8000-000000000001' WHERE submission_id = %s", (ledgers[2],))
    assert query(dsn, "SELECT count(*) FROM ledger_items WHERE submission_id = %s",
                 (ledgers[2],)) == [(0,)]
    assert query(dsn, "SELECT count(*) > 0 FROM ledger_items WHERE submission_id = "
                      "'01900000-0000-7000-8000-000000000001'") == [(True,)]
    # a listed head moved to another period: both keys' comparisons made again
    update("another period", "UPDATE submission_current SET period = '2099-01' "
           "WHERE submission_id = %s", (ledgers[0],))
    assert query(dsn, "SELECT DISTINCT period FROM ledger_items WHERE submission_id = %s",
                 (ledgers[0],)) == [("2099-01",)]
    update("deleted", "DELETE FROM submission_current WHERE submission_id = ANY (%s::uuid[])",
           ([ledgers[0], incidents[1]],))
    # listed, and no longer counting here
    assert (ledgers[0],) in query(dsn, "SELECT listed_id::text FROM rollup_check_rows "
                                       "WHERE (county_id, form, period) = (%s, %s, %s)", key)

    # the heads rebuilt from the returns: as they were
    query(dsn, "SELECT submission_current_rebuild()")
    check(dsn, data.returns, "rebuilt after updates")
    assert drift_from_heads(dsn) == []


@pytest.mark.parametrize("trigger", ["submission_current_kept_update",
                                     "submission_current_kept_insert",
                                     "submission_current_kept_delete"])
def test_check_catches_a_missing_trigger(pg_server, data, trigger):
    """Without one of the triggers the kept rows go wrong, and the check says so."""
    dsn = new_database(pg_server, data, f"region_kept_{trigger[-6:]}_{trigger[19:23]}")
    returns = copy.copy(data.returns)
    insert_returns(dsn, returns, data.hub_keys, data.roster_versions)
    check(dsn, returns, "before")
    execute(dsn, f"DROP TRIGGER {trigger} ON submission_current")
    s = data.schools
    later = Return(s["A1"], "rectification", "2024-07",
                   {"as_of": "2024-07-31", "items": [item("R-007", "2024-07-15", "open")]},
                   t("2024-08-02T09:00"), t("2024-08-02T09:01"))
    returns.append(later)
    insert_returns(dsn, [later], data.hub_keys, data.roster_versions)
    gone = next(r for r in returns if r.form == "incident" and r.school is s["B1"])
    execute(dsn, "DELETE FROM submissions WHERE submission_id = %s", (gone.id,))
    returns.remove(gone)
    with pytest.raises(AssertionError):
        check(dsn, returns, f"without {trigger}")


def test_migration_fills_the_kept_rows(pg_server, data, tmp_path):
    """010 on a database that already holds returns fills both tables from them."""
    before = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, before)
    for f in (before / "region").glob("*.sql"):
        if int(f.name[:3]) >= 10:
            f.unlink()
    dsn = new_database(pg_server, data, "region_kept_upgrade", schemas=before)
    insert_returns(dsn, data.returns, data.hub_keys, data.roster_versions)
    with pytest.raises(psycopg2.errors.UndefinedTable):
        query(dsn, "SELECT count(*) FROM ledger_items")
    region("migrate", "--db", dsn, "--schemas-dir", SCHEMAS, check=0)
    check(dsn, data.returns, "010 applied")
    assert query(dsn, "SELECT count(*) > 0 FROM ledger_items") == [(True,)]
    assert query(dsn, "SELECT count(*) > 0 FROM incident_items") == [(True,)]


def test_011_on_a_database_with_kept_rows(pg_server, data, tmp_path):
    """011 on a database kept by 010's triggers: the rows stay, and from then on the one
    trigger function of 011 keeps them."""
    before = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, before)
    for f in (before / "region").glob("*.sql"):
        if int(f.name[:3]) >= 11:
            f.unlink()
    dsn = new_database(pg_server, data, "region_kept_011", schemas=before)
    first = [r for r in data.returns if r.supersedes is None]
    insert_returns(dsn, first, data.hub_keys, data.roster_versions)
    check(dsn, first, "under 010")
    kept = query(dsn, "SELECT * FROM ledger_items ORDER BY submission_id, n")
    applied = region("migrate", "--db", dsn, "--schemas-dir", SCHEMAS, check=0)
    assert "(1 migration applied now)" in applied.stderr
    assert query(dsn, "SELECT * FROM ledger_items ORDER BY submission_id, n") == kept
    assert query(dsn, "SELECT tgname FROM pg_trigger WHERE tgrelid = "
                      "'submission_current'::regclass ORDER BY tgname") == [
        ("submission_current_kept_delete",), ("submission_current_kept_insert",),
        ("submission_current_kept_update",)]
    insert_returns(dsn, data.returns, data.hub_keys, data.roster_versions)
    check(dsn, data.returns, "corrections under 011")
    again = region("migrate", "--db", dsn, "--schemas-dir", SCHEMAS, check=0)
    assert "(0 migrations applied now)" in again.stderr

"""county-hub's figures and roll-ups (GET /v1/status, GET /v1/rollups, `county-hub status`,
approve/unapprove) checked against counts made here, independently, from the returns the
test sent: the roll-up is recomputed in Python from the form's schema
(hubfixture.independent_rollup), expected/received/on-time from the roster and the clock
the test chose.

The story (campaign calendar: summary 2024-P2 runs 2024-05-01..2024-09-30, due
2024-09-30, locks 30 days later; incident periods are months):
  A 2165000123 乌鲁木齐市第一中学  open            summary in June, then a correction
  B 2165000124 第二中学            open            summary in June, a late correction
  C 2165000125 第三小学            closed 05-01    never open in P2: not expected
  D 2165000126 Kashgar No. 4 …    closed 08-01    expected, never files: missing
  E 2165000127 伊宁市第五中学      opens 07-01     expected, files in October: late
"""

import json
import re
import uuid

import pytest

from hubfixture import (COUNTY_ID, SCHOOL_ID, Hub, county_jws_payload,  # noqa: F401
                        display_width, hub, independent_rollup, payload_bytes, submission,
                        verify_receipt)

JUNE = "2024-06-10T10:00:00+08:00"
OCTOBER = "2024-10-05T10:00:00+08:00"
DEADLINE = "2024-10-01T00:00:00+08:00"

A, B, C, D, E = SCHOOL_ID, "2165000124", "2165000125", "2165000126", "2165000127"
NAMES = {A: "乌鲁木齐市第一中学", B: "第二中学", C: "第三小学",
         D: "Kashgar No. 4 Middle School", E: "伊宁市第五中学"}


def summary_data(seed):
    return {
        "achievements": f"完成第{seed}轮排查。", "difficulties": "寄宿生夜间管理力量不足。",
        "next_steps": "增加宿舍巡查频次。",
        "incidents_by_level": {"level_1": seed, "level_2": seed % 3, "level_3": 0},
        "ledger_items_total": 10 + seed, "ledger_items_done": 5 + seed % 4,
        "ledger_items_overdue": seed % 2, "training_sessions": 2 * seed,
        "parent_outreach": 7 + seed, "principal_confirmed": seed % 2 == 0,
    }


def incident(school, occurred, discovered, reported, level, types, setting, victims,
             perpetrators, supersedes=None):
    p = submission("incident", period=occurred[:7], school_id=school, supersedes=supersedes)
    p["data"].update(occurred_on=occurred, discovered_on=discovered, reported_on=reported,
                     level=level, types=types, setting=setting,
                     victims={"female": victims[0], "male": victims[1]},
                     perpetrators={"female": perpetrators[0], "male": perpetrators[1]},
                     measures=["education", "police_referral"] if level == 3 else ["education"],
                     status="open", closed_on=None)
    return p


@pytest.fixture
def county(hub):
    """The hub of the story with its five schools; returns (hub, sent) where sent records
    what the test uploaded."""
    hub.add_school(B, NAMES[B])
    hub.add_school(C, NAMES[C], None, "--closed", "2024-05-01")
    hub.add_school(D, NAMES[D], None, "--closed", "2024-08-01")
    hub.add_school(E, NAMES[E], None, "--opened", "2024-07-01")
    return hub


def post_ok(hub, p):
    r = hub.post(p)
    assert r.status == 201, r
    return verify_receipt(hub, r.body, payload_bytes(p))


def run_story(hub):
    """Uploads the story's returns; returns the payloads that count and everything sent."""
    sent = {}
    hub.start(clock=JUNE)
    a1 = submission("summary", period="2024-P2", school_id=A, data=summary_data(1))
    a2 = submission("summary", period="2024-P2", school_id=A, data=summary_data(2),
                    supersedes=a1["submission_id"])
    b1 = submission("summary", period="2024-P2", school_id=B, data=summary_data(3))
    for p in (a1, a2, b1):
        assert post_ok(hub, p)["on_time"] is True
    # incidents of June: A has two events (the first corrected), B one
    i1 = incident(A, "2024-06-03", "2024-06-03", "2024-06-04", 2, ["physical", "verbal"],
                  "dormitory", (0, 1), (0, 2))
    i1c = incident(A, "2024-06-03", "2024-06-03", "2024-06-04", 3, ["physical"],
                   "dormitory", (0, 2), (0, 2), supersedes=i1["submission_id"])
    i2 = incident(A, "2024-06-01", "2024-06-02", "2024-06-05", 1, ["cyber"], "online",
                  (1, 0), (1, 1))  # reported 3 days after discovery: not timely
    i3 = incident(B, "2024-06-09", "2024-06-09", "2024-06-10", 2, ["verbal", "relational"],
                  "classroom", (1, 1), (0, 1))
    timely = {}
    for p in (i1, i1c, i2, i3):
        timely[p["submission_id"]] = post_ok(hub, p)["on_time"]
    assert timely[i2["submission_id"]] is False and timely[i3["submission_id"]] is True
    hub.stop()

    hub.start(clock=OCTOBER)
    e1 = submission("summary", period="2024-P2", school_id=E, data=summary_data(5))
    b2 = submission("summary", period="2024-P2", school_id=B, data=summary_data(4),
                    supersedes=b1["submission_id"])
    for p in (e1, b2):
        assert post_ok(hub, p)["on_time"] is False
    sent.update(summary=[a1, a2, b1, e1, b2], incidents=[i1, i1c, i2, i3], timely=timely)
    return sent


def expected_figures(sent):
    """What the county's figures must be, counted here from what was sent."""
    counting = [p for p in sent["summary"]
                if not any(q["supersedes"] == p["submission_id"] for q in sent["summary"])]
    assert {p["school_id"] for p in counting} == {A, B, E}
    return counting


def test_status_and_rollup_match_an_independent_count(county):
    sent = run_story(county)
    counting = expected_figures(sent)

    r = county.get("/v1/status?form=summary&period=2024-P2")
    assert r.status == 200 and r.headers["content-type"] == "application/json", r
    status = r.json()
    assert status == {
        "county_id": COUNTY_ID, "form": "summary", "period": "2024-P2", "period_type": "phase",
        "required": True, "start": "2024-05-01", "end": "2024-09-30", "due_date": "2024-09-30",
        "deadline": DEADLINE, "status": "provisional", "as_of": OCTOBER,
        # C never open during P2; D open until 07-31, E from 07-01
        "expected": 4, "received": 3, "on_time": 2, "late": 1, "missing": 1,
        "completeness": 0.75, "timeliness": 0.5,
        "late_schools": [{"school_id": E, "name": NAMES[E], "received_at": OCTOBER}],
        "missing_schools": [{"school_id": D, "name": NAMES[D]}],
    }

    r = county.get("/v1/rollups?form=summary&period=2024-P2")
    assert r.status == 200, r
    rollup = r.json()
    assert rollup["type"] == "rollup" and rollup["county_id"] == COUNTY_ID
    assert (rollup["form"], rollup["period"], rollup["status"]) == ("summary", "2024-P2",
                                                                    "provisional")
    assert (rollup["expected"], rollup["received"], rollup["on_time"]) == (4, 3, 2)
    assert rollup["missing"] == [D]
    assert rollup["rollup"] == independent_rollup("summary", [p["data"] for p in counting])
    # the member order of docs/FORMS-FORMAT.md: returns first, then schema order
    assert list(rollup["rollup"]) == ["returns", "incidents_by_level", "ledger_items_total",
                                      "ledger_items_done", "ledger_items_overdue",
                                      "training_sessions", "parent_outreach",
                                      "principal_confirmed"]
    import hashlib
    assert sorted(rollup["submissions"], key=lambda s: s["submission_id"]) == sorted(
        ({"submission_id": p["submission_id"],
          "sha256": hashlib.sha256(payload_bytes(p)).hexdigest()} for p in counting),
        key=lambda s: s["submission_id"])


def test_event_form_counts_events_without_expected(county):
    sent = run_story(county)
    incidents = sent["incidents"]
    counting = [p for p in incidents
                if not any(q["supersedes"] == p["submission_id"] for q in incidents)]
    assert len(counting) == 3  # i1c replaces i1: still one event
    on_time = sum(1 for p in counting if sent["timely"][p["submission_id"]])

    status = county.get("/v1/status?form=incident&period=2024-06").json()
    assert status["period_type"] == "event" and status["required"] is False
    assert status["due_date"] is None and status["deadline"] is None
    assert (status["expected"], status["missing"]) == (None, None)
    assert (status["completeness"], status["timeliness"]) == (None, None)
    assert (status["received"], status["on_time"], status["late"]) == (3, on_time, 3 - on_time)
    assert status["late_schools"] is None and status["missing_schools"] is None

    rollup = county.get("/v1/rollups?form=incident&period=2024-06").json()
    assert rollup["expected"] is None and rollup["missing"] == []
    assert (rollup["received"], rollup["on_time"]) == (3, on_time)
    assert rollup["rollup"] == independent_rollup("incident", [p["data"] for p in counting])
    assert rollup["rollup"]["level"] == {"1": 1, "2": 1, "3": 1}
    assert {s["submission_id"] for s in rollup["submissions"]} == {
        p["submission_id"] for p in counting}

    # an empty period: nothing received, every expected school missing (D closed before)
    status = county.get("/v1/status?form=summary&period=2024-P3").json()
    assert (status["expected"], status["received"], status["missing"]) == (3, 0, 3)
    assert status["completeness"] == 0 and status["late_schools"] == []
    assert [s["school_id"] for s in status["missing_schools"]] == [A, B, E]
    rollup = county.get("/v1/rollups?form=summary&period=2024-P3").json()
    assert rollup["rollup"] == independent_rollup("summary", [])
    assert rollup["submissions"] == []

    # an optional period (re-screening in P2): nobody is expected, so nobody is missing
    status = county.get("/v1/status?form=screening&period=2024-P2").json()
    assert status["required"] is False and status["period_type"] == "phase"
    assert (status["expected"], status["received"], status["missing"]) == (None, 0, None)
    assert (status["completeness"], status["timeliness"]) == (None, None)
    assert status["missing_schools"] == [] and status["late_schools"] == []


def test_bad_queries_are_400(county):
    county.start(clock=JUNE)
    for path in ("/v1/status", "/v1/status?form=summary", "/v1/rollups?period=2024-P2",
                 "/v1/status?form=drowning&period=2024-P2",
                 "/v1/rollups?form=summary&period=2024-05",
                 "/v1/status?form=incident&period=2024-P1",
                 "/v1/status?form=summary&period=2024-P9",
                 "/v1/rollups?form=&period="):
        r = county.get(path)
        assert r.status == 400, (path, r)
        body = r.json()
        assert body["error"] == "bad_request" and body["message"], body
    r = county.request("POST", "/v1/status?form=summary&period=2024-P2", b"")
    assert r.status == 405 and "GET" in r.headers["allow"]


def data_rows(text):
    """The table's lines from its header line on, split at runs of two or more spaces,
    each field with the display column it starts at."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SCHOOL"))
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        fields, col, pos = [], 0, 0
        for m in re.finditer(r"\S+(?: \S+)*", line):
            col += display_width(line[pos:m.start()])
            fields.append((col, m.group()))
            col += display_width(m.group())
            pos = m.end()
        rows.append(fields)
    return rows


def test_terminal_table_aligns_chinese_names(county):
    sent = run_story(county)
    county.stop()
    proc = county.cmd("status", "--form", "summary", "--period", "2024-P2", clock=OCTOBER)
    text = proc.stdout.decode()
    assert "expected       4" in text and "completeness 75.0%" in text, text
    assert "timeliness   50.0%" in text and "missing        1" in text, text
    rows = data_rows(text)
    header, body = rows[0], rows[1:]
    assert [f[1] for f in header] == ["SCHOOL", "NAME", "STATUS", "FIRST RECEIVED"]
    # the 催报 list first: missing, then late, then on time
    assert [r[0][1] for r in body] == [D, E, A, B], text
    assert [r[2][1] for r in body] == ["missing 未报", "late 迟报", "on time 按时",
                                       "on time 按时"]
    for r in body:
        assert r[1][1] == NAMES[r[0][1]]
    # every column starts at the same display column on every line
    for column in range(4):
        starts = {r[column][0] for r in rows}
        assert len(starts) == 1, (column, rows)
    # B's first return (June) makes it on time although its correction came in October
    assert body[3][3][1] == JUNE and body[1][3][1] == OCTOBER and body[0][3][1] == "-"

    # --json is the document of GET /v1/status
    doc = json.loads(county.cmd("status", "--form", "summary", "--period", "2024-P2",
                                "--json", clock=OCTOBER).stdout)
    county.start(clock=OCTOBER)
    assert doc == county.get("/v1/status?form=summary&period=2024-P2").json()

    # events: one line per school that had one
    text = county.cmd("status", "--form", "incident", "--period", "2024-06",
                      clock=OCTOBER).stdout.decode()
    rows = data_rows(text)
    assert [f[1] for f in rows[0]] == ["SCHOOL", "NAME", "EVENTS", "ON TIME", "LATE"]
    events = {}
    for p in sent["incidents"]:
        if not any(q["supersedes"] == p["submission_id"] for q in sent["incidents"]):
            n, timely = events.get(p["school_id"], (0, 0))
            events[p["school_id"]] = (n + 1, timely + bool(sent["timely"][p["submission_id"]]))
    assert {r[0][1]: (int(r[2][1]), int(r[3][1])) for r in rows[1:]} == events
    assert events == {A: (2, 0), B: (1, 1)}
    for column in range(2):
        assert len({r[column][0] for r in rows}) == 1, rows

    proc = county.cmd("status", "--form", "summary", "--period", "2024-13", check=False)
    assert proc.returncode != 0 and b"not a period" in proc.stderr

    # without --form: every form that has the period
    docs = json.loads(county.cmd("status", "--period", "2024-06", "--json",
                                 clock=OCTOBER).stdout)
    assert [d["form"] for d in docs] == ["incident", "rectification"]
    assert docs[0] == county.get("/v1/status?form=incident&period=2024-06").json()
    text = county.cmd("status", "--period", "2024-06", clock=OCTOBER).stdout.decode()
    assert "incident 2024-06" in text and "rectification 2024-06" in text
    proc = county.cmd("status", "--period", "2025-01", check=False)
    assert proc.returncode != 0 and b"no form has a period" in proc.stderr


def test_approve_makes_the_rollup_final_and_queues_it(county):
    sent = run_story(county)
    counting = expected_figures(sent)

    def pending_rollups():
        return county.query("SELECT id, body FROM outbox WHERE kind = 'rollup'"
                            " AND ref = 'summary/2024-P2' AND done_ms IS NULL")

    # uploads leave one roll-up queued, behind the returns it covers, to be computed
    # when forwarded
    [(marker_id, body)] = pending_rollups()
    assert body is None
    last_return = county.query("SELECT max(o.id) FROM outbox o JOIN submissions s"
                               " ON o.ref = s.submission_id WHERE s.form = 'summary'")[0][0]
    assert marker_id > last_return

    county.cmd("approve", "--form", "summary", "--period", "2024-P2", clock=OCTOBER)
    rollup = county.get("/v1/rollups?form=summary&period=2024-P2").json()
    assert rollup["status"] == "final"
    assert county.get("/v1/status?form=summary&period=2024-P2").json()["status"] == "final"
    [(final_id, body)] = pending_rollups()
    assert final_id > marker_id
    signed = county_jws_payload(county, body)
    assert set(signed) == {"type", "county_id", "form", "period", "status", "computed_at",
                           "expected", "received", "on_time", "rollup", "submissions",
                           "missing"}
    assert (signed["status"], signed["expected"], signed["received"], signed["on_time"]) == (
        "final", 4, 3, 2)
    assert signed["rollup"] == independent_rollup("summary", [p["data"] for p in counting])
    assert signed["missing"] == [D]
    assert signed["computed_at"] == OCTOBER

    # reopening replaces it: at most one pending roll-up per (form, period), and it has a
    # later computed_at although the clock is fixed, so the region keeps both apart
    county.cmd("unapprove", "--form", "summary", "--period", "2024-P2", clock=OCTOBER)
    [(reopened_id, body)] = pending_rollups()
    assert reopened_id > final_id
    signed = county_jws_payload(county, body)
    assert signed["status"] == "provisional"
    assert signed["computed_at"] == "2024-10-05T10:00:00.001+08:00"
    assert county.get("/v1/rollups?form=summary&period=2024-P2").json()["status"] == \
        "provisional"
    # approving twice changes nothing the second time
    county.cmd("approve", "--form", "summary", "--period", "2024-P2", clock=OCTOBER)
    county.cmd("approve", "--form", "summary", "--period", "2024-P2", clock=OCTOBER)
    [(again_id, body)] = pending_rollups()
    assert county_jws_payload(county, body)["computed_at"] == "2024-10-05T10:00:00.002+08:00"
    assert county.query("SELECT count(*) FROM rollup_stamps") == [(1,)]


def test_a_new_upload_moves_the_pending_rollup_behind_it(county):
    county.start(clock=JUNE)
    ids = []
    for school in (A, B):
        p = submission("summary", period="2024-P2", school_id=school, data=summary_data(1))
        post_ok(county, p)
        ids.append(p["submission_id"])
        rows = county.query("SELECT kind, ref FROM outbox WHERE kind IN ('submission', 'rollup')"
                            " AND done_ms IS NULL ORDER BY id")
        assert rows[-1] == ("rollup", "summary/2024-P2"), rows
        assert [r for r in rows if r[0] == "rollup"] == [("rollup", "summary/2024-P2")]
    rows = county.query("SELECT kind, ref FROM outbox WHERE kind IN ('submission', 'rollup')"
                        " ORDER BY id")
    assert rows == [("submission", ids[0]), ("submission", ids[1]),
                    ("rollup", "summary/2024-P2")]
    assert uuid.UUID(ids[0])

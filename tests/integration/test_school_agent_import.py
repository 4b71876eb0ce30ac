"""school-agent import: CSV files as Excel saves them (UTF-8 with or without a BOM,
GB18030, CRLF, quoted fields holding commas, quotes and line breaks), with English or
Chinese column headers (docs/CSV-IMPORT.md). The queued returns are read back and
verified with python3-jwcrypto."""

import json
import os
import random
import re
import signal
import subprocess
import time

import pytest
from jwcrypto import jws

from agentfixture import (BINARY, EX_DATAERR, EX_OK, EX_USAGE, load_return,  # noqa: F401
                          offline_agent)

INCIDENT_EN = [
    "incident_ref", "occurred_on", "discovered_on", "reported_on", "level", "types",
    "setting", "grade_band", "victims.female", "victims.male", "perpetrators.female",
    "perpetrators.male", "measures", "parents_notified", "psychological_support", "status",
    "closed_on", "summary"]
INCIDENT_ZH = [
    "学校事件编号", "发生日期", "发现日期", "报告日期", "情节层级", "欺凌类型", "发生场所", "学段",
    "被欺凌学生数.女", "被欺凌学生数.男", "实施欺凌学生数.女", "实施欺凌学生数.男", "处置措施",
    "已通知家长", "已提供心理辅导", "处置状态", "结案日期", "事件概述"]
ROWS = [
    ["2024-017", "2024-05-02", "2024-05-02", "2024-05-03", "2", "physical;verbal", "dormitory",
     "junior", "0", "1", "0", "2", "education、discipline", "TRUE", "TRUE", "open", "",
     '"课间在宿舍发生推搡，已分别谈话, 并通知家长。"'],
    ["2024-018", "2024/5/1", "2024-5-2", "2024-05-03", "1", "verbal", "classroom",
     "primary_high", "1", "0", "1", "0", "education", "是", "否", "closed", "2024/05/03",
     '"第一行\r\n第二行，含""引号"""'],
]
EXPECTED = [
    {"incident_ref": "2024-017", "occurred_on": "2024-05-02", "discovered_on": "2024-05-02",
     "reported_on": "2024-05-03", "level": 2, "types": ["physical", "verbal"],
     "setting": "dormitory", "grade_band": "junior", "victims": {"female": 0, "male": 1},
     "perpetrators": {"female": 0, "male": 2}, "measures": ["education", "discipline"],
     "parents_notified": True, "psychological_support": True, "status": "open",
     "closed_on": None, "summary": "课间在宿舍发生推搡，已分别谈话, 并通知家长。"},
    {"incident_ref": "2024-018", "occurred_on": "2024-05-01", "discovered_on": "2024-05-02",
     "reported_on": "2024-05-03", "level": 1, "types": ["verbal"], "setting": "classroom",
     "grade_band": "primary_high", "victims": {"female": 1, "male": 0},
     "perpetrators": {"female": 1, "male": 0}, "measures": ["education"],
     "parents_notified": True, "psychological_support": False, "status": "closed",
     "closed_on": "2024-05-03", "summary": "第一行\n第二行，含\"引号\""},
]


def csv_text(header, rows):
    return "\r\n".join(",".join(r) for r in [header] + rows) + "\r\n"


def queued_payloads(a, ids):
    out = []
    for sid in ids:
        token = jws.JWS()
        token.deserialize((a.dir / "outbox" / f"{sid}.jws").read_text())
        token.verify(a.public_key())
        out.append(json.loads(token.payload))
    return out


def run_import(a, tmp_path, name, data, *args):
    path = tmp_path / name
    path.write_bytes(data)
    return a.run("import", *args, path), path


@pytest.mark.parametrize("header,encoding,bom,flag", [
    (INCIDENT_EN, "utf-8", False, None),
    (INCIDENT_EN, "utf-8", True, None),
    (INCIDENT_ZH, "utf-8", True, "utf-8"),
    (INCIDENT_ZH, "gb18030", False, None),
    (INCIDENT_ZH, "gb18030", False, "gb18030"),
], ids=["en-utf8", "en-utf8-bom", "zh-utf8-bom", "zh-gb18030-guessed", "zh-gb18030"])
def test_import_incidents(offline_agent, tmp_path, header, encoding, bom, flag):
    a = offline_agent
    data = csv_text(header, ROWS).encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    args = ["--form", "incident"] + (["--encoding", flag] if flag else [])
    r, _ = run_import(a, tmp_path, "incidents.csv", data, *args)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    ids = r.stdout.split()
    assert len(ids) == 2 and sorted(ids) == a.outbox()
    payloads = queued_payloads(a, ids)
    assert [p["data"] for p in payloads] == EXPECTED
    assert all(p["period"] == "2024-05" and p["form"] == "incident" for p in payloads)


def test_import_errors_name_line_and_column(offline_agent, tmp_path):
    a = offline_agent
    rows = [list(ROWS[0]), list(ROWS[0]), list(ROWS[1]), list(ROWS[0])]
    rows[0][8] = "-1"                   # line 2: victims.female below 0
    rows[1][4] = "two"                  # line 3: level not a number
    rows[1][13] = "maybe"               # line 3: not a yes/no
    rows[2][17] = '"电话\r\n13800138000"'  # lines 4-5 (a quoted line break): privacy
    rows[3][5] = "fighting"             # line 6: not a type
    r, path = run_import(a, tmp_path, "bad.csv", csv_text(INCIDENT_ZH, rows).encode(),
                         "--form", "incident")
    assert r.returncode == EX_DATAERR, r.stdout + r.stderr
    out = r.stdout
    assert f"{path}: line 2, column 9 (被欺凌学生数.女): must be >= 0, got -1 (minimum)" in out
    assert f"{path}: line 3, column 5 (情节层级): 'two' is not a whole number" in out
    assert f"{path}: line 3, column 14 (已通知家长): 'maybe' is not yes or no" in out
    assert f"{path}: line 4, column 18 (事件概述): contains what looks like a mobile phone " \
           "number" in out
    assert f"{path}: line 6, column 6 (欺凌类型): must be one of" in out
    assert "nothing was queued" in r.stderr
    assert a.outbox() == []


def test_import_checks_rules_and_period(offline_agent, tmp_path):
    a = offline_agent
    rows = [list(ROWS[0]), list(ROWS[0])]
    rows[0][2] = "2024-04-30"  # discovered before it occurred
    rows[1][1] = rows[1][2] = "2024-06-01"
    rows[1][3] = "2024-06-02"
    r, path = run_import(a, tmp_path, "bad.csv", csv_text(INCIDENT_EN, rows).encode(),
                         "--form", "incident", "--period", "2024-05")
    assert r.returncode == EX_DATAERR
    assert f"{path}: line 2, column 2 (occurred_on): the incident cannot be discovered " \
           "before it occurred" in r.stdout
    assert f"{path}: line 3, column 2 (occurred_on): the period of this incident is 2024-06" \
        in r.stdout
    assert a.outbox() == []


@pytest.mark.parametrize("text,message", [
    ('incident_ref,level\n2024-01,"2\n', "line 3, column 1: the quoted field opened at line 2, "
                                          "column 9 is never closed"),
    ('incident_ref,level\n20"24,2\n', "line 2, column 3: a quote inside an unquoted field"),
    ('incident_ref,level\n"2024"x,2\n', "line 2, column 7: text after the closing quote"),
    ("incident_ref,bogus\n2024,1\n", "line 1, column 2 (bogus): unknown column"),
    ("incident_ref,incident_ref\n2024,1\n", "line 1, column 2 (incident_ref): the same field "
                                            "as column 1"),
    ("victims\n1\n", "line 1, column 1 (victims): unknown column"),
    ("", "the file is empty"),
])
def test_import_refuses_malformed_files(offline_agent, tmp_path, text, message):
    a = offline_agent
    r, path = run_import(a, tmp_path, "bad.csv", text.encode(), "--form", "incident")
    assert r.returncode == EX_DATAERR, r.stdout + r.stderr
    assert f"{path}: {message}" in r.stdout, r.stdout
    assert a.outbox() == []


def test_import_wrong_encoding_names_the_place(offline_agent, tmp_path):
    a = offline_agent
    data = csv_text(INCIDENT_ZH, ROWS).encode("gb18030")
    r, path = run_import(a, tmp_path, "gb.csv", data, "--form", "incident", "--encoding",
                         "utf-8")
    assert r.returncode == EX_DATAERR
    assert re.search(rf"^{re.escape(str(path))}: line 1, column \d+: not valid UTF-8", r.stdout)
    assert a.run("import", "--form", "incident", "--encoding", "latin1", path).returncode == \
        EX_USAGE


def test_import_rectification_groups_items_by_as_of(offline_agent, tmp_path):
    a = offline_agent
    header = ["as_of", "事项编号", "found_on", "source", "category", "problem", "measure",
              "responsible_role", "deadline", "status", "completed_on"]
    rows = [
        ["2024-04-30", "R-001", "2024-04-10", "screening", "facility", "教学楼东侧楼梯间存在监控盲区",
         "加装监控并纳入值班巡查", "safety_officer", "2024-05-31", "in_progress", ""],
        ["2024-04-30", "R-002", "2024-04-12", "inspection", "supervision", "宿舍夜间巡查不足",
         '"增加巡查, 每晚两次"', "vice_principal", "2024-05-31", "open", ""],
        ["2024-05-31", "R-001", "2024-04-10", "screening", "facility", "教学楼东侧楼梯间存在监控盲区",
         "加装监控并纳入值班巡查", "safety_officer", "2024-05-31", "done", "2024-05-20"],
        [",,,,,,,,,"],  # an empty row Excel leaves at the end
    ]
    r, _ = run_import(a, tmp_path, "ledger.csv",
                      b"\xef\xbb\xbf" + csv_text(header, rows).encode(), "--form",
                      "rectification")
    assert r.returncode == EX_OK, r.stdout + r.stderr
    payloads = queued_payloads(a, r.stdout.split())
    assert [(p["period"], p["data"]["as_of"], [i["item_id"] for i in p["data"]["items"]])
            for p in payloads] == [("2024-04", "2024-04-30", ["R-001", "R-002"]),
                                   ("2024-05", "2024-05-31", ["R-001"])]
    assert payloads[0]["data"]["items"][1]["measure"] == "增加巡查, 每晚两次"
    assert payloads[0]["data"]["items"][0]["completed_on"] is None
    # an error in an item names its own line
    rows[2][10] = ""
    r, path = run_import(a, tmp_path, "ledger2.csv", csv_text(header, rows[:3]).encode(),
                         "--form", "rectification")
    assert r.returncode == EX_DATAERR
    assert f"{path}: line 4, column 11 (completed_on): a done or verified item needs its " \
           "completion date" in r.stdout
    # one return per month: a second as_of in the same month is refused
    rows[2][0], rows[2][10] = "2024-04-29", "2024-05-20"
    r, path = run_import(a, tmp_path, "ledger3.csv", csv_text(header, rows[:3]).encode(),
                         "--form", "rectification")
    assert r.returncode == EX_DATAERR and "a second rectification return for 2024-04" in r.stdout


def test_import_phase_form_needs_a_period(offline_agent, tmp_path):
    a = offline_agent
    data = load_return("screening")
    header = ["students_enrolled", "students_screened", "risk_cases_found"] + \
        [f"风险个案按类型.{zh}" for zh in ("肢体", "言语", "关系/孤立", "网络", "财物/勒索")] + \
        [k for k in data if k not in ("students_enrolled", "students_screened",
                                      "risk_cases_found", "risk_cases_by_type")]
    row = [str(data["students_enrolled"]), str(data["students_screened"]),
           str(data["risk_cases_found"])] + \
        [str(data["risk_cases_by_type"][k]) for k in ("physical", "verbal", "relational",
                                                       "cyber", "property")] + \
        [str(data[k]).lower() for k in header[8:]]
    text = csv_text(header, [row]).encode()
    r, path = run_import(a, tmp_path, "screening.csv", text, "--form", "screening")
    assert r.returncode == EX_DATAERR and "--period" in r.stdout
    r, _ = run_import(a, tmp_path, "screening.csv", text, "--form", "screening", "--period",
                      "2024-P1")
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert queued_payloads(a, r.stdout.split())[0]["data"] == data
    r, _ = run_import(a, tmp_path, "two.csv", csv_text(header, [row, row]).encode(), "--form",
                      "screening", "--period", "2024-P1")
    assert r.returncode == EX_DATAERR and "a second screening return for 2024-P1" in r.stdout


# ---------------------------------------------------------------- large files, crashes

def incident_rows(n, first=0, summary="课间在宿舍发生推搡，已分别谈话并通知家长。班主任跟进。" * 18,
                  yes="是", no="否"):
    """n valid incident rows (English columns), each about 1.6 KB with its summary."""
    rows = []
    for i in range(first, first + n):
        day = 1 + i % 28
        rows.append([f"BIG-{i:06d}", f"2024-05-{day:02d}", f"2024-05-{day:02d}",
                     f"2024-05-{day:02d}", "1", "verbal", "classroom", "junior", "1", "0", "0",
                     "1", "education", yes, no, "open", "", summary])
    return rows


def test_import_of_a_large_file_reads_it_in_pieces(offline_agent, tmp_path):
    """A file of several pieces (the import reads about 512 KiB at a time, cut at a record
    boundary): quoted fields with line breaks and commas across the cuts, and a problem
    far into the file named by its physical line."""
    a = offline_agent
    rows = incident_rows(1500)
    for i in range(0, 1500, 7):  # quoted, with a line break and a comma: 2 physical lines
        rows[i][17] = '"' + rows[i][17][:200] + '\r\n第二行, 含""引号"""'
    r, path = run_import(a, tmp_path, "big.csv", csv_text(INCIDENT_EN, rows).encode(),
                         "--form", "incident")
    assert r.returncode == EX_OK, r.stdout[-2000:] + r.stderr[-2000:]
    ids = r.stdout.split()
    assert len(ids) == 1500 and sorted(ids) == a.outbox()
    payloads = queued_payloads(a, [ids[0], ids[7], ids[1499]])
    assert payloads[1]["data"]["summary"].endswith('\n第二行, 含"引号"')
    assert payloads[2]["data"]["incident_ref"] == "BIG-001499"
    # the physical line of row k: 1 (header) + k + the extra lines of rows before it
    bad = 1400
    line = 2 + bad + len(range(0, bad, 7))
    rows = incident_rows(1500)
    for i in range(0, 1500, 7):
        rows[i][17] = '"' + rows[i][17][:200] + '\r\n第二行"'
    rows[bad][8] = "-1"
    r, path = run_import(a, tmp_path, "bad.csv", csv_text(INCIDENT_EN, rows).encode(),
                         "--form", "incident")
    assert r.returncode == EX_DATAERR
    assert f"{path}: line {line}, column 9 (victims.female): must be >= 0" in r.stdout
    # a CSV fault far into the file: the same line numbers
    rows[bad][8] = "1"
    rows[bad][0] = 'BIG"1400'
    r, path = run_import(a, tmp_path, "bad2.csv", csv_text(INCIDENT_EN, rows).encode(),
                         "--form", "incident")
    assert r.returncode == EX_DATAERR
    assert f"{path}: line {line}, column 4: a quote inside an unquoted field" in r.stdout
    assert len(a.outbox()) == 1500  # only the first import's


def test_import_guesses_the_encoding_from_the_whole_file(offline_agent, tmp_path):
    """GB18030 whose first pieces are plain ASCII: the guess looks at the whole file."""
    a = offline_agent
    rows = incident_rows(2500, summary="plain ascii text " * 25, yes="true", no="false")
    rows[-1][17] = "最后一行是中文"
    data = csv_text(INCIDENT_EN, rows).encode("gb18030")
    assert len(data) > 2 * 512 * 1024
    r, _ = run_import(a, tmp_path, "gb.csv", data, "--form", "incident")
    assert r.returncode == EX_OK, r.stdout[-2000:] + r.stderr[-2000:]
    ids = r.stdout.split()
    assert queued_payloads(a, ids[-1:])[0]["data"]["summary"] == "最后一行是中文"


def test_import_refuses_more_rows_than_its_limit(offline_agent, tmp_path):
    a = offline_agent
    text = "incident_ref\n" + "x\n" * 10001
    r, path = run_import(a, tmp_path, "many.csv", text.encode(), "--form", "incident")
    assert r.returncode == EX_DATAERR
    assert f"{path}: line 10002, column 1: more than 10001 records" in r.stdout
    assert a.outbox() == [] and list((a.dir / "staging").iterdir()) == []
    # and no more bytes than 16 MiB
    r, path = run_import(a, tmp_path, "huge.csv", b"incident_ref\n" + b"x" * (16 << 20),
                         "--form", "incident")
    assert r.returncode == EX_DATAERR and "file too large" in r.stderr


@pytest.mark.skipif(bool(os.environ.get("RETURNS_SANITIZE")),
                    reason="a sanitizer's shadow memory makes peak RSS meaningless")
def test_import_of_10000_rows_stays_small(offline_agent, tmp_path):
    """Peak RSS of importing a 10,000-row file (16 MB, the import's limits) stays under
    16 MB: the rows are checked and signed one at a time, never held together."""
    a = offline_agent
    path = tmp_path / "incidents.csv"
    path.write_bytes(csv_text(INCIDENT_EN, incident_rows(10000)).encode())
    assert path.stat().st_size > 15_000_000
    out = tmp_path / "rss"
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out), str(BINARY), "import",
                        "--dir", str(a.dir), "--form", "incident", str(path)],
                       capture_output=True, text=True, env=a.env(), timeout=900)
    assert r.returncode == EX_OK, r.stderr[-2000:]
    assert len(r.stdout.split()) == 10000 and len(a.outbox()) == 10000
    peak_kib = int(out.read_text().split()[-1])
    assert peak_kib <= 16 * 1024, f"peak RSS {peak_kib} KiB"


def test_import_killed_at_any_point_queues_all_or_nothing(offline_agent, tmp_path):
    """kill -9 during imports of one file: once the next command has looked (status), the
    outbox holds none of the file's returns or all of them, never some; printed ids are
    queued; and the staging folder is left empty."""
    a = offline_agent
    n = 300
    path = tmp_path / "incidents.csv"
    path.write_bytes(csv_text(INCIDENT_EN, incident_rows(n)).encode())
    rng = random.Random(5)
    before = 0
    outcomes = set()
    for _ in range(10):
        p = a.popen("import", "--form", "incident", path, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 1.5))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        rows = a.status()  # finishes or removes what the import left
        queued = len(a.outbox())
        assert queued - before in (0, n), (before, queued)
        outcomes.add(queued - before)
        assert set(out.decode().split()) <= set(rows)
        assert list((a.dir / "staging").iterdir()) == []
        before = queued
    # an import that runs to its end
    r = a.run("import", "--form", "incident", path)
    assert r.returncode == EX_OK and len(a.outbox()) == before + n


def test_an_interrupted_import_is_finished_or_removed(offline_agent, tmp_path):
    """What a crash leaves in staging/: a batch marked complete is queued whole by the next
    command (and it says so); one that is not is removed (and it says so)."""
    a = offline_agent
    sids = [a.submit("incident") for _ in range(3)]
    staging = a.dir / "staging"
    complete, partial = staging / "import.AAAAAA", staging / "import.BBBBBB"
    complete.mkdir()
    partial.mkdir()
    for sid in sids[:2]:
        os.rename(a.dir / "outbox" / f"{sid}.jws", complete / f"{sid}.jws")
    os.rename(a.dir / "outbox" / f"{sids[2]}.jws", partial / f"{sids[2]}.jws")
    (complete / "batch.json").write_text(json.dumps({"source": "a.csv", "complete": True,
                                                     "returns": 2}))
    (partial / "batch.json").write_text(json.dumps({"source": "b.csv", "complete": False,
                                                    "returns": 1}))
    assert a.outbox() == []
    r = a.run("status", "--json")
    assert r.returncode == EX_OK, r.stderr
    assert "queued 2 returns of an import of 'a.csv'" in r.stderr
    assert "removed an unfinished import of 'b.csv'" in r.stderr
    assert a.outbox() == sorted(sids[:2]) and list(staging.iterdir()) == []
    assert sorted(row["submission_id"] for row in json.loads(r.stdout)) == sorted(sids[:2])

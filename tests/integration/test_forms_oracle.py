"""The forms against an independent oracle.

python3-jsonschema (Draft 2020-12, formats asserted) is the reference for the schema
verdict; `school-agent validate` (our C validator, x-rules evaluator and privacy guard:
`--schema-only` for the JSON Schema alone, `--schema FILE` for any schema file) must agree
with it on every example under tests/data, and must name every problem listed in
each bad example's .expect file ("<json-pointer> <keyword>" per line).

Examples are named by what is wrong with them:
  good-*.json         valid
  bad-schema-*.json   refused by the schema
  bad-rules-*.json    schema-valid, refused by an x-rule
  bad-privacy-*.json  schema- and rules-valid, refused by the privacy guard
"""
import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "school-agent" / "school-agent"
SCHEMAS = ROOT / "schemas"
FORMS = SCHEMAS / "forms"
SUBMISSION_SCHEMA = SCHEMAS / "submission.schema.json"
RETURNS = ROOT / "tests" / "data" / "returns"
SUBMISSIONS = ROOT / "tests" / "data" / "submissions"

FORM_NAMES = ["incident", "rectification", "screening", "summary"]
ROLLUPS = {"sum", "max", "count_true", "count_by", "none", "count"}
OPS_BINARY = {"<", "<=", ">", ">=", "==", "!=", "in", "not_in", "contains", "not_contains"}
RULE_ID = re.compile(r"^[a-z0-9_]+$")

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _format_checker():
    """Formats asserted as in the C validator: date and date-time (RFC 3339). jsonschema
    checks date-time only with the optional rfc3339-validator package; without it, use
    this equivalent check."""
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        @checker.checks("date-time", raises=ValueError)
        def _date_time(instance):
            if not isinstance(instance, str):
                return True
            if not RFC3339.match(instance):
                return False
            datetime.datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))
            return True
    return checker


FORMAT_CHECKER = _format_checker()


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def validator(schema_path):
    return Draft202012Validator(load(schema_path), format_checker=FORMAT_CHECKER)


def pointer(path):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def read_expect(path):
    """[(pointer, keyword)]; the pointer may be empty (the whole document)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        ptr, keyword = line.rsplit(" ", 1)
        pairs.append((ptr, keyword))
    return pairs


def parse_tool_output(text, path):
    """`validate` lines: "<path>: " then errlist_format()'s
    "[warning: ]<pointer>: <message> (<keyword>)", the pointer "(document)" for the root.
    Returns {(pointer, keyword, is_warning)}."""
    found = set()
    prefix = f"{path}: "
    for line in text.splitlines():
        assert line.startswith(prefix), line
        line = line[len(prefix):]
        m = re.match(r"^(warning: )?(.*?): .* \(([^()]*)\)$", line)
        if not m:
            continue
        ptr = "" if m.group(2) == "(document)" else m.group(2)
        found.add((ptr, m.group(3), bool(m.group(1))))
    return found


EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CONFIG = 0, 64, 65, 66, 78


def run_tool(*args):
    """school-agent validate ARGS..."""
    assert TOOL.exists(), f"{TOOL} is not built: run make first"
    return subprocess.run([str(TOOL), "validate", *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def examples():
    cases = []
    for form in FORM_NAMES:
        for path in sorted((RETURNS / form).glob("*.json")):
            cases.append((FORMS / f"{form}.schema.json", path))
    for path in sorted(SUBMISSIONS.glob("*.json")):
        cases.append((SUBMISSION_SCHEMA, path))
    return cases


def case_id(case):
    return str(case[1].relative_to(ROOT / "tests" / "data"))


EXAMPLES = examples()
BAD_EXAMPLES = [c for c in EXAMPLES if c[1].name.startswith("bad-")]
SCHEMA_FILES = sorted(SCHEMAS.rglob("*.schema.json"))


def kind(path):
    for k in ("good", "bad-schema", "bad-rules", "bad-privacy"):
        if path.name.startswith(k + "-"):
            return k
    raise AssertionError(f"{path.name}: not named good-, bad-schema-, bad-rules- or bad-privacy-")


# ------------------------------------------------------------------------ the schemas


@pytest.mark.parametrize("schema_path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_schema_is_valid_draft_2020_12(schema_path):
    schema = load(schema_path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_form_has_a_schema_and_examples():
    assert sorted(p.name.split(".")[0] for p in FORMS.glob("*.schema.json")) == FORM_NAMES
    for form in FORM_NAMES:
        names = [p.name for p in (RETURNS / form).glob("*.json")]
        assert "good-forms-md-example.json" in names
        for k in ("good-", "bad-schema-", "bad-rules-"):
            assert any(n.startswith(k) for n in names), (form, k)
        if form != "screening":  # screening holds no string at all
            assert any(n.startswith("bad-privacy-") for n in names), form


def property_schemas(schema, where=""):
    """Every (pointer-ish path, property schema) below schema, through items too."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{where}/{name}", sub
        yield from property_schemas(sub, f"{where}/{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        yield from property_schemas(items, f"{where}/*")


def check_operand(operand, in_each, where):
    if isinstance(operand, str):
        assert operand.startswith("/") or (in_each and operand.startswith("@")), where
    elif isinstance(operand, dict):
        assert len(operand) == 1, where
        (op, arg), = operand.items()
        assert op in ("const", "sum", "length"), where
        if op == "sum":
            for term in arg:
                check_operand(term, in_each, where)
        elif op == "length":
            check_operand(arg, in_each, where)
    else:
        assert operand is None or isinstance(operand, (bool, int, float)), where


def check_condition(cond, in_each, where):
    assert set(cond) <= {"left", "op", "right"}, where
    assert cond["op"] in OPS_BINARY, where
    check_operand(cond["left"], in_each, where)
    check_operand(cond["right"], in_each, where)


@pytest.mark.parametrize("form", FORM_NAMES)
def test_form_extensions(form):
    """The annotations of docs/FORMS-FORMAT.md that jsonschema cannot check."""
    schema = load(FORMS / f"{form}.schema.json")
    assert schema["$id"] == f"urn:returns:form:{form}"
    assert schema["x-form"] == form
    assert isinstance(schema["x-form-version"], int) and schema["x-form-version"] >= 1
    assert schema["title"] and schema["x-label-zh"]
    assert schema["x-rollup"] == "count"
    for where, sub in property_schemas(schema):
        assert sub.get("title") and sub.get("x-label-zh"), where
        if sub.get("type") == "object" and "properties" in sub:
            assert "x-rollup" not in sub, where  # aggregated member by member
            assert sub["additionalProperties"] is False, where
            assert sorted(sub["required"]) == sorted(sub["properties"]), where
        else:
            assert sub.get("x-rollup") in ROLLUPS, where
        if sub.get("x-privacy") is not None:
            assert sub["x-privacy"] == "free-text" and sub["x-rollup"] == "none", where
        if sub.get("type") == "integer" and "enum" not in sub:
            assert sub["minimum"] == 0 and sub["x-rollup"] == "sum", where
        if sub.get("format") == "date":
            assert sub["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", where
            assert sub["x-rollup"] == "none", where
        if sub.get("type") == "boolean":
            assert sub["x-rollup"] in ("count_true", "none"), where
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"])

    ids = [r["id"] for r in schema["x-rules"]]
    assert len(ids) == len(set(ids)) and ids
    for r in schema["x-rules"]:
        where = f"x-rules {r['id']}"
        assert RULE_ID.match(r["id"]), where
        assert r["message"] and r["x-label-zh"], where
        assert r.get("importance", "error") in ("error", "warning"), where
        in_each = "each" in r
        if in_each:
            assert r["each"].startswith("/"), where
        if r["op"] == "unique":
            assert in_each and "right" not in r, where
            check_operand(r["left"], in_each, where)
        else:
            check_condition({k: r[k] for k in ("left", "op", "right")}, in_each, where)
        when = r.get("when", [])
        for cond in [when] if isinstance(when, dict) else when:
            check_condition(cond, in_each, where)
    for d in schema.get("x-rollup-derived", []):
        assert d["name"] and d["title"] and d["x-label-zh"] and d["each"].startswith("/")
        for cond in d["when"]:
            check_condition(cond, True, d["name"])


@pytest.mark.parametrize("form", FORM_NAMES)
def test_every_rule_has_a_bad_example(form):
    schema = load(FORMS / f"{form}.schema.json")
    named = set()
    for expect in (RETURNS / form).glob("bad-rules-*.expect"):
        for _, keyword in read_expect(expect):
            assert keyword.startswith("x-rules:"), expect
            named.add(keyword[len("x-rules:"):])
    assert named == {r["id"] for r in schema["x-rules"]}


# ------------------------------------------------------------ a reference of x-rules and privacy
#
# A second, small implementation of docs/FORMS-FORMAT.md's rule grammar and of DESIGN §7's
# privacy guard, so the examples' verdicts and .expect files do not rest on our C code alone.

MISSING = object()


def resolve_pointer(doc, ptr):
    """(value, pointer); value None when the pointer does not resolve."""
    value = doc
    for token in ptr.split("/")[1:] if ptr else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and re.fullmatch(r"0|[1-9][0-9]*", token) \
                and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
    return value


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def json_equal(a, b):
    if is_number(a) and is_number(b):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a == b


def operand(op, doc, elem, elem_ptr):
    """(value, pointer or None)."""
    if isinstance(op, str) and op.startswith("/"):
        return resolve_pointer(doc, op), op
    if isinstance(op, str) and op.startswith("@"):
        return resolve_pointer(elem, op[1:]), elem_ptr + op[1:]
    if isinstance(op, dict) and "const" in op:
        return op["const"], None
    if isinstance(op, dict) and "sum" in op:
        terms = [operand(t, doc, elem, elem_ptr)[0] for t in op["sum"]]
        if any(not is_number(t) for t in terms):
            return None, None
        return sum(terms), None
    if isinstance(op, dict) and "length" in op:
        v = operand(op["length"], doc, elem, elem_ptr)[0]
        return (len(v) if isinstance(v, (list, dict)) else None), None
    return op, None


def holds(cond, doc, elem, elem_ptr):
    left = operand(cond["left"], doc, elem, elem_ptr)[0]
    right = operand(cond.get("right"), doc, elem, elem_ptr)[0]
    op = cond["op"]
    if op in ("<", "<=", ">", ">="):
        if not ((is_number(left) and is_number(right))
                or (isinstance(left, str) and isinstance(right, str))):
            return True
        if isinstance(left, str):
            left, right = left.encode(), right.encode()
        return {"<": left < right, "<=": left <= right, ">": left > right,
                ">=": left >= right}[op]
    if op in ("==", "!="):
        return json_equal(left, right) == (op == "==")
    if op in ("in", "not_in"):
        if not isinstance(right, list):
            return True
        return any(json_equal(left, x) for x in right) == (op == "in")
    if op in ("contains", "not_contains"):
        if not isinstance(left, list):
            return True
        return any(json_equal(x, right) for x in left) == (op == "contains")
    raise AssertionError(f"unknown op {op}")


def reference_rules(schema, doc):
    """{(pointer, "x-rules:<id>")} of the error rules doc breaks."""
    found = set()
    for r in schema["x-rules"]:
        if r.get("importance", "error") != "error":
            continue
        if "each" in r:
            coll = resolve_pointer(doc, r["each"])
            if isinstance(coll, list):
                elems = [(f"{r['each']}/{i}", e) for i, e in enumerate(coll)]
            elif isinstance(coll, dict):
                elems = [(f"{r['each']}/{k}", e) for k, e in coll.items()]
            else:
                elems = []
        else:
            elems = [("", doc)]
        when = r.get("when", [])
        when = [when] if isinstance(when, dict) else when
        seen = []
        for elem_ptr, elem in elems:
            if not all(holds(c, doc, elem, elem_ptr) for c in when):
                continue
            value, ptr = operand(r["left"], doc, elem, elem_ptr)
            if ptr is None:
                ptr = elem_ptr if "each" in r else REFERENCE_RULE_ROOT
            if r["op"] == "unique":
                if any(json_equal(value, v) for v in seen):
                    found.add((ptr, "x-rules:" + r["id"]))
                seen.append(value)
            elif not holds(r, doc, elem, elem_ptr):
                found.add((ptr, "x-rules:" + r["id"]))
    return found


REFERENCE_RULE_ROOT = ""  # a rule without each whose left is not a pointer: the document
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
FULL_WIDTH = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)},
                            "\uff38": "X", "\uff58": "x", "\uff0b": "+", "\uff0d": "-",
                            "\u3000": " "})
ID_RE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
MOBILE_RE = re.compile(r"(?<![0-9])(?:(?:\+86|0086|86)[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?"
                       r"[0-9]{4}(?![0-9])")


def looks_personal(text):
    text = text.translate(FULL_WIDTH)
    for m in ID_RE.finditer(text):
        s = m.group(0)
        if "10X98765432"[sum(int(c) * w for c, w in zip(s, ID_WEIGHTS)) % 11] == s[17].upper():
            return True
    return bool(MOBILE_RE.search(text))


def reference_privacy(doc, ptr=""):
    found = set()
    if isinstance(doc, str) and looks_personal(doc):
        found.add((ptr, "privacy"))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found |= reference_privacy(v, f"{ptr}/{i}")
    elif isinstance(doc, dict):
        for k, v in doc.items():
            sub = ptr + "/" + k.replace("~", "~0").replace("/", "~1")
            if looks_personal(k):
                found.add((sub, "privacy"))
            found |= reference_privacy(v, sub)
    return found


def test_reference_privacy_guard():
    assert looks_personal("11010519491231002X") and looks_personal("110105194912310021") is False
    assert looks_personal("电话13800138000。") and looks_personal("+86 138-0013-8000")
    assert not looks_personal("2024-017") and not looks_personal("0996-2021234")
    assert not looks_personal("138001380001") and not looks_personal("12800138000")


@pytest.mark.parametrize("case", [c for c in EXAMPLES if c[0] != SUBMISSION_SCHEMA
                                  and kind(c[1]) != "bad-schema"], ids=case_id)
def test_examples_against_reference(case):
    """good: no rule or privacy problem; bad-rules: exactly its .expect, no privacy
    problem; bad-privacy: exactly its .expect, every rule holds."""
    schema_path, data_path = case
    schema, doc = load(schema_path), load(data_path)
    rules, privacy = reference_rules(schema, doc), reference_privacy(doc)
    k = kind(data_path)
    expected = set(read_expect(data_path.with_suffix(".expect"))) if k != "good" else set()
    assert rules == (expected if k == "bad-rules" else set())
    assert privacy == (expected if k == "bad-privacy" else set())


# ------------------------------------------------------------------------ the examples


@pytest.mark.parametrize("case", EXAMPLES, ids=case_id)
def test_schema_verdict_agrees_with_jsonschema(case):
    schema_path, data_path = case
    errors = list(validator(schema_path).iter_errors(load(data_path)))
    oracle_valid = not errors
    assert oracle_valid == (kind(data_path) != "bad-schema"), \
        [f"{pointer(e.absolute_path)} {e.validator}: {e.message}" for e in errors]

    r = run_tool("--schema-only", "--schema", schema_path, data_path)
    assert r.returncode == (EX_OK if oracle_valid else EX_DATAERR), r.stdout + r.stderr
    if not oracle_valid:
        assert r.stdout.strip(), "an invalid document needs at least one line of output"


@pytest.mark.parametrize("case", [c for c in BAD_EXAMPLES if kind(c[1]) == "bad-schema"],
                         ids=case_id)
def test_expected_schema_errors_agree_with_jsonschema(case):
    """The .expect files of bad-schema examples are themselves checked by the oracle: each
    pair is an error jsonschema reports too ("required" and "additionalProperties" may
    point at the object, as jsonschema does, or at the member)."""
    schema_path, data_path = case
    oracle = {(pointer(e.absolute_path), e.validator)
              for e in validator(schema_path).iter_errors(load(data_path))}
    for ptr, keyword in read_expect(data_path.with_suffix(".expect")):
        if keyword in ("required", "additionalProperties") and (ptr, keyword) not in oracle:
            ptr = ptr.rsplit("/", 1)[0]
        assert (ptr, keyword) in oracle, (ptr, keyword, sorted(oracle))


@pytest.mark.parametrize("case", EXAMPLES, ids=case_id)
def test_full_validation(case):
    schema_path, data_path = case
    r = run_tool("--schema", schema_path, data_path)
    reported = parse_tool_output(r.stdout, data_path)
    errors = {(p, k) for p, k, warning in reported if not warning}
    if kind(data_path) == "good":
        assert r.returncode == 0, r.stdout + r.stderr
        assert not errors, r.stdout
        return
    assert r.returncode == EX_DATAERR, r.stdout + r.stderr
    expected = read_expect(data_path.with_suffix(".expect"))
    assert expected
    for pair in expected:
        assert pair in errors, f"{pair} not reported; the tool said:\n{r.stdout}"
    # A rules or privacy example breaks that one thing only.
    k = kind(data_path)
    if k == "bad-rules":
        assert all(kw.startswith("x-rules:") for _, kw in errors), r.stdout
    if k == "bad-privacy":
        assert all(kw == "privacy" for _, kw in errors), r.stdout


@pytest.mark.parametrize("case", [c for c in EXAMPLES if c[0] == SUBMISSION_SCHEMA
                                  and kind(c[1]) == "good"], ids=case_id)
def test_good_submission_data_is_a_good_return(case, tmp_path):
    payload = load(case[1])
    form_schema = FORMS / f"{payload['form']}.schema.json"
    assert not list(validator(form_schema).iter_errors(payload["data"]))
    data = tmp_path / "data.json"
    data.write_text(json.dumps(payload["data"], ensure_ascii=False), encoding="utf-8")
    r = run_tool("--schema", form_schema, data)
    assert r.returncode == EX_OK, r.stdout + r.stderr


def test_good_examples_count_text_in_characters():
    """The long-text examples sit exactly at maxLength in characters, far above it in
    bytes, so a validator counting bytes or UTF-16 units would refuse them."""
    limits = [("incident", "good-summary-500-characters", "/summary", 500),
              ("incident", "good-escaped-500-characters", "/summary", 500),
              ("rectification", "good-texts-200-characters", "/items/0/problem", 200),
              ("rectification", "good-texts-200-characters", "/items/0/measure", 200),
              ("summary", "good-texts-2000-characters", "/achievements", 2000),
              ("summary", "good-texts-2000-characters", "/difficulties", 2000)]
    for form, name, ptr, limit in limits:
        value = load(RETURNS / form / f"{name}.json")
        for token in ptr.split("/")[1:]:
            value = value[int(token)] if isinstance(value, list) else value[token]
        assert len(value) == limit, (name, ptr)
        assert len(value.encode("utf-8")) > 2 * limit
        assert any(ord(c) > 0xFFFF for c in value), "include a character beyond the BMP"
        too_long = RETURNS / form / ("bad-schema-" + {"incident": "summary-too-long",
                                                      "rectification": "problem-too-long",
                                                      "summary": "text-too-long"}[form]
                                     + ".json")
        assert too_long.exists()


# ------------------------------------------------------------ the validate command itself


def test_tool_usage_and_io_errors(tmp_path):
    good = RETURNS / "incident" / "good-forms-md-example.json"
    schema = FORMS / "incident.schema.json"
    assert run_tool().returncode == EX_USAGE
    assert run_tool("--schema", schema).returncode == EX_USAGE
    assert run_tool("--bogus", "--schema", schema, good).returncode == EX_USAGE
    assert run_tool("--schema", schema, tmp_path / "missing.json").returncode == EX_NOINPUT
    assert run_tool("--schema", tmp_path / "missing.schema.json", good).returncode == \
        EX_NOINPUT
    broken = tmp_path / "broken.schema.json"
    broken.write_text('{"type": "object", "properties": {"a": {"minimum": "zero"}}}')
    assert run_tool("--schema", broken, good).returncode == EX_CONFIG
    not_json = tmp_path / "not.schema.json"
    not_json.write_text("{")
    assert run_tool("--schema", not_json, good).returncode == EX_CONFIG


def test_tool_refuses_malformed_data(tmp_path):
    """Data that is not strict JSON is an invalid document (exit 65), not a crash."""
    schema = FORMS / "incident.schema.json"
    for i, text in enumerate([b"", b"{", b'{"a": 1, "a": 2}', b"\xff\xfe{}", b"[" * 100000,
                              b'{"summary": "\\ud800"}']):
        data = tmp_path / f"bad{i}.json"
        data.write_bytes(text)
        r = run_tool("--schema", schema, data)
        assert r.returncode == EX_DATAERR, (text[:20], r.stdout, r.stderr)
        assert r.stdout.strip()


def test_tool_reports_warnings_but_accepts(tmp_path):
    schema = json.loads((FORMS / "screening.schema.json").read_text(encoding="utf-8"))
    for rule in schema["x-rules"]:
        rule["importance"] = "warning"
    warn_schema = tmp_path / "screening.schema.json"
    warn_schema.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    data = RETURNS / "screening" / "bad-rules-screened_le_enrolled.json"
    r = run_tool("--schema", warn_schema, data)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    assert ("/students_screened", "x-rules:screened_le_enrolled", True) in \
        parse_tool_output(r.stdout, data)

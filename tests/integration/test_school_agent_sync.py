"""school-agent sync and run, driven through faultproxy.py (drop mid-body, lost response,
500, 503 with Retry-After, a stalled server, forged or tampered receipts, permanent
rejections).

Two setups:
- `proxied`: the proxy has no upstream and answers with receipts it signs itself with a
  county key made by jwcrypto: a hub stand-in that checks nothing, for the agent's side
  of the protocol (what it sends, what it accepts, how it retries);
- `real`: the proxy sits in front of the real county-hub (hubfixture.Hub), for the
  guarantees that need the hub too (a lost response is harmless: the hub stores once and
  answers the resend with the same receipt)."""

import gzip
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest
from jwcrypto import jws

from agentfixture import (BINARY, COUNTY_ID, EX_OK, EX_TEMPFAIL, EX_USAGE, SCHOOL_ID,  # noqa
                          Agent, county_key, good, load_return, offline_agent)
from faultproxy import FaultProxy, jws_payload
from hubfixture import BINARY as HUB_BINARY
from hubfixture import Hub, sign, verify_receipt


@pytest.fixture
def proxied(tmp_path):
    key, path = county_key(tmp_path)
    proxy = FaultProxy(county_key=key).start()
    a = Agent(tmp_path / "agent", proxy.url, path)
    a.county_key = key
    yield a, proxy
    proxy.stop()


def sync(a, *args, timeout=120):
    return a.run("sync", *args, timeout=timeout)


def posts(proxy):
    return [r for r in proxy.requests if r["path"] == "/v1/submissions"]


def test_sync_uploads_and_keeps_verified_receipts(proxied):
    a, proxy = proxied
    ids = [a.submit("incident"), a.submit("summary", None, "--period", "2024-P2"),
           a.submit("incident")]
    queued = {i: (a.dir / "outbox" / f"{i}.jws").read_bytes() for i in ids}
    r = sync(a)
    assert r.returncode == EX_OK, r.stderr
    assert a.outbox() == [] and a.sent() == sorted(ids)
    requests = posts(proxy)
    assert len(requests) == 3
    # the three at once (up to --parallel, 16 by default), each on its own connection
    sent_ids = [json.loads(jws_payload(q["jws"]))["submission_id"] for q in requests]
    assert sorted(sent_ids) == sorted(ids)
    assert proxy.connections <= 3
    for q in requests:
        h = {k.lower(): v for k, v in q["headers"].items()}
        assert h["content-type"] == "application/jose+json"
        assert h["content-encoding"] == "gzip"
        sid = json.loads(jws_payload(q["jws"]))["submission_id"]
        # the body is one gzip member holding exactly the queued bytes
        assert gzip.decompress(q["body"]) == queued[sid]
        assert q["body"][:2] == b"\x1f\x8b"
        # the receipt is kept byte for byte, next to the return
        assert (a.dir / "sent" / f"{sid}.receipt").read_bytes() == proxy.receipts[sid][1]
        assert (a.dir / "sent" / f"{sid}.jws").read_bytes() == queued[sid]
    rows = a.status()
    for i in ids:
        assert rows[i]["state"] == "sent" and rows[i]["on_time"] is True
        assert rows[i]["received_at"] == "2024-05-03T09:12:05+08:00"
    # nothing left: no request, exit 0
    assert sync(a).returncode == EX_OK
    assert len(posts(proxy)) == 3


@pytest.mark.parametrize("mode", ["forge", "tamper:sha256", "tamper:submission_id",
                                  "tamper:period", "tamper:school_id"])
def test_a_receipt_that_does_not_verify_keeps_the_return_queued(proxied, mode):
    a, proxy = proxied
    sid = a.submit("incident")
    proxy.default = mode
    r = sync(a)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert "does not verify" in r.stderr
    assert a.outbox() == [sid] and a.sent() == []
    assert not (a.dir / "sent" / f"{sid}.receipt").exists()
    assert a.status()[sid]["state"] == "queued"
    # the hub backs off (full jitter: somewhere in the first 2 s); a sync that ends before
    # the chosen instant has not tried again
    state = json.loads((a.dir / "sync-state.json").read_text())
    assert state["attempts"] == 1
    assert state["next_attempt_ms"] <= time.time() * 1000 + 2000
    assert sync(a).returncode in (EX_TEMPFAIL, EX_OK)
    if time.time() * 1000 < state["next_attempt_ms"]:
        assert len(posts(proxy)) == 1
    # an honest answer later: sent
    proxy.default = "pass"
    assert sync(a, "--now").returncode == EX_OK
    assert a.sent() == [sid]


@pytest.mark.parametrize("status", [400, 401, 403, 409, 413, 415, 422])
def test_a_permanent_rejection_moves_on(proxied, status):
    a, proxy = proxied
    first, second = a.submit("incident"), a.submit("incident")
    proxy.script = [f"status:{status}"]
    r = sync(a)
    assert r.returncode == EX_OK, r.stderr
    assert len(a.rejected()) == 1 and len(a.sent()) == 1 and a.outbox() == []
    rejected = a.rejected()[0]
    body = json.loads((a.dir / "rejected" / f"{rejected}.error.json").read_text())
    assert body["error"] == "injected" and body["message"] == f"injected {status}"
    row = a.status()[rejected]
    assert row["state"] == "rejected" and row["error"] == "injected"
    assert f"injected {status}" in row["reason"]
    assert {first, second} == {rejected, a.sent()[0]}


@pytest.mark.parametrize("mode", ["status:500", "status:502", "status:408", "status:423"])
def test_a_transient_failure_keeps_the_return_and_goes_on(proxied, mode):
    a, proxy = proxied
    ids = [a.submit("incident"), a.submit("incident")]
    proxy.script = [mode]
    r = sync(a)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert len(a.outbox()) == 1 and len(a.sent()) == 1
    kept = a.outbox()[0]
    retry = json.loads((a.dir / "outbox" / f"{kept}.retry").read_text())
    assert retry["attempts"] == 1 and mode.split(":")[1] in retry["last_error"]
    row = a.status()[kept]
    assert row["state"] == "queued" and row["attempts"] == 1
    # the failed return waits for its backoff (at most 2 s after one failure) ...
    n = len(posts(proxy))
    waited = retry["next_attempt_ms"] / 1000 - time.time()
    if waited > 0.3:
        assert sync(a).returncode == EX_TEMPFAIL
        assert len(posts(proxy)) == n
    # ... and --now tries it at once
    assert sync(a, "--now").returncode == EX_OK
    assert sorted(a.sent()) == sorted(ids)
    assert not (a.dir / "outbox" / f"{kept}.retry").exists()


def test_busy_hub_is_left_alone_for_retry_after(proxied):
    a, proxy = proxied
    ids = [a.submit("incident"), a.submit("incident")]
    proxy.script = ["busy:2"]
    start = time.time()
    r = sync(a, "--parallel", "1")
    assert r.returncode == EX_TEMPFAIL
    # the pass stops at a busy hub: the second return was not tried
    assert len(posts(proxy)) == 1 and a.outbox() == sorted(ids)
    state = json.loads((a.dir / "sync-state.json").read_text())
    assert state["attempts"] == 1 and "503" in state["last_error"]
    assert state["next_attempt_ms"] / 1000 >= start + 2 - 0.05
    # before Retry-After has passed, sync does not knock
    r = sync(a)
    assert r.returncode == EX_TEMPFAIL and "next attempt in" in r.stderr
    assert len(posts(proxy)) == 1
    time.sleep(max(0, state["next_attempt_ms"] / 1000 - time.time()) + 0.1)
    assert sync(a).returncode == EX_OK
    assert a.sent() == sorted(ids)
    assert not (a.dir / "sync-state.json").exists()


def test_a_connection_dropped_mid_body_keeps_the_return(proxied):
    a, proxy = proxied
    sid = a.submit("incident")
    proxy.script = ["drop_body"]
    r = sync(a)
    assert r.returncode == EX_TEMPFAIL
    assert a.outbox() == [sid] and "no answer from the hub" in r.stderr
    assert json.loads((a.dir / "sync-state.json").read_text())["attempts"] == 1
    assert sync(a, "--now").returncode == EX_OK
    assert a.sent() == [sid]


def test_a_stalled_hub_times_out(proxied):
    a, proxy = proxied
    sid = a.submit("incident")
    proxy.script = ["stall"]
    start = time.monotonic()
    r = sync(a, "--timeout", "2")
    assert r.returncode == EX_TEMPFAIL
    assert time.monotonic() - start < 10
    assert a.outbox() == [sid]
    proxy.release.set()
    assert sync(a, "--now").returncode == EX_OK


def test_a_lost_response_is_resent_with_the_same_bytes(proxied):
    a, proxy = proxied
    sid = a.submit("incident")
    proxy.script = ["drop_response"]
    assert sync(a).returncode == EX_TEMPFAIL
    assert a.outbox() == [sid]
    assert sync(a, "--now").returncode == EX_OK
    first, second = posts(proxy)
    assert first["upstream_status"] == 201 and second["upstream_status"] == 200
    assert first["jws"] == second["jws"]  # same submission_id, same signed bytes
    assert (a.dir / "sent" / f"{sid}.receipt").read_bytes() == first["upstream_body"]


def test_backoff_grows_exponentially_with_full_jitter(tmp_path):
    """A hub that refuses connections: each failure doubles the cap of the random wait."""
    key, path = county_key(tmp_path)
    a = Agent(tmp_path / "agent", "http://127.0.0.1:9", path)
    a.submit("incident")
    waits = []
    for n in range(1, 7):
        before = time.time()
        assert a.run("sync", "--now").returncode == EX_TEMPFAIL
        state = json.loads((a.dir / "sync-state.json").read_text())
        assert state["attempts"] == n
        wait = state["next_attempt_ms"] / 1000 - before
        assert -0.1 <= wait <= 2 ** n + 0.5, (n, wait)
        waits.append(wait)
    assert len(set(round(w, 3) for w in waits)) > 1  # jitter


def test_a_corrupt_queued_file_does_not_block_the_queue(proxied):
    a, proxy = proxied
    sid = a.submit("incident")
    bad = str(uuid.uuid4())
    (a.dir / "outbox" / f"{bad}.jws").write_text("{not a jws")
    r = sync(a)
    assert r.returncode == EX_OK, r.stderr
    assert a.sent() == [sid] and a.rejected() == [bad]
    assert json.loads((a.dir / "rejected" / f"{bad}.error.json").read_text())["error"] == \
        "corrupt"


def test_temporary_files_are_not_sent(proxied):
    a, proxy = proxied
    sid = a.submit("incident")
    torn = a.dir / "outbox" / f"{uuid.uuid4()}.jws.tmp.4242"
    torn.write_text((a.dir / "outbox" / f"{sid}.jws").read_text()[:40])
    assert sync(a).returncode == EX_OK
    assert len(posts(proxy)) == 1 and a.sent() == [sid]


def test_run_syncs_periodically_and_stops_on_sigterm(proxied):
    a, proxy = proxied
    p = a.popen("run", "--interval", "1", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        sid = a.submit("incident")
        deadline = time.monotonic() + 10
        while a.sent() != [sid] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert a.sent() == [sid]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()


def make_outbox(a, n):
    """n returns signed with the agent's key by jwcrypto, as submit writes them."""
    key = a.private_key()
    data = load_return("incident")
    base = int(time.time() * 1000)
    for i in range(n):
        sid = str(uuid.UUID(int=((base + i) << 80) | (7 << 76) | (2 << 62) | i))
        payload = {"form": "incident", "form_version": 1, "submission_id": sid,
                   "school_id": SCHOOL_ID, "county_id": COUNTY_ID, "period": "2024-05",
                   "created_at": "2024-05-03T09:12:00+08:00", "supersedes": None,
                   "data": dict(data, incident_ref=f"2024-{i:05d}")}
        text = sign(key, json.dumps(payload, ensure_ascii=False,
                                    separators=(",", ":")).encode(), kid=SCHOOL_ID)
        (a.dir / "outbox" / f"{sid}.jws").write_text(text)


@pytest.mark.skipif(bool(os.environ.get("RETURNS_SANITIZE")),
                    reason="a sanitizer's shadow memory makes peak RSS meaningless")
def test_sync_of_10000_returns_stays_small(proxied):
    """Peak RSS of one sync of 10,000 queued returns stays under 16 MB: the outbox is
    streamed, only the returns in flight (16 by default) in memory. (GNU time measures it: a
    child forked from this Python process would count the interpreter's pages before its
    exec.)"""
    a, proxy = proxied
    n = int(os.environ.get("SCHOOL_AGENT_SYNC_RETURNS", "10000"))
    make_outbox(a, n)
    out = a.dir.parent / "rss"
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out), str(BINARY), "sync",
                        "--dir", str(a.dir)], capture_output=True, text=True, env=a.env(),
                       timeout=600)
    assert r.returncode == EX_OK, r.stderr[-2000:]
    assert len(a.sent()) == n and a.outbox() == []
    # kept alive: one connection per upload in flight, not one per return
    assert proxy.connections <= json.loads((a.dir / "agent.json").read_text())["parallel"]
    peak_kib = int(out.read_text().split()[-1])
    assert peak_kib <= 16 * 1024, f"peak RSS {peak_kib} KiB"


def slow_upstream(proxy, seconds):
    """Makes every answer of the proxy take `seconds` and counts the uploads in flight at
    once (the largest number into proxy.peak_in_flight)."""
    forward = proxy.forward
    lock = threading.Lock()
    proxy.in_flight = proxy.peak_in_flight = 0

    def slow(*args):
        with lock:
            proxy.in_flight += 1
            proxy.peak_in_flight = max(proxy.peak_in_flight, proxy.in_flight)
        try:
            time.sleep(seconds)
            return forward(*args)
        finally:
            with lock:
                proxy.in_flight -= 1

    proxy.forward = slow


def test_sync_keeps_several_uploads_in_flight(proxied):
    """--parallel N: up to N uploads at once, never more; agent.json's "parallel" is the
    default of the flag."""
    a, proxy = proxied
    make_outbox(a, 16)
    slow_upstream(proxy, 0.3)
    r = sync(a, "--parallel", "4")
    assert r.returncode == EX_OK, r.stderr
    assert len(a.sent()) == 16 and 3 <= proxy.peak_in_flight <= 4
    assert proxy.connections <= 4
    make_outbox(a, 4)
    proxy.peak_in_flight = 0
    assert sync(a, "--parallel", "1").returncode == EX_OK
    assert len(a.sent()) == 20 and proxy.peak_in_flight == 1
    config = json.loads((a.dir / "agent.json").read_text())
    assert config["parallel"] == 16  # what init writes
    config["parallel"] = 2
    (a.dir / "agent.json").write_text(json.dumps(config))
    make_outbox(a, 8)
    proxy.peak_in_flight = 0
    assert sync(a).returncode == EX_OK
    assert len(a.sent()) == 28 and proxy.peak_in_flight == 2
    # out of range
    assert sync(a, "--parallel", "0").returncode == 64
    assert sync(a, "--parallel", "65").returncode == 64


def test_uploads_start_oldest_first(proxied):
    """Returns are prepared ahead of their upload on a thread of their own, and still go out
    oldest first: one at a time in the outbox's order; several at a time, none starts
    before an older one did (the proxy sees them in the order their requests arrive)."""
    a, proxy = proxied
    make_outbox(a, 12)
    queued = sorted(p.stem for p in (a.dir / "outbox").glob("*.jws"))
    assert sync(a, "--parallel", "1").returncode == EX_OK
    sent = [json.loads(jws_payload(r["jws"]))["submission_id"] for r in posts(proxy)]
    assert sent == queued
    make_outbox(a, 40)
    queued = sorted(p.stem for p in (a.dir / "outbox").glob("*.jws"))
    proxy.requests.clear()
    slow_upstream(proxy, 0.05)
    assert sync(a, "--parallel", "4").returncode == EX_OK
    sent = [json.loads(jws_payload(r["jws"]))["submission_id"] for r in posts(proxy)]
    assert sorted(sent) == queued
    # at most the 3 other uploads in flight can overtake a request on its way
    assert all(queued.index(sid) <= n + 3 for n, sid in enumerate(sent))


def test_a_busy_hub_stops_new_uploads(proxied):
    """With uploads in flight, a 503 stops the pass from starting more: the ones in flight
    end as they may, the rest wait for Retry-After."""
    a, proxy = proxied
    make_outbox(a, 20)
    proxy.script = ["busy:2"]
    start = time.time()
    r = sync(a, "--parallel", "2")
    assert r.returncode == EX_TEMPFAIL, r.stderr
    tried = len(posts(proxy))
    assert tried < 20 and len(a.outbox()) == 20 - len(a.sent()) > 0
    state = json.loads((a.dir / "sync-state.json").read_text())
    assert state["attempts"] == 1 and "503" in state["last_error"]
    assert state["next_attempt_ms"] / 1000 >= start + 2 - 0.05
    # a success that ended after the 503 did not clear the hub's backoff
    r = sync(a)
    assert r.returncode == EX_TEMPFAIL and "next attempt in" in r.stderr
    assert len(posts(proxy)) == tried
    time.sleep(max(0, state["next_attempt_ms"] / 1000 - time.time()) + 0.1)
    assert sync(a).returncode == EX_OK
    assert len(a.sent()) == 20 and not (a.dir / "sync-state.json").exists()


def test_uploads_that_fail_together_count_once(tmp_path):
    """A hub that refuses connections fails every upload in flight: the hub's backoff goes
    up once per pass, not once per upload."""
    key, path = county_key(tmp_path)
    a = Agent(tmp_path / "agent", "http://127.0.0.1:9", path)
    make_outbox(a, 6)
    for n in (1, 2):
        assert a.run("sync", "--now", "--parallel", "4").returncode == EX_TEMPFAIL
        state = json.loads((a.dir / "sync-state.json").read_text())
        assert state["attempts"] == n
    assert len(a.outbox()) == 6


def trace(a, tmp_path, *args):
    """Runs the agent under strace: the files opened, fsynced (fdatasync counts as fsync),
    renamed, and the syncfs calls, in the order they returned. The agent's threads make
    calls at the same time, which strace logs in two halves ("<unfinished ...>", then
    "<... resumed>"): they are joined, at the place of the second."""
    log = tmp_path / "strace.log"
    argv = ["strace", "-f", "-qq", "-o", str(log), "-e",
            "trace=openat,fsync,fdatasync,syncfs,rename,renameat,renameat2",
            str(BINARY), *map(str, args)]
    r = subprocess.run(argv, capture_output=True, text=True,
                       env={**a.env(), "ASAN_OPTIONS": "detect_leaks=0"}, timeout=300)
    events, fds, started = [], {}, {}
    for line in log.read_text().splitlines():
        pid, _, line = line.partition(" ")
        line = line.lstrip()  # strace pads short pids
        if line.endswith("<unfinished ...>"):
            started[pid] = line[:-len("<unfinished ...>")].rstrip()
            continue
        m = re.match(r"<\.\.\. \w+ resumed>(.*)", line)
        if m:
            line = started.pop(pid, "") + m.group(1)
        m = re.search(r'openat\(AT_FDCWD, "([^"]+)", ([^)]*)\) = (\d+)', line)
        if m:
            fds[m.group(3)] = m.group(1)
            events.append(("open", m.group(1)))
        m = re.search(r"\b(f(?:data)?sync|syncfs)\((\d+)\)\s*= 0", line)
        if m:
            events.append((m.group(1).replace("fdatasync", "fsync"), fds.get(m.group(2))))
        m = re.search(r'rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"',
                      line)
        if m and line.rstrip().endswith("= 0"):
            events.append(("rename", m.group(1), m.group(2)))
    return r, events


def test_sync_keeps_each_receipt_durable_before_the_return_moves(proxied, tmp_path):
    """The order of system calls behind "never sent without a verified receipt": each
    receipt is written to sent/<id>.receipt while its return is still in the outbox and
    fdatasynced, sent/ is fsynced (the receipt's name), and only then is the return
    renamed into sent/, after which sent/ and the outbox are fsynced. Only the agent's own
    files are flushed, never the whole filesystem (no syncfs), and returns delivered
    together share the folders' fsyncs: two of sent/ per group, not one per return."""
    a, proxy = proxied
    make_outbox(a, 24)
    ids = a.outbox()
    r, events = trace(a, tmp_path, "sync", "--dir", a.dir, "--parallel", "8")
    assert r.returncode == EX_OK, r.stderr
    assert a.sent() == ids
    sent, outbox = str(a.dir / "sent"), str(a.dir / "outbox")
    assert not [e for e in events if e[0] == "syncfs"]
    for sid in ids:
        receipt = f"{sent}/{sid}.receipt"
        writes = [i for i, e in enumerate(events) if e == ("open", receipt)]
        assert len(writes) == 1, sid
        jws_move = events.index(("rename", f"{outbox}/{sid}.jws", f"{sent}/{sid}.jws"))
        assert writes[0] < jws_move
        synced = events.index(("fsync", receipt), writes[0])
        assert synced < jws_move, "the receipt is durable before the return moves to sent/"
        assert ("fsync", sent) in events[synced:jws_move], \
            "the receipt's name is durable before the return moves to sent/"
        after = events[jws_move:]
        assert ("fsync", sent) in after and ("fsync", outbox) in after, \
            "the move is durable before the pass ends"
    groups = events.count(("fsync", sent)) // 2
    assert 1 <= groups < len(ids)


def test_sync_killed_at_any_point_never_shows_sent_without_receipt(proxied):
    """kill -9 in the middle of syncs: every return is in exactly one folder, a return in
    sent/ always has a receipt that verifies, and a last sync delivers the rest."""
    a, proxy = proxied
    make_outbox(a, 40)
    ids = set(a.outbox())
    rng = random.Random(11)
    for _ in range(8):
        p = a.popen("sync", "--now", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.02, 0.25))
        p.send_signal(signal.SIGKILL)
        p.wait()
        rows = a.status()
        assert set(rows) == ids
        assert {row["state"] for row in rows.values()} <= {"queued", "sent"}, rows
        assert set(a.outbox()).isdisjoint(a.sent())
    assert sync(a, "--now").returncode == EX_OK
    rows = a.status()
    assert set(a.sent()) == ids and all(row["state"] == "sent" for row in rows.values())


# ------------------------------------------------------------------- the real county hub


@pytest.fixture
def real(tmp_path):
    proxy = FaultProxy().start()
    hub = Hub(tmp_path / "hub")
    hub.init()
    a = Agent(tmp_path / "agent", proxy.url, hub.dir / "county.pub.jwk")
    hub.add_school(key=a.public_key())
    hub.start()
    proxy.upstream = ("127.0.0.1", hub.port)
    yield a, proxy, hub
    proxy.stop()
    hub.stop()


def test_real_hub_accepts_and_receipts(real):
    a, proxy, hub = real
    ids = [a.submit("incident"), a.submit("summary", None, "--period", "2024-P2")]
    r = sync(a)
    assert r.returncode == EX_OK, r.stderr + hub.log_text()
    assert a.sent() == sorted(ids)
    for sid in ids:
        payload = jws_payload((a.dir / "sent" / f"{sid}.jws").read_text())
        receipt = verify_receipt(hub, (a.dir / "sent" / f"{sid}.receipt").read_bytes(),
                                 payload)
        assert receipt["submission_id"] == sid
    assert hub.counts()[0] == 2
    rows = a.status()
    assert all(rows[i]["state"] == "sent" for i in ids)


def test_real_hub_lost_response_is_harmless(real):
    """The hub commits, the response is lost: the resend carries the same id and bytes,
    gets the same receipt (200), and the hub stores the return once."""
    a, proxy, hub = real
    sid = a.submit("incident")
    proxy.script = ["drop_response"]
    assert sync(a).returncode == EX_TEMPFAIL
    assert a.outbox() == [sid] and hub.counts()[0] == 1
    assert sync(a, "--now").returncode == EX_OK
    first, second = posts(proxy)
    assert (first["upstream_status"], second["upstream_status"]) == (201, 200)
    assert first["jws"] == second["jws"]
    assert first["upstream_body"] == second["upstream_body"]
    assert (a.dir / "sent" / f"{sid}.receipt").read_bytes() == first["upstream_body"]
    assert hub.counts()[0] == 1


def test_real_hub_forged_receipt_keeps_the_return_queued(real):
    a, proxy, hub = real
    sid = a.submit("incident")
    proxy.script = ["forge"]
    r = sync(a)
    assert r.returncode == EX_TEMPFAIL and "does not verify" in r.stderr
    assert a.outbox() == [sid] and a.sent() == []
    assert sync(a, "--now").returncode == EX_OK
    assert a.sent() == [sid]


def test_real_hub_locked_period_stays_queued(real):
    """screening 2024-P1 locked (expired) at the hub's 2024-06-10: 423 is not final."""
    a, proxy, hub = real
    sid = a.submit("screening", None, "--period", "2024-P1")
    other = a.submit("incident")
    r = sync(a)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert a.outbox() == [sid] and a.sent() == [other]
    assert "423" in json.loads((a.dir / "outbox" / f"{sid}.retry").read_text())["last_error"]


def test_real_hub_permanent_rejection(real, tmp_path):
    """A school the county has not registered: 401, kept in rejected/ with the hub's body."""
    a, proxy, hub = real
    stranger = Agent(tmp_path / "stranger", proxy.url, hub.dir / "county.pub.jwk")
    sid = stranger.submit("incident")
    r = sync(stranger)
    assert r.returncode == EX_OK, r.stderr
    assert stranger.rejected() == [sid]
    body = json.loads((stranger.dir / "rejected" / f"{sid}.error.json").read_text())
    assert body["error"] == "unauthenticated"
    assert stranger.status()[sid]["state"] == "rejected"


def test_requeue_after_the_county_registers_the_school(tmp_path):
    """A return sent before the county added the school to its roster is refused (401)
    and kept in rejected/; once the county has, `requeue` puts the same bytes back in the
    outbox and the next sync delivers it with a receipt that verifies."""
    hub = Hub(tmp_path / "hub")
    hub.init()
    hub.start()
    try:
        a = Agent(tmp_path / "agent", f"http://127.0.0.1:{hub.port}",
                  hub.dir / "county.pub.jwk")
        sid = a.submit("incident")
        queued = (a.dir / "outbox" / f"{sid}.jws").read_bytes()
        r = sync(a)
        assert r.returncode == EX_OK, r.stderr + hub.log_text()
        assert a.rejected() == [sid] and "401" in r.stderr
        error = json.loads((a.dir / "rejected" / f"{sid}.error.json").read_text())
        assert error["error"] == "unauthenticated"
        assert a.status()[sid]["state"] == "rejected"
        assert hub.counts()[0] == 0

        hub.add_school(key=a.public_key())
        r = a.run("requeue", sid)
        assert r.returncode == EX_OK, r.stderr
        assert r.stdout.split() == [sid]
        assert a.outbox() == [sid] and a.rejected() == []
        assert (a.dir / "outbox" / f"{sid}.jws").read_bytes() == queued  # unchanged
        assert not (a.dir / "rejected" / f"{sid}.error.json").exists()
        row = a.status()[sid]
        assert row["state"] == "queued" and row["attempts"] == 0

        r = sync(a)
        assert r.returncode == EX_OK, r.stderr + hub.log_text()
        assert a.sent() == [sid] and a.outbox() == []
        payload = jws_payload(queued.decode())
        receipt = verify_receipt(hub, (a.dir / "sent" / f"{sid}.receipt").read_bytes(),
                                 payload)
        assert receipt["submission_id"] == sid
        row = a.status()[sid]
        assert row["state"] == "sent" and row["received_at"] == receipt["received_at"]
        assert hub.counts()[0] == 1
    finally:
        hub.stop()


def reject_by_hand(a, sid, body):
    """Moves a queued return to rejected/ with body as the hub's answer, as sync does."""
    os.rename(a.dir / "outbox" / f"{sid}.jws", a.dir / "rejected" / f"{sid}.jws")
    (a.dir / "rejected" / f"{sid}.error.json").write_text(json.dumps(body))


def test_requeue_chooses_what_it_moves(offline_agent, tmp_path):
    a = offline_agent
    unauth, invalid, other = (a.submit("incident") for _ in range(3))
    reject_by_hand(a, unauth, {"error": "unauthenticated", "message": "unknown school"})
    reject_by_hand(a, invalid, {"error": "invalid", "message": "2 errors", "details": []})
    corrupt = str(uuid.uuid4())
    (a.dir / "rejected" / f"{corrupt}.jws").write_text("{not a jws")
    (a.dir / "rejected" / f"{corrupt}.error.json").write_text(
        json.dumps({"error": "corrupt", "message": "the queued file is not a return"}))
    # usage
    assert a.run("requeue").returncode == EX_USAGE
    assert a.run("requeue", "--all", unauth).returncode == EX_USAGE
    assert a.run("requeue", "--error", "invalid", unauth).returncode == EX_USAGE
    # what cannot be requeued, and says so
    r = a.run("requeue", str(uuid.uuid4()))
    assert r.returncode == 66 and "no return" in r.stderr
    r = a.run("requeue", other)
    assert r.returncode == 65 and "is queued, not rejected" in r.stderr
    assert a.run("requeue", "not-an-id").returncode == 65
    r = a.run("requeue", corrupt)
    assert r.returncode == 65 and "not a return" in r.stderr
    assert sorted(a.rejected()) == sorted([unauth, invalid, corrupt])
    # by the hub's error code
    r = a.run("requeue", "--all", "--error", "unauthenticated")
    assert r.returncode == EX_OK and r.stdout.split() == [unauth]
    assert sorted(a.outbox()) == sorted([unauth, other])
    # every rejected return but what is not a return at all
    r = a.run("requeue", "--all")
    assert r.returncode == EX_OK and r.stdout.split() == [invalid]
    assert a.rejected() == [corrupt]
    assert a.run("requeue", "--all", "--error", "invalid").returncode == EX_OK


def test_requeue_is_durable_before_it_reports(offline_agent, tmp_path):
    """The return is renamed back into the outbox and the outbox fsynced before the id is
    printed; only then does the kept rejection go."""
    a = offline_agent
    sid = a.submit("incident")
    reject_by_hand(a, sid, {"error": "unauthenticated", "message": "unknown school"})
    r, events = trace(a, tmp_path, "requeue", "--dir", a.dir, sid)
    assert r.returncode == EX_OK, r.stderr
    outbox, rejected = str(a.dir / "outbox"), str(a.dir / "rejected")
    move = events.index(("rename", f"{rejected}/{sid}.jws", f"{outbox}/{sid}.jws"))
    assert ("fsync", outbox) in events[move:]
    assert ("fsync", rejected) in events[move:]
    assert a.outbox() == [sid]


# ---------------------------------------------------------------------------------- TLS


def make_ca_and_cert(folder, name, san_ip=None):
    """A CA and a certificate it signs (PEM files), made with python3-cryptography."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30)))
    if san_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    paths = {k: folder / f"{name}-{k}.pem" for k in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def test_https_is_verified_and_client_certificates_work(tmp_path):
    import ssl

    server = make_ca_and_cert(tmp_path, "hub", san_ip="127.0.0.1")
    client = make_ca_and_cert(tmp_path, "school")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server["cert"], server["key"])
    ctx.load_verify_locations(client["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    key, path = county_key(tmp_path)
    proxy = FaultProxy(county_key=key, tls=ctx).start()
    try:
        a = Agent(tmp_path / "agent", proxy.url, path)
        sid = a.submit("incident")
        # the hub's certificate is not from a CA the system trusts: refused
        r = a.run("sync", "--now", "--timeout", "5")
        assert r.returncode == EX_TEMPFAIL and a.outbox() == [sid]
        assert "certificate" in r.stderr, r.stderr
        assert posts(proxy) == []
        # trusted, but no client certificate: the hub refuses the handshake
        r = a.run("sync", "--now", "--timeout", "5", "--cacert", server["ca"])
        assert r.returncode == EX_TEMPFAIL and a.outbox() == [sid]
        assert posts(proxy) == []
        # both: delivered
        r = a.run("sync", "--now", "--timeout", "5", "--cacert", server["ca"],
                  "--client-cert", client["cert"], "--client-key", client["key"])
        assert r.returncode == EX_OK, r.stderr
        assert a.sent() == [sid] and len(posts(proxy)) == 1
    finally:
        proxy.stop()

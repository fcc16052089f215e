#!/usr/bin/env python3
"""Bad input (issue 10): hostile requests sent as real HTTP to a real `wf dev`, with figures.

Python 3 standard library only. Driven by scripts/bad-input, which builds `wf` and passes its
path; `wf dev` runs on a free port of 127.0.0.1 with a fresh SQLite file in --tmp, with its own
default settings (the wf dev helpers are those of scripts/kill_under_load.py, imported).

Each case is one request (or one run of a workflow): the table row gives its HTTP status, the
error code, whether the body has the API's one error shape `{"error": {"code", "message",
"details"}}` (shared/app/src/http/error.rs), the time taken, the server's RSS before, after and
at its peak during the case (VmRSS sampled every few ms, VmHWM of /proc/<pid>/status), and
whether the server still answers `GET /health` afterwards.

This is a measurement, not a test: the bounds below are checked here, on this machine, and
printed. The exit is non-zero when a case
- answers 5xx, or another status than the one expected (the API's documented answer),
- answers 4xx without the error shape,
- leaves the server dead or not answering /health (it is started again for the next cases),
- runs past its time bound (validation of 5,000 steps, the 10^9 template loops: 1 s) or grows
  the server's RSS past its bound (the 20 MB bodies and the gigabyte templates: 50 MB),
- ends a run otherwise than expected (a template bound must fail the step with its code).
A watchdog SIGKILLs the server when its RSS passes --rss-cap-mb (default 3072), so that a
template that really allocates gigabytes cannot take the machine down; that case then fails.
"""

import argparse
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kill_under_load import Dev, free_port  # noqa: E402  (the same wf dev helpers)

MB = 1024 * 1024
MAX_JSON_DEPTH = 64  # wf_core::json_depth::MAX_JSON_DEPTH (shared/core/src/json_depth.rs)
MAX_URI_BYTES = 8 * 1024  # wf_app::http::MAX_URI_BYTES
HOOK_WF = "bad-input-hook"
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled"}


# ---------------------------------------------------------------------------------------------
# Memory of the server
# ---------------------------------------------------------------------------------------------


def proc_status(pid):
    """(VmRSS, VmHWM) of pid in bytes; (None, None) when it is gone."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    rss = int(ln.split()[1]) * 1024
                elif ln.startswith("VmHWM:"):
                    hwm = int(ln.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


class Sampler:
    """VmRSS of the server every few ms while a case runs; SIGKILLs it past the cap."""

    def __init__(self, pid, cap_bytes, interval=0.005):
        self.pid, self.cap, self.interval = pid, cap_bytes, interval
        self.peak = 0
        self.capped = False
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_ev.is_set():
            rss, _ = proc_status(self.pid)
            if rss is None:
                return
            self.peak = max(self.peak, rss)
            if rss > self.cap and not self.capped:
                self.capped = True
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                return
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop_ev.set()
        self.thread.join()


# ---------------------------------------------------------------------------------------------
# Raw HTTP: every byte under the script's control (chunked, no length, invalid UTF-8, 20 MB)
# ---------------------------------------------------------------------------------------------


class Answer:
    def __init__(self, status=None, body=b"", error=None, sent=0, headers=None):
        self.status, self.body, self.error, self.sent = status, body, error, sent
        self.headers = headers or {}

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


def request(port, method, path, body=None, headers=None, chunked=False, chunk_size=64 * 1024,
            timeout=60):
    """One request on a fresh connection. `body`: bytes, or an iterable of bytes pieces (sent
    as they come). With `chunked`, Transfer-Encoding: chunked and no Content-Length; else a
    Content-Length of the bytes (or headers' own). Stops sending as soon as the server answers
    (a refused 20 MB body is not pushed to the end), then reads the answer."""
    hdrs = {"Host": f"127.0.0.1:{port}", "Accept": "application/json"}
    hdrs.update(headers or {})
    pieces = []
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            pieces = [bytes(body[i:i + chunk_size]) for i in range(0, len(body), chunk_size)] or [b""]
            if not chunked:
                hdrs.setdefault("Content-Length", str(len(body)))
        else:
            pieces = body
    if chunked:
        hdrs["Transfer-Encoding"] = "chunked"
    elif body is None and method in ("POST", "PUT", "PATCH"):
        hdrs.setdefault("Content-Length", "0")
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"

    def frames():
        yield head.encode("latin-1")
        for p in pieces:
            if chunked:
                if p:
                    yield f"{len(p):x}\r\n".encode() + p + b"\r\n"
            else:
                yield p
        if chunked:
            yield b"0\r\n\r\n"

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent, error = 0, None
    try:
        sock.setblocking(False)
        end = time.monotonic() + timeout
        answered = False
        for frame in frames():
            view = memoryview(frame)
            while view:
                r, w, _ = select.select([sock], [sock], [], max(0.0, end - time.monotonic()))
                if r:
                    answered = True  # the server answered (or closed) before taking it all
                    break
                if not w:
                    error = "timed out sending"
                    break
                try:
                    n = sock.send(view)
                except (BrokenPipeError, ConnectionResetError) as e:
                    error = f"sending stopped: {type(e).__name__}"
                    answered = True
                    break
                except BlockingIOError:
                    continue
                sent += n
                view = view[n:]
            if answered or error:
                break
        sock.setblocking(True)
        sock.settimeout(max(1.0, end - time.monotonic()))
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
            data = resp.read()
            return Answer(resp.status, data, error, sent, dict(resp.getheaders()))
        except (OSError, http.client.HTTPException) as e:
            return Answer(None, b"", f"{error + '; ' if error else ''}no answer: {type(e).__name__} {e}",
                          sent)
    finally:
        sock.close()


def api(port, method, path, doc=None, timeout=60):
    body = None if doc is None else json.dumps(doc).encode()
    headers = {"Content-Type": "application/json"} if doc is not None else {}
    a = request(port, method, path, body, headers, timeout=timeout)
    return a.status, a.json()


def error_shape(doc):
    """Whether doc is the API's one error shape {"error": {"code", "message", "details"}}."""
    return (isinstance(doc, dict) and set(doc) == {"error"} and isinstance(doc["error"], dict)
            and isinstance(doc["error"].get("code"), str) and isinstance(doc["error"].get("message"), str)
            and "details" in doc["error"])


def loadavg():
    """The 1-minute load average (the machine may be shared: the times depend on it)."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def nested(depth, leaf=b"1"):
    """A JSON object nested `depth` levels: {"a":{"a":...1...}}."""
    return b'{"a":' * depth + leaf + b"}" * depth


def nested_arrays(depth):
    return b"[" * depth + b"]" * depth


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class Server:
    def __init__(self, args):
        self.args = args
        ns = argparse.Namespace(wf=args.wf, tmp=args.tmp, db=os.path.join(args.tmp, "dev.db"),
                                workflows=os.path.join(args.tmp, "workflows"), workers=args.workers,
                                visibility_secs=None, lease_secs=None, sweep_secs=None)
        os.makedirs(ns.workflows, exist_ok=True)
        self.dev = Dev(ns, free_port())
        self.port = self.dev.port
        self.restarts = 0

    @property
    def pid(self):
        return self.dev.proc.pid

    def start(self):
        self.dev.launch()
        if not self.dev.wait_ready(60):
            raise SystemExit(f"bad-input: wf dev did not start:\n{self.dev.stderr_tail()}")

    def alive(self):
        if self.dev.proc.poll() is not None:
            return False
        try:
            a = request(self.port, "GET", "/health", timeout=10)
            return a.status == 200
        except OSError:
            return False

    def restart(self):
        self.dev.stop()
        self.restarts += 1
        self.start()


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


class Case:
    def __init__(self, name, route, expect, send, shape=None, max_secs=None, max_rss_mb=None,
                 run=None, fresh=False):
        self.name, self.route, self.expect, self.send = name, route, expect, send
        # Run on a freshly started server (same DB): its RSS figures are its own, not the heap
        # left over by the cases before it.
        self.fresh = fresh
        # The error shape is required of every 4xx; `shape=False` documents a 4xx that has none.
        self.shape = shape
        self.max_secs, self.max_rss_mb = max_secs, max_rss_mb
        # For workflow runs: (expected execution status, expected error codes or None).
        self.run = run


def wf_doc(wid, output, loop=None, triggers=None):
    start = {"id": "start", "type": "start", "triggers": triggers or [{"type": "manual"}], "next": "out"}
    steps = [start]
    if loop is not None:
        start["next"] = "each"
        steps.append(loop)
    steps.append({"id": "out", "type": "output", "output": output})
    return {"id": wid, "name": f"bad input: {wid}", "config": {"timeoutMs": 900000}, "steps": steps}


def chain(n, wid, valid=True):
    """n condition steps chained by `else` (valid) or lacking `branches` (every step a problem),
    then an output: the smallest step text there is (5,000 valid ones are ~313 KB, 7,000 ~440 KB)."""
    steps = [{"id": "start", "type": "start", "triggers": [{"type": "manual"}], "next": "s1"}]
    for i in range(1, n):
        s = {"id": f"s{i}", "type": "condition", "else": f"s{i + 1}"}
        if valid:
            s["branches"] = []
        steps.append(s)
    steps.append({"id": f"s{n}", "type": "output", "output": 1})
    return {"id": wid, "name": wid, "steps": steps}


def compact(doc):
    return json.dumps(doc, separators=(",", ":")).encode()


class Runner:
    def __init__(self, args):
        self.args = args
        self.srv = Server(args)
        self.rows = []
        self.failures = []

    # -- set-up --------------------------------------------------------------------------------

    def setup(self):
        port = self.srv.port
        doc = wf_doc(HOOK_WF, {"keys": "{{ input | length }}"},
                     triggers=[{"type": "webhook", "scheme": "none"}, {"type": "manual"}])
        doc["config"]["active"] = True
        for method, path, body in (("POST", "/workflows", doc), ("POST", f"/workflows/{HOOK_WF}/publish", None),
                                   ("POST", f"/workflows/{HOOK_WF}/activate", None)):
            st, ans = api(port, method, path, body)
            if st not in (200, 201):
                raise SystemExit(f"bad-input: set-up {method} {path} answered {st}: {ans}")
        st, ans = api(port, "GET", f"/workflows/{HOOK_WF}")
        self.hook = urllib.parse.urlsplit(ans["workflow"]["webhookUrl"]).path
        self.token = self.hook.rsplit("/", 1)[1]

    def draft(self, doc):
        """Create (or replace) a draft; its validation."""
        st, ans = api(self.srv.port, "POST", "/workflows", doc)
        if st == 409:
            st, ans = api(self.srv.port, "PUT", f"/workflows/{doc['id']}", doc)
        if st not in (200, 201):
            raise SystemExit(f"bad-input: draft {doc['id']} answered {st}: {ans}")
        return ans.get("validation")

    # -- sending -----------------------------------------------------------------------------

    def hook_post(self, body, headers=None, **kw):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return lambda: request(self.srv.port, "POST", self.hook, body, {k: v for k, v in h.items() if v is not None}, **kw)

    def test_run(self, wid, input_doc, wait_secs=900):
        """POST /workflows/{wid}/executions?draft=true&wait=30, then GET until terminal. The
        answer of the POST, with the execution record as `.execution`."""
        def send():
            port = self.srv.port
            a = request(port, "POST", f"/workflows/{wid}/executions?draft=true&wait=30",
                        compact({"input": input_doc}), {"Content-Type": "application/json"},
                        timeout=60)
            doc = a.json()
            a.execution = None
            if a.status in (200, 202) and isinstance(doc, dict):
                eid = doc.get("executionId") or doc.get("id")
                end = time.monotonic() + wait_secs
                rec = doc if doc.get("status") in TERMINAL else None
                while rec is None and time.monotonic() < end and self.srv.dev.proc.poll() is None:
                    try:
                        g = request(port, "GET", f"/executions/{eid}", timeout=30)
                    except OSError:
                        break
                    d = g.json()
                    if g.status == 200 and d.get("status") in TERMINAL:
                        rec = d
                        break
                    time.sleep(0.05)
                a.execution = rec or {"id": eid, "status": "not terminal"}
            return a
        return send

    # -- one case ------------------------------------------------------------------------------

    def run_case(self, case):
        pid = self.srv.pid
        rss_before, hwm_before = proc_status(pid)
        with Sampler(pid, self.args.rss_cap_mb * MB) as sampler:
            t0 = time.monotonic()
            try:
                a = case.send()
            except OSError as e:
                a = Answer(None, b"", f"{type(e).__name__}: {e}")
            secs = time.monotonic() - t0
        rss_after, hwm_after = proc_status(pid)
        peak = max(sampler.peak, rss_before or 0, rss_after or 0)
        if hwm_after and hwm_before and hwm_after > hwm_before:
            peak = max(peak, hwm_after)  # the kernel's own peak rose during this case
        alive = self.srv.alive()
        doc = a.json()
        shape = error_shape(doc)
        code = doc["error"]["code"] if shape else ""
        problems = []
        if a.status is None:
            problems.append(f"no answer ({a.error})")
        elif a.status >= 500:
            problems.append(f"{a.status}")
        if a.status is not None and a.status not in case.expect:
            problems.append(f"status {a.status}, expected {'/'.join(map(str, sorted(case.expect)))}")
        if a.status is not None and 400 <= a.status < 500 and not shape and case.shape is not False:
            problems.append("4xx without the error shape")
        run_note = ""
        ex = getattr(a, "execution", None)
        if case.run and ex is not None:
            want_status, want_codes = case.run
            err = ex.get("error") or {}
            code = err.get("code") or ex.get("status")
            dur = ex.get("durationMs")
            run_note = f"execution {ex.get('status')}" + (f" {err.get('code')}" if err else "") + \
                       (f" in {dur} ms" if dur is not None else "") + \
                       (f", output {json.dumps(ex.get('output'))[:60]}" if ex.get("status") == "succeeded" else "")
            if ex.get("status") != want_status or (want_codes and err.get("code") not in want_codes):
                problems.append(f"run ended {ex.get('status')} {err.get('code') or ''}, expected "
                                f"{want_status} {'/'.join(want_codes or [])}".rstrip())
            case.execution = ex
        if case.shape is False and not shape and not run_note:
            run_note = "no error shape: documented (hyper's own 414 past ~64 KiB of URI)"
        if case.max_secs is not None and secs > case.max_secs:
            problems.append(f"took {secs:.2f} s > {case.max_secs} s")
        growth = (peak - (rss_before or 0)) / MB
        if case.max_rss_mb is not None and growth > case.max_rss_mb:
            problems.append(f"RSS grew {growth:.0f} MB > {case.max_rss_mb} MB")
        if sampler.capped:
            problems.append(f"SIGKILLed by the watchdog: RSS over {self.args.rss_cap_mb} MB")
        if not alive:
            problems.append("server dead or not answering /health")
        row = {
            "case": case.name, "route": case.route, "status": a.status, "code": code,
            "shape": "yes" if shape else ("-" if a.status is not None and a.status < 400 else "NO"),
            "secs": secs, "rssBeforeMB": (rss_before or 0) / MB, "rssAfterMB": (rss_after or 0) / MB,
            "peakMB": peak / MB, "growthMB": growth, "alive": alive, "sentBytes": a.sent,
            "note": run_note or (a.error or ""), "problems": problems,
            "shapeExempt": case.shape is False,
        }
        self.rows.append(row)
        self.print_row(row)
        if problems:
            self.failures.append(f"{case.name}: {'; '.join(problems)}")
        if not alive:
            self.srv.restart()
        return row

    HEADER = (f"{'case':<44} {'route':<31} {'http':>4} {'code':<22} {'shape':<5} {'secs':>7} "
              f"{'RSS before/after/peak MB':>24} {'+MB':>6} {'alive':<5} verdict")

    def print_row(self, r):
        rss = f"{r['rssBeforeMB']:.0f}/{r['rssAfterMB']:.0f}/{r['peakMB']:.0f}"
        verdict = "ok" if not r["problems"] else "FAIL: " + "; ".join(r["problems"])
        print(f"{r['case'][:44]:<44} {r['route'][:31]:<31} {str(r['status'] or '-'):>4} "
              f"{(r['code'] or '')[:22]:<22} {r['shape']:<5} {r['secs']:>7.3f} {rss:>24} "
              f"{r['growthMB']:>6.1f} {'yes' if r['alive'] else 'NO':<5} {verdict}"
              + (f"  [{r['note']}]" if r["note"] else ""), flush=True)

    # -- the cases -----------------------------------------------------------------------------

    def cases(self):
        a, port = self.args, self.srv.port
        J = {"Content-Type": "application/json"}
        hook = "POST /hooks/{id}/{token}"
        run = "POST /workflows/{id}/executions"
        manual = lambda body, **kw: (lambda: request(port, "POST", f"/workflows/{HOOK_WF}/executions",
                                                     body, J, **kw))
        get = lambda path: (lambda: request(port, "GET", path))
        L = MAX_JSON_DEPTH
        cs = []
        # Nesting: at the limit (accepted), one past it, 100,000 deep.
        cs += [
            Case(f"JSON nested {L} deep (the limit)", hook, {202}, self.hook_post(nested(L))),
            Case(f"JSON nested {L + 1} deep (one past)", hook, {400}, self.hook_post(nested(L + 1))),
            Case("JSON nested 100,000 deep (arrays)", hook, {400}, self.hook_post(nested_arrays(100_000))),
            Case(f"input nested {L} deep in all", run, {202},
                 manual(b'{"input":' + nested(L - 1) + b"}")),
            Case(f"input nested {L + 1} deep in all", run, {400},
                 manual(b'{"input":' + nested(L) + b"}")),
            Case("body nested 100,000 deep (arrays)", run, {400},
                 manual(b'{"input":' + nested_arrays(100_000) + b"}")),
            Case("validate: body nested 100,000 deep", f"POST /workflows/{{id}}/validate", {400},
                 lambda: request(port, "POST", f"/workflows/{HOOK_WF}/validate", nested_arrays(100_000), J)),
        ]
        # 20 MB: refused without reading it all (RSS flat).
        big = b'{"a":"' + b"x" * (20 * MB - 8) + b'"}'
        cs += [
            Case("20 MB body, Content-Length declared", hook, {413}, self.hook_post(big), max_rss_mb=50),
            Case("20 MB body, chunked (no length)", hook, {413}, self.hook_post(big, chunked=True),
                 max_rss_mb=50),
            Case("20 MB body, chunked, to the API", run, {413},
                 lambda: request(port, "POST", f"/workflows/{HOOK_WF}/executions", big, J, chunked=True),
                 max_rss_mb=50),
            Case("20 MB body, declared, to POST /workflows", "POST /workflows", {413},
                 lambda: request(port, "POST", "/workflows", big, J), max_rss_mb=50),
        ]
        # Not JSON, odd JSON.
        cs += [
            Case("invalid UTF-8 in a string", hook, {400}, self.hook_post(b'{"a":"\xff\xfe\xfd"}')),
            Case("invalid UTF-8 to the API", run, {400}, manual(b'{"input":{"a":"\xc3\x28"}}')),
            Case("number 1e999999", hook, {400}, self.hook_post(b'{"n":1e999999}')),
            Case("number 1e999999 to the API", run, {400}, manual(b'{"input":{"n":1e999999}}')),
            Case("duplicate keys (last wins)", hook, {202}, self.hook_post(b'{"a":1,"a":2,"a":3}')),
            Case("duplicate keys to the API", run, {202}, manual(b'{"input":{"a":1},"input":{"b":2}}')),
            Case("no Content-Type", hook, {415}, self.hook_post(b'{"a":1}', {"Content-Type": None})),
            Case("Content-Type text/plain", hook, {415}, self.hook_post(b'{"a":1}', {"Content-Type": "text/plain"})),
            Case("no Content-Type to the API", run, {415},
                 lambda: request(port, "POST", f"/workflows/{HOOK_WF}/executions", b'{"input":{}}')),
            Case("Content-Type form to the API", run, {415},
                 lambda: request(port, "POST", f"/workflows/{HOOK_WF}/executions", b'{"input":{}}',
                                 {"Content-Type": "application/x-www-form-urlencoded"})),
            Case("chunked JSON without length", hook, {202}, self.hook_post(b'{"a":1}', chunked=True)),
            Case("chunked JSON to the API", run, {202},
                 lambda: request(port, "POST", f"/workflows/{HOOK_WF}/executions", b'{"input":{}}', J,
                                 chunked=True)),
        ]
        # Hostile ids in paths.
        long_id = "a" * 10_000
        ids = [("../", "..%2F..%2Fetc%2Fpasswd"), ("raw ../", "../../etc/passwd"),
               ("unicode", urllib.parse.quote("été-😀-ｗｆ")), ("10,000 chars", long_id)]
        for label, pid in ids:
            expect = {414} if len(pid) > MAX_URI_BYTES else {400, 404}
            cs.append(Case(f"GET /workflows/{{id}}: {label}", "GET /workflows/{id}", expect,
                           get(f"/workflows/{pid}")))
            cs.append(Case(f"GET /executions/{{id}}: {label}", "GET /executions/{id}", expect,
                           get(f"/executions/{pid}")))
            cs.append(Case(f"webhook workflow id: {label}", hook, expect,
                           lambda pid=pid: request(port, "POST", f"/hooks/{pid}/{self.token}", b"{}", J)))
            cs.append(Case(f"webhook token: {label}", hook, expect,
                           lambda pid=pid: request(port, "POST", f"/hooks/{HOOK_WF}/{pid}", b"{}", J)))
        # Past ~64 KiB of URI hyper itself answers 414 with an empty body, before any router runs
        # (documented in README.md): the one 4xx without the error shape.
        cs.append(Case("GET /workflows/{id}: 70,000 chars", "GET /workflows/{id}", {414},
                       get(f"/workflows/{'a' * 70_000}"), shape=False))
        # 5,000 steps: validation under 1 s, through the API (a definition may be up to 384 KiB,
        # what one stored draft can hold: 5,000 valid steps are ~313 KB) and with `wf validate`.
        # A definition past 384 KiB is 413.
        for label, doc, expect in (
                ("5,000 valid steps (313 KB)", chain(5000, "bad-input-steps"), {200}),
                ("5,000 steps, each a problem", chain(5000, "bad-input-steps", valid=False), {200}),
                ("7,000 valid steps (over 384 KiB)", chain(7000, "bad-input-steps"), {413})):
            body = compact(doc)
            cs.append(Case(f"validate {label}", "POST /workflows/{id}/validate", expect,
                           lambda body=body: request(port, "POST", "/workflows/bad-input-steps/validate",
                                                     body, J), max_secs=1.0))
        for label, valid in (("5,000 valid steps", True), ("5,000 steps, each a problem", False)):
            path = os.path.join(a.tmp, "steps", "valid" if valid else "invalid", "bad-input-steps.json")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(compact(chain(5000, "bad-input-steps", valid=valid)))
            cs.append(Case(f"wf validate {label}", "wf validate (CLI)", {0 if valid else 1},
                           lambda path=path: self.cli_validate(path), max_secs=1.0))
        # Templates: fuel, range and rendering bounds stop them (test runs of drafts).
        tpl = [
            ("range(10^9) loop", "{% for i in range(1000000000) %}x{% endfor %}", {},
             ["template.error", "template.limit"], 1.0, None),
            ("10^5 x 10^4 = 10^9 nested loop (fuel)",
             "{% for i in range(100000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}", {},
             ["template.limit"], 1.0, None),
            ("100k x input of 100 KB = 10 GB rendered", "{% for i in range(100000) %}{{ input.s }}{% endfor %}",
             {"s": "y" * 100_000}, ["template.too_large", "template.limit"], None, 50),
            ("100k x 1 MB variable = 100 GB rendered",
             '{% set s = "x" * 1000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}', {},
             ["template.too_large", "template.limit"], None, 50),
            ("1 MB x 1000 repeated (1 GB value)", '{{ ("x" * 1000000) * 1000 }}', {},
             ["template.too_large", "template.error"], None, 50),
            ("list of 1000 x 1 MB (1 GB value)", '{{ ["x" * 1000000] * 1000 }}', {},
             ["template.too_large", "template.error"], None, 50),
            ("join 1000 with a 1 MB separator (1 GB)", '{{ range(1000) | join("x" * 1000000) }}', {},
             ["template.too_large", "template.error", "template.limit"], None, 50),
            ("replace 300 chars by 1 MB each (300 MB)", '{{ ("a" * 300) | replace("a", "x" * 1000000) }}', {},
             ["template.too_large", "template.error", "template.limit"], None, 50),
            ("indent(3*10^8) of two lines (300 MB)", '{{ "a\\nb" | indent(300000000) }}', {},
             ["template.too_large", "template.error", "template.limit"], None, 50),
            ("40 x 1 MB concatenated with ~ (40 MB)",
             '{% set s = "x" * 1000000 %}{{ ' + " ~ ".join(["s"] * 40) + " }}",
             {}, ["template.too_large", "template.error", "template.limit"], None, 50),
        ]
        # Many strings of at most 1 MiB each, kept alive at once: 8,000 copies fit in FUEL (8 GB
        # and more); MAX_EVALUATION_BYTES (64 MiB built by one evaluation) stops them, so the
        # RSS bound is that budget plus the allocator's slack. A list built by walking a string
        # (`s | list`: a million chars walked for a million items) meets MAX_ITERATED_ITEMS (2
        # million items walked by one evaluation) first: template.limit.
        keep = ('{% set ns = namespace(l=[]) %}{% set s = "x" * 1000000 %}{% for i in range(8000) %}'
                '{% set ns.l = ns.l + [COPY] %}{% endfor %}{{ ns.l | length }}')
        for label, copy, code in (("s ~ i", "s ~ i", "template.too_large"),
                                  ("s | upper", "s | upper", "template.too_large"),
                                  ("s[1:]", "s[1:]", "template.too_large"),
                                  ("s | list, 25 MB each", "s | list", "template.limit")):
            tpl.append((f"namespace list of 8,000 x ({label}) (8 GB kept)", keep.replace("COPY", copy),
                        {}, [code], None, 100))
        # Fuel counts instructions, and one instruction can walk a whole list or string:
        # MAX_ITERATED_ITEMS stops these within a second (without it: minutes of CPU).
        tpl.append(("20,000 x (2 in a 1,000,000-item list) (2*10^10 compared)",
                    '{% set l = [1] * 1000000 %}{% for i in range(20000) %}{{ 2 in l }}{% endfor %}',
                    {}, ["template.limit"], 1.0, 50))
        tpl.append(("20,000 x (length of a 1 MB string) (2*10^10 chars counted)",
                    '{% set s = "x" * 1000000 %}{% for i in range(20000) %}{{ s | length }}{% endfor %}',
                    {}, ["template.limit"], 1.0, 50))
        for i, (label, text, inp, codes, max_secs, max_rss) in enumerate(tpl):
            wid = f"bad-input-tpl-{i}"
            cs.append(Case(f"template {label}", "POST /workflows/{id}/executions", {200, 202},
                           self.prepared(wf_doc(wid, {"v": text}), self.test_run(wid, inp)),
                           max_secs=max_secs, max_rss_mb=max_rss, run=("failed", codes)))
        # The literal gigabyte template of the issue: refused by validation (422), never run.
        lit = '{% for i in range(100000) %}{{ "x" * 100000000 }}{% endfor %}'
        cs.append(Case("template 100k x \"x\" * 10^8 (literal)", "POST /workflows/{id}/executions",
                       {422}, self.prepared(wf_doc("bad-input-tpl-literal", {"v": lit}),
                                            self.test_run("bad-input-tpl-literal", {})), max_rss_mb=50))
        # A 100,000-item loop (10,000 with --quick) at concurrency 50.
        n = a.loop_items
        loop = {"id": "each", "type": "loop", "items": f"{{{{ range({n}) | list }}}}", "concurrency": 50,
                "steps": [{"id": "one", "type": "output", "output": {"i": "{{ item }}"}}], "next": "out"}
        cs.append(Case(f"loop of {n:,} items, concurrency 50", "POST /workflows/{id}/executions", {200, 202},
                       self.prepared(wf_doc("bad-input-loop", {"n": "{{ steps.each.output | length }}"},
                                            loop=loop), self.test_run("bad-input-loop", {},
                                                                      wait_secs=a.loop_wait_secs)),
                       run=("succeeded", None), fresh=True))
        return cs

    def prepared(self, doc, send):
        """`send`, with the draft stored first (untimed: run_case calls .prepare before)."""
        def go():
            return send()
        go.prepare = lambda: self.draft(doc)
        return go

    def cli_validate(self, path):
        p = subprocess.run([self.args.wf, "validate", "--json", path], capture_output=True, timeout=120)
        problems = None
        try:
            problems = len(json.loads(p.stdout))
        except ValueError:
            pass
        a = Answer(p.returncode, b"", f"exit {p.returncode}, {problems} problem(s)")
        return a

    def main(self):
        self.srv.start()
        try:
            self.setup()
            cases = [c for c in self.cases() if not self.args.only
                     or any(o.lower() in c.name.lower() for o in self.args.only)]
            print(f"bad-input: wf dev 127.0.0.1:{self.srv.port} (pid {self.srv.pid}, wf dev defaults, "
                  f"--workers {self.args.workers or 'default'}); {len(cases)} cases; RSS cap "
                  f"{self.args.rss_cap_mb} MB; load average {loadavg()} on {os.cpu_count()} CPUs",
                  flush=True)
            print(self.HEADER)
            total0 = time.monotonic()
            for c in cases:
                if c.fresh:
                    self.srv.dev.stop()
                    self.srv.start()
                if hasattr(c.send, "prepare"):
                    c.send.prepare()
                self.run_case(c)
            total = time.monotonic() - total0
        finally:
            self.srv.dev.stop()
        return self.report(total)

    def report(self, total):
        rows = self.rows
        by = {r["case"]: r for r in rows}
        five = sum(1 for r in rows if isinstance(r["status"], int) and r["status"] >= 500)
        four = [r for r in rows if isinstance(r["status"], int) and 400 <= r["status"] < 500]
        shaped = sum(1 for r in four if r["shape"] == "yes")
        exempt = sum(1 for r in four if r["shape"] != "yes" and r["shapeExempt"])
        maxgrowth = max((r["growthMB"] for r in rows if "20 MB" in r["case"]), default=0)
        tgrowth = max((r["growthMB"] for r in rows if r["case"].startswith("template")), default=0)

        def secs(part):
            r = next((r for k, r in by.items() if part in k), None)
            return f"{r['secs']:.3f} s" if r else "n/a"
        loop = next((r for r in rows if r["case"].startswith("loop of")), None)
        summary = {
            "cases": len(rows), "failed": len(self.failures), "http5xx": five, "http4xx": len(four),
            "http4xxWithErrorShape": shaped, "serverRestarts": self.srv.restarts,
            "maxRssGrowth20MbBodyMB": round(maxgrowth, 1), "maxRssGrowthTemplatesMB": round(tgrowth, 1),
            "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
            "totalSecs": round(total, 1),
        }
        summary["loadAverageAtEnd"] = loadavg()
        print("BAD_INPUT " + json.dumps(summary, sort_keys=True))
        headline = (
            f"{len(rows)} cases, {len(rows) - len(self.failures)} ok, {len(self.failures)} failed; "
            f"5xx {five}; 4xx {len(four)} ({shaped} in the error shape"
            f"{f', {exempt} documented without it' if exempt else ''}); server restarts "
            f"{self.srv.restarts}; 20 MB bodies RSS +{maxgrowth:.1f} MB max; validate: 5,000 steps "
            f"{secs('wf validate 5,000 valid')} (CLI), {secs('validate 5,000 valid')} (API), 5,000 invalid {secs('validate 5,000 steps, each')} (API) / "
            f"{secs('wf validate 5,000 steps, each')} (CLI); 10^9 template loops "
            f"{secs('template range(10^9)')} / {secs('template 10^5 x 10^4')}; templates RSS "
            f"+{tgrowth:.1f} MB max; loop "
            + (f"of {self.args.loop_items:,} items {loop['secs']:.1f} s, peak RSS {loop['peakMB']:.0f} MB "
               f"(+{loop['growthMB']:.0f})" if loop else "n/a")
            + f"; load average {loadavg()} on {os.cpu_count()} CPUs")
        print("bad-input headline: " + headline)
        if self.failures:
            print("bad-input: FAILED")
            for f in self.failures:
                print(f"  - {f}")
            return 1
        print("bad-input: OK (no 5xx, every 4xx in the error shape, server alive, bounds held)")
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wf", required=True, help="the wf binary")
    p.add_argument("--tmp", required=True, help="a scratch directory (DB, workflows, logs)")
    p.add_argument("--quick", action="store_true", help="the loop case with 10,000 items, not 100,000")
    p.add_argument("--loop-items", type=int, help="items of the loop case (default 100000; 10000 quick)")
    p.add_argument("--loop-wait-secs", type=int, default=1200, help="bound of the wait for the loop")
    p.add_argument("--workers", type=int, default=None, help="wf dev --workers (default: wf dev's)")
    p.add_argument("--only", action="append", metavar="TEXT",
                   help="run only the cases whose name contains TEXT (repeatable), e.g. --only loop")
    p.add_argument("--rss-cap-mb", type=int, default=3072,
                   help="SIGKILL the server when its RSS passes this (protects the machine)")
    args = p.parse_args()
    # A SIGTERM (timeout, scripts/prove) unwinds like Ctrl-C: wf dev is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.loop_items is None:
        args.loop_items = 10_000 if args.quick else 100_000
    return Runner(args).main()


if __name__ == "__main__":
    sys.exit(main())

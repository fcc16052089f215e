#!/usr/bin/env python3
"""Kill under load (issue 10): N webhooks at concurrency C against `wf dev`, a SIGKILL of the
server in the middle and a restart on the same SQLite file and port.

Python 3 standard library only (threads + http.client). Driven by scripts/kill-under-load, which
builds `wf` and passes its path; everything listens on 127.0.0.1.

What runs:
- a peer: an HTTP server on 127.0.0.1 that records every request's `Idempotency-Key` header and
  body, and answers 200 `{}` after a short delay (so some steps are in flight at the kill);
- a workflow (webhook `scheme: none`, active) whose one action POSTs `{"order": i}` to the peer;
- `wf dev` on a free port; N POSTs to its webhook, each with its own `Idempotency-Key`;
  a request that fails to connect (the gap of the kill) or gets a 5xx is sent again with the
  same key until it is answered;
- after about N/2 answers: SIGKILL, then the same command again (same DB, same port).

Then it waits (bounded) until every execution is terminal, reads each one through the HTTP
API, and checks: every key was answered 202 with one execution id, the ids are distinct and are
exactly the workflow's executions in the store, each execution carries its key and its order,
every execution succeeded, and every request the peer saw carries the key `<executionId>/call`
of the execution of its order (repeats of a step after the kill reuse that one key).
Prints the figures; exits 1 when an invariant fails, 2 when the run itself could not be done.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled"}
WORKFLOW_ID = "kill-under-load"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# The peer
# ---------------------------------------------------------------------------------------------


class Peer:
    """Records (key, order) of every request; answers 200 {} after `delay` seconds."""

    def __init__(self, delay):
        self.delay = delay
        self.lock = threading.Lock()
        self.requests = []  # (monotonic time, key, order or None, raw body on parse failure)
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                key = self.headers.get("Idempotency-Key")
                try:
                    order = json.loads(raw)["order"]
                except (ValueError, KeyError, TypeError):
                    order = None
                with peer.lock:
                    peer.requests.append((time.monotonic(), key, order, raw if order is None else None))
                time.sleep(peer.delay)
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

            def handle_error(self, request, client_address):
                # The killed wf dev drops its connections to the peer: expected, not news.
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# wf dev
# ---------------------------------------------------------------------------------------------


class Dev:
    def __init__(self, args, port):
        self.args = args
        self.port = port
        self.proc = None
        self.launches = 0
        self.env = dict(os.environ)
        # A setting left None is not passed: wf dev uses its own default (and the variable is
        # removed from the environment, so that the caller's shell does not set it either).
        if args.lease_secs is None:
            self.env.pop("WF_LEASE_SECS", None)
        else:
            self.env["WF_LEASE_SECS"] = str(args.lease_secs)
        if args.visibility_secs is None:
            self.env.pop("WF_QUEUE_VISIBILITY_SECS", None)
        self.env.setdefault("WF_LOG", "warn")

    def cmd(self):
        a = self.args
        cmd = [a.wf, "dev", "--addr", f"127.0.0.1:{self.port}", "--db", a.db, "--workflows", a.workflows]
        for flag, value in (("--workers", a.workers), ("--visibility-secs", a.visibility_secs),
                            ("--sweep-secs", a.sweep_secs)):
            if value is not None:
                cmd += [flag, str(value)]
        return cmd

    def launch(self):
        self.launches += 1
        out = open(os.path.join(self.args.tmp, f"dev.{self.launches}.out"), "wb")
        err = open(os.path.join(self.args.tmp, f"dev.{self.launches}.err"), "wb")
        self.proc = subprocess.Popen(self.cmd(), stdout=out, stderr=err, env=self.env)
        with open(os.path.join(self.args.tmp, "dev.pid"), "w") as f:
            f.write(str(self.proc.pid))

    def wait_ready(self, timeout):
        """Until GET /health answers 200 (False when the process died or the time ran out)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stderr_tail(self, lines=20):
        path = os.path.join(self.args.tmp, f"dev.{self.launches}.err")
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def api_get(port, path, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, (json.loads(body) if body else None)
    finally:
        c.close()


def list_executions(port):
    """Every execution of the workflow from the list endpoint, following its cursors."""
    items, cursor = [], None
    while True:
        q = {"limit": "1000"}
        if cursor:
            q["cursor"] = cursor
        status, page = api_get(port, f"/workflows/{WORKFLOW_ID}/executions?" + urllib.parse.urlencode(q))
        if status != 200:
            raise RuntimeError(f"GET executions answered {status}: {page}")
        items += page["items"]
        cursor = page.get("nextCursor")
        if not cursor:
            return items


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------


class Load:
    def __init__(self, args, port, hook_path):
        self.args = args
        self.port = port
        self.hook_path = hook_path
        self.lock = threading.Lock()
        self.next_index = 0
        self.answered = 0
        self.answers = {}  # index -> list of (executionId, duplicate)
        self.retries_conn = 0  # sends again after a connection error / timeout
        self.retries_5xx = 0  # sends again after a 5xx answer
        self.errors = Counter()  # kinds of connection errors seen
        self.refused = {}  # index -> (status, body) of a final non-202 answer
        self.kill_event = threading.Event()
        self.kill_threshold = max(1, int(args.requests * args.kill_at))
        self.deadline = None

    def key(self, i):
        return f"{self.args.run_id}-{i}"

    def take(self):
        with self.lock:
            if self.next_index >= self.args.requests:
                return None
            i = self.next_index
            self.next_index += 1
            return i

    def client(self):
        conn = None
        while True:
            i = self.take()
            if i is None:
                break
            body = json.dumps({"order": i}).encode()
            headers = {"Content-Type": "application/json", "Idempotency-Key": self.key(i)}
            while True:
                if time.monotonic() > self.deadline:
                    with self.lock:
                        self.refused[i] = (None, "gave up: the send deadline passed")
                    break
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    conn.request("POST", self.hook_path, body=body, headers=headers)
                    r = conn.getresponse()
                    raw = r.read()
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    with self.lock:
                        self.retries_conn += 1
                        self.errors[type(e).__name__] += 1
                    time.sleep(0.05)
                    continue
                if r.status >= 500:
                    with self.lock:
                        self.retries_5xx += 1
                        self.errors[f"http {r.status}"] += 1
                    time.sleep(0.05)
                    continue
                with self.lock:
                    if r.status == 202:
                        a = json.loads(raw)
                        self.answers.setdefault(i, []).append((a["executionId"], bool(a.get("duplicate"))))
                    else:
                        self.refused[i] = (r.status, raw[:300].decode(errors="replace"))
                    self.answered += 1
                    if self.answered == self.kill_threshold:
                        self.kill_event.set()
                break
        if conn is not None:
            conn.close()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def wf_dev_defaults(wf):
    """wf dev's own defaults: `--visibility-secs`, `--sweep-secs` and `--workers` from its
    `--help` (clap's `[default: N]`), the lease from DEFAULT_LEASE_MS in wf-core's engine (an
    environment variable only, so not in the help); the values of 2026-12 when unreadable."""
    import re
    found = {"visibility_secs": 30, "sweep_secs": 60, "workers": 4, "lease_secs": 30}
    try:
        text = subprocess.run([wf, "dev", "--help"], capture_output=True, text=True, timeout=30).stdout
        for flag, key in (("--visibility-secs", "visibility_secs"), ("--sweep-secs", "sweep_secs"),
                          ("--workers", "workers")):
            m = re.search(re.escape(flag) + r" <[A-Z_]+>\s.*?\[default: (\d+)\]", text, re.S)
            if m:
                found[key] = int(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared", "core", "src",
                       "engine", "mod.rs")
    try:
        with open(src) as f:
            m = re.search(r"DEFAULT_LEASE_MS: i64 = ([0-9_]+);", f.read())
        if m:
            found["lease_secs"] = int(m.group(1).replace("_", "")) // 1000
    except OSError:
        pass
    return found


def effective_settings(args):
    """args.eff_<setting>: the value wf dev runs with (what is passed, else its default)."""
    defaults = wf_dev_defaults(args.wf)
    for key in ("visibility_secs", "lease_secs", "sweep_secs", "workers"):
        value = getattr(args, key)
        setattr(args, "eff_" + key, defaults[key] if value is None else value)


def describe_settings(args):
    """How the settings were set, for the first line."""
    def one(label, key):
        value = getattr(args, key)
        return f"{label} {getattr(args, 'eff_' + key)}" + (" (wf dev default)" if value is None else "")
    return ", ".join([one("--workers", "workers"), one("--visibility-secs", "visibility_secs"),
                      one("WF_LEASE_SECS=", "lease_secs").replace("= ", "="),
                      one("--sweep-secs", "sweep_secs")])


def write_workflow(args, peer_port):
    wf = {
        "id": WORKFLOW_ID,
        "name": "Kill under load",
        "config": {"active": True},
        "steps": [
            {"id": "start", "type": "start", "next": "call",
             "triggers": [{"type": "webhook", "scheme": "none"}]},
            {"id": "call", "type": "action", "action": "http.request",
             "params": {"url": f"http://127.0.0.1:{peer_port}/orders", "method": "POST",
                        "json": {"order": "{{ input.order }}"}},
             "timeoutMs": 10000, "retry": {"maxRetries": 3, "backoffMs": 200}, "next": "out"},
            {"id": "out", "type": "output", "output": {"order": "{{ input.order }}"}},
        ],
    }
    path = os.path.join(args.workflows, f"{WORKFLOW_ID}.json")
    with open(path, "w") as f:
        json.dump(wf, f, indent=2)
    v = subprocess.run([args.wf, "validate", path], capture_output=True, text=True)
    if v.returncode != 0:
        sys.exit(f"kill-under-load: the workflow is invalid:\n{v.stdout}{v.stderr}")


def parse_ms(value):
    """A timestamp of the API (RFC 3339 text or epoch milliseconds) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return value / 1000.0
    from datetime import datetime
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def fetch_all(port, ids, threads=8):
    """GET /executions/{id} for every id (a few threads, one keep-alive connection each)."""
    ids = list(ids)
    out, lock, pos = {}, threading.Lock(), [0]

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if pos[0] >= len(ids):
                    break
                eid = ids[pos[0]]
                pos[0] += 1
            for attempt in range(3):
                try:
                    conn.request("GET", f"/executions/{eid}")
                    r = conn.getresponse()
                    body = r.read()
                    with lock:
                        out[eid] = (r.status, json.loads(body) if body else None)
                    break
                except (OSError, http.client.HTTPException, ValueError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    if attempt == 2:
                        with lock:
                            out[eid] = (None, None)
        conn.close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wf", required=True, help="the wf binary")
    p.add_argument("--tmp", required=True, help="a scratch directory (DB, workflows, logs)")
    p.add_argument("--requests", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", type=int, default=16, help="wf dev --workers")
    p.add_argument("--visibility-secs", type=int, default=None,
                   help="wf dev --visibility-secs (default 5; not passed with --default-settings)")
    p.add_argument("--lease-secs", type=int, default=None,
                   help="WF_LEASE_SECS of wf dev (default 5; not set with --default-settings)")
    p.add_argument("--sweep-secs", type=int, default=None,
                   help="wf dev --sweep-secs (default 5; not passed with --default-settings)")
    p.add_argument("--default-settings", action="store_true",
                   help="pass neither --visibility-secs, WF_LEASE_SECS nor --sweep-secs (and clear "
                        "WF_LEASE_SECS / WF_QUEUE_VISIBILITY_SECS from wf dev's environment): wf dev "
                        "runs with its own defaults (30 s, 30 s, 60 s: read from `wf dev --help` and "
                        "DEFAULT_LEASE_MS), which the figures then use; one given explicitly is still "
                        "passed. --workers is passed either way (a throughput setting)")
    p.add_argument("--peer-delay-ms", type=int, default=30)
    p.add_argument("--kill-at", type=float, default=0.5, help="fraction of answers before SIGKILL")
    p.add_argument("--send-secs", type=int, default=600, help="bound of the sending phase")
    p.add_argument("--wait-secs", type=int, default=None,
                   help="bound of the wait for terminal (default 120; 300 with --default-settings)")
    p.add_argument("--dump", help="write every execution record and peer request (JSON) here")
    args = p.parse_args()
    if not args.default_settings:
        for name in ("visibility_secs", "lease_secs", "sweep_secs"):
            if getattr(args, name) is None:
                setattr(args, name, 5)
    if args.wait_secs is None:
        args.wait_secs = 300 if args.default_settings else 120
    effective_settings(args)
    args.db = os.path.join(args.tmp, "dev.db")
    args.workflows = os.path.join(args.tmp, "workflows")
    os.makedirs(args.workflows, exist_ok=True)
    args.run_id = f"kul-{int(time.time())}-{os.getpid()}"

    peer = Peer(args.peer_delay_ms / 1000.0)
    write_workflow(args, peer.port)
    port = free_port()
    dev = Dev(args, port)
    try:
        return run(args, peer, dev)
    finally:
        dev.stop()
        peer.stop()


def run(args, peer, dev):
    dev.launch()
    if not dev.wait_ready(60):
        print(f"kill-under-load: wf dev did not start:\n{dev.stderr_tail()}", file=sys.stderr)
        return 2
    status, body = api_get(dev.port, f"/workflows/{WORKFLOW_ID}")
    if status != 200 or not (body or {}).get("workflow", {}).get("webhookUrl"):
        print(f"kill-under-load: no webhook URL ({status}: {body})", file=sys.stderr)
        return 2
    hook_path = urllib.parse.urlsplit(body["workflow"]["webhookUrl"]).path

    print(f"kill-under-load: {args.requests} webhooks at concurrency {args.concurrency} against "
          f"wf dev 127.0.0.1:{dev.port} ({describe_settings(args)}); "
          f"peer 127.0.0.1:{peer.port} answers after {args.peer_delay_ms} ms; SIGKILL after "
          f"{int(args.requests * args.kill_at)} answers", flush=True)

    load = Load(args, dev.port, hook_path)
    started = time.monotonic()
    load.deadline = started + args.send_secs
    clients = [threading.Thread(target=load.client, daemon=True) for _ in range(args.concurrency)]
    for t in clients:
        t.start()

    # The kill: SIGKILL when about half the requests are answered, then the same command again.
    kill = {}
    if load.kill_event.wait(args.send_secs):
        with load.lock:
            kill["answered"] = load.answered
        kill["peer_before"] = len(peer.snapshot())
        kill["wall"] = time.time()
        kill["mono"] = time.monotonic()
        dev.kill()
        dev.launch()
        ready = dev.wait_ready(60)
        kill["ready_secs"] = time.monotonic() - kill["mono"]
        if not ready:
            print(f"kill-under-load: wf dev did not come back:\n{dev.stderr_tail()}", file=sys.stderr)
            return 2
    for t in clients:
        t.join(max(0.0, load.deadline - time.monotonic()) + 35)
    send_secs = time.monotonic() - started

    # Wait (bounded) until every execution of the workflow is terminal.
    wait_start = time.monotonic()
    listed = []
    while True:
        try:
            listed = list_executions(dev.port)
        except (OSError, RuntimeError, ValueError) as e:
            print(f"kill-under-load: listing failed: {e}", file=sys.stderr)
        open_ = [e for e in listed if e["status"] not in TERMINAL]
        if listed and not open_:
            break
        if time.monotonic() - wait_start > args.wait_secs:
            break
        time.sleep(0.5)
    drain_secs = time.monotonic() - wait_start
    all_done_secs = time.monotonic() - started

    # Read every execution (the 202 answers' and the store's) through the API.
    answered_ids = {eid for lst in load.answers.values() for eid, _ in lst}
    listed_ids = {e["id"] for e in listed}
    records = fetch_all(dev.port, answered_ids | listed_ids)
    peer_reqs = peer.snapshot()
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump({"kill": kill, "answers": {load.key(i): a for i, a in load.answers.items()},
                       "records": {e: r for e, (_, r) in records.items()},
                       "peer": [(t, k, o) for t, k, o, _ in peer_reqs]}, f)
    return report(args, load, kill, records, listed, peer_reqs, send_secs, drain_secs, all_done_secs)


def report(args, load, kill, records, listed, peer_reqs, send_secs, drain_secs, all_done_secs):
    failures = []
    n = args.requests
    keys_answered = {i for i, lst in load.answers.items() if lst}
    ids_of_key = {i: {eid for eid, _ in lst} for i, lst in load.answers.items()}
    answers_202 = sum(len(lst) for lst in load.answers.values())
    duplicates = sum(1 for lst in load.answers.values() for _, dup in lst if dup)
    multi_id_keys = [i for i, s in ids_of_key.items() if len(s) > 1]
    exec_of_key = {i: next(iter(s)) for i, s in ids_of_key.items() if len(s) == 1}
    keys_of_exec = defaultdict(set)
    for i, s in ids_of_key.items():
        for eid in s:
            keys_of_exec[eid].add(i)
    distinct_ids = set(keys_of_exec)
    shared_ids = [e for e, ks in keys_of_exec.items() if len(ks) > 1]
    listed_ids = {e["id"] for e in listed}
    found = {eid for eid, (st, _) in records.items() if st == 200}
    missing = sorted(distinct_ids - found)
    not_listed = sorted(distinct_ids - listed_ids)
    extra = sorted(listed_ids - distinct_ids)

    statuses = Counter()
    wrong_trigger = []
    lease_lost_steps = 0
    taken_over = []  # executions whose call step lost a lease (it was running at the kill)
    call_attempts = Counter()
    finished_at = {}
    start_delay = {}  # execution created -> its start step ran
    for eid in distinct_ids:
        st, rec = records.get(eid, (None, None))
        if st != 200 or not rec:
            continue
        statuses[rec["status"]] += 1
        i = next(iter(keys_of_exec[eid]))
        trig = rec.get("trigger") or {}
        if trig.get("idempotencyKey") != load.key(i) or (rec.get("input") or {}).get("order") != i:
            wrong_trigger.append(eid)
        finished_at[eid] = parse_ms(rec.get("finishedAt"))
        created = parse_ms(rec.get("startedAt"))
        for s in rec.get("steps") or []:
            if s.get("path") == "start" and created and s.get("startedAt"):
                start_delay[eid] = parse_ms(s["startedAt"]) - created
            if s.get("stepId", s.get("id")) == "call" or s.get("path") == "call":
                call_attempts[s.get("attempts")] += 1
                if s.get("leaseLost"):
                    lease_lost_steps += 1
                    taken_over.append(eid)

    # The peer: every request's key must be `<executionId>/call` of the execution of its order.
    peer_keys = Counter(k for _, k, _, _ in peer_reqs)
    keys_by_order = defaultdict(set)
    bad_peer = []
    for _, k, order, raw in peer_reqs:
        if order is None:
            bad_peer.append((k, raw[:100] if raw else raw))
            continue
        keys_by_order[order].add(k)
        eid = exec_of_key.get(order)
        if k is None or eid is None or k != f"{eid}/call":
            bad_peer.append((k, order))
    repeats = {k: c for k, c in peer_keys.items() if c > 1}
    orders_with_many_keys = [o for o, ks in keys_by_order.items() if len(ks) > 1]
    peer_execs = {k.rsplit("/", 1)[0] for k in peer_keys if k}
    succeeded_without_call = [e for e in distinct_ids
                              if records.get(e, (0, {}))[1] and records[e][1].get("status") == "succeeded"
                              and e not in peer_execs]

    # In flight at the kill: started before it (an execution id is a ULID, so it carries its
    # start time) and finished after it. Resume time: SIGKILL -> the last of them finished.
    in_flight, resume, first_after, taken_over_resume = 0, None, None, None
    if kill:
        kill_ms = kill["wall"] * 1000
        ends = [t for e, t in finished_at.items()
                if t and t > kill["wall"] and (ulid_ms(e) or kill_ms) < kill_ms]
        in_flight = len(ends)
        resume = max(ends) - kill["wall"] if ends else None
        after = [t for t in finished_at.values() if t and t > kill["wall"]]
        first_after = min(after) - kill["wall"] if after else None
        t_over = [finished_at[e] for e in taken_over if finished_at.get(e)]
        taken_over_resume = max(t_over) - kill["wall"] if t_over else None

    # Invariants: (offending items, what they are); an empty list passes.
    if len(keys_answered) != n:
        failures.append(f"{n - len(keys_answered)} requests never got a 202 "
                        f"(refused: {dict(list(load.refused.items())[:5])})")
    if statuses.get("succeeded", 0) != len(distinct_ids) or len(distinct_ids) != n:
        failures.append(f"not every execution succeeded: {dict(statuses)} of {len(distinct_ids)}")
    for offending, what, show in [
        (multi_id_keys, "keys answered with more than one execution id", False),
        (shared_ids, "execution ids answered for more than one key", False),
        (missing, "answered executions missing from the store", True),
        (not_listed, "answered executions absent from the list", True),
        (extra, "executions in the store nobody was answered with", True),
        (wrong_trigger, "executions with another key or order", True),
        (bad_peer, "peer requests whose key is not their execution's", True),
        (orders_with_many_keys, "orders reached the peer under several keys", False),
        (succeeded_without_call, "succeeded executions never reached the peer", False),
    ]:
        if offending:
            sample = f": {list(offending)[:5]}" if show else ""
            failures.append(f"{len(offending)} {what}{sample}")

    # "Late": a start step that ran later than a takeover could explain (lease + visibility of
    # the settings wf dev actually ran with, plus 5 s): left to the sweeper.
    late_after = args.eff_visibility_secs + args.eff_lease_secs + 5
    late = sorted(e for e, d in start_delay.items() if d > late_after)
    line = lambda k, v: print(f"  {k:<54} {v}")
    print("kill-under-load results")
    line("wf dev settings", describe_settings(args))
    line("requests sent (distinct Idempotency-Keys)", n)
    line("202 answers (incl. repeats of a key)", answers_202)
    line("  of which duplicate: true", duplicates)
    line("keys answered 202", len(keys_answered))
    line("non-202 final answers", len(load.refused))
    line("client sends again after a connection error", f"{load.retries_conn} {dict(load.errors)}")
    line("client sends again after a 5xx", load.retries_5xx)
    line("distinct execution ids answered", len(distinct_ids))
    line("keys with more than one execution id", len(multi_id_keys))
    line("execution ids answered for several keys", len(shared_ids))
    line("executions in the store (list)", len(listed))
    line("executions found (GET /executions/{id})", len(found))
    line("executions missing", len(missing))
    line("executions nobody was answered with", len(extra))
    line("finished by status", dict(sorted(statuses.items())))
    line(f"not terminal after the wait (bound {args.wait_secs} s)",
         sum(c for st, c in statuses.items() if st not in TERMINAL))
    line("'call' step attempts (executions)", dict(sorted(call_attempts.items(), key=str)))
    line("'call' steps taken over after a lost lease", lease_lost_steps)
    line("peer requests total", len(peer_reqs))
    line("distinct idempotency keys at the peer", len(peer_keys))
    line("keys seen more than once (repeats)", f"{len(repeats)} ({sum(repeats.values()) - len(repeats)} extra requests)")
    line("repeats with one key per execution", "yes" if not orders_with_many_keys and not bad_peer else "NO")
    line("peer requests with a foreign/missing key", len(bad_peer))
    line("time sending (incl. the kill)", f"{send_secs:.1f} s ({n / send_secs:.0f} req/s)")
    line("time until all terminal after sending", f"{drain_secs:.1f} s")
    line("time from first send to all terminal", f"{all_done_secs:.1f} s")
    if kill:
        line("SIGKILL after answers", kill["answered"])
        line("peer requests before the kill", kill["peer_before"])
        line("SIGKILL -> restarted and answering /health", f"{kill['ready_secs']:.2f} s")
        line("executions in flight at the kill", in_flight)
        line("resume: SIGKILL -> last of them finished",
             f"{resume:.1f} s" if resume is not None else "n/a")
        line("SIGKILL -> first execution finished", f"{first_after:.2f} s" if first_after is not None else "n/a")
        line(f"start steps that waited > {late_after} s (lease+vis.+5)",
             f"{len(late)}" + (f" (longest {max(start_delay[e] for e in late):.1f} s: {', '.join(late[:3])})" if late else ""))
        line("SIGKILL -> last taken-over step's execution finished",
             f"{taken_over_resume:.1f} s" if taken_over_resume is not None else "n/a (none)")
    else:
        failures.append("the kill never happened (not enough answers)")
    summary = {
        "requests": n, "concurrency": args.concurrency, "answers202": answers_202,
        "settings": {"workers": args.eff_workers, "visibilitySecs": args.eff_visibility_secs,
                     "leaseSecs": args.eff_lease_secs, "sweepSecs": args.eff_sweep_secs,
                     "wfDevDefaults": bool(args.default_settings)},
        "duplicates": duplicates, "executions": len(distinct_ids), "found": len(found),
        "missing": len(missing), "extra": len(extra), "statuses": dict(statuses),
        "retriesConnection": load.retries_conn, "retries5xx": load.retries_5xx,
        "peerRequests": len(peer_reqs), "peerKeys": len(peer_keys), "peerRepeatedKeys": len(repeats),
        "peerExtraRequests": sum(repeats.values()) - len(repeats),
        "oneKeyPerExecution": not orders_with_many_keys and not bad_peer,
        "notTerminal": sum(c for st, c in statuses.items() if st not in TERMINAL),
        "sendSecs": round(send_secs, 1), "allTerminalSecs": round(all_done_secs, 1),
        "leaseTakeovers": lease_lost_steps, "inFlightAtKill": in_flight,
        "takenOverResumeSecs": round(taken_over_resume, 1) if taken_over_resume is not None else None,
        "startsLeftToTheSweeper": len(late) if kill else None,
        "restartReadySecs": round(kill["ready_secs"], 2) if kill else None,
        "resumeSecs": round(resume, 1) if resume is not None else None,
        "failures": len(failures),
    }
    print("KILL_UNDER_LOAD " + json.dumps(summary, sort_keys=True))
    # One line for scripts/prove's report.
    print("kill-under-load headline: "
          "{requests} webhooks at c={concurrency}: {executions} executions, {missing} missing, "
          "{extra} extra, statuses {statuses}; {duplicates} duplicate answers, {retriesConnection} "
          "client resends; peer {peerRequests} requests / {peerKeys} keys ({peerRepeatedKeys} "
          "repeated, one key per execution: {oneKeyPerExecution}); restart ready "
          "{restartReadySecs} s, taken-over steps done {takenOverResumeSecs} s, resume "
          "{resumeSecs} s after SIGKILL ({startsLeftToTheSweeper} starts left to the sweeper; "
          "lease {leaseSecs} s, visibility {visibilitySecs} s{defaults}); "
          "all terminal {allTerminalSecs} s; invariant failures {failures}".format(
              **summary, leaseSecs=args.eff_lease_secs, visibilitySecs=args.eff_visibility_secs,
              defaults=", wf dev defaults" if args.default_settings else ""))
    if failures:
        print("kill-under-load: FAILED")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("kill-under-load: OK (each key one execution, all succeeded, peer keys one per execution)")
    return 0


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_ms(ulid):
    """The millisecond timestamp in a ULID's first 10 characters (None when it is no ULID)."""
    if not isinstance(ulid, str) or len(ulid) < 10:
        return None
    v = 0
    for ch in ulid[:10].upper():
        d = CROCKFORD.find(ch)
        if d < 0:
            return None
        v = v * 32 + d
    return v


if __name__ == "__main__":
    sys.exit(main())

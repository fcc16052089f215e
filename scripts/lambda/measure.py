"""The figures to report for the four Lambda functions, measured on this machine against
moto_server with a minimal Lambda Runtime API emulator (no cargo-lambda, no Docker):

1. Init time of webhook, api, trigger and worker: from spawning the binary to its first
   `GET .../2018-06-01/runtime/invocation/next` (min / median / max of --runs spawns each).
2. The worker's peak RSS (VmHWM in /proc/<pid>/status) while it processes one SQS batch of 10
   start tasks of `workflows/order-alert.json` (10 signed webhooks through the webhook function).
3. Lambda invocations per execution of order-alert: one execution alone (sequential), and the
   10 executions of (2) pumped in batches of up to 10 as the SQS event source mapping would.

    python3 scripts/lambda/measure.py BIN_DIR [--bridge PATH] [--runs N] [--state DIR]

BIN_DIR holds the webhook, api, trigger and worker binaries; `lambda_bridge setup` (wf-tests)
creates the tables, queue and bus. Usually run through scripts/lambda-measure, which finds the
release binaries of scripts/lambda-build. Prints a table, then one JSON line with every figure.

The emulator serves every function under its own path prefix (AWS_LAMBDA_RUNTIME_API =
http://127.0.0.1:PORT/<name>); `invoke(name, event)` hands an event to the running function and
returns its response (JSON). Function URL events have the shape of the fixtures in
shared/app/tests/fixtures/lambda/ (payload 2.0), SQS events that of `sqs_event` in
shared/app/src/lambda/bridge.rs. Everything binds 127.0.0.1; every process started here is
killed on exit, also on Ctrl-C and SIGTERM. Standard library plus boto3.
"""

import argparse
import atexit
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FUNCTIONS = ("webhook", "api", "trigger", "worker")
REGION = "us-east-1"
ACCOUNT = "123456789012"
SECRET = "whsec_" + base64.b64encode(b"lambda-measure-secret-0123456789").decode()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------------------------

PROCS = []


def spawn(argv, env, logfile, stdin=subprocess.DEVNULL):
    """Start argv in its own session (posix_spawn/vfork: no preexec_fn, so the init times carry
    no extra fork cost); it is killed on exit. Should this script die by SIGKILL, the functions
    still go: lambda_runtime exits when its Runtime API is gone, and moto_server runs with
    --exit-with-stdin."""
    out = open(logfile, "ab")
    try:
        p = subprocess.Popen(argv, env=env, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
    finally:
        out.close()
    PROCS.append(p)
    return p


def stop(p, grace=3.0):
    if p.poll() is None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    if p.stdin:
        try:
            p.stdin.close()
        except OSError:
            pass
    if p in PROCS:
        PROCS.remove(p)


def stop_all():
    for p in list(reversed(PROCS)):
        try:
            stop(p, grace=1.0)
        except Exception:
            pass


atexit.register(stop_all)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=15):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


# --- the Lambda Runtime API emulator ---------------------------------------------------------

class InvokeError(Exception):
    pass


class Invocation:
    def __init__(self, name, event):
        self.name = name
        self.id = str(uuid.uuid4())
        self.payload = json.dumps(event).encode()
        self.done = threading.Event()
        self.response = None
        self.error = None


class Runtime:
    """One Runtime API for all functions, each under /<name>. A spawn of a function is a
    generation: `reset(name)` (at spawn and kill) releases the /next polls of the previous one,
    so an event never goes to a process that is gone."""

    def __init__(self):
        self.cond = threading.Condition()
        self.pending = {n: deque() for n in FUNCTIONS}
        self.gen = {n: 0 for n in FUNCTIONS}
        self.first_next = {n: None for n in FUNCTIONS}
        self.init_error = {n: None for n in FUNCTIONS}
        self.inflight = {}
        self.procs = {}
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self):
                if "chunked" in self.headers.get("transfer-encoding", "").lower():
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 4 or parts[0] not in FUNCTIONS or parts[1:3] != ["2018-06-01", "runtime"]:
                    return None, None
                return parts[0], parts[3:]

            def do_GET(self):
                arrived = time.monotonic()
                name, rest = self._route()
                if rest != ["invocation", "next"]:
                    return self._send(404, b'{"errorMessage":"not found"}')
                inv = runtime._next(name, arrived)
                if inv is None:  # that process was stopped: drop the poll
                    self.close_connection = True
                    return
                deadline = int(time.time() * 1000) + 60_000
                trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
                try:
                    self._send(200, inv.payload, [
                        ("Lambda-Runtime-Aws-Request-Id", inv.id),
                        ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                        ("Lambda-Runtime-Invoked-Function-Arn",
                         f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"),
                        ("Lambda-Runtime-Trace-Id", trace),
                    ])
                except OSError:
                    runtime._complete(inv.id, error={"errorMessage": "the function went away"})

            def do_POST(self):
                name, rest = self._route()
                body = self._body()
                if rest and len(rest) == 3 and rest[0] == "invocation" and rest[2] in ("response", "error"):
                    if rest[2] == "response":
                        ok = runtime._complete(rest[1], response=body)
                    else:
                        ok = runtime._complete(rest[1], error={
                            "errorType": self.headers.get("Lambda-Runtime-Function-Error-Type"),
                            "body": body.decode(errors="replace")})
                    if not ok:
                        return self._send(404, b'{"errorMessage":"unknown request id"}')
                    return self._send(202, b'{"status":"OK"}')
                if rest == ["init", "error"]:
                    with runtime.cond:
                        runtime.init_error[name] = body.decode(errors="replace")
                        runtime.cond.notify_all()
                    return self._send(202, b'{"status":"OK"}')
                return self._send(404, b'{"errorMessage":"not found"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def _next(self, name, arrived):
        with self.cond:
            if self.first_next[name] is None:
                self.first_next[name] = arrived
                self.cond.notify_all()
            gen = self.gen[name]
            while not self.pending[name] and self.gen[name] == gen:
                self.cond.wait()
            if self.gen[name] != gen:
                return None
            return self.pending[name].popleft()

    def _complete(self, request_id, response=None, error=None):
        with self.cond:
            inv = self.inflight.pop(request_id, None)
        if inv is None:
            return False
        inv.response, inv.error = response, error
        inv.done.set()
        return True

    def reset(self, name, proc=None):
        """A new generation of `name` (proc: the process now serving it, or None)."""
        with self.cond:
            self.gen[name] += 1
            self.first_next[name] = None
            self.init_error[name] = None
            for inv in self.pending[name]:
                self.inflight.pop(inv.id, None)
                inv.error = {"errorMessage": f"{name} was stopped"}
                inv.done.set()
            self.pending[name].clear()
            self.procs[name] = proc
            self.cond.notify_all()

    def wait_first_next(self, name, proc, logfile, timeout=120.0):
        """The monotonic time of the first /next of this generation."""
        end = time.monotonic() + timeout
        with self.cond:
            while self.first_next[name] is None:
                if self.init_error[name] is not None:
                    raise InvokeError(f"{name}: init error {self.init_error[name]}\n{tail(logfile)}")
                if proc.poll() is not None:
                    raise InvokeError(f"{name} exited with {proc.returncode} during init:\n{tail(logfile)}")
                if time.monotonic() > end:
                    raise InvokeError(f"{name}: no /next within {timeout} s:\n{tail(logfile)}")
                self.cond.wait(0.05)
            return self.first_next[name]

    def invoke(self, name, event, timeout=180.0):
        inv = Invocation(name, event)
        with self.cond:
            self.inflight[inv.id] = inv
            self.pending[name].append(inv)
            self.cond.notify_all()
            proc = self.procs.get(name)
        end = time.monotonic() + timeout
        while not inv.done.wait(0.1):
            if proc is not None and proc.poll() is not None:
                raise InvokeError(f"{name} exited with {proc.returncode}")
            if time.monotonic() > end:
                raise InvokeError(f"{name}: no response within {timeout} s")
        if inv.error is not None:
            raise InvokeError(f"{name} failed: {inv.error}")
        try:
            return json.loads(inv.response or b"null")
        except ValueError:
            return inv.response.decode(errors="replace")


RUNTIME = None


def invoke(name, event):
    """Invoke the running function `name` with `event`; its response, parsed as JSON."""
    return RUNTIME.invoke(name, event)


# --- events ----------------------------------------------------------------------------------

URL_IDS = {"webhook": "abcdefghijklmnopqrstuvwxyz012345", "api": "zyxwvutsrqponmlkjihgfedcba543210"}


def function_url_event(function, method, path, body=None, headers=None, query=""):
    """A function URL request (payload 2.0) shaped like shared/app/tests/fixtures/lambda/
    function_url_*.json: the api's URL is AWS_IAM (an IAM caller in the authorizer), the
    webhook's is public."""
    now = time.time()
    url_id = URL_IDS[function]
    domain = f"{url_id}.lambda-url.{REGION}.on.aws"
    h = {"accept": "application/json"} if body is None else {"content-type": "application/json"}
    h.update({"host": domain, "user-agent": "lambda-measure/1.0", "x-forwarded-for": "127.0.0.1",
              "x-forwarded-port": "443", "x-forwarded-proto": "https"})
    h.update(headers or {})
    ctx = {"accountId": ACCOUNT if function == "api" else "anonymous", "apiId": url_id}
    if function == "api":
        ctx["authorizer"] = {"iam": {
            "accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": ACCOUNT,
            "callerId": "AIDACKCEVSQ6C2EXAMPLE", "cognitoIdentity": None, "principalOrgId": None,
            "userArn": f"arn:aws:iam::{ACCOUNT}:user/measure", "userId": "AIDACKCEVSQ6C2EXAMPLE"}}
    ctx.update({
        "domainName": domain, "domainPrefix": url_id,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                 "userAgent": "lambda-measure/1.0"},
        "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000)})
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
             "headers": h, "requestContext": ctx}
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["isBase64Encoded"] = False
    return event


def http_call(function, method, path, body=None, headers=None):
    """A request through a function URL: (status, JSON body or text)."""
    answer = invoke(function, function_url_event(function, method, path, body, headers))
    if not isinstance(answer, dict) or "statusCode" not in answer:
        raise InvokeError(f"{function} {method} {path}: not a function URL response: {answer}")
    text = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        text = base64.b64decode(text).decode(errors="replace")
    try:
        return answer["statusCode"], json.loads(text) if text else None
    except ValueError:
        return answer["statusCode"], text


def queue_arn(queue_url):
    # As BridgeOptions::new: http://host/123456789012/name -> arn:aws:sqs:<region>:<account>:<name>
    parts = queue_url.rstrip("/").rsplit("/", 2)
    return f"arn:aws:sqs:{REGION}:{parts[-2] if len(parts) > 2 else ACCOUNT}:{parts[-1]}"


def sqs_event(messages, arn):
    """The event the SQS event source mapping sends, exactly as `sqs_event` in
    shared/app/src/lambda/bridge.rs (serde of aws_lambda_events' SqsEvent)."""
    records = []
    for m in messages:
        records.append({
            "messageId": m.get("MessageId"),
            "receiptHandle": m.get("ReceiptHandle"),
            "body": m.get("Body"),
            "md5OfBody": m.get("MD5OfBody"),
            "md5OfMessageAttributes": m.get("MD5OfMessageAttributes"),
            "attributes": dict(m.get("Attributes") or {}),
            "messageAttributes": {
                k: {"stringValue": v.get("StringValue"), "binaryValue": None,
                    "stringListValues": [], "binaryListValues": [], "dataType": v.get("DataType")}
                for k, v in (m.get("MessageAttributes") or {}).items()},
            "eventSourceARN": arn,
            "eventSource": "aws:sqs",
            "awsRegion": REGION,
        })
    return {"Records": records}


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])  # kB
    return out


def mb(kb):
    return round(kb / 1024, 1)


class Sales(BaseHTTPRequestHandler):
    received = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with Sales.lock:
            Sales.received += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


# --- the measurement -------------------------------------------------------------------------

class Measure:
    def __init__(self, args):
        self.args = args
        self.bin_dir = os.path.abspath(args.bin_dir)
        self.state = os.path.abspath(args.state)
        os.makedirs(self.state, exist_ok=True)
        for name in FUNCTIONS + ("moto",):
            try:
                os.remove(os.path.join(self.state, f"{name}.log"))
            except FileNotFoundError:
                pass
        self.procs = {}
        self.counts = None

    # environment
    def start_moto(self):
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.moto = spawn([sys.executable, os.path.join(ROOT, "scripts", "moto-server.py"), str(port),
                           "--exit-with-stdin"], dict(os.environ),
                          os.path.join(self.state, "moto.log"), stdin=subprocess.PIPE)
        end = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).read()
                break
            except (urllib.error.URLError, OSError):
                if self.moto.poll() is not None or time.monotonic() > end:
                    raise SystemExit("moto_server did not start:\n" + tail(os.path.join(self.state, "moto.log")))
                time.sleep(0.1)

    def setup(self):
        creds = {"AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        env = dict(os.environ, WF_AWS_ENDPOINT_URL=self.endpoint, AWS_EC2_METADATA_DISABLED="true", **creds)
        env.pop("AWS_ENDPOINT_URL", None)
        prefix = f"wf-measure-{os.getpid()}"
        out = subprocess.run([self.args.bridge, "setup", prefix], env=env, capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            raise SystemExit(f"lambda_bridge setup failed:\n{out.stderr}")
        fenv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for line in out.stdout.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                fenv[k.strip()] = v
        fenv.update(creds)
        fenv.update({"AWS_EC2_METADATA_DISABLED": "true", "RUST_LOG": "warn",
                     "WF_OUTBOUND_ALLOW_PRIVATE": "true", "WF_API_AUTH": "iam",
                     "WF_WEBHOOK_BASE_URL": "http://127.0.0.1/lambda-url/webhook"})
        self.fenv = fenv
        self.queue_url = fenv["WF_QUEUE_URL"]
        self.arn = queue_arn(self.queue_url)
        import boto3
        self.sqs = boto3.client("sqs", endpoint_url=self.endpoint, region_name=REGION,
                                aws_access_key_id="testing", aws_secret_access_key="testing")

    def start_function(self, name):
        logfile = os.path.join(self.state, f"{name}.log")
        env = dict(self.fenv, AWS_LAMBDA_RUNTIME_API=RUNTIME.url(name), AWS_LAMBDA_FUNCTION_NAME=name,
                   AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024")
        RUNTIME.reset(name)
        t0 = time.monotonic()
        p = spawn([os.path.join(self.bin_dir, name)], env, logfile)
        with RUNTIME.cond:
            RUNTIME.procs[name] = p
        first = RUNTIME.wait_first_next(name, p, logfile)
        return p, (first - t0) * 1000

    def stop_function(self, name, p):
        stop(p)
        RUNTIME.reset(name)

    # 1. init
    def measure_init(self):
        init = {}
        for name in FUNCTIONS:
            runs = []
            for _ in range(self.args.runs):
                p, ms = self.start_function(name)
                self.stop_function(name, p)
                runs.append(round(ms, 1))
            init[name] = {"min": min(runs), "median": round(statistics.median(runs), 1),
                          "max": max(runs), "runs": runs}
            log(f"   init {name}: {runs} ms")
        return init

    # SQS
    def receive(self, max_messages=10, wait=1):
        out = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages,
                                       WaitTimeSeconds=wait, AttributeNames=["All"],
                                       MessageAttributeNames=["All"])
        return out.get("Messages", [])

    def deliver(self, messages):
        """One worker invocation with `messages`; deletes what it did not report as failed."""
        self.counts["worker"] += 1
        self.counts["tasks"] += len(messages)
        answer = invoke("worker", sqs_event(messages, self.arn))
        failed = {f.get("itemIdentifier") for f in (answer or {}).get("batchItemFailures") or []}
        self.counts["failures"] += len(failed)
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                   for i, m in enumerate(messages) if m.get("MessageId") not in failed]
        if entries:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return answer

    def queue_empty(self):
        a = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return all(int(v) == 0 for v in a.values())

    def statuses(self, ids):
        out = {}
        for i in ids:
            status, view = http_call("api", "GET", f"/executions/{i}")
            if status != 200:
                raise InvokeError(f"GET /executions/{i}: {status} {view}")
            out[i] = view["status"]
        return out

    def pump_until_done(self, ids, timeout=300):
        """Receive up to 10, invoke the worker, delete; until every execution succeeded and
        the queue is empty."""
        end = time.monotonic() + timeout
        while True:
            messages = self.receive()
            if messages:
                self.deliver(messages)
                continue
            st = self.statuses(ids)
            bad = {i: s for i, s in st.items() if s not in ("queued", "running", "succeeded")}
            if bad:
                raise InvokeError(f"executions did not succeed: {bad}")
            if all(s == "succeeded" for s in st.values()) and self.queue_empty():
                return
            if time.monotonic() > end:
                raise InvokeError(f"not done after {timeout} s: {st}")

    # webhooks
    def create_workflow(self, sales_url):
        with open(os.path.join(ROOT, "workflows", "order-alert.json")) as f:
            wf = json.load(f)
        wf.pop("$schema", None)
        wf["config"]["variables"]["salesHook"] = sales_url
        steps = [("POST", "/workflows", wf, (200, 201)),
                 ("POST", "/workflows/order-alert/publish", {}, (200, 201)),
                 ("POST", "/workflows/order-alert/activate", {}, (200,)),
                 ("PUT", "/workflows/order-alert/webhook/secrets", {"secrets": [SECRET]}, (200, 204))]
        for method, path, body, ok in steps:
            status, answer = http_call("api", method, path, body)
            if status not in ok:
                raise InvokeError(f"api {method} {path}: {status} {answer}")
        status, view = http_call("api", "GET", "/workflows/order-alert")
        hook = (view or {}).get("webhookUrl") or (view or {}).get("workflow", {}).get("webhookUrl")
        if status != 200 or not hook:
            raise InvokeError(f"api GET /workflows/order-alert: {status} {view}")
        self.hook_path = hook[hook.index("/hooks/"):]

    def send_webhook(self, n):
        body = json.dumps({"orderId": f"M-{n}", "amount": 250, "customer": "Ada", "lines": [{"sku": "x"}]})
        msg_id, ts = f"msg_measure_{os.getpid()}_{n}", str(int(time.time()))
        key = base64.b64decode(SECRET[len("whsec_"):])
        sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
        self.counts["webhook"] += 1
        status, answer = http_call("webhook", "POST", self.hook_path, body, {
            "webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"})
        if status != 202:
            raise InvokeError(f"webhook: {status} {answer}")
        return answer["executionId"]

    def new_counts(self):
        self.counts = {"webhook": 0, "worker": 0, "tasks": 0, "failures": 0}
        return self.counts

    # 2. + 3b.
    def measure_batch(self, worker):
        counts = self.new_counts()
        before = proc_status(worker.pid)
        ids = [self.send_webhook(n) for n in range(10)]
        messages, end = [], time.monotonic() + 60
        while len(messages) < 10:
            messages += self.receive(10 - len(messages))
            if time.monotonic() > end:
                raise InvokeError(f"only {len(messages)} of 10 start tasks arrived in the queue")
        t = time.monotonic()
        answer = self.deliver(messages)
        batch_ms = (time.monotonic() - t) * 1000
        after = proc_status(worker.pid)
        self.pump_until_done(ids)
        end_status = proc_status(worker.pid)
        total = counts["webhook"] + counts["worker"]
        return {
            "batchSize": len(messages),
            "batchInvokeMs": round(batch_ms, 1),
            "batchItemFailures": len((answer or {}).get("batchItemFailures") or []),
            "vmHWMBeforeMB": mb(before["VmHWM"]), "vmRSSBeforeMB": mb(before["VmRSS"]),
            "vmHWMAfterMB": mb(after["VmHWM"]), "vmRSSAfterMB": mb(after["VmRSS"]),
            "peakRssMB": mb(after["VmHWM"]),
            "vmHWMAfterAllMB": mb(end_status["VmHWM"]), "vmRSSAfterAllMB": mb(end_status["VmRSS"]),
        }, {
            "executions": 10, **counts, "invocations": total,
            "invocationsPerExecution": round(total / 10, 2),
            "workerInvocationsPerExecution": round(counts["worker"] / 10, 2),
            "tasksPerExecution": round(counts["tasks"] / 10, 2),
        }

    # 3a.
    def measure_sequential(self):
        counts = self.new_counts()
        ids = [self.send_webhook(100)]
        self.pump_until_done(ids)
        total = counts["webhook"] + counts["worker"]
        return {"executions": 1, **counts, "invocations": total, "invocationsPerExecution": total}

    def run(self):
        global RUNTIME
        t_start = time.monotonic()
        log(f"== moto_server, tables, queue and bus (logs in {self.state})")
        self.start_moto()
        self.setup()
        RUNTIME = Runtime()
        log(f"== init times ({self.args.runs} spawns per function; Runtime API on port {RUNTIME.port})")
        init = self.measure_init()

        sales = ThreadingHTTPServer(("127.0.0.1", 0), Sales)
        sales.daemon_threads = True
        threading.Thread(target=sales.serve_forever, daemon=True).start()
        try:
            log("== api, webhook and worker running; order-alert through the api")
            for name in ("api", "webhook", "worker"):
                self.procs[name], _ = self.start_function(name)
            self.create_workflow(f"http://127.0.0.1:{sales.server_port}/sales")
            log("== 10 webhooks, one batch of 10 into the worker, then pumping until all succeeded")
            memory, batch = self.measure_batch(self.procs["worker"])
            log("== one webhook alone, pumping until it succeeded")
            sequential = self.measure_sequential()
        finally:
            sales.shutdown()
            for name, p in self.procs.items():
                self.stop_function(name, p)
        return {
            "binaries": self.bin_dir,
            "binarySizesMB": {n: round(os.path.getsize(os.path.join(self.bin_dir, n)) / 1048576, 2)
                              for n in FUNCTIONS},
            "initMs": init,
            "worker": memory,
            "invocations": {"sequential": sequential, "batch": batch},
            "salesMessages": Sales.received,
            "seconds": round(time.monotonic() - t_start, 1),
        }


def report(r):
    print(f"Lambda functions in {r['binaries']}")
    print()
    print(f"Init: spawn -> first GET /runtime/invocation/next ({len(r['initMs']['webhook']['runs'])} runs)")
    print(f"  {'function':<9} {'min ms':>9} {'median ms':>10} {'max ms':>9} {'binary MB':>10}")
    for n in FUNCTIONS:
        i = r["initMs"][n]
        print(f"  {n:<9} {i['min']:>9.1f} {i['median']:>10.1f} {i['max']:>9.1f} {r['binarySizesMB'][n]:>10.2f}")
    w = r["worker"]
    print()
    print(f"Worker memory, one SQS batch of {w['batchSize']} order-alert start tasks "
          f"({w['batchInvokeMs']:.0f} ms, {w['batchItemFailures']} batch item failures)")
    print(f"  {'':<28} {'VmHWM MB':>9} {'VmRSS MB':>9}")
    print(f"  {'after init, before':<28} {w['vmHWMBeforeMB']:>9.1f} {w['vmRSSBeforeMB']:>9.1f}")
    print(f"  {'after the batch':<28} {w['vmHWMAfterMB']:>9.1f} {w['vmRSSAfterMB']:>9.1f}")
    print(f"  {'after all 10 executions':<28} {w['vmHWMAfterAllMB']:>9.1f} {w['vmRSSAfterAllMB']:>9.1f}")
    print(f"  peak RSS: {w['peakRssMB']:.1f} MB")
    s, b = r["invocations"]["sequential"], r["invocations"]["batch"]
    print()
    print("Lambda invocations per order-alert execution")
    print(f"  {'run':<26} {'webhook':>8} {'worker':>7} {'tasks':>6} {'total':>6} {'per execution':>14}")
    print(f"  {'sequential (1 execution)':<26} {s['webhook']:>8} {s['worker']:>7} {s['tasks']:>6} "
          f"{s['invocations']:>6} {s['invocationsPerExecution']:>14}")
    print(f"  {'batches of 10 (10 exec.)':<26} {b['webhook']:>8} {b['worker']:>7} {b['tasks']:>6} "
          f"{b['invocations']:>6} {b['invocationsPerExecution']:>14}")
    print()
    print(json.dumps(r, separators=(",", ":")))


def cargo_target_dir():
    """cargo's target directory of the workspace (./target unless cargo's config says otherwise)."""
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["target_directory"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bin_dir", help="directory with the webhook, api, trigger and worker binaries")
    target = os.environ.get("CARGO_TARGET_DIR") or cargo_target_dir()
    parser.add_argument("--bridge", default=os.path.join(target, "debug", "lambda_bridge"),
                        help="the lambda_bridge binary (default $CARGO_TARGET_DIR/debug/lambda_bridge)")
    parser.add_argument("--runs", type=int, default=5, help="spawns per function for the init time")
    parser.add_argument("--state", default=os.path.join(target, "lambda-measure"),
                        help="where the logs go (default $CARGO_TARGET_DIR/lambda-measure)")
    args = parser.parse_args()
    missing = [n for n in FUNCTIONS if not os.access(os.path.join(args.bin_dir, n), os.X_OK)]
    if missing:
        raise SystemExit(f"{args.bin_dir}: no {', '.join(missing)} binary (run scripts/lambda-build first)")
    if not os.access(args.bridge, os.X_OK):
        raise SystemExit(f"no {args.bridge}: cargo build -p wf-tests --bin lambda_bridge")
    try:
        result = Measure(args).run()
    except InvokeError as e:
        raise SystemExit(f"measure: {e}")
    finally:
        stop_all()
    report(result)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)

"""Drive the functions under `cargo lambda watch` (scripts/lambda-local) end to end: put a
workflow through the api function, publish and activate it, give it a webhook signing secret,
send a signed webhook (Standard Webhooks) to the webhook function, and wait until the execution
succeeded with every step recorded (read back through the api); a second delivery of the same
webhook starts nothing new and a forged one is refused. Prints a JSON summary.

    python3 scripts/lambda/e2e.py http://127.0.0.1:PORT [SALES_HOOK_URL]

Standard library only, so the Rust e2e test and a person can both run it.
"""

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

BASE = sys.argv[1].rstrip("/")
API = BASE + "/lambda-url/api"
SECRET = "whsec_" + base64.b64encode(b"local-emulator-secret-0123456789").decode()


def call(method, url, body=None, headers=None, timeout=120):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Sales(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        Sales.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) > 2:
        sales_url = sys.argv[2]
    else:
        server = HTTPServer(("127.0.0.1", 0), Sales)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sales_url = f"http://127.0.0.1:{server.server_port}/sales"
    with open("workflows/order-alert.json") as f:
        wf = json.load(f)
    wf.pop("$schema", None)
    wf["config"]["variables"]["salesHook"] = sales_url
    t0 = time.time()
    status, answer = call("POST", f"{API}/workflows", wf)
    if status == 409:  # a second run against the same tables
        status, answer = call("PUT", f"{API}/workflows/order-alert", wf)
    assert status in (200, 201), (status, answer)
    status, answer = call("POST", f"{API}/workflows/order-alert/publish", {})
    assert status in (200, 201), (status, answer)
    status, answer = call("POST", f"{API}/workflows/order-alert/activate", {})
    assert status == 200, (status, answer)
    status, answer = call("PUT", f"{API}/workflows/order-alert/webhook/secrets", {"secrets": [SECRET]})
    assert status in (200, 204), (status, answer)
    status, wf_view = call("GET", f"{API}/workflows/order-alert")
    assert status == 200, (status, wf_view)
    hook = wf_view.get("webhookUrl") or wf_view.get("workflow", {}).get("webhookUrl")
    assert hook, wf_view
    setup_s = time.time() - t0

    body = json.dumps({"orderId": "A-42", "amount": 250, "customer": "Ada",
                       "lines": [{"sku": "x"}]}).encode()
    msg_id, ts = "msg_e2e_1", str(int(time.time()))
    key = base64.b64decode(SECRET[len("whsec_"):])
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    t1 = time.time()
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"}
    status, answer = call("POST", hook, body, headers)
    assert status == 202, (status, answer)
    execution_id = answer["executionId"]
    # The sender retries (at-least-once delivery): the same webhook-id starts nothing new.
    status, again = call("POST", hook, body, headers)
    assert status in (200, 202) and again["executionId"] == execution_id, (status, again)
    # A wrong signature is refused and starts nothing.
    status, refused = call("POST", hook, body, dict(headers, **{"webhook-id": "msg_e2e_forged",
                                                                "webhook-signature": "v1,AAAA"}))
    assert status == 401, (status, refused)
    deadline = time.time() + 300
    while True:
        status, view = call("GET", f"{API}/executions/{execution_id}")
        if status == 200 and view["status"] not in ("queued", "running"):
            break
        assert time.time() < deadline, view
        time.sleep(0.5)
    print(json.dumps({
        "executionId": execution_id,
        "status": view["status"],
        "output": view.get("output"),
        "steps": [{"path": s["path"], "status": s["status"]} for s in view["steps"]],
        "salesMessages": len(Sales.received),
        "duplicateDelivery": again,
        "setupSeconds": round(setup_s, 2),
        "webhookToDoneSeconds": round(time.time() - t1, 2),
    }))
    assert view["status"] == "succeeded", view


main()

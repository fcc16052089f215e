#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (seed-*.txt / .json).

Run from anywhere: python3 fuzz/seeds/make-seeds.py (FUZZ_SEED_DIR=<dir> writes elsewhere).
Idempotent (same files, same names).
The fuzzers add their own finds next to these; `cargo fuzz cmin` keeps what adds coverage.

Sources: workflows/*.json and the other example workflows in the tree, every template string
they hold, cron phrases (the forms `wf cron` documents and the cron tests' inputs), requests
signed with each webhook scheme (the providers' published examples and fresh ones computed
here with the same HMAC rules), JSON and Slack form bodies.
"""
import base64
import glob
import hashlib
import hmac
import json
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.environ.get("FUZZ_SEED_DIR") or os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def strings_in(v, out):
    if isinstance(v, str):
        out.append(v)
    elif isinstance(v, list):
        for x in v:
            strings_in(x, out)
    elif isinstance(v, dict):
        for x in v.values():
            strings_in(x, out)


# --- workflow_validate ------------------------------------------------------------------------
workflow_files = sorted(
    [p for p in glob.glob(os.path.join(ROOT, "workflows", "*.json")) if not p.endswith("schema.json")]
    + glob.glob(os.path.join(ROOT, "shared", "app", "prompts", "examples", "*.json"))
    + glob.glob(os.path.join(ROOT, "shared", "core", "tests", "fixtures", "*.json"))
)
templates = []
for i, path in enumerate(workflow_files):
    text = open(path, encoding="utf-8").read()
    write("workflow_validate", f"{i:02}-{os.path.basename(path)}", text)
    strings_in(json.loads(text), templates)
write("workflow_validate", "bom.json", "\ufeff{}")
write("workflow_validate", "deep.json", "[" * 70 + "]" * 70)
write("workflow_validate", "bad-syntax.json", '{"id": "x", "steps": [,]}')

# --- template_render --------------------------------------------------------------------------
templates = sorted({t for t in templates if "{{" in t or "{%" in t})
templates += [
    "{{ input.amount > 100 }}",
    "{{ input.items | length }}",
    "Hello {{ input.name | upper }}, {{ steps.fetch.output.body.rows[0].id }}",
    "{% for x in input.items %}{{ x }},{% endfor %}",
    "{% if vars.threshold < input.amount %}big{% else %}small{% endif %}",
    "{{ secrets.API_KEY }}",
    "key={{ secrets.TOKEN }}&n={{ index + 1 }}",
    "{{ input.missing | default('none') }}",
    "{{ input.nested.a.b[2] * 2 }}",
    "{{ 'x' * 1000 }}",
    "{{ range(10) | list }}",
    "{{ item.sku ~ '-' ~ item.qty }}",
    "{{ event.detail.total is defined and event.detail.total > 3 }}",
    "{{ input | tojson }}",
    "{% set n = 3 %}{{ n ** 4 }}",
    "{# comment #}plain",
    "{{ x }",
    "{% for i in range(1000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}",
]
for i, t in enumerate(templates):
    write("template_render", f"{i:03}.txt", t)
write("template_render", "with-context.txt",
      '{{ input.a.b }} {{ secrets.S }}\0{"input": {"a": {"b": [1, 2]}}, "secrets": {"S": "hunter22"}}')
write("template_render", "context-loop.txt",
      '{% for r in steps.s.output %}{{ r.id }}{% endfor %}\0{"steps": {"s": {"output": [{"id": 1}, {"id": 2}]}}}')

# --- cron ---------------------------------------------------------------------------------------
cron_src = open(os.path.join(ROOT, "shared", "core", "src", "cron.rs"), encoding="utf-8").read()
phrases = set(re.findall(r'"((?:[0-9*@?/,\-LW#]|[A-Za-z]{3})[^"\\]{0,60})"', cron_src))
phrases = {p for p in phrases if not re.match(r"^\d{4}-\d\d-\d\dT", p) and not p.startswith("cron(")}
phrases |= {
    "0 9 * * 1-5", "*/15 * * * *", "0 0 1 1 *", "@daily", "@hourly", "@weekly", "@monthly",
    "@yearly", "@every5m", "@every2h", "every minute", "every 15 minutes", "every 2 hours",
    "hourly", "daily at 9am", "every day at 17:30", "every weekday at 9am",
    "every monday at 8:15", "weekly on friday at 5pm", "on the 1st of every month at 6am",
    "on the last day of every month", "every mon, wed and fri at 07:00",
    "every day at 9:00 and 17:30", "at 9am every day", "Daily at 5:30 PM",
    "every weekend at 10am", "every day at noon", "every day at midnight",
    "0 9 L * FRI", "0 8 * * 1#2", "0 6 15W * *", "0 0 29 2 *", "0 0 30 2 *",
}
# Findings (regression inputs): Sunday as 7 in the L / # forms; days in none of the months.
write("cron", "finding-7L.txt", "0 9 * * 7l")
write("cron", "finding-never.txt", "0 0 31 4,6 *")
for i, p in enumerate(sorted(phrases)):
    write("cron", f"{i:03}.txt", p)

# --- signature_verify -------------------------------------------------------------------------


def hexmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def request(scheme, now, secrets, headers, body):
    head = "".join(f"{k}: {v}\n" for k, v in headers)
    return f"{scheme}\n{now}\n{secrets}\n{head}\n".encode() + body


now = 1700000000
body = b'{"id":"evt_1","type":"order.created","data":{"total":120}}'
# GitHub's documented example (secret, body and signature from its docs).
write("signature_verify", "github-docs.txt", request(
    "github", now, "It's a Secret to Everybody", [
        ("x-hub-signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")], b"Hello, World!"))
write("signature_verify", "github.txt", request(
    "github", now, "gh_secret_value", [
        ("x-hub-signature-256", "sha256=" + hexmac(b"gh_secret_value", body)),
        ("x-github-delivery", "d1")], body))
write("signature_verify", "stripe.txt", request(
    "stripe", now, "whsec_stripe_test old_secret", [
        ("stripe-signature", f"t={now},v1={hexmac(b'whsec_stripe_test', f'{now}.'.encode() + body)},v0=00")], body))
write("signature_verify", "stripe-stale.txt", request(
    "stripe", now + 1000, "whsec_stripe_test", [
        ("stripe-signature", f"t={now},v1={hexmac(b'whsec_stripe_test', f'{now}.'.encode() + body)}")], body))
slack_body = b'{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}'
write("signature_verify", "slack.txt", request(
    "slack", now, "8f742231b10e8888abcd99yyyzzz85a5", [
        ("x-slack-request-timestamp", str(now)),
        ("x-slack-signature", "v0=" + hexmac(b"8f742231b10e8888abcd99yyyzzz85a5", f"v0:{now}:".encode() + slack_body))],
    slack_body))
# Standard Webhooks' published test vector (secret, id, timestamp, body, signature).
sw_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
sw_body = b'{"test": 2432232314}'
write("signature_verify", "standard-spec.txt", request(
    "standard", 1614265330, sw_secret, [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ("webhook-timestamp", "1614265330"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")], sw_body))
key = base64.b64decode(sw_secret[len("whsec_"):])
sig = base64.b64encode(hmac.new(key, f"msg_2.{now}.".encode() + body, hashlib.sha256).digest()).decode()
write("signature_verify", "svix.txt", request(
    "standard", now, "notbase64!! " + sw_secret, [
        ("svix-id", "msg_2"), ("svix-timestamp", str(now)), ("svix-signature", f"v1a,xyz v1,{sig}")], body))
# A secret and header values with `~` / `|`: the ones the "no secret in a message" check traces.
write("signature_verify", "traceable.txt", request(
    "stripe", now, "whsec~traceable|secret", [
        ("stripe-signature", f"t={now},v1={hexmac(b'whsec~traceable|secret', f'{now}.'.encode() + body)}"),
        ("x-hub-signature-256", "sha256=~not|hex~value")], body))
write("signature_verify", "none.txt", request("none", now, "", [], body))
write("signature_verify", "missing.txt", request("slack", now, "s", [("x-slack-signature", "v0=zz")], b""))

# --- webhook_body -----------------------------------------------------------------------------
def wb(ct, scheme, body):
    return f"{ct}\n{scheme}\n".encode() + body


write("webhook_body", "json.txt", wb("application/json", "github", body))
write("webhook_body", "json-charset.txt", wb("Application/JSON; charset=utf-8", "standard", b'[1, 2.5, "x", null]'))
write("webhook_body", "plus-json.txt", wb("application/cloudevents+json", "none", b'{"specversion":"1.0","data":{"a":[{}]}}'))
write("webhook_body", "deep.txt", wb("application/json", "github", b"[" * 65 + b"]" * 65))
write("webhook_body", "empty.txt", wb("application/json", "github", b""))
write("webhook_body", "text.txt", wb("text/plain", "github", b"hello"))
write("webhook_body", "none-ct.txt", wb("", "github", b"{}"))
write("webhook_body", "slack-command.txt", wb(
    "application/x-www-form-urlencoded", "slack",
    b"token=x&team_id=T1&command=%2Fdeploy&text=prod+now&response_url=https%3A%2F%2Fhooks.slack.com%2Fx"))
write("webhook_body", "slack-payload.txt", wb(
    "application/x-www-form-urlencoded", "slack",
    b"payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%7B%22value%22%3A%5B1%5D%7D%5D%7D"))
write("webhook_body", "slack-payload-brackets.txt", wb(
    "application/x-www-form-urlencoded", "slack", b"payload=[[[[[[[[[[1]]]]]]]]]]"))
# Finding (regression input): a Slack `payload` nested past the limit.
write("webhook_body", "finding-slack-deep-payload.txt", wb(
    "application/x-www-form-urlencoded", "slack", b"payload=" + b"[" * 70 + b"]" * 70))
write("webhook_body", "form-not-slack.txt", wb("application/x-www-form-urlencoded", "github", b"a=1"))
write("webhook_body", "escapes.txt", wb("application/json", "github", b'{"a\\"[": "\\u00e9\\\\", "b": 1e308}'))

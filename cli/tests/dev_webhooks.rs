//! `wf dev` webhooks end to end: every signature scheme (valid, tampered body, wrong secret,
//! stale timestamp, rotated secret, missing headers), failures counted in /metrics, idempotency
//! by key and by each scheme's message id, Slack's challenge and form bodies, `?wait=`, token
//! rotation, and every error status (with no execution created).

mod dev_support;

use std::time::Duration;

use dev_support::{DevProcess, now_secs, step};
use serde_json::{Value, json};
use wf_core::model::WebhookScheme;

const STD_OLD: &str = "whsec_dGVzdC1zZWNyZXQtc3RhbmRhcmQtb2xkLTAxMjM0NTY=";
const STD_NEW: &str = "whsec_dGVzdC1zZWNyZXQtc3RhbmRhcmQtbmV3LTAxMjM0NTY=";

/// (scheme, workflow id, secret env var, old secret, new secret)
const SCHEMES: [(WebhookScheme, &str, &str, &str, &str); 4] = [
    (
        WebhookScheme::Standard,
        "hook-standard",
        "HOOK_STANDARD_SECRET",
        STD_OLD,
        STD_NEW,
    ),
    (
        WebhookScheme::Github,
        "hook-github",
        "HOOK_GITHUB_SECRET",
        "gh-old-secret",
        "gh-new-secret",
    ),
    (
        WebhookScheme::Stripe,
        "hook-stripe",
        "HOOK_STRIPE_SECRET",
        "whsec_stripe_old",
        "whsec_stripe_new",
    ),
    (
        WebhookScheme::Slack,
        "hook-slack",
        "HOOK_SLACK_SECRET",
        "slack-old-secret",
        "slack-new-secret",
    ),
];

fn scheme_name(s: WebhookScheme) -> &'static str {
    match s {
        WebhookScheme::Standard => "standard",
        WebhookScheme::Github => "github",
        WebhookScheme::Stripe => "stripe",
        WebhookScheme::Slack => "slack",
        WebhookScheme::None => "none",
    }
}

/// A webhook workflow whose output echoes the input.
fn hook_workflow(id: &str, scheme: WebhookScheme, secret_env: Option<&str>, active: bool) -> Value {
    let mut trigger = json!({ "type": "webhook", "scheme": scheme_name(scheme) });
    if let Some(env) = secret_env {
        trigger["secretEnv"] = json!(env);
    }
    json!({
        "id": id,
        "config": { "active": active },
        "steps": [
            { "id": "start", "type": "start", "triggers": [trigger], "next": "out" },
            { "id": "out", "type": "output", "output": { "got": "{{ input }}" } }
        ]
    })
}

/// A `wf dev` with one workflow per signed scheme (env holds "old new": a rotation) and one
/// with scheme `none`.
fn all_schemes() -> DevProcess {
    let mut dev = DevProcess::new();
    for (scheme, id, env, old, new) in SCHEMES {
        dev = dev
            .workflow(hook_workflow(id, scheme, Some(env), true))
            .env(env, &format!("{old} {new}"));
    }
    dev.workflow(hook_workflow("hook-none", WebhookScheme::None, None, true))
        .start()
}

/// A body for `scheme` with a message id where the scheme carries it in the body.
fn body_for(scheme: WebhookScheme, n: u32, msg_id: &str) -> Vec<u8> {
    let v = match scheme {
        WebhookScheme::Stripe => json!({ "id": msg_id, "type": "charge.succeeded", "n": n }),
        WebhookScheme::Slack => json!({ "type": "event_callback", "event_id": msg_id, "n": n }),
        _ => json!({ "n": n }),
    };
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheme_accepts_a_valid_signature_and_refuses_forgeries_with_the_reason() {
    let dev = all_schemes();
    let now = now_secs();
    let mut expected_mismatch = 0;
    let mut expected_stale = 0;
    let mut expected_missing = 0;
    for (i, (scheme, id, _, old, _)) in SCHEMES.into_iter().enumerate() {
        let path = dev.hook_path(id).await;
        let n = i as u32;

        // Valid: 202 with the execution id; the execution gets the JSON body as input.
        let body = body_for(scheme, n, &format!("msg-valid-{n}"));
        let r = dev
            .post_signed(
                &path,
                scheme,
                old,
                &body,
                now,
                &format!("msg-valid-{n}"),
                &[],
            )
            .await;
        let exec_id = r.expect(202)["executionId"].as_str().unwrap().to_string();
        let e = dev.wait_execution(&exec_id).await;
        assert_eq!(e["status"], json!("succeeded"), "{id}: {e:#}");
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(e["input"], sent, "{id}");
        assert_eq!(e["output"], json!({ "got": sent }), "{id}");
        assert_eq!(e["trigger"]["type"], json!("webhook"), "{id}");

        // Tampered body: signed over one body, another one sent.
        let signed = body_for(scheme, n, &format!("msg-tamper-{n}"));
        let sent_body = body_for(scheme, n + 100, &format!("msg-tamper-{n}"));
        let headers = wf_app::webhooks::signature::sign(
            scheme,
            old,
            &signed,
            now,
            &format!("msg-tamper-{n}"),
        )
        .unwrap();
        let r = dev
            .post_raw(
                &path,
                "application/json",
                sent_body,
                &headers.into_iter().collect::<Vec<_>>(),
            )
            .await;
        let err = r.expect_error(401, "signature");
        assert_eq!(
            err["details"]["reason"],
            json!("mismatch"),
            "{id}: tampered body"
        );
        assert!(
            err["message"].as_str().unwrap().contains("does not match"),
            "{err}"
        );
        expected_mismatch += 1;

        // Wrong secret.
        let wrong = match scheme {
            WebhookScheme::Standard => "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC0wMTI=",
            _ => "not-the-secret",
        };
        let body = body_for(scheme, n, &format!("msg-wrong-{n}"));
        let r = dev
            .post_signed(
                &path,
                scheme,
                wrong,
                &body,
                now,
                &format!("msg-wrong-{n}"),
                &[],
            )
            .await;
        let err = r.expect_error(401, "signature");
        assert_eq!(
            err["details"]["reason"],
            json!("mismatch"),
            "{id}: wrong secret"
        );
        expected_mismatch += 1;

        // Stale timestamp: authentic but 10 minutes old (GitHub signs no timestamp).
        let body = body_for(scheme, n, &format!("msg-stale-{n}"));
        let r = dev
            .post_signed(
                &path,
                scheme,
                old,
                &body,
                now - 600,
                &format!("msg-stale-{n}"),
                &[],
            )
            .await;
        if scheme == WebhookScheme::Github {
            r.expect(202);
        } else {
            let err = r.expect_error(401, "signature");
            assert_eq!(
                err["details"]["reason"],
                json!("stale_timestamp"),
                "{id}: stale"
            );
            assert!(err["message"].as_str().unwrap().contains("replay"), "{err}");
            expected_stale += 1;
        }

        // No signature headers at all.
        let r = dev
            .post_raw(&path, "application/json", body_for(scheme, n, "x"), &[])
            .await;
        let err = r.expect_error(401, "signature");
        assert_eq!(err["details"]["reason"], json!("missing_header"), "{id}");
        expected_missing += 1;

        // Only the valid requests (and GitHub's unstamped one) started executions.
        let started = dev.executions_of(id).await.len();
        let want = if scheme == WebhookScheme::Github {
            2
        } else {
            1
        };
        assert_eq!(started, want, "{id}: refused requests start nothing");
    }

    // Scheme `none`: the unguessable URL is the only protection.
    let path = dev.hook_path("hook-none").await;
    let r = dev.post(&path, json!({ "plain": true })).await;
    r.expect(202);

    // Every refusal is counted by reason.
    assert_eq!(dev.signature_failures("mismatch").await, expected_mismatch);
    assert_eq!(
        dev.signature_failures("stale_timestamp").await,
        expected_stale
    );
    assert_eq!(
        dev.signature_failures("missing_header").await,
        expected_missing
    );
    let metrics = dev.get("/metrics").await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("wf_webhook_signature_failures_total{reason=\"mismatch\"} 8"),
        "{}",
        metrics.body
    );
    // Secrets never show up in what the server says.
    let stderr = dev.stderr();
    for (_, _, _, old, new) in SCHEMES {
        assert!(
            !stderr.contains(old) && !stderr.contains(new),
            "a secret was logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_accepted_beside_the_old_one_then_alone() {
    let dev = all_schemes();
    let now = now_secs();
    for (i, (scheme, id, _, old, new)) in SCHEMES.into_iter().enumerate() {
        let path = dev.hook_path(id).await;
        let n = i as u32;
        // During the rotation (env holds both), either secret passes.
        for (k, secret) in [old, new].into_iter().enumerate() {
            let msg = format!("rot-{n}-{k}");
            let r = dev
                .post_signed(
                    &path,
                    scheme,
                    secret,
                    &body_for(scheme, n, &msg),
                    now,
                    &msg,
                    &[],
                )
                .await;
            r.expect(202);
        }
        // The rotation is finished through the API: only the new secret is kept.
        let r = dev
            .put(
                &format!("/workflows/{id}/webhook/secrets"),
                json!({ "secrets": [new] }),
            )
            .await;
        assert_eq!(r.expect(200)["hasWebhookSecret"], json!(true));
        assert!(!r.body.to_string().contains(new), "secrets are never shown");
        let msg = format!("rot-{n}-old-after");
        let r = dev
            .post_signed(
                &path,
                scheme,
                old,
                &body_for(scheme, n, &msg),
                now,
                &msg,
                &[],
            )
            .await;
        let err = r.expect_error(401, "signature");
        assert_eq!(
            err["details"]["reason"],
            json!("mismatch"),
            "{id}: old secret retired"
        );
        let msg = format!("rot-{n}-new-after");
        let r = dev
            .post_signed(
                &path,
                scheme,
                new,
                &body_for(scheme, n, &msg),
                now,
                &msg,
                &[],
            )
            .await;
        r.expect(202);
        assert_eq!(dev.executions_of(id).await.len(), 3, "{id}");
    }
    assert_eq!(dev.signature_failures("mismatch").await, 4);
    // Empty secrets are refused; `[]` goes back to the trigger's secretEnv.
    let r = dev
        .put(
            "/workflows/hook-github/webhook/secrets",
            json!({ "secrets": [" "] }),
        )
        .await;
    r.expect_error(422, "invalid_secret");
    let r = dev
        .put(
            "/workflows/hook-github/webhook/secrets",
            json!({ "secrets": [] }),
        )
        .await;
    assert_eq!(r.expect(200)["hasWebhookSecret"], json!(false));
    let path = dev.hook_path("hook-github").await;
    let r = dev
        .post_signed(
            &path,
            WebhookScheme::Github,
            "gh-old-secret",
            b"{}",
            now,
            "gh-back",
            &[],
        )
        .await;
    r.expect(202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_or_the_scheme_message_id_starts_one_execution() {
    let dev = all_schemes();
    let now = now_secs();

    // Idempotency-Key header (scheme none).
    let path = dev.hook_path("hook-none").await;
    let key = |k: &str| vec![("idempotency-key", k.to_string())];
    let first = dev
        .post_raw(
            &path,
            "application/json",
            br#"{"a":1}"#.to_vec(),
            &key("order-1"),
        )
        .await;
    let first_id = first.expect(202)["executionId"].clone();
    assert!(first.body.get("duplicate").is_none(), "{}", first.body);
    let again = dev
        .post_raw(
            &path,
            "application/json",
            br#"{"a":2}"#.to_vec(),
            &key("order-1"),
        )
        .await;
    assert_eq!(again.expect(202)["executionId"], first_id);
    assert_eq!(again.body["duplicate"], json!(true));
    // With ?wait the repeat answers the first execution, finished.
    let waited = dev
        .post_raw(
            &format!("{path}?wait=5"),
            "application/json",
            br#"{"a":3}"#.to_vec(),
            &key("order-1"),
        )
        .await;
    assert_eq!(waited.expect(200)["id"], first_id);
    assert_eq!(waited.body["input"], json!({ "a": 1 }));
    let other = dev
        .post_raw(
            &path,
            "application/json",
            br#"{"a":1}"#.to_vec(),
            &key("order-2"),
        )
        .await;
    assert_ne!(other.expect(202)["executionId"], first_id);
    // Concurrent deliveries of one key race to the same single execution.
    let race_key = key("order-race");
    let racers: Vec<_> = (0..8)
        .map(|i| {
            dev.post_raw(
                &path,
                "application/json",
                format!("{{\"race\":{i}}}").into_bytes(),
                &race_key,
            )
        })
        .collect();
    let answers = futures::future::join_all(racers).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| r.expect(202)["executionId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|r| r.body.get("duplicate").is_none())
            .count(),
        1
    );
    let list = dev.executions_of("hook-none").await;
    assert_eq!(list.len(), 3);
    assert_eq!(list[2]["trigger"]["idempotencyKey"], json!("order-1"));

    // Each scheme's own message id: a redelivery (signed again, later) starts nothing new.
    for (i, (scheme, id, _, old, _)) in SCHEMES.into_iter().enumerate() {
        let path = dev.hook_path(id).await;
        let n = i as u32;
        let msg = format!("delivery-{n}");
        let body = body_for(scheme, n, &msg);
        let a = dev
            .post_signed(&path, scheme, old, &body, now - 5, &msg, &[])
            .await;
        let a_id = a.expect(202)["executionId"].clone();
        let b = dev
            .post_signed(&path, scheme, old, &body, now, &msg, &[])
            .await;
        assert_eq!(b.expect(202)["executionId"], a_id, "{id}: redelivery");
        assert_eq!(b.body["duplicate"], json!(true), "{id}");
        // A different message id is a new delivery.
        let msg2 = format!("delivery-{n}-b");
        let c = dev
            .post_signed(
                &path,
                scheme,
                old,
                &body_for(scheme, n, &msg2),
                now,
                &msg2,
                &[],
            )
            .await;
        assert_ne!(c.expect(202)["executionId"], a_id, "{id}");
        // The Idempotency-Key header wins over the message id.
        let msg3 = format!("delivery-{n}-c");
        let d = dev
            .post_signed(
                &path,
                scheme,
                old,
                &body_for(scheme, n, &msg3),
                now,
                &msg3,
                &key(&msg),
            )
            .await;
        assert_eq!(
            d.expect(202)["executionId"],
            a_id,
            "{id}: key over message id"
        );
        assert_eq!(dev.executions_of(id).await.len(), 2, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_challenges_are_answered_and_form_bodies_become_json() {
    let dev = all_schemes();
    let now = now_secs();
    let path = dev.hook_path("hook-slack").await;
    let secret = "slack-old-secret";

    let challenge = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let r = dev
        .post_signed(&path, WebhookScheme::Slack, secret, challenge, now, "", &[])
        .await;
    assert_eq!(
        r.expect(200),
        &json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" })
    );
    // An unsigned challenge is refused like anything else.
    let r = dev
        .post_raw(&path, "application/json", challenge.to_vec(), &[])
        .await;
    r.expect_error(401, "signature");
    assert!(dev.executions_of("hook-slack").await.is_empty());

    // A slash command (form-encoded), and an interaction whose `payload` holds JSON.
    let form = b"command=%2Fdeploy&text=prod+now&user_name=ann".to_vec();
    let headers =
        wf_app::webhooks::signature::sign(WebhookScheme::Slack, secret, &form, now, "").unwrap();
    let r = dev
        .post_raw(
            &format!("{path}?wait=5"),
            "application/x-www-form-urlencoded",
            form,
            &headers.into_iter().collect::<Vec<_>>(),
        )
        .await;
    let e = r.expect(200);
    assert_eq!(
        e["input"],
        json!({ "command": "/deploy", "text": "prod now", "user_name": "ann" })
    );
    let form = b"payload=%7B%22type%22%3A%22block_actions%22%2C%22n%22%3A1%7D".to_vec();
    let headers =
        wf_app::webhooks::signature::sign(WebhookScheme::Slack, secret, &form, now, "").unwrap();
    let r = dev
        .post_raw(
            &format!("{path}?wait=5"),
            "application/x-www-form-urlencoded",
            form,
            &headers.into_iter().collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(
        r.expect(200)["input"],
        json!({ "payload": { "type": "block_actions", "n": 1 } })
    );
    // Form bodies are for Slack only.
    let none = dev.hook_path("hook-none").await;
    let r = dev
        .post_raw(
            &none,
            "application/x-www-form-urlencoded",
            b"a=1".to_vec(),
            &[],
        )
        .await;
    r.expect_error(415, "unsupported_media_type");
}

fn strict_workflow(id: &str, active: bool) -> Value {
    json!({
        "id": id,
        "config": { "active": active },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "webhook", "scheme": "none" }, { "type": "manual" } ],
              "inputSchema": { "type": "object", "required": ["orderId", "amount"],
                               "properties": { "orderId": { "type": "string" },
                                               "amount": { "type": "number", "minimum": 0 } } },
              "next": "out" },
            { "id": "out", "type": "output", "output": { "amount": "{{ input.amount }}" } }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_errors_have_the_right_status_and_shape_and_start_nothing() {
    let mut manual_only = strict_workflow("manual-only", true);
    manual_only["steps"][0]["triggers"] = json!([ { "type": "manual" } ]);
    let dev = DevProcess::new()
        .workflow(strict_workflow("strict", true))
        .workflow(strict_workflow("sleeping", false))
        .workflow(manual_only)
        // Misconfigured signing: the secret's variable is unset / not base64 for `standard`.
        .workflow(hook_workflow(
            "no-secret",
            WebhookScheme::Stripe,
            Some("HOOK_UNSET_SECRET"),
            true,
        ))
        .workflow(hook_workflow(
            "bad-secret",
            WebhookScheme::Standard,
            Some("HOOK_BAD_SECRET"),
            true,
        ))
        .env("HOOK_BAD_SECRET", "not base64 at all!")
        .start();
    let path = dev.hook_path("strict").await;
    let token = path.rsplit('/').next().unwrap().to_string();
    let good = json!({ "orderId": "A1", "amount": 5 });

    // Unknown workflow, wrong token, inactive workflow: the same 404.
    let r = dev
        .post(&format!("/hooks/nope/{token}"), good.clone())
        .await;
    let unknown = r.expect_error(404, "not_found").clone();
    let r = dev
        .post(
            "/hooks/strict/0123456789abcdef0123456789abcdef",
            good.clone(),
        )
        .await;
    assert_eq!(
        r.expect_error(404, "not_found"),
        &unknown,
        "a wrong token looks unknown"
    );
    // An inactive workflow (published from its file, config.active false) has a token too.
    let sleeping = dev.get("/workflows/sleeping").await;
    let sleeping = sleeping.expect(200)["workflow"].clone();
    assert_eq!(sleeping["active"], json!(false));
    assert_eq!(sleeping["latestVersion"], json!(1));
    let sleeping_url = sleeping["webhookUrl"]
        .as_str()
        .expect("token made at first publish");
    let r = dev.send(dev.http.post(sleeping_url).json(&good)).await;
    assert_eq!(
        r.expect_error(404, "not_found"),
        &unknown,
        "inactive looks unknown"
    );
    // An active workflow with no webhook trigger has no webhook.
    let manual_path = dev.hook_path("manual-only").await;
    let r = dev.post(&manual_path, good.clone()).await;
    assert_eq!(r.expect_error(404, "not_found"), &unknown);

    // A webhook whose secret is missing or unusable: 503 `not_configured`, a configuration
    // problem of the server (it was 500: a server-error class for a configuration problem),
    // the sender retries once it is fixed; the reason given and counted, the variable named,
    // never a secret in the message.
    let now = now_secs();
    let body = br#"{"id":"evt_1"}"#;
    let no_secret = dev.hook_path("no-secret").await;
    let r = dev
        .post_signed(
            &no_secret,
            WebhookScheme::Stripe,
            "whatever",
            body,
            now,
            "",
            &[],
        )
        .await;
    let err = r.expect_error(503, "not_configured");
    assert_eq!(err["details"]["reason"], json!("no_secret"));
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("HOOK_UNSET_SECRET"),
        "{err}"
    );
    let bad_secret = dev.hook_path("bad-secret").await;
    let r = dev
        .post_signed(
            &bad_secret,
            WebhookScheme::Standard,
            STD_OLD,
            body,
            now,
            "m1",
            &[],
        )
        .await;
    let err = r.expect_error(503, "not_configured");
    assert_eq!(err["details"]["reason"], json!("invalid_secret"));
    assert!(!err.to_string().contains("not base64 at all"), "{err}");
    assert_eq!(dev.signature_failures("no_secret").await, 1);
    assert_eq!(dev.signature_failures("invalid_secret").await, 1);
    // `wf dev` said so at start, next to that webhook's URL (and of no other).
    let banner = dev.stdout();
    let lines: Vec<&str> = banner.lines().collect();
    let warnings: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{banner}");
    let w = warnings[0];
    assert!(
        lines[w].contains("refuses requests until environment variable `HOOK_UNSET_SECRET` is set"),
        "{banner}"
    );
    assert!(
        lines[w - 1].contains("/hooks/no-secret/"),
        "the warning is not next to its URL: {banner}"
    );

    // Not JSON: 400 with the position of the error.
    let r = dev
        .post_raw(
            &path,
            "application/json",
            b"{\n  \"orderId\": \"A1\",\n  \"amount\": 5,,\n}".to_vec(),
            &[],
        )
        .await;
    let err = r.expect_error(400, "invalid_json");
    assert_eq!(err["details"]["line"], json!(3), "{err}");
    assert!(err["details"]["column"].as_u64().unwrap() > 0, "{err}");
    assert!(err["message"].as_str().unwrap().contains("line 3"), "{err}");
    let r = dev
        .post_raw(&path, "application/json", Vec::new(), &[])
        .await;
    r.expect_error(400, "invalid_json");

    // Wrong or missing content type: 415.
    let r = dev
        .post_raw(&path, "text/plain", serde_json::to_vec(&good).unwrap(), &[])
        .await;
    let err = r.expect_error(415, "unsupported_media_type");
    assert!(
        err["message"].as_str().unwrap().contains("text/plain"),
        "{err}"
    );
    let r = dev
        .send(
            dev.http
                .post(dev.at(&path))
                .body(serde_json::to_vec(&good).unwrap()),
        )
        .await;
    r.expect_error(415, "unsupported_media_type");
    // `application/*+json` and a charset are fine.
    let r = dev
        .post_raw(
            &path,
            "application/vnd.api+json; charset=utf-8",
            serde_json::to_vec(&good).unwrap(),
            &[],
        )
        .await;
    r.expect(202);
    let accepted = 1;

    // Over 256 KiB: 413 (declared length, and a chunked body with no length).
    let big = format!(
        "{{\"orderId\":\"A1\",\"amount\":1,\"pad\":\"{}\"}}",
        "x".repeat(256 * 1024)
    );
    let r = dev
        .post_raw(&path, "application/json", big.clone().into_bytes(), &[])
        .await;
    let err = r.expect_error(413, "too_large");
    assert!(
        err["message"].as_str().unwrap().contains("256 KiB"),
        "{err}"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = dev
        .send(
            dev.http
                .post(dev.at(&path))
                .header("content-type", "application/json")
                .body(stream),
        )
        .await;
    r.expect_error(413, "too_large");
    // Exactly at the limit is accepted by the size check (and then judged as JSON).
    let pad = 256 * 1024 - r#"{"orderId":"A1","amount":1,"pad":""}"#.len();
    let at_limit = format!(
        "{{\"orderId\":\"A1\",\"amount\":1,\"pad\":\"{}\"}}",
        "y".repeat(pad)
    );
    assert_eq!(at_limit.len(), 256 * 1024);
    let r = dev
        .post_raw(&path, "application/json", at_limit.into_bytes(), &[])
        .await;
    r.expect(202);
    let accepted = accepted + 1;

    // Input failing inputSchema: 422 with every violation.
    let r = dev.post(&path, json!({ "amount": -3 })).await;
    let err = r.expect_error(422, "invalid_input");
    let violations = err["details"]["violations"].as_array().expect("violations");
    assert_eq!(violations.len(), 2, "{err:#}");
    let text = serde_json::to_string(violations).unwrap();
    assert!(
        text.contains("orderId") && text.contains("/amount"),
        "{text}"
    );
    let r = dev
        .post(&path, json!({ "orderId": 7, "amount": "x" }))
        .await;
    let err = r.expect_error(422, "invalid_input");
    let pointers: Vec<&str> = err["details"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers.len(), 2, "{err:#}");
    assert!(
        pointers.contains(&"/orderId") && pointers.contains(&"/amount"),
        "{pointers:?}"
    );

    // A bad ?wait is an API error too.
    let r = dev.post(&format!("{path}?wait=soon"), good.clone()).await;
    r.expect_error(400, "invalid_query");

    // None of the refused requests created an execution.
    assert_eq!(dev.executions_of("strict").await.len(), accepted);
    for id in ["sleeping", "manual-only", "no-secret", "bad-secret"] {
        assert!(dev.executions_of(id).await.is_empty(), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_200_with_the_finished_execution_or_202_while_it_runs() {
    let slow = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({ "ok": true }))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&slow)
        .await;
    let dev = DevProcess::new()
        .workflow(hook_workflow("quick", WebhookScheme::None, None, true))
        .workflow(json!({
            "id": "slow",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "webhook", "scheme": "none" } ], "next": "call" },
                { "id": "call", "type": "action", "action": "http.request",
                  "params": { "url": format!("{}/slow", slow.uri()) }, "next": "out" },
                { "id": "out", "type": "output", "output": "{{ steps.call.output.body }}" }
            ]
        }))
        .start();

    let quick = dev.hook_path("quick").await;
    let r = dev
        .post(&format!("{quick}?wait=5"), json!({ "x": 1 }))
        .await;
    let e = r.expect(200);
    assert_eq!(e["status"], json!("succeeded"));
    assert_eq!(e["output"], json!({ "got": { "x": 1 } }));
    assert_eq!(step(e, "out")["status"], json!("succeeded"));
    assert_eq!(e["steps"].as_array().unwrap().len(), 2);

    let slow_path = dev.hook_path("slow").await;
    let r = dev.post(&format!("{slow_path}?wait=1"), json!({})).await;
    let id = r.expect(202)["executionId"].as_str().unwrap().to_string();
    let e = dev.execution(&id).await;
    assert!(
        ["queued", "running"].contains(&e["status"].as_str().unwrap()),
        "{e}"
    );
    let e = dev.wait_execution(&id).await;
    assert_eq!(e["output"], json!({ "ok": true }));
    // A wait over 30 s is capped (and a finished one answers at once).
    let r = dev
        .post(&format!("{quick}?wait=3600"), json!({ "x": 2 }))
        .await;
    r.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_webhook_token_retires_the_old_url() {
    let dev = DevProcess::new()
        .workflow(hook_workflow("turn", WebhookScheme::None, None, true))
        .start();
    let old = dev.hook_path("turn").await;
    dev.post(&old, json!({})).await.expect(202);
    let r = dev.post_empty("/workflows/turn/webhook/rotate").await;
    let url = r.expect(200)["webhookUrl"].as_str().unwrap().to_string();
    let new = url[dev.url.len()..].to_string();
    assert_ne!(new, old);
    let token = new.rsplit('/').next().unwrap();
    assert!(token.len() >= 22, "at least 128 random bits: {token}");
    dev.post(&old, json!({}))
        .await
        .expect_error(404, "not_found");
    dev.post(&new, json!({})).await.expect(202);
    assert_eq!(dev.hook_path("turn").await, new);
    assert_eq!(dev.executions_of("turn").await.len(), 2);
    dev.post_empty("/workflows/nope/webhook/rotate")
        .await
        .expect_error(404, "not_found");
}

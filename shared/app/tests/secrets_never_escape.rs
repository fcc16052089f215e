//! Redaction at one boundary: a secret read through `{{ secrets.NAME }}` reaches the peer, but
//! never the store, the API or the logs, in any form: peers echo it in a 500 body, a 200 body
//! and headers; an LLM repeats its prompt; templates transform it (`upper`, `lower`, `tojson`,
//! a hand-made URL encoding: minijinja's `urlencode` is not enabled here). Then the whole execution (API answer), the list endpoint and the
//! captured log lines are searched for the value and its encodings.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use wf_app::http::{AppState, router};
use wf_app::local::{LocalApp, LocalOptions};
use wf_core::model::Workflow;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const NAME: &str = "WF_TEST_LEAK_PROBE_SECRET";
const SECRET: &str = "Zq9-leak/S3cret value+42";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn b64(bytes: &[u8], url: bool) -> String {
    let alphabet: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        for _ in c.len()..3 {
            out.push('=');
        }
    }
    out
}

/// The secret in every form that must not appear anywhere.
fn forms() -> Vec<String> {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    vec![
        SECRET.to_string(),
        SECRET.to_uppercase(),
        SECRET.to_lowercase(),
        b64(SECRET.as_bytes(), false),
        b64(SECRET.as_bytes(), false)
            .trim_end_matches('=')
            .to_string(),
        b64(SECRET.as_bytes(), true),
        enc(SECRET),
        enc(SECRET).to_lowercase(),
        enc(SECRET).replace("%20", "+"),
        serde_json::to_string(SECRET)
            .unwrap()
            .trim_matches('"')
            .to_string(),
        // The value's distinctive middle, whatever surrounds it.
        "leak/S3cret".to_string(),
        "LEAK/S3CRET".to_string(),
        "leak%2FS3cret".to_string(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for form in forms() {
        assert!(
            !text.contains(&form),
            "{what} contains the secret as {form:?}:\n{text}"
        );
    }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_peer_but_no_record_answer_or_log_line() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(wf_app::logs::ScrubbingWriter(move || sink.clone()))
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let peer = MockServer::start().await;
    let echo = |status: u16| {
        move |req: &wiremock::Request| {
            let auth = req
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&req.body).to_string();
            ResponseTemplate::new(status)
                .insert_header("x-echo", auth.as_str())
                .insert_header("x-echo-b64", b64(auth.as_bytes(), false).as_str())
                .set_body_json(json!({
                    "youSent": auth,
                    "yourBody": body,
                    "basic": b64(format!("user:{SECRET}").as_bytes(), false),
                    "upper": auth.to_uppercase(),
                    "url": req.url.to_string(),
                }))
        }
    };
    Mock::given(path("/fail"))
        .respond_with(echo(500))
        .mount(&peer)
        .await;
    Mock::given(path("/ok"))
        .respond_with(echo(200))
        .mount(&peer)
        .await;
    // An LLM that repeats its prompt (not JSON, so the raw text lands in the error details),
    // and once more as a valid answer.
    Mock::given(path("/chat/completions"))
        .respond_with(|req: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let prompt = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .map(|m| m["content"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(json!({
                "model": "tiny",
                "choices": [ { "message": { "role": "assistant", "content": format!("You said: {prompt}") } } ],
                "usage": { "prompt_tokens": 1, "completion_tokens": 1 }
            }))
        })
        .mount(&peer)
        .await;

    // SAFETY: set before the engine starts; the names are unique to this test binary.
    unsafe {
        std::env::set_var(NAME, SECRET);
        std::env::set_var("WF_LLM_BASE_URL", peer.uri());
    }
    let dir = tempfile::tempdir().unwrap();
    let local = LocalApp::open(&dir.path().join("wf.db"), LocalOptions::default()).unwrap();
    let s = format!("{{{{ secrets.{NAME} }}}}");
    let workflow: Workflow = serde_json::from_value(json!({
        "id": "leaky",
        "config": { "maxRetries": 0, "timeoutMs": 60000 },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "fail" },
            { "id": "fail", "type": "action", "action": "http.request",
              "params": { "method": "POST", "url": format!("{}/fail?token={s}", peer.uri()),
                          "headers": { "Authorization": format!("Bearer {s}") },
                          "json": { "token": s } },
              "onError": "ok", "next": "ok" },
            { "id": "ok", "type": "action", "action": "http.request",
              "params": { "method": "POST", "url": format!("{}/ok", peer.uri()),
                          "headers": { "Authorization": format!("Bearer {{{{ secrets.{NAME} | upper }}}}") },
                          "json": { "lower": format!("{{{{ secrets.{NAME} | lower }}}}"),
                                    "url": format!("{{{{ secrets.{NAME} | replace('/', '%2F') | replace(' ', '%20') }}}}"),
                                    "json": format!("{{{{ secrets.{NAME} | tojson }}}}") } },
              "next": "ask" },
            { "id": "ask", "type": "llm", "model": "tiny", "responseFormat": "json",
              "prompt": format!("Repeat this: {s} and {{{{ secrets.{NAME} | upper }}}}"),
              "onError": "chat", "next": "chat" },
            { "id": "chat", "type": "llm", "model": "tiny", "prompt": format!("Say {s}"), "next": "out" },
            { "id": "out", "type": "output", "output": {
                "fail": "{{ steps.fail.error }}", "ok": "{{ steps.ok.output }}",
                "ask": "{{ steps.ask.error }}", "chat": "{{ steps.chat.output.text }}",
                "direct": s, "upper": format!("{{{{ secrets.{NAME} | upper }}}}") } }
        ]
    }))
    .unwrap();
    let report = wf_core::validate::validate_workflow(&workflow);
    assert!(report.is_empty(), "{report:#?}");
    let compiled = local.publish(workflow).await.unwrap();
    let pool = local.start_workers();
    let started = local
        .app
        .start(
            &compiled,
            wf_app::app::executions::StartRequest::new(
                json!({}),
                wf_core::execution::TriggerInfo::new("manual"),
            ),
        )
        .await
        .unwrap();
    let view = local.wait_finished(&started.execution_id).await.unwrap();
    pool.shutdown().await;

    // The peer got the real value: the scrubber only guards what is kept.
    let received = peer.received_requests().await.unwrap();
    let first = &received[0];
    assert_eq!(
        first.headers.get("authorization").unwrap(),
        &format!("Bearer {SECRET}")
    );

    // Every step ran as expected, so every path above was exercised.
    let steps: Vec<(&str, &str)> = view
        .steps
        .iter()
        .map(|s| {
            (
                s.path.as_str(),
                s.error.as_ref().map(|e| e.code.as_str()).unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        view.execution.status,
        wf_core::execution::ExecutionStatus::Succeeded,
        "{steps:?} {:#?}",
        view.execution
    );
    assert!(steps.contains(&("fail", "http.status")), "{steps:?}");
    assert!(steps.contains(&("ask", "llm.invalid_json")), "{steps:?}");

    let api = router(AppState::new(local.app.clone(), "http://127.0.0.1:3000"));
    let (status, one) = get(&api, &format!("/executions/{}", started.execution_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(one.contains("***"), "{one}");
    assert_clean("GET /executions/{id}", &one);
    let (status, list) = get(&api, "/executions").await;
    assert_eq!(status, StatusCode::OK);
    assert_clean("GET /executions", &list);
    let (_, per_workflow) = get(&api, "/workflows/leaky/executions").await;
    assert_clean("GET /workflows/leaky/executions", &per_workflow);
    assert_clean("the stored records", &serde_json::to_string(&view).unwrap());

    tracing::warn!(
        echoed = %format!("Bearer {SECRET}"),
        "a log line that names the secret must not show it"
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("must not show it"), "the logs were captured");
    assert_clean("the logs", &text);
}

//! Shared by the ai_* tests: a real SQLite store, the HTTP router, and wiremock as the
//! OpenAI-compatible provider (everything on 127.0.0.1).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use wf_app::App;
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_app::ai::AiSettings;
use wf_app::http::{AppState, router};
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_app::services::{EnvSecrets, Services};
use wf_core::ports::{Clock, SystemClock};
use wf_local::{QueueConfig, SqliteStore};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request as MockRequest, Respond, ResponseTemplate};

pub struct Env {
    pub server: MockServer,
    pub store: Arc<SqliteStore>,
    pub svc: Services,
    pub router: Router,
    pub settings: AiSettings,
    _dir: tempfile::TempDir,
}

pub fn settings() -> AiSettings {
    AiSettings {
        model: "test-model".into(),
        timeout: Duration::from_secs(5),
        max_repairs: 3,
    }
}

pub async fn env() -> Env {
    env_with(settings()).await
}

pub async fn env_with(settings: AiSettings) -> Env {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("ai.db")).unwrap());
    let queue = Arc::new(store.queue(QueueConfig::default()));
    let bus = Arc::new(store.event_bus());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let actions = BuiltinActions::with_policy(
        store.clone(),
        bus.clone(),
        clock.clone(),
        OutboundPolicy::local(),
    )
    .unwrap();
    let llm = OpenAiCompatible::new(LlmConfig::new(server.uri(), None)).unwrap();
    let svc = Services {
        executions: store.clone(),
        definitions: store.clone(),
        records: store.clone(),
        queue,
        bus,
        actions: Arc::new(actions),
        llm: Arc::new(llm),
        clock,
        secrets: Arc::new(EnvSecrets),
    };
    let state = AppState::new(Arc::new(App::new(svc.clone())), "http://127.0.0.1:3000");
    let router = router(state).layer(Extension(settings.clone()));
    Env {
        server,
        store,
        svc,
        router,
        settings,
        _dir: dir,
    }
}

impl Env {
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// The model answers these contents in turn (the last one repeats).
    pub async fn answers(&self, contents: Vec<String>) -> Arc<Sequence> {
        let seq = Arc::new(Sequence::new(
            contents
                .into_iter()
                .map(|c| ResponseTemplate::new(200).set_body_json(completion(&c)))
                .collect(),
        ));
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .respond_with(SharedSequence(seq.clone()))
            .mount(&self.server)
            .await;
        seq
    }

    /// The provider answers every request with this response.
    pub async fn provider_answers(&self, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    /// Bodies of the chat-completions requests received so far.
    pub async fn requests(&self) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/chat/completions")
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// The system and user messages of a request body.
pub fn messages(body: &Value) -> (String, String) {
    let mut system = String::new();
    let mut user = String::new();
    for m in body["messages"].as_array().unwrap() {
        let text = m["content"].as_str().unwrap().to_owned();
        match m["role"].as_str().unwrap() {
            "system" => system = text,
            _ => user = text,
        }
    }
    (system, user)
}

pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "test-model",
        "choices": [ { "index": 0, "message": { "role": "assistant", "content": content },
                       "finish_reason": "stop" } ],
        "usage": { "prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150 }
    })
}

/// `{"workflow": ..., "explanation": ...}` as the model would write it.
pub fn answer(workflow: &Value, explanation: &str) -> String {
    serde_json::to_string_pretty(&json!({ "workflow": workflow, "explanation": explanation }))
        .unwrap()
}

pub struct Sequence {
    responses: Vec<ResponseTemplate>,
    next: AtomicUsize,
    pub seen: Mutex<Vec<Value>>,
}

impl Sequence {
    pub fn new(responses: Vec<ResponseTemplate>) -> Self {
        Self {
            responses,
            next: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        }
    }

    pub fn calls(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }
}

pub struct SharedSequence(pub Arc<Sequence>);

impl Respond for SharedSequence {
    fn respond(&self, request: &MockRequest) -> ResponseTemplate {
        if let Ok(v) = serde_json::from_slice(&request.body) {
            self.0.seen.lock().unwrap().push(v);
        }
        let i = self.0.next.fetch_add(1, Ordering::SeqCst);
        let last = self.0.responses.len() - 1;
        self.0.responses[i.min(last)].clone()
    }
}

/// A small valid workflow: webhook -> condition -> message -> output.
pub fn order_alert(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Order alert",
        "config": { "variables": { "threshold": 100, "hook": "https://hooks.example.com/sales" } },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "webhook", "scheme": "none" } ],
              "next": "check" },
            { "id": "check", "type": "condition",
              "branches": [ { "if": "{{ input.amount > vars.threshold }}", "next": "notify" } ],
              "else": "done" },
            { "id": "notify", "type": "action", "action": "message.send",
              "params": { "url": "{{ vars.hook }}", "text": "Big order: {{ input.amount }}" },
              "next": "done" },
            { "id": "done", "type": "output", "output": { "amount": "{{ input.amount }}" } }
        ]
    })
}

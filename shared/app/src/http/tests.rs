//! The router's error paths and its OpenAPI document, over a real local app (SQLite in a
//! temporary folder), each request sent with `oneshot`.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, MAX_URI_BYTES, openapi, router};
use crate::local::{LocalApp, LocalOptions};

struct Api {
    router: Router,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// The answer is an error in the one shape, with this status and code.
    fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "{}", self.body);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(
            error.get("details").is_some(),
            "details is always present: {}",
            self.body
        );
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
        );
        &error["details"]
    }
}

fn api() -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalApp::open(&dir.path().join("api.db"), LocalOptions::default()).expect("open");
    Api {
        router: router(AppState::new(local.app.clone(), "http://127.0.0.1:3000")),
        _dir: dir,
    }
}

/// [`api`] with a workflow `wf` (an empty draft).
async fn api_with_workflow() -> Api {
    let api = api();
    let answer = api
        .json(
            Method::POST,
            "/workflows",
            json!({ "id": "wf", "steps": [] }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    api
}

impl Api {
    async fn send(
        &self, method: Method, uri: &str, content_type: Option<&str>, body: &str,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let response = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 24).await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn json(&self, method: Method, uri: &str, body: Value) -> Answer {
        self.send(method, uri, Some("application/json"), &body.to_string())
            .await
    }
}

/// Every API route that takes a body: a `text/plain` one is 415 in the error shape (as webhooks
/// answer), before anything else is looked at; JSON media types with parameters or a `+json`
/// suffix are JSON.
#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let api = api_with_workflow().await;
    let writes = [
        (Method::POST, "/workflows"),
        (Method::PUT, "/workflows/wf"),
        (Method::POST, "/workflows/wf/validate"),
        (Method::POST, "/workflows/wf/activate"),
        (Method::PATCH, "/workflows/wf/config"),
        (Method::PUT, "/workflows/wf/webhook/secrets"),
        (Method::POST, "/workflows/wf/executions"),
        (Method::POST, "/workflows/wf/chat"),
        (Method::POST, "/workflows/generate"),
        (Method::POST, "/executions/nope/rerun"),
        (Method::POST, "/events"),
        (Method::POST, "/cron"),
    ];
    for (method, uri) in writes {
        let answer = api
            .send(method.clone(), uri, Some("text/plain"), r#"{"id": "wf"}"#)
            .await;
        let details = answer.expect_error(415, "unsupported_media_type");
        assert_eq!(details["contentType"], "text/plain", "{method} {uri}");
        let answer = api.send(method.clone(), uri, None, r#"{"id": "wf"}"#).await;
        answer.expect_error(415, "unsupported_media_type");
    }
    let answer = api
        .send(
            Method::POST,
            "/cron",
            Some("application/json; charset=utf-8"),
            r#"{"expression": "@daily"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = api
        .send(
            Method::POST,
            "/workflows/wf/validate",
            Some("application/vnd.wf+json"),
            r#"{"id": "wf", "steps": []}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// Every documented path, asked with a method the document does not give it: 405 in the error
/// shape, with an `Allow` header listing exactly the documented methods.
#[tokio::test]
async fn a_method_a_path_does_not_take_is_405_with_allow() {
    let api = api();
    let doc = openapi::served();
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (template, item) in paths {
        let uri = template
            .replace("{version}", "1")
            .replace("{workflowId}", "wf")
            .replace("{token}", "t")
            .replace("{id}", "wf");
        let documented: Vec<String> = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .map(str::to_uppercase)
            .collect();
        let mut allow = documented.clone();
        if documented.iter().any(|m| m == "GET") {
            allow.insert(1, "HEAD".into());
        }
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            // `/workflows/generate` is also the URL of a workflow whose id is `generate` (kept
            // readable on purpose: `ai_generate.rs`), so the workflow methods route there.
            let workflow_named_generate =
                template == "/workflows/generate" && ["GET", "PUT", "DELETE"].contains(&method);
            if documented.iter().any(|m| m == method) || workflow_named_generate {
                continue;
            }
            let method: Method = method.parse().expect("method");
            let answer = api.json(method.clone(), &uri, json!({})).await;
            let details = answer.expect_error(405, "method_not_allowed");
            let header = answer
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{method} {uri}: no Allow header"));
            assert_eq!(header, allow.join(", "), "{method} {uri}");
            assert_eq!(details["allow"], json!(allow), "{method} {uri}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} wrong methods tried");
    // POST on a workflow (only `/workflows/generate` takes POST) is one of them.
    let answer = api
        .json(Method::POST, "/workflows/order-alert", json!({}))
        .await;
    answer.expect_error(405, "method_not_allowed");
    assert_eq!(answer.headers[header::ALLOW], "GET, HEAD, PUT, DELETE");
}

/// A URI over the limit: 414 in the error shape, naming the limit.
#[tokio::test]
async fn an_overlong_uri_is_414_in_the_error_shape() {
    let api = api();
    let uri = format!("/executions?cursor={}", "a".repeat(MAX_URI_BYTES));
    let answer = api.send(Method::GET, &uri, None, "").await;
    let details = answer.expect_error(414, "uri_too_long");
    assert_eq!(details["limitBytes"], MAX_URI_BYTES);
    assert_eq!(details["length"], uri.len());
    // Just under the limit is served.
    let uri = format!("/executions?workflowId={}", "a".repeat(MAX_URI_BYTES - 30));
    let answer = api.send(Method::GET, &uri, None, "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// A required field left out, or a field of the wrong type, is named by its JSON pointer.
#[tokio::test]
async fn a_wrong_or_missing_field_is_named_by_its_json_pointer() {
    let api = api_with_workflow().await;
    let cases = [
        (
            Method::POST,
            "/cron",
            json!({}),
            400,
            "invalid_request",
            "/expression",
        ),
        (
            Method::POST,
            "/cron",
            json!({ "expression": 5 }),
            400,
            "invalid_request",
            "/expression",
        ),
        (
            Method::POST,
            "/events",
            json!({}),
            400,
            "invalid_request",
            "/type",
        ),
        (
            Method::POST,
            "/events",
            json!({ "type": "a.b", "id": [1] }),
            400,
            "invalid_request",
            "/id",
        ),
        (
            Method::PUT,
            "/workflows/wf/webhook/secrets",
            json!({}),
            400,
            "invalid_request",
            "/secrets",
        ),
        (
            Method::PUT,
            "/workflows/wf/webhook/secrets",
            json!({ "secrets": ["a", 2] }),
            400,
            "invalid_request",
            "/secrets/1",
        ),
        (
            Method::POST,
            "/workflows/wf/chat",
            json!({}),
            400,
            "invalid_request",
            "/message",
        ),
        (
            Method::POST,
            "/workflows/wf/activate",
            json!({ "version": "one" }),
            400,
            "invalid_request",
            "/version",
        ),
        (
            Method::POST,
            "/workflows",
            json!({}),
            422,
            "missing_id",
            "/id",
        ),
        (
            Method::POST,
            "/workflows",
            json!({ "id": "Not An Id" }),
            422,
            "invalid_id",
            "/id",
        ),
    ];
    let cases = cases.into_iter().chain([
        // A body of another JSON type than an object (serde would read a struct from an array).
        (
            Method::POST,
            "/cron",
            json!(["@daily"]),
            400,
            "invalid_request",
            "",
        ),
        (
            Method::POST,
            "/events",
            json!("a.b"),
            400,
            "invalid_request",
            "",
        ),
        (
            Method::POST,
            "/workflows/generate",
            json!([null, null]),
            400,
            "invalid_request",
            "",
        ),
        // A whole number is one whether written `70` or `70.0`; a fraction is not.
        (
            Method::POST,
            "/cron",
            json!({ "expression": "@daily", "count": 2.5 }),
            400,
            "invalid_request",
            "/count",
        ),
        (
            Method::POST,
            "/cron",
            json!({ "expression": "@daily", "count": -1 }),
            400,
            "invalid_request",
            "/count",
        ),
        (
            Method::POST,
            "/workflows/wf/activate",
            json!({ "version": 1.5 }),
            400,
            "invalid_request",
            "/version",
        ),
        // An event's detail is an object (EventBridge takes nothing else).
        (
            Method::POST,
            "/events",
            json!({ "type": "a.b", "detail": [1] }),
            400,
            "invalid_request",
            "/detail",
        ),
    ]);
    for (method, uri, body, status, code, pointer) in cases {
        let answer = api.json(method.clone(), uri, body.clone()).await;
        let details = answer.expect_error(status, code);
        assert_eq!(
            details["pointer"], pointer,
            "{method} {uri} {body}: {}",
            answer.body
        );
    }
}

/// `70.0` is the whole number 70 (JSON does not tell them apart, nor does JSON Schema).
#[tokio::test]
async fn whole_numbers_may_be_written_with_a_fraction_of_zero() {
    let api = api();
    let answer = api
        .json(
            Method::POST,
            "/cron",
            json!({ "expression": "@daily", "count": 3.0 }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body["next"].as_array().map(Vec::len),
        Some(3),
        "{}",
        answer.body
    );
    // Left out, or null: the default (5).
    let answer = api
        .json(
            Method::POST,
            "/cron",
            json!({ "expression": "@daily", "count": null }),
        )
        .await;
    assert_eq!(
        answer.body["next"].as_array().map(Vec::len),
        Some(5),
        "{}",
        answer.body
    );
}

/// The document: every error answer in the one shape, every body with a schema (no bare
/// object), the required fields marked, the workflow JSON Schema as `Workflow`.
#[test]
fn the_document_describes_every_answer() {
    let doc = openapi::served();
    let text = doc.to_string();
    assert!(!text.contains("#/$defs/"), "a reference left unresolved");
    // Every reference resolves.
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap_or_default();
        let pointer = target.trim_start_matches('#');
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Workflow"]["properties"]["steps"].is_object());
    assert!(schemas["WorkflowConfig"]["properties"]["timeoutMs"].is_object());
    assert!(schemas["Step"].is_object());
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let at = format!("{method} {path}");
            for (status, response) in op["responses"].as_object().expect("responses") {
                let schema = &response["content"]["application/json"]["schema"];
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{at} {status}"
                    );
                } else if status != "204" && path != "/executions/{id}/events" {
                    assert!(
                        schema.get("$ref").is_some()
                            || schema.get("type").is_some_and(|t| t != "object"),
                        "{at} {status}: no schema or a bare object: {response}"
                    );
                }
            }
            for status in ["414", "503"] {
                assert!(op["responses"].get(status).is_some(), "{at}: no {status}");
            }
            if let Some(body) = op.get("requestBody") {
                assert!(body["required"].is_boolean(), "{at}");
                let schema = &body["content"]["application/json"]["schema"];
                // A named schema, or (an optional body) `null` or a named schema.
                let named = |s: &Value| s.get("$ref").is_some();
                let optional = schema["oneOf"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(named));
                assert!(
                    named(schema) || (optional && body["required"] == false),
                    "{at}: a request body without a named schema: {body}"
                );
                for status in ["400", "413", "415"] {
                    assert!(op["responses"].get(status).is_some(), "{at}: no {status}");
                }
            }
        }
    }
    assert!(operations >= 30, "{operations}");
    // The operations that call the LLM document its errors.
    for (path, method) in [
        ("/workflows/generate", "post"),
        ("/workflows/{id}/chat", "post"),
        ("/cron", "post"),
    ] {
        for status in ["502", "503", "504"] {
            let response = &doc["paths"][path][method]["responses"][status];
            assert!(response.is_object(), "{method} {path}: no {status}");
        }
    }
    for (name, required) in [
        ("CronBody", "expression"),
        ("EventBody", "type"),
        ("SecretsBody", "secrets"),
        ("ChatRequest", "message"),
        ("WorkflowDraft", "id"),
    ] {
        let list = schemas[name]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            list.contains(&json!(required)),
            "{name}: {required} not required"
        );
    }
}

/// A workflow definition may be larger than other bodies (up to the size one stored draft can
/// have): a 5,000-step workflow (about 300 KB) is validated and stored through the API; past
/// 384 KiB it is 413 like any other body past its limit, and other writes keep 256 KiB.
#[tokio::test]
async fn a_five_thousand_step_workflow_goes_through_the_api() {
    let api = api();
    let mut steps = vec![
        json!({ "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "s0" }),
    ];
    for i in 0..5_000 {
        let next = if i + 1 < 5_000 {
            json!(format!("s{}", i + 1))
        } else {
            Value::Null
        };
        let mut step = json!({ "id": format!("s{i}"), "type": "output", "output": i });
        if !next.is_null() {
            step =
                json!({ "id": format!("s{i}"), "type": "condition", "branches": [], "else": next });
        }
        steps.push(step);
    }
    let big = json!({ "id": "big", "steps": steps });
    let size = big.to_string().len();
    assert!(
        size > super::MAX_BODY_BYTES && size < super::MAX_DEFINITION_BYTES,
        "{size}"
    );
    let validated = api
        .json(Method::POST, "/workflows/big/validate", big.clone())
        .await;
    assert_eq!(validated.status, StatusCode::OK, "{}", validated.body);
    assert_eq!(validated.body["valid"], json!(true), "{}", validated.body);
    let created = api.json(Method::POST, "/workflows", big).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    let pad = "x".repeat(super::MAX_DEFINITION_BYTES);
    let over = api
        .json(
            Method::POST,
            "/workflows",
            json!({ "id": "over", "pad": pad }),
        )
        .await;
    let _ = over.expect_error(413, "too_large");
    let event = api
        .json(
            Method::POST,
            "/events",
            json!({ "type": "t", "detail": { "pad": "x".repeat(300 * 1024) } }),
        )
        .await;
    let _ = event.expect_error(413, "too_large");
}

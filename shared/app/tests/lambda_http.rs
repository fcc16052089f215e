//! The HTTP functions' routers on function-URL requests (API Gateway v2 payloads, as Lambda
//! delivers them and `lambda_http` reads them): the webhook route with its answers and errors,
//! nothing else on the public webhook URL, and the api's bearer-token mode.

mod lambda_support;

use axum::body::to_bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;
use wf_app::http::{AppState, router};
use wf_app::lambda::{ApiAuth, RequestInfo, api_router, webhook_router};
use wf_app::webhooks::sign;
use wf_core::model::WebhookScheme;
use wf_core::ports::{Clock, DefinitionStore, ExecutionStore, SystemClock};

use lambda_support::{Engine, fixture};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hooked() -> Value {
    json!({
        "id": "order-hook", "name": "Orders", "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [{ "type": "webhook", "scheme": "standard" }],
              "inputSchema": { "type": "object", "required": ["orderId"] },
              "next": "done" },
            { "id": "done", "type": "output", "output": { "order": "{{ input.orderId }}" } }
        ]
    })
}

async fn setup() -> (Engine, AppState, String) {
    let engine = Engine::new();
    engine.publish_active(hooked()).await;
    let meta = engine
        .app
        .store
        .get_meta("order-hook")
        .await
        .unwrap()
        .unwrap();
    let meta = engine
        .app
        .app
        .write_meta(meta, |m| m.webhook_secrets = vec![SECRET.to_string()])
        .await
        .unwrap();
    let token = meta.webhook_token.clone().unwrap();
    let state = AppState::new(
        engine.app.app.clone(),
        "https://hooks.example.lambda-url.eu-west-1.on.aws",
    );
    (engine, state, token)
}

/// A function-URL webhook request for `path` with `body`, signed with `secret`.
fn webhook_request(path: &str, query: &str, body: &str, secret: &str) -> lambda_http::Request {
    let now = SystemClock.now_ms() / 1000;
    let headers = sign(
        WebhookScheme::Standard,
        secret,
        body.as_bytes(),
        now,
        "msg_2Kx1",
    )
    .unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let escaped = serde_json::to_string(body).unwrap();
    let text = fixture(
        "function_url_webhook.json",
        &[
            ("PATH", path),
            ("QUERY", query),
            ("MSG_ID", &header("webhook-id")),
            ("TIMESTAMP", &header("webhook-timestamp")),
            ("SIGNATURE", &header("webhook-signature")),
            ("BODY", &escaped[1..escaped.len() - 1]),
        ],
    );
    lambda_http::request::from_str(&text).expect("a function URL request")
}

fn api_request(path: &str, authorization: &str) -> lambda_http::Request {
    let text = fixture(
        "function_url_api_get.json",
        &[("PATH", path), ("AUTHORIZATION", authorization)],
    );
    lambda_http::request::from_str(&text).expect("a function URL request")
}

async fn send(
    app: axum::Router, req: lambda_http::Request,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let response = app.oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body, headers)
}

#[tokio::test]
async fn the_webhook_function_answers_like_wf_dev() {
    let (engine, state, token) = setup().await;
    let path = format!("/hooks/order-hook/{token}");
    let body = r#"{"orderId":"A-7","amount":12}"#;

    let (status, answer, _) = send(
        webhook_router(state.clone()),
        webhook_request(&path, "", body, SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = answer["executionId"].as_str().unwrap().to_string();
    let exec = engine.app.store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(exec.input, json!({ "orderId": "A-7", "amount": 12 }));
    assert_eq!(exec.trigger.kind, "webhook");
    // The message id dedupes: the same delivery again answers the first execution.
    let (status, again, _) = send(
        webhook_router(state.clone()),
        webhook_request(&path, "", body, SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["executionId"], json!(id));
    assert_eq!(again["duplicate"], json!(true));

    // A wrong signature: 401 with the reason, in the API's error shape.
    let (status, err, _) = send(
        webhook_router(state.clone()),
        webhook_request(&path, "", body, "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA=="),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
    assert_eq!(err["error"]["code"], json!("signature"));
    assert!(err["error"]["details"]["reason"].is_string(), "{err}");

    // A wrong token is a 404, like an unknown workflow.
    let (status, err, _) = send(
        webhook_router(state.clone()),
        webhook_request("/hooks/order-hook/not-the-token", "", body, SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err,
        json!({ "error": { "code": "not_found", "message": "no active webhook at this URL", "details": null } })
    );

    // An input that fails inputSchema: 422 naming the problem.
    let (status, err, _) = send(
        webhook_router(state.clone()),
        webhook_request(&path, "", r#"{"amount":1}"#, SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");

    // The public webhook URL serves nothing of the management API.
    let (status, err, _) = send(webhook_router(state.clone()), api_request("/workflows", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err["error"]["message"],
        json!("no such route; see /openapi.json")
    );
    let (status, _, _) = send(webhook_router(state), api_request("/openapi.json", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_api_function_in_bearer_mode() {
    let (_engine, state, _) = setup().await;
    let app = || api_router(state.clone(), ApiAuth::Bearer(Some("s3cret-token".into())));

    let (status, err, headers) = send(app(), api_request("/workflows", "")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["code"], json!("unauthorized"));
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, err, _) = send(app(), api_request("/workflows", "Bearer wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["message"], json!("the bearer token is wrong"));

    let (status, list, _) = send(app(), api_request("/workflows", "Bearer s3cret-token")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.to_string().contains("order-hook"), "{list}");
    // The webhook URL the API shows is the webhook function's.
    let (status, wf, _) = send(
        app(),
        api_request("/workflows/order-hook", "bearer s3cret-token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        wf.to_string()
            .contains("https://hooks.example.lambda-url.eu-west-1.on.aws/hooks/order-hook/"),
        "{wf}"
    );
    // Health needs no token.
    let (status, body, _) = send(app(), api_request("/health", "")).await;
    assert_eq!((status, body), (StatusCode::OK, json!("ok")));

    // Bearer mode without a token refuses everything (fail closed).
    let (status, err, _) = send(
        api_router(state.clone(), ApiAuth::Bearer(None)),
        api_request("/workflows", "Bearer s3cret-token"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err["error"]["code"], json!("auth_not_configured"));
}

#[tokio::test]
async fn the_api_function_serves_the_same_routes_and_openapi_document() {
    let (_engine, state, _) = setup().await;
    let (status, lambda_doc, _) = send(
        api_router(state.clone(), ApiAuth::Iam),
        api_request("/openapi.json", ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let plain = axum::http::Request::get("/openapi.json")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router(state.clone()).oneshot(plain).await.unwrap();
    let dev_doc: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), 1 << 22).await.unwrap()).unwrap();
    assert_eq!(lambda_doc, dev_doc);
    assert!(lambda_doc["paths"]["/workflows/{id}/publish"].is_object());
    let (status, _, _) = send(
        api_router(state, ApiAuth::Iam),
        api_request("/executions", ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn the_lambda_request_context_is_read_once() {
    let req = api_request("/workflows", "");
    let (parts, body) = req.into_parts();
    let req = axum::http::Request::from_parts(parts, axum::body::Body::new(body));
    assert_eq!(
        RequestInfo::from_request(&req),
        RequestInfo {
            request_id: Some("d7bf0bd7-8c72-22f7-ab52-a4f9deadbeef".into()),
            source_ip: Some("198.51.100.20".into()),
            caller_arn: Some("arn:aws:iam::123456789012:user/editor".into()),
        }
    );
    let plain = axum::http::Request::get("/")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(RequestInfo::from_request(&plain), RequestInfo::default());
}

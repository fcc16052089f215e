//! `POST /workflows/generate` against wiremock as the LLM: a good answer, invalid JSON then
//! repaired, an invented action rejected then repaired, an answer that never validates
//! (nothing saved), ids, the manual path, and provider errors as 502/504.

mod ai_support;

use std::time::Duration;

use ai_support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use wf_core::ports::{DefinitionStore, RecordStore};
use wiremock::ResponseTemplate;

const DESCRIPTION: &str = "When an order over 100 EUR arrives by webhook, tell sales in Slack";

async fn nothing_saved(e: &Env) {
    assert!(
        e.store.list_metas().await.unwrap().is_empty(),
        "no workflow"
    );
    let (status, list) = e.call("GET", "/workflows", None).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn a_good_answer_is_saved_as_a_draft_only() {
    let e = env().await;
    let mut wf = order_alert("whatever-the-model-says");
    wf["config"]["active"] = json!(true); // the model may not activate anything
    let seq = e
        .answers(vec![format!(
            "```json\n{}\n```",
            answer(&wf, "Alerts sales about orders over 100.")
        )])
        .await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "name": "Order alert", "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "order-alert");
    assert_eq!(body["draft"]["id"], "order-alert");
    assert_eq!(body["draft"]["name"], "Order alert");
    assert!(body["draft"]["config"].get("active").is_none(), "{body}");
    assert_eq!(body["validation"], json!({ "valid": true, "problems": [] }));
    assert_eq!(body["explanation"], "Alerts sales about orders over 100.");
    assert_eq!(body["rounds"], 1);
    assert_eq!(body["rejected"], json!([]));
    assert_eq!(
        (body["published"].clone(), body["active"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(seq.calls(), 1);

    // stored as the draft only: never published, never activated
    let meta = e.store.get_meta("order-alert").await.unwrap().unwrap();
    assert_eq!((meta.latest_version, meta.active), (0, false));
    let (status, got) = e.call("GET", "/workflows/order-alert", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["draft"], body["draft"]);
    assert_eq!(got["validation"]["valid"], true);

    // what the model was given: the schema, every action with its params schema, the template
    // rules, two examples; the request and the id to use
    let requests = e.requests().await;
    let (system, user) = messages(&requests[0]);
    assert!(system.contains("\"$defs\""), "the JSON Schema");
    for a in wf_core::catalog::actions() {
        assert!(system.contains(&format!("### `{}`", a.name)), "{}", a.name);
    }
    assert!(system.contains("\"additionalProperties\":false,\"required\":[\"url\",\"text\"]"));
    assert!(system.contains("## Templates and expressions"));
    assert!(system.contains("big-order-alert.json") && system.contains("daily-ticket-digest.json"));
    assert!(
        user.contains(DESCRIPTION) && user.contains("order-alert"),
        "{user}"
    );
    assert_eq!(requests[0]["model"], "test-model");
    assert_eq!(requests[0]["response_format"]["type"], "json_object");
}

#[tokio::test]
async fn invalid_json_is_sent_back_and_the_repair_is_saved() {
    let e = env().await;
    let good = answer(&order_alert("x"), "Fixed.");
    let broken = good.replacen("\"steps\": [", "\"steps\": [,", 1);
    e.answers(vec![broken.clone(), good]).await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "name": "Orders", "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rounds"], 2);
    let rejected = &body["rejected"][0];
    assert_eq!(rejected["round"], 1);
    assert_eq!(rejected["problems"][0]["code"], "json.syntax");
    // the repair request quotes the broken answer and names the problem
    let requests = e.requests().await;
    assert_eq!(requests.len(), 2);
    let (_, user) = messages(&requests[1]);
    assert!(
        user.contains(DESCRIPTION),
        "the original request is repeated"
    );
    assert!(user.contains("Your previous answer could not be used"));
    assert!(
        user.contains("\"steps\": [,"),
        "the broken answer is quoted"
    );
    assert!(user.contains("not valid JSON"), "{user}");
    assert!(e.store.get_draft("orders").await.unwrap().is_some());
}

#[tokio::test]
async fn an_invented_action_is_rejected_then_repaired() {
    let e = env().await;
    let mut invented = order_alert("x");
    invented["steps"][2]["action"] = json!("slack.post");
    e.answers(vec![
        answer(&invented, "Posts to Slack."),
        answer(&order_alert("x"), "Posts to Slack with message.send."),
    ])
    .await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // no name: the id derives from the description
    assert_eq!(body["id"], "when-an-order-over-100-eur");
    assert_eq!(body["draft"]["steps"][2]["action"], "message.send");
    assert_eq!(body["rounds"], 2);
    let problem = &body["rejected"][0]["problems"][0];
    assert_eq!(problem["code"], "action.unknown");
    assert_eq!(problem["pointer"], "/steps/2/action");
    let (_, user) = messages(&e.requests().await[1]);
    assert!(user.contains("workflow: /steps/2/action:"), "{user}");
    assert!(user.contains("slack.post"), "{user}");
}

#[tokio::test]
async fn an_answer_that_never_validates_saves_nothing() {
    let e = env().await;
    let mut invented = order_alert("x");
    invented["steps"][2]["action"] = json!("email.send");
    invented["steps"][1]["else"] = json!("nowhere");
    let seq = e.answers(vec![answer(&invented, "Sends an email.")]).await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "name": "Mailer", "description": "email me big orders" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "ai_invalid_workflow");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was saved")
    );
    let details = &body["error"]["details"];
    assert_eq!(details["rounds"], 4, "the first answer and 3 repair rounds");
    assert_eq!(seq.calls(), 4);
    assert_eq!(details["rejected"].as_array().unwrap().len(), 4);
    let codes: Vec<&str> = details["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"action.unknown"), "{codes:?}");
    assert!(codes.contains(&"edge.unknown_step"), "{codes:?}");
    assert_eq!(details["candidate"]["steps"][2]["action"], "email.send");
    assert_eq!(details["explanation"], "Sends an email.");
    nothing_saved(&e).await;
}

#[tokio::test]
async fn ids_are_never_overwritten() {
    let e = env().await;
    let seq = e.answers(vec![answer(&order_alert("x"), "ok")]).await;
    let (status, _) = e
        .call(
            "POST",
            "/workflows",
            Some(json!({ "id": "orders", "steps": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // an id the client names that exists: 409 before any model call
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "id": "orders", "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "exists");
    assert_eq!(seq.calls(), 0);
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "id": "Not Valid", "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("invalid_id"))
    );

    // a derived id moves on to the first free one
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "name": "Orders", "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "orders-2");
    let (_, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "name": "Orders", "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(body["id"], "orders-3");
    // the first one is untouched
    assert_eq!(
        e.store.get_draft("orders").await.unwrap().unwrap(),
        json!({ "id": "orders", "steps": [] })
    );
}

#[tokio::test]
async fn without_a_description_an_empty_draft_with_a_start_step() {
    let e = env().await;
    let seq = e.answers(vec!["unused".into()]).await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "name": "By hand" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(seq.calls(), 0, "no model call");
    assert_eq!(body["id"], "by-hand");
    assert_eq!(
        body["draft"],
        json!({ "id": "by-hand", "name": "By hand",
                "steps": [ { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ] } ] })
    );
    assert_eq!(body["rounds"], 0);
    assert_eq!(body["explanation"], Value::Null);
    // an empty body works too
    let (status, body) = e.call("POST", "/workflows/generate", None).await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::CREATED, json!("workflow"))
    );
    // unknown fields are refused
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "descripton": "typo" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_workflow_named_generate_stays_reachable() {
    let e = env().await;
    let (status, _) = e
        .call(
            "POST",
            "/workflows",
            Some(json!({ "id": "generate", "steps": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = e.call("GET", "/workflows/generate", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["draft"]["id"], "generate");
    // POST on any other workflow id is still a 405 in the API's shape
    let (status, body) = e
        .call("POST", "/workflows/generate-not", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn provider_errors_are_clear_502_and_504() {
    // 429: rate limited, with the provider's message
    let e = env().await;
    e.provider_answers(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "20")
            .set_body_json(json!({ "error": { "message": "Rate limit reached for test-model" } })),
    )
    .await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "llm_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Rate limit reached for test-model"),
        "{message}"
    );
    assert_eq!(body["error"]["details"]["providerCode"], "llm.rate_limited");
    assert_eq!(body["error"]["details"]["provider"]["retryAfter"], "20");
    nothing_saved(&e).await;

    // 500
    let e = env().await;
    e.provider_answers(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "llm_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream exploded")
    );
    nothing_saved(&e).await;

    // 401: not retryable, still a 502 naming the provider's reason
    let e = env().await;
    e.provider_answers(
        ResponseTemplate::new(401)
            .set_body_json(json!({ "error": { "message": "Incorrect API key" } })),
    )
    .await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "llm_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key")
    );

    // timeout: the model takes longer than the configured bound
    let mut s = settings();
    s.timeout = Duration::from_millis(300);
    let e = env_with(s).await;
    e.provider_answers(
        ResponseTemplate::new(200)
            .set_body_json(completion(&answer(&order_alert("x"), "late")))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, body) = e
        .call(
            "POST",
            "/workflows/generate",
            Some(json!({ "description": DESCRIPTION })),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "llm_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300 ms"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no retry of a timeout"
    );
    nothing_saved(&e).await;
    assert!(e.store.query("_chat", None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_ai_routes_are_in_the_openapi_document() {
    let e = env().await;
    let (status, doc) = e.call("GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = &doc["paths"];
    for (p, m) in [
        ("/workflows/generate", "post"),
        ("/workflows/{id}/chat", "post"),
        ("/workflows/{id}/chat", "get"),
        ("/workflows/{id}/chat", "delete"),
        ("/cron", "post"),
    ] {
        assert!(paths[p][m].is_object(), "{m} {p} missing");
        assert_eq!(paths[p][m]["tags"], json!(["ai"]), "{m} {p}");
    }
}

/// A records store that is down: the chat history cannot be cleared.
struct RecordsDown;

#[async_trait::async_trait]
impl RecordStore for RecordsDown {
    async fn create(
        &self, _: &str, _: &str, _: &Value, _: &str,
    ) -> Result<wf_core::ports::RecordCreate, wf_core::StoreError> {
        Err(down())
    }
    async fn get(&self, _: &str, _: &str) -> Result<Option<Value>, wf_core::StoreError> {
        Err(down())
    }
    async fn update(&self, _: &str, _: &str, _: &Value) -> Result<Value, wf_core::StoreError> {
        Err(down())
    }
    async fn delete(&self, _: &str, _: &str) -> Result<bool, wf_core::StoreError> {
        Err(down())
    }
    async fn query(
        &self, _: &str, _: Option<&str>, _: usize,
    ) -> Result<Vec<(String, Value)>, wf_core::StoreError> {
        Err(down())
    }
}

fn down() -> wf_core::StoreError {
    wf_core::StoreError::Unavailable("records table unreachable".into())
}

#[tokio::test]
async fn a_generate_that_fails_after_reserving_its_id_leaves_nothing_behind() {
    let e = env().await;
    e.answers(vec![answer(&order_alert("orders"), "alerts on big orders")])
        .await;
    let mut svc = e.svc.clone();
    svc.records = std::sync::Arc::new(RecordsDown);
    let request = wf_app::ai::generate::GenerateRequest {
        name: Some("Orders".into()),
        description: Some(DESCRIPTION.into()),
        id: None,
    };
    let err = wf_app::ai::generate::generate(&svc, &e.settings, request)
        .await
        .expect_err("the records store is down");
    assert!(err.to_string().contains("unreachable"), "{err}");
    nothing_saved(&e).await;
    assert!(e.store.get_draft("orders").await.unwrap().is_none());
}

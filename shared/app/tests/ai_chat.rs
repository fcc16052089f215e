//! `POST /workflows/{id}/chat` against wiremock as the LLM: a change to one step shows only that
//! step in the diff, follow-ups see the conversation, invalid answers leave the draft alone, the
//! published version is never touched, the history is bounded.

mod ai_support;

use std::time::Duration;

use ai_support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use wf_app::ai::chat::{ChatTurn, MAX_TURNS, append_turn, history};
use wf_core::ports::DefinitionStore;
use wiremock::ResponseTemplate;

/// A workflow created and published through the API (version 1), with its draft.
async fn published(e: &Env, id: &str) -> Value {
    let wf = order_alert(id);
    let (status, body) = e.call("POST", "/workflows", Some(wf.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = e
        .call("POST", &format!("/workflows/{id}/publish"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wf
}

#[tokio::test]
async fn a_chat_that_changes_one_step_shows_only_that_step_and_follow_ups_see_the_history() {
    let e = env().await;
    let original = published(&e, "orders").await;
    let mut first = original.clone();
    first["steps"][2]["params"]["text"] =
        json!("Big order from {{ input.customer | default('?') }}: {{ input.amount }}");
    let mut second = first.clone();
    second["steps"][3]["output"]["customer"] = json!("{{ input.customer | default('?') }}");
    e.answers(vec![
        answer(&first, "notify now names the customer."),
        answer(&second, "done now outputs the customer too."),
    ])
    .await;

    let (status, body) = e
        .call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "mention the customer in the Slack message" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(
        body["diff"],
        json!({ "addedSteps": [], "removedSteps": [],
                "changedSteps": [ { "id": "notify", "keys": ["params"] } ],
                "changedConfig": [], "changedFields": [] })
    );
    assert_eq!(body["validation"]["valid"], true);
    assert_eq!(body["explanation"], "notify now names the customer.");
    assert_eq!(e.store.get_draft("orders").await.unwrap().unwrap(), first);

    // the follow-up request carries the conversation and the current draft
    let (status, body) = e
        .call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "and in the output" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["diff"]["changedSteps"],
        json!([ { "id": "done", "keys": ["output"] } ])
    );
    let requests = e.requests().await;
    let (system, user) = messages(&requests[1]);
    assert!(system.contains("## Templates and expressions"));
    assert!(
        user.contains("1. User: mention the customer in the Slack message"),
        "{user}"
    );
    assert!(user.contains("applied: changed notify (params)"), "{user}");
    assert!(
        user.contains("Big order from {{ input.customer"),
        "the current draft: {user}"
    );
    assert!(user.contains("and in the output"), "{user}");

    // the published version is never touched by chat
    let meta = e.store.get_meta("orders").await.unwrap().unwrap();
    assert_eq!((meta.latest_version, meta.active), (1, false));
    let (status, v1) = e.call("GET", "/workflows/orders/versions/1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v1["steps"][2]["params"]["text"],
        original["steps"][2]["params"]["text"]
    );

    // the history, oldest first
    let (status, h) = e.call("GET", "/workflows/orders/chat", None).await;
    assert_eq!(status, StatusCode::OK);
    let turns = h["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(
        turns[0]["message"],
        "mention the customer in the Slack message"
    );
    assert_eq!(turns[0]["applied"], true);
    assert_eq!(turns[1]["diff"]["changedSteps"][0]["id"], "done");
    // forgetting it keeps the draft
    let (status, _) = e.call("DELETE", "/workflows/orders/chat", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, h) = e.call("GET", "/workflows/orders/chat", None).await;
    assert_eq!(h["turns"], json!([]));
    assert_eq!(e.store.get_draft("orders").await.unwrap().unwrap(), second);
}

#[tokio::test]
async fn an_answer_that_stays_invalid_leaves_the_draft_alone() {
    let e = env().await;
    let original = published(&e, "orders").await;
    let mut bad = original.clone();
    bad["steps"][2]["action"] = json!("sms.send");
    let seq = e.answers(vec![answer(&bad, "Texts instead.")]).await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "text me instead" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "ai_invalid_workflow");
    assert_eq!(seq.calls(), 4);
    assert_eq!(
        e.store.get_draft("orders").await.unwrap().unwrap(),
        original
    );
    let turns = history(&*e.svc.records, "orders").await.unwrap();
    assert_eq!(turns.len(), 1);
    assert!(!turns[0].applied && turns[0].problems > 0, "{turns:?}");
}

#[tokio::test]
async fn an_unchanged_answer_stores_nothing_and_the_model_cannot_activate_or_rename() {
    let e = env().await;
    let original = published(&e, "orders").await;
    let mut sneaky = original.clone();
    sneaky["id"] = json!("renamed");
    sneaky["config"]["active"] = json!(true);
    e.answers(vec![answer(
        &sneaky,
        "I cannot do that with the listed actions.",
    )])
    .await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "fax it to me" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], false);
    assert_eq!(body["diff"]["changedConfig"], json!([]));
    assert_eq!(body["draft"], original);
    assert_eq!(
        e.store.get_draft("orders").await.unwrap().unwrap(),
        original
    );
    let meta = e.store.get_meta("orders").await.unwrap().unwrap();
    assert!(!meta.active);
}

#[tokio::test]
async fn bad_requests_unknown_and_file_backed_workflows() {
    let e = env().await;
    let seq = e.answers(vec![answer(&order_alert("x"), "x")]).await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/nope/chat",
            Some(json!({ "message": "hi" })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, _) = e.call("GET", "/workflows/nope/chat", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    published(&e, "orders").await;
    let (status, body) = e
        .call("POST", "/workflows/orders/chat", Some(json!({})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    let (status, _) = e
        .call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "   " })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let mut meta = e.store.get_meta("orders").await.unwrap().unwrap();
    let prev = meta.updated_at;
    meta.source = Some("file:workflows/orders.json".into());
    meta.updated_at += 1;
    e.store.put_meta(&meta, Some(prev)).await.unwrap();
    let (status, body) = e
        .call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "hi" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "file_backed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("workflows/orders.json")
    );
    assert_eq!(seq.calls(), 0);
}

#[tokio::test]
async fn an_edit_made_while_the_model_answers_is_not_overwritten() {
    let e = env().await;
    let original = published(&e, "orders").await;
    let mut changed = original.clone();
    changed["name"] = json!("Renamed by the model");
    e.provider_answers(
        ResponseTemplate::new(200)
            .set_body_json(completion(&answer(&changed, "renamed")))
            .set_delay(Duration::from_millis(700)),
    )
    .await;
    let mut manual = original.clone();
    manual["description"] = json!("edited by hand meanwhile");
    let (chat, put) = tokio::join!(
        e.call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "rename it" }))
        ),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            e.call("PUT", "/workflows/orders", Some(manual.clone()))
                .await
        }
    );
    assert_eq!(put.0, StatusCode::OK);
    assert_eq!(chat.0, StatusCode::CONFLICT, "{}", chat.1);
    assert_eq!(chat.1["error"]["code"], "draft_changed");
    assert_eq!(e.store.get_draft("orders").await.unwrap().unwrap(), manual);
}

#[tokio::test]
async fn the_history_keeps_the_last_turns_only() {
    let e = env().await;
    published(&e, "orders").await;
    for i in 0..MAX_TURNS + 5 {
        let turn = ChatTurn {
            at: "2026-01-01T00:00:00.000Z".into(),
            message: format!("request {i}"),
            explanation: String::new(),
            applied: false,
            diff: None,
            problems: 0,
        };
        append_turn(&*e.svc.records, "orders", turn).await.unwrap();
    }
    let turns = history(&*e.svc.records, "orders").await.unwrap();
    assert_eq!(turns.len(), MAX_TURNS);
    assert_eq!(turns[0].message, "request 5");
    assert_eq!(
        turns[MAX_TURNS - 1].message,
        format!("request {}", MAX_TURNS + 4)
    );
}

#[tokio::test]
async fn provider_failures_in_chat_are_502_and_keep_the_draft() {
    let e = env().await;
    let original = published(&e, "orders").await;
    e.provider_answers(ResponseTemplate::new(503).set_body_string("overloaded"))
        .await;
    let (status, body) = e
        .call(
            "POST",
            "/workflows/orders/chat",
            Some(json!({ "message": "anything" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "llm_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded")
    );
    assert_eq!(
        e.store.get_draft("orders").await.unwrap().unwrap(),
        original
    );
    assert!(history(&*e.svc.records, "orders").await.unwrap().is_empty());
}

/// One generate and one refine, printed (run with `--nocapture` to read it).
#[tokio::test]
async fn transcript_of_one_generate_and_one_refine() {
    let e = env().await;
    let mut invented = order_alert("x");
    invented["steps"][2]["action"] = json!("slack.post_message");
    let generated = order_alert("x");
    let mut refined = generated.clone();
    refined["steps"][0]["triggers"] = json!([ { "type": "webhook", "scheme": "none" }, { "type": "schedule", "cron": "0 9 * * 1-5" } ]);
    e.answers(vec![
        answer(&invented, "Posts big orders to Slack."),
        answer(&generated, "Posts orders over vars.threshold (100) to the Slack webhook in vars.hook; replace the placeholder URL."),
        answer(&refined, "Added a schedule trigger to start: weekdays at 09:00 UTC."),
    ])
    .await;
    let show = |label: &str, v: &Value| {
        println!("{label}\n{}\n", serde_json::to_string_pretty(v).unwrap())
    };
    let request = json!({ "name": "Order alert", "description": "When an order over 100 EUR arrives by webhook, tell sales in Slack" });
    show("=== POST /workflows/generate", &request);
    let (status, body) = e.call("POST", "/workflows/generate", Some(request)).await;
    assert_eq!(status, StatusCode::CREATED);
    show(&format!("=== {status}"), &body);
    let request = json!({ "message": "also run it on weekdays at 9am" });
    show("=== POST /workflows/order-alert/chat", &request);
    let (status, body) = e
        .call("POST", "/workflows/order-alert/chat", Some(request))
        .await;
    assert_eq!(status, StatusCode::OK);
    show(&format!("=== {status}"), &body);
    println!("=== what the provider received");
    for (i, r) in e.requests().await.iter().enumerate() {
        let (system, user) = messages(r);
        println!(
            "--- request {} (model {}, response_format {}): system prompt {} chars (starts {:?})\n--- user message:\n{user}\n",
            i + 1,
            r["model"],
            r["response_format"],
            system.len(),
            system.lines().next().unwrap_or_default()
        );
    }
}

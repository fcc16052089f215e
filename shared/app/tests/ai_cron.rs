//! `POST /cron` (and the `ai::cron` use case): the parser first, the LLM only for what it cannot
//! read, its answer validated as cron and shown with the next runs.

mod ai_support;

use ai_support::*;
use axum::http::StatusCode;
use serde_json::json;
use wiremock::ResponseTemplate;

const FROM: &str = "2026-11-24T08:00:00Z";

#[tokio::test]
async fn the_parser_goes_first_and_the_model_is_not_asked() {
    let e = env().await;
    let seq = e.answers(vec![r#"{"cron": "1 1 1 1 *"}"#.into()]).await;
    let (status, body) = e
        .call("POST", "/cron", Some(json!({ "expression": "every weekday at 9am", "ai": true, "from": FROM, "count": 3 })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "input": "every weekday at 9am", "cron": "0 9 * * 1-5",
            "eventbridge": "cron(0 9 ? * MON-FRI *)",
            "next": ["2026-11-24T09:00:00.000Z", "2026-11-25T09:00:00.000Z", "2026-11-26T09:00:00.000Z"],
            "source": "parser", "explanation": null, "rounds": 0
        })
    );
    assert_eq!(seq.calls(), 0);
}

#[tokio::test]
async fn what_the_parser_cannot_read_goes_to_the_model_and_is_validated() {
    let e = env().await;
    let seq = e
        .answers(vec![
            // EventBridge's 6-field form: rejected with the reason, then repaired
            r#"{"cron": "0 12 ? * TUE#2 *", "explanation": "Second Tuesday at noon."}"#.into(),
            "```json\n{\"cron\": \"0 12 * * 2#2\", \"explanation\": \"At 12:00 UTC on the second Tuesday of every month.\"}\n```".into(),
        ])
        .await;
    let (status, body) = e
        .call(
            "POST",
            "/cron",
            Some(json!({ "expression": "second tuesday of each month at noon", "ai": true, "from": FROM })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "ai");
    assert_eq!(body["cron"], "0 12 * * 2#2");
    assert_eq!(
        body["eventbridge"], "cron(0 12 ? * 3#2 *)",
        "EventBridge: 1-7 = SUN-SAT"
    );
    assert_eq!(body["rounds"], 2);
    assert_eq!(
        body["explanation"],
        "At 12:00 UTC on the second Tuesday of every month."
    );
    assert_eq!(body["next"][0], "2026-12-08T12:00:00.000Z");
    assert_eq!(body["next"].as_array().unwrap().len(), 5);
    assert_eq!(seq.calls(), 2);
    let requests = e.requests().await;
    let (system, user) = messages(&requests[0]);
    assert!(system.is_empty(), "the cron prompt is one user message");
    assert!(
        user.contains("second tuesday of each month at noon"),
        "{user}"
    );
    let (_, repair) = messages(&requests[1]);
    assert!(
        repair.contains("0 12 ? * TUE#2 *") && repair.contains("6 fields"),
        "{repair}"
    );
}

#[tokio::test]
async fn without_ai_or_when_the_model_cannot_the_answer_is_422() {
    let e = env().await;
    let seq = e
        .answers(vec![
            r#"{"cron": null, "explanation": "The moon's phases do not follow the calendar."}"#
                .into(),
        ])
        .await;
    let (status, body) = e
        .call(
            "POST",
            "/cron",
            Some(json!({ "expression": "whenever the moon is full" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_cron");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("@every5m"),
        "the forms: {body}"
    );
    assert_eq!(seq.calls(), 0);

    let (status, body) = e
        .call(
            "POST",
            "/cron",
            Some(json!({ "expression": "whenever the moon is full", "ai": true })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_cron");
    assert_eq!(
        body["error"]["details"]["explanation"],
        "The moon's phases do not follow the calendar."
    );
    assert_eq!(seq.calls(), 1);

    // the parser's reading that EventBridge cannot run: 422 with the fix and the runs
    let (status, body) = e
        .call(
            "POST",
            "/cron",
            Some(json!({ "expression": "0 9 1 * 1", "from": FROM })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"0 9 1 * *\" and \"0 9 * * 1\"")
    );
    assert_eq!(
        body["error"]["details"]["next"][0],
        "2026-11-30T09:00:00.000Z"
    );

    let (status, _) = e
        .call(
            "POST",
            "/cron",
            Some(json!({ "expression": "@daily", "count": 0 })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = e
        .call("POST", "/cron", Some(json!({ "cron": "@daily" })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_model_that_never_gives_valid_cron_and_provider_errors() {
    let e = env().await;
    let seq = e
        .answers(vec![r#"{"cron": "every full moon"}"#.into()])
        .await;
    let (status, body) = e
        .call(
            "POST",
            "/cron",
            Some(json!({ "expression": "at moonrise", "ai": true })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["rounds"], 4);
    assert_eq!(seq.calls(), 4);

    let e = env().await;
    e.provider_answers(
        ResponseTemplate::new(429).set_body_json(json!({ "error": { "message": "slow down" } })),
    )
    .await;
    let (status, body) = e
        .call(
            "POST",
            "/cron",
            Some(json!({ "expression": "at moonrise", "ai": true })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "llm_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("slow down")
    );
}

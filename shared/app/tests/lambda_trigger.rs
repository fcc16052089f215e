//! The trigger function's handler on fixture inputs: a schedule's input (execution id from
//! the scheduled time), platform events from EventBridge, raw or from a workflow's rule (filter
//! evaluated, execution id from the event id, a replay starts nothing), and the sweep.

mod lambda_support;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::{Value, json};
use wf_app::app::triggers::event_execution_id;
use wf_app::lambda::handle_trigger;
use wf_app::lambda::trigger::{TriggerKind, classify};
use wf_app::triggers::schedule::scheduled_execution_id;
use wf_core::execution::ExecutionStatus;
use wf_core::ports::ExecutionStore;
use wf_core::time_fmt::parse_ms;

use lambda_support::{Engine, fixture, fixture_json};

fn nightly() -> Value {
    json!({
        "id": "nightly-report", "name": "Nightly", "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [{ "type": "schedule", "cron": "0 9 * * *" }], "next": "done" },
            { "id": "done", "type": "output", "output": { "at": "{{ input.scheduledTime }}" } }
        ]
    })
}

fn big_orders() -> Value {
    json!({
        "id": "big-orders", "name": "Big orders", "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [{ "type": "event", "event": "order.created",
                             "filter": "{{ event.detail.amount > 100 }}" }],
              "next": "done" },
            { "id": "done", "type": "output", "output": { "order": "{{ input.orderId }}" } }
        ]
    })
}

#[tokio::test]
async fn a_schedule_fire_starts_one_execution_named_by_its_time() {
    let engine = Engine::new();
    engine.publish_active(nightly()).await;
    let input = fixture_json("schedule_input.json", &[]);
    let first = handle_trigger(&engine.app.app, input.clone())
        .await
        .unwrap();
    let expected =
        scheduled_execution_id("nightly-report", parse_ms("2026-11-24T09:00:00Z").unwrap());
    assert_eq!(
        first,
        json!({ "started": [{ "workflowId": "nightly-report", "executionId": expected, "duplicate": false }] })
    );
    // EventBridge delivers at least once: the same fire again starts nothing new.
    let again = handle_trigger(&engine.app.app, input).await.unwrap();
    assert_eq!(again["started"][0]["duplicate"], json!(true));
    assert_eq!(again["started"][0]["executionId"], json!(expected));
    let exec = engine
        .app
        .store
        .get_execution(&expected)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        exec.input,
        json!({ "scheduledTime": "2026-11-24T09:00:00.000Z" })
    );
    assert_eq!(exec.trigger.kind, "schedule");

    // Deactivated (its rule not yet removed): ignored, not retried.
    engine.app.app.deactivate("nightly-report").await.unwrap();
    let later = json!({ "workflowId": "nightly-report", "scheduledTime": "2026-11-25T09:00:00Z" });
    let answer = handle_trigger(&engine.app.app, later).await.unwrap();
    assert!(
        answer["ignored"].as_str().unwrap().contains("not active"),
        "{answer}"
    );
    // An unknown workflow is ignored too.
    let answer = handle_trigger(
        &engine.app.app,
        json!({ "workflowId": "nope", "scheduledTime": "2026-11-25T09:00:00Z" }),
    )
    .await
    .unwrap();
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{answer}"
    );
}

#[tokio::test]
async fn platform_events_are_filtered_and_named_by_their_id() {
    let engine = Engine::new();
    engine.publish_active(big_orders()).await;
    engine.publish_active(nightly()).await;
    let event_id = "0d0c6a4e-9b5f-4f3a-8a1e-0e9f1b2c3d4e";
    // A raw EventBridge event (a rule without an input transformer): every subscriber.
    let text = fixture(
        "eventbridge_platform_event.json",
        &[("EVENT_ID", event_id), ("=AMOUNT", "250")],
    );
    let envelope: Value = serde_json::from_str(&text).unwrap();
    // It is what EventBridge sends: aws_lambda_events reads it.
    let typed: EventBridgeEvent = serde_json::from_value(envelope.clone()).unwrap();
    assert_eq!(typed.detail_type, "order.created");
    assert!(matches!(classify(&envelope), Ok(TriggerKind::Envelope(_))));

    let answer = handle_trigger(&engine.app.app, envelope.clone())
        .await
        .unwrap();
    let time = parse_ms("2026-11-24T09:30:00Z").unwrap();
    let expected = event_execution_id("big-orders", event_id, time);
    assert_eq!(
        answer,
        json!({ "eventId": event_id, "started": [
            { "workflowId": "big-orders", "executionId": expected, "duplicate": false }
        ]})
    );
    let exec = engine
        .app
        .store
        .get_execution(&expected)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exec.input, json!({ "orderId": "A-1001", "amount": 250 }));
    assert_eq!(exec.trigger.kind, "event");
    assert_eq!(exec.status, ExecutionStatus::Queued);
    // Redelivered: the same execution, nothing new.
    let again = handle_trigger(&engine.app.app, envelope).await.unwrap();
    assert_eq!(
        again["started"][0]["executionId"],
        json!(expected),
        "{again}"
    );
    assert_eq!(again["started"][0]["duplicate"], json!(true), "{again}");

    // The filter is false for a small order: nothing starts.
    let small = fixture_json(
        "eventbridge_platform_event.json",
        &[("EVENT_ID", "small-order-1"), ("=AMOUNT", "5")],
    );
    let answer = handle_trigger(&engine.app.app, small).await.unwrap();
    assert_eq!(answer, json!({ "eventId": "small-order-1", "started": [] }));

    // From the workflow's own rule ({"workflowId", "event"}): the engine's event id (in
    // `resources`) names the execution, not EventBridge's.
    let rule_input = fixture_json(
        "eventbridge_rule_input.json",
        &[
            ("WORKFLOW_ID", "big-orders"),
            ("ENGINE_EVENT_ID", "01JDENGINEEVENT0000000001"),
        ],
    );
    let answer = handle_trigger(&engine.app.app, rule_input).await.unwrap();
    let time = parse_ms("2026-11-24T09:31:00Z").unwrap();
    assert_eq!(
        answer["started"],
        json!([{ "workflowId": "big-orders",
                 "executionId": event_execution_id("big-orders", "01JDENGINEEVENT0000000001", time),
                 "duplicate": false }])
    );
    assert_eq!(answer["eventId"], json!("01JDENGINEEVENT0000000001"));
    // Addressed to a workflow that does not subscribe: nothing.
    let rule_input = fixture_json(
        "eventbridge_rule_input.json",
        &[
            ("WORKFLOW_ID", "nightly-report"),
            ("ENGINE_EVENT_ID", "01JDENGINEEVENT0000000002"),
        ],
    );
    let answer = handle_trigger(&engine.app.app, rule_input).await.unwrap();
    assert_eq!(answer["started"], json!([]));
}

#[tokio::test]
async fn the_sweep_and_unknown_inputs() {
    let engine = Engine::new();
    let answer = handle_trigger(&engine.app.app, fixture_json("sweep_input.json", &[]))
        .await
        .unwrap();
    assert_eq!(answer, json!({ "sweep": { "timedOut": 0, "requeued": 0 } }));
    // An EventBridge "Scheduled Event" without the input transformer is not a trigger input
    // (rules always set one): ignored, never retried.
    let raw = fixture_json("eventbridge_scheduled_event.json", &[]);
    let typed: EventBridgeEvent = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(typed.source, "aws.events");
    let answer = handle_trigger(&engine.app.app, raw).await.unwrap();
    assert_eq!(
        answer["eventId"],
        json!("89d1a02d-5ec7-412e-82f5-13505f849b41")
    );
    assert_eq!(answer["started"], json!([]));
    for bad in [
        json!({}),
        json!({ "workflowId": "x" }),
        json!([1, 2]),
        json!({ "sweep": false }),
    ] {
        let answer = handle_trigger(&engine.app.app, bad.clone()).await.unwrap();
        assert!(answer["ignored"].is_string(), "{bad} -> {answer}");
    }
}

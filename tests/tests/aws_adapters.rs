//! What only the AWS adapters have, on moto_server: trigger rule sync (created, idempotent,
//! drift repaired, removed on deactivate), the SQS re-delay chain past 900 s, and the
//! message/event size limits.

use std::time::Duration;

use aws_sdk_eventbridge::types::RuleState;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::{Value, json};
use wf_aws::sqs::NOT_BEFORE_ATTRIBUTE;
use wf_aws::{EventBridgeBus, SqsQueue, TriggerRules};
use wf_core::StoreError;
use wf_core::execution::StepTask;
use wf_core::model::Workflow;
use wf_core::ports::{EventBus, PlatformEvent, TaskQueue};
use wf_tests::moto::{Moto, unique_prefix};

const TARGET: &str = "arn:aws:lambda:us-east-1:123456789012:function:wf-trigger";

fn workflow(id: &str, triggers: Value) -> Workflow {
    serde_json::from_value(json!({
        "id": id,
        "steps": [ { "id": "start", "type": "start", "triggers": triggers } ]
    }))
    .expect("workflow")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_rules_sync_is_idempotent_repairs_drift_and_cleans_up() {
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("rules"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let eb = clients.eventbridge.clone();
    let rules = TriggerRules::new(eb.clone(), &config.event_bus, TARGET);
    let wf = workflow(
        "order-alert",
        json!([
            { "type": "schedule", "cron": "0 9 * * 1-5" },
            { "type": "event", "event": "order.created" },
            { "type": "manual" }
        ]),
    );
    // A workflow whose id starts the same: its rules are not order-alert's.
    let neighbour = workflow(
        "order-alert-eu",
        json!([{ "type": "event", "event": "x.y" }]),
    );
    rules
        .sync(&neighbour.id, Some(&neighbour))
        .await
        .expect("sync neighbour");

    let first = rules.sync(&wf.id, Some(&wf)).await.expect("sync");
    assert_eq!(first.created, ["wf-order-alert-s0", "wf-order-alert-ev"]);
    let schedule = eb
        .describe_rule()
        .name("wf-order-alert-s0")
        .send()
        .await
        .expect("schedule rule on the default bus");
    assert_eq!(
        schedule.schedule_expression(),
        Some("cron(0 9 ? * MON-FRI *)")
    );
    assert_eq!(schedule.state(), Some(&RuleState::Enabled));
    let targets = eb
        .list_targets_by_rule()
        .rule("wf-order-alert-s0")
        .send()
        .await
        .expect("targets");
    let target = &targets.targets()[0];
    assert_eq!(target.arn(), TARGET);
    let transformer = target.input_transformer().expect("input transformer");
    assert_eq!(
        transformer.input_template(),
        r#"{"workflowId": "order-alert", "scheduledTime": <time>}"#
    );
    assert_eq!(
        transformer
            .input_paths_map()
            .and_then(|m| m.get("time"))
            .map(String::as_str),
        Some("$.time")
    );
    let events = eb
        .describe_rule()
        .name("wf-order-alert-ev")
        .event_bus_name(&config.event_bus)
        .send()
        .await
        .expect("event rule on the platform bus");
    let pattern: Value =
        serde_json::from_str(events.event_pattern().unwrap_or("null")).expect("pattern");
    assert_eq!(pattern, json!({ "detail-type": ["order.created"] }));

    let again = rules.sync(&wf.id, Some(&wf)).await.expect("sync again");
    assert!(!again.changed(), "a second sync changes nothing: {again:?}");
    assert_eq!(again.unchanged.len(), 2);

    // Drift: the schedule edited and disabled by hand, the event rule's target removed.
    eb.put_rule()
        .name("wf-order-alert-s0")
        .schedule_expression("rate(5 minutes)")
        .state(RuleState::Disabled)
        .send()
        .await
        .expect("edit by hand");
    eb.remove_targets()
        .rule("wf-order-alert-ev")
        .event_bus_name(&config.event_bus)
        .ids("wf-trigger")
        .send()
        .await
        .expect("remove target by hand");
    let repaired = rules.sync(&wf.id, Some(&wf)).await.expect("repair");
    assert_eq!(repaired.updated, ["wf-order-alert-s0", "wf-order-alert-ev"]);
    let schedule = eb
        .describe_rule()
        .name("wf-order-alert-s0")
        .send()
        .await
        .expect("rule");
    assert_eq!(
        schedule.schedule_expression(),
        Some("cron(0 9 ? * MON-FRI *)")
    );
    assert_eq!(schedule.state(), Some(&RuleState::Enabled));
    let targets = eb
        .list_targets_by_rule()
        .rule("wf-order-alert-ev")
        .event_bus_name(&config.event_bus)
        .send()
        .await
        .expect("targets");
    assert_eq!(targets.targets().len(), 1);

    // A new version without the schedule: its rule goes, the event rule stays.
    let v2 = workflow(
        "order-alert",
        json!([{ "type": "event", "event": "order.created" }]),
    );
    let changed = rules.sync(&wf.id, Some(&v2)).await.expect("sync v2");
    assert_eq!(changed.deleted, ["wf-order-alert-s0"]);
    assert_eq!(changed.unchanged, ["wf-order-alert-ev"]);

    // Deactivate: everything of order-alert goes, the neighbour's rule stays.
    let removed = rules.sync(&wf.id, None).await.expect("deactivate");
    assert_eq!(removed.deleted, ["wf-order-alert-ev"]);
    assert!(
        eb.describe_rule()
            .name("wf-order-alert-ev")
            .event_bus_name(&config.event_bus)
            .send()
            .await
            .is_err()
    );
    assert!(
        eb.describe_rule()
            .name("wf-order-alert-eu-ev")
            .event_bus_name(&config.event_bus)
            .send()
            .await
            .is_ok(),
        "a neighbour's rule is left alone"
    );

    // A sweep with nothing active removes the leftovers of any workflow.
    let swept = rules.sync_all(&[]).await.expect("sweep");
    assert_eq!(swept.deleted, ["wf-order-alert-eu-ev"]);
    assert!(!rules.sync_all(&[]).await.expect("sweep again").changed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_past_900_seconds_is_chained() {
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("chain"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let queue = SqsQueue::new(clients.sqs.clone(), &config.queue_url);
    let task = StepTask {
        execution_id: "01JD0000000000000000000000".into(),
        path: "wait".into(),
        attempt: 2,
    };
    // What a 16-minute backoff sent 900 s ago looks like now: due in 2 s, visible at once.
    let due = wf_core::ports::Clock::now_ms(&wf_core::ports::SystemClock) + 2_000;
    clients
        .sqs
        .send_message()
        .queue_url(&config.queue_url)
        .message_body(serde_json::to_string(&task).expect("body"))
        .message_attributes(
            NOT_BEFORE_ATTRIBUTE,
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value(due.to_string())
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("send");
    let early = queue
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(
        early.is_empty(),
        "not handed out before it is due: {early:?}"
    );
    let mut got = Vec::new();
    for _ in 0..10 {
        got = queue
            .receive(10, Duration::from_secs(2))
            .await
            .expect("receive");
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(
        got.len(),
        1,
        "the re-delayed message arrives once it is due"
    );
    assert_eq!(got[0].task, task);
    assert!(wf_core::ports::Clock::now_ms(&wf_core::ports::SystemClock) >= due - 10);
    queue.ack(&got[0].receipt).await.expect("ack");
    assert!(
        queue
            .receive(10, Duration::ZERO)
            .await
            .expect("receive")
            .is_empty()
    );

    // A long delay goes out as 900 s plus the due time.
    queue
        .send(&[(task.clone(), 3_600_000)])
        .await
        .expect("send an hour's delay");
    let attrs = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&config.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("attributes");
    let delayed = attrs
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        })
        .cloned();
    assert_eq!(
        delayed.as_deref(),
        Some("1"),
        "the hour-long task waits, delayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_events_over_their_limits_are_refused_whole() {
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("limits"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let queue = SqsQueue::new(clients.sqs.clone(), &config.queue_url);
    let huge = StepTask {
        execution_id: "01JD0000000000000000000000".into(),
        path: "x".repeat(300 * 1024),
        attempt: 1,
    };
    let small = StepTask {
        path: "ok".into(),
        ..huge.clone()
    };
    let err = queue
        .send(&[(small, 0), (huge, 0)])
        .await
        .expect_err("too large");
    match err {
        StoreError::TooLarge(m) => assert!(m.contains("bytes") && m.contains("SQS"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        queue
            .receive(10, Duration::from_secs(1))
            .await
            .expect("receive")
            .is_empty(),
        "nothing of the refused send went out"
    );

    let bus = EventBridgeBus::new(clients.eventbridge.clone(), &config.event_bus);
    let big = PlatformEvent {
        id: "e1".into(),
        event_type: "blob.made".into(),
        source: "wf.workflow".into(),
        detail: json!({ "blob": "x".repeat(300 * 1024) }),
        time: 0,
        chain: Vec::new(),
    };
    let err = bus.publish(&[big]).await.expect_err("too large");
    assert!(
        matches!(err, StoreError::TooLarge(ref m) if m.contains("blob.made")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_reset_forgets_every_resource() {
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("reset"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let tables = clients.dynamodb.list_tables().send().await.expect("tables");
    assert!(tables.table_names().contains(&config.executions_table));
    moto.reset();
    let tables = clients.dynamodb.list_tables().send().await.expect("tables");
    assert!(tables.table_names().is_empty(), "{tables:?}");
    let queues = clients.sqs.list_queues().send().await.expect("queues");
    assert!(queues.queue_urls().is_empty(), "{queues:?}");
}

/// The `byLive` index holds only executions that are not finished: `liveShard` is written with a
/// queued execution and removed with the update that finishes it, over the 8 shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_index_holds_only_unfinished_executions() {
    use wf_aws::dynamo::keys;
    use wf_core::execution::{ExecutionStatus, ExecutionUpdate};
    use wf_core::ports::ExecutionStore;
    use wf_tests::conformance::{T0, execution, execution_id};

    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("live"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let store = wf_aws::DynamoStore::new(clients.dynamodb.clone(), &config);
    let ids: Vec<String> = (0..24).map(|i| execution_id(T0 + i)).collect();
    for (i, id) in ids.iter().enumerate() {
        let record = execution(id, "wf", T0 + i as i64);
        store.create_execution(&record, None).await.expect("create");
        let status = match i % 3 {
            0 => ExecutionStatus::Succeeded,
            1 => ExecutionStatus::Running,
            _ => continue,
        };
        let update = ExecutionUpdate {
            status,
            output: None,
            error: None,
            finished_at: status.is_terminal().then_some(T0 + 100),
        };
        assert!(store.update_execution(id, &update).await.expect("update"));
    }
    let mut live = std::collections::BTreeSet::new();
    let mut shards_used = std::collections::BTreeSet::new();
    for shard in keys::live_shards() {
        let out = clients
            .dynamodb
            .query()
            .table_name(&config.executions_table)
            .index_name(keys::BY_LIVE_INDEX)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", keys::LIVE_SHARD_ATTR)
            .expression_attribute_values(
                ":s",
                aws_sdk_dynamodb::types::AttributeValue::S(shard.clone()),
            )
            .send()
            .await
            .expect("query byLive");
        for item in out.items() {
            if let Some(aws_sdk_dynamodb::types::AttributeValue::S(id)) = item.get("executionId") {
                live.insert(id.clone());
                shards_used.insert(shard.clone());
            }
        }
    }
    let expected: std::collections::BTreeSet<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        live, expected,
        "running and queued only: finished ones left the index"
    );
    assert!(shards_used.len() > 1, "spread over shards: {shards_used:?}");
}

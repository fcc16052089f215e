//! What only the AWS adapters have, on moto_server: trigger rule sync (created, idempotent,
//! drift repaired, removed on deactivate), schedules on EventBridge Scheduler (the move from the
//! old schedule rules, drift repaired, removed on deactivate, idempotent), the SQS re-delay chain
//! past 900 s, and the message/event size limits.

use std::time::Duration;

use aws_sdk_eventbridge::types::{InputTransformer, RuleState, Target};
use aws_sdk_scheduler::types::{FlexibleTimeWindowMode, ScheduleState};
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::{Value, json};
use wf_aws::eventbridge::{TARGET_MAX_EVENT_AGE_SECS, TARGET_MAX_RETRIES};
use wf_aws::sqs::NOT_BEFORE_ATTRIBUTE;
use wf_aws::{EventBridgeBus, SqsQueue, TriggerRules, TriggerSchedules, WorkflowTriggers};
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

    // Rules are for event triggers only: the schedule is a Scheduler schedule (below).
    let first = rules.sync(&wf.id, Some(&wf)).await.expect("sync");
    assert_eq!(first.created, ["wf-order-alert-ev"]);
    assert!(
        eb.describe_rule()
            .name("wf-order-alert-s0")
            .send()
            .await
            .is_err(),
        "no schedule rule on the default bus"
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
    assert_eq!(again.unchanged.len(), 1);

    // Drift: the event rule disabled by hand, its target removed.
    eb.put_rule()
        .name("wf-order-alert-ev")
        .event_bus_name(&config.event_bus)
        .event_pattern(r#"{"detail-type": ["order.created"]}"#)
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
    assert_eq!(repaired.updated, ["wf-order-alert-ev"]);
    let described = eb
        .describe_rule()
        .name("wf-order-alert-ev")
        .event_bus_name(&config.event_bus)
        .send()
        .await
        .expect("rule");
    assert_eq!(described.state(), Some(&RuleState::Enabled));
    let targets = eb
        .list_targets_by_rule()
        .rule("wf-order-alert-ev")
        .event_bus_name(&config.event_bus)
        .send()
        .await
        .expect("targets");
    assert_eq!(targets.targets().len(), 1);

    // A new version without the schedule: the event rule stays as it is.
    let v2 = workflow(
        "order-alert",
        json!([{ "type": "event", "event": "order.created" }]),
    );
    let changed = rules.sync(&wf.id, Some(&v2)).await.expect("sync v2");
    assert!(changed.deleted.is_empty(), "{changed:?}");
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

const SCHEDULER_ROLE: &str = "arn:aws:iam::123456789012:role/wf-scheduler";
const TRIGGER_DLQ: &str = "arn:aws:sqs:us-east-1:123456789012:wf-trigger-dlq";

/// A schedule rule as the rule-based design made it: default bus, `cron(...)`, the trigger
/// function as target with `{"workflowId", "scheduledTime": <time>}` from `$.time`.
async fn old_schedule_rule(eb: &aws_sdk_eventbridge::Client, workflow_id: &str, cron: &str) {
    let name = format!("wf-{workflow_id}-s0");
    eb.put_rule()
        .name(&name)
        .description(format!("wf trigger of workflow {workflow_id}"))
        .schedule_expression(cron)
        .state(RuleState::Enabled)
        .send()
        .await
        .expect("old schedule rule");
    let transformer = InputTransformer::builder()
        .input_paths_map("time", "$.time")
        .input_template(format!(
            r#"{{"workflowId": "{workflow_id}", "scheduledTime": <time>}}"#
        ))
        .build()
        .expect("transformer");
    eb.put_targets()
        .rule(&name)
        .targets(
            Target::builder()
                .id("wf-trigger")
                .arn(TARGET)
                .input_transformer(transformer)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("old target");
}

/// Schedules live on EventBridge Scheduler: the reconcile moves an old schedule rule (the rule
/// goes once the schedule exists), removes the rule of a workflow no longer active, brings back
/// a schedule deleted or edited behind the product's back, removes schedules on deactivation,
/// and changes nothing when run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_move_from_rules_to_scheduler_and_the_reconcile_repairs_them() {
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("sched"), Duration::from_secs(30))
        .await;
    let group = config.schedule_group.clone().expect("provisioned group");
    let clients = moto.clients(None).await;
    let (eb, sc) = (clients.eventbridge.clone(), clients.scheduler.clone());
    let triggers = WorkflowTriggers::new(
        TriggerRules::new(eb.clone(), &config.event_bus, TARGET)
            .with_dead_letter(Some(TRIGGER_DLQ.into())),
        Some(
            TriggerSchedules::new(sc.clone(), &group, TARGET, SCHEDULER_ROLE)
                .with_dead_letter(Some(TRIGGER_DLQ.into())),
        ),
    );
    let wf = workflow(
        "order-alert",
        json!([
            { "type": "schedule", "cron": "0 9 * * 1-5" },
            { "type": "event", "event": "order.created" }
        ]),
    );
    // What the rule-based design left: order-alert's schedule rule, and the schedule rule of a
    // workflow that is not active any more.
    old_schedule_rule(&eb, "order-alert", "cron(0 9 ? * MON-FRI *)").await;
    old_schedule_rule(&eb, "retired", "cron(0 1 * * ? *)").await;

    let first = triggers
        .sync_all(std::slice::from_ref(&wf))
        .await
        .expect("reconcile");
    assert_eq!(first.created, ["wf-order-alert-s0", "wf-order-alert-ev"]);
    let mut deleted = first.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, ["wf-order-alert-s0", "wf-retired-s0"], "{first:?}");
    for rule in ["wf-order-alert-s0", "wf-retired-s0"] {
        assert!(
            eb.describe_rule().name(rule).send().await.is_err(),
            "{rule} is gone from the default bus"
        );
    }
    let got = sc
        .get_schedule()
        .group_name(&group)
        .name("wf-order-alert-s0")
        .send()
        .await
        .expect("the schedule exists");
    assert_eq!(got.schedule_expression(), Some("cron(0 9 ? * MON-FRI *)"));
    assert_eq!(got.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(got.state(), Some(&ScheduleState::Enabled));
    assert_eq!(
        got.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = got.target().expect("target");
    assert_eq!(target.arn(), TARGET);
    assert_eq!(target.role_arn(), SCHEDULER_ROLE);
    let input: Value = serde_json::from_str(target.input().unwrap_or("null")).expect("input");
    assert_eq!(
        input,
        json!({ "workflowId": "order-alert", "scheduleIndex": 0,
                "scheduledTime": "<aws.scheduler.scheduled-time>" })
    );
    let retry = target.retry_policy().expect("retry policy");
    assert_eq!(retry.maximum_retry_attempts(), Some(TARGET_MAX_RETRIES));
    assert_eq!(
        retry.maximum_event_age_in_seconds(),
        Some(TARGET_MAX_EVENT_AGE_SECS)
    );
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(TRIGGER_DLQ)
    );

    // Idempotent: the second run changes nothing.
    let again = triggers
        .sync_all(std::slice::from_ref(&wf))
        .await
        .expect("again");
    assert!(!again.changed(), "{again:?}");
    assert_eq!(again.unchanged, ["wf-order-alert-s0", "wf-order-alert-ev"]);
    assert!(
        !triggers
            .sync(&wf.id, Some(&wf))
            .await
            .expect("activation sync")
            .changed()
    );

    // Drift: deleted behind the product's back, the reconcile brings it back.
    sc.delete_schedule()
        .group_name(&group)
        .name("wf-order-alert-s0")
        .send()
        .await
        .expect("delete by hand");
    let back = triggers
        .sync_all(std::slice::from_ref(&wf))
        .await
        .expect("repair");
    assert_eq!(back.created, ["wf-order-alert-s0"], "{back:?}");
    // Edited by hand (another expression, disabled): put back as it should be.
    let current = sc
        .get_schedule()
        .group_name(&group)
        .name("wf-order-alert-s0")
        .send()
        .await
        .expect("get");
    sc.update_schedule()
        .group_name(&group)
        .name("wf-order-alert-s0")
        .schedule_expression("rate(5 minutes)")
        .flexible_time_window(current.flexible_time_window().expect("window").clone())
        .target(current.target().expect("target").clone())
        .state(ScheduleState::Disabled)
        .send()
        .await
        .expect("edit by hand");
    let repaired = triggers
        .sync_all(std::slice::from_ref(&wf))
        .await
        .expect("repair edit");
    assert_eq!(repaired.updated, ["wf-order-alert-s0"], "{repaired:?}");
    let got = sc
        .get_schedule()
        .group_name(&group)
        .name("wf-order-alert-s0")
        .send()
        .await
        .expect("get");
    assert_eq!(got.schedule_expression(), Some("cron(0 9 ? * MON-FRI *)"));
    assert_eq!(got.state(), Some(&ScheduleState::Enabled));

    // A neighbour whose id starts the same keeps its schedule through order-alert's syncs.
    let neighbour = workflow(
        "order-alert-eu",
        json!([{ "type": "schedule", "cron": "30 6 * * *" }]),
    );
    let n = triggers
        .sync(&neighbour.id, Some(&neighbour))
        .await
        .expect("neighbour");
    assert_eq!(n.created, ["wf-order-alert-eu-s0"]);

    // Deactivated: its schedule and rule go, the neighbour's schedule stays.
    let removed = triggers.sync(&wf.id, None).await.expect("deactivate");
    assert_eq!(removed.deleted, ["wf-order-alert-s0", "wf-order-alert-ev"]);
    let missing = sc
        .get_schedule()
        .group_name(&group)
        .name("wf-order-alert-s0")
        .send()
        .await;
    assert!(
        missing.as_ref().is_err_and(|e| e
            .as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception())),
        "{missing:?}"
    );
    assert!(
        sc.get_schedule()
            .group_name(&group)
            .name("wf-order-alert-eu-s0")
            .send()
            .await
            .is_ok()
    );
    // The reconcile with nothing active removes what is left, once.
    let swept = triggers.sync_all(&[]).await.expect("sweep");
    assert_eq!(swept.deleted, ["wf-order-alert-eu-s0"]);
    assert!(!triggers.sync_all(&[]).await.expect("sweep again").changed());
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

/// A terminal update writes the status indexes' keys from the execution's workflow id and
/// trigger type. The process that created or read the execution keeps them (no read); another
/// process reads them from the item. Both write the same keys: the executions are listed by
/// status and by workflow and status whichever process finished them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_update_indexes_the_same_with_or_without_the_kept_facts() {
    use wf_core::execution::{ExecutionQuery, ExecutionStatus, ExecutionUpdate};
    use wf_core::ports::ExecutionStore;
    use wf_tests::conformance::{T0, execution, execution_id};

    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("facts"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let creator = wf_aws::DynamoStore::new(clients.dynamodb.clone(), &config);
    let mut finished_by = Vec::new();
    for i in 0..4 {
        let id = execution_id(T0 + i);
        let mut record = execution(&id, "wf-facts", T0 + i);
        record.trigger.kind = "schedule".into();
        creator
            .create_execution(&record, None)
            .await
            .expect("create");
        // Even: the creating process finishes it (facts kept); odd: a process that never
        // saw it (a new store: facts read from the item).
        let other = wf_aws::DynamoStore::new(clients.dynamodb.clone(), &config);
        let store = if i % 2 == 0 { &creator } else { &other };
        let update = ExecutionUpdate {
            status: ExecutionStatus::Failed,
            output: None,
            error: None,
            finished_at: Some(T0 + 100),
        };
        assert!(store.update_execution(&id, &update).await.expect("update"));
        finished_by.push(id);
    }
    let by = |workflow: Option<&str>, trigger: Option<&str>| ExecutionQuery {
        status: Some(ExecutionStatus::Failed),
        workflow_id: workflow.map(str::to_string),
        trigger: trigger.map(str::to_string),
        ..ExecutionQuery::default()
    };
    for query in [
        by(None, None),
        by(Some("wf-facts"), None),
        by(None, Some("schedule")),
        by(Some("wf-facts"), Some("schedule")),
    ] {
        let fresh = wf_aws::DynamoStore::new(clients.dynamodb.clone(), &config);
        let mut listed: Vec<String> = fresh
            .list_executions(&query)
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|r| r.id)
            .collect();
        listed.sort();
        assert_eq!(listed, finished_by, "{query:?}");
    }
}

/// The status and trigger filter indexes on an upgraded stack. Items written before them carry
/// none of their attributes: a finished one stays out of `byStatus`/`byTrigger`/
/// `byWorkflowStatus`/`byWorkflowTrigger` (listed unfiltered and by workflow only), a live one
/// enters all four when it finishes. A table that does not have the indexes yet (CloudFormation
/// adds one per stack update) answers every filter through the base indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_indexes_on_an_upgraded_table() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    use wf_aws::dynamo::items::execution_item;
    use wf_aws::dynamo::keys;
    use wf_core::execution::{
        ExecutionQuery, ExecutionRecord, ExecutionStatus, ExecutionUpdate, TriggerInfo,
    };
    use wf_core::ports::ExecutionStore;
    use wf_tests::conformance::{T0, execution, execution_id};

    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("upgrade"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let new_attrs = [
        keys::STATUS_SHARD_ATTR,
        keys::TRIGGER_SHARD_ATTR,
        keys::WORKFLOW_STATUS_ATTR,
        keys::WORKFLOW_TRIGGER_ATTR,
    ];
    // An item as a build before the filter indexes wrote it.
    let put_old = |table: String, record: ExecutionRecord| {
        let dynamodb = clients.dynamodb.clone();
        async move {
            let mut item = execution_item(&record, 30).expect("item");
            for a in new_attrs {
                item.remove(a);
            }
            dynamodb
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .send()
                .await
                .expect("put old item");
        }
    };
    let finished = |status| ExecutionUpdate {
        status,
        output: None,
        error: None,
        finished_at: Some(T0 + 50_000),
    };
    let ids = |page: wf_core::execution::ExecutionPage| -> Vec<String> {
        page.items.into_iter().map(|e| e.id).collect()
    };
    let failed = |workflow: Option<&str>| ExecutionQuery {
        workflow_id: workflow.map(str::to_string),
        status: Some(ExecutionStatus::Failed),
        limit: 100,
        ..Default::default()
    };
    let scheduled = |workflow: Option<&str>| ExecutionQuery {
        workflow_id: workflow.map(str::to_string),
        trigger: Some("schedule".into()),
        limit: 100,
        ..Default::default()
    };

    // With every index: an old finished execution is not in the filter indexes; an old live one
    // is once it finishes; new ones are.
    let store = wf_aws::DynamoStore::new(clients.dynamodb.clone(), &config);
    let mut old_done = execution(&execution_id(T0 + 1), "wf", T0 + 1);
    old_done.status = ExecutionStatus::Failed;
    old_done.trigger = TriggerInfo::new("schedule");
    put_old(config.executions_table.clone(), old_done.clone()).await;
    let mut old_live = execution(&execution_id(T0 + 2), "wf", T0 + 2);
    old_live.trigger = TriggerInfo::new("schedule");
    put_old(config.executions_table.clone(), old_live.clone()).await;
    let mut new = execution(&execution_id(T0 + 3), "wf", T0 + 3);
    new.trigger = TriggerInfo::new("schedule");
    store.create_execution(&new, None).await.expect("create");
    for id in [&old_live.id, &new.id] {
        assert!(
            store
                .update_execution(id, &finished(ExecutionStatus::Failed))
                .await
                .expect("finish")
        );
    }
    let indexed = vec![new.id.clone(), old_live.id.clone()];
    for workflow in [None, Some("wf")] {
        let page = store
            .list_executions(&failed(workflow))
            .await
            .expect("list");
        assert_eq!(ids(page), indexed, "failed, workflow {workflow:?}");
        let page = store
            .list_executions(&scheduled(workflow))
            .await
            .expect("list");
        assert_eq!(ids(page), indexed, "schedule, workflow {workflow:?}");
    }
    let page = store
        .list_executions(&ExecutionQuery {
            workflow_id: Some("wf".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(page).len(), 3, "unfiltered, the old one is listed");

    // A table with only the indexes from before (the stack mid-upgrade): every filter is read
    // through byStart/byWorkflow/byLive, old items included.
    let old_table = format!("{}-old", config.executions_table);
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attr")
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    let mut create = clients
        .dynamodb
        .create_table()
        .table_name(&old_table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(keys::EXECUTIONS_PK, KeyType::Hash))
        .key_schema(key(keys::SK, KeyType::Range));
    for a in [
        keys::EXECUTIONS_PK,
        keys::SK,
        keys::WORKFLOW_ID_ATTR,
        keys::STARTED_KEY_ATTR,
        keys::ENTITY_ATTR,
        keys::LIVE_SHARD_ATTR,
    ] {
        create = create.attribute_definitions(attr(a));
    }
    for (name, pk) in [
        (keys::BY_WORKFLOW_INDEX, keys::WORKFLOW_ID_ATTR),
        (keys::BY_START_INDEX, keys::ENTITY_ATTR),
        (keys::BY_LIVE_INDEX, keys::LIVE_SHARD_ATTR),
    ] {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash))
                .key_schema(key(keys::STARTED_KEY_ATTR, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("index"),
        );
    }
    create.send().await.expect("create the old table");
    let mut old_config = config.clone();
    old_config.executions_table = old_table.clone();
    let store = wf_aws::DynamoStore::new(clients.dynamodb.clone(), &old_config);
    put_old(old_table.clone(), old_done.clone()).await;
    put_old(old_table.clone(), old_live.clone()).await;
    store.create_execution(&new, None).await.expect("create");
    for id in [&old_live.id, &new.id] {
        assert!(
            store
                .update_execution(id, &finished(ExecutionStatus::Failed))
                .await
                .expect("finish")
        );
    }
    let all = vec![new.id.clone(), old_live.id.clone(), old_done.id.clone()];
    for workflow in [None, Some("wf")] {
        let page = store
            .list_executions(&failed(workflow))
            .await
            .expect("list");
        assert_eq!(
            ids(page),
            all,
            "failed without the index, workflow {workflow:?}"
        );
        let page = store
            .list_executions(&scheduled(workflow))
            .await
            .expect("list");
        assert_eq!(
            ids(page),
            all,
            "schedule without the index, workflow {workflow:?}"
        );
    }
}

/// The loop counter stays a small item however long the loop: `counted` (the indexes counted,
/// what makes a count exactly-once) is folded into per-lane marks once enough of its indexes
/// follow their lane's mark without a gap, on DynamoDB only (SQLite keeps a row per iteration).
/// Two orders: lanes in step with each other, shuffled each round, with one iteration lagging
/// for half the loop; and lanes one after the other (what a task running its lane's iterations
/// inline does). Redelivered counts (below a mark and in the set) stay `AlreadyCounted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_counter_stays_small_however_long_the_loop() {
    use std::collections::{BTreeMap, BTreeSet};

    use aws_sdk_dynamodb::types::AttributeValue;
    use wf_aws::dynamo::keys;
    use wf_core::execution::IterationCount;
    use wf_core::ports::ExecutionStore;
    use wf_tests::conformance::{T0, execution, execution_id, loop_items, loop_state};

    const TOTAL: u32 = 600;
    const CONCURRENCY: u32 = 10;
    const LAGGING: u32 = 7;
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("counter"), Duration::from_secs(30))
        .await;
    let clients = moto.clients(None).await;
    let store = wf_aws::DynamoStore::new(clients.dynamodb.clone(), &config);
    let rounds = TOTAL / CONCURRENCY;
    let in_step: Vec<u32> = (0..rounds)
        .flat_map(|round| {
            (0..CONCURRENCY).map(move |k| round * CONCURRENCY + (k * 3 + round) % CONCURRENCY)
        })
        .filter(|&i| i != LAGGING)
        .collect();
    let (first_half, second_half) = in_step.split_at(in_step.len() / 2);
    let in_step: Vec<u32> = first_half
        .iter()
        .copied()
        .chain([LAGGING])
        .chain(second_half.iter().copied())
        .collect();
    let lane_after_lane: Vec<u32> = (0..CONCURRENCY)
        .flat_map(|lane| (0..rounds).map(move |round| round * CONCURRENCY + lane))
        .collect();

    for (n, order) in [in_step, lane_after_lane].into_iter().enumerate() {
        let id = execution_id(T0 + n as i64);
        store
            .create_execution(&execution(&id, "wf", T0), None)
            .await
            .expect("create");
        store
            .init_loop(
                &id,
                "each",
                &loop_state(TOTAL, CONCURRENCY),
                &loop_items(TOTAL),
            )
            .await
            .expect("init_loop");
        // The counter item as stored: (lane marks, counted).
        let counter = || async {
            let item = clients
                .dynamodb
                .get_item()
                .table_name(&config.executions_table)
                .key(keys::EXECUTIONS_PK, AttributeValue::S(id.clone()))
                .key(keys::SK, AttributeValue::S(keys::loop_sk("each")))
                .consistent_read(true)
                .send()
                .await
                .expect("get counter")
                .item
                .expect("counter exists");
            let marks: BTreeMap<u32, u32> = match item.get(keys::LANE_MARKS) {
                Some(AttributeValue::M(m)) => m
                    .iter()
                    .map(|(lane, mark)| {
                        let AttributeValue::N(mark) = mark else {
                            panic!("mark {mark:?}")
                        };
                        (lane.parse().expect("lane"), mark.parse().expect("mark"))
                    })
                    .collect(),
                _ => BTreeMap::new(),
            };
            let counted: BTreeSet<u32> = match item.get("counted") {
                Some(AttributeValue::Ns(set)) => {
                    set.iter().map(|i| i.parse().expect("n")).collect()
                }
                _ => BTreeSet::new(),
            };
            (marks, counted)
        };
        let count = |index: u32| {
            let store = &store;
            let id = &id;
            async move {
                store
                    .count_iteration(id, "each", index, &json!(index))
                    .await
                    .expect("count_iteration")
            }
        };

        let mut remaining_seen = Vec::new();
        let mut largest_set = 0;
        for (done, &index) in order.iter().enumerate() {
            match count(index).await {
                IterationCount::Counted(after) => remaining_seen.push(after.remaining),
                other => panic!("iteration {index}: {other:?}"),
            }
            if done % CONCURRENCY as usize != 0 {
                continue;
            }
            let (marks, counted) = counter().await;
            for (&lane, &mark) in &marks {
                assert_eq!(mark % CONCURRENCY, lane, "a mark stays in its lane");
                assert!(
                    counted
                        .iter()
                        .all(|&i| i % CONCURRENCY != lane || i >= mark),
                    "only indexes from their lane's mark on are listed: {marks:?} {counted:?}"
                );
            }
            // Once the lagging iteration is counted, nothing holds the marks back.
            if n == 1 || order[..done].contains(&LAGGING) {
                largest_set = largest_set.max(counted.len());
            }
            // Redeliveries: one below a mark, one listed in the set.
            let below = marks
                .iter()
                .find(|(lane, mark)| *mark > lane)
                .map(|(_, &mark)| mark - CONCURRENCY);
            for again in [below, counted.iter().next_back().copied()]
                .into_iter()
                .flatten()
            {
                assert_eq!(
                    count(again).await,
                    IterationCount::AlreadyCounted,
                    "a redelivered count of {again} (marks {marks:?})"
                );
            }
        }
        remaining_seen.sort_unstable();
        assert_eq!(
            remaining_seen,
            (0..TOTAL).collect::<Vec<_>>(),
            "order {n}: every index counted once, each count saw a distinct remaining, 0 once"
        );
        let (marks, counted) = counter().await;
        let folded: u32 = marks
            .iter()
            .map(|(lane, mark)| (mark - lane) / CONCURRENCY)
            .sum();
        assert_eq!(folded as usize + counted.len(), TOTAL as usize, "order {n}");
        assert!(
            folded >= TOTAL - keys::COMPACT_RUN,
            "order {n}: the marks follow the counts ({folded} folded)"
        );
        assert!(
            largest_set <= (keys::COMPACT_RUN + 2 * CONCURRENCY) as usize,
            "order {n}: the set stays small: {largest_set} entries"
        );
        let stored = store
            .get_loop(&id, "each")
            .await
            .expect("get_loop")
            .expect("exists");
        assert_eq!(stored.remaining, 0);
        assert_eq!(
            store
                .list_iterations(&id, "each")
                .await
                .expect("list")
                .len(),
            TOTAL as usize
        );
    }
}

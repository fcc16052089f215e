//! The port conformance suite against the AWS adapters (DynamoDB store, SQS queue, EventBridge
//! bus and trigger rules) on moto_server: the same generic checks as `conformance_local.rs`.
//! Each test has its own moto_server (killed when the test ends).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use wf_aws::{AwsClients, Config, DynamoStore, EventBridgeBus, SqsQueue};
use wf_core::ports::ExecutionStore;
use wf_tests::conformance::store::RetentionProbe;
use wf_tests::conformance::{bus, queue, store};
use wf_tests::moto::{Moto, RuleProbe, unique_prefix};

/// SQS's visibility timeout is whole seconds: the shortest useful one.
const VISIBILITY: Duration = Duration::from_secs(1);

struct Aws {
    moto: Moto,
    config: Config,
    clients: AwsClients,
}

impl Aws {
    async fn start() -> Self {
        let moto = Moto::start();
        let config = moto.provision(&unique_prefix("conf"), VISIBILITY).await;
        let clients = moto.clients(None).await;
        Self {
            moto,
            config,
            clients,
        }
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(self.clients.dynamodb.clone(), &self.config)
    }

    fn queue(&self) -> SqsQueue {
        SqsQueue::new(self.clients.sqs.clone(), &self.config.queue_url)
    }
}

macro_rules! store_checks {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let aws = Aws::start().await;
            store::$name(&aws.store()).await;
        }
    )*};
}

store_checks!(
    claim_semantics,
    finish_step_once,
    renew_lease_only_while_held,
    list_steps_and_delete,
    list_steps_in_start_order,
    update_execution_until_terminal,
    create_execution_with_steps,
    claim_new_step_only_where_nothing_is_stored,
    dedupe_keys,
    list_executions_pages,
    list_iterations_in_index_order,
    count_iterations_in_batches,
    loop_items_in_pages,
    rejections_newest_first_in_pages,
    marks_are_kept_overwritten_and_cleared,
    definitions,
    records,
    payload_limit,
    deep_values_round_trip,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_join_counts_each_iteration_once() {
    let aws = Aws::start().await;
    store::loop_join_counts_each_iteration_once(Arc::new(aws.store())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delay_is_honoured() {
    let aws = Aws::start().await;
    // DelaySeconds is whole seconds.
    queue::delay_is_honoured(&aws.queue(), Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_redelivery_and_stale_receipts() {
    let aws = Aws::start().await;
    queue::redelivery_and_stale_receipts(&aws.queue(), VISIBILITY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_batch_send() {
    let aws = Aws::start().await;
    queue::batch_send(&aws.queue()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_receive_wakes_on_send() {
    let aws = Aws::start().await;
    queue::receive_wakes_on_send(Arc::new(aws.queue())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_across_reopen() {
    let aws = Aws::start().await;
    let (config, sdk) = (aws.config.clone(), aws.moto.sdk_config().await);
    queue::durable_across_reopen(
        move || {
            // New clients each time: what survives is what the services kept.
            let clients = AwsClients::from_sdk_config(&sdk, None);
            let store = DynamoStore::new(clients.dynamodb.clone(), &config);
            let q = SqsQueue::new(clients.sqs, &config.queue_url);
            async move { (Arc::new(store), q) }
        },
        VISIBILITY,
    )
    .await;
}

/// Reads the raw `ttl` attribute of every item of an execution.
struct TtlProbe {
    store: DynamoStore,
}

#[async_trait]
impl RetentionProbe for TtlProbe {
    async fn expiries(&self, execution_id: &str) -> Vec<(String, Option<i64>)> {
        let out = self
            .store
            .client()
            .query()
            .table_name(self.store.executions_table())
            .key_condition_expression("executionId = :id")
            .expression_attribute_values(":id", AttributeValue::S(execution_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("query items");
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let sk = match item.get("sk") {
                    Some(AttributeValue::S(s)) => s.clone(),
                    other => panic!("item without sk: {other:?}"),
                };
                let ttl = match item.get("ttl") {
                    Some(AttributeValue::N(n)) => n.parse().ok(),
                    _ => None,
                };
                (sk, ttl)
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_ttl_is_set_on_every_item() {
    let aws = Aws::start().await;
    let store = aws.store();
    let ttl = aws
        .clients
        .dynamodb
        .describe_time_to_live()
        .table_name(store.executions_table())
        .send()
        .await
        .expect("describe TTL");
    let spec = ttl.time_to_live_description.expect("TTL description");
    assert_eq!(spec.attribute_name(), Some("ttl"));
    assert_eq!(
        spec.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );
    let probe = TtlProbe {
        store: store.clone(),
    };
    store::retention_marks_every_item(&store, &probe, store.retention_days()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_routes_by_type() {
    let aws = Aws::start().await;
    let bus = EventBridgeBus::new(aws.clients.eventbridge.clone(), &aws.config.event_bus);
    let mut probe = RuleProbe::new(&aws.clients, &aws.config.event_bus).await;
    bus::routes_by_type(&bus, &mut probe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cursor_is_invalid_and_pages_default_to_50() {
    let aws = Aws::start().await;
    let store = aws.store();
    let bad = store
        .list_executions(&wf_core::execution::ExecutionQuery {
            cursor: Some("not-a-cursor".into()),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(bad, Err(wf_core::StoreError::Invalid(_))),
        "{bad:?}"
    );
    let workflow = wf_tests::conformance::unique("wf");
    for i in 0..55 {
        let id = wf_tests::conformance::execution_id(wf_tests::conformance::T0 + i);
        store
            .create_execution(
                &wf_tests::conformance::execution(&id, &workflow, wf_tests::conformance::T0 + i),
                None,
            )
            .await
            .expect("create");
    }
    let page = store
        .list_executions(&wf_core::execution::ExecutionQuery::default())
        .await
        .expect("list");
    assert_eq!(page.items.len(), 50);
    assert!(page.next_cursor.is_some());
}

/// The sort keys of every item of an execution, sorted.
async fn item_keys(store: &DynamoStore, execution_id: &str) -> Vec<String> {
    let probe = TtlProbe {
        store: store.clone(),
    };
    let mut keys: Vec<String> = probe
        .expiries(execution_id)
        .await
        .into_iter()
        .map(|(sk, _)| sk)
        .collect();
    keys.sort();
    keys
}

/// The records of a pure start ride in the `EXEC` item when they cost no write unit there (one
/// put in all), and are `STEP#` items when they would; the reads are the same either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pure_start_is_one_item_when_its_records_fit_and_step_items_when_not() {
    use serde_json::json;
    use wf_core::execution::{CreateOutcome, ExecutionStatus, StepStatus};
    use wf_tests::conformance::{T0, execution, execution_id, step};

    let aws = Aws::start().await;
    let store = aws.store();
    let records = |input: serde_json::Value| {
        [("start", "check"), ("check", "notify")].map(|(path, next)| {
            wf_core::execution::StepRecord {
                step_type: "condition".into(),
                input: input.clone(),
                output: json!({ "branch": 0 }),
                finished_at: Some(T0 + 1),
                duration_ms: Some(1),
                lease_until: None,
                next: Some(next.into()),
                ..step(path, StepStatus::Succeeded, 1, None)
            }
        })
    };
    for (n, (input, expected_items)) in [
        (json!({ "amount": 250 }), vec!["EXEC"]),
        (
            json!({ "note": "x".repeat(700) }),
            vec!["EXEC", "STEP#check", "STEP#start"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = execution_id(T0 + n as i64);
        let mut record = execution(&id, "wf-staged", T0);
        record.input = input.clone();
        let steps = records(input).to_vec();
        let created = store
            .create_execution_with_steps(&record, None, &steps)
            .await
            .expect("create");
        assert_eq!(created, CreateOutcome::Created);
        assert_eq!(
            item_keys(&store, &id).await,
            expected_items,
            "items of {id}"
        );
        // Another process (nothing remembered) reads the same.
        let other = aws.store();
        assert_eq!(other.list_steps(&id).await.expect("steps"), steps);
        assert_eq!(
            other
                .get_execution(&id)
                .await
                .expect("get")
                .map(|r| r.status),
            Some(ExecutionStatus::Queued)
        );
        let mut claim = step("check", StepStatus::Running, 1, Some(T0 + 60_000));
        claim.next = None;
        assert_eq!(
            aws.store()
                .claim_step(&id, &claim, T0 + 2)
                .await
                .expect("claim"),
            wf_core::execution::ClaimOutcome::Held(steps[1].clone())
        );
        // A redelivered create writes nothing more.
        store
            .create_execution_with_steps(&record, None, &steps)
            .await
            .expect("redelivered create");
        assert_eq!(item_keys(&store, &id).await, expected_items);
    }
}

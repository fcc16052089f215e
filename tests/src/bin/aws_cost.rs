//! What the engine costs on AWS per executed step: runs the reference order-alert workflow and a
//! 100-item loop on the AWS adapters against moto_server, counts every AWS API call with an SDK
//! interceptor, and prints requests per step by service and operation and the list-price cost per
//! 1M steps. `scripts/aws-cost` builds and runs it.
//!
//! The worker is driven the way Lambda's SQS event source mapping drives the worker function:
//! receive up to 10 messages (one invocation per non-empty receive), handle them, delete the
//! handled ones in one DeleteMessageBatch. Each execution also costs one trigger invocation.
//!
//! Prices (us-east-1 list): DynamoDB on-demand $0.625 per 1M write units and $0.125 per 1M read
//! units (a request of at most 1 KB written / 4 KB read is one unit; a transactional item counts
//! twice), SQS $0.40 per 1M requests, Lambda $0.20 per 1M invocations (duration not included),
//! EventBridge $1.00 per 1M custom events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::config::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Value, json};
use wf_app::App;
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_app::app::executions::StartRequest;
use wf_app::app::workflows::PublishMode;
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_app::services::{EnvSecrets, Services};
use wf_aws::{DynamoStore, EventBridgeBus, SqsQueue};
use wf_core::engine::CompiledWorkflow;
use wf_core::execution::{ExecutionStatus, TriggerInfo};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, ExecutionStore, SystemClock, TaskQueue};
use wf_tests::moto::{Moto, unique_prefix};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const DYNAMO_WRITE: f64 = 0.625;
const DYNAMO_READ: f64 = 0.125;
const SQS_REQUEST: f64 = 0.40;
const LAMBDA_INVOKE: f64 = 0.20;
const EVENTBRIDGE_EVENT: f64 = 1.00;
const TARGET: f64 = 1.00;

/// Requests and billed units of one operation.
#[derive(Debug, Clone, Copy, Default)]
struct Units {
    requests: u64,
    /// DynamoDB write units, read units, or EventBridge events.
    billed: u64,
}

/// Counts every SDK call by service and operation.
#[derive(Debug, Default)]
struct Counter {
    counts: Mutex<BTreeMap<(String, String), Units>>,
}

impl Counter {
    fn take(&self) -> BTreeMap<(String, String), Units> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[derive(Debug)]
struct Counting(Arc<Counter>);

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "request-counter"
    }

    /// Once per HTTP attempt (what AWS bills). The operation comes from the JSON protocol's
    /// `X-Amz-Target` header (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`,
    /// `AWSEvents.PutEvents`); billed units from the body (items of a transaction or batch).
    fn read_before_transmit(
        &self, context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents, _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or("unknown.unknown");
        let (prefix, op) = target.split_once('.').unwrap_or(("unknown", target));
        let service = if prefix.starts_with("DynamoDB") {
            "dynamodb"
        } else if prefix.contains("SQS") {
            "sqs"
        } else if prefix.contains("Events") {
            "eventbridge"
        } else {
            "other"
        };
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let len = |v: &Value| v.as_array().map_or(0, |a| a.len() as u64);
        let sum_of = |v: &Value, inner: Option<&str>| {
            v.as_object().map_or(0, |m| {
                m.values()
                    .map(|x| match inner {
                        Some(k) => len(&x[k]),
                        None => len(x),
                    })
                    .sum::<u64>()
            })
        };
        let billed = match op {
            "TransactWriteItems" => 2 * len(&body["TransactItems"]),
            "TransactGetItems" => 2 * len(&body["TransactItems"]),
            "BatchWriteItem" => sum_of(&body["RequestItems"], None),
            "BatchGetItem" => sum_of(&body["RequestItems"], Some("Keys")),
            "PutEvents" => len(&body["Entries"]),
            _ => 1,
        };
        if op == "ReceiveMessage" {
            // Counted by the driver: a receive that brings work is the invocation's; empty long
            // polls are the event source mapping's idle cost, the same at any load.
            return Ok(());
        }
        let mut counts = self.0.counts.lock().unwrap_or_else(|p| p.into_inner());
        let u = counts
            .entry((service.to_string(), op.to_string()))
            .or_default();
        u.requests += 1;
        u.billed += billed;
        Ok(())
    }
}

/// Which price an operation pays.
fn kind(service: &str, op: &str) -> &'static str {
    if service == "dynamodb" {
        if matches!(
            op,
            "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
        ) {
            "dynamodb-write"
        } else {
            "dynamodb-read"
        }
    } else if service == "sqs" {
        "sqs"
    } else {
        "eventbridge"
    }
}

struct Engine {
    app: Arc<App>,
    queue: Arc<SqsQueue>,
    store: Arc<DynamoStore>,
    counter: Arc<Counter>,
}

/// One scenario: start `runs` executions, drive them like Lambda would, report.
async fn scenario(
    engine: &Engine, title: &str, workflow: Value, input: Value, runs: usize,
) -> anyhow::Result<f64> {
    let wf: Workflow = serde_json::from_value(workflow).context("workflow JSON")?;
    let problems = wf_core::validate::validate_workflow(&wf);
    if !problems.is_empty() {
        return Err(anyhow!("{title}: invalid workflow: {problems:?}"));
    }
    let published = engine.app.publish(&wf, PublishMode::Always).await?;
    let compiled = CompiledWorkflow::new(wf, published.version);
    // Warm the definition cache (a warm Lambda has it) and start from zero.
    engine
        .app
        .definition(&compiled.workflow.id, compiled.version)
        .await?;
    engine.counter.take();

    let mut finished = engine.app.subscribe_finished();
    let mut ids = Vec::new();
    for _ in 0..runs {
        let started = engine
            .app
            .start(
                &compiled,
                StartRequest::new(input.clone(), TriggerInfo::new("webhook")),
            )
            .await
            .map_err(|e| anyhow!("start: {e}"))?;
        ids.push(started.execution_id);
    }
    // Lambda-like drivers: 4 concurrent "instances".
    let invocations = Arc::new(Mutex::new(0u64));
    let empty_polls = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut drivers = Vec::new();
    for _ in 0..4 {
        let (app, queue, invocations, empty_polls, stop) = (
            engine.app.clone(),
            engine.queue.clone(),
            invocations.clone(),
            empty_polls.clone(),
            stop.clone(),
        );
        drivers.push(tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    b = queue.receive(10, Duration::from_secs(1)) => b,
                    _ = stop.notified() => return,
                };
                let Ok(batch) = batch else { continue };
                if batch.is_empty() {
                    *empty_polls.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    continue;
                }
                *invocations.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                let mut done = Vec::new();
                for d in batch {
                    if app.run_task(&d.task).await.is_ok() {
                        done.push(d.receipt);
                    }
                }
                if let Err(e) = queue.ack_batch(&done).await {
                    tracing::warn!(error = %e, "batch delete failed");
                }
            }
        }));
    }
    let mut left = runs;
    let wait = tokio::time::timeout(Duration::from_secs(600), async {
        while left > 0 {
            match finished.recv().await {
                Ok((id, _)) if ids.contains(&id) => left -= 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow!("finished channel: {e}")),
            }
        }
        Ok(())
    })
    .await;
    // Let the last acknowledgements go out before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.notify_waiters();
    for d in drivers {
        let _ = d.await;
    }
    wait.context("scenario timed out")??;
    let mut counts = engine.counter.take();
    let invocations = *invocations.lock().unwrap_or_else(|p| p.into_inner());
    let empty_polls = *empty_polls.lock().unwrap_or_else(|p| p.into_inner());
    counts.insert(
        ("sqs".into(), "ReceiveMessage".into()),
        Units {
            requests: invocations,
            billed: invocations,
        },
    );

    let mut steps = 0usize;
    for id in &ids {
        let e = engine
            .store
            .get_execution(id)
            .await?
            .ok_or_else(|| anyhow!("execution {id} vanished"))?;
        if e.status != ExecutionStatus::Succeeded {
            return Err(anyhow!(
                "{title}: execution {id} ended {:?}: {:?}",
                e.status,
                e.error
            ));
        }
        steps += engine.store.list_steps(id).await?.len();
    }
    let per = |n: u64| n as f64 / steps as f64;
    println!("\n== {title}");
    println!(
        "   {runs} executions, {steps} steps ({:.1} per execution); {invocations} worker invocations + {runs} trigger invocations; {empty_polls} empty polls (idle cost, not counted)",
        steps as f64 / runs as f64
    );
    println!(
        "   {:<12} {:<20} {:>9} {:>10} {:>14}",
        "service", "operation", "requests", "req/step", "billed/step"
    );
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for ((service, op), u) in &counts {
        let k = kind(service, op);
        let billed = if k == "sqs" { u.requests } else { u.billed };
        *totals.entry(k).or_default() += per(billed);
        println!(
            "   {:<12} {:<20} {:>9} {:>10.3} {:>14.3}",
            service,
            op,
            u.requests,
            per(u.requests),
            per(billed)
        );
    }
    let lambda = per(invocations + runs as u64);
    println!(
        "   {:<12} {:<20} {:>9} {:>10.3} {:>14.3}",
        "lambda",
        "Invoke",
        invocations + runs as u64,
        lambda,
        lambda
    );
    let parts = [
        (
            "DynamoDB writes",
            totals.get("dynamodb-write").copied().unwrap_or(0.0) * DYNAMO_WRITE,
        ),
        (
            "DynamoDB reads",
            totals.get("dynamodb-read").copied().unwrap_or(0.0) * DYNAMO_READ,
        ),
        (
            "SQS requests",
            totals.get("sqs").copied().unwrap_or(0.0) * SQS_REQUEST,
        ),
        ("Lambda invocations", lambda * LAMBDA_INVOKE),
        (
            "EventBridge events",
            totals.get("eventbridge").copied().unwrap_or(0.0) * EVENTBRIDGE_EVENT,
        ),
    ];
    let total: f64 = parts.iter().map(|(_, c)| c).sum();
    println!("   cost per 1M steps:");
    for (name, cost) in &parts {
        if *cost > 0.0 {
            println!(
                "     {name:<20} ${cost:>6.3}  ({:>4.1}%)",
                cost / total * 100.0
            );
        }
    }
    println!(
        "     {:<20} ${total:>6.3}  (target <= ${TARGET:.2}: {})",
        "total",
        if total <= TARGET { "met" } else { "over" }
    );
    let mut ops: Vec<(String, f64)> = counts
        .iter()
        .map(|((service, op), u)| {
            let k = kind(service, op);
            let price = match k {
                "dynamodb-write" => DYNAMO_WRITE,
                "dynamodb-read" => DYNAMO_READ,
                "sqs" => SQS_REQUEST,
                _ => EVENTBRIDGE_EVENT,
            };
            let billed = if k == "sqs" { u.requests } else { u.billed };
            (format!("{service} {op}"), per(billed) * price)
        })
        .collect();
    ops.push(("lambda Invoke".into(), lambda * LAMBDA_INVOKE));
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "   dominant: {}",
        ops.iter()
            .take(3)
            .map(|(op, c)| format!("{op} ${c:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(total)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("cost"), Duration::from_secs(60))
        .await;
    let counter = Arc::new(Counter::default());
    let clients = moto
        .clients(Some(SharedInterceptor::new(Counting(counter.clone()))))
        .await;
    let peer = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&peer)
        .await;

    let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &config));
    let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), &config.queue_url));
    let bus = Arc::new(EventBridgeBus::new(
        clients.eventbridge.clone(),
        &config.event_bus,
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let actions = BuiltinActions::with_policy(
        store.clone(),
        bus.clone(),
        clock.clone(),
        OutboundPolicy::local(),
    )?;
    let queue_port: Arc<dyn TaskQueue> = queue.clone();
    let svc = Services {
        executions: store.clone(),
        definitions: store.clone(),
        records: store.clone(),
        queue: queue_port,
        bus,
        actions: Arc::new(actions),
        llm: Arc::new(OpenAiCompatible::new(LlmConfig::new(peer.uri(), None))?),
        clock,
        secrets: Arc::new(EnvSecrets),
    };
    let app = Arc::new(App::new(svc));
    // The executions start as webhooks do, in the webhook function, which runs pure starts.
    app.enable_pure_start();
    let engine = Engine {
        app,
        queue,
        store,
        counter,
    };

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut order_alert: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("workflows/order-alert.json"))
            .context("reading workflows/order-alert.json")?,
    )?;
    // The Slack hook goes to a local peer.
    order_alert["config"]["variables"]["salesHook"] = json!(format!("{}/sales", peer.uri()));
    if let Some(map) = order_alert.as_object_mut() {
        map.remove("$schema");
    }
    let alert = scenario(
        &engine,
        "order-alert (start -> check -> notify -> alerted), a big order",
        order_alert,
        json!({ "orderId": "A-1", "amount": 250, "customer": "Ann" }),
        20,
    )
    .await?;

    let items: Vec<u32> = (0..100).collect();
    let loop_wf = json!({
        "id": "loop-100",
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "each" },
            { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 10,
              "steps": [ { "id": "double", "type": "output", "output": "{{ item * 2 }}" } ],
              "next": "done" },
            { "id": "done", "type": "output", "output": { "count": "{{ steps.each.output | length }}" } }
        ]
    });
    let looped = scenario(
        &engine,
        "100-item loop, concurrency 10, one step per iteration",
        loop_wf,
        json!({ "items": items }),
        3,
    )
    .await?;
    println!(
        "\nsummary: order-alert ${alert:.2} and 100-item loop ${looped:.2} per 1M steps (target <= ${TARGET:.2})"
    );
    Ok(())
}

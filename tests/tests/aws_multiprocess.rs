//! Multi-process proof: 4 worker processes (`aws_worker`) share one SQS queue and one set of
//! DynamoDB tables on moto_server. 100 executions run a loop with concurrency 10 whose body
//! calls an HTTP peer once per item: 20 of them over 50 items, the others over 3 (moto_server
//! is one Python process on a 2-core machine: 100 x 50 iterations take 10+ minutes there, so
//! the full size is opt-in). Every execution must succeed, every iteration must be counted
//! exactly once, and every side effect must happen exactly once.
//!
//! `WF_MP_EXECUTIONS` (100), `WF_MP_LONG` (how many run the long loop, 20), `WF_MP_ITEMS` (50)
//! and `WF_MP_SHORT_ITEMS` (3) size the run; `WF_MP_LONG=100` is the all-long run.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use wf_app::App;
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_app::app::executions::StartRequest;
use wf_app::app::workflows::PublishMode;
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_app::services::{EnvSecrets, Services};
use wf_aws::{DynamoStore, EventBridgeBus, SqsQueue};
use wf_core::engine::CompiledWorkflow;
use wf_core::execution::{ExecutionStatus, StepStatus, TriggerInfo};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, ExecutionStore, SystemClock};
use wf_tests::moto::{Moto, unique_prefix};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const WORKERS: usize = 4;

/// Worker processes, killed (and reaped) on drop so a failing test leaves none behind.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_worker_processes_run_100_loop_executions_exactly_once() {
    let executions = env_or("WF_MP_EXECUTIONS", 100);
    let long = env_or("WF_MP_LONG", 20).min(executions);
    let long_items = env_or("WF_MP_ITEMS", 50);
    let short_items = env_or("WF_MP_SHORT_ITEMS", 3);
    // Spread the long loops evenly among the executions.
    let items_of = |run: usize| {
        if (run * long) / executions != ((run + 1) * long) / executions {
            long_items
        } else {
            short_items
        }
    };
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("mp"), Duration::from_secs(60))
        .await;
    let clients = moto.clients(None).await;

    let peer = MockServer::start().await;
    Mock::given(path_regex("^/item/.*$"))
        .respond_with(|req: &Request| {
            let n: u64 = req
                .url
                .path()
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            ResponseTemplate::new(200).set_body_json(json!({ "n": n * 2 }))
        })
        .mount(&peer)
        .await;

    let mut workers = Workers(Vec::new());
    for _ in 0..WORKERS {
        let child = Command::new(env!("CARGO_BIN_EXE_aws_worker"))
            .envs(Moto::child_env(&config))
            .env("WF_WORKER_LOOPS", "4")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a worker process");
        workers.0.push(child);
    }

    // The test process only publishes and starts; the workers do all the steps.
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
    )
    .expect("actions");
    let svc = Services {
        executions: store.clone(),
        definitions: store.clone(),
        records: store.clone(),
        queue,
        bus,
        actions: Arc::new(actions),
        llm: Arc::new(
            OpenAiCompatible::new(LlmConfig::new("http://127.0.0.1:9", None)).expect("llm"),
        ),
        clock,
        secrets: Arc::new(EnvSecrets),
    };
    let workflow: Workflow = serde_json::from_value(json!({
        "id": "fanout",
        "config": { "timeoutMs": 900000, "backoffMs": 10 },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "each" },
            { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 10,
              "steps": [
                { "id": "get", "type": "action", "action": "http.request",
                  "params": { "url": format!("{}/item/{{{{ input.run }}}}/{{{{ item }}}}", peer.uri()) },
                  "next": "keep" },
                { "id": "keep", "type": "output", "output": "{{ steps.get.output.body.n }}" }
              ],
              "next": "done" },
            { "id": "done", "type": "output", "output": { "count": "{{ steps.each.output | length }}", "all": "{{ steps.each.output }}" } }
        ]
    }))
    .expect("workflow");
    assert!(wf_core::validate::validate_workflow(&workflow).is_empty());
    let app = App::new(svc);
    let published = app
        .publish(&workflow, PublishMode::Always)
        .await
        .expect("publish");
    let compiled = CompiledWorkflow::new(workflow, published.version);
    let started_at = Instant::now();
    let mut ids = Vec::new();
    for run in 0..executions {
        let items = items_of(run);
        let input = json!({ "run": run, "items": (0..items).collect::<Vec<usize>>() });
        let started = app
            .start(
                &compiled,
                StartRequest::new(input, TriggerInfo::new("manual")),
            )
            .await
            .expect("start");
        ids.push((started.execution_id, items));
    }

    // Wait for every execution (5000 iterations through an emulator on 2 cores: minutes).
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut pending: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} of {executions} executions unfinished after 15 minutes",
            pending.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Oldest first, stopping at the first unfinished one: polling every execution each
        // second would load the emulator as much as the workers do.
        while let Some(id) = pending.first() {
            let e = store.get_execution(id).await.expect("get").expect("exists");
            if !e.status.is_terminal() {
                break;
            }
            pending.remove(0);
        }
    }
    let elapsed = started_at.elapsed();
    let iterations: usize = ids.iter().map(|(_, n)| n).sum();
    eprintln!(
        "{executions} executions ({long} x {long_items} items, the others {short_items}), \
         {iterations} iterations on {WORKERS} processes: {:.1} s",
        elapsed.as_secs_f64()
    );
    drop(workers);

    if long_items != short_items {
        let longs = ids.iter().filter(|(_, n)| *n == long_items).count();
        assert_eq!(
            longs, long,
            "{long} executions ran the {long_items}-item loop"
        );
    }
    for (id, items) in &ids {
        let items = *items;
        let expected_all: Vec<Value> = (0..items).map(|i| json!(i * 2)).collect();
        let e = store.get_execution(id).await.expect("get").expect("exists");
        assert_eq!(e.status, ExecutionStatus::Succeeded, "{id}: {e:#?}");
        assert_eq!(
            e.output,
            json!({ "count": items, "all": expected_all }),
            "{id}: every iteration's result, in item order"
        );
        let iterations = store.list_iterations(id, "each").await.expect("iterations");
        let indexes: Vec<u32> = iterations.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            indexes,
            (0..items as u32).collect::<Vec<_>>(),
            "{id}: one result per item"
        );
        let state = store
            .get_loop(id, "each")
            .await
            .expect("loop")
            .expect("exists");
        assert_eq!(
            state.remaining, 0,
            "{id}: every iteration counted, none twice"
        );
        // The counter's marker set holds each index exactly once (a set cannot hold duplicates,
        // so its size equals the number of decrements).
        let counter = clients
            .dynamodb
            .get_item()
            .table_name(&config.executions_table)
            .key("executionId", AttributeValue::S(id.clone()))
            .key("sk", AttributeValue::S("LOOP#each".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("counter")
            .item
            .expect("counter item");
        match counter.get("counted") {
            Some(AttributeValue::Ns(set)) => assert_eq!(set.len(), items, "{id}: counted markers"),
            other => panic!("{id}: no counted set: {other:?}"),
        }
        let steps = store.list_steps(id).await.expect("steps");
        let gets: Vec<_> = steps.iter().filter(|s| s.path.ends_with("/get")).collect();
        assert_eq!(gets.len(), items, "{id}: one get step per item");
        for s in gets {
            assert_eq!(
                (s.status, s.attempts),
                (StepStatus::Succeeded, 1),
                "{id}: {} ran once",
                s.path
            );
        }
    }
    // Every side effect exactly once: one request per (execution, item).
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for r in peer.received_requests().await.expect("requests") {
        *calls.entry(r.url.path().to_string()).or_default() += 1;
    }
    assert_eq!(
        calls.len(),
        iterations,
        "every item of every execution called the peer"
    );
    let repeated: Vec<_> = calls.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "side effects repeated: {repeated:?}");
}

//! What the status and trigger filters of `GET /executions` read with a long history (issue 12):
//! loads N finished executions (default 20,000) into the executions table on moto_server, of
//! which R (default 20) `failed` and R others triggered by `schedule`, spread over the history,
//! then lists each rare kind, alone and with its workflow, two ways:
//!
//! * **before**: today's path before the filter indexes: `byStart` (with a workflow,
//!   `byWorkflow`), every execution newest first, filtered client-side (forced here with a
//!   `version` filter only the rare ones match, which takes that same path);
//! * **after**: the `status` / `trigger` filters, which read `byStatus`, `byTrigger`,
//!   `byWorkflowStatus` and `byWorkflowTrigger`.
//!
//! For each it prints wall time, requests by operation and the items DynamoDB returned, and
//! estimates read units (keys-only index pages: eventually consistent, 1 unit per 8 KB, at
//! least half a unit a page; BatchGetItem: strongly consistent, 1 unit per item of at most
//! 4 KB). moto is a Python emulator: times show the shape, not AWS latency. A measurement, not
//! a test: `scripts/filter-scale [N] [R]` builds and runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::config::SharedInterceptor;
use serde_json::{Value, json};
use wf_aws::DynamoStore;
use wf_core::execution::{ExecutionQuery, ExecutionRecord, ExecutionStatus, TriggerInfo};
use wf_tests::moto::{Moto, unique_prefix};
use wf_tests::scale::{Counter, Counting, load_records, read_all};

/// Workflows the executions are spread over (a workflow filter reads 1/WORKFLOWS of history).
const WORKFLOWS: i64 = 20;
/// The version of the rare failed ones, and of the rare scheduled ones ("before" filters on it).
const FAILED_VERSION: u32 = 7;
const SCHEDULED_VERSION: u32 = 8;

fn record(i: i64, started_at: i64, kind: Kind) -> ExecutionRecord {
    let (status, trigger, version) = match kind {
        Kind::Plain => (ExecutionStatus::Succeeded, "webhook", 1),
        Kind::Failed => (ExecutionStatus::Failed, "webhook", FAILED_VERSION),
        Kind::Scheduled => (ExecutionStatus::Succeeded, "schedule", SCHEDULED_VERSION),
    };
    ExecutionRecord {
        id: ulid::Ulid::from_parts(started_at as u64, i as u128).to_string(),
        // The rare ones all in workflow wf-0, the others spread over every workflow.
        workflow_id: match kind {
            Kind::Plain => format!("wf-{}", i % WORKFLOWS),
            _ => "wf-0".into(),
        },
        version,
        status,
        trigger: TriggerInfo::new(trigger),
        input: json!({ "orderId": started_at, "amount": 120 }),
        output: json!({ "ok": true }),
        error: None,
        started_at,
        finished_at: Some(started_at + 40),
        duration_ms: Some(40),
        deadline_at: started_at + 60_000,
        rerun_of: None,
        handoff: Vec::new(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Plain,
    Failed,
    Scheduled,
}

/// Index keys and records are small here (keys ~150 bytes; records under 1 KB).
const INDEX_KEY_BYTES: f64 = 150.0;

fn report(name: &str, counter: &Counter, secs: f64, found: usize) -> Value {
    let ops = counter.take();
    let mut requests = json!({});
    let mut units = 0f64;
    let mut items_read = 0;
    for (op, (n, items)) in &ops {
        requests[op] = json!({ "requests": n, "items": items });
        items_read += items;
        units += match op.as_str() {
            "Query" => (*items as f64 * INDEX_KEY_BYTES / 8192.0).max(*n as f64 * 0.5),
            "BatchGetItem" => *items as f64,
            _ => 0.0,
        };
    }
    let total = ops.values().map(|(n, _)| n).sum::<u64>();
    println!(
        "{name:<34} {secs:>7.2} s {found:>4} found {total:>6} requests {items_read:>7} items read  ~{units:.0} read units",
    );
    json!({ "secs": secs, "found": found, "requests": total, "itemsRead": items_read, "ops": requests, "readUnits": units.round() })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("N and R are counts"))
        .collect::<anyhow::Result<_>>()?;
    let finished = args.first().copied().unwrap_or(20_000).max(1);
    let rare = args.get(1).copied().unwrap_or(20).min(finished / 2);
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("filters"), Duration::from_secs(30))
        .await;
    let counter = Arc::new(Counter::default());
    let counted = moto
        .clients(Some(SharedInterceptor::new(Counting(counter.clone()))))
        .await;
    let plain = moto.clients(None).await;
    let store = DynamoStore::new(counted.dynamodb.clone(), &config);

    // Load in BatchWriteItem requests of 25, four at a time: the items exactly as the store
    // writes finished executions (`execution_item`, with every index attribute).
    let t0 = 1_700_000_000_000i64;
    let every = (finished / rare.max(1)).max(2) as i64;
    let load = Instant::now();
    let records = (0..finished as i64).map(|i| {
        let kind = match (i % every, (i / every) < rare as i64) {
            (0, true) => Kind::Failed,
            (1, true) => Kind::Scheduled,
            _ => Kind::Plain,
        };
        record(i, t0 + i * 10, kind)
    });
    load_records(&plain.dynamodb, &config.executions_table, records).await?;
    let load_secs = load.elapsed().as_secs_f64();
    eprintln!("loaded {finished} finished executions in {load_secs:.0} s");
    counter.take();

    println!(
        "listing {rare} failed and {rare} scheduled among {finished} finished executions (moto_server, pages of 50)"
    );
    let wf = Some("wf-0".to_string());
    let cases: Vec<(&str, ExecutionQuery)> = vec![
        (
            "before: failed (byStart + filter)",
            ExecutionQuery {
                version: Some(FAILED_VERSION),
                ..ExecutionQuery::default()
            },
        ),
        (
            "after:  status=failed (byStatus)",
            ExecutionQuery {
                status: Some(ExecutionStatus::Failed),
                ..ExecutionQuery::default()
            },
        ),
        (
            "before: schedule (byStart + filter)",
            ExecutionQuery {
                version: Some(SCHEDULED_VERSION),
                ..ExecutionQuery::default()
            },
        ),
        (
            "after:  trigger=schedule (byTrigger)",
            ExecutionQuery {
                trigger: Some("schedule".into()),
                ..ExecutionQuery::default()
            },
        ),
        (
            "before: wf-0 + failed (byWorkflow)",
            ExecutionQuery {
                workflow_id: wf.clone(),
                version: Some(FAILED_VERSION),
                ..ExecutionQuery::default()
            },
        ),
        (
            "after:  wf-0 + failed (byWfStatus)",
            ExecutionQuery {
                workflow_id: wf.clone(),
                status: Some(ExecutionStatus::Failed),
                ..ExecutionQuery::default()
            },
        ),
        (
            "before: wf-0 + schedule (byWorkflow)",
            ExecutionQuery {
                workflow_id: wf.clone(),
                version: Some(SCHEDULED_VERSION),
                ..ExecutionQuery::default()
            },
        ),
        (
            "after:  wf-0 + schedule (byWfTrigger)",
            ExecutionQuery {
                workflow_id: wf.clone(),
                trigger: Some("schedule".into()),
                ..ExecutionQuery::default()
            },
        ),
    ];
    let mut results = json!({});
    for (name, query) in cases {
        let t = Instant::now();
        let found = read_all(&store, query).await?;
        anyhow::ensure!(found == rare, "{name}: found {found}, expected {rare}");
        results[name.trim()] = report(name, &counter, t.elapsed().as_secs_f64(), found);
    }
    println!(
        "FILTER_SCALE {}",
        json!({ "finished": finished, "rare": rare, "loadSecs": load_secs, "results": results })
    );
    Ok(())
}

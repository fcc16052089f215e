//! What the sweep reads with many executions retained: loads N finished executions (default
//! 100,000) and R running ones (default 100) into the executions table on moto_server, then
//! reads the running and queued executions the way the sweep does, two ways:
//!
//! * **before**: through `byStart` (every execution, newest first) with the status filtered
//!   client-side: what the sweep did before `byLive` (here forced with a `version` filter that
//!   only the running ones match, which takes the same path);
//! * **after**: the `status` filters the sweep uses (`running`, then `queued`), which the store
//!   serves from the sparse `byLive` index.
//!
//! For each it prints wall time, requests by operation and the items DynamoDB returned, and
//! estimates read units from them (keys-only index pages: eventually consistent, 1 unit per
//! 8 KB; BatchGetItem: strongly consistent, 1 unit per item of at most 4 KB). moto is a Python
//! emulator: times show the shape (what grows with history), not AWS latency.
//! `scripts/sweep-scale [N] [R]` builds and runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::config::SharedInterceptor;
use serde_json::{Value, json};
use wf_aws::DynamoStore;
use wf_core::execution::{ExecutionQuery, ExecutionRecord, ExecutionStatus, TriggerInfo};
use wf_core::ports::ExecutionStore;
use wf_tests::moto::{Moto, unique_prefix};
use wf_tests::scale::{Counter, Counting, load_records, read_all};

fn record(id: String, started_at: i64, status: ExecutionStatus, version: u32) -> ExecutionRecord {
    ExecutionRecord {
        id,
        workflow_id: format!("wf-{}", started_at % 20),
        version,
        status,
        trigger: TriggerInfo::new("webhook"),
        input: json!({ "orderId": started_at, "amount": 120 }),
        output: if status.is_terminal() {
            json!({ "ok": true })
        } else {
            Value::Null
        },
        error: None,
        started_at,
        finished_at: status.is_terminal().then_some(started_at + 40),
        duration_ms: status.is_terminal().then_some(40),
        deadline_at: started_at + 60_000,
        rerun_of: None,
        handoff: Vec::new(),
    }
}

/// Index keys and records are small here (keys ~100 bytes; records under 1 KB): a keys-only
/// index page costs 1 read unit per 8 KB (eventually consistent; at least half a unit a page),
/// a strongly consistent batch read 1 unit per record of at most 4 KB.
const INDEX_KEY_BYTES: f64 = 100.0;

fn report(name: &str, counter: &Counter, secs: f64, found: usize) -> Value {
    let ops = counter.take();
    let mut requests = json!({});
    let mut units = 0f64;
    for (op, (n, items)) in &ops {
        requests[op] = json!({ "requests": n, "items": items });
        units += match op.as_str() {
            "Query" => (*items as f64 * INDEX_KEY_BYTES / 8192.0).max(*n as f64 * 0.5),
            "BatchGetItem" => *items as f64,
            _ => 0.0,
        };
    }
    println!(
        "{name:<8} {secs:>8.2} s  {found:>6} running found  {:>8} requests  ~{units:.0} read units",
        ops.values().map(|(n, _)| n).sum::<u64>(),
    );
    for (op, (n, items)) in &ops {
        println!("           {op:<14} {n:>8} requests {items:>10} items read");
    }
    json!({ "secs": secs, "found": found, "ops": requests, "readUnits": units.round() })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("N and R are counts"))
        .collect::<anyhow::Result<_>>()?;
    let retained = args.first().copied().unwrap_or(100_000);
    let running = args.get(1).copied().unwrap_or(100);
    let moto = Moto::start();
    let config = moto
        .provision(&unique_prefix("sweep"), Duration::from_secs(30))
        .await;
    let counter = Arc::new(Counter::default());
    let counted = moto
        .clients(Some(SharedInterceptor::new(Counting(counter.clone()))))
        .await;
    let plain = moto.clients(None).await;
    let store = DynamoStore::new(counted.dynamodb.clone(), &config);

    // Load: the finished ones in BatchWriteItem requests of 25, four at a time.
    let t0 = 1_700_000_000_000i64;
    let load = Instant::now();
    let finished = (0..retained).map(|i| {
        let at = t0 + i as i64 * 10;
        let id = ulid::Ulid::from_parts(at as u64, i as u128).to_string();
        record(id, at, ExecutionStatus::Succeeded, 1)
    });
    load_records(&plain.dynamodb, &config.executions_table, finished).await?;
    // The running ones, past their deadline, through the store (they enter byLive).
    let now = t0 + retained as i64 * 10 + 1_000;
    for i in 0..running {
        let at = now + i as i64;
        let id = ulid::Ulid::from_parts(at as u64, i as u128).to_string();
        let mut r = record(id, at, ExecutionStatus::Queued, 7);
        r.deadline_at = at - 1;
        store.create_execution(&r, None).await?;
        let update = wf_core::execution::ExecutionUpdate {
            status: ExecutionStatus::Running,
            output: None,
            error: None,
            finished_at: None,
        };
        store.update_execution(&r.id, &update).await?;
    }
    let load_secs = load.elapsed().as_secs_f64();
    eprintln!("loaded {retained} finished + {running} running executions in {load_secs:.0} s");
    counter.take();

    println!("sweep reads with {retained} finished and {running} running executions (moto_server)");
    let t = Instant::now();
    let before = read_all(
        &store,
        ExecutionQuery {
            version: Some(7),
            limit: 500,
            ..ExecutionQuery::default()
        },
    )
    .await?;
    let before = report("before", &counter, t.elapsed().as_secs_f64(), before);
    let t = Instant::now();
    let mut after_found = 0;
    for status in [ExecutionStatus::Running, ExecutionStatus::Queued] {
        after_found += read_all(
            &store,
            ExecutionQuery {
                status: Some(status),
                limit: 500,
                ..ExecutionQuery::default()
            },
        )
        .await?;
    }
    let after = report("after", &counter, t.elapsed().as_secs_f64(), after_found);
    println!(
        "SWEEP_SCALE {}",
        json!({ "retained": retained, "running": running, "loadSecs": load_secs, "before": before, "after": after })
    );
    Ok(())
}

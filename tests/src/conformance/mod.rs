//! Conformance checks of the ports, generic over the traits so that every adapter (SQLite +
//! local queue, DynamoDB + SQS) runs the very same checks.
//!
//! Each check expects a fresh, empty store or queue (tests make one per check) and panics with a
//! message on the first difference. Instantiations: `tests/tests/conformance_local.rs` (SQLite) and
//! `tests/tests/conformance_aws.rs` (DynamoDB + SQS + EventBridge on moto_server).

pub mod bus;
pub mod queue;
pub mod store;

use serde_json::{Value, json};
use wf_core::execution::{ExecutionRecord, ExecutionStatus, StepRecord, StepStatus, TriggerInfo};
use wf_core::execution::{LoopState, StepTask};

/// The items of a loop of `total`: `{"i": index}`.
pub fn loop_items(total: u32) -> Vec<Value> {
    (0..total).map(|i| json!({ "i": i })).collect()
}

/// A fixed time base (2023-11-14T22:13:20Z) so that records are deterministic.
pub const T0: i64 = 1_700_000_000_000;

/// A ULID for an execution started at `ms` (ULIDs sort by time, like real execution ids).
pub fn execution_id(ms: i64) -> String {
    ulid::Ulid::from_parts(ms as u64, rand_bits()).to_string()
}

fn rand_bits() -> u128 {
    // Distinct ids in one process without a RNG dependency: a counter mixed with the address
    // space of the current time.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u128;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u128)
        .unwrap_or(0);
    (nanos << 64) | n
}

/// A unique name with `prefix` (workflow ids, collections), lowercase and URL-safe.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A queued execution of `workflow_id` started at `started_at`.
pub fn execution(id: &str, workflow_id: &str, started_at: i64) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_string(),
        workflow_id: workflow_id.to_string(),
        version: 1,
        status: ExecutionStatus::Queued,
        trigger: TriggerInfo::new("manual"),
        input: json!({ "n": 1 }),
        output: Value::Null,
        error: None,
        started_at,
        finished_at: None,
        duration_ms: None,
        deadline_at: started_at + 300_000,
        rerun_of: None,
        handoff: Vec::new(),
    }
}

/// A step record of `path` with `status` and `attempts`.
pub fn step(path: &str, status: StepStatus, attempts: u32, lease_until: Option<i64>) -> StepRecord {
    StepRecord {
        path: path.to_string(),
        step_type: "action".to_string(),
        status,
        attempts,
        input: json!({ "url": "https://example.com" }),
        output: Value::Null,
        error: None,
        started_at: T0,
        finished_at: None,
        duration_ms: None,
        lease_until,
        next: None,
        lease_lost: 0,
    }
}

/// A loop counter over `total` items.
pub fn loop_state(total: u32, concurrency: u32) -> LoopState {
    LoopState {
        total,
        remaining: total,
        concurrency,
        failed: false,
    }
}

pub fn task(execution_id: &str, path: &str, attempt: u32) -> StepTask {
    StepTask {
        execution_id: execution_id.to_string(),
        path: path.to_string(),
        attempt,
    }
}

/// A string of `bytes` bytes (to go over item limits).
pub fn big_string(bytes: usize) -> String {
    "x".repeat(bytes)
}

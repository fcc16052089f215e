//! What a store returns for a record it cannot decode (written by an older build, nested past
//! what the decoder reads, edited by hand): a stand-in that says so, instead of an error that
//! would fail the whole list, the execution's page and every sweep.
//!
//! Listing executions, listing an execution's steps and reading one execution never fail
//! because of one such record: each store maps it to a stand-in that is `failed` with error
//! code [`DAMAGED`], naming the item and the decoder's message. The stored bytes are left as
//! they are (to be inspected); terminal stand-ins mean the worker acknowledges the execution's
//! tasks and the sweeper passes over it. Writes to a damaged record still fail (the store
//! cannot read what it would change), and so does `get_step` (the worker's own read: its task
//! then goes the poisoned-task way, see `App::task_failed`).

use serde_json::{Value, json};

use crate::error::StepError;
use crate::execution::{ExecutionRecord, ExecutionStatus, StepRecord, StepStatus, TriggerInfo};

/// The error code of a record that cannot be decoded.
pub const DAMAGED: &str = "damaged";

/// The error of a stand-in: the item and the decoder's message.
pub fn damaged_error(item: &str, reason: &str) -> StepError {
    StepError::new(
        DAMAGED,
        format!("the stored record {item} cannot be decoded ({reason}); it is shown as failed"),
    )
    .with_details(json!({ "item": item, "reason": reason }))
}

/// What the store still knows of an execution whose record cannot be decoded: its id, and the
/// scalars the store keeps apart for indexes (workflow, version, start).
#[derive(Debug, Clone, Default)]
pub struct DamagedExecution<'a> {
    pub id: &'a str,
    pub workflow_id: &'a str,
    pub version: u32,
    pub started_at: i64,
    pub trigger: &'a str,
}

/// The stand-in of an execution record that cannot be decoded: `failed` with a `damaged` error.
pub fn damaged_execution(known: &DamagedExecution<'_>, reason: &str) -> ExecutionRecord {
    let item = format!("{}/{}", known.id, crate::keys::EXEC_SK);
    ExecutionRecord {
        id: known.id.to_string(),
        workflow_id: known.workflow_id.to_string(),
        version: known.version,
        status: ExecutionStatus::Failed,
        trigger: TriggerInfo::new(if known.trigger.is_empty() {
            "unknown"
        } else {
            known.trigger
        }),
        input: Value::Null,
        output: Value::Null,
        error: Some(damaged_error(&item, reason)),
        started_at: known.started_at,
        finished_at: None,
        duration_ms: None,
        deadline_at: known.started_at,
        rerun_of: None,
        handoff: Vec::new(),
    }
}

/// The stand-in of a step record that cannot be decoded (`path` from its key).
pub fn damaged_step(execution_id: &str, path: &str, started_at: i64, reason: &str) -> StepRecord {
    let item = format!("{execution_id}/{}", crate::keys::step_sk(path));
    StepRecord {
        path: path.to_string(),
        step_type: "unknown".to_string(),
        status: StepStatus::Failed,
        attempts: 0,
        input: Value::Null,
        output: Value::Null,
        error: Some(damaged_error(&item, reason)),
        started_at,
        finished_at: None,
        duration_ms: None,
        lease_until: None,
        next: None,
        lease_lost: 0,
    }
}

/// The start time (ms) of a ULID execution id (its first 10 characters, Crockford base 32):
/// where a damaged step sorts when its own start cannot be read.
pub fn ulid_time_ms(id: &str) -> Option<i64> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let head = id.get(..10)?;
    let mut ms: i64 = 0;
    for c in head.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        ms = ms.checked_mul(32)?.checked_add(digit as i64)?;
    }
    Some(ms)
}

/// Whether a record is a stand-in for one that cannot be decoded.
pub fn is_damaged(error: Option<&StepError>) -> bool {
    error.is_some_and(|e| e.code == DAMAGED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_terminal_and_name_the_item() {
        let known = DamagedExecution {
            id: "01H",
            workflow_id: "wf",
            version: 2,
            started_at: 5,
            trigger: "webhook",
        };
        let r = damaged_execution(&known, "recursion limit exceeded");
        assert!(r.status.is_terminal());
        assert!(is_damaged(r.error.as_ref()));
        let e = r.error.unwrap();
        assert!(e.message.contains("01H/EXEC") && e.message.contains("recursion limit"));
        assert_eq!(r.trigger.kind, "webhook");
        let s = damaged_step("01H", "each[3]/a", 5, "bad");
        assert_eq!(s.status, StepStatus::Failed);
        assert!(s.error.unwrap().message.contains("01H/STEP#each[3]/a"));
        assert_eq!(
            ulid_time_ms("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            Some(1_469_922_850_259)
        );
        assert_eq!(ulid_time_ms("short"), None);
    }
}

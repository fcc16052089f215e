//! The step records of an execution's pure start, kept in its `EXEC` item.
//!
//! An execution whose first steps are pure (start, conditions, outputs) is created with their
//! records (`ExecutionStore::create_execution_with_steps`). As `STEP#` items they cost one
//! write each on top of the `EXEC` put; written inside the `EXEC` item (`staged`, the JSON
//! text of the list) they cost nothing more, as long as the item with them still fits in the
//! write units it costs without them (DynamoDB bills a write by started KB of the item). That
//! is the rule ([`fits`]): the records ride in the item when they are free, and are `STEP#`
//! items otherwise (the port's in-order default). Later writes of the `EXEC` item (its status)
//! are billed by its size too, so the records can add at most one unit to each of those; they
//! save at least one per record.
//!
//! Staged records are written with the item, in the same request, and never change afterwards.
//! Every read of step records merges them: a `STEP#` item of the same path supersedes the
//! staged record (a staged `retrying` record is replaced by its next attempt's claim, which is
//! a `STEP#` item), and a claim of a staged path follows the port's rule against the staged
//! record. A process keeps the staged records of the executions it read (they cannot change;
//! [`STAGED_REMEMBERED_BYTES`] of their text at most), so a worker that read the execution
//! reads nothing more to know them.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wf_core::execution::{StepRecord, StepStatus};
use wf_core::{StepError, StoreError, StoreResult};

use super::DynamoStore;
use super::items::{Item, get_s, s};
use super::keys::{EXEC_SK, EXECUTIONS_PK, SK};
use crate::error::SdkResultExt;

/// Bytes of staged record text a process keeps (about a thousand executions' worth).
pub(crate) const STAGED_REMEMBERED_BYTES: usize = 1024 * 1024;

/// The attribute of the `EXEC` item that holds the staged records.
pub(crate) const STAGED_ATTR: &str = "staged";

/// About what the terminal update of an `EXEC` item adds to it, its output aside (the status
/// and its index keys `statusShard` and `workflowStatus`, `finishedAt`, `durationMs`; the live
/// index key goes): 65 bytes measured for order-alert (`WF_AWS_COST_TRACE=1 bash
/// scripts/aws-cost`).
pub(crate) const TERMINAL_GROWTH: usize = 64;

/// Write units DynamoDB bills for an item of `bytes` bytes: one per started KB.
fn write_units(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

/// Whether the records may ride in the item: the item with them (`with` bytes) costs the
/// write units of the item without them (`bare` bytes), also once it has grown by `growth`
/// (what its later updates add: [`TERMINAL_GROWTH`] while it is not terminal). The records are
/// less than a unit then, so a later update whose output does not fit in what is left costs
/// one unit more, at most: never more than the records' own puts would have.
pub(crate) fn fits(bare: usize, with: usize, growth: usize) -> bool {
    write_units(with) == write_units(bare)
        && write_units(with + growth) == write_units(bare + growth)
}

/// A staged record as the `staged` text holds it: the step record with its times as
/// milliseconds and nothing written that can be derived or is absent (the API's form spells
/// times out and writes `null`s, about 40 bytes more per record; a pure step's output is
/// often its input, a start's or an output step's, and its `finishedAt` is `startedAt` plus
/// `durationMs`). Those bytes decide whether the records fit ([`fits`]).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Staged {
    path: String,
    #[serde(rename = "type")]
    step_type: String,
    status: StepStatus,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    input: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    output: Value,
    /// The output is the input (not written twice).
    #[serde(default, skip_serializing_if = "is_false")]
    output_is_input: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<StepError>,
    started_at: i64,
    /// Written only when it is not `startedAt + durationMs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration_ms: Option<i64>,
    /// No `finishedAt` although there is a `durationMs`.
    #[serde(default, skip_serializing_if = "is_false")]
    unfinished: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    lease_lost: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl From<&StepRecord> for Staged {
    fn from(r: &StepRecord) -> Self {
        let output_is_input = !r.output.is_null() && r.output == r.input;
        let derived_finish = r.duration_ms.map(|d| r.started_at + d);
        Self {
            path: r.path.clone(),
            step_type: r.step_type.clone(),
            status: r.status,
            attempts: r.attempts,
            input: r.input.clone(),
            output: if output_is_input {
                Value::Null
            } else {
                r.output.clone()
            },
            output_is_input,
            error: r.error.clone(),
            started_at: r.started_at,
            finished_at: r.finished_at.filter(|f| Some(*f) != derived_finish),
            duration_ms: r.duration_ms,
            unfinished: r.finished_at.is_none() && r.duration_ms.is_some(),
            lease_until: r.lease_until,
            next: r.next.clone(),
            lease_lost: r.lease_lost,
        }
    }
}

impl From<Staged> for StepRecord {
    fn from(r: Staged) -> Self {
        let derived_finish = r.duration_ms.map(|d| r.started_at + d);
        Self {
            path: r.path,
            step_type: r.step_type,
            status: r.status,
            attempts: r.attempts,
            output: if r.output_is_input {
                r.input.clone()
            } else {
                r.output
            },
            input: r.input,
            error: r.error,
            started_at: r.started_at,
            finished_at: if r.unfinished {
                None
            } else {
                r.finished_at.or(derived_finish)
            },
            duration_ms: r.duration_ms,
            lease_until: r.lease_until,
            next: r.next,
            lease_lost: r.lease_lost,
        }
    }
}

/// The `staged` attribute's text for `steps`.
pub(crate) fn encode(steps: &[StepRecord], execution_id: &str) -> StoreResult<String> {
    let staged: Vec<Staged> = steps.iter().map(Staged::from).collect();
    serde_json::to_string(&staged).map_err(|e| {
        StoreError::Permanent(format!(
            "cannot encode the staged steps of {execution_id}: {e}"
        ))
    })
}

/// The staged records an `EXEC` item holds (none when it has no `staged` attribute). A text
/// that does not decode (an item edited by hand) is logged and read as no records.
pub(crate) fn of_item(item: &Item, execution_id: &str) -> Vec<StepRecord> {
    let Some(text) = get_s(item, STAGED_ATTR) else {
        return Vec::new();
    };
    match serde_json::from_str::<Vec<Staged>>(text) {
        Ok(staged) => staged.into_iter().map(StepRecord::from).collect(),
        Err(e) => {
            tracing::warn!(execution_id, error = %e, "damaged staged step records: left out");
            Vec::new()
        }
    }
}

/// Whether a claim of `record` may replace `stored` at `now`: the port's rule
/// (`ExecutionStore::claim_step`), as `claim_step`'s condition states it for `STEP#` items.
pub(crate) fn claim_allowed(stored: &StepRecord, record: &StepRecord, now: i64) -> bool {
    match stored.status {
        StepStatus::Running => {
            stored.lease_until.is_none_or(|until| until <= now)
                && stored.attempts <= record.attempts
        }
        StepStatus::Retrying => stored.attempts < record.attempts,
        _ => false,
    }
}

/// `items` (records read from `STEP#` items) with the staged records of paths no item has.
pub(crate) fn merge(mut items: Vec<StepRecord>, staged: &[StepRecord]) -> Vec<StepRecord> {
    let stored: HashSet<&str> = items.iter().map(|r| r.path.as_str()).collect();
    let missing: Vec<StepRecord> = staged
        .iter()
        .filter(|r| !stored.contains(r.path.as_str()))
        .cloned()
        .collect();
    items.extend(missing);
    items
}

impl DynamoStore {
    /// Keep the staged records of an `EXEC` item this process read (whole, or the attribute),
    /// weighing the bytes of their text; returns them.
    pub(super) fn remember_staged(&self, execution_id: &str, item: &Item) -> Arc<Vec<StepRecord>> {
        let staged = Arc::new(of_item(item, execution_id));
        let weight = get_s(item, STAGED_ATTR).map_or(0, str::len) + 1;
        self.staged_steps
            .put_weighing(execution_id.to_string(), staged.clone(), weight);
        staged
    }

    /// The staged records of an execution: kept ones, else read from its `EXEC` item (only the
    /// attribute). None staged when there is no such execution.
    pub(super) async fn staged_records(
        &self, execution_id: &str,
    ) -> StoreResult<Arc<Vec<StepRecord>>> {
        if let Some(known) = self.staged_steps.get(execution_id) {
            return Ok(known);
        }
        let mut key = Item::new();
        key.insert(EXECUTIONS_PK.into(), s(execution_id));
        key.insert(SK.into(), s(EXEC_SK));
        let out = self
            .client
            .get_item()
            .table_name(&self.executions)
            .set_key(Some(key))
            .projection_expression("#staged")
            .expression_attribute_names("#staged", STAGED_ATTR)
            .consistent_read(true)
            .send()
            .await
            .store_err("get staged steps")?;
        Ok(match out.item {
            Some(item) => self.remember_staged(execution_id, &item),
            None => Arc::new(Vec::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_core::execution::StepRecord;

    fn record(path: &str, status: StepStatus, attempts: u32, lease: Option<i64>) -> StepRecord {
        StepRecord {
            path: path.into(),
            step_type: "condition".into(),
            status,
            attempts,
            input: serde_json::Value::Null,
            output: serde_json::Value::Null,
            error: None,
            started_at: 0,
            finished_at: None,
            duration_ms: None,
            lease_until: lease,
            next: None,
            lease_lost: 0,
        }
    }

    #[test]
    fn records_ride_along_only_when_they_cost_no_write_unit() {
        assert!(fits(400, 1024, 0));
        assert!(!fits(400, 1025, 0));
        assert!(fits(1500, 2048, 0));
        assert!(!fits(1024, 1100, 0));
        assert!(fits(0, 1, 0), "an item costs one unit at least");
        assert!(fits(400, 960, 64));
        assert!(
            !fits(400, 961, 64),
            "room is left for what the terminal update adds"
        );
        assert!(
            fits(1000, 1010, 64),
            "bare and with cross the same boundary"
        );
    }

    #[test]
    fn staged_records_read_back_as_written_and_smaller_than_the_api_form() {
        let mut r = record("check", StepStatus::Succeeded, 1, None);
        r.input = serde_json::json!({ "amount": 250 });
        r.output = serde_json::json!({ "branch": 0 });
        r.started_at = 1_796_536_771_406;
        r.finished_at = Some(1_796_536_771_409);
        r.duration_ms = Some(3);
        r.next = Some("notify".into());
        let mut failed = record("notify", StepStatus::Retrying, 2, Some(7));
        failed.error = Some(StepError::new("http.status", "503"));
        failed.lease_lost = 1;
        let mut start = record("start", StepStatus::Succeeded, 1, None);
        start.input = serde_json::json!({ "orderId": "A-1" });
        start.output = start.input.clone();
        start.finished_at = Some(5);
        start.duration_ms = Some(0);
        let mut odd = record("odd", StepStatus::Succeeded, 1, None);
        odd.duration_ms = Some(4);
        odd.finished_at = None;
        let mut late = record("late", StepStatus::Succeeded, 1, None);
        late.duration_ms = Some(4);
        late.finished_at = Some(9);
        let steps = vec![r, failed, start, odd, late];
        let text = encode(&steps, "e1").expect("encode");
        assert_eq!(
            text.matches("A-1").count(),
            1,
            "an output that is the input: {text}"
        );
        let mut item = Item::new();
        item.insert(STAGED_ATTR.into(), s(text.clone()));
        assert_eq!(of_item(&item, "e1"), steps);
        let api = serde_json::to_string(&steps).expect("api form");
        assert!(
            text.len() + 60 < api.len(),
            "{} vs {}",
            text.len(),
            api.len()
        );
    }

    #[test]
    fn a_damaged_staged_text_reads_as_no_records() {
        let mut item = Item::new();
        item.insert(STAGED_ATTR.into(), s("[{\"path\": 1"));
        assert!(of_item(&item, "e1").is_empty());
        assert!(of_item(&Item::new(), "e1").is_empty());
    }

    #[test]
    fn a_staged_record_is_claimed_as_a_stored_one_would_be() {
        let next = record("a", StepStatus::Running, 2, Some(100));
        let retrying = record("a", StepStatus::Retrying, 1, None);
        assert!(claim_allowed(&retrying, &next, 0));
        assert!(!claim_allowed(
            &retrying,
            &record("a", StepStatus::Running, 1, None),
            0
        ));
        let done = record("a", StepStatus::Succeeded, 1, None);
        assert!(!claim_allowed(&done, &next, 0));
        let held = record("a", StepStatus::Running, 1, Some(50));
        assert!(!claim_allowed(&held, &next, 49));
        assert!(claim_allowed(&held, &next, 50));
    }

    #[test]
    fn a_step_item_supersedes_the_staged_record_of_its_path() {
        let item = record("a", StepStatus::Running, 2, Some(9));
        let staged = vec![
            record("a", StepStatus::Retrying, 1, None),
            record("b", StepStatus::Succeeded, 1, None),
        ];
        let merged = merge(vec![item.clone()], &staged);
        assert_eq!(merged, vec![item, staged[1].clone()]);
    }
}

//! Execution and step records: what the store keeps and the API shows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StepError;
use crate::path::{StepPath, compare_paths};
use crate::time_fmt::{rfc3339, rfc3339_opt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "timed_out" => Self::TimedOut,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Claimed by a worker whose lease runs until `leaseUntil`.
    Running,
    /// The attempt failed; attempt `attempts + 1` is queued after the backoff.
    Retrying,
    Succeeded,
    Failed,
    TimedOut,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::TimedOut)
    }
}

/// How an execution was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TriggerInfo {
    /// `webhook`, `schedule`, `event`, `manual`, `test`, `rerun` (`unknown` for a record that
    /// was damaged in the store).
    #[serde(rename = "type")]
    pub kind: String,
    /// Trigger-specific facts: event id and type, scheduled time, idempotency key, rerun source.
    #[serde(flatten, default)]
    pub details: serde_json::Map<String, Value>,
}

impl TriggerInfo {
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
            details: serde_json::Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// Declares a record of a run (an execution, a step): the fields in the first braces, then the
/// fields every run has in the same form — `output`, `error`, `startedAt`, `finishedAt`
/// (RFC 3339) and `durationMs` — then the fields in the second braces (in that order in JSON).
/// One list, so an execution and a step cannot come to say them differently.
macro_rules! run_record {
    ($(#[$meta:meta])* pub struct $name:ident { $($before:tt)* } { $($after:tt)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($before)*
            #[serde(default)]
            pub output: Value,
            #[serde(default)]
            pub error: Option<StepError>,
            #[serde(with = "rfc3339")]
            #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
            pub started_at: i64,
            #[serde(with = "rfc3339_opt", default)]
            #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
            pub finished_at: Option<i64>,
            #[serde(default)]
            pub duration_ms: Option<i64>,
            $($after)*
        }
    };
}

run_record! {
    /// The `EXEC` item: one run of one pinned version of a workflow.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "camelCase")]
    pub struct ExecutionRecord {
        /// ULID: sortable by start time.
        pub id: String,
        pub workflow_id: String,
        /// The published version this execution runs (a test run of a draft runs a snapshot
        /// version, at least 2^31).
        pub version: u32,
        pub status: ExecutionStatus,
        pub trigger: TriggerInfo,
        pub input: Value,
    }
    // ... then output, error, startedAt, finishedAt, durationMs (`run_record!`), then:
    {
        /// `startedAt + timeoutMs`: past it the execution is `timed_out`.
        #[serde(with = "rfc3339")]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        pub deadline_at: i64,
        /// The execution this one re-runs, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rerun_of: Option<String>,
        /// The tasks its start sent to the queue when the start ran the execution's pure
        /// steps where the trigger arrived and created it `running` with their records. The
        /// execution is stored before they are sent, so a task whose step has no record of
        /// that attempt yet may have been lost with the process that was to send it: the
        /// sweeper, and a repeat of the start (a duplicate), send it again
        /// ([`HandedOff::to_send_again`]). Empty for an execution created `queued` (its start
        /// task is sent again while it is queued).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub handoff: Vec<HandedOff>,
    }
}

/// A task an execution's start sent to the queue: see [`ExecutionRecord::handoff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HandedOff {
    pub path: String,
    pub attempt: u32,
    /// How long the queue held it back (a pure step's retry backoff), in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub delay_ms: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl HandedOff {
    /// Whether this task is `grace_ms` past the time it was due (the execution's start plus
    /// its delay) at `now`.
    pub fn overdue(&self, started_at: i64, now: i64, grace_ms: i64) -> bool {
        now - (started_at + self.delay_ms as i64) >= grace_ms
    }

    /// The handed-off tasks of `execution` to send again at `now`: those whose step has no
    /// record of their attempt among `records` (no worker took them), once they are `grace_ms`
    /// past the time they were due (so a task still on its way is not sent twice for nothing;
    /// sending twice is harmless, the second is acknowledged or replays). Sent without delay.
    pub fn to_send_again(
        execution: &ExecutionRecord, records: &[StepRecord], now: i64, grace_ms: i64,
    ) -> Vec<(StepTask, u64)> {
        execution
            .handoff
            .iter()
            .filter(|h| {
                let taken = records
                    .iter()
                    .any(|r| r.path == h.path && r.attempts >= h.attempt);
                !taken && h.overdue(execution.started_at, now, grace_ms)
            })
            .map(|h| {
                let task = StepTask {
                    execution_id: execution.id.clone(),
                    path: h.path.clone(),
                    attempt: h.attempt,
                };
                (task, 0)
            })
            .collect()
    }
}

impl ExecutionRecord {
    /// Whether `self` (a stored record) is the same execution as `new`, one being (re-)created
    /// with the same id: same workflow, version, start, trigger and input. A redelivered create
    /// is; anything else with that id is a conflict. Status and results may differ (the stored
    /// execution may have run since).
    pub fn same_execution(&self, new: &ExecutionRecord) -> bool {
        self.workflow_id == new.workflow_id
            && self.version == new.version
            && self.started_at == new.started_at
            && self.trigger == new.trigger
            && self.input == new.input
    }
}

/// A change to an execution's status, applied only while the execution is not terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionUpdate {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<StepError>,
    pub finished_at: Option<i64>,
}

impl ExecutionRecord {
    /// Apply `update` as every store does: only while the execution is not terminal (returns
    /// whether it applied); a finish sets `durationMs` from `startedAt`.
    pub fn apply(&mut self, update: &ExecutionUpdate) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        self.status = update.status;
        if let Some(output) = &update.output {
            self.output = output.clone();
        }
        if let Some(error) = &update.error {
            self.error = Some(error.clone());
        }
        if let Some(finished_at) = update.finished_at {
            self.finished_at = Some(finished_at);
            self.duration_ms = Some(finished_at - self.started_at);
        }
        true
    }

    /// The update that brings a queued copy of this record to this record's status and
    /// result.
    pub fn as_update(&self) -> ExecutionUpdate {
        ExecutionUpdate {
            status: self.status,
            output: Some(self.output.clone()),
            error: self.error.clone(),
            finished_at: self.finished_at,
        }
    }
}

run_record! {
    /// The `STEP#<path>` item: one step of one execution (one per loop iteration inside loops).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "camelCase")]
    pub struct StepRecord {
        pub path: String,
        #[serde(rename = "type")]
        pub step_type: String,
        pub status: StepStatus,
        /// Attempts made so far (the current one included).
        pub attempts: u32,
        /// The resolved (rendered) input of the step, secrets redacted.
        #[serde(default)]
        pub input: Value,
    }
    // ... then output, error, startedAt, finishedAt, durationMs (`run_record!`), then:
    {
        /// While `running`: the claim is valid until then; after it another worker may claim.
        #[serde(with = "rfc3339_opt", default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
        pub lease_until: Option<i64>,
        /// Where the execution went next (for condition: the chosen edge; for failures: `onError`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next: Option<String>,
        /// How many times a worker running this step was lost: its lease expired without a result
        /// (a crash, an out-of-memory kill, a Lambda timeout) and another worker took the step
        /// over. A takeover is not an attempt; past [`crate::engine::MAX_LEASE_LOSSES`] the step
        /// fails with `step.lost`.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub lease_lost: u32,
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Sort step records into the order they started: what every store's `list_steps` returns
/// ([`crate::ports::ExecutionStore::list_steps`]).
///
/// * by `startedAt`;
/// * among steps that started in the same millisecond (pure steps run inline, one after the
///   other), a step after the one whose `next` led to it (`start` before `check` when
///   `start.next` is `check`), so that the list reads in execution order;
/// * then by path, loop indexes compared as numbers ([`compare_paths`]: `each[2]/x` before
///   `each[10]/x`, a loop before its iterations' steps).
///
/// Deterministic: the same records always come out in the same order, whatever order the
/// store read them in.
pub fn sort_steps<T: StartOrder>(steps: &mut [T]) {
    steps.sort_by(|a, b| {
        a.started_at()
            .cmp(&b.started_at())
            .then_with(|| compare_paths(a.path(), b.path()))
    });
    let mut start = 0;
    while start < steps.len() {
        let at = steps[start].started_at();
        let len = steps[start..]
            .iter()
            .take_while(|s| s.started_at() == at)
            .count();
        if len > 1 {
            order_by_next(&mut steps[start..start + len]);
        }
        start += len;
    }
}

/// Reorder steps that started in the same millisecond (sorted by path) so that a step comes
/// after the one whose `next` names it; otherwise path order is kept.
fn order_by_next<T: StartOrder>(group: &mut [T]) {
    let n = group.len();
    let index: HashMap<&str, usize> = group
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path(), i))
        .collect();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut predecessors = vec![0usize; n];
    for (i, step) in group.iter().enumerate() {
        // `next` names a step of the same scope: the sibling of this path.
        let Some(next) = step
            .next()
            .and_then(|next| Some(StepPath::parse(step.path())?.sibling(next).to_string()))
        else {
            continue;
        };
        if let Some(&j) = index.get(next.as_str())
            && j != i
        {
            successors[i].push(j);
            predecessors[j] += 1;
        }
    }
    if predecessors.iter().all(|&p| p == 0) {
        return;
    }
    // Kahn's algorithm, taking the first ready step in path order; a cycle (not possible in a
    // valid execution) falls back to path order.
    let mut placed = vec![false; n];
    let mut rank = vec![0usize; n];
    for r in 0..n {
        let i = (0..n)
            .find(|&i| !placed[i] && predecessors[i] == 0)
            .or_else(|| (0..n).find(|&i| !placed[i]))
            .unwrap_or(r);
        placed[i] = true;
        rank[i] = r;
        for &j in &successors[i] {
            predecessors[j] = predecessors[j].saturating_sub(1);
        }
    }
    let by_path: HashMap<String, usize> = group
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path().to_string(), rank[i]))
        .collect();
    group.sort_by_key(|s| by_path[s.path()]);
}

/// What the start order ([`sort_steps`]) reads of a step: a whole [`StepRecord`], or the
/// [`StepKey`] a store lists to page step records without reading them all.
pub trait StartOrder {
    fn path(&self) -> &str;
    fn started_at(&self) -> i64;
    fn next(&self) -> Option<&str>;
}

/// The part of a step record its place in the start order depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepKey {
    pub path: String,
    pub started_at: i64,
    pub next: Option<String>,
}

/// `StartOrder` for types with the fields `path`, `started_at` and `next`.
macro_rules! start_order_from_fields {
    ($($t:ty),+) => {$(
        impl StartOrder for $t {
            fn path(&self) -> &str {
                &self.path
            }
            fn started_at(&self) -> i64 {
                self.started_at
            }
            fn next(&self) -> Option<&str> {
                self.next.as_deref()
            }
        }
    )+};
}
start_order_from_fields!(StepRecord, StepKey);

impl From<&StepRecord> for StepKey {
    fn from(r: &StepRecord) -> Self {
        StepKey {
            path: r.path.clone(),
            started_at: r.started_at,
            next: r.next.clone(),
        }
    }
}

/// Step records an answer carries at most: a page ends at this count, or before the records
/// pass [`STEP_PAGE_BYTES`] of JSON, whichever comes first (Lambda answers at most 6 MB).
pub const STEP_PAGE_SIZE: usize = 200;
/// JSON bytes of step records a page stops before (it holds at least one record).
pub const STEP_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// A page of step records in start order, and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StepPage {
    pub items: Vec<StepRecord>,
    /// The `cursor` of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// The keys of one page: `keys` in start order, the page after the step `after` (a path; the
/// first page when None), at most `limit` of them. None when `after` is no step of these keys
/// (a cursor of another execution).
pub fn step_page_keys<'k>(
    keys: &'k [StepKey], after: Option<&str>, limit: usize,
) -> Option<&'k [StepKey]> {
    let from = match after {
        None => 0,
        Some(path) => keys.iter().position(|k| k.path == path)? + 1,
    };
    Some(&keys[from..(from + limit).min(keys.len())])
}

/// The `LOOP#<path>` item: a loop's join counter, how many iterations are still to count.
/// Small and of fixed size whatever the item count: the items themselves are stored once, in
/// pages of [`crate::keys::LOOP_ITEMS_PER_PAGE`] (`LOOP#<path>#items#<page>`), and an iteration
/// reads only its own page, so the work per iteration does not grow with the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopState {
    pub total: u32,
    pub remaining: u32,
    pub concurrency: u32,
    /// Set when an iteration failed: the other iterations stop.
    #[serde(default)]
    pub failed: bool,
}

/// Outcome of counting one iteration (the ITER marker put and the decrement are one transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterationCount {
    /// Counted now: the loop's state as this count left it (`remaining` after the decrement),
    /// so the caller does not read it again.
    Counted(LoopState),
    /// This iteration had been counted before (a redelivery).
    AlreadyCounted,
}

/// The unit of work carried by the queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTask {
    pub execution_id: String,
    pub path: String,
    pub attempt: u32,
}

/// An execution with its step records, as the API and `wf run` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    #[serde(flatten)]
    pub execution: ExecutionRecord,
    /// The step records in start order: all of them, or the first page when `stepsCursor` is
    /// set (`GET /executions/{id}/steps?cursor=` has the rest).
    pub steps: Vec<StepRecord>,
    /// Where the step records go on; null when `steps` has them all.
    #[serde(default)]
    pub steps_cursor: Option<String>,
}

/// A dedupe key kept with an execution for 24 h: a repeat answers with the first execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKey {
    /// `<workflowId>#<key>`.
    pub key: String,
    pub expires_at: i64,
}

/// Outcome of creating an execution with a dedupe key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The key was seen before; this is the first execution's id.
    Duplicate(String),
}

/// Outcome of a conditional claim of a step.
// Returned once per claim and matched at once; boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    Claimed,
    /// The claim's condition failed; this is the record as it stands.
    Held(StepRecord),
}

/// Filters and cursor for listing executions (newest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionQuery {
    pub workflow_id: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub trigger: Option<String>,
    pub version: Option<u32>,
    pub started_after: Option<i64>,
    pub started_before: Option<i64>,
    pub limit: usize,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

/// A page of executions, newest first.
pub type ExecutionPage = crate::keys::Page<ExecutionRecord>;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn step_pages_follow_the_keys_after_the_cursor_path() {
        let keys: Vec<StepKey> = ["start", "each", "each[0]/x", "done"]
            .iter()
            .enumerate()
            .map(|(i, p)| StepKey {
                path: p.to_string(),
                started_at: i as i64,
                next: None,
            })
            .collect();
        let paths = |page: Option<&[StepKey]>| -> Option<Vec<String>> {
            page.map(|ks| ks.iter().map(|k| k.path.clone()).collect())
        };
        assert_eq!(
            paths(step_page_keys(&keys, None, 2)),
            Some(vec!["start".into(), "each".into()])
        );
        assert_eq!(
            paths(step_page_keys(&keys, Some("each"), 5)),
            Some(vec!["each[0]/x".into(), "done".into()])
        );
        assert_eq!(paths(step_page_keys(&keys, Some("done"), 5)), Some(vec![]));
        assert_eq!(
            paths(step_page_keys(&keys, Some("other"), 5)),
            None,
            "not a step of these"
        );
    }

    fn step(path: &str, started_at: i64) -> StepRecord {
        StepRecord {
            path: path.into(),
            step_type: "action".into(),
            status: StepStatus::Succeeded,
            attempts: 1,
            input: Value::Null,
            output: Value::Null,
            error: None,
            started_at,
            finished_at: None,
            duration_ms: None,
            lease_until: None,
            next: None,
            lease_lost: 0,
        }
    }

    #[test]
    fn steps_sort_by_start_then_path_with_numeric_indexes() {
        let mut steps = vec![
            step("start", 10),
            step("notify", 30),
            step("check", 20),
            step("each[10]/x", 40),
            step("each[2]/x", 40),
            step("each", 35),
            step("done", 50),
            step("each[1]/x", 45),
        ];
        sort_steps(&mut steps);
        assert_eq!(
            paths(&steps),
            [
                "start",
                "check",
                "notify",
                "each",
                "each[2]/x",
                "each[10]/x",
                "each[1]/x",
                "done"
            ]
        );
    }

    #[test]
    fn steps_of_the_same_millisecond_follow_their_next() {
        // Pure steps run inline in the same millisecond: `check` sorts before `start` by path,
        // but `start` led to it.
        let with_next = |path: &str, at: i64, next: Option<&str>| StepRecord {
            next: next.map(str::to_string),
            ..step(path, at)
        };
        let mut steps = vec![
            with_next("alerted", 20, None),
            with_next("check", 10, Some("notify")),
            with_next("start", 10, Some("check")),
            with_next("notify", 10, Some("alerted")),
            with_next("each[1]/b", 30, None),
            with_next("each[1]/a", 30, Some("b")),
            with_next("each[0]/b", 30, None),
            with_next("each[0]/a", 30, Some("b")),
            with_next("z", 40, None),
            with_next("y", 40, Some("nowhere")),
        ];
        sort_steps(&mut steps);
        assert_eq!(
            paths(&steps),
            [
                "start",
                "check",
                "notify",
                "alerted",
                "each[0]/a",
                "each[0]/b",
                "each[1]/a",
                "each[1]/b",
                "y",
                "z"
            ]
        );
        // The same records in any order come out the same.
        let expected = steps.clone();
        steps.reverse();
        sort_steps(&mut steps);
        assert_eq!(steps, expected);
        // `next` of another scope does not count: `each[1]/a` names `each[1]/b`, not `each[0]/b`.
        let mut scoped = vec![
            with_next("each[0]/b", 5, None),
            with_next("each[1]/a", 5, Some("b")),
        ];
        sort_steps(&mut scoped);
        assert_eq!(paths(&scoped), ["each[0]/b", "each[1]/a"]);
    }

    fn paths(steps: &[StepRecord]) -> Vec<&str> {
        steps.iter().map(|s| s.path.as_str()).collect()
    }

    #[test]
    fn same_execution_ignores_progress_but_not_identity() {
        let stored = ExecutionRecord {
            id: "e1".into(),
            workflow_id: "wf".into(),
            version: 1,
            status: ExecutionStatus::Running,
            trigger: TriggerInfo::new("manual"),
            input: json!({ "n": 1 }),
            output: Value::Null,
            error: None,
            started_at: 10,
            finished_at: None,
            duration_ms: None,
            deadline_at: 1010,
            rerun_of: None,
            handoff: Vec::new(),
        };
        let mut again = stored.clone();
        again.status = ExecutionStatus::Queued;
        assert!(stored.same_execution(&again), "a redelivered create");
        let mut other = again.clone();
        other.input = json!({ "n": 2 });
        assert!(!stored.same_execution(&other));
        let mut other = again.clone();
        other.version = 2;
        assert!(!stored.same_execution(&other));
        let mut other = again;
        other.trigger = TriggerInfo::new("webhook");
        assert!(!stored.same_execution(&other));
    }

    #[test]
    fn handed_on_tasks_are_sent_again_when_overdue_and_not_taken() {
        let mut execution = ExecutionRecord {
            id: "e1".into(),
            workflow_id: "wf".into(),
            version: 1,
            status: ExecutionStatus::Running,
            trigger: TriggerInfo::new("webhook"),
            input: json!({}),
            output: Value::Null,
            error: None,
            started_at: 1_000,
            finished_at: None,
            duration_ms: None,
            deadline_at: 100_000,
            rerun_of: None,
            handoff: vec![
                HandedOff {
                    path: "notify".into(),
                    attempt: 1,
                    delay_ms: 0,
                },
                HandedOff {
                    path: "check".into(),
                    attempt: 2,
                    delay_ms: 5_000,
                },
            ],
        };
        let record = |path: &str, status: StepStatus, attempts: u32| StepRecord {
            path: path.into(),
            step_type: "action".into(),
            status,
            attempts,
            input: Value::Null,
            output: Value::Null,
            error: None,
            started_at: 1_000,
            finished_at: None,
            duration_ms: None,
            lease_until: None,
            next: None,
            lease_lost: 0,
        };
        let paths = |sent: Vec<(StepTask, u64)>| -> Vec<(String, u32, u64)> {
            sent.into_iter()
                .map(|(t, d)| {
                    assert_eq!(t.execution_id, "e1");
                    (t.path, t.attempt, d)
                })
                .collect()
        };
        // The first attempt of `check` failed in the start and waits for its retry.
        let retrying = [record("check", StepStatus::Retrying, 1)];
        assert!(
            HandedOff::to_send_again(&execution, &retrying, 1_000 + 59_999, 60_000).is_empty(),
            "not overdue"
        );
        assert_eq!(
            paths(HandedOff::to_send_again(
                &execution, &retrying, 61_000, 60_000
            )),
            [("notify".to_string(), 1, 0)],
            "the retry is due 5 s later"
        );
        assert_eq!(
            paths(HandedOff::to_send_again(
                &execution, &retrying, 66_000, 60_000
            )),
            [("notify".to_string(), 1, 0), ("check".to_string(), 2, 0)]
        );
        let taken = [
            record("notify", StepStatus::Running, 1),
            record("check", StepStatus::Succeeded, 2),
        ];
        assert!(HandedOff::to_send_again(&execution, &taken, 99_000, 60_000).is_empty());
        execution.handoff.clear();
        assert!(HandedOff::to_send_again(&execution, &[], 99_000, 0).is_empty());
        // The record's JSON carries them only when there are some.
        let text = serde_json::to_value(&execution).expect("json");
        assert!(text.get("handoff").is_none(), "{text}");
    }
}

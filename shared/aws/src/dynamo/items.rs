//! The DynamoDB items, mapped with serde_dynamo.
//!
//! Scalar fields (status, attempts, times in epoch milliseconds, versions) are native attributes,
//! so condition expressions and indexes can use them. User JSON (inputs, outputs, errors, loop
//! items, records, definitions) is stored as JSON text: a native map would turn `1.0` into `1`,
//! refuse numbers past 1e126 and documents nested deeper than 32 levels, which JSON allows.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wf_core::StepError;
use wf_core::execution::{
    ExecutionRecord, ExecutionStatus, HandedOff, LoopState, StepRecord, StepStatus, TriggerInfo,
};
use wf_core::model::Workflow;
use wf_core::ports::WorkflowMeta;
use wf_core::{StoreError, StoreResult};

use super::keys::{self, EXECUTIONS_PK, SK};

pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's item limit: 400 KB, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// (De)serialize any serde value as one string attribute holding its JSON.
pub(crate) mod json_text {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(value).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

/// [`json_text`] for optional values (absent attribute = `None`).
pub(crate) mod json_text_opt {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<T>, s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::json_text::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

/// Encode an item struct, refusing it when it is over `limit` bytes.
pub(crate) fn encode<T: Serialize>(value: &T, what: &str, limit: usize) -> StoreResult<Item> {
    let item: Item = serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Permanent(format!("cannot encode item {what}: {e}")))?;
    check_size(&item, what, limit)?;
    Ok(item)
}

/// Decode an item into its struct.
pub(crate) fn decode<T: DeserializeOwned>(item: Item, what: &str) -> StoreResult<T> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Permanent(format!("cannot decode item {what}: {e}")))
}

/// Refuse an item over `limit` bytes, naming it and its size.
pub(crate) fn check_size(item: &Item, what: &str, limit: usize) -> StoreResult<()> {
    let size = item_size(item);
    if size > limit {
        return Err(too_large(what, size, limit));
    }
    Ok(())
}

pub(crate) fn too_large(what: &str, size: usize, limit: usize) -> StoreError {
    StoreError::TooLarge(format!(
        "item {what} is {size} bytes; DynamoDB's limit is {limit} bytes ({} KB)",
        limit / 1024
    ))
}

/// The size DynamoDB bills and limits: attribute names plus values (UTF-8 strings, numbers at
/// most 21 bytes, 3 bytes of overhead per map or list plus 1 per element).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

pub(crate) fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        // Numbers: about one byte per two digits plus one; the text length is an upper bound.
        AttributeValue::N(n) => n.len().min(21) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| n.len().min(21) + 1).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|i| 1 + value_size(i)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, i)| 1 + k.len() + value_size(i))
                .sum::<usize>()
        }
        _ => 0,
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A number attribute of an item, if present and numeric.
pub(crate) fn get_n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// executions table

/// The attributes an `EXEC` and a `STEP#` item share: what the run gave and when (flattened
/// into each item: the attribute names are the same as if each item listed them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunAttrs {
    #[serde(with = "json_text")]
    pub output: Value,
    #[serde(
        with = "json_text_opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<StepError>,
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// `RunAttrs` from an execution or a step record: the fields they have in common.
macro_rules! run_attrs_from {
    ($($record:ty),+) => {$(
        impl From<&$record> for RunAttrs {
            fn from(r: &$record) -> Self {
                Self {
                    output: r.output.clone(),
                    error: r.error.clone(),
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    duration_ms: r.duration_ms,
                }
            }
        }
    )+};
}
run_attrs_from!(ExecutionRecord, StepRecord);

/// A record literal (`ExecutionRecord { .. }` or `StepRecord { .. }` without the shared fields)
/// completed with the fields of a `RunAttrs`.
macro_rules! record_with_run {
    ($record:ident { $($field:ident: $value:expr),+ $(,)? }, $run:expr) => {{
        let run: RunAttrs = $run;
        $record {
            $($field: $value,)+
            output: run.output,
            error: run.error,
            started_at: run.started_at,
            finished_at: run.finished_at,
            duration_ms: run.duration_ms,
        }
    }};
}

/// The `EXEC` item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecItem {
    pub execution_id: String,
    pub sk: String,
    pub workflow_id: String,
    pub version: u32,
    pub status: ExecutionStatus,
    /// `trigger.type`, apart for filtering.
    pub trigger_type: String,
    #[serde(with = "json_text")]
    pub trigger: TriggerInfo,
    #[serde(with = "json_text")]
    pub input: Value,
    #[serde(flatten)]
    pub run: RunAttrs,
    pub deadline_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    pub started_key: String,
    pub entity: String,
    /// Only while the execution is not terminal (the sparse `byLive` index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_shard: Option<String>,
    /// Only once terminal (the sparse `byStatus` index); absent on items written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_shard: Option<String>,
    /// `byTrigger`; absent on items written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_shard: Option<String>,
    /// `byWorkflowStatus`, only once terminal (items written before it have none; live items
    /// written before this rule have `<workflowId>#live`, replaced at their finish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_status: Option<String>,
    /// `byWorkflowTrigger`; absent on items written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_trigger: Option<String>,
    pub ttl: i64,
    /// The step records of the execution's pure start, when they were written with this
    /// item (JSON text of the list; `dynamo/staged.rs` says when). Never changed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
    /// `ExecutionRecord::handoff` (JSON text), when there is one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "json_text_opt"
    )]
    pub handoff: Option<Vec<HandedOff>>,
}

impl ExecItem {
    pub fn new(r: &ExecutionRecord, retention_days: u32) -> Self {
        Self {
            execution_id: r.id.clone(),
            sk: keys::EXEC_SK.into(),
            workflow_id: r.workflow_id.clone(),
            version: r.version,
            status: r.status,
            trigger_type: r.trigger.kind.clone(),
            trigger: r.trigger.clone(),
            input: r.input.clone(),
            run: r.into(),
            deadline_at: r.deadline_at,
            rerun_of: r.rerun_of.clone(),
            started_key: keys::started_key(r.started_at, &r.id),
            entity: keys::exec_entity(&r.id),
            live_shard: (!r.status.is_terminal()).then(|| keys::live_shard(&r.id)),
            status_shard: r
                .status
                .is_terminal()
                .then(|| keys::status_shard(r.status.as_str(), &r.id)),
            trigger_shard: Some(keys::trigger_shard(&r.trigger.kind, &r.id)),
            workflow_status: r
                .status
                .is_terminal()
                .then(|| keys::workflow_status(&r.workflow_id, r.status.as_str())),
            workflow_trigger: Some(keys::workflow_trigger(&r.workflow_id, &r.trigger.kind)),
            ttl: keys::expiry(&r.id, r.started_at, retention_days),
            staged: None,
            handoff: (!r.handoff.is_empty()).then(|| r.handoff.clone()),
        }
    }

    pub fn into_record(self) -> ExecutionRecord {
        record_with_run!(
            ExecutionRecord {
                id: self.execution_id,
                workflow_id: self.workflow_id,
                version: self.version,
                status: self.status,
                trigger: self.trigger,
                input: self.input,
                deadline_at: self.deadline_at,
                rerun_of: self.rerun_of,
                handoff: self.handoff.unwrap_or_default(),
            },
            self.run
        )
    }
}

/// The `EXEC` item of `record` as the store writes it (for tools that load many executions at
/// once, e.g. the sweep measurement `tests/src/bin/sweep_scale.rs`).
pub fn execution_item(record: &ExecutionRecord, retention_days: u32) -> StoreResult<Item> {
    encode(
        &ExecItem::new(record, retention_days),
        &format!("{}/{}", record.id, keys::EXEC_SK),
        MAX_ITEM_BYTES,
    )
}

/// A `STEP#<path>` item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StepItem {
    pub execution_id: String,
    pub sk: String,
    pub path: String,
    #[serde(rename = "type")]
    pub step_type: String,
    pub status: StepStatus,
    pub attempts: u32,
    #[serde(with = "json_text")]
    pub input: Value,
    #[serde(flatten)]
    pub run: RunAttrs,
    /// Absent when there is no lease (claims treat that as expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Takeovers after a lost lease (absent = 0: items written before it existed).
    #[serde(default)]
    pub lease_lost: u32,
    pub ttl: i64,
}

impl StepItem {
    pub fn new(execution_id: &str, r: &StepRecord, retention_days: u32) -> Self {
        Self {
            execution_id: execution_id.to_string(),
            sk: keys::step_sk(&r.path),
            path: r.path.clone(),
            step_type: r.step_type.clone(),
            status: r.status,
            attempts: r.attempts,
            input: r.input.clone(),
            run: r.into(),
            lease_until: r.lease_until,
            next: r.next.clone(),
            lease_lost: r.lease_lost,
            ttl: keys::expiry(execution_id, r.started_at, retention_days),
        }
    }

    pub fn into_record(self) -> StepRecord {
        record_with_run!(
            StepRecord {
                path: self.path,
                step_type: self.step_type,
                status: self.status,
                attempts: self.attempts,
                input: self.input,
                lease_until: self.lease_until,
                next: self.next,
                lease_lost: self.lease_lost,
            },
            self.run
        )
    }
}

/// The `LOOP#<path>` join counter. `counted` (a number set of the counted indexes) is only
/// written by update expressions and only read from condition failures, so it is not mapped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoopCounterItem {
    pub execution_id: String,
    pub sk: String,
    pub total: u32,
    pub remaining: u32,
    pub concurrency: u32,
    #[serde(default)]
    pub failed: bool,
    pub ttl: i64,
}

impl LoopCounterItem {
    /// The loop's state this counter holds.
    pub fn state(&self) -> LoopState {
        LoopState {
            total: self.total,
            remaining: self.remaining,
            concurrency: self.concurrency,
            failed: self.failed,
        }
    }
}

/// A `LOOP#<path>#items#<page>` item: up to `LOOP_ITEMS_PER_PAGE` items of a loop, as JSON
/// text (an iteration decodes only its own item of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoopItemsItem {
    pub execution_id: String,
    pub sk: String,
    pub items: String,
    pub ttl: i64,
}

/// The counter item and the page items of a loop over `items`.
pub(crate) fn loop_items(
    execution_id: &str, path: &str, state: &LoopState, items: &[Value], ttl: i64,
) -> StoreResult<(LoopCounterItem, Vec<LoopItemsItem>)> {
    let counter = LoopCounterItem {
        execution_id: execution_id.to_string(),
        sk: keys::loop_sk(path),
        total: state.total,
        remaining: state.remaining,
        concurrency: state.concurrency,
        failed: state.failed,
        ttl,
    };
    let pages = items
        .chunks(keys::LOOP_ITEMS_PER_PAGE as usize)
        .zip(0u32..)
        .map(|(page, n)| {
            let sk = keys::loop_items_sk(path, n);
            let items = serde_json::to_string(page).map_err(|e| {
                StoreError::Permanent(format!("cannot encode item {execution_id}/{sk}: {e}"))
            })?;
            Ok(LoopItemsItem {
                execution_id: execution_id.to_string(),
                sk,
                items,
                ttl,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((counter, pages))
}

/// The attribute of an `ITER#` page that holds iteration `index`'s result (JSON text).
pub(crate) fn iteration_result_attr(index: u32) -> String {
    format!("r{index}")
}

/// At most this many results per `ITER#` page: the update that writes a page names each of
/// them, and an expression is at most 4 KB.
const RESULTS_PER_ITER_PAGE: usize = 64;

/// One `ITER#<path>[<first index>]` item to write: the results of counted iterations of one
/// loop, each in its own attribute ([`iteration_result_attr`]), so a batch of counts writes
/// one item, and a repeated batch adds what the item lacks without replacing a result
/// (`SET r<i> = if_not_exists(r<i>, :r<i>)`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IterationPage {
    pub sk: String,
    pub results: Vec<(u32, AttributeValue)>,
}

/// Cut `results` (in the caller's order) into [`IterationPage`]s of at most half of `limit`
/// bytes and [`RESULTS_PER_ITER_PAGE`] results each, a page always holding at least its first
/// result. Half, because two batches
/// cut differently (a replay after a crash) may write the same page, which then holds the
/// union of both: each has the same first result and at most half the limit of the others.
/// A result that alone does not fit in an item is `TooLarge`.
pub(crate) fn iteration_pages(
    execution_id: &str, loop_path: &str, results: &[(u32, Value)], limit: usize,
) -> StoreResult<Vec<IterationPage>> {
    // The key, the TTL and the attribute names' overhead of an item (an upper bound).
    let fixed = EXECUTIONS_PK.len() + execution_id.len() + SK.len() + loop_path.len() + 64;
    let mut pages: Vec<IterationPage> = Vec::new();
    let mut page_bytes = 0;
    for (index, result) in results {
        let text = serde_json::to_string(result).map_err(|e| {
            StoreError::Permanent(format!(
                "cannot encode the result of {loop_path}[{index}]: {e}"
            ))
        })?;
        let bytes = iteration_result_attr(*index).len() + text.len();
        if fixed + bytes > limit {
            let what = format!("{execution_id}/{}", keys::iter_sk(loop_path, *index));
            return Err(too_large(&what, fixed + bytes, limit));
        }
        match pages.last_mut() {
            Some(page)
                if page.results.len() < RESULTS_PER_ITER_PAGE
                    && fixed + page_bytes + bytes <= limit / 2 =>
            {
                page.results.push((*index, s(text)));
                page_bytes += bytes;
            }
            _ => {
                pages.push(IterationPage {
                    sk: keys::iter_sk(loop_path, *index),
                    results: vec![(*index, s(text))],
                });
                page_bytes = bytes;
            }
        }
    }
    Ok(pages)
}

/// The results an `ITER#` item holds: a page's `r<index>` attributes, or the `index` and
/// `result` of an item written before pages (one result per item).
pub(crate) fn iteration_results(item: &Item, what: &str) -> StoreResult<Vec<(u32, Value)>> {
    let parse = |text: &str| {
        serde_json::from_str(text)
            .map_err(|e| StoreError::Permanent(format!("cannot decode item {what}: {e}")))
    };
    if let (Some(index), Some(AttributeValue::S(text))) = (get_n(item, "index"), item.get("result"))
    {
        let index = u32::try_from(index)
            .map_err(|_| StoreError::Permanent(format!("item {what} has index {index}")))?;
        return Ok(vec![(index, parse(text)?)]);
    }
    let mut out = Vec::new();
    for (name, value) in item {
        let Some(index) = name.strip_prefix('r').and_then(|i| i.parse::<u32>().ok()) else {
            continue;
        };
        let AttributeValue::S(text) = value else {
            return Err(StoreError::Permanent(format!(
                "item {what}: result {name} is not text"
            )));
        };
        out.push((index, parse(text)?));
    }
    Ok(out)
}

/// A `MARK#<name>` item: a piece of the engine's own state (`ExecutionStore::put_mark`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MarkItem {
    /// `MARK#<name>` (the table's partition key attribute).
    pub execution_id: String,
    pub sk: String,
    #[serde(with = "json_text")]
    pub value: Value,
}

/// A `REJECT#<workflow>` item: an event the workflow did not start on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RejectionItem {
    /// `REJECT#<workflow id>` (the table's partition key attribute).
    pub execution_id: String,
    pub sk: String,
    #[serde(with = "json_text")]
    pub rejection: wf_core::rejection::EventRejection,
    pub ttl: i64,
}

/// A `DEDUPE#<workflow>#<key>` item: the first execution started with the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DedupeItem {
    pub execution_id: String,
    pub sk: String,
    /// The execution the key belongs to.
    pub first: String,
    /// Milliseconds; the key is dead from then on, whether or not TTL has removed it yet.
    pub expires_at: i64,
    pub ttl: i64,
}

// ---------------------------------------------------------------------------------------------
// workflows table

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DraftItem {
    pub id: String,
    pub sk: String,
    #[serde(with = "json_text")]
    pub draft: Value,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionItem {
    pub id: String,
    pub sk: String,
    pub version: u32,
    #[serde(with = "json_text")]
    pub definition: Workflow,
}

/// META: the port's struct as it is (its `id` is the partition key), plus the sort key, so
/// fields added to `WorkflowMeta` are stored without touching this crate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MetaItem {
    pub sk: String,
    #[serde(flatten)]
    pub meta: WorkflowMeta,
}

impl From<&WorkflowMeta> for MetaItem {
    fn from(m: &WorkflowMeta) -> Self {
        Self {
            sk: keys::META_SK.into(),
            meta: m.clone(),
        }
    }
}

impl From<MetaItem> for WorkflowMeta {
    fn from(m: MetaItem) -> Self {
        m.meta
    }
}

// ---------------------------------------------------------------------------------------------
// records table

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordItem {
    pub collection: String,
    pub id: String,
    #[serde(with = "json_text")]
    pub data: Value,
    pub idempotency_key: String,
    /// Bumped by every update: updates are read-merge-write under a condition on it.
    pub rev: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn step_items_round_trip_and_keep_json_exact() {
        // Deeper than DynamoDB's 32 levels of nested maps and lists.
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        let record = StepRecord {
            path: "each[2]/get".into(),
            step_type: "action".into(),
            status: StepStatus::Running,
            attempts: 2,
            input: json!({ "f": 1.0, "big": 1e300, "deep": deep }),
            output: Value::Null,
            error: Some(
                StepError::retryable("http.status", "503").with_details(json!({ "status": 503 })),
            ),
            started_at: 1_700_000_000_000,
            finished_at: None,
            duration_ms: None,
            lease_until: Some(1_700_000_030_000),
            next: None,
            lease_lost: 0,
        };
        let item = encode(&StepItem::new("e1", &record, 30), "t", MAX_ITEM_BYTES).expect("encode");
        assert_eq!(item.get("status"), Some(&s("running")));
        assert_eq!(item.get("leaseUntil"), Some(&n(1_700_000_030_000i64)));
        assert!(
            !item.contains_key("finishedAt"),
            "absent options are absent attributes"
        );
        let back: StepItem = decode(item, "t").expect("decode");
        assert_eq!(back.into_record(), record);
    }

    #[test]
    fn size_counts_names_and_values() {
        let mut item = Item::new();
        item.insert("ab".into(), s("xyz"));
        assert_eq!(item_size(&item), 5);
        item.insert(
            "m".into(),
            AttributeValue::M([("k".to_string(), s("v"))].into()),
        );
        assert_eq!(item_size(&item), 5 + 1 + 3 + 1 + 1 + 1);
        let big = json!("x".repeat(MAX_ITEM_BYTES));
        let err = encode(&json!({ "v": big }), "e1/STEP#a", MAX_ITEM_BYTES).unwrap_err();
        match err {
            StoreError::TooLarge(m) => {
                assert!(m.contains("e1/STEP#a") && m.contains("bytes"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
    #[test]
    fn iteration_pages_are_cut_by_bytes_and_count_and_read_back_with_older_items() {
        // Small results: 64 per page at most (the update names each).
        let small: Vec<(u32, Value)> = (0..150u32).map(|i| (i * 3, json!(i))).collect();
        let pages = iteration_pages("e1", "each", &small, MAX_ITEM_BYTES).expect("pages");
        let sizes: Vec<usize> = pages.iter().map(|p| p.results.len()).collect();
        assert_eq!(sizes, vec![64, 64, 22]);
        assert_eq!(
            pages[1].sk,
            keys::iter_sk("each", 64 * 3),
            "keyed by its first index"
        );
        // Big results: at most half an item per page, a page holding at least one.
        let big = |i: u32| (i, json!("x".repeat(150 * 1024)));
        let pages = iteration_pages("e1", "each", &[big(0), big(1), big(2)], MAX_ITEM_BYTES)
            .expect("pages");
        assert_eq!(pages.len(), 3);
        let alone = (7, json!("x".repeat(300 * 1024)));
        let pages =
            iteration_pages("e1", "each", &[alone, (8, json!(1))], MAX_ITEM_BYTES).expect("pages");
        let sizes: Vec<usize> = pages.iter().map(|p| p.results.len()).collect();
        assert_eq!(sizes, vec![1, 1], "nothing joins a page past half an item");
        let too_large = (9, json!("x".repeat(MAX_ITEM_BYTES)));
        match iteration_pages("e1", "each", &[(0, json!(1)), too_large], MAX_ITEM_BYTES) {
            Err(StoreError::TooLarge(m)) => assert!(m.contains("ITER#each[0000000009]"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A page's results, and an item written before pages (one `index` and `result`).
        let mut page: Item = [
            ("executionId".to_string(), s("e1")),
            ("sk".to_string(), s(keys::iter_sk("each", 3))),
            ("ttl".to_string(), n(1)),
        ]
        .into();
        for (index, result) in &pages_input() {
            page.insert(iteration_result_attr(*index), s(result.to_string()));
        }
        let mut read = iteration_results(&page, "p").expect("page");
        read.sort_by_key(|(i, _)| *i);
        assert_eq!(read, pages_input());
        let older: Item = [
            ("sk".to_string(), s(keys::iter_sk("each", 4))),
            ("index".to_string(), n(4)),
            ("result".to_string(), s(r#"{"a":1.0}"#)),
        ]
        .into();
        assert_eq!(
            iteration_results(&older, "o").expect("older"),
            vec![(4, json!({ "a": 1.0 }))]
        );
        page.insert("r5".into(), n(5));
        assert!(
            iteration_results(&page, "p").is_err(),
            "a result that is not text"
        );
    }

    fn pages_input() -> Vec<(u32, Value)> {
        vec![
            (3, json!({ "x": [1, 2] })),
            (13, json!("t")),
            (23, Value::Null),
        ]
    }
}

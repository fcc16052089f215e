//! `ExecutionStore` on the `executions` table.
//!
//! Where the protocol needs atomicity:
//! * `create_execution` with a dedupe key: the EXEC put and the DEDUPE put in one
//!   TransactWriteItems (nothing is written for a duplicate).
//! * `claim_step` / `finish_step`: one conditional PutItem each (the claim's condition is the
//!   lease rule of the port; the finish's is "still my claim"); `renew_lease`: one conditional
//!   UpdateItem of `leaseUntil` ("still my claim, not taken over").
//! * `init_loop`: the pages of items (BatchWriteItem), then the counter put only if absent.
//! * `count_iterations` (a batch of one loop's iterations; `count_iteration` is a batch of
//!   one): the results go to `ITER#` pages (an UpdateItem per page, `SET r<i> =
//!   if_not_exists(r<i>, :r<i>)`: the first result of an index is kept, a repeated or
//!   differently cut batch adds what is missing), then one conditional UpdateItem on the small
//!   counter item does `ADD remaining -k, counted {i...}` unless one of them is in `counted`.
//!   The "counted" markers and the decrement live in the same item, so a single-item write
//!   makes them atomic (what a two-item transaction would give) at a quarter of its write
//!   cost, and `ReturnValues` answers the exact `remaining` of this count. A batch refused
//!   because part of it was counted before (a replay) is counted one by one. A crash between
//!   the writes leaves stored but uncounted results, which the redelivered task counts. A
//!   worker batches the counts of a slot's iterations it runs inline (ARCHITECTURE.md), so a
//!   100-iteration lane writes a few pages and counter updates, not a hundred of each. The set
//!   does not grow with the loop: a loop's iterations run in lanes (index modulo concurrency, one after the other in a lane), and
//!   once `COMPACT_RUN` listed indexes follow their lane's mark without a gap, one conditional
//!   update moves the marks past them and takes them out of the set (`compact_counted`); a
//!   count is refused below its lane's mark. So a count is a write of a small item at any loop
//!   length (before, the set made a count of the 10,000th iteration a 29 KB write, and a loop
//!   near 100,000 iterations would have passed the item limit).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde_json::Value;
use wf_core::damaged::{DamagedExecution, damaged_execution, damaged_step, ulid_time_ms};
use wf_core::execution::{
    ClaimOutcome, CreateOutcome, DedupeKey, ExecutionPage, ExecutionQuery, ExecutionRecord,
    ExecutionStatus, ExecutionUpdate, IterationCount, LoopState, StepKey, StepRecord, StepStatus,
    sort_steps,
};
use wf_core::keys::{cut_page, page_size};
use wf_core::ports::{Clock, ExecutionStore, SystemClock, create_in_worker_order};
use wf_core::rejection::{EventRejection, RejectionPage};
use wf_core::{StoreError, StoreResult};

use super::items::{
    DedupeItem, ExecItem, Item, IterationPage, LoopCounterItem, LoopItemsItem, MarkItem,
    RejectionItem, StepItem, check_size, decode, encode, get_n, get_s, item_size, iteration_pages,
    iteration_result_attr, iteration_results, loop_items, n, s,
};
use super::keys::{
    self, COMPACT_RUN, COMPACTIONS, EXEC_SK, EXECUTIONS_PK, LANE_MARKS, SK, TTL_ATTRIBUTE,
};
use super::staged;
use super::{
    BatchAction, Condition, Conditional, DynamoStore, PAGE_REMEMBERED_BYTES, QuerySpec, backoff,
    transaction_cancelled, transaction_put,
};
use crate::error::{SdkResultExt, build_error};

/// What creating an `EXEC` item found.
enum Creation {
    New,
    /// The same execution was stored already (a redelivered create); `staged`: its item holds
    /// staged step records.
    Redelivered {
        staged: bool,
    },
    /// A live dedupe key of another execution.
    Duplicate(String),
}

fn key(pk: &str, sk: &str) -> Item {
    Item::from([(EXECUTIONS_PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

fn loop_not_found(execution_id: &str, loop_path: &str) -> StoreError {
    StoreError::NotFound(format!("loop {loop_path} of {execution_id}"))
}

fn status_value(status: ExecutionStatus) -> AttributeValue {
    s(status.as_str())
}

fn step_status_value(status: StepStatus) -> StoreResult<AttributeValue> {
    match serde_json::to_value(status) {
        Ok(Value::String(v)) => Ok(s(v)),
        other => Err(StoreError::Permanent(format!(
            "step status {status:?} does not encode as a string: {other:?}"
        ))),
    }
}

/// What the cursor of `list_executions` (the last item's `startedKey`) and of
/// `list_rejections` (the last item's sort key) holds: both are `<16-digit time>#<id>`.
fn decode_cursor(cursor: &str) -> StoreResult<String> {
    wf_core::keys::decode_time_cursor(cursor)
        .ok_or_else(|| StoreError::Invalid(format!("invalid cursor {cursor:?}")))
}

/// One partition of a listing index: which index, its partition key attribute and value.
struct IndexPartition {
    index: &'static str,
    attribute: &'static str,
    value: String,
}

impl IndexPartition {
    fn new(index: &'static str, attribute: &'static str, value: String) -> Self {
        Self {
            index,
            attribute,
            value,
        }
    }
}

/// Reading one partition newest first: the keys read and not yet taken, and where to go on.
struct PartitionReader {
    partition: IndexPartition,
    rows: std::collections::VecDeque<Item>,
    next: Option<Item>,
    exhausted: bool,
}

impl PartitionReader {
    fn new(partition: IndexPartition) -> Self {
        Self {
            partition,
            rows: Default::default(),
            next: None,
            exhausted: false,
        }
    }

    /// Whether a key must be read before the merge can take one.
    fn needs_rows(&self) -> bool {
        self.rows.is_empty() && !self.exhausted
    }

    fn fill(&mut self, rows: Vec<Item>, next: Option<Item>) {
        self.rows.extend(rows);
        self.exhausted = next.is_none();
        self.next = next;
    }

    fn head_key(&self) -> Option<&str> {
        self.rows
            .front()
            .and_then(|r| get_s(r, keys::STARTED_KEY_ATTR))
    }
}

/// At most this many iterations are counted by one update of a loop counter (the condition
/// names each of them, and an expression is at most 4 KB).
const COUNTS_PER_UPDATE: usize = 32;

impl DynamoStore {
    /// Write one page of iteration results: each result only where the page has none for its
    /// index (`if_not_exists`), so a repeat or a differently cut batch adds what is missing and
    /// replaces nothing.
    async fn put_iteration_page(
        &self, execution_id: &str, page: IterationPage, ttl: i64,
    ) -> StoreResult<()> {
        let mut sets = vec!["#ttl = :ttl".to_string()];
        let mut names = Condition::always()
            .name("#ttl", TTL_ATTRIBUTE)
            .value(":ttl", n(ttl));
        for (k, (index, result)) in page.results.into_iter().enumerate() {
            sets.push(format!("#r{k} = if_not_exists(#r{k}, :r{k})"));
            names = names
                .name(format!("#r{k}"), iteration_result_attr(index))
                .value(format!(":r{k}"), result);
        }
        let update = format!("SET {}", sets.join(", "));
        let page_key = key(execution_id, &page.sk);
        self.update_if(page_key, &update, names, None, "count_iteration")
            .await?;
        Ok(())
    }

    /// Count `indexes` (sorted, distinct) in one conditional update of the loop's counter:
    /// `ADD remaining -k, counted {indexes}` only if none of them is counted (in `counted` or
    /// below its lane's mark), `remaining >= k` and each is an iteration of the loop. The
    /// state the update left, or None when refused (the caller counts them one by one, which
    /// tells which were counted and reports the errors).
    async fn count_together(
        &self, counter: &Item, indexes: &[u32], concurrency: u32, what: &str,
    ) -> StoreResult<Option<LoopState>> {
        let (Some(&first), Some(&last)) = (indexes.first(), indexes.last()) else {
            return Ok(None);
        };
        let mut clauses = vec![
            "remaining >= :count".to_string(),
            "#total > :last".to_string(),
        ];
        let mut condition = counter_exists()
            .name("#total", "total")
            .name("#marks", LANE_MARKS)
            .value(":count", n(indexes.len()))
            .value(":minus_count", n(-(indexes.len() as i64)))
            .value(":last", n(last))
            .value(
                ":index_set",
                AttributeValue::Ns(indexes.iter().map(u32::to_string).collect()),
            );
        // Each lane's lowest index is at or above the lane's mark (the indexes are sorted).
        let mut lanes: BTreeMap<u32, u32> = BTreeMap::new();
        for &index in indexes {
            lanes.entry(index % concurrency.max(1)).or_insert(index);
        }
        for (k, (lane, lowest)) in lanes.into_iter().enumerate() {
            clauses.push(format!(
                "(attribute_not_exists(#marks.#lane{k}) OR :lowest{k} >= #marks.#lane{k})"
            ));
            condition = condition
                .name(format!("#lane{k}"), lane.to_string())
                .value(format!(":lowest{k}"), n(lowest));
        }
        // `:index` is the first one, as in a single count (the fault tests key on it).
        for (k, &index) in indexes.iter().enumerate() {
            let placeholder = if index == first {
                ":index".to_string()
            } else {
                format!(":i{k}")
            };
            clauses.push(format!("NOT contains(counted, {placeholder})"));
            condition = condition.value(placeholder, n(index));
        }
        let condition = condition.and(&clauses.join(" AND "));
        let count = "ADD remaining :minus_count, counted :index_set";
        Ok(self
            .update_counter(counter, count, condition, what)
            .await?
            .ok())
    }

    /// A count's update of the loop counter under `condition`: the loop's state it left (its
    /// `ALL_NEW`; a compaction follows when due), or the refusal with the counter as it stood
    /// when the condition asked for it.
    async fn update_counter(
        &self, counter: &Item, update: &str, condition: Condition, what: &str,
    ) -> StoreResult<Result<LoopState, Option<Item>>> {
        let returns = Some(ReturnValue::AllNew);
        let op = "count_iteration";
        match self
            .update_if(counter.clone(), update, condition, returns, op)
            .await?
        {
            Conditional::Written(attributes) => {
                let attributes = attributes.unwrap_or_default();
                let state = decode::<LoopCounterItem>(attributes.clone(), what)?.state();
                self.compact_counted(counter.clone(), &attributes, what)
                    .await;
                Ok(Ok(state))
            }
            Conditional::Refused(stored) => Ok(Err(stored)),
        }
    }

    /// Count one iteration: `ADD remaining -1, counted {index}` unless it is counted (in
    /// `counted` or below its lane's mark).
    async fn count_one(
        &self, execution_id: &str, loop_path: &str, counter: &Item, index: u32, concurrency: u32,
    ) -> StoreResult<IterationCount> {
        let what = format!("{execution_id}/{}", keys::iter_sk(loop_path, index));
        let condition = counter_exists()
            .and(
                "(attribute_not_exists(#marks.#lane) OR :index >= #marks.#lane) \
                 AND NOT contains(counted, :index) AND remaining > :zero AND #total > :index",
            )
            .name("#total", "total")
            .name("#marks", LANE_MARKS)
            .name("#lane", (index % concurrency).to_string())
            .value(":minus_one", n(-1))
            .value(":zero", n(0))
            .value(":index", n(index))
            .value(":index_set", AttributeValue::Ns(vec![index.to_string()]))
            .return_old();
        let count = "ADD remaining :minus_one, counted :index_set";
        let stored = match self
            .update_counter(counter, count, condition, &what)
            .await?
        {
            Ok(state) => return Ok(IterationCount::Counted(state)),
            Err(Some(item)) => Some(item),
            Err(None) => {
                self.get_item(&self.executions, counter.clone(), "count_iteration")
                    .await?
            }
        };
        let Some(stored) = stored else {
            return Err(loop_not_found(execution_id, loop_path));
        };
        let already =
            below_its_mark(&stored, index, concurrency) || counted_set(&stored).contains(&index);
        if already {
            return Ok(IterationCount::AlreadyCounted);
        }
        let total = get_n(&stored, "total").unwrap_or_default();
        if i64::from(index) >= total {
            return Err(StoreError::Permanent(format!(
                "loop {loop_path} of {execution_id} has {total} items; there is no iteration {index}"
            )));
        }
        Err(StoreError::Conflict(format!(
            "loop {loop_path} of {execution_id} has no iteration left to count (index {index})"
        )))
    }

    /// Fold the indexes of `counted` that follow their lane's mark without a gap into the
    /// marks (see [`COMPACT_RUN`]), so the counter stays a small item however long the loop:
    /// one conditional update, written only if no other compaction came between (so every
    /// index folded is still listed). A refused or failed compaction changes nothing; a later
    /// count compacts.
    async fn compact_counted(&self, key: Item, counter: &Item, what: &str) {
        let Some((marks, run)) = compaction(counter) else {
            return;
        };
        let version = get_n(counter, COMPACTIONS).unwrap_or(0);
        let marks = marks
            .into_iter()
            .map(|(lane, mark)| (lane.to_string(), n(mark)))
            .collect();
        let condition = if version == 0 {
            Condition::new("attribute_not_exists(#version)")
        } else {
            Condition::new("#version = :version").value(":version", n(version))
        }
        .name("#version", COMPACTIONS)
        .name("#marks", LANE_MARKS)
        .value(":next", n(version + 1))
        .value(":marks", AttributeValue::M(marks))
        .value(
            ":run",
            AttributeValue::Ns(run.iter().map(u32::to_string).collect()),
        );
        let compact = "SET #marks = :marks, #version = :next DELETE counted :run";
        let done = self
            .update_if(key, compact, condition, None, "count_iteration")
            .await;
        let written = matches!(done, Ok(Conditional::Written(_)));
        tracing::debug!(what, folded = run.len(), written, "loop counter compaction");
    }

    /// Put `exec_item` (the `EXEC` item of `execution`) if absent, with the dedupe key in one
    /// transaction when there is one (the rules of `create_execution`).
    async fn create_item(
        &self, execution: &ExecutionRecord, exec_item: Item, dedupe: Option<&DedupeKey>,
    ) -> StoreResult<Creation> {
        let id = &execution.id;
        let new_execution = Condition::absent(EXECUTIONS_PK).return_old();
        if !execution.status.is_terminal() {
            self.remember_facts(execution);
        }
        let Some(dedupe) = dedupe else {
            let written = self
                .put_if(
                    &self.executions,
                    exec_item,
                    new_execution,
                    "create_execution",
                )
                .await?;
            return Ok(match written {
                Conditional::Written(_) => Creation::New,
                Conditional::Refused(stored) => Creation::Redelivered {
                    staged: self.check_redelivered(execution, stored).await?,
                },
            });
        };

        // "Now" for the key's expiry is the execution's start (set from the trigger's clock).
        let now = execution.started_at;
        let dedupe_pk = keys::dedupe_pk(&dedupe.key);
        let dedupe_item = encode(
            &DedupeItem {
                execution_id: dedupe_pk.clone(),
                sk: keys::DEDUPE_SK.into(),
                first: id.clone(),
                expires_at: dedupe.expires_at,
                ttl: dedupe.expires_at.div_euclid(1000) + 1,
            },
            &dedupe_pk,
            self.item_limit,
        )?;
        for attempt in 0..5u32 {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let put_exec =
                transaction_put(&self.executions, exec_item.clone(), new_execution.clone())?;
            let put_key = transaction_put(
                &self.executions,
                dedupe_item.clone(),
                dedupe_condition(id, now),
            )?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(put_exec)
                .transact_items(put_key)
                .send()
                .await;
            let reasons = match result {
                Ok(_) => return Ok(Creation::New),
                Err(e) => transaction_cancelled("create_execution", e)?,
            };
            let exec_reason = reasons.first().cloned().unwrap_or_default();
            let key_reason = reasons.get(1).cloned().unwrap_or_default();
            if key_reason.condition_failed() {
                // A live key of another execution: answer with it, write nothing.
                let first = match key_reason.item.as_ref().and_then(|i| get_s(i, "first")) {
                    Some(first) => Some(first.to_string()),
                    None => self
                        .load::<DedupeItem>(&dedupe_pk, keys::DEDUPE_SK, "get dedupe key")
                        .await?
                        .map(|d| d.first),
                };
                match first {
                    Some(first) if &first != id => return Ok(Creation::Duplicate(first)),
                    // It expired or went away meanwhile: try again.
                    _ => continue,
                }
            }
            if exec_reason.condition_failed() {
                let staged = self.check_redelivered(execution, exec_reason.item).await?;
                // A redelivered create: the record stands; make sure the key does too.
                return match self.put_dedupe(dedupe_item.clone(), id, now).await? {
                    Some(first) if &first != id => Ok(Creation::Duplicate(first)),
                    _ => Ok(Creation::Redelivered { staged }),
                };
            }
            // Cancelled for another reason (a conflicting transaction): retry.
            tracing::debug!(execution_id = %id, ?reasons, "create transaction cancelled; retrying");
        }
        Err(StoreError::Unavailable(format!(
            "create_execution {id}: the transaction kept being cancelled"
        )))
    }

    /// Put `record` as its `STEP#` item under `condition` (which returns the stored item when
    /// it refuses): `Claimed`, or `Held` with the stored record.
    async fn put_claim(
        &self, execution_id: &str, record: &StepRecord, condition: Condition, op: &str,
    ) -> StoreResult<ClaimOutcome> {
        let what = format!("{execution_id}/{}", keys::step_sk(&record.path));
        let item = encode(
            &StepItem::new(execution_id, record, self.retention_days),
            &what,
            self.item_limit,
        )?;
        let stored = match self.put_if(&self.executions, item, condition, op).await? {
            Conditional::Written(_) => return Ok(ClaimOutcome::Claimed),
            Conditional::Refused(Some(item)) => {
                Some(decode::<StepItem>(item, &what)?.into_record())
            }
            Conditional::Refused(None) => self.get_step(execution_id, &record.path).await?,
        };
        match stored {
            Some(stored) => Ok(ClaimOutcome::Held(stored)),
            // Gone between the write and the read (a retention delete): claim again.
            None => Err(StoreError::Unavailable(format!(
                "claim of {what} raced a delete"
            ))),
        }
    }

    /// Keep what a terminal update of a live execution needs ([`Self::index_facts`]).
    fn remember_facts(&self, r: &ExecutionRecord) {
        self.execution_facts.put(
            r.id.clone(),
            (r.workflow_id.clone(), r.trigger.kind.clone()),
        );
    }

    /// A loop's concurrency (what an iteration's lane depends on): it never changes once the
    /// counter is written, so each process reads it once per loop.
    async fn loop_concurrency(&self, execution_id: &str, loop_path: &str) -> StoreResult<u32> {
        let key_text = format!("{execution_id}/{loop_path}");
        if let Some(known) = self.loop_concurrencies.get(&key_text) {
            return Ok(known);
        }
        let state = self
            .load_loop(execution_id, loop_path)
            .await?
            .ok_or_else(|| loop_not_found(execution_id, loop_path))?;
        let concurrency = state.concurrency.max(1);
        self.loop_concurrencies.put(key_text, concurrency);
        Ok(concurrency)
    }

    /// The `STEP#` items of execution `execution_id`.
    fn steps_query<'a>(&'a self, op: &'a str, execution_id: &str) -> QuerySpec<'a> {
        QuerySpec::partition(op, &self.executions, EXECUTIONS_PK, execution_id)
            .begins_with(keys::STEP_PREFIX)
    }

    fn ttl_of(&self, execution_id: &str, fallback_ms: i64) -> i64 {
        keys::expiry(execution_id, fallback_ms, self.retention_days)
    }

    /// The item `pk`/`sk` of the executions table decoded as `T`, if there is one.
    async fn load<T: serde::de::DeserializeOwned>(
        &self, pk: &str, sk: &str, op: &str,
    ) -> StoreResult<Option<T>> {
        self.get_item(&self.executions, key(pk, sk), op)
            .await?
            .map(|item| decode(item, &format!("{pk}/{sk}")))
            .transpose()
    }

    async fn load_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let item: Option<ExecItem> = self.load(id, EXEC_SK, "get_execution").await?;
        Ok(item.map(ExecItem::into_record))
    }

    /// Put the dedupe key for `id` unless a live key of another execution holds it.
    /// `Some(first)` when one does.
    async fn put_dedupe(&self, item: Item, id: &str, now: i64) -> StoreResult<Option<String>> {
        let written = self
            .put_if(
                &self.executions,
                item,
                dedupe_condition(id, now),
                "put dedupe key",
            )
            .await?;
        Ok(match written {
            Conditional::Written(_) => None,
            Conditional::Refused(stored) => {
                stored.and_then(|i| get_s(&i, "first").map(str::to_string))
            }
        })
    }

    /// Ok when the execution stored under `execution.id` (`stored`, the item a refused create
    /// found, else read) is `execution` itself, a redelivered create; a conflict when it is
    /// another execution. Answers whether the stored item holds staged step records.
    async fn check_redelivered(
        &self, execution: &ExecutionRecord, stored: Option<Item>,
    ) -> StoreResult<bool> {
        let id = &execution.id;
        let stored = match stored {
            Some(item) => Some(decode::<ExecItem>(item, id)?),
            None => self.load(id, EXEC_SK, "get_execution").await?,
        };
        let staged = stored.as_ref().is_some_and(|item| item.staged.is_some());
        match stored.map(ExecItem::into_record) {
            Some(stored) if stored.same_execution(execution) => Ok(staged),
            _ => Err(StoreError::Conflict(format!(
                "execution {id} exists already and is a different execution"
            ))),
        }
    }

    /// The counter of a loop (a small item whatever the item count).
    async fn load_loop(
        &self, execution_id: &str, loop_path: &str,
    ) -> StoreResult<Option<LoopState>> {
        let sk = keys::loop_sk(loop_path);
        let counter: Option<LoopCounterItem> = self.load(execution_id, &sk, "get_loop").await?;
        Ok(counter.as_ref().map(LoopCounterItem::state))
    }

    /// Up to `limit + 1` executions of `partitions` (merged newest first) that `keep` takes, in
    /// `[lower, upper)`. None when an index of the plan cannot be read (missing or building).
    async fn read_plan(
        &self, partitions: Vec<IndexPartition>, filtered: bool, lower: &Option<String>,
        upper: &Option<String>, limit: usize, keep: &(dyn Fn(&ExecutionRecord) -> bool + Sync),
    ) -> StoreResult<Option<Vec<ExecutionRecord>>> {
        let mut heads: Vec<PartitionReader> =
            partitions.into_iter().map(PartitionReader::new).collect();
        let mut items: Vec<ExecutionRecord> = Vec::new();
        // `Limit` applies before filtering, so a page may yield nothing: keep going until the
        // page is full (plus one, to know whether there is more) or every partition is read.
        // The partitions are merged newest first: a key is taken only when every partition
        // that is not exhausted has a key buffered, so the largest head is the newest left.
        loop {
            let want = limit + 1 - items.len();
            let page_size = if filtered {
                (want * 4).clamp(25, 1000)
            } else {
                want.min(1000)
            };
            let mut ids = Vec::new();
            while ids.len() < page_size {
                // A page may come back empty with more to read: read until every partition
                // has a key buffered or is exhausted.
                while let Some(head) = heads.iter_mut().find(|h| h.needs_rows()) {
                    let Some((rows, next)) = self
                        .index_page(
                            &head.partition,
                            lower.as_deref(),
                            upper.as_deref(),
                            i32::try_from(page_size).unwrap_or(1000),
                            head.next.take(),
                        )
                        .await?
                    else {
                        return Ok(None);
                    };
                    head.fill(rows, next);
                }
                let newest = heads
                    .iter_mut()
                    .filter(|h| !h.rows.is_empty())
                    .max_by(|a, b| a.head_key().cmp(&b.head_key()));
                let Some(head) = newest else { break };
                if let Some(id) = head
                    .rows
                    .pop_front()
                    .and_then(|r| get_s(&r, EXECUTIONS_PK).map(str::to_string))
                {
                    ids.push(id);
                }
            }
            if ids.is_empty() {
                break;
            }
            for record in self.batch_get_executions(&ids).await? {
                if keep(&record) && items.len() <= limit {
                    items.push(record);
                }
            }
            if items.len() > limit {
                break;
            }
        }
        Ok(Some(items))
    }

    /// The workflow id and trigger type of execution `id` (what its index keys are made of),
    /// read alone: a projection of the two never-changing attributes. None when it does not
    /// exist.
    async fn index_facts(&self, id: &str) -> StoreResult<Option<(String, String)>> {
        if let Some(known) = self.execution_facts.get(id) {
            return Ok(Some(known));
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.executions)
            .set_key(Some(key(id, EXEC_SK)))
            .projection_expression("#w, #t")
            .expression_attribute_names("#w", keys::WORKFLOW_ID_ATTR)
            .expression_attribute_names("#t", "triggerType")
            .consistent_read(true)
            .send()
            .await
            .store_err("update_execution")?;
        Ok(out.item.map(|item| {
            (
                get_s(&item, keys::WORKFLOW_ID_ATTR)
                    .unwrap_or_default()
                    .to_string(),
                get_s(&item, "triggerType").unwrap_or_default().to_string(),
            )
        }))
    }

    /// Keys of the executions in one partition of a listing index, newest first, in
    /// `[lower, upper)` of the `startedKey` space. Returns one page of index keys and where to
    /// go on; None when the table has no such index yet or it is still being built.
    async fn index_page(
        &self, index: &IndexPartition, lower: Option<&str>, upper: Option<&str>, page_size: i32,
        start: Option<Item>,
    ) -> StoreResult<Option<(Vec<Item>, Option<Item>)>> {
        let condition = match (lower, upper) {
            (Some(_), Some(_)) => "#ipk = :ipk AND #isk BETWEEN :lo AND :hi",
            (Some(_), None) => "#ipk = :ipk AND #isk >= :lo",
            (None, Some(_)) => "#ipk = :ipk AND #isk < :hi",
            (None, None) => "#ipk = :ipk",
        };
        let mut req = self
            .client
            .query()
            .table_name(&self.executions)
            .index_name(index.index)
            .key_condition_expression(condition)
            .expression_attribute_names("#ipk", index.attribute)
            .expression_attribute_values(":ipk", s(&index.value))
            .scan_index_forward(false)
            .limit(page_size)
            .set_exclusive_start_key(start);
        if lower.is_some() || upper.is_some() {
            req = req.expression_attribute_names("#isk", keys::STARTED_KEY_ATTR);
        }
        if let Some(lo) = lower {
            req = req.expression_attribute_values(":lo", s(lo));
        }
        if let Some(hi) = upper {
            req = req.expression_attribute_values(":hi", s(hi));
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) if unreadable_index(&e) => {
                tracing::warn!(
                    index = index.index,
                    error = %crate::error::describe("list_executions", &e),
                    "listing index not readable: listing through the base indexes"
                );
                return Ok(None);
            }
            Err(e) => return Err(crate::error::store_error("list_executions", e)),
        };
        let mut rows = out.items.unwrap_or_default();
        // BETWEEN includes its upper end; the upper bound is exclusive.
        if let (Some(_), Some(hi)) = (lower, upper) {
            rows.retain(|r| get_s(r, keys::STARTED_KEY_ATTR) != Some(hi));
        }
        let next = out.last_evaluated_key.filter(|k| !k.is_empty());
        Ok(Some((rows, next)))
    }

    /// The `EXEC` items of `ids` (BatchGetItem, 100 per request), in the order of `ids`.
    async fn batch_get_executions(&self, ids: &[String]) -> StoreResult<Vec<ExecutionRecord>> {
        let keys = ids.iter().map(|id| key(id, EXEC_SK)).collect();
        let mut found: std::collections::HashMap<String, ExecutionRecord> = self
            .batch_get(keys, "list_executions")
            .await?
            .into_iter()
            .map(exec_or_damaged)
            .map(|record| (record.id.clone(), record))
            .collect();
        // An id the index listed but the table no longer has was deleted meanwhile: skip it.
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The items of `keys` in the executions table (BatchGetItem, 100 per request, unprocessed
    /// keys retried with backoff), in any order; a key with no item is left out.
    async fn batch_get(&self, keys: Vec<Item>, op: &str) -> StoreResult<Vec<Item>> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut keys_left: Vec<Item> = chunk.to_vec();
            let mut attempt = 0u32;
            while !keys_left.is_empty() {
                if attempt > 0 {
                    backoff(attempt).await;
                }
                if attempt > 8 {
                    return Err(StoreError::Unavailable(format!(
                        "{op}: reads still unprocessed after retries"
                    )));
                }
                attempt += 1;
                let ka = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys_left)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| build_error("a batch read", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.executions, ka)
                    .send()
                    .await
                    .store_err(op)?;
                items.extend(
                    out.responses
                        .and_then(|mut r| r.remove(&self.executions))
                        .unwrap_or_default(),
                );
                keys_left = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.executions))
                    .map(|ka| ka.keys)
                    .unwrap_or_default();
            }
        }
        Ok(items)
    }
}

/// An `EXEC` item as listing and `get_execution` read it: the record, or its `damaged`
/// stand-in (from the scalars kept apart for the indexes) when it cannot be decoded, so one bad
/// item never fails a list, a page or the sweeper (`wf_core::damaged`).
fn exec_or_damaged(item: Item) -> ExecutionRecord {
    let id = get_s(&item, "executionId").unwrap_or_default().to_string();
    let workflow_id = get_s(&item, "workflowId").unwrap_or_default().to_string();
    let trigger = get_s(&item, "triggerType").unwrap_or_default().to_string();
    let version = get_n(&item, "version").unwrap_or(0);
    let started_at = get_n(&item, "startedAt").unwrap_or(0);
    serde_dynamo::from_item::<_, ExecItem>(item)
        .map(ExecItem::into_record)
        .unwrap_or_else(|e| {
            tracing::warn!(execution_id = %id, error = %e, "damaged execution item");
            let known = DamagedExecution {
                id: &id,
                workflow_id: &workflow_id,
                version: u32::try_from(version).unwrap_or(0),
                started_at,
                trigger: &trigger,
            };
            damaged_execution(&known, &e.to_string())
        })
}

/// A `STEP#` item as `list_steps` reads it: the record, or its `damaged` stand-in.
fn step_or_damaged(execution_id: &str, item: Item) -> StepRecord {
    let sk = get_s(&item, SK).unwrap_or_default().to_string();
    let started_at = get_n(&item, "startedAt");
    serde_dynamo::from_item::<_, StepItem>(item)
        .map(StepItem::into_record)
        .unwrap_or_else(|e| {
            tracing::warn!(execution_id, sk = %sk, error = %e, "damaged step item");
            let path = sk.strip_prefix(keys::STEP_PREFIX).unwrap_or(&sk);
            let started_at = started_at
                .or_else(|| ulid_time_ms(execution_id))
                .unwrap_or(0);
            damaged_step(execution_id, path, started_at, &e.to_string())
        })
}

/// Which index partitions `list_executions` reads for `query`, and whether what they list may
/// still not match it. Each filter reads the index made for it, so a rare status or trigger is
/// found without reading through history:
/// * a terminal status: `byStatus` (with the workflow: `byWorkflowStatus`), only that status;
/// * `queued`/`running`: `byLive`, with or without a workflow: the live executions, of which
///   the other live status and the other workflows are skipped;
/// * a trigger: `byTrigger` (with the workflow: `byWorkflowTrigger`);
/// * a workflow alone: `byWorkflow`; nothing: `byStart`.
///
/// A status and a trigger together read the status's index and filter the trigger; a version
/// is filtered on whatever index is read.
fn index_plan(query: &ExecutionQuery) -> (Vec<IndexPartition>, bool) {
    let sharded = |index, attribute, values: Vec<String>| {
        values
            .into_iter()
            .map(|v| IndexPartition::new(index, attribute, v))
            .collect::<Vec<_>>()
    };
    let one = |index, attribute, value: String| vec![IndexPartition::new(index, attribute, value)];
    let mut residual = query.version.is_some();
    let partitions = match (&query.workflow_id, query.status, &query.trigger) {
        (workflow, Some(status), trigger) => {
            residual |= trigger.is_some() || !status.is_terminal();
            match (workflow, status.is_terminal()) {
                (Some(w), true) => one(
                    keys::BY_WORKFLOW_STATUS_INDEX,
                    keys::WORKFLOW_STATUS_ATTR,
                    keys::workflow_status(w, status.as_str()),
                ),
                (None, true) => sharded(
                    keys::BY_STATUS_INDEX,
                    keys::STATUS_SHARD_ATTR,
                    keys::status_shards(status.as_str()),
                ),
                // With a workflow too: the live executions of every workflow, the others
                // skipped (few at any time; a live entry per workflow in `byWorkflowStatus`
                // would cost two index writes per execution).
                (_, false) => sharded(
                    keys::BY_LIVE_INDEX,
                    keys::LIVE_SHARD_ATTR,
                    keys::live_shards(),
                ),
            }
        }
        (Some(w), None, Some(t)) => one(
            keys::BY_WORKFLOW_TRIGGER_INDEX,
            keys::WORKFLOW_TRIGGER_ATTR,
            keys::workflow_trigger(w, t),
        ),
        (None, None, Some(t)) => sharded(
            keys::BY_TRIGGER_INDEX,
            keys::TRIGGER_SHARD_ATTR,
            keys::trigger_shards(t),
        ),
        (Some(w), None, None) => one(keys::BY_WORKFLOW_INDEX, keys::WORKFLOW_ID_ATTR, w.clone()),
        (None, None, None) => sharded(
            keys::BY_START_INDEX,
            keys::ENTITY_ATTR,
            keys::exec_entities(),
        ),
    };
    (partitions, residual)
}

/// The plan before the filter indexes, over the indexes every table has: `byLive` for a live
/// status, else `byWorkflow` or `byStart`, everything else filtered.
fn base_plan(query: &ExecutionQuery) -> (Vec<IndexPartition>, bool) {
    let partitions = match (&query.status, &query.workflow_id) {
        (Some(status), _) if !status.is_terminal() => keys::live_shards()
            .into_iter()
            .map(|v| IndexPartition::new(keys::BY_LIVE_INDEX, keys::LIVE_SHARD_ATTR, v))
            .collect(),
        (_, Some(w)) => vec![IndexPartition::new(
            keys::BY_WORKFLOW_INDEX,
            keys::WORKFLOW_ID_ATTR,
            w.clone(),
        )],
        _ => keys::exec_entities()
            .into_iter()
            .map(|v| IndexPartition::new(keys::BY_START_INDEX, keys::ENTITY_ATTR, v))
            .collect(),
    };
    (partitions, true)
}

/// A Query refused because its index does not exist (DynamoDB: "The table does not have the
/// specified index", a ValidationException; moto: "Invalid index", ResourceNotFoundException)
/// or is being built ("Cannot read from backfilling global secondary index").
fn unreadable_index<E>(
    err: &aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().is_some_and(|e| {
        let message = e.message().unwrap_or_default();
        match e.code() {
            Some("ValidationException") => {
                message.contains("specified index") || message.contains("backfilling")
            }
            Some("ResourceNotFoundException") => message.contains("Invalid index"),
            _ => false,
        }
    })
}

/// A dedupe key may be (re)written when absent, expired, or already this execution's (`id`);
/// a refusal answers with the key as it stands (whose execution holds it).
fn dedupe_condition(id: &str, now: i64) -> Condition {
    Condition::new("attribute_not_exists(#pk) OR expiresAt <= :now OR #first = :id")
        .name("#pk", EXECUTIONS_PK)
        .name("#first", "first")
        .value(":now", n(now))
        .value(":id", s(id))
        .return_old()
}

/// The indexes a loop counter's `counted` set lists.
fn counted_set(counter: &Item) -> BTreeSet<u32> {
    match counter.get("counted") {
        Some(AttributeValue::Ns(set)) => set.iter().filter_map(|i| i.parse().ok()).collect(),
        _ => BTreeSet::new(),
    }
}

/// A loop counter's lane marks ([`LANE_MARKS`]): lane -> lowest index still to be found in
/// `counted`. A lane not listed is at its first index (the lane number itself).
fn lane_marks(counter: &Item) -> BTreeMap<u32, u32> {
    let Some(AttributeValue::M(marks)) = counter.get(LANE_MARKS) else {
        return BTreeMap::new();
    };
    marks
        .iter()
        .filter_map(|(lane, mark)| match mark {
            AttributeValue::N(n) => Some((lane.parse().ok()?, n.parse().ok()?)),
            _ => None,
        })
        .collect()
}

/// Whether `index` is counted by a lane mark of this counter (folded out of `counted`).
fn below_its_mark(counter: &Item, index: u32, concurrency: u32) -> bool {
    let lane = index % concurrency.max(1);
    lane_marks(counter)
        .get(&lane)
        .is_some_and(|&mark| index < mark)
}

/// What compacting this counter would write: the lane marks moved past the indexes of
/// `counted` that follow them without a gap, and those indexes; None while they are fewer
/// than [`COMPACT_RUN`].
fn compaction(counter: &Item) -> Option<(BTreeMap<u32, u32>, Vec<u32>)> {
    let concurrency = u32::try_from(get_n(counter, "concurrency")?).ok()?.max(1);
    let set = counted_set(counter);
    let mut marks = lane_marks(counter);
    let mut run = Vec::new();
    let lanes: BTreeSet<u32> = set.iter().map(|i| i % concurrency).collect();
    for lane in lanes {
        let mark = marks.entry(lane).or_insert(lane);
        while set.contains(mark) {
            run.push(*mark);
            *mark += concurrency;
        }
    }
    (run.len() >= COMPACT_RUN as usize).then_some((marks, run))
}

/// The loop's counter item exists: an update must not create one (`fail_loop`,
/// `count_iteration`).
fn counter_exists() -> Condition {
    Condition::new("attribute_exists(#sk)").name("#sk", SK)
}

/// "Still my claim": the step is running at the claim's attempt (`finish_step`, `renew_lease`).
fn still_claimed(claim: &StepRecord) -> StoreResult<Condition> {
    Ok(
        Condition::new("#status = :running AND attempts = :attempts")
            .name("#status", "status")
            .value(":running", step_status_value(StepStatus::Running)?)
            .value(":attempts", n(claim.attempts)),
    )
}

#[async_trait]
impl ExecutionStore for DynamoStore {
    async fn create_execution(
        &self, execution: &ExecutionRecord, dedupe: Option<&DedupeKey>,
    ) -> StoreResult<CreateOutcome> {
        let id = &execution.id;
        let exec_item = encode(
            &ExecItem::new(execution, self.retention_days),
            &format!("{id}/{EXEC_SK}"),
            self.item_limit,
        )?;
        Ok(
            match self.create_item(execution, exec_item, dedupe).await? {
                Creation::Duplicate(first) => CreateOutcome::Duplicate(first),
                Creation::New | Creation::Redelivered { .. } => CreateOutcome::Created,
            },
        )
    }

    /// The pure start's records ride in the `EXEC` item when they cost no write unit there
    /// (`dynamo/staged.rs`): one request in all. Otherwise, and for a redelivered create whose
    /// stored item has none, they are `STEP#` items written in the worker's order.
    async fn create_execution_with_steps(
        &self, execution: &ExecutionRecord, dedupe: Option<&DedupeKey>, steps: &[StepRecord],
    ) -> StoreResult<CreateOutcome> {
        let id = &execution.id;
        if steps.is_empty() {
            return create_in_worker_order(self, execution, dedupe, steps).await;
        }
        let what = format!("{id}/{EXEC_SK}");
        let mut exec = ExecItem::new(execution, self.retention_days);
        let text = staged::encode(steps, id)?;
        // The item without the records: the one attribute less (a string: name and text).
        let staged_bytes = staged::STAGED_ATTR.len() + text.len();
        exec.staged = Some(text);
        // A terminal execution is not written again; a live one gets its final status.
        let growth = if execution.status.is_terminal() {
            0
        } else {
            staged::TERMINAL_GROWTH
        };
        let exec_item = match encode(&exec, &what, self.item_limit) {
            Ok(item) => {
                let with = item_size(&item);
                if !staged::fits(with - staged_bytes, with, growth) {
                    return create_in_worker_order(self, execution, dedupe, steps).await;
                }
                item
            }
            Err(_) => return create_in_worker_order(self, execution, dedupe, steps).await,
        };
        match self.create_item(execution, exec_item, dedupe).await? {
            Creation::Duplicate(first) => Ok(CreateOutcome::Duplicate(first)),
            Creation::New | Creation::Redelivered { staged: true } => Ok(CreateOutcome::Created),
            Creation::Redelivered { staged: false } => {
                create_in_worker_order(self, execution, dedupe, steps).await
            }
        }
    }

    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let item = self
            .get_item(&self.executions, key(id, EXEC_SK), "get_execution")
            .await?;
        if let Some(item) = item.as_ref()
            && self.staged_steps.get(id).is_none()
        {
            self.remember_staged(id, item);
        }
        let record = item.map(exec_or_damaged);
        if let Some(r) = record.as_ref().filter(|r| !r.status.is_terminal()) {
            self.remember_facts(r);
        }
        Ok(record)
    }

    async fn update_execution(&self, id: &str, update: &ExecutionUpdate) -> StoreResult<bool> {
        let what = format!("{id}/{EXEC_SK}");
        let mut sets = vec!["#status = :status".to_string()];
        let mut condition =
            Condition::new("attribute_exists(#pk) AND #status IN (:queued, :running)")
                .name("#pk", EXECUTIONS_PK)
                .name("#status", "status")
                .value(":status", status_value(update.status))
                .value(":queued", status_value(ExecutionStatus::Queued))
                .value(":running", status_value(ExecutionStatus::Running))
                .return_old();
        // The new attributes alone must fit; DynamoDB refuses a whole item over the limit
        // itself (mapped to TooLarge), and either way nothing is written.
        let mut added = Item::new();
        for (attribute, text) in [
            ("output", update.output.as_ref().map(serde_json::to_string)),
            ("error", update.error.as_ref().map(serde_json::to_string)),
        ] {
            if let Some(text) = text.transpose().map_err(|e| {
                StoreError::Permanent(format!("cannot encode {attribute} of {id}: {e}"))
            })? {
                added.insert(attribute.into(), s(text));
                sets.push(format!("#{attribute} = :{attribute}"));
                condition = condition.name(format!("#{attribute}"), attribute);
            }
        }
        check_size(&added, &what, self.item_limit)?;
        for (attribute, v) in added {
            condition = condition.value(format!(":{attribute}"), v);
        }
        if let Some(finished_at) = update.finished_at {
            sets.push("finishedAt = :finished".into());
            sets.push("durationMs = :finished - startedAt".into());
            condition = condition.value(":finished", n(finished_at));
        }
        // A finished execution leaves the live index (`byLive` is sparse on `liveShard`) and
        // enters the status indexes. `workflowStatus` needs the workflow id, which an update
        // expression cannot join to the status: one small read (the two attributes) finds it,
        // and the trigger type, so that an item written before the trigger indexes existed is
        // added to them when it finishes (an unchanged index key writes no index).
        let remove = if update.status.is_terminal() {
            let Some((workflow_id, trigger)) = self.index_facts(id).await? else {
                return Err(StoreError::NotFound(format!("execution {id}")));
            };
            let status = update.status.as_str();
            sets.push("#ss = :ss".into());
            sets.push("#ws = :ws".into());
            sets.push("#ts = if_not_exists(#ts, :ts)".into());
            sets.push("#wt = if_not_exists(#wt, :wt)".into());
            condition = condition
                .name("#live", keys::LIVE_SHARD_ATTR)
                .name("#ss", keys::STATUS_SHARD_ATTR)
                .name("#ws", keys::WORKFLOW_STATUS_ATTR)
                .name("#ts", keys::TRIGGER_SHARD_ATTR)
                .name("#wt", keys::WORKFLOW_TRIGGER_ATTR)
                .value(":ss", s(keys::status_shard(status, id)))
                .value(":ws", s(keys::workflow_status(&workflow_id, status)))
                .value(":ts", s(keys::trigger_shard(&trigger, id)))
                .value(":wt", s(keys::workflow_trigger(&workflow_id, &trigger)));
            " REMOVE #live"
        } else {
            ""
        };
        let written = self
            .update_if(
                key(id, EXEC_SK),
                &format!("SET {}{remove}", sets.join(", ")),
                condition,
                None,
                "update_execution",
            )
            .await?;
        if update.status.is_terminal() {
            self.execution_facts.forget(id);
        }
        match written {
            Conditional::Written(_) => Ok(true),
            Conditional::Refused(Some(_)) => Ok(false),
            Conditional::Refused(None) => match self.load_execution(id).await? {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound(format!("execution {id}"))),
            },
        }
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage> {
        let limit = page_size(query.limit);
        let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let lower = query.started_after.map(keys::started_bound);
        let upper = match (cursor, query.started_before.map(keys::started_bound)) {
            (Some(c), Some(b)) => Some(c.min(b)),
            (c, b) => c.or(b),
        };
        if let (Some(lo), Some(hi)) = (&lower, &upper)
            && lo >= hi
        {
            return Ok(ExecutionPage::default());
        }
        let keep = |r: &ExecutionRecord| {
            query.status.is_none_or(|st| r.status == st)
                && query.trigger.as_ref().is_none_or(|t| &r.trigger.kind == t)
                && query.version.is_none_or(|v| r.version == v)
                && query
                    .workflow_id
                    .as_ref()
                    .is_none_or(|w| &r.workflow_id == w)
        };
        // The smallest index that holds every match, and whether some of what it lists may
        // still not match (then pages are read ahead, since `Limit` applies before filtering).
        // A filter index the table does not have yet (a stack upgraded one index per deploy)
        // or is still building is read around: the indexes every table has, filtered.
        let (partitions, filtered) = index_plan(query);
        let items = match self
            .read_plan(partitions, filtered, &lower, &upper, limit, &keep)
            .await?
        {
            Some(items) => items,
            None => {
                let (partitions, _) = base_plan(query);
                self.read_plan(partitions, true, &lower, &upper, limit, &keep)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Permanent(
                            "list_executions: the listing indexes cannot be read".into(),
                        )
                    })?
            }
        };
        let rows = items
            .into_iter()
            .map(|r| (keys::started_key(r.started_at, &r.id), r));
        let (items, next_cursor) = cut_page(rows, limit);
        Ok(ExecutionPage { items, next_cursor })
    }

    async fn delete_execution(&self, id: &str) -> StoreResult<()> {
        self.delete_partition(&self.executions, EXECUTIONS_PK, id, "delete_execution")
            .await
    }

    async fn get_step(&self, execution_id: &str, path: &str) -> StoreResult<Option<StepRecord>> {
        let item: Option<StepItem> = self
            .load(execution_id, &keys::step_sk(path), "get_step")
            .await?;
        if let Some(item) = item {
            return Ok(Some(item.into_record()));
        }
        let staged = self.staged_records(execution_id).await?;
        Ok(staged.iter().find(|r| r.path == path).cloned())
    }

    async fn list_steps(&self, execution_id: &str) -> StoreResult<Vec<StepRecord>> {
        let steps = self.steps_query("list_steps", execution_id);
        let rows = self.query_all(steps).await?;
        let items: Vec<StepRecord> = rows
            .into_iter()
            .map(|i| step_or_damaged(execution_id, i))
            .collect();
        let mut steps = staged::merge(items, &self.staged_records(execution_id).await?);
        sort_steps(&mut steps);
        Ok(steps)
    }

    async fn list_step_keys(&self, execution_id: &str) -> StoreResult<Vec<StepKey>> {
        // Only the three attributes come back (a query is billed by the items' size all the
        // same, but the records' input and output are not transferred or held).
        let steps = self
            .steps_query("list_step_keys", execution_id)
            .project("#sk, startedAt, #next", &[("#next", "next")]);
        let rows = self.query_all(steps).await?;
        let fallback = ulid_time_ms(execution_id).unwrap_or(0);
        let mut keys: Vec<StepKey> = rows
            .iter()
            .map(|row| {
                let sk = get_s(row, SK).unwrap_or_default();
                StepKey {
                    path: sk.strip_prefix(keys::STEP_PREFIX).unwrap_or(sk).to_string(),
                    started_at: get_n(row, "startedAt").unwrap_or(fallback),
                    next: get_s(row, "next").map(str::to_string),
                }
            })
            .collect();
        let staged = self.staged_records(execution_id).await?;
        let stored: BTreeSet<String> = keys.iter().map(|k| k.path.clone()).collect();
        keys.extend(
            staged
                .iter()
                .filter(|r| !stored.contains(&r.path))
                .map(|r| StepKey {
                    path: r.path.clone(),
                    started_at: r.started_at,
                    next: r.next.clone(),
                }),
        );
        Ok(keys)
    }

    async fn get_steps(
        &self, execution_id: &str, paths: &[String],
    ) -> StoreResult<Vec<StepRecord>> {
        let keys = paths
            .iter()
            .map(|p| key(execution_id, &keys::step_sk(p)))
            .collect();
        let items: Vec<StepRecord> = self
            .batch_get(keys, "get_steps")
            .await?
            .into_iter()
            .map(|item| step_or_damaged(execution_id, item))
            .collect();
        if items.len() == paths.len() {
            return Ok(items);
        }
        let staged = self.staged_records(execution_id).await?;
        let asked: Vec<StepRecord> = staged
            .iter()
            .filter(|r| paths.contains(&r.path))
            .cloned()
            .collect();
        Ok(staged::merge(items, &asked))
    }

    async fn claim_step(
        &self, execution_id: &str, record: &StepRecord, now: i64,
    ) -> StoreResult<ClaimOutcome> {
        // A staged record (`dynamo/staged.rs`) holds its path as a `STEP#` item would; a claim
        // it allows is a `STEP#` item from then on (the condition below sees none yet).
        let staged = self.staged_records(execution_id).await?;
        if let Some(held) = staged.iter().find(|r| r.path == record.path)
            && !staged::claim_allowed(held, record, now)
        {
            return Ok(ClaimOutcome::Held(held.clone()));
        }
        let condition = Condition::new(
            "attribute_not_exists(#sk) \
             OR (#status = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil <= :now) \
                 AND attempts <= :attempts) \
             OR (#status = :retrying AND attempts < :attempts)",
        )
        .name("#sk", SK)
        .name("#status", "status")
        .value(":running", step_status_value(StepStatus::Running)?)
        .value(":retrying", step_status_value(StepStatus::Retrying)?)
        .value(":now", n(now))
        .value(":attempts", n(record.attempts))
        .return_old();
        self.put_claim(execution_id, record, condition, "claim_step")
            .await
    }

    async fn claim_new_step(
        &self, execution_id: &str, record: &StepRecord, _now: i64,
    ) -> StoreResult<ClaimOutcome> {
        let staged = self.staged_records(execution_id).await?;
        if let Some(held) = staged.iter().find(|r| r.path == record.path) {
            return Ok(ClaimOutcome::Held(held.clone()));
        }
        let absent = Condition::absent(SK).return_old();
        self.put_claim(execution_id, record, absent, "claim_new_step")
            .await
    }

    async fn finish_step(&self, execution_id: &str, record: &StepRecord) -> StoreResult<bool> {
        let sk = keys::step_sk(&record.path);
        let item = encode(
            &StepItem::new(execution_id, record, self.retention_days),
            &format!("{execution_id}/{sk}"),
            self.item_limit,
        )?;
        let still_mine = still_claimed(record)?;
        Ok(self
            .put_if(&self.executions, item, still_mine, "finish_step")
            .await?
            .written())
    }

    async fn renew_lease(
        &self, execution_id: &str, claim: &StepRecord, lease_until: i64,
    ) -> StoreResult<bool> {
        // Items written before `leaseLost` existed have no attribute: that is 0.
        let same_takeovers = if claim.lease_lost == 0 {
            "(attribute_not_exists(leaseLost) OR leaseLost = :lost)"
        } else {
            "leaseLost = :lost"
        };
        let condition = still_claimed(claim)?
            .and(same_takeovers)
            .value(":lost", n(claim.lease_lost))
            .value(":lease", n(lease_until));
        let step = key(execution_id, &keys::step_sk(&claim.path));
        let renew = "SET leaseUntil = :lease";
        let written = self
            .update_if(step, renew, condition, None, "renew_lease")
            .await?;
        Ok(written.written())
    }

    async fn init_loop(
        &self, execution_id: &str, loop_path: &str, state: &LoopState, items: &[Value],
    ) -> StoreResult<LoopState> {
        if let Some(stored) = self.load_loop(execution_id, loop_path).await? {
            return Ok(stored);
        }
        let ttl = self.ttl_of(execution_id, SystemClock.now_ms());
        let (counter, pages) = loop_items(execution_id, loop_path, state, items, ttl)?;
        let counter = encode(
            &counter,
            &format!("{execution_id}/{}", counter.sk),
            self.item_limit,
        )?;
        let pages = pages
            .iter()
            .map(|p| encode(p, &format!("{execution_id}/{}", p.sk), self.item_limit))
            .collect::<Result<Vec<_>, _>>()?;
        // The pages first (plain puts: a repeat writes the same pages), then the counter put
        // only if absent: a counter that exists always has all its pages.
        self.write_batch(&self.executions, pages, BatchAction::Put, "init_loop")
            .await?;
        let put = self
            .put_if(
                &self.executions,
                counter,
                Condition::absent(SK),
                "init_loop",
            )
            .await?;
        if put.written() {
            return Ok(*state);
        }
        self.load_loop(execution_id, loop_path)
            .await?
            .ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "init_loop {execution_id}/{loop_path}: the counter was refused but is not there"
                ))
            })
    }

    async fn loop_item(
        &self, execution_id: &str, loop_path: &str, index: u32,
    ) -> StoreResult<Option<Value>> {
        let (page, offset) = keys::loop_item_page(index);
        let sk = keys::loop_items_sk(loop_path, page);
        let what = format!("{execution_id}/{sk}");
        let items: Arc<str> = match self.item_pages.get(&what) {
            Some(items) => items,
            None => {
                let Some(page) = self
                    .load::<LoopItemsItem>(execution_id, &sk, "loop_item")
                    .await?
                else {
                    return Ok(None);
                };
                let items: Arc<str> = page.items.into();
                if items.len() <= PAGE_REMEMBERED_BYTES {
                    let bytes = items.len();
                    self.item_pages
                        .put_weighing(what.clone(), items.clone(), bytes);
                }
                items
            }
        };
        // Only the wanted item is decoded; the others stay raw text.
        let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(&items)
            .map_err(|e| StoreError::Permanent(format!("cannot decode item {what}: {e}")))?;
        raw.get(offset)
            .map(|item| {
                serde_json::from_str(item.get())
                    .map_err(|e| StoreError::Permanent(format!("cannot decode item {what}: {e}")))
            })
            .transpose()
    }

    async fn get_loop(
        &self, execution_id: &str, loop_path: &str,
    ) -> StoreResult<Option<LoopState>> {
        self.load_loop(execution_id, loop_path).await
    }

    async fn fail_loop(&self, execution_id: &str, loop_path: &str) -> StoreResult<()> {
        let counter = key(execution_id, &keys::loop_sk(loop_path));
        let condition = counter_exists().value(":true", AttributeValue::Bool(true));
        let written = self
            .update_if(counter, "SET failed = :true", condition, None, "fail_loop")
            .await?;
        if written.written() {
            Ok(())
        } else {
            Err(loop_not_found(execution_id, loop_path))
        }
    }

    async fn count_iterations(
        &self, execution_id: &str, loop_path: &str, results: &[(u32, Value)],
    ) -> StoreResult<IterationCount> {
        // 1. The results, where they have none yet (a redelivery keeps the first ones).
        let ttl = self.ttl_of(execution_id, SystemClock.now_ms());
        for page in iteration_pages(execution_id, loop_path, results, self.item_limit)? {
            self.put_iteration_page(execution_id, page, ttl).await?;
        }
        // 2. The counts: markers and decrement in one conditional single-item update per
        // chunk; one by one where a chunk is refused (some of it was counted before).
        let counter = key(execution_id, &keys::loop_sk(loop_path));
        let concurrency = self.loop_concurrency(execution_id, loop_path).await?;
        let mut indexes: Vec<u32> = results.iter().map(|(i, _)| *i).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let what = format!("{execution_id}/{}", keys::loop_sk(loop_path));
        let mut outcome = IterationCount::AlreadyCounted;
        for chunk in indexes.chunks(COUNTS_PER_UPDATE) {
            if chunk.len() > 1
                && let Some(state) = self
                    .count_together(&counter, chunk, concurrency, &what)
                    .await?
            {
                outcome = IterationCount::Counted(state);
                continue;
            }
            for &index in chunk {
                let one = self
                    .count_one(execution_id, loop_path, &counter, index, concurrency)
                    .await?;
                if let IterationCount::Counted(state) = one {
                    outcome = IterationCount::Counted(state);
                }
            }
        }
        Ok(outcome)
    }

    async fn list_iterations(
        &self, execution_id: &str, loop_path: &str,
    ) -> StoreResult<Vec<(u32, Value)>> {
        let prefix = keys::iter_prefix(loop_path);
        let iterations = QuerySpec::partition(
            "list_iterations",
            &self.executions,
            EXECUTIONS_PK,
            execution_id,
        )
        .begins_with(&prefix);
        let rows = self.query_all(iterations).await?;
        // Pages come in key order; an index in two pages (batches cut differently by a
        // replay, with the same result: see the port) is listed once, from the first page.
        let mut out = BTreeMap::new();
        for row in rows {
            // The prefix also matches iterations of loops nested in this one
            // (`ITER#each[..]/inner[..]`): keep only this loop's.
            let Some(sk) = get_s(&row, SK) else { continue };
            if keys::iteration_of(loop_path, sk).is_none() {
                continue;
            }
            let what = format!("{execution_id}/{sk}");
            for (index, result) in iteration_results(&row, &what)? {
                out.entry(index).or_insert(result);
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn get_mark(&self, name: &str) -> StoreResult<Value> {
        let pk = wf_core::keys::mark_pk(name);
        match self
            .get_item(
                &self.executions,
                key(&pk, wf_core::keys::MARK_SK),
                "get_mark",
            )
            .await?
        {
            Some(item) => Ok(decode::<MarkItem>(item, &pk)?.value),
            None => Ok(Value::Null),
        }
    }

    async fn put_mark(&self, name: &str, value: &Value) -> StoreResult<()> {
        // A cleared mark is stored as null (`get_mark` answers null either way): a put, so the
        // trigger function's role needs no DeleteItem.
        let pk = wf_core::keys::mark_pk(name);
        let item = encode(
            &MarkItem {
                execution_id: pk.clone(),
                sk: wf_core::keys::MARK_SK.to_string(),
                value: value.clone(),
            },
            &pk,
            self.item_limit,
        )?;
        self.put_item(&self.executions, item, "put_mark").await
    }

    async fn record_rejection(&self, rejection: &EventRejection) -> StoreResult<()> {
        let pk = wf_core::keys::rejections_pk(&rejection.workflow_id);
        let sk = wf_core::keys::rejection_sk(rejection.event_time, &rejection.event_id);
        let what = format!("{pk}/{sk}");
        let item = encode(
            &RejectionItem {
                execution_id: pk,
                sk,
                rejection: rejection.clone(),
                // Kept as long as the executions (the event id is a ULID when we made it).
                ttl: self.ttl_of(&rejection.event_id, rejection.rejected_at),
            },
            &what,
            self.item_limit,
        )?;
        // A plain put: the same event again writes the same item.
        self.put_item(&self.executions, item, "record_rejection")
            .await
    }

    async fn list_rejections(
        &self, workflow_id: &str, limit: usize, cursor: Option<&str>,
    ) -> StoreResult<RejectionPage> {
        let limit = page_size(limit);
        let pk = wf_core::keys::rejections_pk(workflow_id);
        let start = cursor
            .map(decode_cursor)
            .transpose()?
            .map(|sk| key(&pk, &sk));
        let out = self
            .client
            .query()
            .table_name(&self.executions)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", EXECUTIONS_PK)
            .expression_attribute_values(":pk", s(&pk))
            .scan_index_forward(false)
            // One more than the page: whether there is a next page is then known now.
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .store_err("list_rejections")?;
        let rows = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|row| {
                let item = decode::<RejectionItem>(row, &pk)?;
                Ok((item.sk, item.rejection))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let (items, next_cursor) = cut_page(rows, limit);
        Ok(RejectionPage { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = wf_core::keys::encode_cursor(&keys::started_key(1_700_000_000_000, "01JD"));
        assert_eq!(
            decode_cursor(&c).expect("decode"),
            keys::started_key(1_700_000_000_000, "01JD")
        );
        for bad in ["", "zz", "abc", "00", "é1", "6162"] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}

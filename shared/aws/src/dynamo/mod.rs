//! `DynamoStore`: the definition, execution and record stores on three DynamoDB tables.
//!
//! Every read is strongly consistent (a worker must see the output a previous step stored
//! before it queued this one). Conditional writes carry
//! `ReturnValuesOnConditionCheckFailure = ALL_OLD` where the caller answers from the stored item
//! (`Condition::return_old`), so a lost condition costs no second read.

mod definitions;
mod executions;
pub mod items;
pub mod keys;
mod records;
mod staged;
pub mod tables;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, ReturnValue, TransactWriteItem, WriteRequest,
};
use wf_core::{StoreError, StoreResult};

use crate::config::Config;
use crate::error::{Failure, SdkResultExt, build_error, classify, store_error};
use items::{Item, MAX_ITEM_BYTES};

/// The DynamoDB store. Cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    workflows: String,
    executions: String,
    records: String,
    retention_days: u32,
    item_limit: usize,
    /// Each loop's concurrency, once read (it never changes): `loop_concurrency`.
    loop_concurrencies: Arc<Remembered<u32>>,
    /// Each live execution's workflow id and trigger type (they never change; a terminal
    /// update needs them for its index keys), as this process created or read it.
    execution_facts: Arc<Remembered<(String, String)>>,
    /// Pages of loop items (immutable once the loop started) this process read, each up to
    /// [`PAGE_REMEMBERED_BYTES`], [`PAGES_REMEMBERED_BYTES`] in all: each slot's chain of
    /// iterations walks the pages, and the other slots' chains walk the same ones.
    item_pages: Arc<Remembered<Arc<str>>>,
    /// The staged step records (`dynamo/staged.rs`) of each execution this process read:
    /// written with the `EXEC` item, never changed.
    staged_steps: Arc<Remembered<Arc<Vec<wf_core::execution::StepRecord>>>>,
}

/// Facts that never change once written (a loop's concurrency, an execution's workflow id,
/// a page of loop items), kept per process so that a worker does not read them again. A
/// bounded map: each entry weighs something (1, or its bytes), and the map is emptied when
/// the weights would pass `cap` (the facts are cheap to read again).
#[derive(Debug)]
struct Remembered<V> {
    map: Mutex<Weighed<V>>,
    cap: usize,
}

#[derive(Debug)]
struct Weighed<V> {
    entries: HashMap<String, (V, usize)>,
    weight: usize,
}

impl<V: Clone> Remembered<V> {
    fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(Weighed {
                entries: HashMap::new(),
                weight: 0,
            }),
            cap,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Weighed<V>> {
        // A panic while holding it cannot leave the map half-written: use it as it is.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, key: &str) -> Option<V> {
        self.lock().entries.get(key).map(|(v, _)| v.clone())
    }

    /// Keep `value`, weighing 1.
    fn put(&self, key: String, value: V) {
        self.put_weighing(key, value, 1);
    }

    fn put_weighing(&self, key: String, value: V, weight: usize) {
        let mut map = self.lock();
        if map.weight + weight > self.cap {
            map.entries.clear();
            map.weight = 0;
        }
        if let Some((_, old)) = map.entries.insert(key, (value, weight)) {
            map.weight -= old;
        }
        map.weight += weight;
    }

    fn forget(&self, key: &str) {
        let mut map = self.lock();
        if let Some((_, old)) = map.entries.remove(key) {
            map.weight -= old;
        }
    }
}

/// Loops whose concurrency a process keeps; executions whose facts it keeps.
const REMEMBERED: usize = 4096;
/// Bytes of loop item pages a process keeps in all, and the largest page it keeps.
const PAGES_REMEMBERED_BYTES: usize = 4 * 1024 * 1024;
const PAGE_REMEMBERED_BYTES: usize = 256 * 1024;

impl DynamoStore {
    pub fn new(client: Client, config: &Config) -> Self {
        Self {
            client,
            workflows: config.workflows_table.clone(),
            executions: config.executions_table.clone(),
            records: config.records_table.clone(),
            retention_days: config.retention_days,
            item_limit: MAX_ITEM_BYTES,
            loop_concurrencies: Remembered::new(REMEMBERED),
            execution_facts: Remembered::new(REMEMBERED),
            item_pages: Remembered::new(PAGES_REMEMBERED_BYTES),
            staged_steps: Remembered::new(staged::STAGED_REMEMBERED_BYTES),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The executions table (tests read raw items from it, e.g. the TTL attribute).
    pub fn executions_table(&self) -> &str {
        &self.executions
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// A strongly consistent GetItem.
    async fn get_item(&self, table: &str, key: Item, op: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .store_err(op)?;
        Ok(out.item)
    }

    /// An unconditional PutItem (the same item again writes the same thing).
    async fn put_item(&self, table: &str, item: Item, op: &str) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .store_err(op)?;
        Ok(())
    }

    /// Every item of a key condition (all pages), strongly consistent, in sort key order.
    async fn query_all(&self, q: QuerySpec<'_>) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .query()
                .table_name(q.table)
                .key_condition_expression(q.condition)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            for (k, v) in &q.names {
                req = req.expression_attribute_names(*k, *v);
            }
            for (k, v) in &q.values {
                req = req.expression_attribute_values(*k, v.clone());
            }
            if let Some(p) = q.projection {
                req = req.projection_expression(p);
            }
            let page = req.send().await.store_err(q.op)?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Delete every item of partition `pk` of `table` (whose partition key is `pk_attribute`).
    async fn delete_partition(
        &self, table: &str, pk_attribute: &'static str, pk: &str, op: &str,
    ) -> StoreResult<()> {
        let query = QuerySpec::partition(op, table, pk_attribute, pk).project("#pk, #sk", &[]);
        let keys = self.query_all(query).await?;
        self.write_batch(table, keys, BatchAction::Delete, op).await
    }

    /// BatchWriteItem of `action` on each of `items`, 25 requests per call, retrying what comes
    /// back unprocessed.
    async fn write_batch(
        &self, table: &str, items: Vec<Item>, action: BatchAction, op: &str,
    ) -> StoreResult<()> {
        let requests = items
            .into_iter()
            .map(|item| action.request(item))
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in requests.chunks(25) {
            let mut requests = chunk.to_vec();
            for attempt in 0..8u32 {
                if requests.is_empty() {
                    break;
                }
                if attempt > 0 {
                    backoff(attempt).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .store_err(op)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
            }
            if !requests.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "{op}: {} writes still unprocessed after retries",
                    requests.len()
                )));
            }
        }
        Ok(())
    }
}

/// What a batch write does with each item it is given.
#[derive(Debug, Clone, Copy)]
enum BatchAction {
    /// Put the item (unconditionally: the same item again writes the same thing).
    Put,
    /// Delete the item of this key.
    Delete,
}

impl BatchAction {
    fn request(self, item: Item) -> StoreResult<WriteRequest> {
        match self {
            BatchAction::Put => PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|p| WriteRequest::builder().put_request(p).build())
                .map_err(|e| build_error("a put request", e)),
            BatchAction::Delete => DeleteRequest::builder()
                .set_key(Some(item))
                .build()
                .map(|d| WriteRequest::builder().delete_request(d).build())
                .map_err(|e| build_error("a delete request", e)),
        }
    }
}

/// A key-condition query of one partition of one table.
struct QuerySpec<'a> {
    op: &'a str,
    table: &'a str,
    condition: &'static str,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
    projection: Option<&'static str>,
}

impl<'a> QuerySpec<'a> {
    /// Every item of partition `pk` (`pk_attribute`: the table's partition key), whole.
    fn partition(op: &'a str, table: &'a str, pk_attribute: &'static str, pk: &str) -> Self {
        Self {
            op,
            table,
            condition: "#pk = :pk",
            names: vec![("#pk", pk_attribute)],
            values: vec![(":pk", items::s(pk))],
            projection: None,
        }
    }

    /// Only the items whose sort key begins with `prefix`.
    fn begins_with(mut self, prefix: &str) -> Self {
        self.condition = "#pk = :pk AND begins_with(#sk, :prefix)";
        self.names.push(("#sk", keys::SK));
        self.values.push((":prefix", items::s(prefix)));
        self
    }

    /// Only the attributes of `projection`, in which `#pk` and `#sk` name the key and `names`
    /// gives any other placeholder.
    fn project(mut self, projection: &'static str, names: &[(&'static str, &'static str)]) -> Self {
        self.projection = Some(projection);
        self.names.push(("#sk", keys::SK));
        self.names.extend_from_slice(names);
        self
    }
}

/// A short, growing, jittered pause before retrying a contended or throttled write.
async fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(ulid::Ulid::new().random() as u16) % base.max(1);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

/// What a conditional write (PutItem, UpdateItem, a transaction's Put) must find, with the
/// names and values its expressions use.
#[derive(Debug, Clone)]
struct Condition {
    expression: String,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
    /// Whether a refusal answers with the item as it stood (ALL_OLD): asked where the caller
    /// answers from it, so a lost condition costs no second read; not asked elsewhere, so a
    /// refused write does not transfer a large item for nothing.
    return_old: bool,
}

impl Condition {
    fn new(expression: impl Into<String>) -> Self {
        Self {
            expression: expression.into(),
            names: Vec::new(),
            values: Vec::new(),
            return_old: false,
        }
    }

    /// No condition: only the names and values an update expression uses.
    fn always() -> Self {
        Self::new("")
    }

    /// The item does not exist yet: no item has `attribute` (a key attribute) at that key.
    fn absent(attribute: &'static str) -> Self {
        Self::new("attribute_not_exists(#key)").name("#key", attribute)
    }

    /// This condition and `clause` (which may use names and values added after).
    fn and(mut self, clause: &str) -> Self {
        self.expression = format!("{} AND {clause}", self.expression);
        self
    }

    fn name(mut self, placeholder: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.names.push((placeholder.into(), attribute.into()));
        self
    }

    fn value(mut self, placeholder: impl Into<String>, value: AttributeValue) -> Self {
        self.values.push((placeholder.into(), value));
        self
    }

    fn return_old(mut self) -> Self {
        self.return_old = true;
        self
    }
}

/// `$request` (a PutItem, UpdateItem or transaction Put builder) under `$condition`: the SDK's
/// builders share these setters but no trait.
macro_rules! with_condition {
    ($request:expr, $condition:expr) => {{
        let condition: Condition = $condition;
        let mut request = $request;
        if !condition.expression.is_empty() {
            request = request.condition_expression(condition.expression);
        }
        for (placeholder, attribute) in condition.names {
            request = request.expression_attribute_names(placeholder, attribute);
        }
        for (placeholder, value) in condition.values {
            request = request.expression_attribute_values(placeholder, value);
        }
        if condition.return_old {
            request = request.return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        }
        request
    }};
}

/// How a conditional write ended when nothing else went wrong.
#[derive(Debug)]
enum Conditional {
    /// Written; for an UpdateItem, the attributes its `ReturnValues` asked for.
    Written(Option<Item>),
    /// The condition failed: the item as it stood, when `return_old` asked for it and there
    /// was one.
    Refused(Option<Item>),
}

impl Conditional {
    fn written(&self) -> bool {
        matches!(self, Conditional::Written(_))
    }
}

impl DynamoStore {
    /// A PutItem of `item` under `condition`.
    async fn put_if(
        &self, table: &str, item: Item, condition: Condition, op: &str,
    ) -> StoreResult<Conditional> {
        let request = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item));
        match with_condition!(request, condition).send().await {
            Ok(_) => Ok(Conditional::Written(None)),
            Err(e) => condition_failed(op, e, |e| match e.into_service_error() {
                PutItemError::ConditionalCheckFailedException(e) => e.item,
                _ => None,
            })
            .map(Conditional::Refused),
        }
    }

    /// An UpdateItem of `key` by `update` under `condition` (which holds the names and values
    /// of both expressions), answering the attributes `returns` asks for. Only on the executions
    /// table: the other tables' items are put whole.
    async fn update_if(
        &self, key: Item, update: &str, condition: Condition, returns: Option<ReturnValue>,
        op: &str,
    ) -> StoreResult<Conditional> {
        let request = self
            .client
            .update_item()
            .table_name(&self.executions)
            .set_key(Some(key))
            .update_expression(update)
            .set_return_values(returns);
        match with_condition!(request, condition).send().await {
            Ok(out) => Ok(Conditional::Written(out.attributes)),
            Err(e) => condition_failed(op, e, |e| match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                _ => None,
            })
            .map(Conditional::Refused),
        }
    }
}

/// A transaction's Put of `item` under `condition`.
fn transaction_put(
    table: &str, item: Item, condition: Condition,
) -> StoreResult<TransactWriteItem> {
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = with_condition!(put, condition)
        .build()
        .map_err(|e| build_error("a transaction put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// `Ok(old item)` when a write lost its condition (the item is `None` when there was none or
/// it was not asked for; `old_item` takes it from the operation's own error type), the mapped
/// error otherwise.
fn condition_failed<E>(
    op: &str, err: SdkError<E, HttpResponse>,
    old_item: impl FnOnce(SdkError<E, HttpResponse>) -> Option<Item>,
) -> StoreResult<Option<Item>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if classify(&err) != Failure::Condition {
        return Err(store_error(op, err));
    }
    Ok(old_item(err))
}

/// One item's outcome in a cancelled transaction.
#[derive(Debug, Clone, Default)]
struct Reason {
    /// `ConditionalCheckFailed`, `TransactionConflict`, `None`, ...
    code: String,
    /// The item as it stood, when the condition failed and ALL_OLD was asked for.
    item: Option<Item>,
}

impl Reason {
    fn condition_failed(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }
}

/// `Ok(reasons)` when a transaction was cancelled, the mapped error otherwise.
fn transaction_cancelled(
    op: &str, err: SdkError<TransactWriteItemsError, HttpResponse>,
) -> StoreResult<Vec<Reason>> {
    if classify(&err) != Failure::Cancelled {
        return Err(store_error(op, err));
    }
    match err.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(e) => Ok(e
            .cancellation_reasons()
            .iter()
            .map(|r| Reason {
                code: r.code().unwrap_or("None").to_string(),
                item: r.item().cloned(),
            })
            .collect()),
        other => Err(StoreError::Permanent(format!("{op}: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::Remembered;

    #[test]
    fn remembered_facts_are_bounded_by_their_weight() {
        let pages = Remembered::<String>::new(100);
        pages.put_weighing("a".into(), "A".into(), 60);
        pages.put_weighing("a".into(), "A2".into(), 30);
        pages.put_weighing("b".into(), "B".into(), 60);
        // a (30, replaced) + b (60) = 90: both kept.
        assert_eq!(pages.get("a").as_deref(), Some("A2"));
        assert_eq!(pages.get("b").as_deref(), Some("B"));
        // 90 + 20 passes 100: emptied, then c kept.
        pages.put_weighing("c".into(), "C".into(), 20);
        assert_eq!((pages.get("a"), pages.get("b")), (None, None));
        assert_eq!(pages.get("c").as_deref(), Some("C"));
        pages.forget("c");
        assert_eq!(pages.get("c"), None);
        // Forgotten weight is given back: 100 fits again without emptying.
        pages.put_weighing("d".into(), "D".into(), 50);
        pages.put_weighing("e".into(), "E".into(), 50);
        assert_eq!(pages.get("d").as_deref(), Some("D"));
        assert_eq!(pages.get("e").as_deref(), Some("E"));
    }
}

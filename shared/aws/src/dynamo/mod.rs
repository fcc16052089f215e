//! `DynamoStore`: the definition, execution and record stores on three DynamoDB tables.
//!
//! Every read is strongly consistent (a worker must see the output a previous step stored
//! before it queued this one). Conditional writes carry
//! `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a lost condition costs no second read.

mod definitions;
mod executions;
pub mod items;
pub mod keys;
mod records;
pub mod tables;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use wf_core::StoreError;

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
}

impl DynamoStore {
    pub fn new(client: Client, config: &Config) -> Self {
        Self {
            client,
            workflows: config.workflows_table.clone(),
            executions: config.executions_table.clone(),
            records: config.records_table.clone(),
            retention_days: config.retention_days,
            item_limit: MAX_ITEM_BYTES,
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
    async fn get_item(&self, table: &str, key: Item, op: &str) -> Result<Option<Item>, StoreError> {
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
    async fn put_item(&self, table: &str, item: Item, op: &str) -> Result<(), StoreError> {
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
    async fn query_all(&self, q: QuerySpec<'_>) -> Result<Vec<Item>, StoreError> {
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
            for (k, v) in q.names {
                req = req.expression_attribute_names(*k, *v);
            }
            for (k, v) in q.values {
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

    /// Delete items by key, 25 per request, until nothing is left unprocessed.
    async fn delete_keys(&self, table: &str, keys: Vec<Item>, op: &str) -> Result<(), StoreError> {
        let requests = keys
            .into_iter()
            .map(|key| {
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(|e| build_error("a delete request", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_batch(table, requests, op).await
    }

    /// Put items (unconditionally), 25 per request, until nothing is left unprocessed.
    async fn put_items(&self, table: &str, items: Vec<Item>, op: &str) -> Result<(), StoreError> {
        let requests = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(|e| build_error("a put request", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_batch(table, requests, op).await
    }

    /// BatchWriteItem, 25 requests per call, retrying what comes back unprocessed.
    async fn write_batch(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
        op: &str,
    ) -> Result<(), StoreError> {
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

/// A key-condition query over one table.
struct QuerySpec<'a> {
    op: &'a str,
    table: &'a str,
    condition: &'a str,
    names: &'a [(&'a str, &'a str)],
    values: &'a [(&'a str, AttributeValue)],
    projection: Option<&'a str>,
}

/// A short, growing, jittered pause before retrying a contended or throttled write.
async fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(ulid::Ulid::new().random() as u16) % base.max(1);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

/// `Ok(old item)` when a PutItem lost its condition (the item is `None` when there was none),
/// the mapped error otherwise.
fn put_condition_failed(
    op: &str,
    err: SdkError<PutItemError, HttpResponse>,
) -> Result<Option<Item>, StoreError> {
    if classify(&err) != Failure::Condition {
        return Err(store_error(op, err));
    }
    Ok(match err.into_service_error() {
        PutItemError::ConditionalCheckFailedException(e) => e.item,
        _ => None,
    })
}

/// [`put_condition_failed`] for UpdateItem.
fn update_condition_failed(
    op: &str,
    err: SdkError<UpdateItemError, HttpResponse>,
) -> Result<Option<Item>, StoreError> {
    if classify(&err) != Failure::Condition {
        return Err(store_error(op, err));
    }
    Ok(match err.into_service_error() {
        UpdateItemError::ConditionalCheckFailedException(e) => e.item,
        _ => None,
    })
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
    op: &str,
    err: SdkError<TransactWriteItemsError, HttpResponse>,
) -> Result<Vec<Reason>, StoreError> {
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

//! `RecordStore` on the `records` table (pk `collection`, sk `id`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use serde_json::Value;
use wf_core::ports::{RecordCreate, RecordStore};
use wf_core::{StoreError, StoreResult};

use super::items::{Item, RecordItem, decode, encode, n, s};
use super::keys::{RECORDS_PK, RECORDS_SK};
use super::{Condition, Conditional, DynamoStore, backoff};
use crate::error::SdkResultExt;

fn key(collection: &str, id: &str) -> Item {
    Item::from([
        (RECORDS_PK.to_string(), s(collection)),
        (RECORDS_SK.to_string(), s(id)),
    ])
}

impl DynamoStore {
    async fn load_record(&self, collection: &str, id: &str) -> StoreResult<Option<RecordItem>> {
        self.get_item(&self.records, key(collection, id), "get record")
            .await?
            .map(|i| decode(i, &format!("{collection}/{id}")))
            .transpose()
    }
}

#[async_trait]
impl RecordStore for DynamoStore {
    async fn create(
        &self, collection: &str, id: &str, data: &Value, idempotency_key: &str,
    ) -> StoreResult<RecordCreate> {
        let what = format!("{collection}/{id}");
        let item = RecordItem {
            collection: collection.to_string(),
            id: id.to_string(),
            data: data.clone(),
            idempotency_key: idempotency_key.to_string(),
            rev: 1,
        };
        let item = encode(&item, &what, self.item_limit)?;
        let new_record = Condition::absent(RECORDS_SK).return_old();
        let put = self
            .put_if(&self.records, item, new_record, "record create")
            .await?;
        match put {
            Conditional::Written(_) => Ok(RecordCreate::Created(data.clone())),
            Conditional::Refused(stored) => {
                let stored = match stored {
                    Some(item) => Some(decode::<RecordItem>(item, &what)?),
                    None => self.load_record(collection, id).await?,
                };
                Ok(match stored {
                    Some(stored) if stored.idempotency_key == idempotency_key => {
                        RecordCreate::Replayed(stored.data)
                    }
                    _ => RecordCreate::Exists,
                })
            }
        }
    }

    async fn get(&self, collection: &str, id: &str) -> StoreResult<Option<Value>> {
        Ok(self.load_record(collection, id).await?.map(|r| r.data))
    }

    /// Read, merge, write under a condition on the revision read (the data is JSON text, so the
    /// merge happens here); a concurrent update makes it read again.
    async fn update(&self, collection: &str, id: &str, patch: &Value) -> StoreResult<Value> {
        let what = format!("{collection}/{id}");
        let Value::Object(patch) = patch else {
            return Err(StoreError::Permanent(format!(
                "record {what}: an update needs a JSON object to merge"
            )));
        };
        for attempt in 0..8u32 {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some(mut stored) = self.load_record(collection, id).await? else {
                return Err(StoreError::NotFound(format!("record {what}")));
            };
            let merged = match std::mem::take(&mut stored.data) {
                Value::Object(mut object) => {
                    object.extend(patch.clone());
                    Value::Object(object)
                }
                _ => Value::Object(patch.clone()),
            };
            let read_rev = stored.rev;
            stored.data = merged.clone();
            stored.rev = read_rev + 1;
            let item = encode(&stored, &what, self.item_limit)?;
            let same_rev = Condition::new("rev = :rev").value(":rev", n(read_rev));
            let put = self
                .put_if(&self.records, item, same_rev, "record update")
                .await?;
            if put.written() {
                return Ok(merged);
            }
        }
        Err(StoreError::Unavailable(format!(
            "record {what} is being updated concurrently; try again"
        )))
    }

    async fn delete(&self, collection: &str, id: &str) -> StoreResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.records)
            .set_key(Some(key(collection, id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .store_err("record delete")?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn query(
        &self, collection: &str, after: Option<&str>, limit: usize,
    ) -> StoreResult<Vec<(String, Value)>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let left = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let mut req = self
                .client
                .query()
                .table_name(&self.records)
                .expression_attribute_names("#c", RECORDS_PK)
                .expression_attribute_values(":c", s(collection))
                .consistent_read(true)
                .limit(left.min(1000))
                .set_exclusive_start_key(start.take());
            req = match after {
                Some(after) => req
                    .key_condition_expression("#c = :c AND #id > :after")
                    .expression_attribute_names("#id", RECORDS_SK)
                    .expression_attribute_values(":after", s(after)),
                None => req.key_condition_expression("#c = :c"),
            };
            let page = req.send().await.store_err("record query")?;
            for item in page.items.unwrap_or_default() {
                let record: RecordItem = decode(item, collection)?;
                out.push((record.id, record.data));
            }
            // A page may stop short (1 MB): keep going until `limit` or the end.
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

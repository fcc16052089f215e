//! What the scale measurements (`tests/src/bin/sweep_scale.rs`, `filter_scale.rs`) share: an
//! SDK interceptor counting DynamoDB requests and the items each answer carried, a bulk load of
//! execution records as the store writes them, and a listing read to its last page.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use aws_sdk_dynamodb::config::Intercept;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use wf_aws::DynamoStore;
use wf_aws::dynamo::items::execution_item;
use wf_core::execution::{ExecutionQuery, ExecutionRecord};
use wf_core::ports::ExecutionStore;

/// Requests and items returned, by DynamoDB operation.
#[derive(Debug, Default)]
pub struct Counter {
    ops: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl Counter {
    /// What was counted since the last call (and start again from zero).
    pub fn take(&self) -> BTreeMap<String, (u64, u64)> {
        std::mem::take(&mut *self.ops.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The interceptor that feeds a [`Counter`] (`Moto::clients(Some(SharedInterceptor::new(..)))`).
#[derive(Debug)]
pub struct Counting(pub Arc<Counter>);

fn op_of(target: Option<&str>) -> String {
    target
        .and_then(|t| t.split_once('.'))
        .map_or("unknown", |(_, op)| op)
        .to_string()
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "scale-counter"
    }

    fn read_before_transmit(
        &self, context: &BeforeTransmitInterceptorContextRef<'_>, _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = op_of(context.request().headers().get("x-amz-target"));
        let mut ops = self.0.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.entry(op.clone()).or_default().0 += 1;
        cfg.interceptor_state().store_put(Op(op));
        Ok(())
    }

    /// Items each answer carried (keys of an index page, records of a batch read).
    fn read_after_deserialization(
        &self, context: &AfterDeserializationInterceptorContextRef<'_>, _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let items = match context.output_or_error() {
            Ok(out) => {
                if let Some(q) = out.downcast_ref::<QueryOutput>() {
                    q.count() as u64
                } else if let Some(b) = out.downcast_ref::<BatchGetItemOutput>() {
                    b.responses()
                        .map_or(0, |r| r.values().map(|v| v.len() as u64).sum())
                } else {
                    0
                }
            }
            Err(_) => 0,
        };
        let op = cfg
            .load::<Op>()
            .map_or_else(|| "unknown".to_string(), |o| o.0.clone());
        let mut ops = self.0.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.entry(op).or_default().1 += items;
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Op(String);

impl aws_smithy_types::config_bag::Storable for Op {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Put `records` into `table` exactly as the store writes them (`execution_item`, every index
/// attribute), in BatchWriteItem requests of 25, four at a time; progress on stderr.
pub async fn load_records(
    client: &aws_sdk_dynamodb::Client, table: &str, records: impl Iterator<Item = ExecutionRecord>,
) -> anyhow::Result<usize> {
    let requests = records
        .map(|r| {
            let item = execution_item(&r, 30)?;
            Ok(WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batches: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    let mut written = 0;
    for group in batches.chunks(4) {
        let sends = group.iter().map(|batch| {
            client
                .batch_write_item()
                .request_items(table, batch.clone())
                .send()
        });
        for out in futures::future::join_all(sends).await {
            let out = out.context("BatchWriteItem")?;
            anyhow::ensure!(
                out.unprocessed_items().is_none_or(|u| u.is_empty()),
                "moto left items unprocessed"
            );
        }
        written += group.iter().map(Vec::len).sum::<usize>();
        if written % 10_000 < 100 {
            eprintln!("loaded {written} executions");
        }
    }
    Ok(written)
}

/// Every page of `query`: how many executions it listed.
pub async fn read_all(store: &DynamoStore, mut query: ExecutionQuery) -> anyhow::Result<usize> {
    let mut n = 0;
    loop {
        let page = store.list_executions(&query).await?;
        n += page.items.len();
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return Ok(n),
        }
    }
}

//! `SqsQueue`: the step queue on SQS.
//!
//! * Sends go out in `SendMessageBatch` requests of up to 10 entries (and under SQS's 256 KiB per
//!   request); each task's delay becomes `DelaySeconds`, rounded up to whole seconds so a task is
//!   never visible before its delay. Past SQS's 900 s maximum the message carries the time it is
//!   due (`wfNotBefore`); a receive that finds it early sends it again with the delay left (a
//!   re-delay chain) instead of handing it out.
//! * Message attributes carry the execution id, path and attempt for tracing (they show in the
//!   console and in a DLQ without decoding the body).
//! * A receipt is `<messageId>:<receiveCount>:<receiptHandle>`. SQS documents that deleting with
//!   an outdated receipt handle succeeds without deleting; this process also refuses to delete
//!   with a receipt older than one it has handed out since (moto deletes with any handle the
//!   message ever had), so an ack from a worker that overran its visibility timeout never drops
//!   a message another worker holds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use wf_core::execution::StepTask;
use wf_core::ports::{Clock, Delivery, SystemClock, TaskQueue};
use wf_core::{StoreError, StoreResult};

use crate::error::{SdkResultExt, build_error};

/// SQS's message size limit (body plus attributes), and the limit of one batch request.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The longest `DelaySeconds` SQS accepts.
pub const MAX_DELAY_SECONDS: u64 = 900;
/// The attribute holding when a chained (past 900 s) message is due, in epoch milliseconds.
pub const NOT_BEFORE_ATTRIBUTE: &str = "wfNotBefore";
/// Receipts remembered to refuse stale acks (the oldest are forgotten first).
const REMEMBERED_RECEIPTS: usize = 10_000;

/// The step queue on one SQS queue. Cheap to clone.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    clock: Arc<dyn Clock>,
    latest: Arc<Mutex<LatestReceives>>,
}

impl std::fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueue")
            .field("queue_url", &self.queue_url)
            .finish_non_exhaustive()
    }
}

/// The highest receive count handed out per message id, bounded.
#[derive(Default)]
struct LatestReceives {
    counts: HashMap<String, u32>,
    order: VecDeque<String>,
}

impl LatestReceives {
    fn record(&mut self, message_id: &str, count: u32) {
        let entry = self.counts.entry(message_id.to_string()).or_insert(0);
        if *entry == 0 {
            self.order.push_back(message_id.to_string());
        }
        *entry = (*entry).max(count);
        // `forget` leaves its id in `order` (removing it there would cost a scan per ack), so
        // an id may be evicted a little early: it only weakens the stale check for that id.
        while self.order.len() > REMEMBERED_RECEIPTS {
            if let Some(old) = self.order.pop_front() {
                self.counts.remove(&old);
            }
        }
    }

    fn is_stale(&self, message_id: &str, count: u32) -> bool {
        self.counts
            .get(message_id)
            .is_some_and(|&latest| latest > count)
    }

    fn forget(&mut self, message_id: &str) {
        self.counts.remove(message_id);
    }
}

/// A parsed receipt.
struct Receipt<'a> {
    message_id: &'a str,
    count: u32,
    handle: &'a str,
}

fn parse_receipt(receipt: &str) -> Option<Receipt<'_>> {
    let (message_id, rest) = receipt.split_once(':')?;
    let (count, handle) = rest.split_once(':')?;
    Some(Receipt {
        message_id,
        count: count.parse().ok()?,
        handle,
    })
}

/// One message to send: body, delay, attributes.
struct Outgoing {
    body: String,
    delay_seconds: i32,
    attributes: HashMap<String, MessageAttributeValue>,
    size: usize,
}

fn string_attr(value: impl Into<String>) -> StoreResult<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| build_error("a message attribute", e))
}

fn number_attr(value: impl ToString) -> StoreResult<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(value.to_string())
        .build()
        .map_err(|e| build_error("a message attribute", e))
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            clock: Arc::new(SystemClock),
            latest: Arc::new(Mutex::new(LatestReceives::default())),
        }
    }

    /// Use `clock` for the re-delay chain (tests inject time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, LatestReceives> {
        // A poisoned map is still a valid map: it only ever holds counts.
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The message for `task` due `delay_ms` from now.
    fn outgoing(&self, task: &StepTask, delay_ms: u64) -> StoreResult<Outgoing> {
        let body = serde_json::to_string(task)
            .map_err(|e| StoreError::Permanent(format!("cannot encode a task: {e}")))?;
        // Whole seconds, rounded up: a task is never visible before its delay.
        let seconds = delay_ms.div_ceil(1000);
        let mut attributes = HashMap::from([
            ("executionId".to_string(), string_attr(&task.execution_id)?),
            ("path".to_string(), string_attr(&task.path)?),
            ("attempt".to_string(), number_attr(task.attempt)?),
        ]);
        if seconds > MAX_DELAY_SECONDS {
            let due = self
                .clock
                .now_ms()
                .saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
            attributes.insert(NOT_BEFORE_ATTRIBUTE.to_string(), number_attr(due)?);
        }
        let size = body.len()
            + attributes
                .iter()
                .map(|(k, v)| k.len() + v.data_type().len() + v.string_value().map_or(0, str::len))
                .sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return Err(StoreError::TooLarge(format!(
                "the task message for step {} of execution {} is {size} bytes; SQS's limit is \
                 {MAX_MESSAGE_BYTES} bytes (256 KB)",
                task.path, task.execution_id
            )));
        }
        Ok(Outgoing {
            body,
            delay_seconds: i32::try_from(seconds.min(MAX_DELAY_SECONDS)).unwrap_or(900),
            attributes,
            size,
        })
    }

    /// Send prepared messages in batches of at most 10 entries and 256 KiB; entries SQS fails
    /// for a transient reason are sent again.
    async fn send_all(&self, messages: Vec<Outgoing>) -> StoreResult<()> {
        let mut batch: Vec<Outgoing> = Vec::new();
        let mut bytes = 0;
        for m in messages {
            if batch.len() == 10 || bytes + m.size > MAX_MESSAGE_BYTES {
                self.send_batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += m.size;
            batch.push(m);
        }
        if !batch.is_empty() {
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    async fn send_batch(&self, batch: Vec<Outgoing>) -> StoreResult<()> {
        let pending: Vec<(String, Outgoing)> = batch
            .into_iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m))
            .collect();
        retry_batch("SendMessageBatch", pending, |pending| {
            self.send_round(pending)
        })
        .await
    }

    /// One round of [`Self::send_batch`]: the entries SQS failed for a transient reason.
    async fn send_round(
        &self, mut pending: Vec<(String, Outgoing)>,
    ) -> StoreResult<Vec<(String, Outgoing)>> {
        if pending.len() == 1 {
            // One message: the plain call is the same price and easier to read in logs.
            let (_, m) = &pending[0];
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&m.body)
                .delay_seconds(m.delay_seconds)
                .set_message_attributes(Some(m.attributes.clone()))
                .send()
                .await
                .store_err("SendMessage")?;
            return Ok(Vec::new());
        }
        let entries = pending
            .iter()
            .map(|(id, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(&m.body)
                    .delay_seconds(m.delay_seconds)
                    .set_message_attributes(Some(m.attributes.clone()))
                    .build()
                    .map_err(|e| build_error("a batch entry", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .store_err("SendMessageBatch")?;
        let failed = out.failed;
        if let Some(f) = failed.iter().find(|f| f.sender_fault) {
            return Err(StoreError::Permanent(format!(
                "SendMessageBatch refused entry {}: {} ({})",
                f.id,
                f.message.as_deref().unwrap_or("no message"),
                f.code
            )));
        }
        let failed_ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
        pending.retain(|(id, _)| failed_ids.contains(&id.as_str()));
        Ok(pending)
    }

    /// Delete several received messages in one request (what a Lambda event source mapping
    /// does after a batch). Stale receipts are skipped, as in [`TaskQueue::ack`].
    pub async fn ack_batch(&self, receipts: &[String]) -> StoreResult<()> {
        let mut entries = Vec::new();
        for (i, receipt) in receipts.iter().enumerate() {
            let r = parse_receipt(receipt)
                .ok_or_else(|| StoreError::Permanent(format!("invalid receipt {receipt:?}")))?;
            if self.latest().is_stale(r.message_id, r.count) {
                tracing::debug!(message_id = r.message_id, "ack of a stale receipt: ignored");
                continue;
            }
            entries.push((
                r.message_id.to_string(),
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r.handle)
                    .build()
                    .map_err(|e| build_error("a delete entry", e))?,
            ));
        }
        for chunk in entries.chunks(10) {
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(chunk.iter().map(|(_, e)| e.clone()).collect()))
                .send()
                .await
                .store_err("DeleteMessageBatch")?;
            for f in &out.failed {
                // An invalid handle is a message gone already; anything else comes back.
                tracing::debug!(id = %f.id, code = %f.code, "batch delete entry failed");
            }
            let mut latest = self.latest();
            for (message_id, _) in chunk {
                latest.forget(message_id);
            }
        }
        Ok(())
    }
}

/// Sends a batch in up to four rounds, 100, 200 and 400 ms apart: each `round` sends what is
/// pending and returns the entries that failed for a transient reason (a permanent refusal is
/// its error). What still fails after the last round is `Unavailable`. The queue's
/// `SendMessageBatch` and the bus's `PutEvents` both send this way.
pub(crate) async fn retry_batch<T, Round>(
    operation: &str, mut pending: Vec<T>, mut round: impl FnMut(Vec<T>) -> Round,
) -> StoreResult<()>
where
    Round: Future<Output = StoreResult<Vec<T>>>,
{
    for attempt in 0..4u32 {
        if pending.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        pending = round(pending).await?;
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "{operation}: {} entries still failing after retries",
            pending.len()
        )))
    }
}

#[async_trait]
impl TaskQueue for SqsQueue {
    async fn send(&self, tasks: &[(StepTask, u64)]) -> StoreResult<()> {
        let messages = tasks
            .iter()
            .map(|(task, delay)| self.outgoing(task, *delay))
            .collect::<Result<Vec<_>, _>>()?;
        self.send_all(messages).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> StoreResult<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = i32::try_from(max.min(10)).unwrap_or(10);
        // Whole seconds (SQS's unit), rounded up so a short wait is still a long poll.
        let wait_seconds = i32::try_from(wait.as_millis().div_ceil(1000).min(20)).unwrap_or(20);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .store_err("ReceiveMessage")?;
        let mut deliveries = Vec::new();
        let mut redelay = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let (Some(message_id), Some(handle)) =
                (m.message_id.as_deref(), m.receipt_handle.as_deref())
            else {
                continue;
            };
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse::<u32>().ok())
                .unwrap_or(1);
            let receipt = format!("{message_id}:{count}:{handle}");
            let task: StepTask = match m.body.as_deref().map(serde_json::from_str) {
                Some(Ok(task)) => task,
                other => {
                    // Nothing can ever process it: drop it rather than loop on it until the DLQ.
                    tracing::error!(message_id, body = ?m.body, error = ?other.map(|r| r.err()), "dropping undecodable queue message");
                    self.latest().record(message_id, count);
                    self.ack(&receipt).await?;
                    continue;
                }
            };
            let not_before = m
                .message_attributes
                .as_ref()
                .and_then(|a| a.get(NOT_BEFORE_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .and_then(|v| v.parse::<i64>().ok());
            self.latest().record(message_id, count);
            if let Some(due) = not_before {
                let left = due.saturating_sub(self.clock.now_ms());
                if left > 0 {
                    redelay.push((task, u64::try_from(left).unwrap_or(0), receipt));
                    continue;
                }
            }
            deliveries.push(Delivery {
                task,
                receipt,
                receive_count: count,
            });
        }
        for (task, left, receipt) in redelay {
            // The next link of the chain first, then drop this one: a crash in between leaves
            // a duplicate (harmless: tasks are idempotent), never a lost task.
            tracing::debug!(execution_id = %task.execution_id, path = %task.path, left_ms = left, "re-delaying a long-delayed task");
            self.send(&[(task, left)]).await?;
            self.ack(&receipt).await?;
        }
        Ok(deliveries)
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        let r = parse_receipt(receipt)
            .ok_or_else(|| StoreError::Permanent(format!("invalid receipt {receipt:?}")))?;
        if self.latest().is_stale(r.message_id, r.count) {
            tracing::debug!(
                message_id = r.message_id,
                "ack of a stale receipt (redelivered since): ignored"
            );
            return Ok(());
        }
        let deleted = self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(r.handle)
            .send()
            .await
            .store_err_unless("DeleteMessage", |e| e.is_receipt_handle_is_invalid())?;
        if deleted.is_none() {
            tracing::debug!(
                message_id = r.message_id,
                "ack of a message that is gone: ignored"
            );
        }
        self.latest().forget(r.message_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_parse_and_staleness_is_per_message() {
        let r = parse_receipt("m-1:3:AQEB+abc/==:x").expect("parse");
        assert_eq!(
            (r.message_id, r.count, r.handle),
            ("m-1", 3, "AQEB+abc/==:x")
        );
        assert!(parse_receipt("nonsense").is_none());
        let mut latest = LatestReceives::default();
        latest.record("m", 2);
        assert!(latest.is_stale("m", 1));
        assert!(!latest.is_stale("m", 2));
        assert!(!latest.is_stale("other", 1));
        latest.forget("m");
        assert!(!latest.is_stale("m", 1));
        for i in 0..(REMEMBERED_RECEIPTS + 5) {
            latest.record(&i.to_string(), 1);
        }
        assert!(latest.counts.len() <= REMEMBERED_RECEIPTS);
        assert!(latest.order.len() <= REMEMBERED_RECEIPTS);
    }
}

//! The local bridge: plays the AWS event sources `cargo lambda watch` lacks, against an emulator
//! (moto_server) or a real queue.
//!
//! * The SQS event source mapping: receive up to 10 step tasks, invoke the worker function with
//!   the real SQS event payload through the emulator's invoke endpoint
//!   (`POST /2015-03-31/functions/worker/invocations`), delete what it did not report in
//!   `batchItemFailures` (reported ones come back after the visibility timeout, as on AWS).
//! * Schedules firing (moto stores EventBridge Scheduler schedules but never fires them): the
//!   local [`Scheduler`] computes due fires of the active workflows in the store and invokes the
//!   trigger function with a schedule's input `{"workflowId", "scheduledTime"}`.
//! * The sweep rule: `{"sweep": true}` to the trigger function every minute.
//! * Event rules: a rule on the platform bus sends every event to a queue (`lambda_bridge setup`
//!   creates both; moto delivers rule targets to SQS), and the bridge hands each envelope to the
//!   trigger function as is, which routes it to every subscribed workflow (filter evaluated,
//!   execution id from the event id), as the per-workflow rules do on AWS.
//!
//! It counts the invocations it makes (the figures of `scripts/lambda-local`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{info, warn};
use wf_core::ports::{Clock, SystemClock};
use wf_core::time_fmt::format_ms;

use wf_app::AppError;
use wf_app::testing::sqs_event;
use wf_app::triggers::schedule::{FireSink, Fired, Scheduler, TokioSleeper};
use wf_core::ports::DefinitionStore;

/// Where the bridge sends invocations and reads tasks.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// `http://127.0.0.1:<port>` of `cargo lambda watch`.
    pub invoke_url: String,
    pub queue_url: String,
    /// The queue's ARN (`eventSourceARN` of the records).
    pub queue_arn: String,
    pub region: String,
    pub worker_function: String,
    pub trigger_function: String,
    /// Batch size of the event source (1..=10).
    pub batch_size: i32,
    pub sweep_every: Duration,
    /// How often the active workflows' schedules are read again.
    pub schedules_every: Duration,
    /// The queue the platform bus's events reach (`None`: events start nothing locally).
    pub events_queue_url: Option<String>,
}

impl BridgeOptions {
    pub fn new(invoke_url: &str, queue_url: &str, region: &str) -> Self {
        // http://host/123456789012/name -> arn:aws:sqs:<region>:123456789012:name
        let mut parts = queue_url.trim_end_matches('/').rsplit('/');
        let name = parts.next().unwrap_or("queue");
        let account = parts.next().unwrap_or("123456789012");
        Self {
            invoke_url: invoke_url.trim_end_matches('/').to_string(),
            queue_url: queue_url.to_string(),
            queue_arn: format!("arn:aws:sqs:{region}:{account}:{name}"),
            region: region.to_string(),
            worker_function: "worker".into(),
            trigger_function: "trigger".into(),
            batch_size: 10,
            sweep_every: Duration::from_secs(60),
            schedules_every: Duration::from_secs(5),
            events_queue_url: None,
        }
    }
}

/// Invocations made, per function.
#[derive(Debug, Default)]
pub struct Invocations {
    pub worker: AtomicU64,
    pub trigger: AtomicU64,
    /// Step tasks handed to the worker (messages in all batches).
    pub tasks: AtomicU64,
}

impl Invocations {
    pub fn snapshot(&self) -> Value {
        json!({
            "worker": self.worker.load(Ordering::Relaxed),
            "trigger": self.trigger.load(Ordering::Relaxed),
            "tasks": self.tasks.load(Ordering::Relaxed),
        })
    }
}

/// Invokes functions through the emulator's invoke endpoint.
#[derive(Clone)]
pub struct Invoker {
    http: reqwest::Client,
    base: String,
    pub counts: Arc<Invocations>,
}

impl Invoker {
    pub fn new(invoke_url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(900))
                .build()
                .expect("an HTTP client"),
            base: invoke_url.trim_end_matches('/').to_string(),
            counts: Arc::new(Invocations::default()),
        }
    }

    /// Invoke `function` with `payload` (RequestResponse); the function's answer, or an error
    /// naming what failed.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let counter = if function == "worker" {
            &self.counts.worker
        } else {
            &self.counts.trigger
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.base);
        let response = self
            .http
            .post(&url)
            .json(payload)
            .send()
            .await
            .map_err(|e| format!("invoke {function}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("invoke {function}: {e}"))?;
        if !status.is_success() {
            return Err(format!("invoke {function}: HTTP {status}: {text}"));
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if value.get("errorType").is_some() || value.get("errorMessage").is_some() {
            return Err(format!("{function} failed: {value}"));
        }
        Ok(value)
    }
}

/// Fires due schedules into the trigger function.
struct TriggerSink {
    invoker: Invoker,
    function: String,
}

#[async_trait]
impl FireSink for TriggerSink {
    async fn fire(&self, workflow_id: &str, _: u32, scheduled_ms: i64) -> Result<Fired, AppError> {
        let input = json!({ "workflowId": workflow_id, "scheduledTime": format_ms(scheduled_ms) });
        let answer = self
            .invoker
            .invoke(&self.function, &input)
            .await
            .map_err(|e| AppError::retryable("invoke", e))?;
        let started = &answer["started"][0];
        match started["executionId"].as_str() {
            Some(id) => Ok(Fired {
                execution_id: id.to_string(),
                duplicate: started["duplicate"].as_bool().unwrap_or(false),
                finished: None,
            }),
            None => Err(AppError::permanent(
                "invoke",
                format!("trigger answered {answer}"),
            )),
        }
    }
}

/// The bridge: runs until `shutdown` turns true.
pub struct Bridge {
    pub options: BridgeOptions,
    pub sqs: aws_sdk_sqs::Client,
    /// Where the active workflows' schedules are read.
    pub definitions: Arc<dyn DefinitionStore>,
    pub invoker: Invoker,
}

impl Bridge {
    pub fn new(
        options: BridgeOptions, sqs: aws_sdk_sqs::Client, definitions: Arc<dyn DefinitionStore>,
    ) -> Self {
        let invoker = Invoker::new(&options.invoke_url);
        Self {
            options,
            sqs,
            definitions,
            invoker,
        }
    }

    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let scheduler = Arc::new(Scheduler::new(
            clock.clone(),
            Arc::new(TokioSleeper::new(clock)),
            Arc::new(TriggerSink {
                invoker: self.invoker.clone(),
                function: self.options.trigger_function.clone(),
            }),
        ));
        let mut tasks = vec![tokio::spawn(scheduler.clone().run(shutdown.clone()))];
        {
            let (scheduler, definitions, every) = (
                scheduler.clone(),
                self.definitions.clone(),
                self.options.schedules_every,
            );
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Err(e) = scheduler.sync(&*definitions).await {
                        warn!(error = %e, "cannot read the schedules");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        {
            let (invoker, function, every) = (
                self.invoker.clone(),
                self.options.trigger_function.clone(),
                self.options.sweep_every,
            );
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                    if let Err(e) = invoker.invoke(&function, &json!({ "sweep": true })).await {
                        warn!(error = %e, "sweep invocation failed");
                    }
                }
            }));
        }
        let this = Arc::new(self);
        if let Some(events) = this.options.events_queue_url.clone() {
            let (bridge, mut stop) = (this.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = bridge.pump_events_once(&events) => {}
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        let this = &*this;
        info!(queue = %this.options.queue_url, invoke = %this.options.invoke_url, "bridge started");
        let mut stop = shutdown.clone();
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = this.pump_once() => {}
                _ = stop.changed() => break,
            }
        }
        for t in tasks {
            t.abort();
        }
        info!(invocations = %this.invoker.counts.snapshot(), "bridge stopped");
    }

    /// One receive from the events queue; each event goes to the trigger function (an event
    /// rule's delivery) and is deleted once handled; a failed invocation leaves it for redelivery.
    pub async fn pump_events_once(&self, queue_url: &str) -> usize {
        let received = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive of events failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return 0;
            }
        };
        for message in &messages {
            let envelope: Value = match message.body.as_deref().map(serde_json::from_str) {
                Some(Ok(v)) => v,
                _ => {
                    warn!(body = ?message.body, "an events queue message is not an EventBridge event: dropped");
                    self.delete(queue_url, message).await;
                    continue;
                }
            };
            match self
                .invoker
                .invoke(&self.options.trigger_function, &envelope)
                .await
            {
                Ok(answer) => {
                    info!(event = %envelope["detail-type"], %answer, "event delivered to trigger");
                    self.delete(queue_url, message).await;
                }
                Err(e) => {
                    warn!(error = %e, "event delivery failed; it comes back after the visibility timeout")
                }
            }
        }
        messages.len()
    }

    async fn delete(&self, queue_url: &str, message: &Message) {
        let Some(receipt) = message.receipt_handle() else {
            return;
        };
        if let Err(e) = self
            .sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
        }
    }

    /// One receive and (when it got tasks) one worker invocation; returns the tasks handed on.
    pub async fn pump_once(&self) -> usize {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.options.queue_url)
            .max_number_of_messages(self.options.batch_size)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return 0;
            }
        };
        if messages.is_empty() {
            return 0;
        }
        let event = sqs_event(&messages, &self.options.queue_arn, &self.options.region);
        self.invoker
            .counts
            .tasks
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let payload = serde_json::to_value(&event).expect("an SQS event is JSON");
        let answer = match self
            .invoker
            .invoke(&self.options.worker_function, &payload)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                // A failed invocation: every message comes back after the visibility timeout.
                warn!(error = %e, "worker invocation failed; the batch will be redelivered");
                return messages.len();
            }
        };
        let failed: Vec<String> = serde_json::from_value::<SqsBatchResponse>(answer)
            .map(|r| {
                r.batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect()
            })
            .unwrap_or_default();
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        if !entries.is_empty()
            && let Err(e) = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.options.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
        {
            warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
        }
        if !failed.is_empty() {
            info!(failed = failed.len(), "worker reported batch item failures");
        }
        messages.len()
    }
}

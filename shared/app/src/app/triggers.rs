//! Use cases of triggers: a webhook delivery (token, signature, idempotency, start), a platform
//! event (published, then routed to every subscribed workflow whose filter is true) and a
//! schedule's fire. Each derives its dedupe key (and, for events and fires, its execution id)
//! from what identifies the delivery, so a redelivery starts nothing new.

use http::HeaderMap;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};
use wf_core::StoreError;
use wf_core::event_chain;
use wf_core::execution::TriggerInfo;
use wf_core::expr::ExprContext;
use wf_core::model::{Trigger, WebhookScheme, WebhookTrigger};
use wf_core::ports::PlatformEvent;
use wf_core::rejection::{EventRejection, RejectionPage, RejectionReason};
use wf_core::time_fmt::format_ms;

use super::executions::{StartRequest, Started};
use super::{App, AppError};
use crate::webhooks::signature::{
    Secrets, SignatureError, idempotency_key, secrets_from_source, slack_url_verification, verify,
};

/// The same answer for an unknown workflow, an inactive one and a wrong token.
fn no_webhook() -> AppError {
    AppError::not_found("no active webhook at this URL")
}

/// One webhook delivery as the HTTP layer read it.
pub struct WebhookDelivery<'a> {
    pub workflow_id: &'a str,
    pub token: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    /// Slack's `url_verification`: answer with this challenge (nothing started).
    Challenge(String),
    Started(Started),
}

/// The input of a webhook body (`wf_core::webhook::body::webhook_input`): JSON, or for Slack
/// form-encoded bodies, a JSON object.
fn webhook_input(
    headers: &HeaderMap, body: &[u8], scheme: WebhookScheme,
) -> Result<Value, AppError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    wf_core::webhook::body::webhook_input(content_type, body, scheme)
        .map_err(super::json::body_error)
}

/// A refused signature: the request's fault (401), or the server's configuration (503, naming
/// where the secret was looked for, so the operator knows what to set).
fn signature_error(e: &SignatureError) -> AppError {
    let details = json!({ "reason": e.reason() });
    if e.is_config_error() {
        AppError::permanent(
            "not_configured",
            format!("this webhook refuses requests until its signing secret is set: {e}"),
        )
        .with_details(details)
    } else {
        AppError::invalid("signature", e.to_string()).with_details(details)
    }
}

/// The `event` object templates see in filters.
pub fn event_context(event: &PlatformEvent) -> Value {
    json!({
        "id": event.id, "type": event.event_type, "source": event.source,
        "detail": event.detail, "time": format_ms(event.time),
    })
}

/// The execution id of `workflow_id`'s run for event `event_id`: a ULID whose time part is the
/// event's time (now when it has none) and whose random part is a stable hash (FNV-1a, 128 bits)
/// of the workflow and the event id. A redelivered event, even after its dedupe key expired,
/// names the execution it started already.
pub fn event_execution_id(workflow_id: &str, event_id: &str, time_ms: i64) -> String {
    stable_ulid(
        time_ms,
        &[b"event", workflow_id.as_bytes(), event_id.as_bytes()],
    )
}

/// The execution id of the fire of `workflow_id` at `scheduled_ms`: a ULID whose timestamp is
/// the scheduled time and whose random bits are a stable hash of the workflow id and the time.
/// Every scheduler, process and release computes the same id.
pub fn scheduled_execution_id(workflow_id: &str, scheduled_ms: i64) -> String {
    let time = scheduled_ms.to_be_bytes();
    stable_ulid(scheduled_ms, &[b"schedule", workflow_id.as_bytes(), &time])
}

/// A ULID at `time_ms` whose 80 random bits are the high bits of FNV-1a (128 bits) over the
/// parts, each followed by a NUL. (Hand-written: eight lines, and the ids must never change,
/// which a hashing crate's version bump could do.)
fn stable_ulid(time_ms: i64, parts: &[&[u8]]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i < last { b"\0" } else { b"" };
        for b in part.iter().chain(sep) {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    ulid::Ulid::from_parts(time_ms.max(0) as u64, h >> 48).to_string()
}

/// The dedupe key of a fire: `schedule:<scheduled RFC 3339>` (scoped to the workflow by
/// [`App::start`]).
pub fn schedule_dedupe_key(scheduled_ms: i64) -> String {
    format!("schedule:{}", format_ms(scheduled_ms))
}

/// What an EventBridge schedule's fire did.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleFire {
    Started(Started),
    /// Nothing to start, and why.
    Skipped(String),
}

/// One execution started (or found) for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub workflow_id: String,
    pub execution_id: String,
    pub duplicate: bool,
}

/// A type of platform event: 1-128 letters, digits, '.', '_' or '-'.
pub fn check_event_type(t: &str) -> Result<(), AppError> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "invalid_event",
            format!(
                "type {t:?} must be 1-128 characters of letters, digits, '.', '_' or '-' (e.g. order.created)"
            ),
        ))
    }
}

impl App {
    /// A webhook delivery: the URL's token, the trigger's signature scheme, the body as input,
    /// `Idempotency-Key` (or the scheme's message id) as dedupe key. A refused request starts
    /// nothing and is counted by reason at `/metrics`.
    pub async fn receive_webhook(
        &self, delivery: WebhookDelivery<'_>,
    ) -> Result<WebhookOutcome, AppError> {
        let workflow_id = delivery.workflow_id;
        // Read through the cache of META (`meta_cache`): a change made through this process is
        // seen at once, one made by another process within `META_FRESH_FOR`.
        let meta = self
            .metas
            .get(self.svc.definitions.as_ref(), workflow_id)
            .await?
            .ok_or_else(no_webhook)?;
        let expected = meta.webhook_token.as_deref().unwrap_or_default();
        let token_ok: bool = expected.as_bytes().ct_eq(delivery.token.as_bytes()).into();
        let version = meta.active_version.filter(|_| meta.active);
        let (Some(version), true) = (version, token_ok && !expected.is_empty()) else {
            return Err(no_webhook());
        };
        let compiled = self.definition(workflow_id, version).await?;
        let trigger: WebhookTrigger = compiled
            .workflow
            .triggers()
            .iter()
            .find_map(|t| match t {
                Trigger::Webhook(w) => Some(w.clone()),
                _ => None,
            })
            .ok_or_else(no_webhook)?;
        let secrets = webhook_secrets(self, &meta.webhook_secrets, &trigger);
        let now_secs = self.svc.clock.now_ms() / 1000;
        let verified = verify(
            trigger.scheme,
            &secrets,
            delivery.headers,
            delivery.body,
            now_secs,
        )
        .map_err(|e| {
            self.metrics
                .incr("wf_webhook_signature_failures_total", e.reason());
            warn!(workflow_id, reason = e.reason(), error = %e, "webhook refused");
            signature_error(&e)
        })?;
        if trigger.scheme == WebhookScheme::Slack
            && let Some(challenge) = slack_url_verification(delivery.body)
        {
            return Ok(WebhookOutcome::Challenge(challenge));
        }
        let input = webhook_input(delivery.headers, delivery.body, trigger.scheme)?;
        let key = idempotency_key(delivery.headers, &verified);
        let mut request = StartRequest::new(input, TriggerInfo::new("webhook"));
        if let Some(k) = &key {
            request.trigger = request.trigger.with("idempotencyKey", k.clone());
        }
        request.dedupe_key = key.map(|k| format!("webhook:{k}"));
        let started = self.start(&compiled, request).await?;
        info!(workflow_id, execution_id = %started.execution_id, duplicate = started.duplicate, "webhook accepted");
        Ok(WebhookOutcome::Started(started))
    }

    /// Why the webhook of an active workflow would refuse every request now, if it would: its
    /// scheme needs a secret and none is set (`wf dev` prints it next to the URL).
    pub async fn webhook_unusable(&self, workflow_id: &str) -> Result<Option<String>, AppError> {
        let Some(meta) = self.svc.definitions.get_meta(workflow_id).await? else {
            return Ok(None);
        };
        let Some(version) = meta.active_version.filter(|_| meta.active) else {
            return Ok(None);
        };
        let compiled = self.definition(workflow_id, version).await?;
        for t in compiled.workflow.triggers() {
            if let Trigger::Webhook(w) = t
                && w.scheme != WebhookScheme::None
            {
                let secrets = webhook_secrets(self, &meta.webhook_secrets, w);
                if secrets.is_empty() {
                    return Ok(Some(match &w.secret_env {
                        Some(var) => format!(
                            "refuses requests until {} is set (the signing secret)",
                            self.svc.secrets.describe(var)
                        ),
                        None => "refuses requests until a signing secret is set (secretEnv, or PUT /workflows/{id}/webhook/secrets)".to_string(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Publish a platform event (`POST /events`; on AWS, to the EventBridge bus). Returns its id.
    pub async fn publish_event(
        &self, event_type: &str, detail: Value, id: Option<String>, source: Option<String>,
    ) -> Result<String, AppError> {
        check_event_type(event_type)?;
        let id = id.unwrap_or_else(|| ulid::Ulid::new().to_string());
        let event = PlatformEvent {
            id: id.clone(),
            event_type: event_type.to_string(),
            source: source.unwrap_or_else(|| "api".to_string()),
            detail: if detail.is_null() { json!({}) } else { detail },
            time: self.svc.clock.now_ms(),
            // From outside: the origin of any chain it starts.
            chain: Vec::new(),
        };
        self.svc.bus.publish(&[event]).await?;
        Ok(id)
    }

    /// Start every active workflow with an `event` trigger of the event's type whose `filter`
    /// is true, once per event id (limited to workflow `only` when given: an EventBridge rule
    /// per workflow delivers `{"workflowId", "event"}`). A failing filter or input skips that
    /// workflow only (logged, counted in `wf_event_rejections_total`); store errors are
    /// returned so the caller retries the event.
    ///
    /// An event whose causation chain is at a bound (`wf_core::event_chain::check_route`:
    /// depth, or the workflow revisited too often) starts nothing, counted in
    /// `wf_events_refused_total`; the execution it starts otherwise stores the chain plus its
    /// own workflow id in `trigger.chain`.
    pub async fn route_event(
        &self, event: &PlatformEvent, only: Option<&str>,
    ) -> Result<Vec<Routed>, AppError> {
        let mut routed = Vec::new();
        let metas = match only {
            Some(id) => self
                .svc
                .definitions
                .get_meta(id)
                .await?
                .into_iter()
                .collect(),
            None => self.svc.definitions.list_metas().await?,
        };
        for meta in metas {
            let Some(version) = meta.active_version.filter(|_| meta.active) else {
                continue;
            };
            let compiled = match self.definition(&meta.id, version).await {
                Ok(c) => c,
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    warn!(workflow_id = %meta.id, error = %e, "cannot load the active version");
                    continue;
                }
            };
            let subscribed = compiled
                .workflow
                .triggers()
                .iter()
                .any(|t| matches!(t, Trigger::Event(e) if e.event == event.event_type));
            if !subscribed {
                continue;
            }
            let limits = self.settings.event_limits();
            if let Err(refusal) = event_chain::check_route(&event.chain, &meta.id, limits) {
                self.metrics
                    .incr("wf_events_refused_total", refusal.reason());
                let message = refusal.describe(&event.chain);
                warn!(workflow_id = %meta.id, event_id = %event.id, reason = refusal.reason(), "{message}; not started");
                let reason = match refusal {
                    event_chain::ChainRefusal::Depth { .. } => RejectionReason::Depth,
                    event_chain::ChainRefusal::Revisit { .. } => RejectionReason::Revisit,
                };
                self.keep_rejection(&meta.id, event, reason, &message)
                    .await?;
                continue;
            }
            match self.filter_passes(&compiled, event) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    self.metrics.incr("wf_event_rejections_total", "filter");
                    warn!(workflow_id = %meta.id, event_id = %event.id, error = %e, "event filter failed; not started");
                    let message = format!("the trigger's filter failed: {e}");
                    self.keep_rejection(&meta.id, event, RejectionReason::Filter, &message)
                        .await?;
                    continue;
                }
            }
            let mut req = StartRequest::new(
                event.detail.clone(),
                TriggerInfo::new("event")
                    .with("eventId", event.id.clone())
                    .with("eventType", event.event_type.clone())
                    .with("chain", event_chain::extend(&event.chain, &meta.id)),
            );
            req.dedupe_key = Some(format!("event:{}", event.id));
            let time = if event.time > 0 {
                event.time
            } else {
                self.svc.clock.now_ms()
            };
            let execution_id = event_execution_id(&meta.id, &event.id, time);
            req.execution_id = Some(execution_id.clone());
            match self.start_once(&compiled, req).await {
                Ok(started) => {
                    info!(workflow_id = %meta.id, event_id = %event.id, execution_id = %started.execution_id, duplicate = started.duplicate, "event routed");
                    routed.push(Routed {
                        workflow_id: meta.id.clone(),
                        execution_id: started.execution_id,
                        duplicate: started.duplicate,
                    });
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    let reason = if e.code() == "invalid_input" {
                        RejectionReason::Input
                    } else {
                        RejectionReason::Start
                    };
                    self.metrics
                        .incr("wf_event_rejections_total", reason.as_str());
                    warn!(workflow_id = %meta.id, event_id = %event.id, error = %e, "event not started");
                    self.keep_rejection(&meta.id, event, reason, &e.to_string())
                        .await?;
                }
            }
        }
        Ok(routed)
    }

    /// Keep why `event` started nothing of `workflow_id` (listed by [`App::rejections`]).
    async fn keep_rejection(
        &self, workflow_id: &str, event: &PlatformEvent, reason: RejectionReason, message: &str,
    ) -> Result<(), AppError> {
        let now = self.svc.clock.now_ms();
        let rejection = EventRejection {
            workflow_id: workflow_id.to_string(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            source: event.source.clone(),
            event_time: if event.time > 0 { event.time } else { now },
            reason,
            message: String::new(),
            rejected_at: now,
        }
        .with_message(message);
        self.svc.executions.record_rejection(&rejection).await?;
        Ok(())
    }

    /// The events a workflow subscribed to and did not start on, newest first (`limit` 0: 50,
    /// at most 1000). An unknown workflow is not found; a cursor that is not one is invalid.
    pub async fn rejections(
        &self, workflow_id: &str, limit: usize, cursor: Option<&str>,
    ) -> Result<RejectionPage, AppError> {
        self.meta(workflow_id).await?;
        self.svc
            .executions
            .list_rejections(workflow_id, limit, cursor)
            .await
            .map_err(super::executions::listing_error)
    }

    /// Whether any of the workflow's triggers for this event type lets it through; the first
    /// filter that cannot be evaluated is the error.
    fn filter_passes(
        &self, compiled: &wf_core::engine::CompiledWorkflow, event: &PlatformEvent,
    ) -> Result<bool, wf_core::StepError> {
        let mut failed = None;
        for t in compiled.workflow.triggers() {
            let Trigger::Event(t) = t else { continue };
            if t.event != event.event_type {
                continue;
            }
            let Some(filter) = &t.filter else {
                return Ok(true);
            };
            let mut ctx = Map::new();
            ctx.insert("event".into(), event_context(event));
            ctx.insert(
                "vars".into(),
                Value::Object(compiled.workflow.config.variables.clone()),
            );
            match ExprContext::new(ctx).eval_bool(filter) {
                Ok(true) => return Ok(true),
                Ok(false) => {
                    debug!(workflow_id = %compiled.workflow.id, event_id = %event.id, "filter is false");
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(false), Err)
    }

    /// Start an execution whose id is deterministic (an event's, a fire's): one that exists
    /// already (a redelivery, even past its dedupe window; another scheduler's write between
    /// our read and ours) is answered as a duplicate.
    async fn start_once(
        &self, compiled: &wf_core::engine::CompiledWorkflow, req: StartRequest,
    ) -> Result<Started, AppError> {
        let Some(execution_id) = req.execution_id.clone() else {
            return self.start(compiled, req).await;
        };
        let seen = |execution_id: String| Started {
            execution_id,
            duplicate: true,
            finished: None,
        };
        if self
            .svc
            .executions
            .get_execution(&execution_id)
            .await?
            .is_some()
        {
            return Ok(seen(execution_id));
        }
        match self.start(compiled, req).await {
            Err(AppError::Conflict { message, .. }) => {
                match self.svc.executions.get_execution(&execution_id).await? {
                    Some(_) => Ok(seen(execution_id)),
                    None => Err(StoreError::Unavailable(message).into()),
                }
            }
            other => other,
        }
    }

    /// The fire of `workflow_id` (version `version`) at `scheduled_ms`: input
    /// `{"scheduledTime": "<RFC 3339>"}`, id [`scheduled_execution_id`], dedupe key
    /// [`schedule_dedupe_key`]. A repeat of the same fire answers the first execution with
    /// `duplicate: true`.
    pub async fn fire_schedule(
        &self, workflow_id: &str, version: u32, scheduled_ms: i64,
    ) -> Result<Started, AppError> {
        let compiled = self.definition(workflow_id, version).await?;
        let time = format_ms(scheduled_ms);
        let mut req = StartRequest::new(
            json!({ "scheduledTime": time }),
            TriggerInfo::new("schedule").with("scheduledTime", time.clone()),
        );
        req.execution_id = Some(scheduled_execution_id(workflow_id, scheduled_ms));
        req.dedupe_key = Some(schedule_dedupe_key(scheduled_ms));
        self.start_once(&compiled, req).await
    }

    /// The fire of an EventBridge schedule (AWS): the active version's, if it still has a
    /// schedule trigger; skipped with the reason when nothing is to start (inactive or deleted
    /// workflow, no schedule any more: its schedule is removed by the next sync).
    pub async fn fire_active_schedule(
        &self, workflow_id: &str, scheduled_ms: i64,
    ) -> Result<ScheduleFire, AppError> {
        let Some(meta) = self.svc.definitions.get_meta(workflow_id).await? else {
            return Ok(ScheduleFire::Skipped(format!(
                "workflow {workflow_id} does not exist"
            )));
        };
        let Some(version) = meta.active_version.filter(|_| meta.active) else {
            return Ok(ScheduleFire::Skipped(format!(
                "workflow {workflow_id} is not active (its schedule is removed by the next sync)"
            )));
        };
        let compiled = self.definition(workflow_id, version).await?;
        if !compiled
            .workflow
            .triggers()
            .iter()
            .any(|t| matches!(t, Trigger::Schedule(_)))
        {
            return Ok(ScheduleFire::Skipped(format!(
                "version {version} of workflow {workflow_id} has no schedule trigger"
            )));
        }
        let started = self
            .fire_schedule(workflow_id, version, scheduled_ms)
            .await?;
        info!(workflow_id, execution_id = %started.execution_id, duplicate = started.duplicate, "schedule fired");
        Ok(ScheduleFire::Started(started))
    }
}

/// Where a webhook's signing secrets come from: the API's (`PUT .../webhook/secrets`) when
/// set, else the trigger's `secretEnv` in this process's secret source.
fn webhook_secrets(app: &App, stored: &[String], trigger: &WebhookTrigger) -> Secrets {
    if !stored.is_empty() {
        Secrets::new(stored.to_vec()).with_source("the API (PUT /workflows/{id}/webhook/secrets)")
    } else {
        match &trigger.secret_env {
            Some(var) => secrets_from_source(&*app.svc.secrets, var),
            None => Secrets::default().with_source("no secretEnv on the webhook trigger"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_do_not_change() {
        // FNV-1a 128 over "schedule\0tick\0<time, 8 bytes BE>" and "event\0w\0e-1", computed
        // independently (Python): a change here would start a second execution for a fire or
        // an event delivered again after a release.
        let t = 1_764_000_000_000;
        assert_eq!(
            scheduled_execution_id("tick", t),
            "01KAV9FT00M2277Y8Q1HF391GM"
        );
        assert_eq!(
            event_execution_id("w", "e-1", t),
            "01KAV9FT00RVMS4EMW0GT7XJD6"
        );
        assert_ne!(
            scheduled_execution_id("tock", t),
            scheduled_execution_id("tick", t)
        );
    }

    #[test]
    fn event_types_are_checked() {
        assert!(check_event_type("order.created").is_ok());
        for bad in ["", "a b", &"x".repeat(129)] {
            assert_eq!(check_event_type(bad).unwrap_err().code(), "invalid_event");
        }
    }
}

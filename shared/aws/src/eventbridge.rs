//! EventBridge: the platform event bus (`EventBridgeBus`, the `EventBus` port) and the trigger
//! rules of active workflows (`TriggerRules`).
//!
//! Conventions (what the trigger function and anyone subscribing can rely on):
//! * A platform event goes to the platform's custom bus with `Source` = the event's source
//!   (`wf.workflow` for `event.emit`, `wf.records` for record changes), `DetailType` = the
//!   event's type (`order.created`), `Time` = its time, `Detail` = its detail. EventBridge wants
//!   an object there: any other detail travels as `{"$value": <detail>}`. `Resources` holds
//!   `wf:event:<id>`, the engine's deterministic event id (EventBridge makes its own id per
//!   PutEvents, so a redelivered publish would otherwise look like a new event), and one
//!   `wf:chain:<n>:<workflowId>` per link of the event's causation chain (`n` from 0 at the
//!   origin), read back in order by [`platform_event_from_envelope`].
//! * Scheduled workflows: one EventBridge Scheduler schedule per schedule trigger (see
//!   [`crate::scheduler`]: `wf-<workflow>-s<n>` in the stack's schedule group, `cron(...)`
//!   converted from the trigger, time zone UTC), whose target is the trigger function with the
//!   input `{"workflowId": "<id>", "scheduleIndex": <n>, "scheduledTime":
//!   "<aws.scheduler.scheduled-time>"}` (Scheduler substitutes the RFC 3339 time).
//!   Schedules used to be rules on the **default** bus with the same names (the input
//!   `{"workflowId", "scheduledTime"}` through an InputTransformer on `$.time`); the default
//!   bus's quota is 300 rules shared with the whole account, Scheduler's 1,000,000 schedules.
//!   [`TriggerRules`] no longer makes such rules, and its sync deletes those it finds under the
//!   managed prefix: [`crate::scheduler::WorkflowTriggers`] runs it after the schedules exist,
//!   which is the migration. [`TriggerInput::parse`] reads both inputs (epoch seconds, as moto
//!   substitutes `$.time`, or an RFC 3339 string, as AWS and Scheduler do).
//! * Event-triggered workflows: one rule per workflow on the custom bus (`wf-<workflow>-ev`)
//!   matching `detail-type` on the workflow's event types, whose target gets
//!   `{"workflowId": "<id>", "event": <the whole event>}`; filters are the trigger's business.
//! * Rules carry the description `wf trigger of workflow <id>`, which is how a sweep finds the
//!   owner of a rule whose name had to be shortened.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::{
    DeadLetterConfig, InputTransformer, PutEventsRequestEntry, RetryPolicy, Rule, RuleState, Target,
};
use serde::Deserialize;
use serde_json::{Value, json};
use wf_core::model::{Trigger, Workflow};
use wf_core::ports::{EventBus, PlatformEvent};
use wf_core::{StoreError, StoreResult};

use crate::error::{SdkResultExt, build_error};

/// EventBridge's limit on one entry (and on one PutEvents request).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// Entries per PutEvents request.
pub const MAX_BATCH: usize = 10;
/// How the engine's event id travels in `Resources`.
pub const EVENT_ID_RESOURCE_PREFIX: &str = "wf:event:";
/// How each link of the causation chain travels in `Resources`: `wf:chain:<n>:<workflowId>`.
pub const CHAIN_RESOURCE_PREFIX: &str = "wf:chain:";
/// The key a non-object detail is wrapped in.
pub const WRAPPED_DETAIL_KEY: &str = "$value";
/// The bus the old schedule rules live on (removed by the sync, see the module doc).
pub const SCHEDULE_BUS: &str = "default";
/// Prefix of every rule this module manages unless configured (`WF_RULE_PREFIX`).
pub const RULE_PREFIX: &str = crate::config::DEFAULT_RULE_PREFIX;
/// The id of the single target of each rule.
pub const TARGET_ID: &str = "wf-trigger";
const DESCRIPTION_PREFIX: &str = "wf trigger of workflow ";

// ---------------------------------------------------------------------------------------------
// The bus

/// The platform event bus on EventBridge. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &PlatformEvent) -> StoreResult<(PutEventsRequestEntry, usize)> {
        let detail = match &event.detail {
            Value::Object(_) => event.detail.clone(),
            other => json!({ WRAPPED_DETAIL_KEY: other }),
        };
        let detail = serde_json::to_string(&detail)
            .map_err(|e| StoreError::Permanent(format!("cannot encode event {}: {e}", event.id)))?;
        let mut resources = vec![format!("{EVENT_ID_RESOURCE_PREFIX}{}", event.id)];
        resources.extend(
            event
                .chain
                .iter()
                .enumerate()
                .map(|(n, workflow_id)| format!("{CHAIN_RESOURCE_PREFIX}{n}:{workflow_id}")),
        );
        // EventBridge's own arithmetic: 14 bytes of time plus the UTF-8 of the rest.
        let size = 14
            + event.source.len()
            + event.event_type.len()
            + detail.len()
            + resources.iter().map(String::len).sum::<usize>();
        if size > MAX_ENTRY_BYTES {
            return Err(StoreError::TooLarge(format!(
                "event {} ({}) is {size} bytes; EventBridge's limit is {MAX_ENTRY_BYTES} bytes (256 KB)",
                event.id, event.event_type
            )));
        }
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&event.source)
            .detail_type(&event.event_type)
            .detail(detail)
            .set_resources(Some(resources))
            .time(DateTime::from_millis(event.time))
            .build();
        Ok((entry, size))
    }

    async fn put_batch(&self, batch: Vec<PutEventsRequestEntry>) -> StoreResult<()> {
        crate::sqs::retry_batch("PutEvents", batch, |pending| self.put_round(pending)).await
    }

    /// One round of [`Self::put_batch`]: the entries EventBridge failed for a transient reason.
    async fn put_round(
        &self, pending: Vec<PutEventsRequestEntry>,
    ) -> StoreResult<Vec<PutEventsRequestEntry>> {
        let out = self
            .client
            .put_events()
            .set_entries(Some(pending.clone()))
            .send()
            .await
            .store_err("PutEvents")?;
        if out.failed_entry_count == 0 {
            return Ok(Vec::new());
        }
        // Results are in request order: keep the failed entries that may succeed later.
        let mut retry = Vec::new();
        for (entry, result) in pending.iter().zip(out.entries.unwrap_or_default()) {
            let Some(code) = result.error_code() else {
                continue;
            };
            if matches!(
                code,
                "ThrottlingException" | "InternalFailure" | "InternalException"
            ) {
                retry.push(entry.clone());
            } else {
                return Err(StoreError::Permanent(format!(
                    "PutEvents refused {}: {} ({code})",
                    entry.detail_type().unwrap_or_default(),
                    result.error_message().unwrap_or("no message")
                )));
            }
        }
        Ok(retry)
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    /// In requests of at most 10 entries and 256 KB; nothing is sent when any entry is too large.
    async fn publish(&self, events: &[PlatformEvent]) -> StoreResult<()> {
        let entries = events
            .iter()
            .map(|e| self.entry(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (entry, size) in entries {
            if batch.len() == MAX_BATCH || bytes + size > MAX_ENTRY_BYTES {
                self.put_batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += size;
            batch.push(entry);
        }
        if !batch.is_empty() {
            self.put_batch(batch).await?;
        }
        Ok(())
    }
}

/// A platform event back from the envelope EventBridge delivers (`id`, `detail-type`,
/// `source`, `time`, `resources`, `detail`): the engine's id, causation chain and detail are
/// restored.
pub fn platform_event_from_envelope(envelope: &Value) -> Option<PlatformEvent> {
    let text = |k: &str| envelope.get(k).and_then(Value::as_str);
    let resources: Vec<&str> = envelope
        .get("resources")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let id = resources
        .iter()
        .find_map(|s| s.strip_prefix(EVENT_ID_RESOURCE_PREFIX))
        .or_else(|| text("id"))?;
    let mut links: Vec<(usize, &str)> = resources
        .iter()
        .filter_map(|s| {
            let (n, workflow_id) = s.strip_prefix(CHAIN_RESOURCE_PREFIX)?.split_once(':')?;
            Some((n.parse().ok()?, workflow_id))
        })
        .collect();
    // EventBridge keeps the order, but the index is what says it.
    links.sort_by_key(|(n, _)| *n);
    let chain = links.into_iter().map(|(_, w)| w.to_string()).collect();
    let mut detail = envelope.get("detail").cloned().unwrap_or(Value::Null);
    if let Value::Object(map) = &detail
        && map.len() == 1
        && let Some(inner) = map.get(WRAPPED_DETAIL_KEY)
    {
        detail = inner.clone();
    }
    Some(PlatformEvent {
        id: id.to_string(),
        event_type: text("detail-type")?.to_string(),
        source: text("source").unwrap_or_default().to_string(),
        detail,
        time: envelope.get("time").and_then(time_ms).unwrap_or(0),
        chain,
    })
}

/// An RFC 3339 time (EventBridge's `$.time` on AWS, Scheduler's
/// `<aws.scheduler.scheduled-time>`) or epoch seconds (what moto substitutes for `$.time`).
fn time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => wf_core::time_fmt::parse_ms(s),
        Value::Number(n) => n.as_f64().map(|secs| (secs * 1000.0).round() as i64),
        _ => None,
    }
}

/// What a trigger rule hands the trigger function.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerInput {
    Schedule {
        workflow_id: String,
        /// Epoch milliseconds.
        scheduled_time: i64,
    },
    Event {
        workflow_id: String,
        event: PlatformEvent,
    },
}

impl TriggerInput {
    /// Read the input of a rule or schedule target; `None` when it is neither shape. A
    /// schedule's `scheduleIndex` is informative (which trigger fired) and not needed here.
    pub fn parse(input: &Value) -> Option<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            workflow_id: String,
            scheduled_time: Option<Value>,
            event: Option<Value>,
        }
        let raw: Raw = serde_json::from_value(input.clone()).ok()?;
        match (raw.scheduled_time, raw.event) {
            (Some(t), None) => Some(Self::Schedule {
                workflow_id: raw.workflow_id,
                scheduled_time: time_ms(&t)?,
            }),
            (None, Some(e)) => Some(Self::Event {
                workflow_id: raw.workflow_id,
                event: platform_event_from_envelope(&e)?,
            }),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trigger rules

/// One rule as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub name: String,
    pub bus: String,
    pub description: String,
    /// `cron(...)` for schedules.
    pub schedule: Option<String>,
    /// The event pattern for event triggers.
    pub pattern: Option<Value>,
    pub input_paths: HashMap<String, String>,
    pub input_template: String,
}

/// What a sync changed (rule names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    pub unchanged: Vec<String>,
}

impl SyncReport {
    /// Whether the sync changed anything.
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty())
    }

    pub(crate) fn absorb(&mut self, other: SyncReport) {
        self.created.extend(other.created);
        self.updated.extend(other.updated);
        self.deleted.extend(other.deleted);
        self.unchanged.extend(other.unchanged);
    }
}

/// The part of rule names that identifies a workflow: the id itself, or for ids too long for
/// EventBridge's 64-character names, a prefix of it and a hash of the whole.
pub(crate) fn short_id(workflow_id: &str) -> String {
    if workflow_id.len() <= 48
        && workflow_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return workflow_id.to_string();
    }
    // FNV-1a: stable across builds and processes (std's hasher is neither).
    let hash = workflow_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let head: String = workflow_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(38)
        .collect();
    format!("{head}-{hash:08x}")
}

/// The prefix of every rule of `workflow_id` under the managed prefix `managed`.
pub fn rule_prefix_under(managed: &str, workflow_id: &str) -> String {
    format!("{managed}{}-", short_id(workflow_id))
}

/// The prefix of every rule of `workflow_id` under the default managed prefix.
pub fn rule_prefix(workflow_id: &str) -> String {
    rule_prefix_under(RULE_PREFIX, workflow_id)
}

/// Whether `name` (listed under `prefix`) is one of that workflow's own rules, and not a rule of
/// another workflow whose id merely starts the same way.
pub(crate) fn owned_suffix(name: &str, prefix: &str) -> bool {
    match name.strip_prefix(prefix) {
        Some("ev") => true,
        Some(rest) => rest
            .strip_prefix('s')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

fn owner_of(rule: &Rule) -> Option<String> {
    rule.description()?
        .strip_prefix(DESCRIPTION_PREFIX)
        .map(str::to_string)
}

/// Every item of a paginated listing: `page(token)` fetches one page, its items and the next
/// token (absent or empty after the last page).
pub(crate) async fn all_pages<T, Page>(
    mut page: impl FnMut(Option<String>) -> Page,
) -> StoreResult<Vec<T>>
where
    Page: Future<Output = StoreResult<(Vec<T>, Option<String>)>>,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let (items, next) = page(token.take()).await?;
        out.extend(items);
        match next {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(out),
        }
    }
}

/// Keeps the EventBridge rules of workflows in line with their triggers.
#[derive(Debug, Clone)]
pub struct TriggerRules {
    client: Client,
    event_bus: String,
    target_arn: String,
    prefix: String,
    dead_letter_arn: Option<String>,
}

/// How long EventBridge keeps retrying a delivery to the trigger function, and how often
/// (what it could not deliver goes to the dead-letter queue when one is set).
pub const TARGET_MAX_EVENT_AGE_SECS: i32 = 3600;
pub const TARGET_MAX_RETRIES: i32 = 10;

impl TriggerRules {
    /// Rules on `event_bus` (event triggers) and the default bus (schedules), all targeting
    /// `target_arn` (the trigger function).
    pub fn new(
        client: Client, event_bus: impl Into<String>, target_arn: impl Into<String>,
    ) -> Self {
        Self {
            client,
            event_bus: event_bus.into(),
            target_arn: target_arn.into(),
            prefix: RULE_PREFIX.to_string(),
            dead_letter_arn: None,
        }
    }

    /// Send what EventBridge could not deliver (after [`TARGET_MAX_RETRIES`] retries within
    /// [`TARGET_MAX_EVENT_AGE_SECS`]) to this SQS queue, so no fire is lost silently.
    pub fn with_dead_letter(mut self, queue_arn: Option<String>) -> Self {
        self.dead_letter_arn = queue_arn;
        self
    }

    fn retry_policy() -> RetryPolicy {
        RetryPolicy::builder()
            .maximum_retry_attempts(TARGET_MAX_RETRIES)
            .maximum_event_age_in_seconds(TARGET_MAX_EVENT_AGE_SECS)
            .build()
    }

    /// Manage rules named `<prefix><workflow>-…` instead of [`RULE_PREFIX`] (the stack's
    /// `RulePrefix`, checked by [`crate::config::check_rule_prefix`]).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The rules `workflow` should have while active: one event rule when it has event
    /// triggers. Schedule triggers are schedules ([`crate::scheduler::TriggerSchedules`]), never
    /// rules any more: a schedule rule found on the default bus is deleted by the sync.
    pub fn desired(&self, workflow: &Workflow) -> StoreResult<Vec<RuleSpec>> {
        let prefix = rule_prefix_under(&self.prefix, &workflow.id);
        let description = format!("{DESCRIPTION_PREFIX}{}", workflow.id);
        let id_json = Value::String(workflow.id.clone()).to_string();
        let mut rules = Vec::new();
        let mut event_types = BTreeSet::new();
        for trigger in workflow.triggers() {
            if let Trigger::Event(e) = trigger {
                event_types.insert(e.event.clone());
            }
        }
        if !event_types.is_empty() {
            rules.push(RuleSpec {
                name: format!("{prefix}ev"),
                bus: self.event_bus.clone(),
                description,
                schedule: None,
                pattern: Some(
                    json!({ "detail-type": event_types.into_iter().collect::<Vec<_>>() }),
                ),
                input_paths: HashMap::new(),
                input_template: format!(
                    "{{\"workflowId\": {id_json}, \"event\": <aws.events.event.json>}}"
                ),
            });
        }
        Ok(rules)
    }

    /// Every rule on `bus` whose name starts with `prefix`.
    async fn list_rules(&self, bus: &str, prefix: &str) -> StoreResult<Vec<Rule>> {
        all_pages(|token| async move {
            let page = self
                .client
                .list_rules()
                .event_bus_name(bus)
                .name_prefix(prefix)
                .set_next_token(token)
                .send()
                .await
                .store_err("ListRules")?;
            Ok((page.rules.unwrap_or_default(), page.next_token))
        })
        .await
    }

    async fn targets(&self, rule: &str, bus: &str) -> StoreResult<Vec<Target>> {
        all_pages(|token| async move {
            let page = self
                .client
                .list_targets_by_rule()
                .rule(rule)
                .event_bus_name(bus)
                .set_next_token(token)
                .send()
                .await
                .store_err("ListTargetsByRule")?;
            Ok((page.targets.unwrap_or_default(), page.next_token))
        })
        .await
    }

    fn target(&self, spec: &RuleSpec) -> StoreResult<Target> {
        let transformer = InputTransformer::builder()
            .set_input_paths_map((!spec.input_paths.is_empty()).then(|| spec.input_paths.clone()))
            .input_template(&spec.input_template)
            .build()
            .map_err(|e| build_error("an input transformer", e))?;
        Target::builder()
            .id(TARGET_ID)
            .arn(&self.target_arn)
            .input_transformer(transformer)
            .retry_policy(Self::retry_policy())
            .set_dead_letter_config(
                self.dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(|e| build_error("a rule target", e))
    }

    fn target_matches(&self, target: &Target, spec: &RuleSpec) -> bool {
        let Some(t) = target.input_transformer() else {
            return false;
        };
        let paths = t.input_paths_map().cloned().unwrap_or_default();
        // Targets made before retries and the dead-letter queue were set are replaced.
        let retry = target.retry_policy();
        target.id() == TARGET_ID
            && target.arn() == self.target_arn
            && t.input_template() == spec.input_template
            && paths == spec.input_paths
            && retry.and_then(|r| r.maximum_retry_attempts()) == Some(TARGET_MAX_RETRIES)
            && retry.and_then(|r| r.maximum_event_age_in_seconds())
                == Some(TARGET_MAX_EVENT_AGE_SECS)
            && target.dead_letter_config().and_then(|d| d.arn()) == self.dead_letter_arn.as_deref()
    }

    fn rule_matches(rule: &Rule, spec: &RuleSpec) -> bool {
        let pattern: Option<Value> = rule
            .event_pattern()
            .and_then(|p| serde_json::from_str(p).ok());
        rule.schedule_expression() == spec.schedule.as_deref()
            && pattern == spec.pattern
            && rule.state() == Some(&RuleState::Enabled)
            && rule.description() == Some(spec.description.as_str())
    }

    async fn put_rule(&self, spec: &RuleSpec) -> StoreResult<()> {
        self.client
            .put_rule()
            .name(&spec.name)
            .event_bus_name(&spec.bus)
            .description(&spec.description)
            .state(RuleState::Enabled)
            .set_schedule_expression(spec.schedule.clone())
            .set_event_pattern(spec.pattern.as_ref().map(Value::to_string))
            .send()
            .await
            .store_err("PutRule")?;
        Ok(())
    }

    async fn delete_rule(&self, name: &str, bus: &str) -> StoreResult<()> {
        let ids: Vec<String> = self
            .targets(name, bus)
            .await?
            .iter()
            .map(|t| t.id().to_string())
            .collect();
        if !ids.is_empty() {
            self.client
                .remove_targets()
                .rule(name)
                .event_bus_name(bus)
                .set_ids(Some(ids))
                .force(false)
                .send()
                .await
                .store_err("RemoveTargets")?;
        }
        self.client
            .delete_rule()
            .name(name)
            .event_bus_name(bus)
            .send()
            .await
            .store_err("DeleteRule")?;
        Ok(())
    }

    /// Bring the rules of `workflow_id` in line: `Some(workflow)` (its active version) creates
    /// or repairs its rules and targets; `None` (deactivated or deleted) removes them. Idempotent:
    /// a second call changes nothing, and a rule edited or deleted by hand is put back.
    pub async fn sync(
        &self, workflow_id: &str, active: Option<&Workflow>,
    ) -> StoreResult<SyncReport> {
        let desired = match active {
            Some(w) => self.desired(w)?,
            None => Vec::new(),
        };
        let prefix = rule_prefix_under(&self.prefix, workflow_id);
        let mut report = SyncReport::default();
        let buses: BTreeSet<&str> = [SCHEDULE_BUS, self.event_bus.as_str()].into();
        for bus in buses {
            let existing: Vec<Rule> = self
                .list_rules(bus, &prefix)
                .await?
                .into_iter()
                .filter(|r| r.name().is_some_and(|n| owned_suffix(n, &prefix)))
                .collect();
            for spec in desired.iter().filter(|s| s.bus == bus) {
                let current = existing
                    .iter()
                    .find(|r| r.name() == Some(spec.name.as_str()));
                let mut changed = false;
                if !current.is_some_and(|r| Self::rule_matches(r, spec)) {
                    self.put_rule(spec).await?;
                    changed = true;
                }
                let targets = if current.is_some() {
                    self.targets(&spec.name, bus).await?
                } else {
                    Vec::new()
                };
                let extra: Vec<String> = targets
                    .iter()
                    .filter(|t| !self.target_matches(t, spec))
                    .map(|t| t.id().to_string())
                    .collect();
                if !extra.is_empty() {
                    self.client
                        .remove_targets()
                        .rule(&spec.name)
                        .event_bus_name(bus)
                        .set_ids(Some(extra))
                        .send()
                        .await
                        .store_err("RemoveTargets")?;
                    changed = true;
                }
                if !targets.iter().any(|t| self.target_matches(t, spec)) {
                    self.client
                        .put_targets()
                        .rule(&spec.name)
                        .event_bus_name(bus)
                        .targets(self.target(spec)?)
                        .send()
                        .await
                        .store_err("PutTargets")?;
                    changed = true;
                }
                let list = match (current, changed) {
                    (None, _) => &mut report.created,
                    (Some(_), true) => &mut report.updated,
                    (Some(_), false) => &mut report.unchanged,
                };
                list.push(spec.name.clone());
            }
            for rule in &existing {
                let Some(name) = rule.name() else { continue };
                if !desired.iter().any(|s| s.name == name && s.bus == bus) {
                    self.delete_rule(name, bus).await?;
                    report.deleted.push(name.to_string());
                }
            }
        }
        if report.changed() {
            tracing::info!(workflow_id, ?report, "trigger rules synced");
        }
        Ok(report)
    }

    /// Repair every managed rule: `active` workflows get theirs, rules of any other workflow
    /// (deleted or deactivated while a sync failed) are removed.
    pub async fn sync_all(&self, active: &[Workflow]) -> StoreResult<SyncReport> {
        let mut owners = BTreeSet::new();
        let buses: BTreeSet<&str> = [SCHEDULE_BUS, self.event_bus.as_str()].into();
        for bus in buses {
            for rule in self.list_rules(bus, &self.prefix).await? {
                if let Some(owner) = owner_of(&rule) {
                    owners.insert(owner);
                }
            }
        }
        let mut report = SyncReport::default();
        for workflow in active {
            owners.remove(&workflow.id);
            report.absorb(self.sync(&workflow.id, Some(workflow)).await?);
        }
        for owner in owners {
            report.absorb(self.sync(&owner, None).await?);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new(&crate::offline_sdk_config())
    }

    fn workflow(triggers: Value) -> Workflow {
        serde_json::from_value(json!({
            "id": "order-alert",
            "steps": [ { "id": "start", "type": "start", "triggers": triggers } ]
        }))
        .expect("workflow")
    }

    #[test]
    fn desired_rules_follow_the_triggers() {
        let rules = TriggerRules::new(
            client(),
            "wf-events",
            "arn:aws:lambda:us-east-1:1:function:t",
        );
        let wf = workflow(json!([
            { "type": "schedule", "cron": "0 9 * * 1-5" },
            { "type": "event", "event": "order.created" },
            { "type": "event", "event": "order.paid", "filter": "{{ event.detail.amount > 1 }}" },
            { "type": "manual" }
        ]));
        let desired = rules.desired(&wf).expect("desired");
        // The schedule is a Scheduler schedule (scheduler.rs), not a rule.
        assert_eq!(desired.len(), 1);
        let e = &desired[0];
        assert_eq!(e.name, "wf-order-alert-ev");
        assert_eq!(e.bus, "wf-events");
        assert_eq!(
            e.pattern,
            Some(json!({ "detail-type": ["order.created", "order.paid"] }))
        );
        assert!(
            rules
                .desired(&workflow(json!([{ "type": "manual" }])))
                .expect("none")
                .is_empty()
        );
        let staged = rules.with_prefix("wf-prod-").desired(&wf).expect("desired");
        assert_eq!(staged[0].name, "wf-prod-order-alert-ev");
    }

    #[test]
    fn rule_names_stay_short_and_owned() {
        let long = "a".repeat(80);
        let prefix = rule_prefix(&long);
        assert!(prefix.len() + 4 <= 64, "{prefix}");
        assert_ne!(rule_prefix(&long), rule_prefix(&format!("{long}b")));
        assert!(owned_suffix("wf-a-s0", "wf-a-"));
        assert!(owned_suffix("wf-a-ev", "wf-a-"));
        assert!(
            !owned_suffix("wf-a-b-s0", "wf-a-"),
            "workflow a-b is not workflow a"
        );
        assert!(!owned_suffix("wf-a-s", "wf-a-"));
    }

    #[test]
    fn envelopes_restore_the_engine_event() {
        let envelope = json!({
            "id": "eventbridge-id", "detail-type": "order.created", "source": "wf.workflow",
            "time": "2026-11-24T09:00:00Z", "resources": ["wf:event:01JD-x"],
            "detail": { "$value": [1, 2] }
        });
        let e = platform_event_from_envelope(&envelope).expect("event");
        assert_eq!(e.id, "01JD-x");
        assert_eq!(e.detail, json!([1, 2]));
        assert_eq!(
            e.time,
            wf_core::time_fmt::parse_ms("2026-11-24T09:00:00Z").expect("time")
        );
        let input = json!({ "workflowId": "w", "scheduledTime": 1_700_000_000 });
        assert_eq!(
            TriggerInput::parse(&input),
            Some(TriggerInput::Schedule {
                workflow_id: "w".into(),
                scheduled_time: 1_700_000_000_000
            })
        );
        // Scheduler's `<aws.scheduler.scheduled-time>`, with the schedule's index beside it.
        let input = json!({ "workflowId": "w", "scheduleIndex": 0,
                            "scheduledTime": "2026-11-24T09:00:00Z" });
        assert_eq!(
            TriggerInput::parse(&input),
            Some(TriggerInput::Schedule {
                workflow_id: "w".into(),
                scheduled_time: wf_core::time_fmt::parse_ms("2026-11-24T09:00:00Z").expect("t")
            })
        );
        let input = json!({ "workflowId": "w", "event": envelope });
        assert!(matches!(
            TriggerInput::parse(&input),
            Some(TriggerInput::Event { .. })
        ));
        assert_eq!(TriggerInput::parse(&json!({ "nope": 1 })), None);
        assert!(e.chain.is_empty(), "no chain resources: no chain");
    }

    #[test]
    fn the_causation_chain_travels_in_resources() {
        let bus = EventBridgeBus::new(client(), "wf-bus");
        let event = PlatformEvent {
            id: "01JD-x".into(),
            event_type: "loop.tick".into(),
            source: "wf.workflow".into(),
            detail: json!({}),
            time: 1_700_000_000_000,
            chain: vec!["a".into(), "b-2".into(), "a".into()],
        };
        let (entry, size) = bus.entry(&event).expect("entry");
        let resources = entry.resources().to_vec();
        assert_eq!(
            resources,
            [
                "wf:event:01JD-x",
                "wf:chain:0:a",
                "wf:chain:1:b-2",
                "wf:chain:2:a"
            ]
        );
        assert!(size > resources.iter().map(String::len).sum::<usize>());
        // Delivered in any order, read back in the chain's.
        let envelope = json!({
            "id": "eventbridge-id", "detail-type": "loop.tick", "source": "wf.workflow",
            "time": "2026-11-24T09:00:00Z",
            "resources": ["wf:chain:2:a", "wf:event:01JD-x", "wf:chain:1:b-2", "wf:chain:0:a"],
            "detail": {}
        });
        let back = platform_event_from_envelope(&envelope).expect("event");
        assert_eq!(back.id, "01JD-x");
        assert_eq!(back.chain, event.chain);
    }
}

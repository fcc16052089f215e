//! EventBridge Scheduler: the schedule triggers of active workflows (`TriggerSchedules`), and
//! the one trigger sync of the AWS home (`WorkflowTriggers`: schedules here, event rules in
//! [`crate::eventbridge::TriggerRules`], and the move of the old schedule rules).
//!
//! Conventions:
//! * One schedule per schedule trigger, in the stack's schedule group, named
//!   `<prefix><workflow>-s<n>` like the rules were (a workflow id too long for Scheduler's
//!   64 characters becomes a prefix of it and a hash of the whole, [`schedule_name_prefix`]).
//! * `ScheduleExpression` is the trigger's cron converted for EventBridge (`cron(...)`),
//!   `ScheduleExpressionTimezone` is `UTC` (the product's schedules are UTC; a per-trigger zone
//!   is a field away), `FlexibleTimeWindow` is `OFF`, `State` is `ENABLED`.
//! * The target is the trigger function, invoked as the scheduler role (`RoleArn`), with the
//!   fixed `Input` `{"workflowId": "<id>", "scheduleIndex": <n>, "scheduledTime":
//!   "<aws.scheduler.scheduled-time>"}`: Scheduler substitutes the context attribute with the
//!   fire's scheduled time (RFC 3339, `2022-03-22T18:59:43Z`), which
//!   [`crate::eventbridge::TriggerInput::parse`] reads. Retries and the dead-letter queue are
//!   the rules' numbers: [`TARGET_MAX_RETRIES`] within [`TARGET_MAX_EVENT_AGE_SECS`], then the
//!   trigger dead-letter queue.
//! * Every call is idempotent: a create that finds the schedule (`ConflictException`) compares
//!   it (GetSchedule) and updates it when it differs; a delete of a missing schedule is done.

use std::collections::BTreeSet;

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput;
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use serde_json::{Value, json};
use wf_core::cron::CronSpec;
use wf_core::model::{Trigger, Workflow};
use wf_core::{StoreError, StoreResult};

use crate::error::{SdkResultExt, build_error};
use crate::eventbridge::{
    RULE_PREFIX, SyncReport, TARGET_MAX_EVENT_AGE_SECS, TARGET_MAX_RETRIES, TriggerRules,
    all_pages, owned_suffix, rule_prefix_under, short_id,
};

/// Scheduler's limit on a schedule's name.
pub const MAX_NAME: usize = 64;
/// The time zone of every schedule (the product's schedules are UTC).
pub const TIMEZONE: &str = "UTC";
/// Scheduler's context attribute for the fire's scheduled time, substituted in `Input`.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";
const DESCRIPTION_PREFIX: &str = "wf schedule of workflow ";
/// Room kept after the workflow part of a name: `s` and up to 3 digits.
const INDEX_ROOM: usize = 4;

/// One schedule as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub name: String,
    pub description: String,
    /// `cron(...)`.
    pub expression: String,
    /// The target's fixed input (JSON text with [`SCHEDULED_TIME`] in it).
    pub input: String,
}

/// The prefix of every schedule of `workflow_id` under the managed prefix `managed`: the rule
/// prefix when the names fit Scheduler's 64 characters, else a shorter hashed form.
pub fn schedule_name_prefix(managed: &str, workflow_id: &str) -> String {
    let plain = rule_prefix_under(managed, workflow_id);
    if plain.len() + INDEX_ROOM <= MAX_NAME {
        return plain;
    }
    // FNV-1a (as `short_id`), printed at full width so the length is known.
    let hash = workflow_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let room = MAX_NAME.saturating_sub(managed.len() + 1 + INDEX_ROOM + 17);
    let head: String = short_id(workflow_id)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(room)
        .collect();
    format!("{managed}{head}-{hash:016x}-")
}

/// Keeps the EventBridge Scheduler schedules of workflows in line with their schedule triggers.
#[derive(Debug, Clone)]
pub struct TriggerSchedules {
    client: Client,
    group: String,
    target_arn: String,
    role_arn: String,
    prefix: String,
    dead_letter_arn: Option<String>,
}

/// Sets every field of a schedule as `spec` says, on a CreateSchedule or an UpdateSchedule
/// request (two builder types of the SDK with the same setters, hence a macro).
macro_rules! schedule_as_specified {
    ($schedules:expr, $request:expr, $spec:expr) => {
        $request
            .group_name(&$schedules.group)
            .name(&$spec.name)
            .description(&$spec.description)
            .schedule_expression(&$spec.expression)
            .schedule_expression_timezone(TIMEZONE)
            .flexible_time_window(Self::window()?)
            .state(ScheduleState::Enabled)
            .target($schedules.target($spec)?)
    };
}

impl TriggerSchedules {
    /// Schedules in `group` invoking `target_arn` (the trigger function) as `role_arn`.
    pub fn new(
        client: Client, group: impl Into<String>, target_arn: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        Self {
            client,
            group: group.into(),
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
            prefix: RULE_PREFIX.to_string(),
            dead_letter_arn: None,
        }
    }

    /// Names start with `prefix` (the stack's `RulePrefix`) instead of [`RULE_PREFIX`].
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// What Scheduler could not deliver after its retries goes to this SQS queue.
    pub fn with_dead_letter(mut self, queue_arn: Option<String>) -> Self {
        self.dead_letter_arn = queue_arn;
        self
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The schedules `workflow` should have while active. A cron EventBridge cannot run is
    /// `Invalid` (validation refuses those before publishing).
    pub fn desired(&self, workflow: &Workflow) -> StoreResult<Vec<ScheduleSpec>> {
        let prefix = schedule_name_prefix(&self.prefix, &workflow.id);
        let mut out = Vec::new();
        for trigger in workflow.triggers() {
            let Trigger::Schedule(s) = trigger else {
                continue;
            };
            let invalid = |e: &dyn std::fmt::Display| {
                StoreError::Invalid(format!("schedule {:?}: {e}", s.cron))
            };
            let expression = CronSpec::parse(&s.cron)
                .map_err(|e| invalid(&e))?
                .to_eventbridge()
                .map_err(|e| invalid(&e))?;
            let index = out.len();
            let input = json!({
                "workflowId": workflow.id,
                "scheduleIndex": index,
                "scheduledTime": SCHEDULED_TIME,
            });
            out.push(ScheduleSpec {
                name: format!("{prefix}s{index}"),
                description: format!("{DESCRIPTION_PREFIX}{}", workflow.id),
                expression,
                input: input.to_string(),
            });
        }
        Ok(out)
    }

    /// Names of the schedules in the group whose names start with `prefix`.
    pub async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        all_pages(|token| async move {
            let page = self
                .client
                .list_schedules()
                .group_name(&self.group)
                .name_prefix(prefix)
                .set_next_token(token)
                .send()
                .await
                .store_err("ListSchedules")?;
            let names = page
                .schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_string))
                .collect();
            Ok((names, page.next_token))
        })
        .await
    }

    async fn get(&self, name: &str) -> StoreResult<Option<GetScheduleOutput>> {
        self.client
            .get_schedule()
            .group_name(&self.group)
            .name(name)
            .send()
            .await
            .store_err_unless("GetSchedule", |e| e.is_resource_not_found_exception())
    }

    fn target(&self, spec: &ScheduleSpec) -> StoreResult<Target> {
        Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(&spec.input)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(TARGET_MAX_RETRIES)
                    .maximum_event_age_in_seconds(TARGET_MAX_EVENT_AGE_SECS)
                    .build(),
            )
            .set_dead_letter_config(
                self.dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(|e| build_error("a schedule target", e))
    }

    fn window() -> StoreResult<FlexibleTimeWindow> {
        FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| build_error("a flexible time window", e))
    }

    /// Whether the schedule as stored is the one `spec` describes (target, role, input, retry
    /// policy, dead-letter queue, expression, time zone, window, state, description).
    pub fn matches(&self, got: &GetScheduleOutput, spec: &ScheduleSpec) -> bool {
        let Some(target) = got.target() else {
            return false;
        };
        let input_ok = match (
            target.input().map(serde_json::from_str::<Value>),
            serde_json::from_str::<Value>(&spec.input),
        ) {
            (Some(Ok(a)), Ok(b)) => a == b,
            _ => false,
        };
        let retry = target.retry_policy();
        got.schedule_expression() == Some(spec.expression.as_str())
            && got.schedule_expression_timezone().unwrap_or("UTC") == TIMEZONE
            && got
                .flexible_time_window()
                .is_some_and(|w| *w.mode() == FlexibleTimeWindowMode::Off)
            && got.state() == Some(&ScheduleState::Enabled)
            && got.description() == Some(spec.description.as_str())
            && target.arn() == self.target_arn
            && target.role_arn() == self.role_arn
            && input_ok
            && retry.and_then(|r| r.maximum_retry_attempts()) == Some(TARGET_MAX_RETRIES)
            && retry.and_then(|r| r.maximum_event_age_in_seconds())
                == Some(TARGET_MAX_EVENT_AGE_SECS)
            && target.dead_letter_config().and_then(|d| d.arn()) == self.dead_letter_arn.as_deref()
    }

    async fn update(&self, spec: &ScheduleSpec) -> StoreResult<()> {
        schedule_as_specified!(self, self.client.update_schedule(), spec)
            .send()
            .await
            .store_err("UpdateSchedule")?;
        Ok(())
    }

    /// Create the schedule; `false` when it existed already (then it is compared and updated
    /// when it differs, see [`Self::put`]).
    async fn create(&self, spec: &ScheduleSpec) -> StoreResult<bool> {
        let created = schedule_as_specified!(self, self.client.create_schedule(), spec)
            .send()
            .await
            .store_err_unless("CreateSchedule", |e| e.is_conflict_exception())?;
        Ok(created.is_some())
    }

    /// Make the schedule `spec` exist as described; `listed`: whether a listing showed it.
    /// Which list of the report it belongs to: created, updated or unchanged.
    async fn put(&self, spec: &ScheduleSpec, listed: bool) -> StoreResult<Outcome> {
        if !listed && self.create(spec).await? {
            return Ok(Outcome::Created);
        }
        match self.get(&spec.name).await? {
            Some(got) if self.matches(&got, spec) => Ok(Outcome::Unchanged),
            Some(_) => {
                self.update(spec).await?;
                Ok(Outcome::Updated)
            }
            // Deleted between the listing and now.
            None if self.create(spec).await? => Ok(Outcome::Created),
            None => {
                self.update(spec).await?;
                Ok(Outcome::Updated)
            }
        }
    }

    /// Delete a schedule; one already gone is fine.
    pub async fn delete(&self, name: &str) -> StoreResult<()> {
        self.client
            .delete_schedule()
            .group_name(&self.group)
            .name(name)
            .send()
            .await
            .store_err_unless("DeleteSchedule", |e| e.is_resource_not_found_exception())?;
        Ok(())
    }

    /// Bring `workflow_id`'s schedules in line with `desired`, given the names of its schedules
    /// that exist (`existing`, already filtered to this workflow); what `sync` and `sync_all`
    /// do per workflow.
    async fn apply(
        &self, workflow_id: &str, desired: &[ScheduleSpec], existing: &[String],
    ) -> StoreResult<SyncReport> {
        let mut report = SyncReport::default();
        for spec in desired {
            let listed = existing.contains(&spec.name);
            let list = match self.put(spec, listed).await? {
                Outcome::Created => &mut report.created,
                Outcome::Updated => &mut report.updated,
                Outcome::Unchanged => &mut report.unchanged,
            };
            list.push(spec.name.clone());
        }
        for name in existing {
            if !desired.iter().any(|s| &s.name == name) {
                self.delete(name).await?;
                report.deleted.push(name.clone());
            }
        }
        if report.changed() {
            tracing::info!(workflow_id, ?report, "trigger schedules synced");
        }
        Ok(report)
    }

    /// Bring the schedules of `workflow_id` in line: `Some(workflow)` (its active version)
    /// creates or repairs them; `None` (deactivated or deleted) removes them. Idempotent.
    pub async fn sync(
        &self, workflow_id: &str, active: Option<&Workflow>,
    ) -> StoreResult<SyncReport> {
        let desired = active.map(|w| self.desired(w)).transpose()?;
        let listed = self
            .list(&schedule_name_prefix(&self.prefix, workflow_id))
            .await?;
        let existing = self.owned_by(workflow_id, &listed);
        self.apply(workflow_id, &desired.unwrap_or_default(), &existing)
            .await
    }

    /// Repair every managed schedule with one listing: `active` workflows get theirs, every
    /// other schedule under the managed prefix (of a workflow deleted or deactivated while a
    /// sync failed) is removed.
    pub async fn sync_all(&self, active: &[Workflow]) -> StoreResult<SyncReport> {
        let mut left: BTreeSet<String> = self.list(&self.prefix).await?.into_iter().collect();
        let mut report = SyncReport::default();
        for workflow in active {
            let desired = self.desired(workflow)?;
            let existing = self.owned_by(&workflow.id, &left);
            for name in &existing {
                left.remove(name);
            }
            report.absorb(self.apply(&workflow.id, &desired, &existing).await?);
        }
        for name in left {
            self.delete(&name).await?;
            report.deleted.push(name);
        }
        Ok(report)
    }

    /// The schedules of `workflow_id` among `names` (a listing).
    fn owned_by<'a>(
        &self, workflow_id: &str, names: impl IntoIterator<Item = &'a String>,
    ) -> Vec<String> {
        let prefix = schedule_name_prefix(&self.prefix, workflow_id);
        names
            .into_iter()
            .filter(|n| owned_suffix(n, &prefix))
            .cloned()
            .collect()
    }
}

enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// The trigger sync of the AWS home: schedule triggers on EventBridge Scheduler, event triggers
/// as rules on the platform bus. The move from schedule rules: a schedule rule on the default bus
/// (the old design, `<prefix><workflow>-s<n>`) is no longer desired by [`TriggerRules`], so its
/// sync deletes it; it runs after the schedules are in place, so a rule goes only once its
/// schedule exists (a failed schedule sync leaves the rule firing).
#[derive(Debug, Clone)]
pub struct WorkflowTriggers {
    pub rules: TriggerRules,
    /// `None` when no scheduler role is configured: schedule triggers are then refused.
    pub schedules: Option<TriggerSchedules>,
}

impl WorkflowTriggers {
    pub fn new(rules: TriggerRules, schedules: Option<TriggerSchedules>) -> Self {
        Self { rules, schedules }
    }

    fn schedules_for(&self, workflow: &Workflow) -> StoreResult<Option<&TriggerSchedules>> {
        let wants = workflow
            .triggers()
            .iter()
            .any(|t| matches!(t, Trigger::Schedule(_)));
        match (&self.schedules, wants) {
            (Some(s), _) => Ok(Some(s)),
            (None, false) => Ok(None),
            (None, true) => Err(StoreError::Invalid(format!(
                "workflow {} has a schedule trigger, but no scheduler role is configured \
                 ({}): schedules run on EventBridge Scheduler",
                workflow.id,
                crate::config::env::SCHEDULER_ROLE_ARN
            ))),
        }
    }

    /// Schedules first, then rules (which removes the workflow's old schedule rules).
    pub async fn sync(
        &self, workflow_id: &str, active: Option<&Workflow>,
    ) -> StoreResult<SyncReport> {
        let mut report = SyncReport::default();
        let schedules = match active {
            Some(w) => self.schedules_for(w)?,
            None => self.schedules.as_ref(),
        };
        if let Some(s) = schedules {
            report.absorb(s.sync(workflow_id, active).await?);
        }
        report.absorb(self.rules.sync(workflow_id, active).await?);
        Ok(report)
    }

    /// Repair everything: schedules of the active workflows (one listing), then their rules
    /// (which moves what is left of the schedule rules), then leftovers of inactive workflows.
    pub async fn sync_all(&self, active: &[Workflow]) -> StoreResult<SyncReport> {
        let mut report = SyncReport::default();
        match &self.schedules {
            Some(s) => report.absorb(s.sync_all(active).await?),
            None => {
                for w in active {
                    self.schedules_for(w)?;
                }
            }
        }
        report.absorb(self.rules.sync_all(active).await?);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new(&crate::offline_sdk_config())
    }

    fn workflow(id: &str, triggers: Value) -> Workflow {
        serde_json::from_value(json!({
            "id": id,
            "steps": [ { "id": "start", "type": "start", "triggers": triggers } ]
        }))
        .expect("workflow")
    }

    #[test]
    fn desired_schedules_follow_the_schedule_triggers() {
        let s = TriggerSchedules::new(
            client(),
            "wf-dev",
            "arn:aws:lambda:us-east-1:1:function:t",
            "arn:aws:iam::1:role/s",
        );
        let wf = workflow(
            "order-alert",
            json!([
                { "type": "schedule", "cron": "0 9 * * 1-5" },
                { "type": "event", "event": "order.created" },
                { "type": "schedule", "cron": "*/15 * * * *" }
            ]),
        );
        let desired = s.desired(&wf).expect("desired");
        assert_eq!(desired.len(), 2);
        assert_eq!(desired[0].name, "wf-order-alert-s0");
        assert_eq!(desired[0].expression, "cron(0 9 ? * MON-FRI *)");
        assert_eq!(desired[1].name, "wf-order-alert-s1");
        let input: Value = serde_json::from_str(&desired[1].input).expect("json");
        assert_eq!(
            input,
            json!({ "workflowId": "order-alert", "scheduleIndex": 1,
                    "scheduledTime": "<aws.scheduler.scheduled-time>" })
        );
        // What Scheduler hands the trigger function once it substituted the time.
        let fired: Value = serde_json::from_str(
            &desired[1]
                .input
                .replace(SCHEDULED_TIME, "2026-11-24T09:15:00Z"),
        )
        .expect("json");
        assert_eq!(
            crate::eventbridge::TriggerInput::parse(&fired),
            Some(crate::eventbridge::TriggerInput::Schedule {
                workflow_id: "order-alert".into(),
                scheduled_time: wf_core::time_fmt::parse_ms("2026-11-24T09:15:00Z").expect("t"),
            })
        );
        let staged = s.clone().with_prefix("wf-prod-").desired(&wf).expect("d");
        assert_eq!(staged[0].name, "wf-prod-order-alert-s0");
    }

    #[test]
    fn schedule_names_fit_and_stay_owned() {
        for managed in ["wf-", "a-sixteen-chars-"] {
            for id in ["a".repeat(48), "b".repeat(80), "x y/z".repeat(20)] {
                let prefix = schedule_name_prefix(managed, &id);
                assert!(prefix.len() + INDEX_ROOM <= MAX_NAME, "{prefix}");
                assert!(prefix.starts_with(managed));
                assert!(
                    prefix[managed.len()..]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
                    "{prefix}"
                );
                assert_eq!(prefix, schedule_name_prefix(managed, &id), "deterministic");
                assert!(owned_suffix(&format!("{prefix}s12"), &prefix));
            }
        }
        assert_ne!(
            schedule_name_prefix("a-sixteen-chars-", &"c".repeat(60)),
            schedule_name_prefix("a-sixteen-chars-", &"c".repeat(61))
        );
        assert_eq!(
            schedule_name_prefix("wf-", "order-alert"),
            "wf-order-alert-"
        );
    }
}

//! Use cases of workflow definitions: drafts (which may be invalid), validation, publishing a
//! valid draft as immutable version N, activation (which version triggers start, and the
//! trigger infrastructure kept in step), config, webhook tokens and signing secrets.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tracing::info;
use wf_core::engine::{self, CompiledWorkflow};
use wf_core::model::{Step, Workflow, check_workflow_id};
use wf_core::ports::{DefinitionStore, WorkflowMeta};
use wf_core::validate::{Report, validate_source, validate_value};
use wf_core::{StoreError, StoreResult};

use super::{App, AppError};

/// Versions at or above this are test-run snapshots of drafts, never published versions.
pub const DRAFT_VERSION_BASE: u32 = 1 << 31;

/// Makes triggers follow activation. Called after every activation change; must be idempotent
/// (it is also called at start-up to repair drift).
#[async_trait]
pub trait TriggerSync: Send + Sync {
    /// `active` is the version triggers now start, or None when the workflow is inactive/deleted.
    async fn sync(
        &self, workflow_id: &str, active: Option<Arc<CompiledWorkflow>>,
    ) -> StoreResult<()>;

    /// Make every trigger match `active` (the active versions of all workflows): missing ones
    /// are created, stale ones (of workflows no longer active) removed. Returns how many
    /// changes it made. The default syncs each active workflow.
    async fn reconcile(&self, active: Vec<Arc<CompiledWorkflow>>) -> StoreResult<usize> {
        let n = active.len();
        for c in active {
            self.sync(&c.workflow.id.clone(), Some(c)).await?;
        }
        Ok(n)
    }
}

/// For processes that run no triggers of their own (tests, `wf run`, most Lambda functions).
pub struct NoTriggerSync;

#[async_trait]
impl TriggerSync for NoTriggerSync {
    async fn sync(&self, _: &str, _: Option<Arc<CompiledWorkflow>>) -> StoreResult<()> {
        Ok(())
    }

    async fn reconcile(&self, _: Vec<Arc<CompiledWorkflow>>) -> StoreResult<usize> {
        Ok(0)
    }
}

/// A new unguessable webhook token (256 bits, hex).
pub fn new_webhook_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A workflow as stored: its META and its draft (null when it has none).
#[derive(Debug, Clone)]
pub struct WorkflowState {
    pub meta: WorkflowMeta,
    pub draft: Value,
}

/// Whether publishing a definition equal to the latest version makes a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// Equal to the latest version: nothing is written (`unchanged`). The API and `wf dev`.
    IfChanged,
    /// Always a new version (`wf run --db`: every run pins the version it ran).
    Always,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub version: u32,
    /// The definition equals the latest version: nothing was written.
    pub unchanged: bool,
    /// Steps and config keys changed since the previous version ([`version_diff`]).
    pub diff: Value,
    pub meta: WorkflowMeta,
}

/// What syncing one workflow file did (`wf dev`), for the CLI to print.
#[derive(Debug, Clone, PartialEq)]
pub enum FileSynced {
    /// The file is invalid: its problems, formatted as `wf validate` prints them. The previous
    /// version (if any) keeps running.
    Invalid {
        problems: String,
    },
    /// Content unchanged since the last sync.
    Unchanged {
        id: String,
    },
    Published {
        id: String,
        version: u32,
    },
    /// The file could not be read or stored (the message says why).
    Failed {
        message: String,
    },
}

/// The validation of a definition: every problem (errors) and every warning.
pub fn validation(draft: &Value) -> Report {
    validate_value(draft)
}

fn problems_error(report: &Report, what: &str) -> AppError {
    AppError::invalid(
        "invalid_workflow",
        format!(
            "the draft has {} problem(s); fix them {what}",
            report.problems.len()
        ),
    )
    .with_details(json!({ "problems": report.problems }))
}

/// Refuse API writes to a workflow that `wf dev` loads from a file: edit the file instead.
fn refuse_file_backed(meta: &WorkflowMeta) -> Result<(), AppError> {
    match &meta.source {
        Some(src) if src.starts_with("file:") => Err(AppError::conflict(
            "file_backed",
            format!(
                "workflow {} comes from {}: edit that file (wf dev publishes it on save)",
                meta.id,
                src.trim_start_matches("file:")
            ),
        )),
        _ => Ok(()),
    }
}

/// What changed between two versions: step ids and config keys.
pub fn version_diff(old: Option<&Workflow>, new: &Workflow) -> Value {
    fn steps(w: &Workflow) -> Map<String, Value> {
        fn walk(steps: &[Step], m: &mut Map<String, Value>) {
            for s in steps {
                m.insert(
                    s.id().to_string(),
                    serde_json::to_value(s).unwrap_or(Value::Null),
                );
                if let Step::Loop(l) = s {
                    walk(&l.steps, m);
                }
            }
        }
        let mut m = Map::new();
        walk(&w.steps, &mut m);
        m
    }
    let new_steps = steps(new);
    let old_steps = old.map(steps).unwrap_or_default();
    let added: Vec<&String> = new_steps
        .keys()
        .filter(|k| !old_steps.contains_key(*k))
        .collect();
    let removed: Vec<&String> = old_steps
        .keys()
        .filter(|k| !new_steps.contains_key(*k))
        .collect();
    let changed: Vec<&String> = new_steps
        .iter()
        .filter(|(k, v)| old_steps.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k)
        .collect();
    let cfg = |w: Option<&Workflow>| -> Map<String, Value> {
        w.and_then(|w| serde_json::to_value(&w.config).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    };
    let (oc, nc) = (cfg(old), cfg(Some(new)));
    let keys: BTreeSet<&String> = oc.keys().chain(nc.keys()).collect();
    let config: Vec<&String> = keys
        .into_iter()
        .filter(|k| oc.get(*k) != nc.get(*k))
        .collect();
    json!({ "addedSteps": added, "removedSteps": removed, "changedSteps": changed, "changedConfig": config })
}

/// `part` of workflow `id` when it was found; else not found, saying what is `missing`.
fn workflow_part<T>(part: Option<T>, id: &str, missing: &str) -> Result<T, AppError> {
    part.ok_or_else(|| AppError::not_found(format!("workflow {id} {missing}")))
}

impl App {
    /// The workflow's META; not found (naming it) when it does not exist.
    pub(super) async fn meta(&self, id: &str) -> Result<WorkflowMeta, AppError> {
        let meta = self.svc.definitions.get_meta(id).await?;
        workflow_part(meta, id, "does not exist")
    }

    async fn draft(&self, id: &str) -> Result<Value, AppError> {
        Ok(self
            .svc
            .definitions
            .get_draft(id)
            .await?
            .unwrap_or(Value::Null))
    }

    /// The stored draft of `id` (not found when there is none).
    pub(crate) async fn stored_draft(&self, id: &str) -> Result<Value, AppError> {
        let draft = self.svc.definitions.get_draft(id).await?;
        workflow_part(draft, id, "has no draft")
    }

    /// Every workflow with its draft.
    pub async fn list_workflows(&self) -> Result<Vec<WorkflowState>, AppError> {
        let defs = &self.svc.definitions;
        let mut out = Vec::new();
        for meta in defs.list_metas().await? {
            let draft = defs.get_draft(&meta.id).await?.unwrap_or(Value::Null);
            out.push(WorkflowState { meta, draft });
        }
        Ok(out)
    }

    /// One workflow with its draft.
    pub async fn workflow(&self, id: &str) -> Result<WorkflowState, AppError> {
        let meta = self.meta(id).await?;
        let draft = self.draft(id).await?;
        Ok(WorkflowState { meta, draft })
    }

    /// A new workflow with `draft` as its draft (which may be invalid but needs a valid id).
    pub async fn create_workflow(&self, draft: Value) -> Result<WorkflowState, AppError> {
        let id = draft
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                AppError::invalid(
                    "missing_id",
                    "the workflow needs an \"id\" (e.g. \"order-alert\")",
                )
                .with_details(json!({ "pointer": "/id" }))
            })?
            .to_string();
        check_workflow_id(&id).map_err(|e| {
            AppError::invalid("invalid_id", e.message).with_details(json!({ "pointer": "/id" }))
        })?;
        let now = self.svc.clock.now_ms();
        let meta = WorkflowMeta {
            id: id.clone(),
            updated_at: now,
            ..WorkflowMeta::default()
        };
        match self.svc.definitions.put_meta(&meta, None).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(AppError::conflict(
                    "exists",
                    format!("workflow {id} exists: PUT /workflows/{id} replaces its draft"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.svc.definitions.put_draft(&id, &draft, now).await?;
        Ok(WorkflowState { meta, draft })
    }

    /// Replace the draft of `id` (the body's id, when given, must be `id`).
    pub async fn replace_draft(
        &self, id: &str, mut draft: Value,
    ) -> Result<WorkflowState, AppError> {
        let meta = self.meta(id).await?;
        refuse_file_backed(&meta)?;
        match draft.get("id").and_then(Value::as_str) {
            Some(other) if other != id => {
                return Err(AppError::invalid(
                    "id_mismatch",
                    format!(
                        "the body's id {other:?} differs from the URL's {id:?}; ids cannot change"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                if let Some(o) = draft.as_object_mut() {
                    o.insert("id".into(), Value::String(id.to_string()));
                }
            }
        }
        let now = self.svc.clock.now_ms();
        self.svc.definitions.put_draft(id, &draft, now).await?;
        Ok(WorkflowState { meta, draft })
    }

    /// Delete a workflow (its triggers first; executions stay until retention).
    pub async fn delete_workflow(&self, id: &str) -> Result<(), AppError> {
        let meta = self.meta(id).await?;
        refuse_file_backed(&meta)?;
        self.triggers.sync(id, None).await?;
        self.svc.definitions.delete_workflow(id).await?;
        // Its conversation goes with it (a new workflow of the same id starts afresh).
        crate::ai::chat::clear_history(&*self.svc.records, id).await?;
        Ok(())
    }

    /// The validation of `definition`, or of the stored draft when None.
    pub async fn validate_workflow(
        &self, id: &str, definition: Option<Value>,
    ) -> Result<Report, AppError> {
        let draft = match definition {
            Some(d) => d,
            None => {
                self.meta(id).await?;
                self.stored_draft(id).await?
            }
        };
        Ok(validation(&draft))
    }

    /// Publish the stored draft of `id` (API workflows; a file-backed one is published from
    /// its file).
    pub async fn publish_draft(&self, id: &str) -> Result<Published, AppError> {
        let meta = self.meta(id).await?;
        refuse_file_backed(&meta)?;
        let draft = self.stored_draft(id).await?;
        let report = validation(&draft);
        let Some(workflow) = report.workflow.as_ref() else {
            return Err(problems_error(&report, "and publish again"));
        };
        self.publish(workflow, PublishMode::IfChanged).await
    }

    /// Publish a valid definition as the next version (with `IfChanged`, unless it equals the
    /// latest one). A live workflow goes on with the version just published (roll back with
    /// activate). Safe to repeat after a crash: a version written without its META update is
    /// skipped.
    pub async fn publish(
        &self, workflow: &Workflow, mode: PublishMode,
    ) -> Result<Published, AppError> {
        if let Some(limit) = self.settings().worker_timeout {
            let problems = engine::worker_timeout_problems(workflow, limit.as_millis() as u64);
            if !problems.is_empty() {
                return Err(AppError::invalid(
                    "invalid_workflow",
                    format!(
                        "{} step(s) may run longer than the worker function: {}",
                        problems.len(),
                        problems[0].message
                    ),
                )
                .with_details(json!({ "problems": problems })));
            }
        }
        let defs = &*self.svc.definitions;
        let meta = defs.get_meta(&workflow.id).await?;
        let previous = match meta.as_ref().map(|m| m.latest_version).unwrap_or(0) {
            0 => None,
            v => defs.get_version(&workflow.id, v).await?,
        };
        if let (PublishMode::IfChanged, Some(meta), Some(prev)) = (mode, &meta, &previous)
            && prev == workflow
        {
            return Ok(Published {
                version: meta.latest_version,
                unchanged: true,
                diff: version_diff(Some(prev), workflow),
                meta: meta.clone(),
            });
        }
        let diff = version_diff(previous.as_ref(), workflow);
        let version = publish_version(defs, workflow, self.svc.clock.now_ms()).await?;
        info!(workflow_id = %workflow.id, version, "published");
        let mut meta = self.meta(&workflow.id).await?;
        if meta.active {
            meta = self.activate(&workflow.id, Some(version)).await?;
        }
        Ok(Published {
            version,
            unchanged: false,
            diff,
            meta,
        })
    }

    /// `wf dev`: keep a workflow file published. An invalid file changes nothing; a changed one
    /// becomes the draft and a new version; the workflow is marked as coming from the file (API
    /// writes to it answer 409) and (de)activated per its `config.active`.
    pub async fn sync_workflow_file(&self, name: &str, text: &str) -> Result<FileSynced, AppError> {
        let report = validate_source(text);
        let Some(workflow) = report.workflow else {
            return Ok(FileSynced::Invalid {
                problems: wf_core::validate::format_problems(name, &report.problems),
            });
        };
        let hash = hex::encode(Sha256::digest(
            serde_json::to_vec(&workflow).unwrap_or_default(),
        ));
        let meta = self.svc.definitions.get_meta(&workflow.id).await?;
        let unchanged = meta
            .as_ref()
            .is_some_and(|m| m.content_hash.as_deref() == Some(hash.as_str()));
        let mut outcome = FileSynced::Unchanged {
            id: workflow.id.clone(),
        };
        if !unchanged {
            let draft: Value = serde_json::from_str(text)
                .map_err(|e| AppError::invalid("invalid_json", e.to_string()))?;
            let now = self.svc.clock.now_ms();
            self.svc
                .definitions
                .put_draft(&workflow.id, &draft, now)
                .await?;
            let published = self.publish(&workflow, PublishMode::IfChanged).await?;
            if !published.unchanged {
                outcome = FileSynced::Published {
                    id: workflow.id.clone(),
                    version: published.version,
                };
            }
        }
        let source = format!("file:{name}");
        let meta = self.meta(&workflow.id).await?;
        // Only write when something changed: `updatedAt` must not move on every start.
        let meta = if meta.source.as_deref() == Some(source.as_str())
            && meta.content_hash.as_deref() == Some(hash.as_str())
        {
            meta
        } else {
            self.write_meta(meta, |m| {
                m.source = Some(source.clone());
                m.content_hash = Some(hash.clone());
            })
            .await?
        };
        if workflow.config.active {
            if !meta.active || meta.active_version != Some(meta.latest_version) {
                self.activate(&workflow.id, None).await?;
            }
        } else if meta.active {
            self.deactivate(&workflow.id).await?;
        }
        Ok(outcome)
    }

    /// Activate `version` (default: the latest). A never-published workflow cannot be activated.
    pub async fn activate(
        &self, workflow_id: &str, version: Option<u32>,
    ) -> Result<WorkflowMeta, AppError> {
        let meta = self.meta(workflow_id).await?;
        if meta.latest_version == 0 {
            return Err(AppError::conflict(
                "not_published",
                format!(
                    "workflow {workflow_id} has never been published: publish it before activating it"
                ),
            ));
        }
        let version = version.unwrap_or(meta.latest_version);
        if version == 0 || version > meta.latest_version {
            return Err(AppError::invalid(
                "unknown_version",
                format!(
                    "workflow {workflow_id} has no version {version} (published versions: 1..={})",
                    meta.latest_version
                ),
            ));
        }
        let compiled = self.definition(workflow_id, version).await?;
        let updated = self
            .write_meta(meta, |m| {
                m.active = true;
                m.active_version = Some(version);
            })
            .await?;
        self.sync_recorded(updated, Some(compiled)).await
    }

    /// Stop triggers from starting the workflow (running executions go on).
    pub async fn deactivate(&self, workflow_id: &str) -> Result<WorkflowMeta, AppError> {
        let meta = self.meta(workflow_id).await?;
        let updated = self.write_meta(meta, |m| m.active = false).await?;
        self.sync_recorded(updated, None).await
    }

    /// Sync the workflow's triggers after an activation change, recording the outcome in META:
    /// a failed sync leaves `triggerError` (the API shows it, the sweep's reconcile repairs it)
    /// and answers a retryable error saying so; a good one clears it.
    async fn sync_recorded(
        &self, meta: WorkflowMeta, active: Option<Arc<CompiledWorkflow>>,
    ) -> Result<WorkflowMeta, AppError> {
        match self.triggers.sync(&meta.id, active).await {
            Ok(()) if meta.trigger_error.is_none() => Ok(meta),
            Ok(()) => self.write_meta(meta, |m| m.trigger_error = None).await,
            Err(e) => {
                let why = e.to_string();
                tracing::warn!(workflow_id = %meta.id, error = %why, "trigger sync failed");
                let id = meta.id.clone();
                self.write_meta(meta, |m| m.trigger_error = Some(why.clone()))
                    .await?;
                Err(AppError::retryable(
                    "trigger_sync",
                    format!(
                        "workflow {id} is saved, but its triggers are not in place yet ({why}); \
                         the next sweep repairs them, or try again"
                    ),
                ))
            }
        }
    }

    /// Make the trigger infrastructure match what the store says is active, creating what is
    /// missing and removing what is stale (drift: a rule deleted behind the product's back, a
    /// failed sync). Clears `triggerError` of the workflows it repaired. Returns the number of
    /// changes made.
    pub async fn reconcile_triggers(&self) -> Result<usize, AppError> {
        let mut active = Vec::new();
        let mut flagged = Vec::new();
        for meta in self.svc.definitions.list_metas().await? {
            if let Some(v) = meta.active_version.filter(|_| meta.active) {
                match self.definition(&meta.id, v).await {
                    Ok(c) => active.push(c),
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) => {
                        tracing::error!(workflow_id = %meta.id, version = v, error = %e, "active version unreadable: its triggers are left alone");
                    }
                }
            }
            if meta.trigger_error.is_some() {
                flagged.push(meta);
            }
        }
        let changes = self.triggers.reconcile(active).await?;
        for meta in flagged {
            self.write_meta(meta, |m| m.trigger_error = None).await?;
        }
        Ok(changes)
    }

    /// Apply `change` to META with optimistic concurrency (re-read and retry on a lost race).
    pub async fn write_meta(
        &self, mut meta: WorkflowMeta, change: impl Fn(&mut WorkflowMeta),
    ) -> Result<WorkflowMeta, AppError> {
        let defs = &self.svc.definitions;
        for _ in 0..5 {
            let expected = meta.updated_at;
            change(&mut meta);
            meta.updated_at = self.svc.clock.now_ms().max(expected + 1);
            match defs.put_meta(&meta, Some(expected)).await {
                Ok(()) => return Ok(meta),
                Err(StoreError::Conflict(_)) => {
                    meta = defs.get_meta(&meta.id).await?.ok_or_else(|| {
                        AppError::not_found(format!("workflow {} was deleted", meta.id))
                    })?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::conflict(
            "busy",
            format!(
                "workflow {} is being changed concurrently; try again",
                meta.id
            ),
        ))
    }

    /// The draft's config with `active` from activation.
    pub async fn config(&self, id: &str) -> Result<Value, AppError> {
        let meta = self.meta(id).await?;
        let draft = self.draft(id).await?;
        Ok(config_of(&draft, meta.active))
    }

    /// Change config keys: `active` (de)activates now; other keys edit the draft (applied when
    /// published). Returns the draft's config and the draft.
    pub async fn patch_config(
        &self, id: &str, mut patch: Map<String, Value>,
    ) -> Result<(Value, Value), AppError> {
        let meta = self.meta(id).await?;
        let active = patch.remove("active");
        if let Some(other) = active.as_ref().filter(|v| !v.is_boolean()) {
            return Err(AppError::invalid(
                "invalid_config",
                format!("`active` must be true or false, got {other}"),
            ));
        }
        if !patch.is_empty() {
            refuse_file_backed(&meta)?;
            let mut draft = self
                .svc
                .definitions
                .get_draft(id)
                .await?
                .unwrap_or_else(|| json!({ "id": id }));
            let config = draft
                .as_object_mut()
                .map(|o| o.entry("config").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| {
                    AppError::invalid(
                        "invalid_draft",
                        "the draft (or its config) is not a JSON object",
                    )
                })?;
            for (k, v) in patch {
                config.insert(k, v);
            }
            self.svc
                .definitions
                .put_draft(id, &draft, self.svc.clock.now_ms())
                .await?;
        }
        match active {
            Some(Value::Bool(true)) => {
                self.activate(id, None).await?;
            }
            Some(Value::Bool(false)) => {
                self.deactivate(id).await?;
            }
            _ => {}
        }
        let draft = self.draft(id).await?;
        let meta = self.meta(id).await?;
        Ok((config_of(&draft, meta.active), draft))
    }

    /// Published version numbers of a workflow with the one that is active.
    pub async fn versions(&self, id: &str) -> Result<WorkflowMeta, AppError> {
        self.meta(id).await
    }

    /// One published version (test-run snapshots are not versions).
    pub async fn version(&self, id: &str, version: u32) -> Result<Workflow, AppError> {
        let stored = self.svc.definitions.get_version(id, version).await?;
        let published = stored.filter(|_| version < DRAFT_VERSION_BASE);
        workflow_part(published, id, &format!("has no version {version}"))
    }

    /// A new webhook URL token; the old one stops working at once.
    pub async fn rotate_webhook_token(&self, id: &str) -> Result<WorkflowMeta, AppError> {
        let meta = self.meta(id).await?;
        let token = new_webhook_token();
        self.write_meta(meta, |m| m.webhook_token = Some(token.clone()))
            .await
    }

    /// Signing secrets of the webhook (several during a rotation; empty removes them).
    pub async fn set_webhook_secrets(
        &self, id: &str, secrets: Vec<String>,
    ) -> Result<WorkflowMeta, AppError> {
        if secrets.iter().any(|s| s.trim().is_empty()) {
            return Err(AppError::invalid(
                "invalid_secret",
                "secrets must not be empty strings",
            ));
        }
        let meta = self.meta(id).await?;
        self.write_meta(meta, |m| m.webhook_secrets = secrets.clone())
            .await
    }
}

fn config_of(draft: &Value, active: bool) -> Value {
    let mut config = draft.get("config").cloned().unwrap_or_else(|| json!({}));
    if let Some(o) = config.as_object_mut() {
        o.insert("active".into(), Value::Bool(active));
    }
    config
}

/// Store `workflow` as the next version and move META's latest version to it. Safe to repeat
/// after a crash: a version written without its META update is found and skipped over.
pub async fn publish_version(
    defs: &dyn DefinitionStore, workflow: &Workflow, now: i64,
) -> StoreResult<u32> {
    for _ in 0..5 {
        let stored = defs.get_meta(&workflow.id).await?;
        let mut meta = stored.clone().unwrap_or_else(|| WorkflowMeta {
            id: workflow.id.clone(),
            ..WorkflowMeta::default()
        });
        let mut version = meta.latest_version + 1;
        // A crash between put_version and put_meta leaves versions META does not know.
        while defs.get_version(&workflow.id, version).await?.is_some() {
            version += 1;
        }
        match defs.put_version(workflow, version).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
        meta.latest_version = version;
        if meta.webhook_token.is_none() {
            meta.webhook_token = Some(new_webhook_token());
        }
        let expected = stored.as_ref().map(|m| m.updated_at);
        meta.updated_at = now.max(expected.unwrap_or(0) + 1);
        match defs.put_meta(&meta, expected).await {
            Ok(()) => return Ok(version),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!(
        "workflow {} is being published concurrently; try again",
        workflow.id
    )))
}

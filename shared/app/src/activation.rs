//! Activation: which published version triggers start, and keeping the trigger infrastructure
//! (the local scheduler, or EventBridge rules on AWS) in step with it.

use std::sync::Arc;

use async_trait::async_trait;
use wf_core::StoreError;
use wf_core::engine::CompiledWorkflow;
use wf_core::ports::WorkflowMeta;

use crate::http::ApiError;
use crate::worker::Worker;

/// Makes triggers follow activation. Called after every activation change; must be idempotent
/// (it is also called at start-up to repair drift).
#[async_trait]
pub trait TriggerSync: Send + Sync {
    /// `active` is the version triggers now start, or None when the workflow is inactive/deleted.
    async fn sync(
        &self,
        workflow_id: &str,
        active: Option<Arc<CompiledWorkflow>>,
    ) -> Result<(), StoreError>;
}

/// For processes that run no triggers of their own (tests, `wf run`).
pub struct NoTriggerSync;

#[async_trait]
impl TriggerSync for NoTriggerSync {
    async fn sync(&self, _: &str, _: Option<Arc<CompiledWorkflow>>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Activate `version` (default: the latest). A never-published workflow cannot be activated.
pub async fn activate(
    worker: &Worker,
    sync: &dyn TriggerSync,
    workflow_id: &str,
    version: Option<u32>,
) -> Result<WorkflowMeta, ApiError> {
    let svc = worker.services();
    let meta = svc
        .definitions
        .get_meta(workflow_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workflow {workflow_id} does not exist")))?;
    if meta.latest_version == 0 {
        return Err(ApiError::conflict(
            "not_published",
            format!(
                "workflow {workflow_id} has never been published: publish it before activating it"
            ),
        ));
    }
    let version = version.unwrap_or(meta.latest_version);
    if version == 0 || version > meta.latest_version {
        return Err(ApiError::unprocessable(
            "unknown_version",
            format!(
                "workflow {workflow_id} has no version {version} (published versions: 1..={})",
                meta.latest_version
            ),
        ));
    }
    let compiled = worker.definition(workflow_id, version).await?;
    let updated = write_meta(worker, meta, |m| {
        m.active = true;
        m.active_version = Some(version);
    })
    .await?;
    sync.sync(workflow_id, Some(compiled)).await?;
    Ok(updated)
}

/// Stop triggers from starting the workflow (running executions go on).
pub async fn deactivate(
    worker: &Worker,
    sync: &dyn TriggerSync,
    workflow_id: &str,
) -> Result<WorkflowMeta, ApiError> {
    let meta = worker
        .services()
        .definitions
        .get_meta(workflow_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workflow {workflow_id} does not exist")))?;
    let updated = write_meta(worker, meta, |m| m.active = false).await?;
    sync.sync(workflow_id, None).await?;
    Ok(updated)
}

/// Apply `change` to META with optimistic concurrency (re-read and retry on a lost race).
pub async fn write_meta(
    worker: &Worker,
    mut meta: WorkflowMeta,
    change: impl Fn(&mut WorkflowMeta),
) -> Result<WorkflowMeta, ApiError> {
    let defs = &worker.services().definitions;
    for _ in 0..5 {
        let expected = meta.updated_at;
        change(&mut meta);
        meta.updated_at = worker.services().clock.now_ms().max(expected + 1);
        match defs.put_meta(&meta, Some(expected)).await {
            Ok(()) => return Ok(meta),
            Err(StoreError::Conflict(_)) => {
                meta = defs.get_meta(&meta.id).await?.ok_or_else(|| {
                    ApiError::not_found(format!("workflow {} was deleted", meta.id))
                })?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "busy",
        format!(
            "workflow {} is being changed concurrently; try again",
            meta.id
        ),
    ))
}

//! Publishing: a valid definition becomes immutable version N; META tracks the latest version
//! and the webhook token (made at first publish: 256 random bits, URL-safe).

use rand::RngCore;
use wf_core::StoreError;
use wf_core::model::Workflow;
use wf_core::ports::{DefinitionStore, WorkflowMeta};

/// What a publish produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: u32,
    pub webhook_token: String,
}

/// A new unguessable webhook token (256 bits, hex).
pub fn new_webhook_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Publish `workflow` (it must be valid) as the next version. Safe to repeat after a crash:
/// a version written without its META update is found and skipped over.
pub async fn publish(
    defs: &dyn DefinitionStore,
    workflow: &Workflow,
    now: i64,
) -> Result<Published, StoreError> {
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
            Ok(()) => {
                return Ok(Published {
                    version,
                    webhook_token: meta.webhook_token.unwrap_or_default(),
                });
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!(
        "workflow {} is being published concurrently; try again",
        workflow.id
    )))
}

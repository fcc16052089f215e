//! What a webhook delivery reads of its workflow's `META` (activation, the URL's token, the
//! signing secrets), remembered for a moment.
//!
//! Every delivery needs `META`, and nothing else it reads changes: published versions are
//! immutable (cached forever by [`super::App::definition`]). Read from the store each time it
//! was one SQLite read transaction per webhook in `wf dev` (about 8% of its CPU under the c=16
//! load of `scripts/bench-webhooks`: a read after the writer's commit starts with an empty page
//! cache) and one `GetItem` per webhook on AWS.
//!
//! The rule: a change made through this process's [`App`](super::App) (activate, deactivate,
//! rotate the token or the secrets, delete) is seen by the very next delivery, because every
//! `META` write goes through [`InvalidatingDefinitions`], which forgets what was remembered. A
//! change made by another process on the same store (another `wf` on the same SQLite file,
//! the api function next to the webhook function on AWS) is seen within [`META_FRESH_FOR`].
//! Only the webhook path reads through here; the use cases that change `META` read it fresh
//! (their optimistic-concurrency retries must see the stored `updatedAt`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use wf_core::StoreResult;
use wf_core::model::Workflow;
use wf_core::ports::{DefinitionStore, WorkflowMeta};

/// How long a `META` read stays the answer for deliveries (see the module).
pub const META_FRESH_FOR: Duration = Duration::from_secs(1);

/// Workflows remembered at most; past it, entries no longer fresh are dropped, then all.
const MAX_REMEMBERED: usize = 1024;

struct Remembered {
    read_at: Instant,
    meta: Option<Arc<WorkflowMeta>>,
}

/// `META` as last read, by workflow id.
#[derive(Default)]
pub(crate) struct MetaCache {
    entries: Mutex<HashMap<String, Remembered>>,
    /// Bumped by every `META` write through this process: a read that began before a write
    /// and ended after it is not remembered (it may hold what the write replaced).
    generation: AtomicU64,
}

impl MetaCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Remembered>> {
        // A poisoned map is still valid: each entry is a META as read.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `META` of `workflow_id`: as remembered when read less than [`META_FRESH_FOR`] ago, else
    /// read from `definitions` (and remembered).
    pub(crate) async fn get(
        &self, definitions: &dyn DefinitionStore, workflow_id: &str,
    ) -> StoreResult<Option<Arc<WorkflowMeta>>> {
        if let Some(r) = self.lock().get(workflow_id)
            && r.read_at.elapsed() < META_FRESH_FOR
        {
            return Ok(r.meta.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let read_at = Instant::now();
        let meta = definitions.get_meta(workflow_id).await?.map(Arc::new);
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= MAX_REMEMBERED {
                entries.retain(|_, r| r.read_at.elapsed() < META_FRESH_FOR);
                if entries.len() >= MAX_REMEMBERED {
                    entries.clear();
                }
            }
            let meta = meta.clone();
            entries.insert(workflow_id.to_string(), Remembered { read_at, meta });
        }
        Ok(meta)
    }

    /// Forget everything (a `META` write went through this process).
    fn forget(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.lock().clear();
    }
}

/// The definition store as the application uses it: every call goes to `inner`; a write of
/// `META` (or the removal of a workflow) also makes [`MetaCache`] forget.
pub(crate) struct InvalidatingDefinitions {
    pub(crate) inner: Arc<dyn DefinitionStore>,
    pub(crate) metas: Arc<MetaCache>,
}

#[async_trait]
impl DefinitionStore for InvalidatingDefinitions {
    async fn put_draft(&self, workflow_id: &str, draft: &Value, now: i64) -> StoreResult<()> {
        self.inner.put_draft(workflow_id, draft, now).await
    }

    async fn get_draft(&self, workflow_id: &str) -> StoreResult<Option<Value>> {
        self.inner.get_draft(workflow_id).await
    }

    async fn put_version(&self, workflow: &Workflow, version: u32) -> StoreResult<()> {
        self.inner.put_version(workflow, version).await
    }

    async fn get_version(&self, workflow_id: &str, version: u32) -> StoreResult<Option<Workflow>> {
        self.inner.get_version(workflow_id, version).await
    }

    async fn get_meta(&self, workflow_id: &str) -> StoreResult<Option<WorkflowMeta>> {
        self.inner.get_meta(workflow_id).await
    }

    async fn put_meta(
        &self, meta: &WorkflowMeta, expected_updated_at: Option<i64>,
    ) -> StoreResult<()> {
        // Forgotten whatever the outcome: a failed write may still have been applied (a
        // timeout on AWS).
        let written = self.inner.put_meta(meta, expected_updated_at).await;
        self.metas.forget();
        written
    }

    async fn list_metas(&self) -> StoreResult<Vec<WorkflowMeta>> {
        self.inner.list_metas().await
    }

    async fn delete_workflow(&self, workflow_id: &str) -> StoreResult<()> {
        let deleted = self.inner.delete_workflow(workflow_id).await;
        self.metas.forget();
        deleted
    }
}
